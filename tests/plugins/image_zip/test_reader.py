"""image_zip reader: reference assets, ids, subsets, junk, case, laziness, duplicates, unsafe names."""

from __future__ import annotations

import shutil
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import dsformats
from dsformats import DatasetError
from dsformats.zipstream import ZipMember

from .conftest import pixels, read_all, write_zip

# ------------------------------------------------------------------------------------ reference assets


def test_can_import(image_zip_assets: Path):
    """Datumaro's test_can_import: 1.zip holds 1.jpg (10x10)."""
    archive = image_zip_assets / "1.zip"
    with zipfile.ZipFile(archive) as zf:
        raw = zf.read("1.jpg")
    with dsformats.read(archive, "image_zip") as reader:
        items = list(reader.items())
        assert [(i.subset, i.id) for i in items] == [("default", "1")]
        media = items[0].media
        assert media.suffix == ".jpg"
        assert media.name == f"{archive}!1.jpg"
        assert media.size == (10, 10)
        assert media.read_bytes() == raw
        assert reader.header.subsets == ("default",)
        assert reader.header.size_hint == 1


def test_can_import_from_directory(image_zip_assets: Path):
    """Datumaro's test_can_import_from_directory: both archives land in subset default."""
    with dsformats.read(image_zip_assets, "image_zip") as reader:
        items = {(i.subset, i.id): i.media.size for i in reader.items()}
        assert reader.header.subsets == ("default",)
    assert items == {("default", "1"): (10, 10), ("default", "2"): (10, 5)}


def test_import_detects_format(image_zip_assets: Path):
    with dsformats.read(image_zip_assets) as reader:
        assert sorted(i.id for i in reader.items()) == ["1", "2"]


def test_subset_from_archive(image_zip_assets: Path):
    with dsformats.read(image_zip_assets, "image_zip", options={"subset_from": "archive"}) as reader:
        assert reader.header.subsets == ("1", "2")
        assert sorted((i.subset, i.id) for i in reader.items()) == [("1", "1"), ("2", "2")]


def test_shards_one_per_archive(image_zip_assets: Path):
    with dsformats.read(image_zip_assets, "image_zip") as reader:
        shards = reader.shards()
    assert [(s.key, s.size_hint) for s in shards] == [("1.zip", 1), ("2.zip", 1)]


def test_each_shard_reads_one_archive(tmp_path: Path, make_image):
    root = tmp_path / "d"
    data = {"a": make_image(2, 2, seed=1), "b": make_image(2, 2, seed=2), "c": make_image(2, 2, seed=3)}
    write_zip(root / "x.zip", {"a.png": data["a"], "b.png": data["b"]})
    write_zip(root / "sub" / "y.zip", {"c.png": data["c"]})
    with dsformats.read(root, "image_zip") as reader:
        keys = [s.key for s in reader.shards()]
    assert keys == ["sub/y.zip", "x.zip"]
    per_shard = {key: read_all(root, shard=key) for key in keys}
    assert per_shard == {
        "sub/y.zip": [("default", "c", data["c"])],
        "x.zip": [("default", "a", data["a"]), ("default", "b", data["b"])],
    }
    assert read_all(root) == per_shard["sub/y.zip"] + per_shard["x.zip"]
    with pytest.raises(DatasetError, match="'z.zip'") as info:
        read_all(root, shard="z.zip")
    assert "sub/y.zip, x.zip" in str(info.value)


def test_members_can_be_read_interleaved(tmp_path: Path):
    blobs = {f"{n}.jpg": bytes([n]) * 300_000 + bytes(range(256)) for n in range(3)}
    archive = write_zip(tmp_path / "in.zip", blobs, compression=zipfile.ZIP_DEFLATED)
    with dsformats.read(archive, "image_zip") as reader:
        streams = [item.media.open() for item in reader.items()]
        try:
            chunks: list[list[bytes]] = [[], [], []]
            while True:
                got = [s.read(4096) for s in streams]
                if not any(got):
                    break
                for parts, chunk in zip(chunks, got, strict=True):
                    parts.append(chunk)
        finally:
            for s in streams:
                s.close()
    assert [b"".join(parts) for parts in chunks] == list(blobs.values())


