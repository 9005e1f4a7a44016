"""Datasets inside archives and on object storage (memory://): reading, detection, hardening and writing."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("fsspec")
pytest.importorskip("upath")

import dsformats  # noqa: E402
from dsformats import DatasetError, OutputExistsError  # noqa: E402
from dsformats.archives import COMPLETE_MARKER  # noqa: E402
from dsformats.testing.compare import canonical_item  # noqa: E402

COCO = [
    "coco", "coco_captions", "coco_image_info", "coco_instances", "coco_labels", "coco_panoptic",
    "coco_person_keypoints", "coco_roboflow", "coco_stuff", "mmdet_coco",
]
VOC = ["voc_dataset1", "voc_dataset2", "voc_dataset3"]
DATASETS = [f"coco_dataset/{name}" for name in COCO] + [f"voc_dataset/{name}" for name in VOC]


# --------------------------------------------------------------------------------------------- helpers


def _files(root: Path) -> list[tuple[str, Path]]:
    return sorted((p.relative_to(root).as_posix(), p) for p in root.rglob("*") if p.is_file())


def pack(root: Path, archive: Path, *, wrap: str = "", dot: bool = False, stored: bool = False) -> Path:
    """Zip or tar ``root``'s files as ``archive``; ``wrap`` adds a top folder, ``dot`` writes ``./``-names,
    ``stored`` zips without compression."""
    prefix = (wrap + "/" if wrap else "") or ("./" if dot else "")
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as out:
            for rel, path in _files(root):
                out.write(path, prefix + rel)
    else:
        mode = "w:gz" if archive.name.endswith((".tar.gz", ".tgz")) else "w"
        with tarfile.open(archive, mode) as out:
            for rel, path in _files(root):
                out.add(path, prefix + rel)
    return archive


def snapshot(path, fmt: str | None = None) -> tuple:
    """Everything a reader yields: header, items with annotations, attributes and the media bytes and size."""
    with dsformats.read(path, fmt) as reader:
        header = reader.header
        items = []
        for item in reader.items():
            media = None
            if item.media is not None:
                try:
                    data = item.media.read_bytes()
                except DatasetError:
                    data = b"<missing>"
                media = (item.media.suffix, item.media.known_size, data)
            items.append((canonical_item(item), item.attributes, media))
    return header.categories, header.subsets, header.size_hint, sorted(items, key=repr)


@pytest.fixture
def memory():
    """A fresh ``memory://`` bucket URL, emptied afterwards."""
    import fsspec

    fs = fsspec.filesystem("memory")
    bucket = f"memory://test-{uuid.uuid4().hex[:8]}"
    yield bucket
    if fs.exists(bucket):
        fs.rm(bucket, recursive=True)


# --------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("packing", ["flat.zip", "wrapped.zip", "wrapped.tar.gz", "dot.tar"])
def test_archive_reads_exactly_as_the_unpacked_tree(datumaro_fixtures, tmp_path, dataset, packing):
    tree = tmp_path / "tree"
    shutil.copytree(datumaro_fixtures / dataset, tree)
    kind, _, suffix = packing.partition(".")
    archive = pack(tree, tmp_path / f"data.{suffix}", wrap="export" if kind == "wrapped" else "", dot=kind == "dot")
    fmt = dsformats.detect_format(tree)
    assert dsformats.detect_format(archive) == fmt
    assert snapshot(archive) == snapshot(tree)


def test_archive_media_are_read_lazily_and_named_by_their_member(datumaro_fixtures, tmp_path):
    archive = pack(datumaro_fixtures / "coco_dataset/coco_roboflow", tmp_path / "rf.zip", wrap="rf")
    with dsformats.read(archive) as reader:
        item = next(iter(reader.items()))
        assert item.media.path is None  # not a local file: writers stream it
        assert "rf/train/" in item.media.name and str(archive) in item.media.name
        assert item.media.read_bytes()[:4] == b"\x89PNG" or item.media.read_bytes()[:2] == b"\xff\xd8"


def test_flat_image_zip_is_still_read_natively(tmp_path, make_image):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("a.png", make_image(4, 3))
        out.writestr("sub/b.jpg", make_image(5, 4, ".jpg"))
    assert dsformats.detect_format(archive) == "image_zip"
    with dsformats.read(archive) as reader:
        names = sorted(item.media.name for item in reader.items())
    assert names == [f"{archive}!a.png", f"{archive}!sub/b.jpg"]


