"""VOC against hostile trees: traversal, XML attacks, broken XML, symlinks, odd ids, the bad-item policy."""

from __future__ import annotations

import os

import pytest

import dsformats
from dsformats import Bbox, DatasetError, Header, Item, Media

from .helpers import obj, read_all, write_file, xml


def _error(root, **options) -> str:
    with pytest.raises(DatasetError) as info:
        read_all(root, **options)
    return str(info.value)


def _image(make_image, seed=0):
    return Media.from_bytes(make_image(8, 6, ".jpg", seed=seed), ".jpg", name=f"img{seed}.jpg")


# ------------------------------------------------------------------------------------------- traversal
@pytest.mark.parametrize(
    "filename", ["../../secret.jpg", "/etc/passwd", "C:/secret.jpg", "C:secret.jpg", "..\\secret.jpg", "a\\..\\b.jpg"]
)
def test_filename_traversal_names_the_xml(tmp_path, make_image, filename):
    (tmp_path / "secret.jpg").write_bytes(make_image(4, 4, ".jpg"))
    root = tmp_path / "voc"
    write_file(root, "Annotations/a.xml", xml(obj("cat"), filename=filename))
    message = _error(root)
    assert "Annotations/a.xml" in message and repr(filename) in message


@pytest.mark.parametrize("line", ["../x", "/abs/x", "C:/x", "a\\..\\..\\x"])
def test_list_ids_that_escape_are_refused_with_file_and_line(tmp_path, line):
    write_file(tmp_path, "ImageSets/Main/train.txt", f"a\n{line}\n")
    message = _error(tmp_path)
    assert "ImageSets/Main/train.txt:2" in message


@pytest.mark.parametrize("item_id", ["../up", "/abs", "C:/drive", "a\\b", "a/../../b"])
def test_writer_refuses_unsafe_item_ids(tmp_path, make_image, item_id):
    item = Item(id="safe", media=_image(make_image), annotations=[Bbox(x=0, y=0, w=1, h=1, label="cat")])
    object.__setattr__(item, "id", item_id)  # bypassing the model, as a buggy reader could
    with pytest.raises(DatasetError):
        dsformats.write([item], tmp_path / "out", "voc", options={"save_images": True})
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize("subset", ["../up", "a/b", "..", " padded"])
def test_writer_refuses_unsafe_subset_names(tmp_path, subset):
    with pytest.raises(DatasetError, match="subset"):
        dsformats.write([Item(id="a", subset=subset)], tmp_path / "out", "voc")


# -------------------------------------------------------------------------------------------- XML attacks
BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<annotation><filename>&lol9;</filename></annotation>
"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
        "<annotation><filename>&xxe;</filename></annotation>\n",
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY % p SYSTEM "http://127.0.0.1:9/x.dtd"> %p;]>\n'
        "<annotation/>\n",
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e "x">]>\n<annotation><filename>&e;</filename></annotation>\n',
    ],
    ids=["billion-laughs", "external-entity", "external-parameter-entity", "any-entity"],
)
def test_xml_entities_are_refused_naming_the_file(tmp_path, document):
    write_file(tmp_path, "Annotations/a.xml", document)
    message = _error(tmp_path)
    assert "Annotations/a.xml" in message and ("refused XML" in message or "malformed XML" in message)


def test_external_dtd_is_not_fetched(tmp_path):
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY leak "LEAKED">')
    doc = f'<?xml version="1.0"?>\n<!DOCTYPE annotation SYSTEM "{secret.as_uri()}">\n' + xml(obj("cat"))[:-1]
    write_file(tmp_path / "voc", "Annotations/a.xml", doc)
    _, (item,), _ = read_all(tmp_path / "voc")  # the DTD is neither fetched nor needed
    assert [a.label for a in item.annotations] == ["cat"]


