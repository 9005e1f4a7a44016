"""Fixtures for the yolo tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from dsformats.testing import dsformats_scheduler  # noqa: F401  (a 2-worker Dask LocalCluster per session)
from yolo_helpers import make_dataset, png


@pytest.fixture
def ultralytics_dataset(tmp_path: Path) -> Path:
    """coco8-like: names as a mapping, images/<split>/ and labels/<split>/, a box and a polygon."""
    yaml = (
        "# Ultralytics style\n"
        "path: ../datasets/tiny  # dataset root dir (ignored: paths are taken relative to this file)\n"
        "train: images/train\n"
        "val: images/val\n"
        "test:  # optional\n"
        "\n"
        "names:\n"
        "  0: person\n"
        "  1: traffic light\n"
        "  2: 'it''s'\n"
    )
    return make_dataset(
        tmp_path / "tiny",
        yaml,
        {
            "images/train/a.png": png(40, 20),
            "labels/train/a.txt": "0 0.5 0.5 0.5 0.5\n1 0.1 0.1 0.9 0.1 0.5 0.9\n",
            "images/train/sub/b.png": png(10, 10, 3),
            "images/val/c.png": png(8, 16, 5),
            "labels/val/c.txt": "",
        },
    )