@pytest.mark.parametrize("packing", ["wrapped.tar", "flat.tar.gz"])
def test_a_folder_of_image_zips_inside_a_tar_reads_with_if(tmp_path, make_image, packing):
    """image_zip's tree is a folder of zips: inside a tar they are read (one level) when asked with -if,
    but detection does not open archives inside archives. (A .zip input is image_zip's own file.)"""
    tree = tmp_path / "tree"
    tree.mkdir()
    for stem, seed in (("train", 1), ("val", 2)):
        with zipfile.ZipFile(tree / f"{stem}.zip", "w") as out:
            out.writestr(f"{stem}-a.png", make_image(4, 3, seed=seed))
            out.writestr(f"sub/{stem}-b.jpg", make_image(5, 4, ".jpg", seed=seed))
    kind, _, suffix = packing.partition(".")
    archive = pack(tree, tmp_path / f"zips.{suffix}", wrap="export" if kind == "wrapped" else "")
    assert snapshot(archive, "image_zip") == snapshot(tree, "image_zip")
    assert len(snapshot(archive, "image_zip")[3]) == 4
    with pytest.raises(dsformats.FormatNotFoundError):
        dsformats.detect_format(archive)


@pytest.mark.parametrize("suffix", [".tar.gz", ".tar.bz2", ".tar.xz"])
def test_compressed_tar_members_read_in_any_order(datumaro_fixtures, tmp_path, suffix):
    """Out-of-order reads seek back in the decompressed stream (with whatever gzip implementation is installed)."""
    from dsformats.archives import opened_archive

    tree = datumaro_fixtures / "voc_dataset/voc_dataset1"
    archive = tmp_path / f"data{suffix}"
    with tarfile.open(archive, f"w:{suffix.rpartition('.')[2]}") as out:
        for rel, path in _files(tree):
            out.add(path, rel)
    expected = {rel: path.read_bytes() for rel, path in _files(tree)}
    with opened_archive(archive) as root:
        with root.fs.open_member(sorted(expected)[-1]) as stream:
            stream.read(10)  # a partial read far into the stream, then everything from the start, backwards
        got = {}
        for rel in sorted(expected, reverse=True):
            with root.fs.open_member(rel) as stream:
                got[rel] = stream.read()
    assert got == expected


def test_remote_tree_and_remote_archive_via_memory(datumaro_fixtures, tmp_path, memory):
    import fsspec

    fs = fsspec.filesystem("memory")
    tree = datumaro_fixtures / "coco_dataset/coco_instances"
    for rel, path in _files(tree):
        fs.pipe_file(f"{memory}/coco/{rel}", path.read_bytes())
    archive = pack(tree, tmp_path / "coco.zip", wrap="top")
    fs.pipe_file(f"{memory}/coco.zip", archive.read_bytes())
    assert dsformats.detect_format(f"{memory}/coco") == "coco"
    assert snapshot(f"{memory}/coco") == snapshot(tree)
    assert snapshot(f"{memory}/coco.zip") == snapshot(tree)


@pytest.mark.parametrize(("source", "fmt"), [("coco_dataset/coco", "coco"), ("voc_dataset/voc_dataset1", "voc"),
                                           ("coco_dataset/coco_instances", "image_zip")])
def test_round_trip_through_memory(datumaro_fixtures, tmp_path, memory, source, fmt):
    src = datumaro_fixtures / source
    options = {"save_images": True} if fmt != "image_zip" else {}
    report = dsformats.convert(src, f"{memory}/out", fmt, writer_options=options)
    assert report.items_written
    local = tmp_path / "local"
    dsformats.convert(src, local, fmt, writer_options=options)
    assert snapshot(f"{memory}/out", fmt) == snapshot(local, fmt)
    # and back: the output on memory:// converted again (its images read from memory://) is the same bytes
    dsformats.convert(f"{memory}/out", tmp_path / "again", fmt, source_format=fmt, writer_options=options)
    assert {rel: path.read_bytes() for rel, path in _files(tmp_path / "again")} == {
        rel: path.read_bytes() for rel, path in _files(local)
    }


@pytest.mark.parametrize(("dataset", "fmt"), [("coco_dataset/coco_instances", "voc"),
                                           ("coco_dataset/coco_roboflow", "voc"),
                                           ("voc_dataset/voc_dataset1", "coco")])
