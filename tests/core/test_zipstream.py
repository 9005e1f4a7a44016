"""dsformats.zipstream: the same archive bytes as zipfile (ZIP64 included), members parsed as zipfile parses them."""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import zipfile
import zlib
from pathlib import Path

import pytest

from dsformats.zipstream import SpoolingZipWriter, StreamingZipReader, ZipMember, compress

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
        entries = [(i.filename, i.flag_bits, i.compress_size, i.file_size) for i in plain.infolist()]
        assert list(streaming.iter_entries()) == entries  # the same, without ZipInfo objects


def test_entries_with_an_extra_field_are_read_as_zipfile_reads_them(tmp_path, monkeypatch):
    """An entry with an extra field takes the ZipInfo path: a ZIP64 one declares its sizes there (its
    central record says 0xFFFFFFFF), and the entries give the real sizes, as ``infolist()`` does."""
    import struct

    with monkeypatch.context() as patched:
        patched.setattr(zipfile, "ZIP64_LIMIT", 15)  # members over 15 bytes get ZIP64 central records
        with zipfile.ZipFile(tmp_path / "x.zip", "w") as archive:
            archive.writestr(zipfile.ZipInfo("plain.jpg", date_time=DATE), b"a" * 10)
            tagged = zipfile.ZipInfo("tagged.png", date_time=DATE)
            tagged.extra = struct.pack("<HH", 0xCAFE, 4) + b"abcd"
            archive.writestr(tagged, b"b" * 12)
            archive.writestr(zipfile.ZipInfo("é/big.png", date_time=DATE), b"c" * 20)
    with zipfile.ZipFile(tmp_path / "x.zip") as plain, StreamingZipReader(tmp_path / "x.zip") as streaming:
        assert b"\xff\xff\xff\xff" * 2 in (tmp_path / "x.zip").read_bytes()  # a ZIP64 central record
        expected = [(i.filename, i.flag_bits, i.compress_size, i.file_size) for i in plain.infolist()]
        assert expected == [("plain.jpg", 0, 10, 10), ("tagged.png", 0, 12, 12), ("é/big.png", 2048, 20, 20)]
        assert list(streaming.iter_entries()) == expected


def test_marks_let_a_later_pass_start_and_stop_at_any_marked_record(tmp_path, monkeypatch):
    """``marks`` collects the position of every MARK_EVERY-th record; ``iter_infos(start, stop)`` between two
    marks parses exactly those records, across read chunks too."""
    from dsformats import zipstream

    monkeypatch.setattr(zipstream, "MARK_EVERY", 7)
    monkeypatch.setattr(zipstream, "_CHUNK", zipstream._CD.size + 3 * 0xFFFF)  # several chunks for 50 long names
    names = [f"{i:03d}-" + "n" * random.Random(i).randrange(5000, 12000) + ".png" for i in range(50)]
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        for name in names:
            archive.writestr(zipfile.ZipInfo(name, date_time=DATE), name[:3])
    with StreamingZipReader(tmp_path / "a.zip") as reader:
        marks: list[int] = []
        assert [i.filename for i in reader.iter_infos(marks=marks)] == names
        assert len(marks) == 8 and marks[0] == 0
        assert [i.filename for i in reader.iter_infos(marks[2], marks[5])] == names[14:35]
        tail = list(reader.iter_infos(marks[7]))
        assert [i.filename for i in tail] == names[49:] and reader.open(tail[0]).read() == b"049"
        again: list[int] = []
        assert [i.filename for i in reader.iter_infos(marks[3], marks[6], marks=again)] == names[21:42]
        assert again == marks[3:6]


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


# ------------------------------------------------------------------ stored bytes: compress, copy, write_compressed
def _random_members(seed: int) -> list[tuple[str, bytes]]:
    """Random bytes (incompressible), runs (compressible), empty, and one member over the 1 MiB chunking of
    ``Media.copy_to`` (zipfile is then fed several chunks; compress() gets one)."""
    rng = random.Random(seed)
    members = [(f"d/{n}.jpg", rng.randbytes(rng.randint(0, 3000)) + bytes([n]) * rng.randint(0, 3000))
               for n in range(30)]
    big = rng.randbytes(1 << 20) + b"ab" * (1 << 20)
    return [*members, ("empty.png", b""), ("é/ü.png", b"x" * 5000), ("big.png", big)]