def test_bogus_reader_option_is_rejected(image_zip_assets: Path):
    with pytest.raises(dsformats.OptionError, match="archive") as info:
        with dsformats.read(image_zip_assets, "image_zip", options={"subset_from": "folder"}):
            pass
    assert "none" in str(info.value)
    with pytest.raises(dsformats.OptionError, match="subset_from"):
        with dsformats.read(image_zip_assets, "image_zip", options={"subsets": "x"}):
            pass


# --------------------------------------------------------------------------------------- ids and layout


def test_relative_paths(tmp_path: Path, make_image):
    """Datumaro's test_relative_paths: nested members give nested ids, bytes unchanged."""
    names = ["1.png", "a/2.png", "a/b/3.png"]
    data = {name: make_image(4, 3, ".png", seed=n) for n, name in enumerate(names)}
    archive = write_zip(tmp_path / "in.zip", data)
    assert read_all(archive) == [
        ("default", "1", data["1.png"]),
        ("default", "a/2", data["a/2.png"]),
        ("default", "a/b/3", data["a/b/3.png"]),
    ]


def test_dot_components_are_normalised(tmp_path: Path, make_image):
    data = make_image(2, 2, ".png")
    archive = write_zip(tmp_path / "in.zip", {"./a//b.png": data})
    assert read_all(archive) == [("default", "a/b", data)]


def test_nested_zips_at_any_depth(tmp_path: Path, make_image, compare_all):
    root = tmp_path / "data"
    images = {rel: make_image(3, 3, ".png", seed=n) for n, rel in enumerate(["top", "x/mid", "x/y/z/deep"])}
    for rel, data in images.items():
        write_zip(root / f"{rel}.zip", {f"{Path(rel).name}_img.png": data})
    got = read_all(root, subset_from="archive")
    assert sorted(got) == [
        ("deep", "deep_img", images["x/y/z/deep"]),
        ("mid", "mid_img", images["x/mid"]),
        ("top", "top_img", images["top"]),
    ]
    with dsformats.read(root, "image_zip") as reader:
        assert [s.key for s in reader.shards()] == ["top.zip", "x/mid.zip", "x/y/z/deep.zip"]


def test_same_stem_in_two_folders_with_subset_from_archive(tmp_path: Path, make_image):
    write_zip(tmp_path / "d" / "a" / "train.zip", {"1.png": make_image(2, 2)})
    write_zip(tmp_path / "d" / "b" / "train.zip", {"2.png": make_image(2, 2)})
    with pytest.raises(DatasetError, match="train") as info:
        read_all(tmp_path / "d", subset_from="archive")
    assert "a/train.zip" in str(info.value) and "b/train.zip" in str(info.value)


def test_junk_members_are_skipped(tmp_path: Path, make_image):
    good = make_image(5, 4, ".jpg", seed=1)
    archive = write_zip(
        tmp_path / "in.zip",
        [
            ("__MACOSX/", None),
            ("__MACOSX/._a.jpg", b"\x00\x05\x16\x07 resource fork"),
            ("__MACOSX/sub/b.jpg", good),
            ("._x.jpg", b"\x00\x05\x16\x07"),
            ("sub/._y.jpg", b"\x00\x05\x16\x07"),
            (".DS_Store", b"Bud1"),
            ("sub/.DS_Store", b"Bud1"),
            ("Thumbs.db", b"junk"),
            ("sub/", None),
            ("sub/deeper/", None),
            ("a.jpg", good),
        ],
    )
    assert read_all(archive) == [("default", "a", good)]