@pytest.mark.parametrize("packing", ["flat.zip", "stored.zip", "wrapped.tar.gz"])
def test_conversion_with_images_from_an_archive_equals_the_tree(datumaro_fixtures, tmp_path, dataset, fmt, packing):
    """Images copied from members (deflated ones read ahead in threads, stored ones read whole when copied)."""
    tree = datumaro_fixtures / dataset
    kind, _, suffix = packing.partition(".")
    archive = pack(tree, tmp_path / f"data.{suffix}", wrap="export" if kind == "wrapped" else "",
                   stored=kind == "stored")
    dsformats.convert(tree, tmp_path / "from-tree", fmt, writer_options={"save_images": True})
    report = dsformats.convert(archive, tmp_path / "from-archive", fmt, writer_options={"save_images": True})
    assert report.media_copied > 0
    expected = {rel: path.read_bytes() for rel, path in _files(tmp_path / "from-tree")}
    assert {rel: path.read_bytes() for rel, path in _files(tmp_path / "from-archive")} == expected


def corrupt_member(archive: Path, member: str, kind: str) -> None:
    """Flip one byte of ``member``'s deflated data so that reading it fails with a bad CRC (``"crc"``) or
    with broken deflate data (``"inflate"``): the first such byte, so the damage is deterministic."""
    import zlib

    raw = archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for pos in range(start, start + info.compress_size):
        damaged = bytearray(raw)
        damaged[pos] ^= 0xFF
        try:
            zipfile.ZipFile(io.BytesIO(bytes(damaged))).read(member)
        except zipfile.BadZipFile:
            found = "crc"
        except zlib.error:
            found = "inflate"
        else:
            continue
        if found == kind:
            archive.write_bytes(bytes(damaged))
            return
    raise AssertionError(f"no single byte gives a {kind} error in {member}")


@pytest.mark.parametrize("kind", ["crc", "inflate", "stored crc"])
def test_a_corrupt_member_fails_or_is_skipped_naming_it(tmp_path, kind):
    from dsformats.testing import generate_items

    header, items = generate_items(("bbox",), seed=3, count=12, image_suffixes=(".png",))
    tree = tmp_path / "tree"
    dsformats.write(items, tree, "coco", header=header, options={"save_images": True})
    stored, _, kind = kind.rpartition(" ")
    archive = pack(tree, tmp_path / "data.zip", stored=bool(stored))
    with zipfile.ZipFile(archive) as zf:
        victim = sorted(n for n in zf.namelist() if n.endswith(".png"))[5]
    corrupt_member(archive, victim, kind)
    with dsformats.read(archive) as reader:
        (media,) = [item.media for item in reader.items() if f"/{victim}::" in item.media.name]
        with pytest.raises(DatasetError) as direct:
            media.read_bytes()
    expected = str(direct.value)
    assert expected.startswith(f"{archive}!{victim}: cannot read: ")

    with pytest.raises(DatasetError) as failed:
        dsformats.convert(archive, tmp_path / "strict", "voc", writer_options={"save_images": True})
    assert str(failed.value) == expected and not (tmp_path / "strict").exists()
    report = dsformats.convert(archive, tmp_path / "skip", "voc", writer_options={"save_images": True},
                               skip_bad_items=True)
    assert report.skipped == [expected]
    assert report.items_written.total() == 11
    copied = {p.relative_to(tmp_path / "skip" / "JPEGImages").as_posix(): p.read_bytes()
              for p in (tmp_path / "skip" / "JPEGImages").rglob("*.png")}
    originals = {rel.split("/", 2)[2]: path.read_bytes() for rel, path in _files(tree)
                 if rel.endswith(".png") and rel != victim}
    assert copied == originals


