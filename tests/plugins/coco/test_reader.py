"""CocoReader: every Datumaro fixture layout and task, merging, and errors naming file and JSON path."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import dsformats
from dsformats import Bbox, Caption, DatasetError, Label, Mask, Points, Polygon, Rle


def read_all(path, **options):
    with dsformats.read(path, "coco", options=options or None) as reader:
        return reader.header, {(i.subset, i.id): i for i in reader.items()}


def kinds(item):
    return [a.kind for a in item.annotations]


@pytest.fixture
def coco(datumaro_fixtures) -> Path:
    return datumaro_fixtures / "coco_dataset"


@pytest.mark.parametrize("layout", ["coco_instances", "coco_roboflow", "mmdet_coco", "coco"])
def test_instances_layouts(coco, layout):
    header, items = read_all(coco / layout)
    assert [(lbl.name, lbl.id) for lbl in header.categories.labels][:3] == [("a", 1), ("b", 2), ("c", 4)]
    assert header.subsets == ("train", "val")
    a, b = items[("train", "a")], items[("val", "b")]
    assert a.attributes["id"] == 5 and b.attributes["id"] == 40
    assert a.media.known_size == (10, 5) and b.media.known_size == (5, 10)
    assert Path(a.media.path).read_bytes()[:2] == b"\xff\xd8"
    box = next(a.annotations_of(Bbox))
    assert (box.x, box.y, box.w, box.h, box.label, box.id, box.group) == (2.0, 2.0, 3.0, 1.0, "b", 1, 1)
    assert box.attributes["is_crowd"] is False
    poly = next(b.annotations_of(Polygon))
    assert poly.points == (0.0, 0.0, 1.0, 0.0, 1.0, 2.0, 0.0, 2.0) and poly.label == "a" and poly.id == 1
    assert poly.attributes["x"] == 1 and poly.attributes["y"] == "hello"
    crowd = [m for m in b.annotations_of(Mask) if m.rle is not None and m.attributes.get("coco_task") is None]
    assert crowd[0].rle == Rle(size=(10, 5), counts=(0, 20, 30)) and crowd[0].attributes["is_crowd"] is True
    bitmap = crowd[0].to_bitmap()
    assert bitmap.shape == (10, 5) and bitmap[:, 2:].sum() == 0 and bitmap[:, :2].all()


def test_mmdet_and_roboflow_image_dirs(coco):
    _, items = read_all(coco / "mmdet_coco")
    assert Path(items[("val", "b")].media.path) == coco / "mmdet_coco" / "val" / "b.jpg"
    _, items = read_all(coco / "coco_roboflow")
    assert Path(items[("train", "a")].media.path) == coco / "coco_roboflow" / "train" / "a.jpg"


def test_single_json_file_and_images_dir_option(coco, tmp_path):
    _, items = read_all(coco / "coco_instances" / "annotations" / "instances_val.json")
    assert list(items) == [("val", "b")]
    assert Path(items[("val", "b")].media.path) == coco / "coco_instances" / "images" / "val" / "b.jpg"
    copy = tmp_path / "whatever.json"
    shutil.copy(coco / "coco_instances" / "annotations" / "instances_val.json", copy)
    _, items = read_all(copy, images_dir=str(tmp_path / "imgs"))
    assert list(items) == [("default", "b")]
    assert Path(items[("default", "b")].media.path) == tmp_path / "imgs" / "b.jpg"


def test_keypoints(coco):
    header, items = read_all(coco / "coco_person_keypoints")
    assert header.categories.keypoints["a"].skeleton == ((0, 1), (1, 2))
    points = next(items[("train", "a")].annotations_of(Points))
    assert points.points == (0, 0, 0, 2, 4, 1) and points.visibility == (0, 1, 2) and points.label == "b"
    b = items[("val", "b")]
    pts = list(b.annotations_of(Points))
    assert [p.visibility for p in pts] == [(2, 2, 2), (2, 2, 2)]
    assert pts[0].points == (1, 2, 3, 4, 2, 3) and pts[0].group == next(b.annotations_of(Polygon)).group


def test_captions_labels_image_info(coco):
    _, items = read_all(coco / "coco_captions")
    assert [(c.caption, c.id) for c in items[("val", "b")].annotations_of(Caption)] == [("world", 1), ("text", 2)]
    _, items = read_all(coco / "coco_labels")
    assert [(lbl.label, lbl.id) for lbl in items[("val", "b")].annotations_of(Label)] == [("a", 1), ("b", 2)]
    header, items = read_all(coco / "coco_image_info")
    assert header.categories.labels == ()
    assert items[("train", "a")].annotations == () and items[("train", "a")].attributes == {"id": 5}


def test_panoptic(coco):
    _, items = read_all(coco / "coco_panoptic")
    masks = list(items[("val", "b")].annotations_of(Mask))
    assert [(m.id, m.label, m.attributes["is_crowd"], m.attributes["isthing"]) for m in masks] == [
        (7, "a", False, 0), (20, "b", True, 0)]
    first, second = (m.to_bitmap() for m in masks)
    assert first.shape == (10, 5) and first[:, :2].all() and first.sum() == 20
    assert second[:, 2:4].all() and second.sum() == 20
    (big,) = items[("train", "a")].annotations_of(Mask)
    assert big.id == 460551 and big.to_bitmap().all()


def test_stuff(coco):
    _, items = read_all(coco / "coco_stuff")
    (mask,) = items[("train", "a")].annotations_of(Mask)
    assert mask.rle == Rle(size=(5, 10), counts=(10, 10, 5, 10, 15)) and mask.label == "a" and mask.id == 7
    assert mask.attributes["coco_task"] == "stuff"
    assert mask.to_bitmap().sum() == 20


def test_all_tasks_merge_into_one_item(coco):
    header, items = read_all(coco / "coco")
    assert len(items) == 2 and header.size_hint == 2
    b = items[("val", "b")]
    assert sorted(set(kinds(b))) == ["bbox", "caption", "label", "mask", "points", "polygon"]
    # keypoints joined the instances objects with the same annotation id instead of duplicating them
    assert len(list(b.annotations_of(Polygon))) == 1
    groups = {a.group for a in b.annotations if a.group}
    assert len(groups) == len(set(groups))


def test_tasks_option_restricts(coco):
    _, items = read_all(coco / "coco", tasks="captions")
    assert set(kinds(items[("val", "b")])) == {"caption"}


# ------------------------------------------------------------------------------------------ errors


def base_doc():
    return {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 3}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0}],
    }


def write_doc(tmp_path, doc, name="instances_train.json"):
    (tmp_path / "annotations").mkdir(exist_ok=True)
    path = tmp_path / "annotations" / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return tmp_path


def broken(tmp_path, doc, name="instances_train.json"):
    root = write_doc(tmp_path, doc, name)
    with pytest.raises(DatasetError) as info:
        read_all(root)
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["annotations"][0].pop("image_id"), "annotations[0]: missing key 'image_id'"),
        (lambda d: d["annotations"][0].pop("id"), "annotations[0]: missing key 'id'"),
        (lambda d: d["annotations"][0].pop("category_id"), "annotations[0]: missing key 'category_id'"),
        (lambda d: d["images"][0].pop("file_name"), "images[0]: missing key 'file_name'"),
        (lambda d: d.pop("images"), "missing top-level key 'images'"),
        (lambda d: d["categories"][0].pop("name"), "categories[0]: missing key 'name'"),
        (lambda d: d["annotations"][0].update(bbox="1,2,3,4"), "annotations[0].bbox"),
        (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "annotations[0].bbox"),
        (lambda d: d["annotations"][0].update(image_id=9), "annotations[0].image_id: unknown image id 9"),
        (lambda d: d["annotations"][0].update(category_id=3), "annotations[0].category_id: unknown category"),
        (lambda d: d["annotations"][0].update(segmentation=[[1, 2, 3, 4]]), "annotations[0].segmentation[0]"),
        (lambda d: d["annotations"][0].update(segmentation={"size": [2, 2], "counts": [4]}),
         "annotations[0].segmentation.size"),
        (lambda d: d["images"][0].update(id="q"), "images[0].id"),
        (lambda d: d["images"][0].update(file_name="../x.jpg"), "images[0].file_name"),
    ],
)
def test_errors_name_file_and_json_path(tmp_path, mutate, where):
    doc = base_doc()
    mutate(doc)
    message = broken(tmp_path, doc)
    assert "instances_train.json" in message and where in message


def test_truncated_json(tmp_path):
    text = json.dumps(base_doc())[:-30]
    message = broken(tmp_path, text)
    assert "instances_train.json" in message and "JSON" in message


def test_truncated_large_file_is_reported_by_scan(tmp_path, monkeypatch):
    from dsformats_coco import jsonindex

    monkeypatch.setattr(jsonindex, "_VALIDATE_LIMIT", 0)
    message = broken(tmp_path, json.dumps(base_doc())[:-30])
    assert "instances_train.json" in message and "truncated" in message


def test_panoptic_png_mismatch(tmp_path, make_image):
    import io

    import numpy as np
    from PIL import Image

    doc = base_doc()
    doc["annotations"] = [{"image_id": 1, "file_name": "a.png", "segments_info": [
        {"id": 5, "category_id": 1, "iscrowd": 0}]}]
    root = write_doc(tmp_path, doc, "panoptic_train.json")
    png = np.zeros((3, 4, 3), dtype=np.uint8)
    png[0, 0] = (6, 0, 0)
    (root / "annotations" / "panoptic_train").mkdir()
    out = io.BytesIO()
    Image.fromarray(png, "RGB").save(out, format="PNG")
    (root / "annotations" / "panoptic_train" / "a.png").write_bytes(out.getvalue())
    with dsformats.read(root, "coco") as reader:
        (item,) = reader.items()
        (mask,) = item.annotations
        with pytest.raises(DatasetError, match=r"panoptic_train.json: annotations\[0\].segments_info\[0\]"):
            mask.to_bitmap()


def test_duplicate_category_names_are_kept_apart(tmp_path, caplog):
    doc = base_doc()
    doc["categories"] = [{"id": 0, "name": "fish", "supercategory": "none"}, {"id": 1, "name": "fish"}]
    root = write_doc(tmp_path, doc)
    header, items = read_all(root)
    assert [(lbl.name, lbl.id) for lbl in header.categories.labels] == [("fish", 0), ("fish_1", 1)]
    assert next(items[("train", "a")].annotations_of(Bbox)).label == "fish_1"
    assert "duplicate category name" in caplog.text


def test_bom_unknown_keys_and_float_ints(tmp_path):
    doc = base_doc()
    doc["type"] = "instances"
    doc["images"][0]["width"] = 4.0
    doc["annotations"][0]["extra_key"] = [1]
    root = write_doc(tmp_path, "\ufeff" + json.dumps(doc))
    header, items = read_all(root)
    item = items[("train", "a")]
    assert item.media.known_size == (4, 3)
    assert next(item.annotations_of(Bbox)).attributes["extra_key"] == [1]
    assert header.infos["coco"]["files"]["instances_train"]["extra"] == {"type": "instances"}


def test_json_index_fast_skips_match_the_token_scan(tmp_path, monkeypatch):
    import orjson
    from dsformats_coco import jsonindex

    deep = {"a": [[[[[[1, {"b": "]}"}]]]]]]}  # deeper than the one-match skip: falls back to tokens
    doc = {
        "info": {"x": "} ] \" {"},
        "images": [{"id": 1, "file_name": "a\\\"[.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "segmentation": [[1, 2, 3, 4, 5, 6]], "note": "[{\"}"},
            deep,
            "text ]",
            {"id": 2, "segmentation": {"size": [2, 2], "counts": "0]1"}},
        ],
        "categories": [],
    }
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def index():
        json = jsonindex.JsonFile(path, "a.json")
        try:
            elements = [json.element(i) for i in range(len(json))]
            return dict(json.spans), elements, {k: json.section(k) for k in json.keys}
        finally:
            json.close()

    fast = index()
    monkeypatch.setattr(jsonindex, "_element_pattern", lambda: None)
    assert fast == index()
    assert fast[1] == doc["annotations"]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [False, True])
def test_json_index_vectorised_list_scan_matches_the_token_scan(tmp_path, monkeypatch, chunk, indent):
    import orjson
    from dsformats_coco import jsonindex

    tricky = ['\\', '\\"', '"', '\\\\"]', "[{", "}]", "a\\\\", "\\\\\\"]  # backslash runs before quotes
    doc = {
        "info": {"x": "} ] \" {"},
        "annotations": [
            *({"id": i, "note": text, "segmentation": [[1, 2, 3, 4, 5, 6]], "deep": [[[[[[{"k": text}]]]]]]}
              for i, text in enumerate(tricky)),
            [],
            {"attributes": {}, "counts": "0]1"},
        ],
        "categories": [],
    }
    path = tmp_path / "a.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2 if indent else 0))
    monkeypatch.setattr(jsonindex, "_CHUNK", chunk)

    def index():
        json = jsonindex.JsonFile(path, "a.json")
        try:
            return dict(json.spans), list(json.starts), list(json.ends), [json.element(i) for i in range(len(json))]
        finally:
            json.close()

    calls = []
    real = jsonindex.JsonFile._scan_list
    monkeypatch.setattr(jsonindex.JsonFile, "_scan_list", lambda self, start: calls.append(start) or real(self, start))
    fast = index()
    assert calls and fast[3] == doc["annotations"]
    monkeypatch.setattr(jsonindex.JsonFile, "_scan_list", lambda self, start: None)  # the token loop only
    assert fast == index()


@pytest.mark.parametrize(
    "annotations", ['[1, {"a": 1}]', '[{"a": 1}, "x"]', '[{"a": 1},, {"b": 2}]', "[]", '[{"a": [1]}']
)
def test_json_index_vectorised_scan_leaves_odd_lists_to_the_token_scan(tmp_path, annotations):
    from dsformats_coco import jsonindex

    path = tmp_path / "a.json"
    path.write_text('{"images": [], "annotations": ' + annotations + "}")
    json = jsonindex.JsonFile.__new__(jsonindex.JsonFile)
    json.name, json.list_key, json.spans = "a.json", "annotations", {}
    json.starts, json.ends = jsonindex.array("q"), jsonindex.array("q")
    json._data = path.read_bytes()
    start = json._data.index(b"[", json._data.index(b"annotations")) + 1
    result = json._scan_list(start)
    if annotations == "[]":
        assert result == len(json._data) - 1 and not len(json.starts)
    else:
        assert result is None and not len(json.starts)


# ------------------------------------------------------------------ targets that store no annotations


def _keypoint_doc():
    """Instances joined with person keypoints, an unjoined keypoint object, empty polygon parts, an RLE."""
    doc = base_doc()
    doc["images"][0].update(width=4, height=3)
    doc["categories"] = [{"id": 1, "name": "person", "keypoints": ["a", "b"], "skeleton": [[1, 2]]}]
    doc["annotations"] = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "segmentation": [[0, 0, 1, 0, 1, 1], []]},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [], "iscrowd": 1,
         "segmentation": {"size": [3, 4], "counts": [12]}},
        {"id": 3, "image_id": 1, "category_id": 1, "segmentation": [0, 0, 2, 0, 2, 2, 0, 2]},
    ]
    keypoints = dict(doc, annotations=[
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "keypoints": [1, 1, 2, 0, 0, 0]},
        {"id": 9, "image_id": 1, "category_id": 1, "bbox": [1, 1, 1, 1], "segmentation": [[0, 0, 1, 0, 1, 1]],
         "keypoints": [1, 1, 1, 2, 2, 2]},
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "keypoints": []},
    ])
    return doc, keypoints


def _reports_both_ways(src, tmp_path):
    """The report of a conversion to image_zip, and of writing the same items built in full beforehand."""
    counted = dsformats.convert(src, tmp_path / "counted", "image_zip", source_format="coco", skip_bad_items=True)
    with dsformats.read(src, "coco") as reader:
        built = list(reader.items())  # read outside a conversion: every annotation is built
        full = dsformats.write(built, tmp_path / "full", "image_zip", header=reader.header, skip_bad_items=True)
    return counted, full, built


#: Layouts whose every element the index checks (instances files): their items' annotations are never built
#: for a target that stores none. The others' are built and checked as for any target, then counted.
_INDEX_CHECKED = {"coco_instances", "coco_roboflow", "mmdet_coco", "coco_image_info"}


@pytest.mark.parametrize(
    "layout", ["coco", "coco_instances", "coco_person_keypoints", "coco_captions", "coco_labels", "coco_panoptic",
               "coco_stuff", "coco_roboflow", "mmdet_coco", "coco_image_info"],
)
def test_image_zip_target_counts_annotations_as_a_full_read_gives_them(coco, layout, tmp_path, monkeypatch):
    with dsformats.read(coco / layout, "coco") as reader:  # the expected counts, from built annotations
        expected: dict[str, int] = {}
        for item in reader.items():
            for ann in item.annotations:
                expected[ann.kind] = expected.get(ann.kind, 0) + 1
    if layout in _INDEX_CHECKED:
        def built(*_args, **_kwargs):
            raise AssertionError("an annotation the index checked was built for a target that stores none")

        monkeypatch.setattr("dsformats_coco.reader.CocoReader._convert", built)
        monkeypatch.setattr("dsformats_coco.reader._Deferred.build", built)
    report = dsformats.convert(coco / layout, tmp_path / "out", "image_zip", source_format="coco")
    assert {kind: count for kind, (count, _) in report.dropped.items() if kind in expected} == expected
    assert all(reason == f"image_zip cannot store {kind} annotations"
               for kind, (_, reason) in report.dropped.items() if kind in expected)
    assert sum(report.items_written.values()) > 0


@pytest.mark.parametrize("task", ["instances", "person_keypoints"])
def test_a_bad_annotation_spoils_its_item_whatever_the_target_stores(tmp_path, make_image, task):
    """A target that stores no annotations (image_zip) still has them checked: the same error, or under
    --skip-bad-items the same item skipped, as a target that stores them."""
    images = [{"id": i, "file_name": f"{name}.jpg", "width": 4, "height": 3} for i, name in enumerate("abc", 1)]
    annotations = [{"id": i, "image_id": i, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0,
                    "segmentation": [[0, 0, 2, 0, 2, 2]]} for i in (1, 2, 3)]
    annotations[1]["segmentation"] = [[0, 0, 2, 0, 2]]  # an odd number of coordinates, on image b
    if task == "person_keypoints":  # elements the index leaves to the full path (keypoints)
        for ann in annotations:
            ann["keypoints"] = [1, 1, 2]
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "person", "keypoints": ["nose"], "skeleton": []}]}
    (tmp_path / "src").mkdir()
    root = write_doc(tmp_path / "src", doc, f"{task}_train.json")
    (root / "images" / "train").mkdir(parents=True)
    for seed, name in enumerate("abc"):
        (root / "images" / "train" / f"{name}.jpg").write_bytes(make_image(4, 3, ".jpg", seed=seed))
    message = f"annotations/{task}_train.json: annotations[1].segmentation[0]: a polygon needs an even number"
    for target in ("image_zip", "voc"):
        with pytest.raises(DatasetError, match=re.escape(message)):
            dsformats.convert(root, tmp_path / f"{target}-strict", target, source_format="coco")
    reports = {target: dsformats.convert(root, tmp_path / target, target, source_format="coco", skip_bad_items=True)
               for target in ("image_zip", "voc")}
    for report in reports.values():
        assert len(report.skipped) == 1 and report.skipped[0].startswith(message)
        assert dict(report.items_written) == {"train": 2}
    with zipfile.ZipFile(tmp_path / "image_zip" / "default.zip") as archive:
        assert archive.namelist() == ["a.jpg", "c.jpg"]
        assert archive.read("c.jpg") == (root / "images" / "train" / "c.jpg").read_bytes()
    assert sorted(p.name for p in (tmp_path / "voc" / "Annotations").iterdir()) == ["a.xml", "c.xml"]
    assert reports["image_zip"].dropped["polygon"][0] == 2


def test_image_zip_target_counts_joined_keypoints_like_the_full_path(tmp_path, make_image):
    doc, keypoints = _keypoint_doc()
    (tmp_path / "src").mkdir()
    root = write_doc(tmp_path / "src", doc, "instances_train.json")
    write_doc(root, keypoints, "person_keypoints_train.json")
    (root / "images" / "train").mkdir(parents=True)
    (root / "images" / "train" / "a.jpg").write_bytes(make_image(4, 3, ".jpg", seed=3))
    counted, full, built = _reports_both_ways(root, tmp_path)
    assert counted.dropped == full.dropped
    assert {k: n for k, (n, _) in counted.dropped.items()} == {
        "bbox": 3, "polygon": 3, "mask": 1, "points": 2, "item attribute": 1, "keypoint schema": 1,
        "label definition": 1,
    }
    assert len(built) == 1 and sorted(kinds(built[0])) == sorted(
        ["bbox"] * 3 + ["polygon"] * 3 + ["mask"] + ["points"] * 2
    )
    with zipfile.ZipFile(tmp_path / "counted" / "default.zip") as archive:
        assert archive.read("a.jpg") == (root / "images" / "train" / "a.jpg").read_bytes()


def test_stored_kinds_is_the_targets_during_a_write_only():
    seen = []

    def items():
        seen.append(dsformats.stored_kinds())
        yield from ()

    assert dsformats.stored_kinds() is None
    with pytest.raises(RuntimeError):
        dsformats.not_stored("bbox")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        dsformats.write(items(), Path(tmp) / "z", "image_zip")
        dsformats.write(items(), Path(tmp) / "v", "voc")
    assert seen[0] == frozenset()
    assert seen[1] == dsformats.default_registry().writer_format("voc")[0].spec.annotation_kinds


def _mapped_rss_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if line[:1] in "0123456789abcdef" and "-" in line.split(" ", 1)[0]:
            inside = line.endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc/self/smaps")
def test_json_index_keeps_only_recently_read_pages_resident(tmp_path, monkeypatch):
    import orjson
    from dsformats_coco import jsonindex

    monkeypatch.setattr(jsonindex, "_DROP_EVERY", 1000)
    annotations = [{"id": i, "image_id": 1, "segmentation": [[i, 2.5, 3, 4, 5, 6] * 60]} for i in range(20_000)]
    path = tmp_path / "big.json"
    path.write_bytes(orjson.dumps({"images": [], "annotations": annotations}))
    size_kb = path.stat().st_size // 1024
    assert size_kb > 20_000
    json = jsonindex.JsonFile(path, "big.json")
    try:
        assert _mapped_rss_kb(path) < size_kb // 20  # scanned, then released
        peak = 0
        for i in range(len(json)):
            assert json.element(i)["id"] == i
            if i % 500 == 0:
                peak = max(peak, _mapped_rss_kb(path))
        assert 0 < peak < size_kb // 4  # the pages of about 1000 elements at a time, never the whole file
    finally:
        json.close()


def test_instances_items_get_deferred_annotations_counted_at_index_time(coco, tmp_path):
    import pickle

    with dsformats.read(coco / "coco_instances", "coco") as reader:
        items = list(reader.items())
        sources = [item.deferred for item in items]
        assert all(s is not None and s.format == "coco" for s in sources)
        assert [s.kinds() for s in sources] == [{"bbox": 1}, {"bbox": 2, "polygon": 1, "mask": 1}]
        shard = reader.shard_reader(reader.shards(2)[1].key)
    # kept after the reader closed: built when it closed, as the tuple the full parse gives
    assert [kinds(i) for i in items] == [["bbox"], ["bbox", "polygon", "bbox", "mask"]]
    assert [item.deferred.kinds() for item in items] == [
        {k: kinds(i).count(k) for k in dict.fromkeys(kinds(i))} for i in items]
    shipped = pickle.loads(pickle.dumps(shard))  # a scale-out worker gets the index, not a reopened file
    with shipped:
        (item,) = list(shipped.items())
        assert item.deferred is not None and item == items[1]


def test_a_shard_of_a_zipped_file_carries_its_annotations_and_does_not_read_the_file_again(coco, tmp_path,
                                                                                          monkeypatch):
    """A worker would read (inflate) the whole JSON member again for every shard: a shard reader of a file inside
    an archive pickles its own elements' bytes instead, and gives the same items."""
    import pickle

    from dsformats_coco import jsonindex

    archive = tmp_path / "coco.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for path in sorted((coco / "coco_instances").rglob("*")):
            if path.is_file():
                out.write(path, path.relative_to(coco / "coco_instances").as_posix())
    with dsformats.read(coco / "coco_instances", "coco") as plain:
        expected = list(plain.items())
    shipped = []
    with dsformats.read(archive, "coco") as reader:
        for shard in reader.shards(2):
            shipped.append(pickle.dumps(reader.shard_reader(shard.key)))
        whole = bytes(reader._sources[0].json._data)
    monkeypatch.setattr(jsonindex, "_load", lambda *args: pytest.fail("the JSON file was read again"))
    items = []
    for data in shipped:
        view = pickle.loads(data)._sources[0].json
        assert len(view._data) < len(whole)  # only its own elements' bytes
        parsed = view.elements(view.indexes.tolist())
        view.close()  # they cannot be read again: kept
        assert view.elements(view.indexes.tolist()) == parsed
        # pickled again where it was unpickled (as a Dask worker may): the elements go along
        with pickle.loads(pickle.dumps(pickle.loads(data))) as shard:
            items += [(i.subset, i.id, i.annotations, i.attributes, i.media.read_bytes()) for i in shard.items()]
    assert len(items) == 2
    assert items == [(i.subset, i.id, i.annotations, i.attributes, i.media.read_bytes()) for i in expected]


