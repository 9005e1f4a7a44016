"""VOC reader: Datumaro's reference trees, the layout variants other tools write, and broken inputs."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

import dsformats
from dsformats import Bbox, DatasetError, Label, Mask

from .helpers import copy_fixture, obj, read_all, save_palette_png, write_file, xml

STANDARD = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow diningtable dog horse motorbike "
    "person pottedplant sheep sofa train tvmonitor"
).split()
ACTIONS = (
    "other jumping phoning playinginstrument reading ridingbike ridinghorse running takingphoto usingcomputer walking"
).split()


# ------------------------------------------------------------------------------------ Datumaro fixtures
def test_voc_dataset1_items(datumaro_fixtures, tmp_path):
    root = copy_fixture(datumaro_fixtures, "voc_dataset1", tmp_path)
    header, items, snaps = read_all(root)
    assert [(i.subset, i.id) for i in items] == [("test", "2007_000002"), ("train", "2007_000001")]
    assert header.subsets == ("test", "train")

    empty, item = items
    assert empty.annotations == ()
    assert empty.media.path.endswith("JPEGImages/2007_000002.jpg")
    assert item.media.known_size == (20, 10)

    boxes = [a for a in item.annotations if isinstance(a, Bbox)]
    cat, person, head = boxes
    assert cat == Bbox(
        x=1,
        y=2,
        w=2,
        h=2,
        label="cat",
        attributes={"pose": "Unspecified", "truncated": True, "occluded": False, "difficult": False},
    )
    assert isinstance(cat.x, int) and isinstance(cat.w, int)
    assert (person.label, person.x, person.y, person.w, person.h) == ("person", 4, 5, 2, 2)
    assert person.group != 0
    expected_actions = {name: i % 2 == 0 for i, name in enumerate(ACTIONS)}
    assert person.attributes == {"truncated": False, "occluded": False, "difficult": False, **expected_actions}
    assert head == Bbox(x=5.5, y=6, w=2.0, h=2, label="head", group=person.group)

    labels = sorted(a.label for a in item.annotations if isinstance(a, Label))
    assert labels == sorted("aeroplane bird bottle car chair diningtable horse person sheep train ignored".split())
    (mask,) = [a for a in item.annotations if isinstance(a, Mask)]
    assert mask.label == "bicycle"
    assert mask.group not in (0, person.group)  # instance 1 is not the first object (a cat)
    bitmap = mask.to_bitmap()
    assert bitmap.shape == (10, 20) and bitmap.all()


def test_voc_dataset1_categories(datumaro_fixtures, tmp_path):
    root = copy_fixture(datumaro_fixtures, "voc_dataset1", tmp_path)
    header, _, _ = read_all(root)
    categories = header.categories
    assert categories.label_names == [*STANDARD, "ignored", "head", "hand", "foot"]
    assert categories.get("cat").color == (64, 0, 0)
    assert categories.get("person").attributes == tuple(ACTIONS)
    assert categories.get("head").parent == "person"
    assert categories.get("ignored").color == (224, 224, 192)


def test_voc_dataset2_labelmap_floats_and_no_images(datumaro_fixtures, tmp_path):
    root = copy_fixture(datumaro_fixtures, "voc_dataset2", tmp_path)
    header, items, _ = read_all(root)
    assert header.categories.label_names == [*STANDARD, "ignored"]
    assert header.categories.get("person").attributes == ()
    assert [(i.subset, i.id) for i in items] == [("trainval", x) for x in ("@", "a", "b", "c", "d")]
    by_id = {i.id: i for i in items}
    assert by_id["@"].annotations == ()
    assert all(i.media is None for i in items)  # no JPEGImages and no <size>
    (box,) = by_id["a"].annotations
    assert box == Bbox(
        x=1.0,
        y=2.0,
        w=3.0,
        h=4.0,
        label="background",
        attributes={"truncated": False, "occluded": True, "difficult": False},
    )
    assert isinstance(box.x, float)
    assert [(a.label, a.x, a.y, a.w, a.h) for i in items[2:] for a in i.annotations] == [
        ("aeroplane", 2.0, 2.0, 5.0, 4.0),
        ("bicycle", 3.0, 1.0, 8.0, 5.0),
        ("bird", 4.0, 4.0, 4.0, 4.0),
    ]


def test_voc_dataset3_skips_blank_and_comment_lines(datumaro_fixtures, tmp_path):
    root = copy_fixture(datumaro_fixtures, "voc_dataset3", tmp_path)
    header, items, _ = read_all(root)
    assert header.subsets == ("train",)
    (item,) = items
    assert item.id == "2007_000001"
    assert [(a.label, a.x, a.y, a.w, a.h) for a in item.annotations] == [("cat", 1, 2, 2, 2)]


def test_pixel_inclusive_convention(datumaro_fixtures, tmp_path):
    root = copy_fixture(datumaro_fixtures, "voc_dataset3", tmp_path)
    _, (item,), _ = read_all(root, bbox_convention="pixel_inclusive")
    (box,) = item.annotations
    assert (box.x, box.y, box.w, box.h) == (0, 1, 3, 3)


# ------------------------------------------------------------------------------------ layouts
def test_palette_masks_with_void_border(tmp_path, make_image):
    write_file(tmp_path, "Annotations/x.xml", xml(obj("cat", (0, 0, 2, 2)) + obj("dog", (2, 0, 4, 2)), size=(4, 3, 3)))
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "JPEGImages/x.jpg").write_bytes(make_image(4, 3, ".jpg"))
    cat, dog = STANDARD.index("cat"), STANDARD.index("dog")
    save_palette_png(tmp_path / "SegmentationClass/x.png", [[cat, cat, 255, dog], [cat, 255, dog, dog], [0, 0, 0, 0]])
    save_palette_png(tmp_path / "SegmentationObject/x.png", [[1, 1, 255, 2], [1, 255, 2, 2], [0, 0, 0, 0]])
    _, (item,), _ = read_all(tmp_path)
    boxes = [a for a in item.annotations if isinstance(a, Bbox)]
    *masks, void = [a for a in item.annotations if isinstance(a, Mask)]
    assert (void.label, void.attributes) == (None, {"voc_void": True})
    assert void.to_bitmap().tolist() == [[False, False, True, False], [False, True, False, False], [False] * 4]
    assert [(m.label, m.group) for m in masks] == [("cat", boxes[0].group), ("dog", boxes[1].group)]
    assert boxes[0].group == 1 and boxes[1].group == 2
    assert masks[0].to_bitmap().tolist() == [[True, True, False, False], [True, False, False, False], [False] * 4]
    assert masks[1].to_bitmap().tolist() == [[False, False, False, True], [False, False, True, True], [False] * 4]


def test_class_only_and_instance_only_masks(tmp_path):
    cat = STANDARD.index("cat")
    save_palette_png(tmp_path / "SegmentationClass/c.png", [[0, cat], [255, cat]])
    save_palette_png(tmp_path / "SegmentationObject/i.png", [[0, 1], [1, 255]])
    write_file(tmp_path, "Annotations/i.xml", xml(obj("dog", (0, 0, 2, 2)), size=(2, 2, 3)))
    write_file(tmp_path, "ImageSets/Main/train.txt", "c\ni\n")
    _, items, _ = read_all(tmp_path)
    c, i = items
    mask, void = c.annotations
    assert (mask.label, mask.group, mask.to_bitmap().tolist()) == ("cat", 0, [[False, True], [False, True]])
    assert (void.label, void.to_bitmap().tolist()) == (None, [[False, False], [True, False]])
    box, mask, void = i.annotations
    assert (void.label, void.to_bitmap().tolist()) == (None, [[False, False], [False, True]])
    assert (mask.label, mask.group) == ("dog", box.group) and box.group == 1
    assert mask.to_bitmap().tolist() == [[False, True], [True, False]]


def test_subsets_with_underscores_and_flag_files(tmp_path):
    write_file(tmp_path, "ImageSets/Main/train.txt", "a\n")
    write_file(tmp_path, "ImageSets/Main/train_extra.txt", "b\nc d\n")
    write_file(tmp_path, "ImageSets/Main/cat_train_extra.txt", "b  1\nc d  0\n")
    write_file(tmp_path, "ImageSets/Main/train_train.txt", "a  1\n")
    write_file(tmp_path, "ImageSets/Main/dog_train.txt", "a -1\n")
    header, items, _ = read_all(tmp_path)
    assert header.subsets == ("train", "train_extra")
    assert [(i.subset, i.id, i.annotations) for i in items] == [
        ("train", "a", (Label(label="train"),)),
        ("train_extra", "b", (Label(label="cat"),)),
        ("train_extra", "c d", (Label(label="cat", attributes={"difficult": True}),)),
    ]


def test_items_without_lists_filename_fallbacks_and_tolerance(tmp_path, make_image):
    # LabelImg style: basename <filename> for a nested id; no <size>, <depth> or <occluded>; no list files.
    write_file(tmp_path, "Annotations/sub/deep.xml", xml(obj("cat", (1.5, 2, 3.25, 4)), filename="deep.png", size=None))
    write_file(tmp_path, "Annotations/other.xml", xml(obj("dog"), filename="missing.jpg", size=None))
    (tmp_path / "JPEGImages/sub").mkdir(parents=True)
    (tmp_path / "JPEGImages/sub/deep.png").write_bytes(make_image(6, 5, ".png"))
    (tmp_path / "JPEGImages/other.bmp").write_bytes(make_image(7, 3, ".bmp"))
    header, items, _ = read_all(tmp_path)
    assert header.subsets == ("default",)
    other, deep = items
    assert deep.id == "sub/deep" and deep.media.path.endswith("JPEGImages/sub/deep.png")
    assert deep.media.size == (6, 5)
    assert (deep.annotations[0].x, deep.annotations[0].w) == (1.5, 1.75)
    assert deep.annotations[0].attributes["occluded"] is False
    assert other.media.path.endswith("JPEGImages/other.bmp")  # stem search


def test_trainval_is_skipped_when_train_and_val_cover_it(tmp_path):
    write_file(tmp_path, "ImageSets/Main/train.txt", "a\n")
    write_file(tmp_path, "ImageSets/Main/val.txt", "b\n")
    write_file(tmp_path, "ImageSets/Main/trainval.txt", "a\nb\n")
    header, items, _ = read_all(tmp_path)
    assert header.subsets == ("train", "val")
    assert [(i.subset, i.id) for i in items] == [("train", "a"), ("val", "b")]


def test_layout_lists_with_object_index_and_quotes(tmp_path):
    write_file(tmp_path, "ImageSets/Layout/train.txt", 'a 1\n"b c" 2\n')
    _, items, _ = read_all(tmp_path)
    assert [i.id for i in items] == ["a", "b c"]


def test_point_and_attributes(tmp_path):
    extra = (
        "<point><x>1.5</x><y>2</y></point><attributes><attribute><name>color</name><value>red</value>"
        "</attribute></attributes><difficult>1</difficult>"
    )
    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat", extra=extra)))
    _, (item,), _ = read_all(tmp_path)
    assert item.annotations[0].attributes == {
        "truncated": False,
        "occluded": False,
        "difficult": True,
        "point": (1.5, 2),
        "color": "red",
    }


# ------------------------------------------------------------------------------------ broken inputs
def _error(tmp_path) -> str:
    with pytest.raises(DatasetError) as info:
        read_all(tmp_path)
    return str(info.value)


def test_malformed_xml_names_file_and_line(tmp_path):
    write_file(tmp_path, "Annotations/a.xml", "<annotation>\n<object>\n<name>cat</nam>\n</object>\n</annotation>\n")
    message = _error(tmp_path)
    assert "Annotations/a.xml:3" in message and "malformed XML" in message


def test_unknown_label_without_labelmap(tmp_path):
    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat") + obj("unicorn")))
    message = _error(tmp_path)
    assert "Annotations/a.xml:" in message and "'unicorn'" in message and "labelmap.txt" in message
    line = int(message.split("a.xml:")[1].split(":")[0])
    text = (tmp_path / "Annotations/a.xml").read_text().splitlines()
    assert "<name>unicorn</name>" in text[line - 1]


def test_unknown_label_with_labelmap(tmp_path):
    write_file(tmp_path, "labelmap.txt", "background:0,0,0::\ncat:1,2,3::\n")
    write_file(tmp_path, "Annotations/a.xml", xml(obj("dog")))
    assert "not in labelmap.txt" in _error(tmp_path)


def test_mask_of_wrong_size(tmp_path):
    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat"), size=(4, 4, 3)))
    save_palette_png(tmp_path / "SegmentationClass/a.png", np.zeros((3, 5)))
    message = _error(tmp_path)
    assert "SegmentationClass/a.png" in message and "5x3" in message and "4x4" in message


def test_mask_with_undeclared_class(tmp_path):
    save_palette_png(tmp_path / "SegmentationClass/a.png", [[30]])
    message = _error(tmp_path)
    assert "SegmentationClass/a.png" in message and "class value 30" in message


def test_missing_image_is_reported_with_its_path(tmp_path):
    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat"), filename="a.jpg"))
    _, (item,), _ = read_all(tmp_path)
    assert item.media.known_size == (20, 10)  # the size survives
    with pytest.raises(DatasetError, match=r"JPEGImages/a\.jpg"):
        dsformats.convert(tmp_path, tmp_path / "out", "voc", source_format="voc", writer_options={"save_images": True})


@pytest.mark.parametrize(
    ("rel", "text", "expected"),
    [
        ("ImageSets/Main/cat_train.txt", "a 3\n", "cat_train.txt:1: flag '3'"),
        ("ImageSets/Layout/train.txt", '"a 1\n', "train.txt:1: expected 0 or 2 quotes"),
        ("labelmap.txt", "cat\n", "labelmap.txt:1: expected 4"),
        ("labelmap.txt", "cat:1,2::\n", "labelmap.txt:1: label 'cat' has colour"),
        ("ImageSets/Main/unicorn_train.txt", "a  1\n", "label 'unicorn'"),
    ],
)
def test_broken_lists_and_labelmap(tmp_path, rel, text, expected):
    write_file(tmp_path, "ImageSets/Main/train.txt", "a\n")
    write_file(tmp_path, rel, text)
    assert expected in _error(tmp_path)


def test_not_a_directory(tmp_path):
    path = write_file(tmp_path, "file.xml", "<annotation/>")
    with pytest.raises(DatasetError, match="directory"):
        with dsformats.read(path, "voc"):
            pass


def test_shard_readers_pickle_and_read_their_range_without_listing(datumaro_fixtures, tmp_path, monkeypatch):
    """A scale-out worker gets the client's index: the same items, in order, and no folder listed again."""
    import os
    import pickle

    from dsformats_voc import catalog
    from dsformats_voc import reader as voc_reader

    root = copy_fixture(datumaro_fixtures, "voc_dataset1", tmp_path)
    with dsformats.read(root, "voc") as reader:
        every = [(item.subset, item.id, item.annotations, item.media.read_bytes() if item.media else None)
                 for item in reader.items()]
        count = len(every)
        shipped = [pickle.dumps(reader.shard_reader(f"{start}:{min(start + 2, count)}"))
                   for start in range(0, count, 2)]
        monkeypatch.setattr(os, "scandir", lambda *a: pytest.fail("a shard reader listed a folder"))
        parts = []
        for data in shipped:
            with pickle.loads(data) as shard:
                parts += [(item.subset, item.id, item.annotations, item.media.read_bytes() if item.media else None)
                          for item in shard.items()]
        assert count >= 2 and parts == every
        monkeypatch.undo()
        with reader.shard_reader("0:1") as shard:  # in the same process: closing it keeps the client's index
            assert [item.id for item in shard.items()] == [every[0][1]]
        assert [(item.subset, item.id) for item in reader.items()] == [(s, i) for s, i, _, _ in every]

    monkeypatch.setattr(catalog, "_FLUSH", 4)  # ids spooled to a temporary file: the index does not pickle
    with dsformats.read(root, "voc") as reader:
        with pytest.raises(TypeError, match="spooled"):
            pickle.dumps(reader.shard_reader("0:1"))
    monkeypatch.undo()
    monkeypatch.setattr(voc_reader, "_SHIP_LIMIT", 1)  # a large tree: each shard ships its own part of the index
    with dsformats.read(root, "voc") as reader:
        with pytest.raises(TypeError, match=f"index of {count} ids is not shipped"):
            pickle.dumps(reader)
        whole = len(pickle.dumps(reader.shard_reader(f"0:{count}")))
        sliced = [pickle.dumps(reader.shard_reader(f"{start}:{min(start + 2, count)}")) for start in range(0, count, 2)]
        with reader.shard_reader("1:2") as shard:  # still usable in this process
            assert [item.id for item in shard.items()] == [every[1][1]]
    assert all(len(data) < whole for data in sliced[1:])
    monkeypatch.setattr(os, "scandir", lambda *a: pytest.fail("a shard reader listed a folder"))
    parts = []
    for data in sliced:
        with pickle.loads(data) as shard:
            assert len(shard._ids) <= 2
            parts += [(item.subset, item.id, item.annotations, item.media.read_bytes() if item.media else None)
                      for item in shard.items()]
    assert parts == every


