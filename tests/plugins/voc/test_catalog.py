"""The VOC reader's compact bookkeeping: the id index, streamed list files, the unsorted folder scan."""

from __future__ import annotations

import io
import random

import dsformats_voc.catalog as catalog
import dsformats_voc.reader as voc_reader
import pytest
from dsformats_voc.catalog import IdNumbers

from dsformats import DatasetError, Label

from .helpers import obj, read_all, write_file, xml


def _random_ids(count: int) -> list[str]:
    rng = random.Random(7)
    alphabet = "ab/c_d é漢 0123456789"
    ids = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(count)}
    return sorted(ids)


@pytest.mark.parametrize("spool_bytes", [catalog._FLUSH, 16])
@pytest.mark.parametrize("hash_mask", [catalog._MASK, 0, 3])  # 0: every id has the same hash; 3: four hashes
def test_id_numbers_are_exact_with_colliding_hashes_and_spooled_ids(monkeypatch, spool_bytes, hash_mask):
    monkeypatch.setattr(catalog, "_FLUSH", spool_bytes)
    monkeypatch.setattr(catalog, "_MASK", hash_mask)
    monkeypatch.setattr(catalog, "_RECENT_MIN", 5)  # merges into the sorted array happen often
    ids = _random_ids(300)
    index = IdNumbers()
    assert [index.number(i) for i in ids] == list(range(len(ids)))
    assert [index.number(i) for i in reversed(ids)] == list(reversed(range(len(ids))))  # repeats: same numbers
    assert len(index) == len(ids)
    assert [index.id(n) for n in range(len(ids))] == ids
    assert [index.find(i) for i in ids] == list(range(len(ids)))
    assert index.find("not there") is None and index.find(ids[0] + "x") is None
    assert index.number("\udcff surrogate") == len(ids)  # ids from undecodable names survive
    assert index.id(len(ids)) == "\udcff surrogate"
    index.close()


@pytest.mark.parametrize(
    "text",
    [
        "a\nb\r\nc\rd\n",
        "\ufeffa b\r\n\r\n  c  \n# comment\n#1 -1\nlast",
        "x\x85y\u2028z\x0bw\x0cv\x1cu\n",
        "\r\n\r\n\r\n",
        "",
        "é漢\r\nsecond\r",
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, voc_reader._LIST_CHUNK])
def test_list_lines_stream_in_chunks_like_splitlines(monkeypatch, text, chunk):
    monkeypatch.setattr(voc_reader, "_LIST_CHUNK", chunk)
    data = text.encode("utf-8")
    expected = [
        (n, line.strip())
        for n, line in enumerate(data.decode("utf-8-sig").splitlines(), 1)
        if line.strip() and (not line.strip().startswith("#") or line.strip() == "#1 -1")
    ]
    got = list(voc_reader._lines(io.BytesIO(data), "list.txt", lambda name: name == "#1"))
    assert got == expected


@pytest.mark.parametrize("chunk", [1, 4, voc_reader._LIST_CHUNK])
def test_list_lines_that_are_not_utf8_name_the_file(monkeypatch, chunk):
    monkeypatch.setattr(voc_reader, "_LIST_CHUNK", chunk)
    with pytest.raises(DatasetError, match=r"^list\.txt: not UTF-8 text \(invalid start byte\)$"):
        list(voc_reader._lines(io.BytesIO(b"ok\n\xff\n"), "list.txt"))
    with pytest.raises(DatasetError, match=r"^list\.txt: not UTF-8 text \(unexpected end of data\)$"):
        list(voc_reader._lines(io.BytesIO(b"ok\n\xc3"), "list.txt"))


def _tree(root):
    """Lists, class flags, nested and unlisted ids, several images of one id, a file-less listed id."""
    for item_id in ("a", "n/b", "c", "z", "m"):
        write_file(root, f"Annotations/{item_id}.xml", xml(obj("cat"), filename=f"{item_id.split('/')[-1]}.jpg"))
    for name in ("a.png", "a.jpg", "a.bmp", "n/b.jpg", "q.jpg", "c.JPG"):
        path = root / "JPEGImages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded")
    write_file(root, "ImageSets/Main/train.txt", "c\na\nghost\na\n")
    write_file(root, "ImageSets/Main/val.txt", "n/b\n")
    write_file(root, "ImageSets/Main/cat_train.txt", "c  1\na  0\nghost -1\n")
    write_file(root, "ImageSets/Main/cat_val.txt", "n/b 1\n")
    write_file(root, "ImageSets/Main/dog_train.txt", "a  1\nc -1\nghost -1\n")
    write_file(root, "ImageSets/Main/dog_val.txt", "n/b -1\n")
    return root


def test_reader_items_with_the_compact_bookkeeping(tmp_path, monkeypatch):
    root = _tree(tmp_path / "voc")
    header, items, _ = read_all(root)
    assert header.subsets == ("train", "val", "default")
    assert [(i.subset, i.id) for i in items] == [
        ("train", "c"), ("train", "a"), ("train", "ghost"), ("val", "n/b"),
        ("default", "m"), ("default", "q"), ("default", "z"),
    ]
    by_id = {i.id: i for i in items}
    assert by_id["a"].media.path.endswith("JPEGImages/a.jpg")  # named by <filename>
    assert by_id["c"].media.path.endswith("JPEGImages/c.JPG")  # no c.jpg: the scan's own name for the id
    assert by_id["q"].media.path.endswith("JPEGImages/q.jpg") and by_id["ghost"].media is None
    flags = {i.id: [(a.label, a.attributes) for a in i.annotations if isinstance(a, Label)] for i in items}
    assert flags == {
        "c": [("cat", {})], "a": [("cat", {"difficult": True}), ("dog", {})], "ghost": [], "n/b": [("cat", {})],
        "m": [], "q": [], "z": [],
    }
    # the same items when every id hash collides and the ids are spooled to disk
    monkeypatch.setattr(catalog, "_MASK", 0)
    monkeypatch.setattr(catalog, "_FLUSH", 4)
    monkeypatch.setattr(voc_reader, "_LIST_CHUNK", 3)
    header2, items2, _ = read_all(root)
    assert header2 == header and items2 == items


def test_first_image_in_sorted_order_is_the_items_own(tmp_path):
    root = tmp_path / "voc"
    for name in ("x.png", "x.jpeg", "x.JPG", "x.jpg"):
        path = root / "JPEGImages" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not decoded")
    _, items, _ = read_all(root)
    assert [(i.id, i.media.path.rsplit("/", 1)[1]) for i in items] == [("x", "x.JPG")]