# ------------------------------------------------------------------------------------------- broken XML
@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (xml(obj("cat"))[:40], "malformed XML"),
        ("", "malformed XML"),
        ("\xff\xfe garbage", "malformed XML"),
        ("<notvoc/>", "expected <annotation>"),
        (xml(obj("cat", box=("1", "two", "3", "4"))), "<ymin> is not a number"),
        (xml(obj("cat", box=(1, "nan", 3, 4))), "<ymin> is not a number"),
        (xml(obj("cat", box=(1, 2, "inf", 4))), "<xmax> is not a number"),
        (xml(obj("cat", box=(1, 2, "1e999", 4))), "<xmax> is not a number"),
        (xml("<object><name>cat</name></object>"), "missing <bndbox>"),
        (xml("<object><bndbox><xmin>1</xmin></bndbox></object>"), "without <name>"),
        (xml(obj("cat")).replace("<width>20</width>", "<width>wide</width>"), "<width> is not a number"),
        ("<annotation>" + "<a>" * 5000 + "</a>" * 5000 + "</annotation>", None),
        (xml(obj("cat", extra="<point><x>1</x></point>")), "<y> is not a number"),
        (xml(obj("cat", extra="<attributes><attribute><name>k</name></attribute></attributes>")), "<attribute>"),
    ],
    ids=[
        "truncated", "empty", "not-utf8", "wrong-root", "text-coordinate", "nan", "inf", "overflow", "no-bndbox",
        "no-name", "bad-size", "deep-nesting", "bad-point", "bad-attribute",
    ],
)
def test_broken_xml_is_a_dataset_error_naming_the_file(tmp_path, document, expected):
    path = tmp_path / "Annotations" / "a.xml"
    path.parent.mkdir(parents=True)
    path.write_bytes(document.encode("latin-1") if document.startswith("\xff") else document.encode("utf-8"))
    if expected is None:  # deep nesting is harmless: not an error, and no RecursionError
        read_all(tmp_path)
        return
    message = _error(tmp_path)
    assert "Annotations/a.xml" in message and expected in message


# ------------------------------------------------------------------------------------------------ symlinks
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_image_outside_is_not_followed(tmp_path, make_image):
    (tmp_path / "secret.jpg").write_bytes(make_image(4, 4, ".jpg"))
    root = tmp_path / "voc"
    write_file(root, "Annotations/a.xml", xml(obj("cat"), filename="a.jpg"))
    (root / "JPEGImages").mkdir()
    os.symlink(tmp_path / "secret.jpg", root / "JPEGImages" / "a.jpg")
    assert "symlink that points outside" in _error(root)
    os.symlink(tmp_path / "secret.jpg", root / "JPEGImages" / "b.jpg")  # listed only by the directory walk
    (root / "Annotations" / "a.xml").unlink()
    with pytest.raises(DatasetError, match="no VOC data found"):
        read_all(root)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_annotation_outside_is_not_read(tmp_path):
    outside = write_file(tmp_path, "elsewhere/b.xml", xml(obj("dog")))
    root = tmp_path / "voc"
    write_file(root, "Annotations/a.xml", xml(obj("cat")))
    os.symlink(outside, root / "Annotations" / "b.xml")
    _, items, _ = read_all(root)
    assert [i.id for i in items] == ["a"]


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_data_directory_outside_is_not_followed(tmp_path, make_image):
    outside = tmp_path / "elsewhere"
    write_file(outside, "b.xml", xml(obj("dog")))
    root = tmp_path / "voc"
    write_file(root, "Annotations/a.xml", xml(obj("cat")))
    os.symlink(outside, root / "SegmentationClass")
    os.symlink(outside, root / "JPEGImages")
    _, items, _ = read_all(root)
    assert [i.id for i in items] == ["a"]


# -------------------------------------------------------------------------------------------- error policy
def _two_items(root, bad: str):
    write_file(root, "ImageSets/Main/train.txt", "a\nb\nc\n")
    write_file(root, "Annotations/a.xml", xml(obj("cat"), filename="a.jpg"))
    write_file(root, "Annotations/b.xml", bad)
    write_file(root, "Annotations/c.xml", xml(obj("dog"), filename="c.jpg"))


