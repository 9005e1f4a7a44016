"""COCO against hostile files: traversal, broken and wrong-typed JSON, symlinks, odd ids, the bad-item policy."""

from __future__ import annotations

import json
import os

import pytest

import dsformats
from dsformats import Bbox, DatasetError, Item, Mask, Media, Rle


def base_doc():
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": 20, "height": 10},
            {"id": 2, "file_name": "b.jpg", "width": 20, "height": 10},
            {"id": 3, "file_name": "c.jpg", "width": 20, "height": 10},
        ],
        "categories": [{"id": 1, "name": "cat"}],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [1, 1, 2, 2], "iscrowd": 0} for i in (1, 2, 3)
        ],
    }


def write_doc(root, doc, name="instances_train.json"):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    path = root / "annotations" / name
    if isinstance(doc, bytes):
        path.write_bytes(doc)
    else:
        path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return root


def read_all(root):
    with dsformats.read(root, "coco") as reader:
        items = list(reader.items())
        for item in items:
            for ann in item.annotations:
                if isinstance(ann, Mask):
                    ann.to_bitmap()
        return items


def _error(root) -> str:
    with pytest.raises(DatasetError) as info:
        read_all(root)
    return str(info.value)


# ------------------------------------------------------------------------------------------ traversal
@pytest.mark.parametrize(
    "file_name", ["../secret.jpg", "/etc/passwd", "C:/secret.jpg", "C:secret.jpg", "..\\secret.jpg", "a\\b.jpg", ""]
)
def test_file_name_traversal_names_the_json_path(tmp_path, file_name):
    doc = base_doc()
    doc["images"][1]["file_name"] = file_name
    message = _error(write_doc(tmp_path, doc))
    assert "instances_train.json: images[1].file_name" in message


def test_panoptic_png_traversal(tmp_path):
    doc = base_doc()
    doc["annotations"] = [{"image_id": 1, "file_name": "../../x.png", "segments_info": []}]
    message = _error(write_doc(tmp_path, doc, "panoptic_train.json"))
    assert "panoptic_train.json: annotations[0].file_name" in message and "escapes" in message


@pytest.mark.parametrize("item_id", ["../up", "/abs", "C:/drive", "a\\b", "a/../../b"])
def test_writer_refuses_unsafe_item_ids(tmp_path, make_image, item_id):
    media = Media.from_bytes(make_image(4, 4, ".jpg"), ".jpg")
    item = Item(id="safe", media=media, annotations=[Bbox(x=0, y=0, w=1, h=1, label="cat")])
    object.__setattr__(item, "id", item_id)  # bypassing the model, as a buggy reader could
    with pytest.raises(DatasetError):
        dsformats.write([item], tmp_path / "out", "coco", options={"save_images": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("subset", ["../up", "/abs", "a\\b"])
def test_writer_refuses_unsafe_subset_names(tmp_path, subset):
    with pytest.raises(DatasetError, match="subset"):
        dsformats.write([Item(id="a", subset=subset)], tmp_path / "out", "coco")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------- broken JSON
DEEP = '{"images": [], "annotations": [], "categories": [], "x": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"images": [}', "invalid JSON"),
        (json.dumps(base_doc())[:-40], "JSON"),
        ("", "JSON"),
        ("[1, 2, 3]", "top level"),
        ('{"images": [], "annotations": [], "categories": [], "x": NaN}', "invalid JSON"),
        ('{"images": [], "annotations": [], "categories": [], "x": Infinity}', "invalid JSON"),
        ('{"images": [], "annotations": [], "categories": [], "x": 1e999}', "invalid JSON"),
        (DEEP, "JSON"),
        (b'{"images": "\xff\xfe"}', "JSON"),
    ],
    ids=["malformed", "truncated", "empty", "not-an-object", "nan", "infinity", "overflow", "deep", "not-utf8"],
)
def test_malformed_json_names_the_file(tmp_path, text, expected):
    message = _error(write_doc(tmp_path, text))
    assert "instances_train.json" in message and expected in message


