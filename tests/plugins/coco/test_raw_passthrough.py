"""COCO -> COCO through the reader's deferred annotations (written from their JSON) gives the full path's bytes.

The full path is forced by replacing every item's annotations with the same tuple (``attrs.evolve``), which drops
the deferred source; both outputs, and both reports, are compared whole.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import attrs
import orjson
import pytest

import dsformats
from dsformats import dispatch
from dsformats.policy import reporting
from dsformats.report import Report

ROOT = Path(__file__).resolve().parents[3]
OPTION_SETS = [
    {},
    {"reindex": True},
    {"segmentation_mode": "polygons"},
    {"segmentation_mode": "mask"},
    {"tasks": "instances"},
    {"tasks": "instances,person_keypoints"},
    {"tasks": "stuff"},
    {"save_images": True},
]


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def convert_both(src: Path, tmp_path: Path, options: dict, *, reader_options: dict | None = None):
    """(raw-path tree, full-path tree, raw report, full report, items that had deferred annotations)."""
    raw_out, full_out = tmp_path / "raw", tmp_path / "full"
    raw_report = dsformats.convert(src, raw_out, "coco", source_format="coco", writer_options=options,
                                   reader_options=reader_options)
    full_report = Report(source_format="coco")
    deferred = 0
    with reporting(full_report), dispatch.read(src, "coco", options=reader_options) as reader:

        def full_items():
            nonlocal deferred
            for item in reader.items():
                deferred += item.deferred is not None
                plain = attrs.evolve(item, annotations=item.annotations)
                assert plain.deferred is None and plain == item
                yield plain

        dispatch.write(full_items(), full_out, "coco", header=reader.header, options=options, report=full_report)
    return tree(raw_out), tree(full_out), raw_report, full_report, deferred


def same_reports(a: Report, b: Report) -> None:
    assert a.items_read == b.items_read and a.items_written == b.items_written
    assert list(a.annotations_written.items()) == list(b.annotations_written.items())
    assert a.dropped == b.dropped and a.skipped == b.skipped and a.warnings == b.warnings


@pytest.mark.parametrize("layout", ["coco", "coco_instances", "coco_captions", "coco_image_info", "coco_labels",
                                    "coco_panoptic", "coco_person_keypoints", "coco_roboflow", "coco_stuff",
                                    "mmdet_coco"])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "-")
def test_fixtures_raw_and_full_paths_give_the_same_bytes(datumaro_fixtures, tmp_path, layout, options):
    src = datumaro_fixtures / "coco_dataset" / layout
    raw, full, raw_report, full_report, deferred = convert_both(src, tmp_path, options)
    assert raw == full
    same_reports(raw_report, full_report)
    if layout in ("coco_instances", "coco_roboflow", "mmdet_coco"):  # one instances file a subset: deferred
        assert deferred == sum(raw_report.items_read.values()) > 0


def _odd_dataset(root: Path, seed: int) -> None:
    """An instances file with every plain-path subtlety: extra keys, nested attributes naming model attributes,
    scores, crowd flags, missing/text areas, flat and empty polygons, missing boxes, repeated and zero ids,
    RLE masks (list and compressed counts), keypoints and task tags; images and annotations shuffled."""
    rng = random.Random(seed)
    width, height = 12, 9
    images = [{"id": 10 + i, "file_name": f"{i:03d}.jpg", "width": width, "height": height} for i in range(40)]
    anns = []
    for n in range(300):
        image = rng.choice(images)
        poly = [round(rng.uniform(0, width - 1), rng.choice([0, 2])) for _ in range(2 * rng.randint(3, 6))]
        poly = [int(v) if rng.random() < 0.3 else v for v in poly]
        ann: dict = {"id": rng.choice([n + 1, n + 1, 7, 0, -3]), "image_id": image["id"],
                     "category_id": rng.choice([1, 2, 5])}
        shape = rng.randrange(8)
        if shape == 0:
            ann["segmentation"] = poly  # flat
        elif shape == 1:
            ann["segmentation"] = [poly, [], poly[::-1] if len(poly) % 2 == 0 else poly]
        elif shape == 2:
            ann["segmentation"] = []
        elif shape == 3:
            counts = [width * height - 5, 5]
            ann["segmentation"] = {"size": [height, width], "counts": counts}
        elif shape == 4:
            from dsformats.masks import compress_counts

            ann["segmentation"] = {"size": [height, width], "counts": compress_counts([3, 4, width * height - 7])}
        else:
            ann["segmentation"] = [poly]
        if shape != 2 or rng.random() < 0.8:
            ann["bbox"] = [rng.choice([1, 1.5]), 2, 3.25, 4] if rng.random() < 0.9 else []
        if not ann.get("bbox") and not any(ann["segmentation"] if isinstance(ann["segmentation"], list) else [1]):
            ann["bbox"] = [0, 0, 1, 1]
        if rng.random() < 0.8:
            ann["area"] = rng.choice([12, 3.5, "7.25", None, "x"])
        if rng.random() < 0.7:
            ann["iscrowd"] = rng.choice([0, 0, 1, 2])
        if rng.random() < 0.2:
            ann["score"] = rng.choice([0.5, 1])
        if rng.random() < 0.2:
            ann["attributes"] = rng.choice([{"occluded": True}, {"score": 0.25, "area": 4}, {"is_crowd": "true"},
                                            {"coco_task": "stuff"}, {"coco_task": "panoptic"}, {}])
        if rng.random() < 0.1:
            ann["extra_key"] = rng.choice([1, "a", [1, 2]])
        if rng.random() < 0.03:
            ann["keypoints"] = [1, 2, 2, 3, 4, 1]
            ann["num_keypoints"] = 2
        anns.append(ann)
    rng.shuffle(images)
    categories = [{"id": 1, "name": "a", "supercategory": ""}, {"id": 2, "name": "b", "supercategory": "x"},
                  {"id": 5, "name": "c", "supercategory": ""}]
    (root / "annotations").mkdir(parents=True)
    (root / "images" / "default").mkdir(parents=True)
    data = {"info": {"year": 1}, "categories": categories, "images": images, "annotations": anns, "extra": [1]}
    (root / "annotations" / "instances_default.json").write_bytes(orjson.dumps(data))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", OPTION_SETS[:5], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "-")
def test_odd_instances_raw_and_full_paths_give_the_same_bytes(tmp_path, seed, options):
    src = tmp_path / "src"
    _odd_dataset(src, seed)
    raw, full, raw_report, full_report, deferred = convert_both(src, tmp_path, options)
    assert raw == full
    same_reports(raw_report, full_report)
    assert 0 < deferred < 40  # most items deferred; those with an unusual annotation built at once


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools' decode, in the generator only
def test_generated_bench_set_raw_and_full_paths_give_the_same_bytes(tmp_path):
    """The benchmark's own data (polygons and crowd RLE), small."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from generate import generate
    finally:
        sys.path.remove(str(ROOT / "bench"))
    data = generate(tmp_path / "data", 60, 7, "tiny", seed=3, formats=("coco",))
    for options in ({}, {"reindex": True}):
        out = tmp_path / ("o" + str(len(options)))
        raw, full, raw_report, full_report, deferred = convert_both(data / "coco", out, options)
        assert raw == full and deferred == 60
        assert raw_report.annotations_written == full_report.annotations_written
        assert sum(raw_report.annotations_written.values()) >= 60 * 7 * 2