def _info(name: str, compression: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=DATE)
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


def _zipfile_bytes(path: Path, members: list[tuple[str, bytes]], compression: int) -> bytes:
    """What zipfile writes for members streamed in 1 MiB chunks (the image_zip writer's former path)."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in members:
            with archive.open(_info(name, compression), "w", force_zip64=True) as member:
                for start in range(0, len(data), 1 << 20):
                    member.write(data[start : start + (1 << 20)])
    return path.read_bytes()


COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_write_compressed_gives_zipfile_bytes(tmp_path, compression):
    members = _random_members(seed=compression)
    expected = _zipfile_bytes(tmp_path / "expected.zip", members, compression)
    with SpoolingZipWriter(tmp_path / "got.zip", "w", compression=compression) as archive:
        for name, data in members:
            packed = compress(data, compression)
            assert (packed.crc, packed.file_size) == (zlib.crc32(data), len(data))
            archive.write_compressed(_info(name, compression), packed)
    assert (tmp_path / "got.zip").read_bytes() == expected
    with zipfile.ZipFile(tmp_path / "got.zip") as archive:
        assert archive.testzip() is None
        assert [(i.filename, archive.read(i), i.CRC) for i in archive.infolist()] == [
            (name, data, zlib.crc32(data)) for name, data in members]


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_stored_bytes_copied_between_archives_give_zipfile_bytes(tmp_path, compression):
    """ZipMember.compressed reads the stored bytes, CRC and sizes; write_compressed puts them back unchanged."""
    members = _random_members(seed=10 + compression)
    expected = _zipfile_bytes(tmp_path / "source.zip", members, compression)
    with StreamingZipReader(tmp_path / "source.zip") as source, \
            SpoolingZipWriter(tmp_path / "copy.zip", "w", compression=compression) as archive:
        for info in source.iter_infos():
            member = ZipMember(source, info)
            assert member.read() == dict(members)[info.filename]
            assert member.open().read() == dict(members)[info.filename]
            archive.write_compressed(_info(info.filename, compression), member.compressed())
    assert (tmp_path / "copy.zip").read_bytes() == expected


def test_level_1_members_keep_their_bytes(tmp_path):
    """A copy does not deflate again: a member deflated at level 1 keeps its exact compressed bytes."""
    rng = random.Random(5)
    data = b" ".join(rng.choice([b"cat", b"dog", b"zebra", b"ox"]) * rng.randint(1, 9) for _ in range(20000))
    with zipfile.ZipFile(tmp_path / "one.zip", "w") as archive:
        archive.writestr("a.png", data, zipfile.ZIP_DEFLATED, 1)
    with StreamingZipReader(tmp_path / "one.zip") as source:
        (info,) = source.iter_infos()
        packed = ZipMember(source, info).compressed()
    assert packed.data == zlib.compress(data, 1)[2:-4]  # the raw deflate stream, without zlib's framing
    assert packed.data != compress(data, zipfile.ZIP_DEFLATED).data
    assert (packed.crc, packed.file_size) == (zlib.crc32(data), len(data))


def test_zip64_local_headers_and_offsets_survive_a_copy(tmp_path):
    """Members beyond 4 GiB of offsets need ZIP64 central records; a sparse prefix puts them there cheaply."""
    path = tmp_path / "far.zip"
    with open(path, "wb") as stream:
        stream.truncate(zipfile.ZIP64_LIMIT + 10)
        stream.seek(0, 2)
        with SpoolingZipWriter(stream, "w") as archive:
            archive.start_dir = stream.tell()
            archive.write_compressed(_info("far.jpg", zipfile.ZIP_STORED), compress(b"far away", zipfile.ZIP_STORED))
    with zipfile.ZipFile(path) as archive:
        (info,) = archive.infolist()
        assert info.header_offset == zipfile.ZIP64_LIMIT + 10
        assert archive.read(info) == b"far away"
    path.unlink()


def test_copy_errors_name_the_member(tmp_path):
    data = bytes(range(256)) * 40
    path = tmp_path / "in.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(_info("a/1.jpg", zipfile.ZIP_STORED), data)
    raw = bytearray(path.read_bytes())
    raw[raw.find(data) + 100] ^= 0xFF  # corrupt data: read() checks the CRC, compressed() copies as stored
    path.write_bytes(bytes(raw))
    with StreamingZipReader(path) as source:
        (info,) = source.iter_infos()
        member = ZipMember(source, info)
        assert len(member.compressed().data) == len(data)
        with pytest.raises(zipfile.BadZipFile, match="a/1.jpg"):
            member.read()
    raw[0:4] = b"XXXX"  # a broken local header
    path.write_bytes(bytes(raw))
    with StreamingZipReader(path) as source:
        (info,) = source.iter_infos()
        with pytest.raises(zipfile.BadZipFile, match="a/1.jpg"):
            ZipMember(source, info).compressed()
    raw[0:4] = b"PK\x03\x04"
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 20 : central + 24] = (1 << 20).to_bytes(4, "little")  # declares more data than the file holds
    path.write_bytes(bytes(raw))
    with StreamingZipReader(path) as source:
        (info,) = source.iter_infos()
        with pytest.raises(EOFError, match="a/1.jpg"):
            ZipMember(source, info).compressed()


def test_write_compressed_to_an_unseekable_stream_uses_data_descriptors(tmp_path):
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[override]
            self.data += b
            return len(b)

    members = _random_members(seed=3)[:5]
    for cls in (zipfile.ZipFile, SpoolingZipWriter):
        stream = Unseekable()
        with cls(stream, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                if cls is zipfile.ZipFile:
                    with archive.open(_info(name, zipfile.ZIP_DEFLATED), "w", force_zip64=True) as member:
                        member.write(data)
                else:
                    archive.write_compressed(_info(name, zipfile.ZIP_DEFLATED), compress(data, zipfile.ZIP_DEFLATED))
        if cls is zipfile.ZipFile:
            expected = bytes(stream.data)
    assert bytes(stream.data) == expected
    with zipfile.ZipFile(io.BytesIO(expected)) as archive:
        assert [archive.read(name) for name, _ in members] == [data for _, data in members]


# ------------------------------------------------------------------ append_archive: a part copied as one block
def _part(path: Path, members: list[tuple[str, bytes]], compression: int, archive: SpoolingZipWriter | None = None):
    """Write ``members`` as the image_zip writer does (write_compressed), to ``archive`` or a new file."""
    target = archive or SpoolingZipWriter(path, "w", compression=compression)
    for name, data in members:
        target.write_compressed(_info(name, compression), compress(data, compression))
    if archive is None:
        target.close()


@pytest.mark.parametrize("records", ["patched in place", "packed again"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_append_archive_gives_the_bytes_of_one_writer(tmp_path, monkeypatch, compression, records):
    """Plain central records are copied with their offset patched, without a ZipInfo per member; packing each
    member's ZipInfo again (the way for ZIP64 records) gives the same bytes."""
    from dsformats import zipstream

    if records == "packed again":
        monkeypatch.setattr(zipstream, "_rebased_records", lambda *args: None)
    else:
        monkeypatch.setattr(StreamingZipReader, "iter_infos", lambda *args: pytest.fail("a ZipInfo was built"))
    members = _random_members(seed=20 + compression)
    first, second = members[:20], members[20:]
    _part(tmp_path / "one.zip", members, compression)
    _part(tmp_path / "a.zip", first, compression)
    _part(tmp_path / "b.zip", second, compression)
    checked: list[str] = []
    with SpoolingZipWriter(tmp_path / "merged.zip", "w", compression=compression) as archive:
        for part in ("a.zip", "b.zip"):
            with StreamingZipReader(tmp_path / part) as source:
                assert archive.append_archive(source, checked.append)
    assert (tmp_path / "merged.zip").read_bytes() == (tmp_path / "one.zip").read_bytes()
    assert checked == [name for name, _ in members]
    with zipfile.ZipFile(tmp_path / "merged.zip") as archive:
        assert archive.testzip() is None