@pytest.mark.parametrize("large", [False, True], ids=["validated", "scanned"])
def test_deep_nesting_in_one_annotation(tmp_path, monkeypatch, large):
    from dsformats_coco import jsonindex

    if large:
        monkeypatch.setattr(jsonindex, "_VALIDATE_LIMIT", 0)
    doc = base_doc()
    text = json.dumps(doc).replace('"iscrowd": 0}', '"iscrowd": 0, "deep": ' + "[" * 5000 + "]" * 5000 + "}", 1)
    message = _error(write_doc(tmp_path, text))
    assert "instances_train.json" in message and ("annotations[0]" in message or large is False)


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["annotations"][1].update(bbox="1 1 2 2"), "annotations[1].bbox"),
        (lambda d: d["annotations"][1].update(bbox=[1, "1", 2, 2]), "annotations[1].bbox"),
        (lambda d: d["annotations"][1].update(bbox=None), "annotations[1].bbox"),
        (lambda d: d["annotations"][1].update(bbox={"x": 1}), "annotations[1].bbox"),
        (lambda d: d["annotations"][1].update(id=None), "annotations[1].id"),
        (lambda d: d["annotations"][1].update(image_id=None), "annotations[1].image_id"),
        (lambda d: d["annotations"][1].update(category_id=None), "annotations[1].category_id"),
        (lambda d: d["annotations"][1].update(category_id=[1]), "annotations[1].category_id"),
        (lambda d: d["images"][1].update(id=None), "images[1].id"),
        (lambda d: d["images"][1].update(id=True), "images[1].id"),
        (lambda d: d["images"][1].update(file_name=None), "images[1].file_name"),
        (lambda d: d["images"][1].update(file_name=["a.jpg"]), "images[1].file_name"),
        (lambda d: d["images"][1].update(width="wide"), "images[1].width"),
        (lambda d: d["images"][1].update(width=1.5), "images[1].width"),
        (lambda d: d["categories"][0].update(id=None), "categories[0].id"),
        (lambda d: d["categories"][0].update(name=None), "categories[0].name"),
        (lambda d: d.update(images={"id": 1}), "images"),
        (lambda d: d.update(annotations={"id": 1}), "annotations"),
        (lambda d: d.update(categories=None), "categories"),
        (lambda d: d["annotations"].__setitem__(1, "junk"), "annotations[1]"),
        (lambda d: d["annotations"].__setitem__(1, None), "annotations[1]"),
        (lambda d: d["images"].__setitem__(1, 7), "images[1]"),
        (lambda d: d["annotations"][1].update(segmentation="polygon"), "annotations[1].segmentation"),
        (lambda d: d["annotations"][1].update(segmentation=[[1, 2, "x", 4, 5, 6]]), "annotations[1].segmentation[0]"),
        (lambda d: d["annotations"][1].update(segmentation=[None]), "annotations[1].segmentation[0]"),
        (lambda d: d["annotations"][1].update(segmentation={"size": [10, 20], "counts": None}),
         "annotations[1].segmentation.counts"),
        (lambda d: d["annotations"][1].update(segmentation={"size": "10x20", "counts": "0"}),
         "annotations[1].segmentation.size"),
        (lambda d: d["annotations"][1].update(segmentation={"size": [10, 20], "counts": [-5, 205]}),
         "annotations[1].segmentation.counts"),
        (lambda d: d["annotations"][1].update(segmentation={"size": [10, 20], "counts": "\x00garbage"}),
         "annotations[1].segmentation"),
        (lambda d: d["annotations"][1].update(segmentation={"size": [10, 20], "counts": "zzzzzz"}),
         "annotations[1].segmentation"),
        (lambda d: d["annotations"][1].update(keypoints="1,2,2"), "annotations[1].keypoints"),
        (lambda d: d["annotations"][1].update(keypoints=[1, 2]), "annotations[1].keypoints"),
        (lambda d: d["annotations"][1].update(keypoints=[1, 2, 7]), "annotations[1].keypoints"),
        (lambda d: d["annotations"][1].update(attributes=[1]), "annotations[1].attributes"),
        (lambda d: d["annotations"][1].update(score="high"), "annotations[1].score"),
        (lambda d: d["annotations"][1].update(iscrowd="yes"), "annotations[1].iscrowd"),
        (lambda d: d["annotations"][1].update(image_id=10**30), "annotations[1].image_id"),
        (lambda d: d["categories"][0].update(keypoints="nose"), "categories[0].keypoints"),
        (lambda d: d["categories"][0].update(skeleton=[[1]]), "categories[0].skeleton[0]"),
        (lambda d: d["categories"][0].update(skeleton=7), "categories[0].skeleton"),
    ],
)
def test_wrong_types_name_the_json_path(tmp_path, mutate, where):
    doc = base_doc()
    mutate(doc)
    message = _error(write_doc(tmp_path, doc))
    assert f"instances_train.json: {where}" in message


def test_huge_numbers_are_kept_or_refused_cleanly(tmp_path):
    doc = base_doc()
    doc["images"][0]["id"] = doc["annotations"][0]["image_id"] = 2**63 - 1
    doc["annotations"][0]["bbox"] = [1e300, -1e300, 10**20, 0]
    items = read_all(write_doc(tmp_path, doc))
    assert next(items[0].annotations_of(Bbox)).x == 1e300


