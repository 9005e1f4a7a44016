"""CocoWriter: lossless coco->coco, per-task round trips, pycocotools compatibility, ids, modes and CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import dsformats
from dsformats import (
    Bbox,
    Caption,
    Categories,
    Header,
    Item,
    KeypointSchema,
    Label,
    LabelDef,
    Mask,
    Media,
    Points,
    Polygon,
    PolyLine,
    Rle,
)
from dsformats.masks import bitmap_to_rle, compress_counts

FIXTURE_DIRS = ["coco", "coco_instances", "coco_person_keypoints", "coco_captions", "coco_labels",
                "coco_image_info", "coco_panoptic", "coco_stuff"]


def read_items(path, **options):
    with dsformats.read(path, "coco", options=options or None) as reader:
        return reader.header, {(i.subset, i.id): i for i in reader.items()}


def load(path):
    return json.loads(Path(path).read_text())


def panoptic_ids(path):
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


# --------------------------------------------------------------------------------- coco -> coco


@pytest.mark.parametrize("layout", FIXTURE_DIRS)
def test_fixture_round_trip_is_lossless(datumaro_fixtures, tmp_path, layout):
    src = tmp_path / "src"
    shutil.copytree(datumaro_fixtures / "coco_dataset" / layout, src)
    out = tmp_path / "out"
    report = dsformats.convert(src, out, "coco", source_format="coco", writer_options={"save_images": True})
    assert report.lossless and report.media_copied == 2
    written = sorted(p.name for p in (out / "annotations").glob("*.json"))
    assert written == sorted(p.name for p in (src / "annotations").glob("*.json"))
    for name in written:
        assert load(out / "annotations" / name) == load(src / "annotations" / name), name
    for png in (src / "annotations").glob("panoptic_*/*.png"):
        assert (panoptic_ids(out / png.relative_to(src)) == panoptic_ids(png)).all()
    for image in (src / "images").rglob("*.jpg"):
        assert (out / image.relative_to(src)).read_bytes() == image.read_bytes()
    _, before = read_items(src)
    _, after = read_items(out)
    assert before.keys() == after.keys()
    for key, item in before.items():
        assert after[key].annotations == item.annotations
        assert after[key].attributes == item.attributes


@pytest.mark.parametrize("layout", ["coco_roboflow", "mmdet_coco"])
def test_other_layouts_convert_to_default_layout(datumaro_fixtures, tmp_path, layout):
    out = tmp_path / "out"
    dsformats.convert(datumaro_fixtures / "coco_dataset" / layout, out, "coco", source_format="coco",
                      writer_options={"save_images": True})
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["instances_train.json", "instances_val.json"]
    assert (out / "images" / "val" / "b.jpg").is_file()
    val = load(out / "annotations" / "instances_val.json")
    assert [c["id"] for c in val["categories"]] == [1, 2, 4]
    assert [a["id"] for a in val["annotations"]] == [1, 2] and val["images"][0]["id"] == 40


# ------------------------------------------------------------------------------ per-task round trips


@pytest.fixture
def images(tmp_path, make_image):
    folder = tmp_path / "src_images"
    folder.mkdir()
    paths = {}
    for n, (name, w, h) in enumerate([("a", 8, 6), ("sub/b", 5, 7)]):
        path = folder / f"{name.replace('/', '_')}.png"
        path.write_bytes(make_image(w, h, ".png", seed=n + 1))
        paths[name] = (path, (w, h))
    return paths


def media(images, name):
    path, size = images[name]
    return Media.from_file(path, size=size)


LABELS = Categories(
    labels=[LabelDef(name="cat", id=17), LabelDef(name="dog", id=3, parent="animal"), LabelDef(name="person", id=90)],
    keypoints={"person": KeypointSchema(names=["nose", "eye", "ear"], skeleton=[(0, 1), (1, 2)])},
)


def blob(h, w, seed):
    rng = np.random.default_rng(seed)
    bitmap = rng.random((h, w)) < 0.4
    bitmap[0, :] = False
    return bitmap


def instance_items(images):
    crowd = blob(6, 8, 1)
    string_rle = bitmap_to_rle(blob(7, 5, 2))
    string_rle = Rle(size=string_rle.size, counts=compress_counts(list(string_rle.counts)))
    return [
        Item(id="a", subset="train", media=media(images, "a"), attributes={"id": 42}, annotations=[
            Bbox(x=1, y=1.5, w=3, h=2.25, label="cat", id=7, group=7, attributes={"is_crowd": True, "x": 1}),
            Bbox(x=0, y=0, w=8, h=6, label="dog", id=9, group=9),
            Polygon(points=[0, 0, 4, 0, 4, 3], label="dog", id=9, group=9),
            Polygon(points=[5.5, 1, 7, 1, 7, 4.25], label="dog", id=9, group=9),
            Mask(rle=bitmap_to_rle(crowd), label="cat", id=11, group=11, attributes={"is_crowd": True}),
        ]),
        Item(id="sub/b", subset="val", media=media(images, "sub/b"), annotations=[
            Mask(rle=string_rle, label="person", id=3, group=3, attributes={"is_crowd": False, "score": 0.5}),
        ]),
    ]


def write_and_read(items, tmp_path, header=None, name="out", **options):
    out = tmp_path / name
    report = dsformats.write(items, out, "coco", header=header or Header(categories=LABELS),
                             options={"save_images": True, **options})
    return out, report, read_items(out)[1]


def test_instances_round_trip(images, tmp_path):
    items = instance_items(images)
    out, report, back = write_and_read(items, tmp_path)
    assert report.lossless
    a = back[("train", "a")]
    assert a.attributes == {"id": 42}
    assert (out / "images" / "train" / "a.png").read_bytes() == images["a"][0].read_bytes()
    assert (out / "images" / "val" / "sub" / "b.png").read_bytes() == images["sub/b"][0].read_bytes()
    boxes = {b.id: b for b in a.annotations_of(Bbox)}
    assert (boxes[7].x, boxes[7].y, boxes[7].w, boxes[7].h) == (1, 1.5, 3, 2.25)
    assert boxes[7].attributes["is_crowd"] is True and boxes[7].attributes["x"] == 1
    assert [p.points for p in a.annotations_of(Polygon)] == [(0, 0, 4, 0, 4, 3), (5.5, 1, 7, 1, 7, 4.25)]
    (crowd,) = a.annotations_of(Mask)
    assert crowd.rle == items[0].annotations[4].rle and crowd.id == 11
    (string,) = back[("val", "sub/b")].annotations_of(Mask)
    assert string.rle == items[1].annotations[0].rle and string.attributes["score"] == 0.5
    assert (string.to_bitmap() == blob(7, 5, 2)).all()
    doc = load(out / "annotations" / "instances_train.json")
    assert [(c["id"], c["name"], c["supercategory"]) for c in doc["categories"]] == [
        (17, "cat", ""), (3, "dog", "animal"), (90, "person", "")]
    box_only = next(a for a in doc["annotations"] if a["id"] == 7)
    assert box_only["iscrowd"] == 1 and box_only["segmentation"] == [] and box_only["category_id"] == 17


def test_pycocotools_reads_output(images, tmp_path, recwarn):
    from pycocotools.coco import COCO

    warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools' decode under numpy 2; reset by recwarn

    items = instance_items(images) + [Item(id="k", subset="train", media=media(images, "a"), annotations=[
        Points(points=[1, 1, 2, 2, 3, 3], visibility=[2, 1, 0], label="person", id=4, group=4),
        Polygon(points=[1, 1, 6, 1, 6, 5], label="person", id=4, group=4),
    ])]
    out, _, _ = write_and_read(items, tmp_path)
    for name in ("instances_train.json", "instances_val.json", "person_keypoints_train.json"):
        api = COCO(str(out / "annotations" / name))
        assert api.getAnnIds()
    api = COCO(str(out / "annotations" / "instances_train.json"))
    crowd = api.loadAnns([11])[0]
    assert (api.annToMask(crowd).astype(bool) == blob(6, 8, 1)).all()
    val = COCO(str(out / "annotations" / "instances_val.json"))
    assert (val.annToMask(val.loadAnns(val.getAnnIds())[0]).astype(bool) == blob(7, 5, 2)).all()
    kp = COCO(str(out / "annotations" / "person_keypoints_train.json"))
    (ann,) = kp.loadAnns(kp.getAnnIds())
    assert ann["keypoints"] == [1, 1, 2, 2, 2, 1, 3, 3, 0] and ann["num_keypoints"] == 2
    assert kp.loadCats(90)[0]["skeleton"] == [[1, 2], [2, 3]]


def test_keypoints_captions_labels_round_trip(images, tmp_path):
    items = [Item(id="a", subset="default", media=media(images, "a"), annotations=[
        Points(points=[1, 1, 2.5, 2, 3, 3], visibility=[2, 1, 0], label="person", id=4, group=4),
        Bbox(x=0, y=0, w=4, h=4, label="person", id=4, group=4),
        Points(points=[5, 5, 6, 6, 7, 5], visibility=[2, 2, 2], label="person", id=5),
        Caption(caption="a cat, 고양이", id=3),
        Caption(caption="second"),
        Label(label="dog", id=8),
    ])]
    out, report, back = write_and_read(items, tmp_path)
    header, _ = read_items(out)
    assert header.categories.keypoints["person"] == LABELS.keypoints["person"]
    a = back[("default", "a")]
    points = sorted(a.annotations_of(Points), key=lambda p: p.id)
    assert [(p.points, p.visibility, p.id) for p in points] == [
        ((1, 1, 2.5, 2, 3, 3), (2, 1, 0), 4), ((5, 5, 6, 6, 7, 5), (2, 2, 2), 5)]
    assert sorted((c.caption, c.id) for c in a.annotations_of(Caption)) == [("a cat, 고양이", 3), ("second", 1)]
    assert [(lbl.label, lbl.id) for lbl in a.annotations_of(Label)] == [("dog", 8)]
    solitary = next(x for x in load(out / "annotations" / "person_keypoints_default.json")["annotations"]
                    if x["id"] == 5)
    assert solitary["bbox"] == [5, 5, 2, 1] and solitary["segmentation"] == []


def test_image_info_and_empty_images_dir(tmp_path):
    items = [Item(id="x", subset="train", attributes={"id": 3}), Item(id="y", subset="train")]
    out = tmp_path / "out"
    dsformats.write(items, out, "coco", options={"tasks": "image_info"})
    assert (out / "images" / "train").is_dir() and not any((out / "images" / "train").iterdir())
    doc = load(out / "annotations" / "image_info_train.json")
    assert [(i["id"], i["file_name"]) for i in doc["images"]] == [(3, "x.jpg"), (1, "y.jpg")]
    assert doc["categories"] == [] and doc["annotations"] == []


def test_panoptic_and_stuff_round_trip(images, tmp_path):
    first = np.zeros((6, 8), dtype=bool)
    first[1:4, 1:3] = True
    second = np.zeros((6, 8), dtype=bool)
    second[4:, :] = True
    items = [Item(id="a", subset="train", media=media(images, "a"), annotations=[
        Mask(loader=lambda: first, label="cat", id=70000, attributes={"is_crowd": True}),
        Mask(loader=lambda: second, label="dog"),
    ])]
    out, _, back = write_and_read(items, tmp_path, name="pan", tasks="panoptic")
    ids = panoptic_ids(out / "annotations" / "panoptic_train" / "a.png")
    assert (ids[first] == 70000).all() and (ids[second] == 70001).all() and (ids[~(first | second)] == 0).all()
    masks = list(back[("train", "a")].annotations_of(Mask))
    assert [(m.id, m.label, m.attributes["is_crowd"]) for m in masks] == [(70000, "cat", True), (70001, "dog", False)]
    assert (masks[0].to_bitmap() == first).all() and (masks[1].to_bitmap() == second).all()
    out, _, back = write_and_read(items, tmp_path, name="stuff", tasks="stuff")
    masks = list(back[("train", "a")].annotations_of(Mask))
    assert [m.to_bitmap().sum() for m in masks] == [first.sum(), second.sum()]
    assert all(isinstance(a.rle.counts, tuple) for a in masks)


# ------------------------------------------------------------------------------------------ ids


def test_ids_kept_generated_unique_and_reindexed(tmp_path):
    header = Header(categories=Categories(labels=[LabelDef(name="a", id=5)]))
    items = [
        Item(id="p", attributes={"id": 2},
             annotations=[Label(label="a", id=5), Label(label="a"), Label(label="a", id=5)]),
        Item(id="q", annotations=[Label(label="a")]),
        Item(id="r", attributes={"id": 1}, annotations=[Label(label="new")]),
    ]
    report = dsformats.write(items, tmp_path / "keep", "coco", header=header)
    doc = load(tmp_path / "keep" / "annotations" / "labels_default.json")
    assert [i["id"] for i in doc["images"]] == [2, 3, 1]
    ann_ids = [a["id"] for a in doc["annotations"]]
    assert ann_ids == [5, 1, 2, 3, 4]
    assert [(c["id"], c["name"]) for c in doc["categories"]] == [(5, "a"), (1, "new")]
    assert any("'new'" in w for w in report.warnings)
    dsformats.write(items, tmp_path / "re", "coco", header=header, options={"reindex": True})
    doc = load(tmp_path / "re" / "annotations" / "labels_default.json")
    assert [i["id"] for i in doc["images"]] == [1, 2, 3] and [a["id"] for a in doc["annotations"]] == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------------- segmentation


def test_segmentation_modes_keep_thin_masks(tmp_path):
    thin = np.zeros((6, 8), dtype=bool)
    thin[2, 1:7] = True
    thin[0:6, 7] = True
    thin[5, 0] = True
    items = [Item(id="a", media=None, annotations=[
        Mask(rle=bitmap_to_rle(thin), label="cat", id=1, group=1),
        Polygon(points=[0, 0, 3, 0, 3, 3, 0, 3], label="dog", id=2, group=2),
    ])]
    out, _, back = write_and_read(items, tmp_path, name="poly", segmentation_mode="polygons")
    polygons = [p for p in back[("default", "a")].annotations_of(Polygon) if p.label == "cat"]
    from dsformats_coco.geometry import polygons_bitmap

    assert (polygons_bitmap([p.points for p in polygons], 6, 8) == thin).all()
    doc = load(out / "annotations" / "instances_default.json")
    assert all(a["iscrowd"] == 0 for a in doc["annotations"])
    out, _, back = write_and_read(items, tmp_path, name="mask", segmentation_mode="mask")
    masks = {m.label: m for m in back[("default", "a")].annotations_of(Mask)}
    assert (masks["cat"].to_bitmap() == thin).all()
    assert masks["dog"].to_bitmap().sum() == 9 and masks["dog"].attributes["is_crowd"] is True


def test_drops_are_reported(tmp_path):
    items = [Item(id="a", annotations=[PolyLine(points=[0, 0, 1, 1], label="cat"), Caption(caption="c")])]
    report = dsformats.write(items, tmp_path / "out", "coco", header=Header(categories=LABELS),
                             options={"tasks": "instances"})
    assert report.dropped["polyline"][0] == 1 and report.dropped["caption"][0] == 1
    assert not (tmp_path / "out" / "annotations" / "captions_default.json").exists()


def test_alias_presets_tasks(datumaro_fixtures, tmp_path):
    out = tmp_path / "out"
    dsformats.convert(datumaro_fixtures / "coco_dataset" / "coco", out, "coco_captions", source_format="coco")
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["captions_train.json", "captions_val.json"]


# ---------------------------------------------------------------------------------------- CLI


def run_cli(*args):
    result = subprocess.run([sys.executable, "-m", "dsformats", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return result


def test_cli_image_zip_to_coco_and_back(datumaro_fixtures, tmp_path):
    import zipfile

    zips = tmp_path / "zips"
    shutil.copytree(datumaro_fixtures / "image_zip_dataset", zips)
    run_cli("convert", "-if", "image_zip", "-i", str(zips), "-f", "coco", "-o", str(tmp_path / "out"), "--",
            "--save-images")
    doc = load(tmp_path / "out" / "annotations" / "image_info_default.json")
    names = sorted(i["file_name"] for i in doc["images"])
    originals = {}
    for archive in sorted(zips.glob("*.zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                originals[info.filename] = z.read(info)
    assert names == sorted(originals)
    for name, data in originals.items():
        assert (tmp_path / "out" / "images" / "default" / name).read_bytes() == data
    run_cli("convert", "-if", "coco", "-i", str(tmp_path / "out"), "-f", "image_zip", "-o", str(tmp_path / "back"))
    with zipfile.ZipFile(tmp_path / "back" / "default.zip") as z:
        assert {n: z.read(n) for n in z.namelist()} == originals


def test_unknown_category_keys_survive_coco_to_coco(tmp_path, make_image):
    src = tmp_path / "src"
    (src / "annotations").mkdir(parents=True)
    (src / "images" / "train").mkdir(parents=True)
    (src / "images" / "train" / "a.png").write_bytes(make_image(10, 10, ".png"))
    categories = [{"id": 3, "name": "cat", "supercategory": "animal", "color": [1, 2, 3], "frequency": "f"},
                  {"id": 7, "name": "dog", "supercategory": "animal"}]
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0}],
           "categories": categories}
    (src / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    dsformats.convert(src, tmp_path / "out", "coco")
    written = json.loads((tmp_path / "out" / "annotations" / "instances_train.json").read_text())
    assert written["categories"] == categories