def test_non_image_members_are_ignored(tmp_path: Path, make_image):
    png = make_image(3, 2, ".png")
    archive = write_zip(
        tmp_path / "in.zip",
        {"readme.txt": b"hello", "labels.json": b"{}", "noext": b"x", "img.png": png, "data.csv": b"1,2"},
    )
    assert read_all(archive) == [("default", "img", png)]


def test_upper_case_suffixes(tmp_path: Path, make_image):
    jpg = make_image(6, 5, ".jpg", seed=3)
    tif = make_image(2, 7, ".tif", seed=4)
    archive = write_zip(tmp_path / "d" / "UPPER.ZIP", {"Photo.JPG": jpg, "scan.TIFF": tif})
    for path in (archive, archive.parent):
        with dsformats.read(path, "image_zip") as reader:
            items = list(reader.items())
            assert [(i.id, i.media.suffix, i.media.size) for i in items] == [
                ("Photo", ".jpg", (6, 5)),
                ("scan", ".tiff", (2, 7)),
            ]
            assert [i.media.read_bytes() for i in items] == [jpg, tif]
    assert read_all(archive.parent, subset_from="archive")[0][:2] == ("UPPER", "Photo")


def test_various_pillow_suffixes_are_images(tmp_path: Path, make_image):
    suffixes = [".bmp", ".webp", ".jpeg", ".tif"]
    members = {f"i{n}{ext}": make_image(3, 3, ext, seed=n) for n, ext in enumerate(suffixes)}
    got = read_all(write_zip(tmp_path / "in.zip", members))
    assert [(i, data) for _, i, data in got] == [(name.split(".")[0], data) for name, data in members.items()]


def test_media_pixels_decode(tmp_path: Path, make_image):
    png = make_image(7, 3, ".png", seed=9)
    archive = write_zip(tmp_path / "in.zip", {"x.png": png}, compression=zipfile.ZIP_DEFLATED)
    with dsformats.read(archive, "image_zip") as reader:
        (item,) = reader.items()
        image = item.media.open_image()
        try:
            assert (image.mode, image.size, image.tobytes()) == pixels(png)
        finally:
            image.close()


# ---------------------------------------------------------------------------------------------- errors


@pytest.fixture(params=[False, True], ids=["hashes", "every-hash-repeated"])
def compare_all(request, monkeypatch) -> bool:
    """Item ids are compared exactly only where their hashes repeat; with every hash taken as repeated (as
    if they all collided), the answers must be the same."""
    if request.param:
        from dsformats_image_zip import reader as reader_module

        monkeypatch.setattr(reader_module, "repeated_values", set)
    return request.param


def test_duplicate_ids_in_one_zip(tmp_path: Path, make_image, compare_all):
    archive = write_zip(tmp_path / "in.zip", {"a.jpg": make_image(2, 2, ".jpg"), "a.png": make_image(2, 2)})
    with pytest.raises(DatasetError) as info:
        read_all(archive)
    message = str(info.value)
    assert f"{archive}!a.jpg" in message and f"{archive}!a.png" in message and "'a'" in message


def test_duplicate_ids_across_zips_in_subset_default(tmp_path: Path, make_image, compare_all):
    one = write_zip(tmp_path / "d" / "one.zip", {"x/1.png": make_image(2, 2)})
    two = write_zip(tmp_path / "d" / "two.zip", {"x/1.png": make_image(2, 2, seed=1)})
    with pytest.raises(DatasetError) as info:
        read_all(tmp_path / "d")
    assert f"{one}!x/1.png" in str(info.value) and f"{two}!x/1.png" in str(info.value)
    # With subset_from=archive the same names are in different subsets: no clash.
    assert sorted((s, i) for s, i, _ in read_all(tmp_path / "d", subset_from="archive")) == [
        ("one", "x/1"),
        ("two", "x/1"),
    ]