def test_unusual_annotations_are_built_when_read_and_fail_as_before(tmp_path):
    root = tmp_path / "c"
    (root / "annotations").mkdir(parents=True)
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "segmentation": []},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [0, 0, 1, "x"]}]
    data = {"categories": [{"id": 1, "name": "a"}], "annotations": anns,
            "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}]}
    (root / "annotations" / "instances_default.json").write_text(json.dumps(data))
    with dsformats.read(root, "coco") as reader, pytest.raises(DatasetError, match=r"annotations\[1\]\.bbox"):
        for item in reader.items():
            assert item.deferred is not None and kinds(item) == ["bbox"]  # the first one only
    report = dsformats.convert(root, tmp_path / "o", "coco", source_format="coco", skip_bad_items=True)
    assert report.items_read == {"default": 1} and len(report.skipped) == 1


def _with_metadata(coco: Path, tmp_path: Path) -> Path:
    """coco_instances with a real ``info``, licenses (one a placeholder), an extra top-level key and an LVIS field."""
    root = tmp_path / "meta"
    shutil.copytree(coco / "coco_instances", root)
    for subset, license in [("train", {"id": 1, "name": "CC BY 4.0", "url": "https://x/by"}),
                            ("val", {"id": 2, "name": "CC0", "url": ""})]:
        path = root / "annotations" / f"instances_{subset}.json"
        data = json.loads(path.read_text())
        data["info"] = {"description": "street scenes", "year": 2024, "url": ""}  # the same in both files
        data["licenses"] = [license, {"id": 0, "name": "", "url": ""}]
        data["type"] = "instances"
        data["categories"][0]["frequency"] = "f"
        path.write_text(json.dumps(data))
    return root


def test_dataset_metadata_is_counted_and_reported_when_the_target_drops_it(coco, tmp_path):
    from dsformats.scaleout import convert_distributed

    src = _with_metadata(coco, tmp_path)
    header, _ = read_all(src)
    assert header.metadata_format == "coco"
    assert header.metadata == {"coco info": 1, "coco license": 2, "coco top-level key": 1, "coco category field": 1}
    shown = subprocess.run([sys.executable, "-m", "dsformats", "info", str(src)], capture_output=True, text=True)
    assert "dataset metadata: coco info: 1, coco license: 2, coco top-level key: 1, coco category field: 1" in (
        shown.stdout)
    # Datumaro's placeholders (empty info, a license of id 0 with no name) say nothing: nothing to report
    assert read_all(coco / "coco_instances")[0].metadata == {}

    expected = {"coco info": 1, "coco license": 2, "coco top-level key": 1, "coco category field": 1}
    reason = "only a coco writer keeps it"
    report = dsformats.convert(src, tmp_path / "voc", "voc", source_format="coco")
    dropped = {kind: entry for kind, entry in report.dropped.items() if kind.startswith("coco")}
    assert dropped == {kind: [count, reason] for kind, count in expected.items()}
    # sharded (into image_zip, whose merge takes these partials): the client reports it once, not per shard
    report = convert_distributed(src, tmp_path / "zip", "image_zip", source_format="coco", engine="processes",
                                 shards=2)
    assert not report.warnings  # not the single-process fallback
    assert {k: v[0] for k, v in report.dropped.items() if k.startswith("coco")} == expected
    with pytest.raises(DatasetError, match=r"strict mode: .*coco info: 1 \(only a coco writer keeps it\)"):
        convert_distributed(src, tmp_path / "zip-strict", "image_zip", source_format="coco", engine="processes",
                            shards=2, strict=True)
    assert not (tmp_path / "zip-strict").exists()
    with pytest.raises(DatasetError, match="coco license: 2"):
        dsformats.convert(src, tmp_path / "strict", "voc", source_format="coco", strict=True)
    assert not (tmp_path / "strict").exists()

    report = dsformats.convert(src, tmp_path / "coco", "coco", source_format="coco")  # kept: nothing dropped
    assert not any(kind.startswith("coco") for kind in report.dropped)
    written = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert written["info"]["description"] == "street scenes" and written["licenses"][0]["name"] == "CC BY 4.0"
    assert written["type"] == "instances" and written["categories"][0]["frequency"] == "f"


def test_image_records_read_the_same_with_or_without_the_common_case_path(tmp_path, monkeypatch):
    """The image records of the common case skip the full checks; every record, odd or bad, reads as the full
    path reads it: the same items, sizes, attributes and annotations, the same skipped records and errors."""
    from dsformats_coco.reader import CocoReader

    from dsformats.policy import reporting

    doc = base_doc()
    doc["images"] = [
        {"id": 1, "file_name": "a.jpg", "width": 4, "height": 3},
        {"id": 2, "file_name": "b.jpg", "width": 0, "height": 3},  # no size
        {"id": 3, "file_name": "c.jpg", "width": 4, "height": 3, "license": 2},  # an extra key
        {"id": 4, "file_name": "d.jpg", "width": 4.0, "height": 3},  # a float
        {"id": 5, "file_name": "./sub//e.jpg", "width": 4, "height": 3},  # a name to normalise
        {"id": 6, "file_name": "a.jpg", "width": 4, "height": 3},  # the same image again, under another id
        {"id": 1, "file_name": "f.jpg", "width": 4, "height": 3},  # a repeated id
        {"id": 7, "file_name": "g.jpg", "width": True, "height": 3},  # a bool
        {"id": 8, "file_name": "a.png", "width": 4, "height": 3},  # the item id of a.jpg
        {"id": 9, "file_name": "../h.jpg", "width": 4, "height": 3},  # escapes
        {"id": "10", "file_name": "i.jpg", "width": 4, "height": 3},  # a string id
        {"id": 11, "file_name": 5, "width": 4, "height": 3},  # a number for a name
        {"id": 12, "file_name": "j.jpg", "width": 10**20, "height": 3},  # no image is that wide
        {"id": 13, "file_name": "k.jpg", "width": -3, "height": -2},
    ]
    doc["annotations"] = [{"id": k, "image_id": image_id, "category_id": 1, "bbox": [0, 0, k, 1], "iscrowd": 0}
                          for k, image_id in enumerate([1, 2, 3, 4, 5, 6], 1)]
    root = write_doc(tmp_path, doc)

    def read() -> tuple:
        with reporting(report := dsformats.Report(), skip_bad_items=True):
            _, items = read_all(root)
        return ([(key, item.media.name, item.media.known_size, item.attributes,
                  [(a.id, a.x, a.y, a.w, a.h) for a in item.annotations_of(Bbox)]) for key, item in items.items()],
                report.skipped, report.warnings)

    fast = read()
    monkeypatch.setattr(CocoReader, "_plain_image", lambda self, *args: False)
    assert read() == fast
    items, skipped, warnings = fast
    assert [key for key, *_ in items] == [("train", name) for name in ("a", "b", "c", "d", "sub/e", "j", "k")]
    assert items[5][2] is None and items[6][2] is None  # unknown: the image's header gives it when needed
    assert warnings == [
        f"annotations/instances_train.json: images[{i}]: width {w} and height {h} are not an image size; ignored "
        "(the image's own header gives its size where it is needed)" for i, w, h in [(12, 1e20, 3), (13, -3, -2)]]
    assert items[0][2] == (4, 3) and items[1][2] is None and items[2][3]["license"] == 2
    assert [box[0] for box in items[0][4]] == [1, 6]  # image 6 is a.jpg again: its box joins item a
    assert len(skipped) == 6 and "duplicate image id 1" in skipped[0] and "would both be item 'a'" in skipped[2]


def test_split_name_is_posix_splitext_with_a_lower_case_suffix():
    import posixpath
    import random

    from dsformats_coco.schema import split_name

    rng = random.Random(1)
    names = ["a.JPG", "a/b.Png", ".h", "a/.h", "..a.b", "a/..b.png", "a.", ".", "..", "a.b/c", "a..b", ".a.b"]
    names += ["".join(rng.choice("./ab") for _ in range(rng.randint(1, 7))) for _ in range(5000)]
    for name in names:
        stem, suffix = posixpath.splitext(name)
        assert split_name(name) == (stem, suffix.lower()), name
    assert split_name("d/IMG.0001.JPEG") == ("d/IMG.0001", ".jpeg")


def test_planned_media_are_each_shards_images(tmp_path):
    """What a shard reader predicts for placed scale-out parts (dsformats.placement): each image record's file
    and its size, in item order; a missing file's size is unknown."""
    from dsformats.testing import generate_items

    header, items = generate_items(("bbox",), seed=8, count=10)
    dsformats.write(items, tmp_path / "coco", "coco", header=header, options={"save_images": True})
    missing = next((tmp_path / "coco" / "images").rglob("*.png"))
    missing.unlink()
    unknown = []
    with dsformats.read(tmp_path / "coco", "coco") as reader:
        for shard in reader.shards(3):
            sharded = reader.shard_reader(shard.key)
            planned = list(sharded.planned_media())
            with sharded:
                actual = [(i.subset, i.id, i.media.suffix, Path(i.media.path)) for i in sharded.items()]
            assert [p[:3] for p in planned] == [a[:3] for a in actual] != []
            assert [p.size for p in planned] == [a[3].stat().st_size if a[3].exists() else None for a in actual]
            unknown += [path for p, (*_, path) in zip(planned, actual, strict=True) if p.size is None]
    assert unknown == [missing]
    archive = shutil.make_archive(str(tmp_path / "zipped"), "zip", tmp_path / "coco")
    with dsformats.read(archive, "coco") as reader:  # inside an archive: nothing predicted
        assert reader.shard_reader(reader.shards(2)[0].key).planned_media() is None