@pytest.mark.parametrize("records", ["patched in place", "packed again"])
@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_continuing_an_archive_gives_the_bytes_of_one_writer(tmp_path, monkeypatch, compression, records):
    """A writer that goes on with a part (its members left in place) and appends the next one writes what one
    writer of every member does; the first part's names are checked first."""
    from dsformats import zipstream

    if records == "packed again":
        monkeypatch.setattr(zipstream, "_rebased_records", lambda *args: None)
    members = _random_members(seed=40 + compression)
    _part(tmp_path / "one.zip", members, compression)
    _part(tmp_path / "a.zip", members[:17], compression)
    _part(tmp_path / "b.zip", members[17:], compression)
    checked: list[str] = []
    inode = (tmp_path / "a.zip").stat().st_ino
    archive = SpoolingZipWriter.continuing(tmp_path / "a.zip", compression, checked.append)
    assert archive is not None and checked == [name for name, _ in members[:17]]
    with archive, StreamingZipReader(tmp_path / "b.zip") as source:
        assert archive.append_archive(source, checked.append)
    assert archive.fp is None  # the file it opened is closed with it
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "one.zip").read_bytes()
    assert (tmp_path / "a.zip").stat().st_ino == inode and checked == [name for name, _ in members]


def test_continuing_declines_other_layouts_and_leaves_the_file(tmp_path):
    plain = tmp_path / "plain.zip"
    with zipfile.ZipFile(plain, "w") as archive:  # local headers without the ZIP64 field
        for name, data in _random_members(seed=5)[:4]:
            archive.writestr(_info(name, zipfile.ZIP_STORED), data)
    _part(tmp_path / "deflated.zip", _random_members(seed=6)[:4], zipfile.ZIP_DEFLATED)
    for path in (plain, tmp_path / "deflated.zip"):
        before, checked = path.read_bytes(), []
        assert SpoolingZipWriter.continuing(path, zipfile.ZIP_STORED, checked.append) is None
        assert path.read_bytes() == before and checked == []


