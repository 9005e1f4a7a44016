"""Datumaro 1.13 reads what dsformats writes (opt-in: it needs Datumaro in its own virtualenv).

Run with ``DSFORMATS_DATUMARO=/path/to/venv/bin/datum python -m pytest tests/test_datumaro_compat.py``;
``python bench/run.py --peers`` creates such a virtualenv in ``bench/.venv-datumaro``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import dsformats

DATUM = os.environ.get("DSFORMATS_DATUMARO", "")

pytestmark = pytest.mark.skipif(
    not (DATUM and Path(DATUM).exists()),
    reason="Datumaro compatibility checks need DSFORMATS_DATUMARO=<path to the datum executable>",
)


def datum_reads(fmt: str, path: Path, tmp_path: Path) -> str:
    result = subprocess.run([DATUM, "convert", "-if", fmt, "-i", str(path), "-f", fmt, "-o", str(tmp_path / "dm")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


@pytest.mark.parametrize("fixture", ["voc_dataset1", "voc_dataset2", "voc_dataset3"])
def test_datumaro_reads_our_voc(datumaro_fixtures, tmp_path, fixture):
    src = datumaro_fixtures / "voc_dataset" / fixture
    dsformats.convert(src, tmp_path / "out", "voc", source_format="voc", writer_options={"save_images": True})
    log = datum_reads("voc", tmp_path / "out", tmp_path)
    assert "Dataset exported" in log


@pytest.mark.parametrize("fixture", ["coco", "coco_instances", "coco_person_keypoints", "coco_captions"])
def test_datumaro_reads_our_coco(datumaro_fixtures, tmp_path, fixture):
    src = datumaro_fixtures / "coco_dataset" / fixture
    dsformats.convert(src, tmp_path / "out", "coco", source_format="coco", writer_options={"save_images": True})
    log = datum_reads("coco", tmp_path / "out", tmp_path)
    assert "Dataset exported" in log


def test_datumaro_reads_our_image_zip(datumaro_fixtures, tmp_path):
    dsformats.convert(datumaro_fixtures / "image_zip_dataset", tmp_path / "out", "image_zip")
    log = datum_reads("image_zip", tmp_path / "out" / "default.zip", tmp_path)
    assert "Dataset exported" in log
