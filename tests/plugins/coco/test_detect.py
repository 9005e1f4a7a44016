"""coco detection: every fixture layout is detected as coco; other datasets are not."""

from __future__ import annotations

import json

import pytest

import dsformats
from dsformats import Confidence

LAYOUTS = ["coco", "coco_instances", "coco_person_keypoints", "coco_captions", "coco_labels", "coco_image_info",
           "coco_panoptic", "coco_stuff", "coco_roboflow", "mmdet_coco"]


def verdict(path):
    return next(d for d in dsformats.detect(path) if d.format == "coco")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_is_detected(datumaro_fixtures, layout):
    path = datumaro_fixtures / "coco_dataset" / layout
    assert verdict(path).confidence == Confidence.CERTAIN
    assert dsformats.detect_format(path) == "coco"


def test_single_json_and_annotations_folder(datumaro_fixtures):
    root = datumaro_fixtures / "coco_dataset" / "coco"
    assert verdict(root / "annotations" / "instances_val.json").confidence == Confidence.CERTAIN
    assert verdict(root / "annotations").confidence == Confidence.CERTAIN


def test_other_datasets_are_not_coco(datumaro_fixtures, tmp_path):
    assert verdict(datumaro_fixtures / "image_zip_dataset").confidence == Confidence.NONE
    assert dsformats.detect_format(datumaro_fixtures / "image_zip_dataset") == "image_zip"
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"labels": [1, 2]}))
    assert verdict(other).confidence == Confidence.NONE
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_x.json").write_text("[1, 2]")
    assert verdict(tmp_path).confidence == Confidence.NONE


def test_name_only_match_is_likely(tmp_path):
    (tmp_path / "annotations").mkdir()
    body = {"notes": ["x" * 100] * 12000, "images": [], "annotations": []}
    (tmp_path / "annotations" / "instances_big.json").write_text(json.dumps(body))
    assert verdict(tmp_path).confidence == Confidence.LIKELY


def test_corrupt_coco_json_is_still_coco_and_reading_says_why(tmp_path, make_image):
    """A task file that does not parse, inside a zip beside images: coco (LIKELY), not image_zip; a clear error."""
    import zipfile

    doc = "{\x00\x17" + "\x9c" * 50  # an object that breaks at once (e.g. a damaged download)
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("export/annotations/instances_train.json", doc)
        out.writestr("export/images/train/a.jpg", make_image(4, 3, ".jpg"))
    assert verdict(archive).confidence == Confidence.LIKELY
    assert dsformats.detect_format(archive) == "coco"
    with pytest.raises(dsformats.DatasetError, match="instances_train.json"):
        dsformats.convert(archive, tmp_path / "out", "image_zip")
    assert not (tmp_path / "out").exists()