@pytest.mark.parametrize("copy", ["through this process", "without file descriptors"])
def test_append_archive_copies_where_the_kernel_cannot(tmp_path, monkeypatch, copy):
    """Without copy_file_range (another file system, an old kernel) the block goes through this process, and
    archives in memory are copied by reading and writing them: the same bytes."""
    import io
    import os

    members = _random_members(seed=8)
    _part(tmp_path / "one.zip", members, zipfile.ZIP_STORED)
    _part(tmp_path / "a.zip", members[:9], zipfile.ZIP_STORED)
    _part(tmp_path / "b.zip", members[9:], zipfile.ZIP_STORED)
    if copy == "through this process":
        def unsupported(*args):
            raise OSError(38, "Function not implemented")

        monkeypatch.setattr(os, "copy_file_range", unsupported)
        target, sources = tmp_path / "merged.zip", [tmp_path / "a.zip", tmp_path / "b.zip"]
    else:
        target = io.BytesIO()
        sources = [io.BytesIO((tmp_path / name).read_bytes()) for name in ("a.zip", "b.zip")]
    with SpoolingZipWriter(target, "w", spool_dir=tmp_path) as archive:
        for part in sources:
            with StreamingZipReader(part) as source:
                assert archive.append_archive(source, lambda name: None)
    merged = target.getvalue() if isinstance(target, io.BytesIO) else target.read_bytes()
    assert merged == (tmp_path / "one.zip").read_bytes()