@pytest.mark.parametrize(
    ("bad", "where"),
    [
        ("<annotation><object>", "Annotations/b.xml"),
        (xml(obj("cat", box=(1, 2, "x", 4))), "Annotations/b.xml:"),
        (xml(obj("unicorn")), "Annotations/b.xml:"),
        (xml(obj("cat"), filename="../b.jpg"), "Annotations/b.xml"),
    ],
    ids=["bad-xml", "bad-bbox", "unknown-label", "traversal"],
)
def test_bad_item_fails_by_default_and_is_skipped_on_request(tmp_path, bad, where):
    root = tmp_path / "voc"
    _two_items(root, bad)
    with pytest.raises(DatasetError, match=where):
        dsformats.convert(root, tmp_path / "out", "voc", source_format="voc")
    assert not (tmp_path / "out").exists()
    report = dsformats.convert(root, tmp_path / "out", "voc", source_format="voc", skip_bad_items=True)
    assert report.items_written == {"train": 2}
    assert len(report.skipped) == 1 and where in report.skipped[0]
    _, items, _ = read_all(tmp_path / "out")
    assert sorted(i.id for i in items) == ["a", "c"]


def test_missing_image_fails_by_default_and_is_skipped_on_request(tmp_path, make_image):
    root = tmp_path / "voc"
    _two_items(root, xml(obj("cat"), filename="b.jpg"))
    for name in ("a", "c"):
        write_file(root, f"JPEGImages/{name}.jpg", "")
        (root / "JPEGImages" / f"{name}.jpg").write_bytes(make_image(20, 10, ".jpg"))
    options = {"save_images": True}
    with pytest.raises(DatasetError, match=r"JPEGImages/b\.jpg"):
        dsformats.convert(root, tmp_path / "out", "voc", source_format="voc", writer_options=options)
    report = dsformats.convert(
        root, tmp_path / "out", "voc", source_format="voc", writer_options=options, skip_bad_items=True
    )
    assert report.items_written == {"train": 2} and "JPEGImages/b.jpg" in report.skipped[0]
    assert sorted(p.name for p in (tmp_path / "out" / "JPEGImages").iterdir()) == ["a.jpg", "c.jpg"]
    assert sorted(p.name for p in (tmp_path / "out" / "Annotations").iterdir()) == ["a.xml", "c.xml"]


# --------------------------------------------------------------------------------------- images and ids
def test_corrupt_image_passes_a_byte_copy_and_fails_only_when_decoded(tmp_path, make_image):
    root = tmp_path / "voc"
    write_file(root, "Annotations/a.xml", xml(obj("cat"), filename="a.jpg"))
    (root / "JPEGImages").mkdir()
    bad = make_image(20, 10, ".jpg")[:100]
    (root / "JPEGImages" / "a.jpg").write_bytes(bad)
    dsformats.convert(root, tmp_path / "copy", "voc", source_format="voc", writer_options={"save_images": True})
    assert (tmp_path / "copy" / "JPEGImages" / "a.jpg").read_bytes() == bad
    with pytest.raises(DatasetError, match=r"JPEGImages/a\.jpg"):
        dsformats.convert(root, tmp_path / "png", "voc", source_format="voc",
                          writer_options={"save_images": True, "image_ext": ".png"})
    assert [loc for loc, _ in dsformats.verify(root, "voc")] == [str(root / "JPEGImages" / "a.jpg")]


ODD_IDS = ["naïve café", "日本語/画像 1", "a b (c) [d]", "x&y=z+w@v!t,s;r'q", "emoji 🐱", "-dash", "50%"]


def test_odd_ids_round_trip(tmp_path, make_image):
    items = [
        Item(id=i, subset="train", media=_image(make_image, n), annotations=[Bbox(x=1, y=1, w=2, h=2, label="cat")])
        for n, i in enumerate(ODD_IDS)
    ]
    dsformats.write(items, tmp_path / "out", "voc", options={"save_images": True})
    _, back, _ = read_all(tmp_path / "out")
    assert sorted(i.id for i in back) == sorted(ODD_IDS)
    for item in back:
        assert item.media.read_bytes() and [a.label for a in item.annotations] == ["cat"]


def test_case_only_different_ids_are_reported(tmp_path, make_image):
    items = [Item(id=i, media=_image(make_image)) for i in ("Cat", "cat", "dir/A", "DIR/a")]
    report = dsformats.write(items, tmp_path / "out", "voc", header=Header(), options={"save_images": True})
    collisions = [w for w in report.warnings if "case" in w]
    assert len(collisions) == 2 and "'Cat'" in collisions[0] and "'cat'" in collisions[0]