def test_zip_members_read_whole_or_in_pieces_from_many_threads(tmp_path, monkeypatch):
    """Whole reads take the one-call path (positioned reads, one inflate); pieces stream; all agree."""
    import random
    import threading

    from dsformats._archivefs import SafeZipFileSystem
    from dsformats.archives import opened_archive

    rng = random.Random(7)
    members = {f"m{n:02}.bin": rng.randbytes(rng.choice([0, 1, 700, 40_000, 3 << 20])) + bytes(n * 100)
               for n in range(24)}
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for n, (name, data) in enumerate(members.items()):
            out.writestr(name, data, zipfile.ZIP_DEFLATED if n % 3 else zipfile.ZIP_STORED)
    whole_reads = []
    original = SafeZipFileSystem._read_whole
    monkeypatch.setattr(SafeZipFileSystem, "_read_whole",
                        lambda self, info: whole_reads.append(info.filename) or original(self, info))
    with opened_archive(archive) as root:
        fs = root.fs
        with fs.open_member("m05.bin") as stream:
            head = stream.read(10)
            rest = stream.read()
        assert head + rest == members["m05.bin"] and whole_reads == []  # started in pieces: streamed
        results: dict[tuple[int, str], bytes] = {}

        def read_all(worker: int) -> None:
            for name in members:
                with fs.open_member(name) as stream:
                    if worker % 2:
                        results[worker, name] = stream.read()
                    else:
                        chunks = []
                        while chunk := stream.read(1 << 16):
                            chunks.append(chunk)
                        results[worker, name] = b"".join(chunks)

        threads = [threading.Thread(target=read_all, args=(worker,)) for worker in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == {(worker, name): data for worker in range(6) for name, data in members.items()}
    assert len(whole_reads) >= 3 * len(members)  # the whole reads of the odd workers


def test_media_worth_reading_ahead(tmp_path, memory, make_image):
    """Deflated zip members and object-store files are read ahead; stored zip members and tar members not."""
    import fsspec

    image = make_image(4, 3)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("deflated.png", image, zipfile.ZIP_DEFLATED)
        out.writestr("stored.png", image, zipfile.ZIP_STORED)
    tar = tmp_path / "data.tar"
    with tarfile.open(tar, "w") as out:
        info = tarfile.TarInfo("a.png")
        info.size = len(image)
        out.addfile(info, io.BytesIO(image))
    fsspec.filesystem("memory").pipe_file(f"{memory}/a.png", image)
    from dsformats.archives import opened_archive, to_upath

    with opened_archive(archive) as zipped, opened_archive(tar) as tarred:
        media = {name: dsformats.Media.from_file(root / name)
                 for root, name in ((zipped, "deflated.png"), (zipped, "stored.png"), (tarred, "a.png"))}
        media["memory"] = dsformats.Media.from_file(to_upath(f"{memory}/a.png"))
        media["local"] = dsformats.Media.from_file(tmp_path / "data.zip")
        assert {name: m.read_ahead for name, m in media.items()} == {
            "deflated.png": True, "stored.png": False, "a.png": False, "memory": True, "local": False,
        }
        assert {name: m.read_bytes() for name, m in media.items() if name != "local"} == {
            "deflated.png": image, "stored.png": image, "a.png": image, "memory": image,
        }


def test_a_zip_member_holding_more_than_it_declares_is_refused(tmp_path):
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("images/a.jpg", bytes(5000))
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("images/a.jpg")
    central = raw.rindex(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (100).to_bytes(4, "little")  # the central directory says 100 bytes
    raw[info.header_offset + 22 : info.header_offset + 26] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    from dsformats.archives import opened_archive

    with opened_archive(archive) as root:
        with pytest.raises(DatasetError, match=r"liar.zip!images/a.jpg: cannot read: member holds more, not the 100"):
            root.fs.open_member("images/a.jpg").read()


def _members_archive(tmp_path: Path, *, stored=(), sizes=(0, 1, 700, 40_000, 300_000)) -> tuple[Path, dict]:
    import random

    rng = random.Random(11)
    members = {f"m{n:02}.bin": rng.randbytes(rng.choice(sizes)) + bytes(n * 100) for n in range(20)}
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in members.items():
            out.writestr(name, data, zipfile.ZIP_STORED if name in stored else zipfile.ZIP_DEFLATED)
        out.writestr("folder/", b"")
    return archive, members


def _counting_gzip_reader(monkeypatch) -> list[int]:
    """Count the calls of ISA-L's gzip reader by read_members (each one inflates a whole batch)."""
    from dsformats import _archivefs

    calls: list[int] = []
    real = _archivefs._gzip_reader()
    assert real is not None  # isal is a dependency
    monkeypatch.setattr(_archivefs, "_gzip_reader", lambda: lambda data: calls.append(len(data)) or real(data))
    return calls


@pytest.mark.parametrize("order", ["archive", "reversed"])
def test_zip_members_read_together_agree_with_one_at_a_time(tmp_path, monkeypatch, order):
    """read_members: deflated members up to the limit in one inflate call; stored, large, missing ones None."""
    from dsformats.archives import opened_archive

    archive, members = _members_archive(tmp_path, stored={"m07.bin"})
    names = [*members, "folder", "missing.bin"]
    if order == "reversed":  # no two members next to each other: one positioned read each, still one inflate
        names.reverse()
    calls = _counting_gzip_reader(monkeypatch)
    with opened_archive(archive) as root:
        found = dict(zip(names, root.fs.read_members(names, 100_000), strict=True))
        assert found == {name: (data if name != "m07.bin" and len(data) <= 100_000 else None)
                         for name, data in members.items()} | {"folder": None, "missing.bin": None}
        assert len(calls) == 1
        assert root.fs.read_members(["m07.bin", "folder"], 100_000) == [None, None] and len(calls) == 1
        assert {name: root.fs.open_member(name).read() for name in members} == members


@pytest.mark.parametrize("kind", ["crc", "inflate"])
def test_a_corrupt_member_read_together_is_read_alone_and_fails_naming_it(tmp_path, kind):
    """A batch with a corrupt member gives None for all; load_all reads each alone: only that one fails."""
    from dsformats.archives import opened_archive

    archive, members = _members_archive(tmp_path, sizes=(700, 40_000))
    corrupt_member(archive, "m04.bin", kind)
    with opened_archive(archive) as root:
        assert root.fs.read_members(list(members), 1 << 20) == [None] * len(members)
        medias = [dsformats.Media.from_file(root / name) for name in members]
        loaded = dsformats.Media.load_all(medias, 1 << 20)
        assert [m is None for m in loaded] == [name == "m04.bin" for name in members]
        assert {name: m.data for name, m in zip(members, loaded, strict=True) if m is not None} == {
            name: data for name, data in members.items() if name != "m04.bin"}
        with pytest.raises(DatasetError, match=r"data.zip!m04.bin: cannot read: "):
            medias[4].read_bytes()


def test_a_member_holding_more_than_it_declares_is_not_read_together(tmp_path):
    """Inflating stops at the declared sizes (+1 byte): the batch is refused, the member read alone fails."""
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("images/0.jpg", b"first")
        out.writestr("images/a.jpg", bytes(5000))
        out.writestr("images/b.jpg", b"last")
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("images/a.jpg")
    central = [m.start() for m in re.finditer(b"PK\x01\x02", bytes(raw))][1]  # images/a.jpg's entry
    raw[central + 24 : central + 28] = (100).to_bytes(4, "little")
    raw[info.header_offset + 22 : info.header_offset + 26] = (100).to_bytes(4, "little")
    archive.write_bytes(bytes(raw))
    from dsformats.archives import opened_archive

    with opened_archive(archive) as root:
        names = ["images/0.jpg", "images/a.jpg", "images/b.jpg"]
        assert root.fs.read_members(names, 1 << 20) == [None, None, None]
        loaded = dsformats.Media.load_all([dsformats.Media.from_file(root / name) for name in names], 1 << 20)
        assert [m and m.data for m in loaded] == [b"first", None, b"last"]


# ------------------------------------------------------------------------------------------- detection


def test_detection_tells_archives_apart(datumaro_fixtures, tmp_path, make_image):
    coco = pack(datumaro_fixtures / "coco_dataset/coco_instances", tmp_path / "coco.zip")
    voc = pack(datumaro_fixtures / "voc_dataset/voc_dataset1", tmp_path / "voc.zip", wrap="VOC2012")
    images = tmp_path / "images.zip"
    with zipfile.ZipFile(images, "w") as out:
        out.writestr("a.png", make_image(4, 3))
    verdicts = {d.format: d for d in dsformats.detect(coco)}
    assert verdicts["coco"].confidence == dsformats.Confidence.CERTAIN
    assert "inside coco.zip" in verdicts["coco"].reason
    assert dsformats.detect_format(voc) == "voc"
    assert "in VOC2012/" in {d.format: d for d in dsformats.detect(voc)}["voc"].reason
    assert dsformats.detect_format(images) == "image_zip"
    proc = subprocess.run([sys.executable, "-m", "dsformats", "detect", "--explain", str(coco)],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "coco: certain, inside coco.zip" in proc.stdout, proc.stdout + proc.stderr


def test_single_top_folder_that_is_a_subset_is_kept(datumaro_fixtures, tmp_path):
    """A Roboflow export holding only ``train/`` keeps the subset: the archive root wins a tie."""
    tree = tmp_path / "tree"
    shutil.copytree(datumaro_fixtures / "coco_dataset/coco_roboflow/train", tree / "train")
    archive = pack(tree, tmp_path / "rf.zip")
    assert tuple(snapshot(archive)[1]) == ("train",) == tuple(snapshot(tree)[1])


# ------------------------------------------------------------------------------------------- hardening


def _coco_zip(datumaro_fixtures: Path, archive: Path, extra: dict[str, bytes]) -> Path:
    pack(datumaro_fixtures / "coco_dataset/coco_instances", archive)
    with zipfile.ZipFile(archive, "a") as out:
        for name, data in extra.items():
            out.writestr(name, data)
    return archive


@pytest.mark.parametrize("name", ["../evil.json", "/etc/evil.json", "a/../../evil.json", "C:/evil.json"])
def test_escaping_zip_member_refuses_the_archive(datumaro_fixtures, tmp_path, name):
    archive = _coco_zip(datumaro_fixtures, tmp_path / "bad.zip", {name: b"{}"})
    with pytest.raises(DatasetError, match="escapes the archive") as info:
        with dsformats.read(archive, "coco"):
            pass
    assert f"bad.zip!{name}" in str(info.value)
    assert dsformats.detect(archive)  # detection does not raise: it explains
    assert "cannot be read" in {d.format: d for d in dsformats.detect(archive)}["coco"].reason


@pytest.mark.parametrize("suffix", [".zip", ".tar.gz"])
def test_errors_name_the_member_as_archive_bang_member(datumaro_fixtures, tmp_path, suffix):
    tree = tmp_path / "tree"
    shutil.copytree(datumaro_fixtures / "voc_dataset/voc_dataset1", tree)
    (tree / "Annotations" / "2007_000001.xml").write_text("<annotation>\n<size><width>x</width>")
    archive = pack(tree, tmp_path / f"bad{suffix}", wrap="VOC")
    with pytest.raises(DatasetError) as info:
        dsformats.convert(archive, tmp_path / "out", "coco")
    assert str(info.value).startswith(f"{archive}!VOC/Annotations/2007_000001.xml:")


@pytest.mark.parametrize("kind", ["crc", "inflate"])
def test_a_corrupt_annotation_member_is_an_error_naming_it(datumaro_fixtures, tmp_path, kind):
    coco = pack(datumaro_fixtures / "coco_dataset/coco_instances", tmp_path / "coco.zip")
    corrupt_member(coco, "annotations/instances_train.json", kind)
    with pytest.raises(DatasetError, match=f"^{re.escape(str(coco))}!annotations/instances_train.json: cannot read"):
        dsformats.convert(coco, tmp_path / "out", "voc", source_format="coco")
    voc = pack(datumaro_fixtures / "voc_dataset/voc_dataset1", tmp_path / "voc.zip")
    corrupt_member(voc, "Annotations/2007_000001.xml", kind)
    with pytest.raises(DatasetError, match=f"^{re.escape(str(voc))}!Annotations/2007_000001.xml: cannot read"):
        dsformats.convert(voc, tmp_path / "out", "coco", source_format="voc")
    report = dsformats.convert(voc, tmp_path / "out", "coco", source_format="voc", skip_bad_items=True)
    assert [entry.split(": cannot read")[0] for entry in report.skipped] == [f"{voc}!Annotations/2007_000001.xml"]


def test_a_truncated_tar_gz_is_an_error_naming_it(datumaro_fixtures, tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(datumaro_fixtures / "coco_dataset/coco_instances", tree)
    archive = pack(tree, tmp_path / "data.tar.gz")
    archive.write_bytes(archive.read_bytes()[:-200])  # the last member's data and the gzip trailer are cut
    with pytest.raises(DatasetError, match=f"^{re.escape(str(archive))}: not a readable tar archive"):
        with dsformats.read(archive, "coco") as reader:  # found when the index is built, before any member
            for item in reader.items():
                item.media.read_bytes()


def test_zip_bomb_member_is_refused_before_inflating(datumaro_fixtures, tmp_path, monkeypatch):
    archive = pack(datumaro_fixtures / "coco_dataset/coco_instances", tmp_path / "bomb.zip")
    with zipfile.ZipFile(archive, "a", zipfile.ZIP_DEFLATED) as out:
        out.writestr("images/zeros.bin", bytes(4 << 20))
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_RATIO", "100")
    with pytest.raises(DatasetError, match="zip bomb"):
        with dsformats.read(archive, "coco"):
            pass
    monkeypatch.delenv("DSFORMATS_ZIP_MAX_RATIO")
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_MEMBER", "1M")
    with pytest.raises(DatasetError, match="DSFORMATS_ZIP_MAX_MEMBER"):
        with dsformats.read(archive, "coco"):
            pass


def test_tar_gz_bomb_is_refused_from_its_header(tmp_path, monkeypatch):
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as out:
        info = tarfile.TarInfo("annotations/instances_default.json")
        data = bytes(8 << 20)
        info.size = len(data)
        out.addfile(info, io.BytesIO(data))
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_RATIO", "100")
    with pytest.raises(DatasetError, match="compression bomb"):
        with dsformats.read(archive, "coco"):
            pass
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_MEMBER", "1M")
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_RATIO", "100000")
    with pytest.raises(DatasetError, match="DSFORMATS_ZIP_MAX_MEMBER"):
        with dsformats.read(archive, "coco"):
            pass


@pytest.mark.parametrize("link", ["sym", "hard"])
def test_tar_links_are_not_followed(datumaro_fixtures, tmp_path, link):
    tree = datumaro_fixtures / "coco_dataset/coco_instances"
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"SECRET")
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as out:
        for rel, path in _files(tree):
            if rel.startswith("images/") and rel.endswith(".jpg"):
                info = tarfile.TarInfo(rel)
                info.type = tarfile.SYMTYPE if link == "sym" else tarfile.LNKTYPE
                info.linkname = str(secret) if link == "sym" else "annotations/instances_default.json"
                out.addfile(info)
            else:
                out.add(path, rel)
    with dsformats.read(archive, "coco") as reader:
        for item in reader.items():
            with pytest.raises(DatasetError, match="cannot open"):
                item.media.read_bytes()
    from dsformats.archives import opened_archive
    from dsformats.fileaccess import walk_files

    with opened_archive(archive) as root:
        assert not [rel for rel in walk_files(root) if rel.startswith("images/")]
        assert root.fs.skipped_links


def test_escaping_tar_member_refuses_the_archive(tmp_path):
    archive = tmp_path / "bad.tar"
    with tarfile.open(archive, "w") as out:
        info = tarfile.TarInfo("../../evil.json")
        info.size = 2
        out.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(DatasetError, match="escapes the archive"):
        with dsformats.read(archive, "coco"):
            pass


# --------------------------------------------------------------------------------------------- writing


@pytest.mark.parametrize("fmt", ["coco", "voc", "image_zip"])
def test_output_zip_for_every_builtin_writer(datumaro_fixtures, tmp_path, fmt):
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    options = {"save_images": True} if fmt != "image_zip" else {}
    dsformats.convert(src, tmp_path / "tree", fmt, writer_options=options)
    out = tmp_path / "out.zip"
    dsformats.convert(src, out, fmt, writer_options=options)
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "tree"]
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
    if fmt == "image_zip":  # the writer's one zip is the output, not a zip inside a zip
        with zipfile.ZipFile(tmp_path / "tree" / "default.zip") as written:
            assert names == written.namelist()
        assert snapshot(out, fmt) == snapshot(tmp_path / "tree", fmt)
    else:
        tree_files = [rel for rel, _ in _files(tmp_path / "tree")]
        assert sorted(n for n in names if not n.endswith("/")) == tree_files
        assert snapshot(out, fmt) == snapshot(tmp_path / "tree", fmt)
    with pytest.raises(OutputExistsError):
        dsformats.convert(src, out, fmt, writer_options=options)
    dsformats.convert(src, out, fmt, writer_options=options, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "tree"]


def test_output_zip_is_reproducible_and_cli_writes_it(datumaro_fixtures, tmp_path):
    src = datumaro_fixtures / "voc_dataset/voc_dataset1"
    for name in ("a.zip", "b.zip"):
        proc = subprocess.run([sys.executable, "-m", "dsformats", "convert", "-q", "-i", str(src), "-f", "coco",
                               "-o", str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_failed_zip_output_publishes_nothing(datumaro_fixtures, tmp_path):
    def items():
        with dsformats.read(datumaro_fixtures / "coco_dataset/coco_instances") as reader:
            yield from reader.items()
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        dsformats.write(items(), tmp_path / "out.zip", "coco")
    assert list(tmp_path.iterdir()) == []


def _memory_files(url: str) -> list[str]:
    import fsspec

    fs = fsspec.filesystem("memory")
    root = fs._strip_protocol(url)
    return sorted(p[len(root) + 1 :] for p in fs.find(root)) if fs.exists(root) else []


def test_memory_output_is_marked_complete(datumaro_fixtures, memory):
    import fsspec

    src = datumaro_fixtures / "coco_dataset/coco_instances"
    dsformats.convert(src, f"{memory}/out", "voc", writer_options={"save_images": True})
    files = _memory_files(memory)
    assert f"out/{COMPLETE_MARKER}" in files
    assert not [f for f in files if ".dsformats-" in f]  # the temporary prefix is gone
    marker = json.loads(fsspec.filesystem("memory").cat_file(f"{memory}/out/{COMPLETE_MARKER}"))
    assert marker["complete"] is True and marker["files"] == len(files) - 1
    with pytest.raises(OutputExistsError):
        dsformats.convert(src, f"{memory}/out", "voc")
    dsformats.convert(src, f"{memory}/out", "coco", overwrite=True)
    files = _memory_files(memory)
    assert f"out/{COMPLETE_MARKER}" in files and not [f for f in files if f.startswith("out/Annotations")]


def test_interrupted_memory_output_publishes_nothing(datumaro_fixtures, memory, monkeypatch):
    def items():
        with dsformats.read(datumaro_fixtures / "coco_dataset/coco_instances") as reader:
            yield from reader.items()
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        dsformats.write(items(), f"{memory}/out", "coco")
    assert _memory_files(memory) == []

    from fsspec.implementations.memory import MemoryFileSystem

    calls = []

    def failing_copy(self, path1, path2, **kwargs):
        calls.append(path2)
        if len(calls) > 1:
            raise OSError("connection reset")
        return original(self, path1, path2, **kwargs)

    original = MemoryFileSystem.cp_file
    monkeypatch.setattr(MemoryFileSystem, "cp_file", failing_copy)
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    with pytest.raises(DatasetError, match="nothing was published"):
        dsformats.convert(src, f"{memory}/out", "coco", writer_options={"save_images": True})
    assert len(calls) == 2
    assert _memory_files(memory) == []  # neither a partial output nor the temporary prefix


def test_memory_zip_output_is_one_object(datumaro_fixtures, memory):
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    dsformats.convert(src, f"{memory}/out.zip", "coco", writer_options={"save_images": True})
    assert _memory_files(memory) == ["out.zip"]
    assert snapshot(f"{memory}/out.zip", "coco") == snapshot(src, "coco")


def test_local_file_url_is_a_local_path(datumaro_fixtures, tmp_path):
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    dsformats.convert(f"file://{src}", f"file://{tmp_path}/out", "coco")
    assert (tmp_path / "out" / "annotations").is_dir()
    assert os.listdir(tmp_path) == ["out"]


def test_paths_inside_archives_pickle(tmp_path, make_image):
    """So that a reader of a shard of an archive ships to worker processes (which open the archive again)."""
    import pickle

    from dsformats.archives import opened_archive

    image = make_image(4, 3)
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        out.writestr("images/a.png", image)
    tar = tmp_path / "data.tar.gz"
    with tarfile.open(tar, "w:gz") as out:
        info = tarfile.TarInfo("images/a.png")
        info.size = len(image)
        out.addfile(info, io.BytesIO(image))
    for packed in (archive, tar):
        with opened_archive(packed) as root:
            copy = pickle.loads(pickle.dumps(root / "images" / "a.png"))
            assert type(copy) is type(root) and copy.read_bytes() == image
            copy.fs.close()


def test_unpickled_paths_of_one_archive_share_its_filesystem(tmp_path, make_image):
    """A scale-out worker opens (and checks) an archive once for all its shards' paths; an archive that changed,
    or a filesystem someone closed, is opened again; the client's own opening is never shared."""
    import pickle

    from dsformats.archives import opened_archive

    images = [make_image(4, 3, seed=seed) for seed in range(3)]
    archive, tar = tmp_path / "data.zip", tmp_path / "data.tar"

    def pack(image: bytes) -> None:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr("images/a.png", image)
            out.writestr("b.txt", "b")
        with tarfile.open(tar, "w") as out:
            for name, data in (("images/a.png", image), ("b.txt", b"b")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))

    for packed in (archive, tar):
        pack(images[0])
        with opened_archive(packed) as root:
            shipped = pickle.dumps(root / "images" / "a.png"), pickle.dumps(root / "b.txt")
            first, other = (pickle.loads(data) for data in shipped)
            assert first.fs is other.fs is not root.fs
            assert first.read_bytes() == images[0] and other.read_bytes() == b"b"
        assert not first.fs.closed  # the client closed its own opening only
        again = pickle.loads(shipped[0])
        assert again.fs is first.fs
        pack(images[1])  # rewritten: its size or modification time differs
        os.utime(packed, ns=(1, 1))
        changed = pickle.loads(shipped[0])
        assert changed.fs is not first.fs and changed.read_bytes() == images[1]
        changed.fs.close()
        reopened = pickle.loads(shipped[0])
        assert reopened.fs is not changed.fs and not reopened.fs.closed and reopened.read_bytes() == images[1]
        reopened.fs.close()