def test_a_shipped_part_of_the_index_keeps_an_item_listed_in_two_subsets(tmp_path, monkeypatch):
    """An id in two subset lists is two items; in one shard's part of the index it is one number."""
    import pickle

    from dsformats_voc import reader as voc_reader

    from dsformats.testing import generate_items

    header, items = generate_items(("bbox", "label"), seed=21, count=6)
    root = tmp_path / "voc"
    dsformats.write(items, root, "voc", header=header, options={"save_images": True})
    main = root / "ImageSets" / "Main"
    first = sorted(p for p in main.glob("*.txt") if "_" not in p.stem)[0]
    shared_id = first.read_text().split()[0]
    (main / "extra.txt").write_text(f"{shared_id}\n", encoding="utf-8")
    with dsformats.read(root, "voc") as reader:
        every = [(i.subset, i.id, i.annotations, i.media.read_bytes()) for i in reader.items()]
        monkeypatch.setattr(voc_reader, "_SHIP_LIMIT", 1)
        data = pickle.dumps(reader.shard_reader(f"0:{len(every)}"))
    assert [row[1] for row in every].count(shared_id) == 2
    with pickle.loads(data) as shard:
        assert len(shard._ids) == len(every) - 1
        assert [(i.subset, i.id, i.annotations, i.media.read_bytes()) for i in shard.items()] == every