@pytest.mark.parametrize("member", ["../evil.jpg", "a/../../evil.jpg", "/abs.jpg", "a\\..\\evil.jpg"])
def test_escaping_member_names_are_rejected(tmp_path: Path, make_image, member: str):
    archive = write_zip(tmp_path / "in.zip", {"ok.jpg": make_image(2, 2, ".jpg"), member: b"x"})
    with pytest.raises(DatasetError) as info:
        read_all(archive)
    assert f"{archive}!{member}" in str(info.value)


def test_not_a_zip_is_a_clear_error(tmp_path: Path):
    fake = tmp_path / "backup.zip"
    fake.write_text("this is not a zip\n")
    with pytest.raises(DatasetError, match="not a readable zip") as info:
        read_all(fake)
    assert str(fake) in str(info.value)


def test_not_a_zip_in_a_directory_is_a_clear_error(tmp_path: Path, make_image):
    write_zip(tmp_path / "d" / "a.zip", {"1.png": make_image(2, 2)})
    (tmp_path / "d" / "b.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DatasetError, match="not a readable zip") as info:
        read_all(tmp_path / "d")
    assert str(tmp_path / "d" / "b.zip") in str(info.value)


def test_directory_without_zips(tmp_path: Path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="no .zip archive"):
        read_all(tmp_path / "d")


def test_missing_path(tmp_path: Path):
    with pytest.raises(DatasetError, match="no such file"):
        read_all(tmp_path / "nope.zip")


def test_encrypted_member_is_rejected(tmp_path: Path, make_image):
    archive = write_zip(tmp_path / "in.zip", {"a.png": make_image(2, 2)})
    data = bytearray(archive.read_bytes())
    # Set the "encrypted" flag bit in the local header and in the central directory entry.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        pos = data.index(signature)
        data[pos + offset] |= 0x1
    archive.write_bytes(bytes(data))
    with pytest.raises(DatasetError, match="encrypted") as info:
        read_all(archive)
    assert f"{archive}!a.png" in str(info.value)


def test_corrupt_member_fails_on_decode_with_its_name(tmp_path: Path, make_image):
    archive = write_zip(tmp_path / "in.zip", {"bad.jpg": b"\xff\xd8 not really a jpeg"})
    with dsformats.read(archive, "image_zip") as reader:
        (item,) = reader.items()
        assert item.media.read_bytes() == b"\xff\xd8 not really a jpeg"
        with pytest.raises(DatasetError) as info:
            item.media.size  # noqa: B018
    assert f"{archive}!bad.jpg" in str(info.value)


# ------------------------------------------------------------------------------------------- laziness


def test_no_member_is_opened_before_its_first_read(tmp_path: Path, make_image, monkeypatch):
    members = {f"{n}.png": make_image(3, 3, seed=n) for n in range(5)}
    archive = write_zip(tmp_path / "in.zip", members)
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def counting_open(self, name, *args, **kwargs):
        opened.append(name if isinstance(name, str) else name.filename)
        return real_open(self, name, *args, **kwargs)

    real_compressed = ZipMember.compressed

    def counting_compressed(self):  # reads of a member's stored bytes (positional, no ZipFile.open)
        opened.append(self.info.filename)
        return real_compressed(self)

    monkeypatch.setattr(zipfile.ZipFile, "open", counting_open)
    monkeypatch.setattr(ZipMember, "compressed", counting_compressed)
    monkeypatch.setattr(zipfile.ZipFile, "read", lambda *a, **k: pytest.fail("ZipFile.read called"))
    with dsformats.read(archive, "image_zip") as reader:
        items = list(reader.items())
        assert [i.id for i in items] == ["0", "1", "2", "3", "4"]
        assert opened == []
        assert items[3].media.read_bytes() == members["3.png"]
        assert opened == ["3.png"]
        assert items[1].media.size == (3, 3)
        assert opened == ["3.png", "1.png"]


def test_items_do_not_hold_member_bytes(tmp_path: Path):
    """Iterating a ~24 MB archive keeps memory flat: items reference members, not their bytes."""
    import os

    blob = os.urandom(1 << 20)
    archive = tmp_path / "big.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for n in range(24):
            zf.writestr(f"img{n:02}.jpg", blob[n:] + blob[:n])
    tracemalloc.start()
    try:
        with dsformats.read(archive, "image_zip") as reader:
            items = list(reader.items())
            _, peak = tracemalloc.get_traced_memory()
            assert len(items) == 24
            assert peak < 2 << 20, f"reading the index peaked at {peak:,} bytes"
            total = 0
            for item in items:
                with item.media.open() as stream:
                    while chunk := stream.read(1 << 16):
                        total += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 24 << 20
    assert peak < 4 << 20, f"streaming all members peaked at {peak:,} bytes"


def test_reader_closes_its_archive_files(tmp_path: Path, make_image, image_zip_assets: Path):
    src = tmp_path / "d"
    shutil.copytree(image_zip_assets, src)
    with dsformats.read(src, "image_zip") as reader:
        items = list(reader.items())
    with pytest.raises(dsformats.DatasetError, match=r"1\.zip!1\.jpg: cannot read: .*closed"):
        items[0].media.read_bytes()


def test_split_member_splits_as_posixpath_splitext():
    """Every name of up to 6 characters from ``a . / B``: the same split as ``posixpath.splitext``."""
    import itertools
    import posixpath

    from dsformats_image_zip.schema import split_member

    for length in range(7):
        for chars in itertools.product("a./B", repeat=length):
            name = "".join(chars)
            stem, suffix = posixpath.splitext(name)
            assert split_member(name) == (stem, suffix.lower()), name


def test_members_that_are_not_images_are_named_in_a_warning(tmp_path: Path, make_image):
    """Not read, not silent: a conversion's report names the members that are not images (directories and
    OS metadata such as ``__MACOSX/`` say nothing)."""
    image = make_image(4, 3, ".png", seed=1)
    members = {"1.png": image, "readme.txt": b"hi", "labels.csv": b"a,b", "d/": None, "__MACOSX/._1.png": b"j",
               "notes.md": b"x", "a/meta.json": b"{}", ".DS_Store": b"x"}
    archive = write_zip(tmp_path / "in.zip", members)
    report = dsformats.convert(archive, tmp_path / "out", "image_zip", source_format="image_zip")
    assert report.items_written == {"default": 1}
    assert report.warnings == [
        f"{archive}: 4 members are not images and were not read: readme.txt, labels.csv, notes.md and 1 more"
    ]
    one = write_zip(tmp_path / "one.zip", {"1.png": image, "readme.txt": b"hi"})
    report = dsformats.convert(one, tmp_path / "out-one", "image_zip", source_format="image_zip")
    assert report.warnings == [f"{one}: 1 member is not an image and was not read: readme.txt"]
    clean = write_zip(tmp_path / "clean.zip", {"1.png": image, "d/": None, "__MACOSX/._1.png": b"j"})
    assert dsformats.convert(clean, tmp_path / "out-clean", "image_zip", source_format="image_zip").warnings == []


# ------------------------------------------------------------------------------------ range shards


@pytest.fixture
def big_archive(tmp_path: Path, make_image) -> tuple[Path, list[str]]:
    """An archive of 700 records: 697 images, a text file, a directory and an encrypted (bad) member."""
    members: list[tuple[str, bytes | None]] = [(f"d{i % 3}/{i:04d}.png", make_image(2, 2, seed=i)) for i in range(697)]
    members[300:300] = [("notes.txt", b"hi"), ("e/", None)]
    members.insert(600, ("bad.png", make_image(2, 2, seed=9999)))
    path = write_zip(tmp_path / "big.zip", members)
    data = bytearray(path.read_bytes())  # mark bad.png encrypted: flag bit 0 of its central directory record
    at = data.index(b"bad.png", data.index(b"PK\x01\x02")) - 46  # its central record: 46 bytes, then the name
    assert data[at : at + 4] == b"PK\x01\x02"
    data[at + 8] |= 1
    path.write_bytes(bytes(data))
    return path, [name for name, _ in members]


def test_one_archive_splits_into_ranges_of_its_records(big_archive):
    """With fewer archives than shards wanted, an archive is split at every 256th record; each range shard,
    read again through the ``shard`` option or as a pickled shard reader, gives its part of the items."""
    import pickle

    path, _names = big_archive
    options = {"skip_bad_items": True}
    with pytest.raises(DatasetError, match="bad.png: member is encrypted"), dsformats.read(path, "image_zip"):
        pass
    everything = dsformats.convert(path, path.parent / "whole", "image_zip", source_format="image_zip", **options)
    assert len(everything.skipped) == 1
    with dsformats.policy.reporting(dsformats.Report(), skip_bad_items=True), \
            dsformats.read(path, "image_zip") as reader:
        rows = [(i.subset, i.id, i.media.read_bytes()) for i in reader.items()]
        assert [(s.key, s.size_hint) for s in reader.shards(1)] == [("big.zip", 697)]
        shards = reader.shards(3)
        payloads = [pickle.dumps(reader.shard_reader(s.key)) for s in shards]
    assert [(s.key, s.size_hint) for s in shards] == [("big.zip@0:256", 256), ("big.zip@256:512", 254),
                                                      ("big.zip@512:700", 187)]
    assert len(rows) == 697 and rows[0] == ("default", "d0/0000", read_all(path.parent / "whole")[0][2])
    shipped = []
    for payload in payloads:
        with pickle.loads(payload) as shard_reader:
            shipped.append([(i.subset, i.id, i.media.read_bytes()) for i in shard_reader.items()])
    assert [len(piece) for piece in shipped] == [256, 254, 187]
    assert [row for piece in shipped for row in piece] == rows
    with dsformats.policy.reporting(dsformats.Report(), skip_bad_items=True):
        reopened = [read_all(path, shard=s.key) for s in shards]
    assert reopened == shipped


def test_a_shard_reader_parses_only_its_records(big_archive, monkeypatch):
    import pickle

    from dsformats.zipstream import StreamingZipReader

    path, names = big_archive
    with dsformats.policy.reporting(dsformats.Report(), skip_bad_items=True), \
            dsformats.read(path, "image_zip") as reader:
        payload = pickle.dumps(reader.shard_reader("big.zip@256:512"))
    parsed: list[str] = []
    real = StreamingZipReader.iter_infos

    def recording(self, *args, **kwargs):
        for info in real(self, *args, **kwargs):
            parsed.append(info.filename)
            yield info

    monkeypatch.setattr(StreamingZipReader, "iter_infos", recording)
    with pickle.loads(payload) as shard_reader:
        ids = [item.id for item in shard_reader.items()]
    assert parsed == names[256:512]
    assert ids == [n[:-4] for n in names[256:512] if n.endswith(".png")]


def test_shard_readers_take_any_range_of_whole_blocks_and_name_the_archives_once(big_archive, monkeypatch):
    """An empty range reads nothing (not the whole archive); refused keys fail as the reader option does; the
    archives' shard keys are made once however many shard readers are asked for."""
    import pickle

    from dsformats_image_zip.reader import ImageZipReader

    path, _ = big_archive
    made = []
    real = ImageZipReader._shard_keys
    monkeypatch.setattr(ImageZipReader, "_shard_keys", lambda self, paths: made.append(len(paths)) or real(self, paths))
    with dsformats.policy.reporting(dsformats.Report(), skip_bad_items=True), \
            dsformats.read(path, "image_zip") as reader:
        keys = ("big.zip@256:256", "big.zip@0:256", "big.zip", "big.zip@512:700")
        chosen = [reader.shard_reader(key) for key in keys]
        with pytest.raises(DatasetError, match="no shard 'other.zip@0:256'; the shards are: big.zip"):
            reader.shard_reader("other.zip@0:256")
        with pytest.raises(DatasetError, match="no shard of records 5:256"):
            reader.shard_reader("big.zip@5:256")
    assert made == [1]
    assert [r.header.size_hint for r in chosen] == [0, 256, 697, 187]
    with pickle.loads(pickle.dumps(chosen[0])) as empty:
        assert list(empty.items()) == []


@pytest.mark.parametrize(("key", "error"), [("big.zip@5:256", "no shard of records 5:256"),
                                            ("big.zip@0:300", "no shard of records 0:300"),
                                            ("big.zip@768:800", "no shard of records 768:700"),
                                            ("other.zip@0:256", "no shard 'other.zip@0:256'")])
def test_a_range_that_is_not_a_shard_is_refused(big_archive, key, error):
    path, _ = big_archive
    with pytest.raises(DatasetError, match=error), dsformats.policy.reporting(dsformats.Report(), skip_bad_items=True):
        read_all(path, shard=key)
    with pytest.raises(dsformats.OptionError, match="START:STOP"):
        read_all(path, shard="big.zip@a:b")


@pytest.mark.parametrize("shipped", [True, False], ids=["shard-readers", "reopened"])
@pytest.mark.parametrize("target", ["voc", "coco", "image_zip"])
def test_range_shards_convert_as_one_process(big_archive, target, shipped, monkeypatch):
    """A local pool converts the range shards of one archive: the same output and report as one process, the
    bad member and the text file told once, whether the workers get their part of the client's index or
    (a shard reader that does not pickle) open the archive again and meet the bad member themselves."""
    from dsformats import scaleout
    from dsformats.scaleout import convert_distributed
    from dsformats.testing import read_tree

    if not shipped:
        monkeypatch.setattr(scaleout, "_shard_reader", lambda reader, plan, run: None)
    path, _ = big_archive
    out = path.parent
    options = {} if target == "image_zip" else {"save_images": True}
    single = dsformats.convert(path, out / "single", target, source_format="image_zip", writer_options=options,
                               skip_bad_items=True)
    report = convert_distributed(path, out / "pool", target, source_format="image_zip", engine="processes",
                                 workers=2, shards=3, writer_options=options, skip_bad_items=True)
    assert read_tree(out / "pool") == read_tree(out / "single")
    assert not [w for w in report.warnings if "single process" in w]
    assert report.items_written == single.items_written == {"default": 697}
    assert report.skipped == single.skipped and len(single.skipped) == 1
    assert report.warnings == single.warnings and len(single.warnings) == 1


def test_archives_of_a_directory_split_in_proportion_to_their_images(big_archive, make_image):
    """With fewer archives than shards wanted, each archive gets a share of the shards by its images; an
    archive given one shard keeps its plain key. Subsets per archive survive the split."""
    import pickle

    path, _ = big_archive
    write_zip(path.parent / "small.zip", [(f"s{i}.png", make_image(2, 2, seed=5000 + i)) for i in range(300)])
    options = {"subset_from": "archive"}
    with dsformats.policy.reporting(dsformats.Report(), skip_bad_items=True), \
            dsformats.read(path.parent, "image_zip", options=options) as reader:
        rows = [(i.subset, i.id, i.media.read_bytes()) for i in reader.items()]
        shards = reader.shards(4)
        payloads = [pickle.dumps(reader.shard_reader(s.key)) for s in shards]
    assert [(s.key, s.size_hint) for s in shards] == [
        ("big.zip@0:256", 256), ("big.zip@256:512", 254), ("big.zip@512:700", 187), ("small.zip", 300)]
    pieces = []
    for payload in payloads:
        with pickle.loads(payload) as shard_reader:
            pieces += [(i.subset, i.id, i.media.read_bytes()) for i in shard_reader.items()]
    assert pieces == rows and {subset for subset, _, _ in rows} == {"big", "small"} and len(rows) == 997