# ------------------------------------------------------------------------------------------ symlinks
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_image_outside_is_not_followed(tmp_path, make_image):
    (tmp_path / "secret.jpg").write_bytes(make_image(4, 4, ".jpg"))
    root = write_doc(tmp_path / "coco", base_doc())
    (root / "images" / "train").mkdir(parents=True)
    os.symlink(tmp_path / "secret.jpg", root / "images" / "train" / "a.jpg")
    message = _error(root)
    assert "symlink that points outside" in message and "a.jpg" in message



@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_an_image_made_a_symlink_is_seen_by_the_listing_at_open(tmp_path, make_image, monkeypatch):
    """The reader lists each images folder once at open; a folder without a symlink skips the test per image,
    one with a symlink keeps it (the symlink among plain images is still refused)."""
    doc = base_doc()
    root = write_doc(tmp_path / "coco", doc)
    (root / "images" / "train").mkdir(parents=True)
    for image in doc["images"]:
        (root / "images" / "train" / image["file_name"]).write_bytes(make_image(4, 4, ".jpg"))
    tested: list[str] = []
    islink = os.path.islink
    monkeypatch.setattr(os.path, "islink", lambda path: tested.append(str(path)) or islink(path))
    assert len(read_all(root)) == len(doc["images"]) and not [t for t in tested if t.endswith(".jpg")]
    (tmp_path / "secret.jpg").write_bytes(make_image(4, 4, ".jpg"))
    first = root / "images" / "train" / doc["images"][0]["file_name"]
    first.unlink()
    os.symlink(tmp_path / "secret.jpg", first)
    message = _error(root)
    assert "symlink that points outside" in message and first.name in message


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_annotation_file_outside_is_not_read(tmp_path):
    outside = write_doc(tmp_path / "elsewhere", base_doc()) / "annotations" / "instances_train.json"
    root = write_doc(tmp_path / "coco", {**base_doc(), "images": base_doc()["images"][:1],
                                         "annotations": base_doc()["annotations"][:1]}, "instances_val.json")
    os.symlink(outside, root / "annotations" / "instances_train.json")
    assert [(i.subset, i.id) for i in read_all(root)] == [("val", "a")]


# -------------------------------------------------------------------------------------- error policy
@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["annotations"][1].update(bbox="1 1 2 2"), "annotations[1].bbox"),
        (lambda d: d["annotations"][1].update(category_id=99), "annotations[1].category_id"),
        (lambda d: d["annotations"][1].update(segmentation=[[1, 2, 3]]), "annotations[1].segmentation[0]"),
        (lambda d: d["images"][1].update(file_name="../b.jpg"), "images[1].file_name"),
        (lambda d: d["images"][1].update(width="x"), "images[1].width"),
    ],
    ids=["bad-bbox", "unknown-category", "bad-polygon", "traversal", "bad-width"],
)
def test_bad_item_fails_by_default_and_is_skipped_on_request(tmp_path, mutate, where):
    doc = base_doc()
    mutate(doc)
    root = write_doc(tmp_path / "coco", doc)
    with pytest.raises(DatasetError, match=f"instances_train.json: {where}".replace("[", r"\[").replace("]", r"\]")):
        dsformats.convert(root, tmp_path / "out", "coco", source_format="coco")
    assert not (tmp_path / "out").exists()
    report = dsformats.convert(root, tmp_path / "out", "coco", source_format="coco", skip_bad_items=True)
    assert report.items_written == {"train": 2}
    assert len(report.skipped) == 1 and where in report.skipped[0]
    assert sorted(i.id for i in read_all(tmp_path / "out")) == ["a", "c"]


def test_missing_image_fails_by_default_and_is_skipped_on_request(tmp_path, make_image):
    root = write_doc(tmp_path / "coco", base_doc())
    (root / "images" / "train").mkdir(parents=True)
    for name in ("a", "c"):
        (root / "images" / "train" / f"{name}.jpg").write_bytes(make_image(20, 10, ".jpg"))
    options = {"save_images": True}
    with pytest.raises(DatasetError, match=r"images/train/b\.jpg"):
        dsformats.convert(root, tmp_path / "out", "coco", source_format="coco", writer_options=options)
    report = dsformats.convert(
        root, tmp_path / "out", "coco", source_format="coco", writer_options=options, skip_bad_items=True
    )
    assert report.items_written == {"train": 2} and "images/train/b.jpg" in report.skipped[0]
    assert sorted(p.name for p in (tmp_path / "out" / "images" / "train").iterdir()) == ["a.jpg", "c.jpg"]
    assert sorted(i.id for i in read_all(tmp_path / "out")) == ["a", "c"]