def test_custom_label_colours_and_actions_are_reported_when_the_target_drops_them(tmp_path):
    import shutil
    from pathlib import Path

    root = tmp_path / "voc"
    shutil.copytree(Path(__file__).parents[3] / "examples" / "voc", root)
    labelmap = root / "labelmap.txt"
    assert "tree:128,128,0::" in labelmap.read_text()  # the palette's colour for line 3: nothing to report
    with dsformats.read(root, "voc") as reader:
        assert reader.header.metadata == {}
    text = labelmap.read_text().replace("tree:128,128,0::", "tree:10,20,30::")
    labelmap.write_text(text.replace("person:128,0,0::", "person:128,0,0::jumping,running"))
    with dsformats.read(root, "voc") as reader:
        assert reader.header.metadata == {"voc label colour": 1, "voc label action": 2}
        assert reader.header.metadata_format == "voc"

    report = dsformats.convert(root, tmp_path / "coco", "coco", source_format="voc")
    assert report.dropped["voc label colour"] == [1, "only a voc writer keeps it"]
    assert report.dropped["voc label action"] == [2, "only a voc writer keeps it"]
    report = dsformats.convert(root, tmp_path / "again", "voc", source_format="voc")
    assert not any(kind.startswith("voc label") for kind in report.dropped)
    written = (tmp_path / "again" / "labelmap.txt").read_text()
    assert "tree:10,20,30::" in written and "person:128,0,0::jumping,running" in written


