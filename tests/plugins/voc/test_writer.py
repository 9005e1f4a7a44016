"""VOC writer: round trips of every task (masks and image bytes included), options, losses, the CLI."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

import dsformats
from dsformats import (
    Bbox,
    Caption,
    Categories,
    DatasetError,
    Header,
    Item,
    Label,
    LabelDef,
    Mask,
    Media,
    Points,
    Polygon,
    Rle,
)
from dsformats.masks import rle_to_bitmap

from .helpers import copy_fixture, mask_set, normalized, read_all

FLAGS = {"truncated": False, "occluded": False, "difficult": False}


def _write(items, out, header=None, **options):
    if isinstance(header, Categories):
        header = Header(categories=header)
    return dsformats.write(items, out, "voc", header=header, options=options)


def _cats(*names, **colors):
    return Categories(labels=[LabelDef(name=n, color=colors.get(n)) for n in names])


def _image(make_image, w=8, h=6, suffix=".png", seed=0):
    return Media.from_bytes(make_image(w, h, suffix, seed=seed), suffix, name=f"img{seed}{suffix}")


def _bitmap(rows):
    return np.asarray(rows, dtype=bool)


# ------------------------------------------------------------------------------------ detection
def test_detection_round_trip_keeps_numbers_exact(tmp_path, make_image):
    boxes = [
        Bbox(x=12, y=3, w=10, h=2, label="cat", attributes={**FLAGS, "pose": "Left", "truncated": True}),
        Bbox(x=0.1, y=0.2, w=0.2, h=1.4, label="dog", attributes={**FLAGS, "difficult": True}),
        Bbox(x=1, y=1, w=2, h=2, label="dog", attributes={**FLAGS, "color": "red", "point": (1, 2.5)}),
    ]
    item = Item(id="a", subset="train", media=_image(make_image, 40, 20), annotations=boxes)
    report = _write([item], tmp_path / "out", _cats("cat", "dog"), save_images=True)
    text = (tmp_path / "out/Annotations/a.xml").read_text()
    assert "<xmin>12</xmin>" in text and "<xmax>22</xmax>" in text
    assert "<xmin>0.1</xmin>" in text and "<xmax>0.30000000000000004</xmax>" not in text
    assert "<xmax>0.3</xmax>" in text and "<ymax>1.6</ymax>" in text
    assert "<width>40</width>" in text and "<depth>3</depth>" in text
    assert report.annotations_written["bbox"] == 3 and report.lossless

    header, (back,), snaps = read_all(tmp_path / "out")
    assert (back.id, back.subset) == ("a", "train")
    assert list(back.annotations) == [
        boxes[0],
        Bbox(x=0.1, y=0.2, w=0.2, h=1.4, label="dog", attributes={**FLAGS, "difficult": True}),
        boxes[2],
    ]
    assert snaps[("train", "a")]["media"] == item.media.read_bytes()
    assert header.categories.label_names == ["cat", "dog"]  # background only when masks need it


def test_pixel_inclusive_convention_round_trip(tmp_path):
    item = Item(id="a", annotations=[Bbox(x=0, y=1, w=3, h=3, label="cat", attributes=FLAGS)])
    _write([item], tmp_path / "out", _cats("cat"), bbox_convention="pixel_inclusive")
    text = (tmp_path / "out/Annotations/a.xml").read_text()
    assert "<xmin>1</xmin>" in text and "<ymin>2</ymin>" in text and "<xmax>3</xmax>" in text
    _, (back,), _ = read_all(tmp_path / "out", bbox_convention="pixel_inclusive")
    assert back.annotations == item.annotations
    _, (plain,), _ = read_all(tmp_path / "out")
    assert (plain.annotations[0].x, plain.annotations[0].w) == (1, 2)


def test_object_less_items_keep_size_and_membership(tmp_path, make_image):
    items = [
        Item(id="empty", subset="val", media=Media.from_file(tmp_path / "none.jpg", size=(30, 20))),
        Item(id="no_media", subset="val"),
    ]
    _write(items, tmp_path / "out", _cats("cat"))
    assert (tmp_path / "out/Annotations/empty.xml").is_file()
    _, back, _ = read_all(tmp_path / "out")
    assert [(i.subset, i.id, i.annotations) for i in back] == [("val", "empty", ()), ("val", "no_media", ())]
    assert back[0].media.known_size == (30, 20) and back[1].media is None


def test_nested_ids_spaces_and_non_ascii(tmp_path, make_image):
    ids = ["a/b/c", "with space", "кириллица с пробелом", "q/1"]
    items = [
        Item(
            id=item_id,
            subset="train",
            media=_image(make_image, seed=i, suffix=".jpg" if i % 2 else ".png"),
            annotations=[Bbox(x=1, y=1, w=2, h=2, label="person", attributes=FLAGS), Label(label="person")],
        )
        for i, item_id in enumerate(ids)
    ]
    _write(items, tmp_path / "out", _cats("person"), save_images=True)
    assert (tmp_path / "out/JPEGImages/a/b/c.png").is_file()
    _, back, snaps = read_all(tmp_path / "out")
    assert [i.id for i in back] == ids
    for original, copy in zip(items, back, strict=True):
        assert normalized(copy) == normalized(original)
        assert snaps[("train", original.id)]["media"] == original.media.read_bytes()


def test_image_ext_reencodes_only_when_it_differs(tmp_path, make_image):
    items = [
        Item(id="p", media=_image(make_image, suffix=".png")),
        Item(id="j", media=_image(make_image, suffix=".jpg")),
    ]
    report = _write(items, tmp_path / "out", _cats("cat"), save_images=True, image_ext="jpg")
    assert (report.media_copied, report.media_reencoded) == (1, 1)
    assert (tmp_path / "out/JPEGImages/p.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert "<filename>p.jpg</filename>" in (tmp_path / "out/Annotations/p.xml").read_text()


def test_grayscale_depth(tmp_path, make_image):
    from tests.conftest import random_image_bytes

    data = random_image_bytes(5, 4, ".png", mode="L")
    item = Item(id="g", media=Media.from_bytes(data, ".png"), annotations=[Bbox(x=0, y=0, w=1, h=1, label="cat")])
    _write([item], tmp_path / "out", _cats("cat"), save_images=True)
    assert "<depth>1</depth>" in (tmp_path / "out/Annotations/g.xml").read_text()
    _, _, snaps = read_all(tmp_path / "out")
    assert snaps[("default", "g")]["media"] == data


@pytest.mark.parametrize("suffix", [".png", ".gif"])  # .gif: a suffix the header reader leaves to Pillow
def test_an_unreadable_image_is_warned_about_in_the_same_words_every_time(tmp_path, make_image, suffix):
    """Pillow names the stream object it could not identify (an address that changes with every run)."""
    with zipfile.ZipFile(tmp_path / "in.zip", "w") as archive:
        archive.writestr(f"bad{suffix}", b"garbage")
        archive.writestr("good.png", make_image(5, 4, ".png", seed=1))
    warnings = [dsformats.convert(tmp_path / "in.zip", tmp_path / f"out{n}", "voc", source_format="image_zip").warnings
                for n in (1, 2)]
    assert warnings[0] == warnings[1] == [
        f"image size unknown for default/bad: {tmp_path / 'in.zip'}!bad{suffix}: cannot read image: not a "
        "recognised image format, or truncated"
    ]
    assert "<width>5</width>" in (tmp_path / "out1/Annotations/good.xml").read_text()

# ------------------------------------------------------------------------------------ segmentation
def test_segmentation_round_trip_instances_and_semantic(tmp_path, make_image):
    cat = _bitmap([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
    dog = _bitmap([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0]])
    grass = _bitmap([[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]])
    annotations = [
        Bbox(x=0, y=0, w=2, h=2, label="cat", group=1, attributes=FLAGS),
        Mask(label="cat", group=1, loader=lambda: cat),
        Mask(label="dog", group=7, loader=lambda: dog),
        Mask(label="grass", loader=lambda: grass),
    ]
    item = Item(id="s", subset="train", media=_image(make_image, 4, 3), annotations=annotations)
    _write([item], tmp_path / "out", _cats("cat", "dog", "grass", grass=(10, 200, 30)))

    with Image.open(tmp_path / "out/SegmentationClass/s.png") as image:
        assert image.mode == "P"
        classes = np.asarray(image)
        palette = image.getpalette()
    with Image.open(tmp_path / "out/SegmentationObject/s.png") as image:
        assert image.mode == "P"
        instances = np.asarray(image)
    assert classes.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 3, 3]]
    assert instances.tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [0, 0, 0, 0]]
    assert palette[9:12] == [10, 200, 30] and palette[255 * 3 : 256 * 3] == [224, 224, 192]
    labelmap = (tmp_path / "out/labelmap.txt").read_text()
    assert "background:0,0,0::" in labelmap and "grass:10,200,30::" in labelmap

    _, (back,), _ = read_all(tmp_path / "out")
    assert mask_set(back) == mask_set(item)
    box = next(a for a in back.annotations if isinstance(a, Bbox))
    groups = {a.label: a.group for a in back.annotations if isinstance(a, Mask)}
    assert groups["cat"] == box.group != 0 and groups["dog"] not in (0, box.group) and groups["grass"] == 0
    assert "<segmented>1</segmented>" in (tmp_path / "out/Annotations/s.xml").read_text()
    assert (tmp_path / "out/ImageSets/Segmentation/train.txt").read_text() == "s\n"


def test_overlapping_masks_follow_z_order(tmp_path):
    full = np.ones((2, 2), dtype=bool)
    left = _bitmap([[1, 0], [1, 0]])
    annotations = [
        Mask(label="b", id=1, z_order=2, loader=lambda: left),
        Mask(label="a", id=2, z_order=1, loader=lambda: full),
    ]
    _write([Item(id="z", annotations=annotations)], tmp_path / "out", _cats("a", "b"))
    _, (back,), _ = read_all(tmp_path / "out")
    assert sorted((m.label, m.to_bitmap().tolist()) for m in back.annotations) == [
        ("a", [[False, True], [False, True]]),
        ("b", [[True, False], [True, False]]),
    ]


def test_polygons_are_rasterised(tmp_path, make_image):
    from pycocotools import mask as mask_utils

    points = (1, 1, 8, 1, 8, 5, 1, 5)
    item = Item(id="p", media=_image(make_image, 10, 8), annotations=[Polygon(points=points, label="cat", id=3)])
    report = _write([item], tmp_path / "out", _cats("cat"))
    assert report.annotations_written["polygon"] == 1
    _, (back,), _ = read_all(tmp_path / "out")
    (mask,) = back.annotations
    rle = mask_utils.merge(mask_utils.frPyObjects([list(map(float, points))], 8, 10))
    expected = rle_to_bitmap(Rle(size=rle["size"], counts=rle["counts"].decode()))
    assert (mask.label, mask.to_bitmap().tolist()) == ("cat", expected.tolist())
    assert expected.sum() == 28  # a 7x4 rectangle


def test_more_than_254_instances_is_an_error(tmp_path):
    masks = []
    for i in range(300):
        bitmap = np.zeros((20, 20), dtype=bool)
        bitmap.flat[i] = True
        masks.append(Mask(label="cat", id=i + 1, loader=lambda b=bitmap: b))
    with pytest.raises(DatasetError, match="more than 254 instances"):
        _write([Item(id="many", annotations=masks)], tmp_path / "out", _cats("cat"))
    assert not (tmp_path / "out").exists()


def test_mask_of_wrong_size_is_an_error(tmp_path, make_image):
    item = Item(
        id="w", media=_image(make_image, 4, 4), annotations=[Mask(label="cat", loader=lambda: np.ones((3, 3), bool))]
    )
    with pytest.raises(DatasetError, match="3x3 but the image is 4x4"):
        _write([item], tmp_path / "out", _cats("cat"))


def test_an_rle_of_another_size_is_refused_before_it_is_decoded(tmp_path, make_image, monkeypatch):
    """An RLE declares its size: a 30000x30000 one on a 4x4 image is an error at once, not 900 MB later."""
    import dsformats.masks

    monkeypatch.setattr(dsformats.masks, "rle_to_bitmap", lambda rle: pytest.fail("the RLE was decoded"))
    rle = dsformats.Rle(size=(30000, 30000), counts=(5, 4, 30000 * 30000 - 9))
    item = Item(id="w", media=_image(make_image, 4, 4), annotations=[Mask(label="cat", rle=rle)])
    with pytest.raises(DatasetError, match="a mask of label 'cat' is 30000x30000 but the image is 4x4"):
        _write([item], tmp_path / "out", _cats("cat"))


# ------------------------------------------------------------------------------------ other tasks
def test_classification_flags_with_reference_spacing(tmp_path):
    items = [
        Item(
            id="a", subset="train", annotations=[Label(label="cat"), Label(label="dog", attributes={"difficult": True})]
        ),
        Item(id="b c", subset="train"),
    ]
    _write(items, tmp_path / "out", _cats("cat", "dog"))
    assert (tmp_path / "out/ImageSets/Main/cat_train.txt").read_text() == "a  1\nb c -1\n"
    assert (tmp_path / "out/ImageSets/Main/dog_train.txt").read_text() == "a  0\nb c -1\n"
    _, back, _ = read_all(tmp_path / "out")
    assert [(i.id, i.annotations) for i in back] == [(i.id, i.annotations) for i in items]


def test_layout_and_actions_round_trip(tmp_path):
    header = Header(
        categories=Categories(
            labels=[
                LabelDef(name="person", attributes=("jumping", "reading")),
                LabelDef(name="head", parent="person"),
                LabelDef(name="hand", parent="person"),
                LabelDef(name="dog"),
            ]
        )
    )
    annotations = [
        Bbox(x=1, y=1, w=5, h=5, label="person", group=1, attributes={**FLAGS, "jumping": True, "reading": False}),
        Bbox(x=2, y=2, w=1, h=1, label="head", group=1),
        Bbox(x=3, y=3, w=1, h=1.5, label="hand", group=1),
        Bbox(x=0, y=0, w=1, h=1, label="head", attributes=FLAGS),  # not grouped: an object of its own
        Bbox(x=0, y=0, w=3, h=3, label="dog", attributes=FLAGS),
    ]
    report = _write([Item(id="a b", subset="train", annotations=annotations)], tmp_path / "out", header)
    assert report.lossless
    assert (tmp_path / "out/ImageSets/Layout/train.txt").read_text() == '"a b" 1\n'
    assert (tmp_path / "out/ImageSets/Action/train.txt").read_text() == "a b\n"
    assert "person:128,0,0:head,hand:jumping,reading" in (tmp_path / "out/labelmap.txt").read_text()
    back_header, (back,), _ = read_all(tmp_path / "out")
    assert back_header.categories.get("head").parent == "person"
    assert back_header.categories.get("person").attributes == ("jumping", "reading")
    assert normalized(back) == normalized(Item(id="x", annotations=annotations))


def test_tasks_detection_keeps_boxes_and_counts_the_rest(tmp_path, make_image):
    annotations = [
        Polygon(points=(1, 1, 4, 1, 4, 3), label="cat", id=5),
        Bbox(x=0, y=0, w=2, h=2, label="dog", group=2, attributes=FLAGS),
        Mask(label="dog", group=2, loader=lambda: np.ones((6, 8), bool)),
        Label(label="cat"),
        Caption(caption="hello"),
        Points(points=(1, 1), visibility=(2,), label="cat"),
    ]
    item = Item(id="t", media=_image(make_image, 8, 6), annotations=annotations)
    report = dsformats.write([item], tmp_path / "out", "voc_detection", header=Header(categories=_cats("cat", "dog")))
    assert set(report.dropped) == {"polygon", "mask", "label", "caption", "points"}
    assert not (tmp_path / "out/SegmentationClass").exists()
    _, (back,), _ = read_all(tmp_path / "out")
    assert sorted((a.label, a.x, a.y, a.w, a.h) for a in back.annotations) == [("cat", 1, 1, 3, 2), ("dog", 0, 0, 2, 2)]


def test_subsets_with_underscores_round_trip(tmp_path):
    items = [
        Item(id="a", subset="train", annotations=[Label(label="train")]),
        Item(id="b", subset="train_extra", annotations=[Label(label="cat")]),
        Item(id="c", subset="extra"),
    ]
    _write(items, tmp_path / "out", _cats("cat", "train"))
    header, back, _ = read_all(tmp_path / "out")
    assert set(header.subsets) == {"train", "train_extra", "extra"}
    assert sorted((i.subset, i.id, i.annotations) for i in back) == sorted(
        (i.subset, i.id, i.annotations) for i in items
    )


# ------------------------------------------------------------------------------------ label maps
def test_label_map_voc_and_undeclared_labels(tmp_path):
    item = Item(id="a", annotations=[Bbox(x=0, y=0, w=1, h=1, label="cat", attributes=FLAGS)])
    _write([item], tmp_path / "std", _cats("cat"), label_map="voc")
    assert not (tmp_path / "std/labelmap.txt").exists()

    odd = Item(id="a", annotations=[Bbox(x=0, y=0, w=1, h=1, label="unicorn", attributes=FLAGS)])
    report = _write([odd], tmp_path / "odd", _cats("cat"), label_map="voc")
    assert any("unicorn" in w for w in report.warnings)
    lines = (tmp_path / "odd/labelmap.txt").read_text().splitlines()
    assert lines[1] == "background:0,0,0::" and lines[-1].startswith("unicorn:")
    header, (back,), _ = read_all(tmp_path / "odd")
    assert back.annotations == odd.annotations and "unicorn" in header.categories.label_names


def test_custom_colours_survive(tmp_path):
    cats = _cats("background", "road", "car", road=(128, 64, 128), car=(0, 0, 142), background=(0, 0, 0))
    mask = Mask(label="car", id=1, loader=lambda: _bitmap([[1, 0]]))
    _write([Item(id="m", annotations=[mask])], tmp_path / "out", cats)
    assert (tmp_path / "out/labelmap.txt").read_text().splitlines()[1:] == [
        "background:0,0,0::",
        "road:128,64,128::",
        "car:0,0,142::",
    ]
    header, _, _ = read_all(tmp_path / "out")
    assert [(label.name, label.color) for label in header.categories.labels] == [
        ("background", (0, 0, 0)),
        ("road", (128, 64, 128)),
        ("car", (0, 0, 142)),
    ]


# ------------------------------------------------------------------------------------ fixtures and CLI
@pytest.mark.parametrize("name", ["voc_dataset1", "voc_dataset2", "voc_dataset3"])
def test_datumaro_fixtures_round_trip(datumaro_fixtures, tmp_path, name):
    src = copy_fixture(datumaro_fixtures, name, tmp_path)
    report = dsformats.convert(src, tmp_path / "out", "voc", writer_options={"save_images": True})
    assert report.lossless
    header_a, items_a, snaps_a = read_all(src)
    header_b, items_b, snaps_b = read_all(tmp_path / "out")
    assert header_a.categories == header_b.categories
    assert [(i.subset, i.id, normalized(i), mask_set(i)) for i in items_a] == [
        (i.subset, i.id, normalized(i), mask_set(i)) for i in items_b
    ]
    assert [s["media"] for s in snaps_a.values()] == [s["media"] for s in snaps_b.values()]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "dsformats", *map(str, args)], capture_output=True, text=True)


def test_cli_image_zip_to_voc_and_back(datumaro_fixtures, tmp_path):
    src = datumaro_fixtures / "image_zip_dataset"
    done = _cli(
        "convert", "-i", src, "-if", "image_zip", "-f", "voc", "-o", tmp_path / "voc", "-q", "--", "--save-images"
    )
    assert done.returncode == 0, done.stderr
    originals = {}
    for archive in sorted(src.glob("*.zip")):
        with zipfile.ZipFile(archive) as zf:
            originals.update({name: zf.read(name) for name in zf.namelist()})
    for name, data in originals.items():
        assert (tmp_path / "voc/JPEGImages" / name).read_bytes() == data
        assert (tmp_path / "voc/Annotations" / name).with_suffix(".xml").is_file()

    done = _cli("convert", "-i", tmp_path / "voc", "-f", "image_zip", "-o", tmp_path / "zip", "-q")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(tmp_path / "zip/default.zip") as zf:
        assert {name: zf.read(name) for name in zf.namelist()} == originals


def test_cli_reports_a_broken_voc_tree_without_traceback(tmp_path):
    (tmp_path / "bad/Annotations").mkdir(parents=True)
    (tmp_path / "bad/Annotations/a.xml").write_text("<annotation><object></annotation>")
    done = _cli("convert", "-i", tmp_path / "bad", "-if", "voc", "-f", "voc", "-o", tmp_path / "out", "-q")
    assert done.returncode == 1
    assert "Annotations/a.xml:1" in done.stderr and "Traceback" not in done.stderr


def test_without_action_task_booleans_stay_as_text_attributes(tmp_path):
    box = Bbox(x=0, y=0, w=1, h=1, label="person", attributes={**FLAGS, "jumping": True})
    report = _write([Item(id="a", annotations=[box])], tmp_path / "out", _cats("person"), tasks="detection")
    assert "<actions>" not in (tmp_path / "out/Annotations/a.xml").read_text()
    assert report.lossless and any("text" in w for w in report.warnings)
    _, (back,), _ = read_all(tmp_path / "out")
    assert back.annotations[0].attributes["jumping"] == "True"


def test_part_labels_as_image_labels(tmp_path):
    header = Header(categories=Categories(labels=[LabelDef(name="person"), LabelDef(name="head", parent="person")]))
    item = Item(id="a", annotations=[Label(label="head")])
    _write([item], tmp_path / "out", header)
    _, (back,), _ = read_all(tmp_path / "out")
    assert back.annotations == item.annotations


# ------------------------------------------------------------------------------- parallel masks
def _mask_items(make_image, count=6):
    """Items with overlapping polygons (some covered entirely), crowd RLEs and bitmap masks."""
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(3)
    items = []
    for i in range(count):
        w, h = 37 + i, 29
        annotations = []
        for k in range(5):
            x, y = rng.uniform(0, w - 8), rng.uniform(0, h - 8)
            points = [x, y, x + rng.uniform(3, 12), y + 0.5, x + rng.uniform(2, 9), y + rng.uniform(3, 11)]
            label = ("cat", "dog", "grass")[k % 3]
            annotations.append(Polygon(points=points, label=label, id=k + 1, group=k + 1, z_order=k % 2))
        annotations.append(Polygon(points=[0, 0, w, 0, w, h, 0, h], label="dog", id=9, group=9, z_order=-1))
        crowd = mask_utils.frPyObjects([[1, 1, 20, 2, 9, 15]], h, w)[0]
        annotations.append(Mask(rle=Rle(size=(h, w), counts=crowd["counts"].decode()), label="cat", id=7, group=7))
        bitmap = np.zeros((h, w), dtype=bool)
        bitmap[3:9, 20:30] = True
        annotations.append(Mask(label="grass", loader=lambda b=bitmap: b, z_order=2))
        items.append(Item(id=f"m{i}", subset="train", media=_image(make_image, w, h, seed=i), annotations=annotations))
    return items


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_masks_are_the_same_bytes_for_any_number_of_jobs(tmp_path, make_image):
    items = _mask_items(make_image)
    one = _write(items, tmp_path / "one", _cats("cat", "dog", "grass"), save_images=True, jobs=1)
    two = _write(items, tmp_path / "two", _cats("cat", "dog", "grass"), save_images=True, jobs=2)
    first, second = _tree(tmp_path / "one"), _tree(tmp_path / "two")
    assert sum(name.startswith("SegmentationObject/") for name in first) == len(items)
    assert first == second
    assert one.annotations_written == two.annotations_written and one.dropped == two.dropped
    assert any("covered" in reason for _, reason in one.dropped.values())


def test_polygon_masks_match_pycocotools_rasterisation(tmp_path, make_image):
    from pycocotools import mask as mask_utils

    items = _mask_items(make_image, count=3)
    _write(items, tmp_path / "out", _cats("cat", "dog", "grass"), jobs=1)
    for item in items:
        w, h = item.media.size
        expected = np.zeros((h, w), dtype=np.uint8)
        names = {"cat": 1, "dog": 2, "grass": 3}
        shapes = sorted(
            (a for a in item.annotations if isinstance(a, Polygon | Mask)), key=lambda a: a.z_order
        )
        for shape in shapes:
            if isinstance(shape, Polygon):
                rle = mask_utils.frPyObjects([list(map(float, shape.points))], h, w)[0]
                bitmap = rle_to_bitmap(Rle(size=(h, w), counts=rle["counts"].decode()))
            else:
                bitmap = np.asarray(shape.to_bitmap(), dtype=bool)
            expected[bitmap] = names[shape.label]
        with Image.open(tmp_path / f"out/SegmentationClass/{item.id}.png") as image:
            assert image.mode == "P"
            assert np.asarray(image).tolist() == expected.tolist()


def test_xml_text_is_escaped_like_elementtree(tmp_path):
    from xml.etree import ElementTree as ET

    box = Bbox(x=0, y=0, w=1, h=1, label="a&b<c>", attributes={**FLAGS, "note": "x < y & z", "empty": ""})
    _write([Item(id="a", annotations=[box])], tmp_path / "out", _cats("a&b<c>"))
    text = (tmp_path / "out/Annotations/a.xml").read_text()
    root = ET.fromstring(text)
    ET.indent(root, "  ")
    assert text == ET.tostring(root, encoding="unicode") + "\n"
    assert "<name>a&amp;b&lt;c&gt;</name>" in text and "<value />" in text


def test_ids_starting_with_a_hash_keep_their_subset(tmp_path):
    header = dsformats.Header(categories=dsformats.Categories(labels=[dsformats.LabelDef(name="cat")]))
    items = [dsformats.Item(id=item_id, subset="train", annotations=[dsformats.Bbox(x=1, y=2, w=3, h=4, label="cat")])
             for item_id in ("#1", "# two")]
    dsformats.write(items, tmp_path / "voc", "voc", header=header)
    with dsformats.read(tmp_path / "voc", "voc") as reader:
        assert sorted((i.subset, i.id) for i in reader.items()) == [("train", "# two"), ("train", "#1")]


def test_action_flag_files_follow_voc2012(datumaro_fixtures, tmp_path):
    src = datumaro_fixtures / "voc_dataset" / "voc_dataset1"
    dsformats.convert(src, tmp_path / "voc", "voc", source_format="voc")
    with dsformats.read(src, "voc") as reader:
        person = next(a for item in reader.items() for a in item.annotations
                      if isinstance(a, dsformats.Bbox) and a.label == "person")
    actions = {k: v for k, v in person.attributes.items() if k in ("jumping", "phoning", "walking", "running")}
    assert actions, "the fixture's person has actions"
    action_dir = tmp_path / "voc" / "ImageSets" / "Action"
    for action, value in actions.items():
        lines = (action_dir / f"{action}_train.txt").read_text().splitlines()
        assert lines == [f"2007_000001 2 {1 if value else -1}"]
    with dsformats.read(tmp_path / "voc", "voc") as reader:
        subsets = sorted({item.subset for item in reader.items()})
    assert subsets == ["test", "train"]  # the flag files are not mistaken for subsets


def test_void_boundaries_survive_voc_to_voc(tmp_path, make_image):
    from .helpers import obj, save_palette_png, write_file, xml
    from .test_reader import STANDARD

    src = tmp_path / "src"
    write_file(src, "Annotations/x.xml", xml(obj("cat", (0, 0, 2, 2)) + obj("dog", (2, 0, 4, 2)), size=(4, 3, 3)))
    cat, dog = STANDARD.index("cat"), STANDARD.index("dog")
    classes = [[cat, cat, 255, dog], [cat, 255, dog, dog], [0, 0, 0, 0]]
    instances = [[1, 1, 255, 2], [1, 255, 2, 2], [0, 0, 0, 0]]
    save_palette_png(src / "SegmentationClass/x.png", classes)
    save_palette_png(src / "SegmentationObject/x.png", instances)
    write_file(src, "ImageSets/Segmentation/train.txt", "x\n")
    report = dsformats.convert(src, tmp_path / "out", "voc", source_format="voc")
    assert "mask" not in report.dropped
    with Image.open(tmp_path / "out/SegmentationClass/x.png") as image:
        assert np.asarray(image).tolist() == classes
    with Image.open(tmp_path / "out/SegmentationObject/x.png") as image:
        assert np.asarray(image).tolist() == instances
    coco = dsformats.convert(src, tmp_path / "coco", "coco", source_format="voc")
    assert coco.dropped["mask"][0] == 1  # COCO has no void: counted, not silent


def test_polygon_run_ends_match_pycocotools_one_by_one():
    """The vectorised decoding of many compressed RLE strings at once equals decoding each on its own."""
    import random

    from dsformats_voc.writer import polygon_run_ends
    from pycocotools import mask as mask_utils

    from dsformats.masks import decompress_counts

    rng = random.Random(7)
    for _ in range(200):
        height, width = rng.randrange(1, 70), rng.randrange(1, 70)
        polygons = [
            [v for _ in range(rng.randrange(3, 10)) for v in (rng.uniform(-5, width + 5), rng.uniform(-5, height + 5))]
            for _ in range(rng.randrange(1, 9))
        ]
        got = polygon_run_ends(polygons, height, width)
        rles = mask_utils.frPyObjects(polygons, height, width)
        assert len(got) == len(rles)
        for ends, rle in zip(got, rles, strict=True):
            assert ends.tolist() == np.cumsum(decompress_counts(rle["counts"].decode())).tolist()
            assert ends[-1] == height * width
    assert polygon_run_ends([], 5, 5) == []


def _coco_with_supercategories(root):
    """A COCO tree of 4 images whose categories have supercategories: itself, a non-label, and a label."""
    import json

    (root / "annotations").mkdir(parents=True)
    (root / "images" / "train").mkdir(parents=True)
    rng = np.random.default_rng(7)
    images, annotations = [], []
    for number in range(1, 5):
        pixels = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / "train" / f"{number}.png")
        images.append({"id": number, "file_name": f"{number}.png", "width": 8, "height": 6})
        annotations.append({"id": number, "image_id": number, "category_id": 1 + number % 4, "bbox": [1, 1, 3, 2],
                            "area": 6, "iscrowd": 0, "segmentation": []})
    categories = [{"id": 1, "name": "person", "supercategory": "person"}, {"id": 2, "name": "car", "supercategory":
                  "vehicle"}, {"id": 3, "name": "bus", "supercategory": "vehicle"}, {"id": 4, "name": "wheel",
                  "supercategory": "car"}]
    doc = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(doc))
    return root


def test_label_parents_that_are_not_labels_are_reported_once(tmp_path):
    """COCO supercategories have no place in a VOC label map unless they are labels (then: parts)."""
    from dsformats.scaleout import convert_distributed

    src = _coco_with_supercategories(tmp_path / "coco")
    reason = "VOC keeps a parent only as a label whose part this is (parts do not nest)"
    report = dsformats.convert(src, tmp_path / "voc", "voc", source_format="coco")
    assert report.dropped["label parent"] == [2, reason]  # car and bus lose "vehicle"; wheel is car's part
    lines = (tmp_path / "voc" / "labelmap.txt").read_text().splitlines()[1:]
    assert {line.split(":")[0]: line.split(":")[2] for line in lines} == {"person": "", "car": "wheel", "bus": ""}
    sharded = convert_distributed(src, tmp_path / "sharded", "voc", source_format="coco", engine="processes",
                                  shards=2)
    assert not [w for w in sharded.warnings if "single process" in w]  # merged, not the fallback
    assert sharded.dropped["label parent"] == [2, reason]  # once, not once per shard
    with pytest.raises(DatasetError, match=r"label parent: 2"):
        dsformats.convert(src, tmp_path / "strict", "voc", source_format="coco", strict=True)
    assert not (tmp_path / "strict").exists()
    kept = dsformats.convert(src, tmp_path / "coco-again", "coco", source_format="coco")
    assert "label parent" not in kept.dropped


def test_an_empty_dict_attribute_is_an_empty_element_with_a_warning(tmp_path, make_image):
    """It reads back as empty text, so the conversion says so (as for any non-text value)."""
    items = [Item(id="a", attributes={"meta": {}, "note": "kept"}, media=_image(make_image, seed=1))]
    report = dsformats.write(items, tmp_path / "voc", "voc")
    assert report.warnings == ["VOC XML elements hold text: non-text item attribute values were written as text"]
    assert "\n  <meta />\n  <note>kept</note>\n" in (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    with dsformats.read(tmp_path / "voc", "voc") as reader:
        assert [item.attributes for item in reader.items()] == [{"meta": "", "note": "kept"}]


def test_item_attributes_are_written_as_annotation_children(tmp_path, make_image):
    """Item attributes become <annotation> children (what the reader keeps of an XML comes back); values
    that cannot be elements are dropped and counted, non-text ones are written as text with a warning."""
    attributes = {
        "folder": "VOC2007",
        "source": {"database": "The VOC2007 Database", "image": "flickr"},
        "owner": {"name": "Tim <Chaves> & co"},
        "path": ["a", "b"],
        "license": 3,
        "empty": None,
        "size": "reserved", "bad name": "x", "blob": b"bytes", "nested": [["x"]],
    }
    items = [Item(id="a", attributes=attributes, media=_image(make_image, seed=1)),
             Item(id="sub/b", media=_image(make_image, seed=2))]
    report = dsformats.write(items, tmp_path / "voc", "voc")
    assert report.dropped == {"item attribute": [4, "not a VOC XML element (a name, and text, dicts or lists)"]}
    assert any("non-text item attribute values were written as text" in w for w in report.warnings)
    text = (tmp_path / "voc" / "Annotations" / "a.xml").read_text()
    assert text.startswith("<annotation>\n  <folder>VOC2007</folder>\n  <filename>a.png</filename>\n  <source>\n"
                           "    <database>The VOC2007 Database</database>\n    <image>flickr</image>\n  </source>\n"
                           "  <owner>\n    <name>Tim &lt;Chaves&gt; &amp; co</name>\n  </owner>\n"
                           "  <path>a</path>\n  <path>b</path>\n  <license>3</license>\n  <empty />\n  <size>")
    nested = (tmp_path / "voc" / "Annotations" / "sub" / "b.xml").read_text()
    assert "<folder>JPEGImages/sub</folder>" in nested and "<database>Unknown</database>" in nested
    with dsformats.read(tmp_path / "voc", "voc") as reader:
        back = {item.id: item.attributes for item in reader.items()}
    assert back == {"a": {"folder": "VOC2007", "source": {"database": "The VOC2007 Database", "image": "flickr"},
                          "owner": {"name": "Tim <Chaves> & co"}, "path": ["a", "b"], "license": "3", "empty": ""},
                    "sub/b": {}}
    # VOC -> COCO: the kept elements are image fields
    dsformats.convert(tmp_path / "voc", tmp_path / "coco", "coco", source_format="voc")
    import json

    (doc,) = [json.loads(p.read_text()) for p in (tmp_path / "coco" / "annotations").glob("*.json")]
    image = next(i for i in doc["images"] if i["file_name"] == "a.png")
    assert image["owner"] == {"name": "Tim <Chaves> & co"} and image["folder"] == "VOC2007"


def test_parts_attach_to_a_later_parent_and_nested_parts_are_labels(tmp_path):
    """A part is attached to its parent label wherever the parent comes in the label list (with
    --label-map voc too); VOC parts do not nest, so a part of a part is a label of its own, and its lost
    parent is counted."""
    from dsformats.model import Categories, LabelDef

    labels = [LabelDef(name="paw", parent="dog2"), LabelDef(name="dog2"), LabelDef(name="claw", parent="paw"),
              LabelDef(name="cat")]
    header = Header(categories=Categories(labels=labels))
    items = [Item(id="a", annotations=[Bbox(x=1, y=1, w=2, h=2, label="cat")])]
    for mode in ("source", "voc"):
        report = dsformats.write(items, tmp_path / mode, "voc", header=header, options={"label_map": mode})
        lines = (tmp_path / mode / "labelmap.txt").read_text().splitlines()[1:]
        parts = {line.split(":")[0]: line.split(":")[2] for line in lines}
        assert parts["dog2"] == "paw" and parts["claw"] == "" and "paw" not in parts, mode
        assert report.dropped["label parent"][0] == 1, mode  # claw's parent paw is a part


def test_a_part_of_a_voc_part_is_a_label_with_the_voc_label_map(tmp_path):
    """With --label-map voc, head is a part of person: a header label under head becomes a label of its own."""
    from dsformats.model import Categories, LabelDef

    header = Header(categories=Categories(labels=[LabelDef(name="head"), LabelDef(name="ear", parent="head")]))
    items = [Item(id="a", annotations=[Bbox(x=1, y=1, w=2, h=2, label="ear")])]
    report = dsformats.write(items, tmp_path / "voc", "voc", header=header, options={"label_map": "voc"})
    lines = (tmp_path / "voc" / "labelmap.txt").read_text().splitlines()[1:]
    parts = {line.split(":")[0]: line.split(":")[2] for line in lines}
    assert parts["person"] == "head,hand,foot" and parts["ear"] == ""
    assert report.dropped["label parent"][0] == 1  # ear's parent head is a part
    source = dsformats.write(items, tmp_path / "source", "voc", header=header)
    assert "label parent" not in source.dropped  # here head is a label, and ear its part
