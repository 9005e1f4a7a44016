"""Chains between the built-in formats: what each hop keeps, and what it reports as dropped."""

from __future__ import annotations

import zipfile

import orjson
import pytest

import dsformats
from dsformats import Bbox, Item, Label, Mask, Media, Polygon


def boxes(path, fmt):
    """{(subset, id): sorted [(label, x, y, w, h)]} of every Bbox."""
    result = {}
    with dsformats.read(path, fmt) as reader:
        for item in reader.items():
            result[(item.subset, item.id)] = sorted(
                (a.label, a.x, a.y, a.w, a.h) for a in item.annotations if isinstance(a, Bbox))
    return result


def test_voc_to_coco_keeps_person_parts_as_their_own_objects(datumaro_fixtures, tmp_path):
    src = datumaro_fixtures / "voc_dataset" / "voc_dataset1"
    dsformats.convert(src, tmp_path / "coco", "coco", source_format="voc")
    doc = orjson.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_bytes())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    labels = sorted(names[a["category_id"]] for a in doc["annotations"])
    assert labels == ["bicycle", "cat", "head", "person"]
    source_boxes = boxes(src, "voc")
    back = boxes(tmp_path / "coco", "coco")
    for key, expected in source_boxes.items():
        assert set(expected) <= set(back[key])  # every VOC box survives; COCO adds the mask's box


def test_voc_coco_voc_keeps_boxes_and_image_bytes(datumaro_fixtures, tmp_path):
    src = datumaro_fixtures / "voc_dataset" / "voc_dataset1"
    dsformats.convert(src, tmp_path / "coco", "coco", source_format="voc", writer_options={"save_images": True})
    dsformats.convert(tmp_path / "coco", tmp_path / "voc", "voc", writer_options={"save_images": True})
    original = boxes(src, "voc")
    final = boxes(tmp_path / "voc", "voc")
    for key, expected in original.items():
        assert set(expected) <= set(final[key])
    for image in (src / "JPEGImages").iterdir():
        assert (tmp_path / "voc" / "JPEGImages" / image.name).read_bytes() == image.read_bytes()


def test_coco_to_voc_detection_counts_dropped_shapes(tmp_path, make_image):
    polygon = Polygon(points=[1, 1, 10, 1, 10, 8], label="dog", group=1, id=1)
    items = [Item(id="a", media=Media.from_bytes(make_image(16, 12, ".png"), ".png"),
                  annotations=[Bbox(x=1, y=1, w=9, h=7, label="dog", group=1, id=1), polygon,
                               Label(label="dog")])]
    dsformats.write(items, tmp_path / "coco", "coco", options={"save_images": True})
    report = dsformats.convert(tmp_path / "coco", tmp_path / "voc", "voc",
                               writer_options={"tasks": "detection", "save_images": True})
    assert report.dropped["polygon"][0] == 1
    assert boxes(tmp_path / "voc", "voc") == {("default", "a"): [("dog", 1, 1, 9, 7)]}
    with pytest.raises(dsformats.DatasetError, match="strict mode.*polygon: 1"):
        dsformats.convert(tmp_path / "coco", tmp_path / "voc2", "voc", writer_options={"tasks": "detection"},
                          strict=True)
    assert not (tmp_path / "voc2").exists()


def test_coco_polygons_become_voc_masks(tmp_path, make_image):
    items = [Item(id="a", media=Media.from_bytes(make_image(20, 16, ".png"), ".png"),
                  annotations=[Bbox(x=2, y=2, w=10, h=10, label="dog", group=1, id=1),
                               Polygon(points=[2, 2, 12, 2, 12, 12, 2, 12], label="dog", group=1, id=1)])]
    dsformats.write(items, tmp_path / "coco", "coco")
    dsformats.convert(tmp_path / "coco", tmp_path / "voc", "voc")
    with dsformats.read(tmp_path / "voc", "voc") as reader:
        (item,) = reader.items()
        masks = [a for a in item.annotations if isinstance(a, Mask)]
        assert masks, "the polygon must be rasterised into the segmentation PNGs"
        bitmap = masks[0].to_bitmap()
        assert bitmap.shape == (16, 20)
        assert bitmap[5, 5] and not bitmap[14, 18]


def test_image_zip_coco_image_zip_keeps_every_byte(tmp_path, make_image):
    payload = {f"d/{n}.jpg": make_image(9, 7, ".jpg", seed=n) for n in range(3)}
    (tmp_path / "zips").mkdir()
    with zipfile.ZipFile(tmp_path / "zips" / "a.zip", "w") as archive:
        for name, data in payload.items():
            archive.writestr(name, data)
    dsformats.convert(tmp_path / "zips", tmp_path / "coco", "coco", writer_options={"save_images": True})
    dsformats.convert(tmp_path / "coco", tmp_path / "back", "image_zip")
    with zipfile.ZipFile(tmp_path / "back" / "default.zip") as archive:
        assert {name: archive.read(name) for name in archive.namelist()} == payload