# ------------------------------------------------------------------ a target that stores no annotations
@pytest.mark.parametrize("name", ["voc_dataset1", "voc_dataset2", "voc_dataset3", "broken"])
def test_image_zip_target_counts_annotations_it_does_not_build(datumaro_fixtures, tmp_path, monkeypatch, name):
    """Into image_zip the reader counts boxes, parts, class labels and masks without building them: the report
    equals that of writing the same items built in full, and a broken XML is still a bad item."""
    if name == "broken":
        root = copy_fixture(datumaro_fixtures, "voc_dataset1", tmp_path)
        write_file(root, "Annotations/2007_000002.xml", "<annotation><object><name>cat</name></annotation>")
    else:
        root = copy_fixture(datumaro_fixtures, name, tmp_path)
    from dsformats.policy import reporting

    probe = dsformats.Report()
    with reporting(probe, skip_bad_items=True), dsformats.read(root, "voc") as reader:
        built = list(reader.items())  # outside a conversion: every annotation is built
    full = dsformats.write(built, tmp_path / "full", "image_zip", header=reader.header)
    expected: dict[str, int] = {}
    for item in built:
        for ann in item.annotations:
            expected[ann.kind] = expected.get(ann.kind, 0) + 1

    def refuse(*_args, **_kwargs):
        raise AssertionError("a box was built for a target that stores none")

    monkeypatch.setattr("dsformats_voc.reader.VocReader._box", refuse)
    counted = dsformats.convert(root, tmp_path / "counted", "image_zip", source_format="voc", skip_bad_items=True)
    assert counted.dropped == full.dropped
    assert {kind: count for kind, (count, _) in counted.dropped.items() if kind in expected} == expected
    assert counted.items_written == full.items_written
    assert counted.skipped == probe.skipped
    assert bool(counted.skipped) == (name == "broken")
    if name == "voc_dataset1":
        assert {"bbox", "label", "mask"} <= expected.keys()