# ------------------------------------------------------------------------------------- images and ids
def test_corrupt_image_passes_a_byte_copy_and_fails_only_when_decoded(tmp_path, make_image):
    root = write_doc(tmp_path / "coco", base_doc())
    (root / "images" / "train").mkdir(parents=True)
    bad = make_image(20, 10, ".jpg")[:100]
    for name in ("a", "b", "c"):
        (root / "images" / "train" / f"{name}.jpg").write_bytes(bad if name == "b" else make_image(20, 10, ".jpg"))
    dsformats.convert(root, tmp_path / "copy", "coco", source_format="coco", writer_options={"save_images": True})
    assert (tmp_path / "copy" / "images" / "train" / "b.jpg").read_bytes() == bad
    with pytest.raises(DatasetError, match=r"images/train/b\.jpg"):
        dsformats.convert(root, tmp_path / "png", "coco", source_format="coco",
                          writer_options={"save_images": True, "image_ext": ".png"})
    assert [loc for loc, _ in dsformats.verify(root, "coco")] == [str(root / "images" / "train" / "b.jpg")]


def test_pixel_bomb_is_a_dataset_error_on_decode(tmp_path):
    from tests.core.test_safety import png_header_only

    doc = base_doc()
    doc["images"] = [{"id": 1, "file_name": "a.png", "width": 50_000, "height": 50_000}]
    doc["annotations"] = []
    root = write_doc(tmp_path / "coco", doc)
    (root / "images" / "train").mkdir(parents=True)
    (root / "images" / "train" / "a.png").write_bytes(png_header_only(50_000, 50_000))
    with pytest.raises(DatasetError, match="a.png: image is too large to decode safely"):
        dsformats.convert(root, tmp_path / "jpg", "coco", source_format="coco",
                          writer_options={"save_images": True, "image_ext": ".jpg"})
    ((location, error),) = dsformats.verify(root)
    assert location.endswith("a.png") and "DSFORMATS_MAX_IMAGE_PIXELS" in str(error)


ODD_IDS = ["naïve café", "日本語/画像 1", "a b (c) [d]", "x&y=z+w@v#u!t,s;r'q", "emoji 🐱", "-dash", "50%"]


def test_odd_ids_round_trip(tmp_path, make_image):
    items = [
        Item(id=i, subset="train", media=Media.from_bytes(make_image(8, 6, ".jpg", seed=n), ".jpg"),
             annotations=[Bbox(x=1, y=1, w=2, h=2, label="cat"),
                          Mask(rle=Rle(size=(6, 8), counts=[10, 5, 33]), label="cat", attributes={"task": "panoptic"})])
        for n, i in enumerate(ODD_IDS)
    ]
    dsformats.write(items, tmp_path / "out", "coco", options={"save_images": True})
    back = read_all(tmp_path / "out")
    assert sorted(i.id for i in back) == sorted(ODD_IDS)
    for item in back:
        assert item.media.read_bytes() and {a.kind for a in item.annotations} == {"bbox", "mask"}


def test_case_only_different_ids_are_reported(tmp_path, make_image):
    media = Media.from_bytes(make_image(4, 4, ".jpg"), ".jpg")
    items = [Item(id=i, media=media) for i in ("Cat", "cat", "dir/A", "DIR/a")]
    report = dsformats.write(items, tmp_path / "out", "coco", options={"save_images": True})
    collisions = [w for w in report.warnings if "case" in w]
    assert len(collisions) == 2 and "Cat" in collisions[0] and "cat" in collisions[0]


def test_symlinked_images_folder_outside_is_not_followed(tmp_path, make_image):
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (outside / name).write_bytes(make_image(4, 4, ".jpg"))
    root = write_doc(tmp_path / "coco", base_doc())
    (root / "images").mkdir()
    os.symlink(outside, root / "images" / "train")
    message = _error(root)
    assert "images folder" in message and "symlink that points outside the dataset" in message


def test_symlinked_images_folder_inside_the_dataset_is_fine(tmp_path, make_image):
    root = write_doc(tmp_path / "coco", base_doc())
    (root / "pictures").mkdir(parents=True)
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (root / "pictures" / name).write_bytes(make_image(4, 4, ".jpg", seed=len(name)))
    (root / "images").mkdir()
    os.symlink(root / "pictures", root / "images" / "train")
    items = read_all(root)
    expected = [(root / "pictures" / n).read_bytes() for n in ("a.jpg", "b.jpg", "c.jpg")]
    assert [i.media.read_bytes() for i in items] == expected