def test_append_archive_beyond_4_gib_writes_zip64_records(tmp_path):
    """Offsets past 4 GiB in the target need ZIP64 central records (a sparse prefix puts the part there)."""
    members = [("a.jpg", b"first"), ("b.jpg", b"second" * 100)]
    _part(tmp_path / "part.zip", members, zipfile.ZIP_STORED)
    outputs = []
    for name, merge in (("one.zip", False), ("merged.zip", True)):
        with open(tmp_path / name, "wb") as stream:
            stream.truncate(zipfile.ZIP64_LIMIT + 10)
            stream.seek(0, 2)
            with SpoolingZipWriter(stream, "w") as archive:
                archive.start_dir = stream.tell()
                if merge:
                    with StreamingZipReader(tmp_path / "part.zip") as source:
                        assert archive.append_archive(source, lambda name: None)
                else:
                    _part(tmp_path / name, members, zipfile.ZIP_STORED, archive)
        with open(tmp_path / name, "rb") as stream:
            stream.seek(zipfile.ZIP64_LIMIT)
            outputs.append(stream.read())
        with zipfile.ZipFile(tmp_path / name) as archive:
            assert [(i.header_offset > zipfile.ZIP64_LIMIT, archive.read(i)) for i in archive.infolist()] == [
                (True, data) for _, data in members]
        (tmp_path / name).unlink()
    assert outputs[0] == outputs[1]


def test_append_archive_declines_other_layouts_and_writes_nothing(tmp_path):
    members = _random_members(seed=3)[:5]
    zipfile_written = tmp_path / "plain.zip"
    with zipfile.ZipFile(zipfile_written, "w") as archive:  # local headers without the ZIP64 field
        for name, data in members:
            archive.writestr(_info(name, zipfile.ZIP_STORED), data)
    _part(tmp_path / "deflated.zip", members, zipfile.ZIP_DEFLATED)
    for source_path in (zipfile_written, tmp_path / "deflated.zip"):
        checked: list[str] = []
        with SpoolingZipWriter(tmp_path / "out.zip", "w") as archive, StreamingZipReader(source_path) as source:
            assert not archive.append_archive(source, checked.append)
        assert checked == []
        with zipfile.ZipFile(tmp_path / "out.zip") as archive:
            assert archive.infolist() == []


def test_append_archive_check_failure_writes_nothing(tmp_path):
    members = _random_members(seed=4)[:5]
    _part(tmp_path / "a.zip", members[:2], zipfile.ZIP_STORED)
    _part(tmp_path / "b.zip", members[2:], zipfile.ZIP_STORED)

    def refuse(name: str) -> None:
        if name == members[3][0]:
            raise ValueError("duplicate")

    with SpoolingZipWriter(tmp_path / "out.zip", "w") as archive:
        with StreamingZipReader(tmp_path / "a.zip") as source:
            assert archive.append_archive(source, refuse)
        with StreamingZipReader(tmp_path / "b.zip") as source, pytest.raises(ValueError, match="duplicate"):
            archive.append_archive(source, refuse)
    _part(tmp_path / "expected.zip", members[:2], zipfile.ZIP_STORED)
    assert (tmp_path / "out.zip").read_bytes() == (tmp_path / "expected.zip").read_bytes()


@pytest.mark.parametrize("kernel", ["refused", "absent"])
def test_append_archive_copies_through_user_space_without_copy_file_range(tmp_path, monkeypatch, kernel):
    import os

    def refused(*args):
        raise OSError(18, "Invalid cross-device link")

    if kernel == "refused":
        monkeypatch.setattr(os, "copy_file_range", refused, raising=False)
    else:
        monkeypatch.delattr(os, "copy_file_range", raising=False)
    members = _random_members(seed=6)
    _part(tmp_path / "one.zip", members, zipfile.ZIP_DEFLATED)
    _part(tmp_path / "a.zip", members[:3], zipfile.ZIP_DEFLATED)
    _part(tmp_path / "b.zip", members[3:], zipfile.ZIP_DEFLATED)
    target = io.BytesIO()  # no file descriptor either
    with SpoolingZipWriter(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for part in ("a.zip", "b.zip"):
            with StreamingZipReader(tmp_path / part) as source:
                assert archive.append_archive(source, lambda name: None)
    assert target.getvalue() == (tmp_path / "one.zip").read_bytes()
