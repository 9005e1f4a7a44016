"""image_zip output as a byte copy: members keep their compressed bytes when the method is the same, other
members are compressed by threads with the bytes zipfile writes, for any --jobs."""

from __future__ import annotations

import random
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

import dsformats
from dsformats import DatasetError
from dsformats.testing import generate_items

from .conftest import FIXED_TIME, zip_infos, zip_members

DEFLATED = zipfile.ZIP_DEFLATED


def _stored_bytes(path: Path) -> list[tuple[str, bytes, int, int]]:
    """(name, compressed bytes as stored, CRC, size) of every member, in order, read by hand from the file."""
    raw = path.read_bytes()
    out = []
    for info in zip_infos(path):
        at = info.header_offset
        name_length, extra_length = struct.unpack_from("<HH", raw, at + 26)
        start = at + 30 + name_length + extra_length
        out.append((info.filename, raw[start : start + info.compress_size], info.CRC, info.file_size))
    return out


@pytest.fixture(scope="module")
def images() -> dict[str, bytes]:
    """Random PNG and JPEG images keyed by member name (nested ids)."""
    _, items = generate_items(seed=7, count=12, subsets=("default",))
    return {f"{item.id}{item.media.suffix}": item.media.read_bytes() for item in items}


def _source(path: Path, images: dict[str, bytes], compression: int, level: int | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in images.items():
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = compression
            info._compresslevel = level  # type: ignore[attr-defined] - zipfile's per-member level
            archive.writestr(info, data)
    return path


def test_same_method_members_keep_their_compressed_bytes(tmp_path, images):
    """A member deflated at level 1 stays level 1 (not inflated and deflated again): bytes, CRC, size kept."""
    source = _source(tmp_path / "in.zip", images, DEFLATED, level=1)
    dsformats.convert(source, tmp_path / "out", "image_zip", writer_options={"compression": "deflated"})
    out = tmp_path / "out" / "default.zip"
    assert _stored_bytes(out) == _stored_bytes(source)
    assert zip_members(out) == images
    assert [i.CRC for i in zip_infos(out)] == [zlib.crc32(data) for data in images.values()]
    with zipfile.ZipFile(out) as archive:
        assert archive.testzip() is None
    # the same images from a stored source are deflated at zipfile's default level: other bytes, same images
    dsformats.convert(_source(tmp_path / "stored.zip", images, zipfile.ZIP_STORED), tmp_path / "again", "image_zip",
                      writer_options={"compression": "deflated"})
    again = tmp_path / "again" / "default.zip"
    assert zip_members(again) == images
    assert [packed for _, packed, _, _ in _stored_bytes(again)] == [
        zlib.compress(data, 6)[2:-4] for data in images.values()]
    assert _stored_bytes(again) != _stored_bytes(out)


@pytest.mark.parametrize("compression", ["stored", "bzip2", "lzma"])
def test_other_methods_inflate_and_compress(tmp_path, images, compression):
    source = _source(tmp_path / "in.zip", images, DEFLATED, level=1)
    dsformats.convert(source, tmp_path / "out", "image_zip", writer_options={"compression": compression})
    out = tmp_path / "out" / "default.zip"
    assert zip_members(out) == images
    assert {i.compress_type for i in zip_infos(out)} == {_METHODS[compression]}


_METHODS = {"stored": zipfile.ZIP_STORED, "bzip2": zipfile.ZIP_BZIP2, "lzma": zipfile.ZIP_LZMA}


@pytest.mark.parametrize("compression", ["deflated", "bzip2"])
@pytest.mark.parametrize("source_method", [zipfile.ZIP_STORED, DEFLATED])
def test_jobs_1_and_2_write_the_same_bytes(tmp_path, images, compression, source_method):
    source = _source(tmp_path / "in.zip", images, source_method)
    outputs = []
    for jobs in (1, 2):
        dsformats.convert(source, tmp_path / f"jobs{jobs}", "image_zip",
                          writer_options={"compression": compression, "jobs": jobs})
        outputs.append((tmp_path / f"jobs{jobs}" / "default.zip").read_bytes())
    assert outputs[0] == outputs[1]
    assert zip_members(tmp_path / "jobs2" / "default.zip") == images


def test_folder_images_deflated_by_threads_equal_zipfile(tmp_path, images):
    """Images from files (COCO-like folders) deflated by two threads: the bytes zipfile.writestr gives."""
    folder = tmp_path / "images"
    for name, data in images.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    items = [dsformats.Item(id=name.rsplit(".", 1)[0], media=dsformats.Media.from_file(folder / name))
             for name in images]
    dsformats.write(items, tmp_path / "out", "image_zip", options={"compression": "deflated", "jobs": 2})
    with zipfile.ZipFile(tmp_path / "expected.zip", "w") as archive:
        for name, data in images.items():
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = DEFLATED
            info.external_attr = 0o644 << 16
            with archive.open(info, "w", force_zip64=True) as member:
                member.write(data)
    assert (tmp_path / "out" / "default.zip").read_bytes() == (tmp_path / "expected.zip").read_bytes()


@pytest.mark.parametrize("compression", ["stored", "deflated"])
def test_bad_crc_of_a_stored_member_names_it_and_can_be_skipped(tmp_path, images, compression):
    """Stored members are checked against their CRC whether they are copied or compressed."""
    source = _source(tmp_path / "in.zip", images, zipfile.ZIP_STORED)
    names = list(images)
    raw = bytearray(source.read_bytes())
    raw[raw.find(images[names[3]]) + 20] ^= 0xFF
    source.write_bytes(bytes(raw))
    options = {"compression": compression, "jobs": 2}
    with pytest.raises(DatasetError, match=f"in.zip!{names[3]}: cannot read: Bad CRC-32"):
        dsformats.convert(source, tmp_path / "out", "image_zip", writer_options=options)
    assert not (tmp_path / "out").exists()
    report = dsformats.convert(source, tmp_path / "out", "image_zip", writer_options=options, skip_bad_items=True)
    assert len(report.skipped) == 1 and names[3] in report.skipped[0]
    assert zip_members(tmp_path / "out" / "default.zip") == {n: d for n, d in images.items() if n != names[3]}


def test_bad_crc_of_a_deflated_member_copied_as_stored_is_not_checked(tmp_path):
    """Documented: a member copied as its compressed bytes is not inflated, so its CRC is not checked here;
    the archive written carries the same bytes and CRC, and the damage shows wherever it is inflated."""
    data = random.Random(1).randbytes(5000) + b"\0" * 5000
    source = tmp_path / "in.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("a.png", data, DEFLATED)
    raw = bytearray(source.read_bytes())
    raw[raw.rfind(b"PK\x01\x02") + 16] ^= 0x01  # the lowest byte of the central directory's CRC
    source.write_bytes(bytes(raw))
    dsformats.convert(source, tmp_path / "copy", "image_zip", writer_options={"compression": "deflated"})
    copy = tmp_path / "copy" / "default.zip"
    assert _stored_bytes(copy)[0][1] == zlib.compress(data, 6)[2:-4]
    assert zip_infos(copy)[0].CRC == zlib.crc32(data) ^ 0x01
    with zipfile.ZipFile(copy) as archive, pytest.raises(zipfile.BadZipFile, match="Bad CRC-32"):
        archive.read("a.png")
    with pytest.raises(DatasetError, match="in.zip!a.png: cannot read: Bad CRC-32"):  # inflated: checked
        dsformats.convert(source, tmp_path / "stored", "image_zip")


def test_large_members_are_streamed_and_keep_their_content(tmp_path, monkeypatch):
    """Members over the in-memory limit go through zipfile's streaming writer (compressed again)."""
    from dsformats_image_zip import writer

    monkeypatch.setattr(writer, "_IN_MEMORY", 1000)
    rng = random.Random(3)
    members = {"small.jpg": rng.randbytes(500), "large.jpg": rng.randbytes(3000) + b"\0" * 3000}
    source = _source(tmp_path / "in.zip", members, DEFLATED, level=1)
    for jobs in (1, 2):
        dsformats.convert(source, tmp_path / f"out{jobs}", "image_zip",
                          writer_options={"compression": "deflated", "jobs": jobs})
    out = tmp_path / "out1" / "default.zip"
    assert zip_members(out) == members
    packed = dict((name, data) for name, data, _, _ in _stored_bytes(out))
    assert packed["small.jpg"] == dict((n, d) for n, d, _, _ in _stored_bytes(source))["small.jpg"]
    assert packed["large.jpg"] == zlib.compress(members["large.jpg"], 6)[2:-4]
    assert out.read_bytes() == (tmp_path / "out2" / "default.zip").read_bytes()


def test_processes_engine_merge_keeps_copied_members(tmp_path, images):
    """The merge of scale-out parts copies their members' bytes too: the same archive as one process."""
    from dsformats.scaleout import convert_distributed

    source = tmp_path / "src"
    source.mkdir()
    half = len(images) // 2
    for number, part in enumerate([dict(list(images.items())[:half]), dict(list(images.items())[half:])]):
        _source(source / f"{number}.zip", part, DEFLATED, level=1)
    options = {"compression": "deflated"}
    dsformats.convert(source, tmp_path / "single", "image_zip", writer_options=options)
    convert_distributed(source, tmp_path / "merged", "image_zip", writer_options=options, engine="processes",
                        workers=2)
    single = (tmp_path / "single" / "default.zip").read_bytes()
    assert (tmp_path / "merged" / "default.zip").read_bytes() == single
    assert zip_members(tmp_path / "single" / "default.zip") == images
