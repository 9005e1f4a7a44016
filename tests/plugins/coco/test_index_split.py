"""The COCO reader indexes a big annotations file in two halves, the second in a forked child: it must read exactly
what one pass reads (items, annotation keys, errors and skipped items, in the same order), and fall back to one
process when the child fails."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest
from dsformats_coco import jsonindex
from dsformats_coco import reader as coco_reader

import dsformats
import dsformats.parallel
from dsformats import DatasetError

from .test_raw_passthrough import _odd_dataset


def _read(src: Path, monkeypatch, mode: str, *, skip: bool = False, started: list | None = None
          ) -> tuple[list[str], list, list, str]:
    """(item reprs, annotation keys, skipped items, error) read with the index in one process (``serial``), split
    with a child (``fork``), or split with a child that fails (``failed``); ``started`` gets each child's work."""
    started = [] if started is None else started
    with monkeypatch.context() as patch:
        patch.setattr(coco_reader, "_FORK_INDEX_FROM", 10**9 if mode == "serial" else 1)
        patch.setattr(dsformats.parallel, "resolve_jobs", lambda jobs: 2)
        patch.setattr(threading, "active_count", lambda: 1)  # threads of other tests may linger: fork anyway
        real = coco_reader.forked

        def spy(function):
            started.append(function)
            if mode == "failed":
                return lambda: None
            wait = real(function)
            assert wait is not None
            return wait

        patch.setattr(coco_reader, "forked", spy)
        report = dsformats.Report()
        error = ""
        items: list[str] = []
        keys: list = []
        try:
            with dsformats.policy.reporting(report, skip_bad_items=skip), dsformats.read(src, "coco") as reader:
                keys = reader.header.infos["coco"]["annotation_keys"]
                items = [repr(item) for item in reader.items()]
        except DatasetError as exc:
            error = str(exc)
    assert not started or mode != "serial"
    return items, keys, [str(s) for s in report.skipped], error


@pytest.mark.parametrize("seed", range(4))
def test_split_index_reads_what_one_pass_reads(tmp_path, monkeypatch, seed):
    src = tmp_path / "src"
    _odd_dataset(src, seed)
    path = src / "annotations" / "instances_default.json"
    data = orjson.loads(path.read_bytes())
    data["annotations"][-1]["late_key"] = 1  # a key only the second half has
    path.write_bytes(orjson.dumps(data))
    serial = _read(src, monkeypatch, "serial")
    assert len(serial[0]) == 40 and "late_key" in serial[1]
    started: list = []
    assert _read(src, monkeypatch, "fork", started=started) == serial
    assert _read(src, monkeypatch, "failed", started=started) == serial
    assert len(started) == 2


@pytest.mark.parametrize("layout", ["coco", "coco_instances", "coco_captions", "coco_labels", "coco_panoptic",
                                    "coco_person_keypoints", "coco_roboflow", "coco_stuff", "mmdet_coco"])
def test_split_index_reads_the_fixtures_as_one_pass(datumaro_fixtures, monkeypatch, layout):
    src = datumaro_fixtures / "coco_dataset" / layout
    serial = _read(src, monkeypatch, "serial")
    assert serial[0] and not serial[3]
    started: list = []
    assert _read(src, monkeypatch, "fork", started=started) == serial
    assert bool(started) == (layout != "coco_panoptic")  # panoptic elements are all checked the full way


def _bad_dataset(root: Path) -> None:
    """Bad annotations in both halves: a list element, a bad category, an unknown image, invalid JSON."""
    images = [{"id": i + 1, "file_name": f"{i}.jpg", "width": 8, "height": 6} for i in range(10)]
    anns = [{"id": n + 1, "image_id": n % 10 + 1, "category_id": 1, "bbox": [1, 1, 2, 2]} for n in range(40)]
    anns[5] = [1, 2]
    anns[12]["category_id"] = 9
    anns[30]["image_id"] = 99
    text = orjson.dumps({"images": images, "annotations": anns,
                         "categories": [{"id": 1, "name": "a"}]}).decode()
    at = text.index('{"id":37,')
    text = text[:at] + '{"id":37,"image_id":tru,' + text[at + len('{"id":37,'):]  # not JSON, brackets balanced
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "instances_default.json").write_text(text)


def test_split_index_reports_bad_annotations_in_file_order(tmp_path, monkeypatch):
    src = tmp_path / "src"
    _bad_dataset(src)
    monkeypatch.setattr(jsonindex, "_VALIDATE_LIMIT", 0)  # no whole-file parse: the bad element is found by the index
    strict = _read(src, monkeypatch, "serial")
    assert "annotations[5]" in strict[3]
    skipped = _read(src, monkeypatch, "serial", skip=True)
    assert "annotations[36]: invalid JSON" in skipped[3]  # an error even when bad items are skipped
    order = [next(n for n in (5, 12, 30) if f"annotations[{n}]" in s) for s in skipped[2]]
    assert order == [5, 12, 30]
    started: list = []
    for mode in ("fork", "failed"):
        assert _read(src, monkeypatch, mode, started=started) == strict
        assert _read(src, monkeypatch, mode, skip=True, started=started) == skipped
    assert len(started) == 4