def test_image_zip_target_counts_objects_without_reading_their_values(tmp_path):
    """A box value that is not a number spoils the item for a target that stores boxes; into image_zip the
    box is only counted (its value is never used), however the XML is written (``d.xml`` has a comment, which
    ElementTree reads). An unknown label is a bad item either way."""
    from PIL import Image

    (tmp_path / "JPEGImages").mkdir()
    for stem in ("a", "b", "c", "d"):
        Image.frombytes("RGB", (20, 10), os.urandom(600)).save(tmp_path / "JPEGImages" / f"{stem}.jpg")
    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat") + obj("dog"), filename="a.jpg"))
    write_file(tmp_path, "Annotations/b.xml", xml(obj("cat", box=(1, "abc", 3, 4)), filename="b.jpg"))
    write_file(tmp_path, "Annotations/c.xml", xml(obj("unicorn"), filename="c.jpg"))
    write_file(tmp_path, "Annotations/d.xml",
               xml(obj("cat", box=("", 2, "inf", 4)) + "<!-- checked -->", filename="d.jpg"))

    boxes = dsformats.convert(tmp_path, tmp_path / "coco", "coco", source_format="voc", skip_bad_items=True)
    where = tmp_path / "Annotations"
    assert [entry.split(": ", 1) for entry in boxes.skipped] == [
        [f"{where / 'b.xml'}:7", "<ymin> is not a number: 'abc'"],
        [f"{where / 'c.xml'}:5", "unknown label 'unicorn': it is not a standard VOC label; declare it in labelmap.txt"],
        [f"{where / 'd.xml'}:7", "<xmin> is not a number: ''"],
    ]
    assert boxes.items_written == {"default": 1}

    images = dsformats.convert(tmp_path, tmp_path / "out", "image_zip", source_format="voc", skip_bad_items=True)
    assert images.items_written == {"default": 3} and images.skipped == boxes.skipped[1:2]
    assert images.dropped["bbox"][0] == 4
    with zipfile.ZipFile(tmp_path / "out" / "default.zip") as archive:
        assert sorted(archive.namelist()) == ["a.jpg", "b.jpg", "d.jpg"]
        assert archive.read("b.jpg") == (tmp_path / "JPEGImages" / "b.jpg").read_bytes()