def _read_reprs(src: Path, monkeypatch, *, defer: bool) -> list[str]:
    from dsformats_coco.reader import CocoReader

    with monkeypatch.context() as patch:
        if not defer:
            patch.setattr(CocoReader, "_codes", staticmethod(lambda source, index: None))  # every item the full way
        with dsformats.read(src, "coco") as reader:
            return [repr(item) for item in reader.items()]


@pytest.mark.parametrize("seed", range(4))
def test_deferred_annotations_build_as_the_reader_builds_them_at_once(tmp_path, monkeypatch, seed):
    """repr shows every field, with int and float told apart (1 == 1.0 would hide a difference)."""
    src = tmp_path / "src"
    _odd_dataset(src, seed)
    deferred = _read_reprs(src, monkeypatch, defer=True)
    assert deferred == _read_reprs(src, monkeypatch, defer=False) and len(deferred) == 40


@pytest.mark.parametrize("layout", ["coco_instances", "coco_roboflow", "mmdet_coco"])
def test_fixture_deferred_annotations_build_as_at_once(datumaro_fixtures, monkeypatch, layout):
    src = datumaro_fixtures / "coco_dataset" / layout
    deferred = _read_reprs(src, monkeypatch, defer=True)
    assert deferred == _read_reprs(src, monkeypatch, defer=False) and "Mask(" in "".join(deferred)
