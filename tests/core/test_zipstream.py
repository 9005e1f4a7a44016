"""dsformats.zipstream: the same archive bytes as zipfile (ZIP64 included), members parsed as zipfile parses them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from dsformats.zipstream import SpoolingZipWriter, StreamingZipReader

DATE = (1980, 1, 1, 0, 0, 0)


def _write(cls: type[zipfile.ZipFile], path: Path, members: list[tuple[str, bytes]], compression: int) -> bytes:
    with cls(path, "w", compression=compression) as archive:
        for number, (name, data) in enumerate(members):
            info = zipfile.ZipInfo(name, date_time=DATE)
            info.compress_type = compression
            info.external_attr = 0o644 << 16
            if number % 3 == 0:
                with archive.open(info, "w", force_zip64=True) as member:
                    member.write(data)
            else:
                archive.writestr(info, data)
        archive.writestr(zipfile.ZipInfo("dir/", date_time=DATE), b"")  # a str name would take the clock
        archive.comment = b"the end"
    return path.read_bytes()


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_writer_bytes_equal_zipfile_and_reader_infos_equal_infolist(tmp_path, compression):
    members = [(f"a/{i}.jpg", bytes(range(i % 256)) * 3) for i in range(40)] + [("é/ü.png", b"x" * 5000)]
    expected = _write(zipfile.ZipFile, tmp_path / "expected.zip", members, compression)
    assert _write(SpoolingZipWriter, tmp_path / "got.zip", members, compression) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["expected.zip", "got.zip"]  # no spool left behind

    with zipfile.ZipFile(tmp_path / "expected.zip") as plain, StreamingZipReader(tmp_path / "got.zip") as streaming:
        infos = list(streaming.iter_infos())
        assert streaming.member_count == len(plain.infolist()) == len(infos)
        assert streaming.infolist() == []  # nothing held
        for mine, theirs in zip(infos, plain.infolist(), strict=True):
            for slot in zipfile.ZipInfo.__slots__:
                assert getattr(mine, slot, None) == getattr(theirs, slot, None), slot
            assert streaming.open(mine).read() == plain.read(theirs)
        assert streaming.comment == b"the end"
        assert list(streaming.iter_infos())[5].filename == infos[5].filename  # parsed again, same result


def test_zip64_member_count_matches_zipfile_and_passes_unzip(tmp_path):
    """More than 65,535 members need the ZIP64 end records; the central directory spans many read chunks."""
    members = [(f"{i:06d}.jpg", b"") for i in range(65_600)]

    def write(cls: type[zipfile.ZipFile], path: Path) -> bytes:
        with cls(path, "w") as archive:
            for name, data in members:
                archive.writestr(zipfile.ZipInfo(name, date_time=DATE), data)
        return path.read_bytes()

    expected = write(zipfile.ZipFile, tmp_path / "expected.zip")
    assert write(SpoolingZipWriter, tmp_path / "got.zip") == expected
    with StreamingZipReader(tmp_path / "got.zip") as archive:
        names = [info.filename for info in archive.iter_infos()]
    assert names == [name for name, _ in members]
    if shutil.which("unzip"):
        subprocess.run(["unzip", "-tq", str(tmp_path / "got.zip")], check=True, capture_output=True)


def test_reader_accounts_for_data_before_the_archive(tmp_path):
    """A zip appended to other bytes (a self-extractor): offsets shift, as zipfile handles them."""
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("1.jpg", b"one")
        archive.writestr("2.jpg", b"two")
    prefixed = tmp_path / "prefixed.zip"
    prefixed.write_bytes(b"#!stub\n" * 100 + plain.read_bytes())
    with StreamingZipReader(prefixed) as archive:
        assert [archive.open(info).read() for info in archive.iter_infos()] == [b"one", b"two"]


def test_reader_rejects_what_zipfile_rejects(tmp_path):
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(zipfile.BadZipFile):
        StreamingZipReader(bad)
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("1.jpg", b"one")
    data = bytearray(good.read_bytes())
    start = data.rindex(b"PK\x01\x02")
    data[start : start + 4] = b"XX\x01\x02"
    bad.write_bytes(bytes(data))
    with StreamingZipReader(bad) as archive, pytest.raises(zipfile.BadZipFile, match="Bad magic number"):
        list(archive.iter_infos())


def test_writer_refuses_other_modes(tmp_path):
    with pytest.raises(ValueError, match="new archives only"):
        SpoolingZipWriter(tmp_path / "a.zip", "a")