# ------------------------------------------------------------------ other <annotation> children: kept
VOC2007_HEADER = (
    "<folder>VOC2007</folder>\n<source><database>The VOC2007 Database</database><annotation>PASCAL VOC2007"
    "</annotation><image>flickr</image><flickrid>336426776</flickrid></source>\n<owner><flickrid>Elder Timothy"
    " Chaves</flickrid><name>Tim Chaves</name></owner>\n"
)


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "elementtree"])
def test_other_annotation_children_are_kept_as_item_attributes(tmp_path, monkeypatch, quick):
    """VOC2007's <folder>, <source> and <owner> (and any unknown element) become item attributes; the
    <folder> and <source> that the writer gives any item are not kept, so its output reads back as it was."""
    if not quick:
        monkeypatch.setattr("dsformats_voc.reader.VocReader._quick_parse", lambda self, data, count_only=False: None)
    document = xml(obj("cat")).replace("<annotation>\n", "<annotation>\n" + VOC2007_HEADER)
    write_file(tmp_path, "Annotations/a.xml", document)
    written = xml(obj("cat"), filename="b.jpg").replace(
        "<annotation>\n", "<annotation>\n<folder>JPEGImages</folder><source><database>Unknown</database>"
        "<annotation>Unknown</annotation><image>Unknown</image></source><path>/data/b.jpg</path><note />")
    write_file(tmp_path, "Annotations/b.xml", written)
    _, items, _ = read_all(tmp_path)
    assert {item.id: item.attributes for item in items} == {
        "a": {"folder": "VOC2007",
              "source": {"database": "The VOC2007 Database", "annotation": "PASCAL VOC2007", "image": "flickr",
                         "flickrid": "336426776"},
              "owner": {"flickrid": "Elder Timothy Chaves", "name": "Tim Chaves"}},
        "b": {"path": "/data/b.jpg", "note": ""},
    }


def test_repeated_and_too_deep_annotation_children(tmp_path):
    deep = "<a>" * 9 + "x" + "</a>" * 9
    write_file(tmp_path, "Annotations/a.xml", xml(obj("cat")).replace(
        "<annotation>\n", f"<annotation>\n<path>1</path><path>2</path><keep><b><c>y</c></b></keep>{deep}"))
    report = dsformats.convert(tmp_path, tmp_path / "out", "coco", source_format="voc")
    (item,) = read_all(tmp_path)[1]
    assert item.attributes == {"path": ["1", "2"], "keep": {"b": {"c": "y"}}}
    assert any("<a> is nested more than 8 levels deep: not kept" in w for w in report.warnings)


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "elementtree"])
def test_other_object_children_are_kept_as_box_attributes(tmp_path, monkeypatch, quick):
    """An <object>'s unknown children (a detector's <score>, nested metadata) are attributes of its box, and
    the writer gives them back: text in <attributes>, dicts and lists as child elements."""
    if not quick:
        monkeypatch.setattr("dsformats_voc.reader.VocReader._quick_parse", lambda self, data, count_only=False: None)
    extra = "<score>0.93</score><meta><tool>labelme</tool><tags><t>a</t></tags></meta>"
    write_file(tmp_path / "voc", "Annotations/a.xml", xml(obj("cat", extra=extra)))
    (item,) = read_all(tmp_path / "voc")[1]
    (box,) = item.annotations
    expected = {"truncated": False, "occluded": False, "difficult": False, "score": "0.93",
                "meta": {"tool": "labelme", "tags": {"t": "a"}}}
    assert box.attributes == expected
    report = dsformats.convert(tmp_path / "voc", tmp_path / "again", "voc", source_format="voc")
    assert report.lossless
    (again,) = read_all(tmp_path / "again")[1]
    assert again.annotations[0].attributes == expected
    text = (tmp_path / "again" / "Annotations" / "a.xml").read_text()
    assert "<meta>\n      <tool>labelme</tool>\n      <tags>\n        <t>a</t>" in text


def test_folders_that_say_nothing_are_not_kept(tmp_path):
    """An empty <folder>, ours (JPEGImages/...) and the one Datumaro derives from the id are not item
    attributes; a real one (VOC2012) is."""
    for name, folder in [("2012_000001", "2012"), ("b", ""), ("c/d", "JPEGImages/c"), ("2012_000002", "VOC2012")]:
        document = xml(obj("cat"), filename=f"{name}.jpg").replace("<annotation>\n", f"<annotation><folder>{folder}"
                                                                    "</folder>\n")
        write_file(tmp_path, f"Annotations/{name}.xml", document)
    _, items, _ = read_all(tmp_path)
    assert {item.id: item.attributes for item in items} == {
        "2012_000001": {}, "b": {}, "c/d": {}, "2012_000002": {"folder": "VOC2012"}}


@pytest.mark.parametrize("quick", [True, False], ids=["quick", "elementtree"])
def test_a_size_no_image_can_have_is_ignored_with_a_warning(tmp_path, monkeypatch, make_image, quick):
    """<size> is only a hint: a side that is not a whole number from 1 to 2**31 - 1 is warned about and the
    image's header is read instead; zeros, which tools write for "unknown", are ignored quietly."""
    from dsformats.policy import reporting

    if not quick:
        monkeypatch.setattr("dsformats_voc.reader.VocReader._quick_parse", lambda self, data, count_only=False: None)
    sizes = {"a": ("1e17", "10"), "b": ("640.5", "480"), "c": ("-3", "10"), "d": ("0", "0"), "e": ("20", "10.0")}
    for stem, (width, height) in sizes.items():
        write_file(tmp_path, f"Annotations/{stem}.xml", xml(obj("cat"), filename=f"{stem}.png", size=None).replace(
            "<filename>", f"<size><width>{width}</width><height>{height}</height></size><filename>"))
        (tmp_path / "JPEGImages").mkdir(exist_ok=True)
        (tmp_path / "JPEGImages" / f"{stem}.png").write_bytes(make_image(7, 5, ".png"))
    with reporting(report := dsformats.Report()):
        _, items, _ = read_all(tmp_path)
    assert {item.id: item.media.known_size for item in items} == {
        "a": None, "b": None, "c": None, "d": None, "e": (20, 10)}
    assert {item.id: item.media.size for item in items if item.id != "e"} == dict.fromkeys("abcd", (7, 5))
    assert sorted(report.warnings) == [
        f"{tmp_path / 'Annotations' / name}.xml: <size> of {width} by {height} is not an image size; ignored (the "
        "image's own header gives its size where it is needed)" for name, (width, height) in sorted(sizes.items())
        if name in "abc"]


def test_planned_media_are_each_shards_images(datumaro_fixtures, tmp_path):
    """What a shard reader predicts for placed scale-out parts (dsformats.placement): the image the scan found
    for each item, with its size; an item whose XML alone knows its image is predicted with its size unknown."""
    from dsformats.testing import generate_items

    header, items = generate_items(("bbox",), seed=5, count=12)
    dsformats.write(items, tmp_path / "voc", "voc", header=header, options={"save_images": True})
    roots = [tmp_path / "voc", copy_fixture(datumaro_fixtures, "voc_dataset1", tmp_path)]
    for root in roots:
        with dsformats.read(root, "voc") as reader:
            for shard in reader.shards(3):
                sharded = reader.shard_reader(shard.key)
                planned = list(sharded.planned_media())
                with sharded:
                    actual = [(i.subset, i.id, i.media) for i in sharded.items()]
                assert [(p.subset, p.id) for p in planned] == [(s, i) for s, i, _ in actual] != []
                for p, (_, _, media) in zip(planned, actual, strict=True):
                    if media is None:
                        assert (p.suffix, p.size) == (None, None)
                    elif os.path.isfile(media.path):
                        assert (p.suffix, p.size) == (media.suffix, os.path.getsize(media.path))
                    else:
                        assert (p.suffix, p.size) == ("", None)
