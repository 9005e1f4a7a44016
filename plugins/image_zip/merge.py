"""Merge the partial archives of a scale-out conversion into the one archive a single writer would write, or,
with ``--shards-out``, publish each shard's archive under its shard number."""

from __future__ import annotations

import os
import shutil
import zipfile
from array import array
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dsformats import DatasetError, Report
from dsformats.fileaccess import safe_relative
from dsformats.idset import repeated_values
from dsformats.placement import MARKER, Placement, placed_part, read_marker
from dsformats.zipstream import SpoolingZipWriter, StreamingZipReader, ZipMember

from .schema import COMPRESSION, SHARD_ITEMS, case_clash, member_stem, same_item, shard_archive_name


class _Members:
    """The writer's checks across every part: no two members read back as the same item id; case clashes warned.

    Memory keeps two 64-bit hashes a member (its stem, its lower-case name), checked in bulk by :meth:`finish`;
    only the names of repeated hashes (a repeated id or spelling, or a rare hash collision) are compared
    exactly, in a second pass over the central directories of the archives written, in member order.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        self.stems, self.folded = array("q"), array("q")
        self.ends: list[int] = []  # the number of members up to the end of each shard
        self.archives: list[Path] = []  # the archives written, whose members are every shard's in shard order
        self.items: list[Path] = []  # each shard's SHARD_ITEMS file

    def add(self, name: str) -> None:
        self.stems.append(hash(member_stem(name)[0]))
        self.folded.append(hash(name.lower()))

    def end_shard(self) -> None:
        self.ends.append(len(self.stems))

    def finish(self) -> bool:
        """Raise for an item id of two shards, warn for names that differ only in case (as a single writer).

        False when one item (subset and id) is in two shards: one process skips it as a duplicate (or raises
        that), which the merge cannot, so it declines; and when a shard holds two spellings of a name whose first
        spelling is in an earlier shard: that shard warned about its own first one, which one writer does not.
        """
        stems, folded = repeated_values(self.stems), repeated_values(self.folded)
        if not (stems or folded):
            return True
        owners: dict[str, tuple[str, int, int]] = {}
        spellings: dict[str, str] = {}  # lower-case name -> its first spelling
        own: dict[str, str] = {}  # the same, in the current shard (whose writer warned against it)
        position = shard = 0
        for archive in self.archives:
            with StreamingZipReader(archive) as source:
                for name, *_ in source.iter_entries():
                    while position >= self.ends[shard]:
                        shard += 1
                        own = {}
                    stem = member_stem(name)[0]
                    if hash(stem) in stems:
                        owner, first, at = owners.setdefault(stem, (name, shard, position))
                        if first != shard:
                            error = self._repeated(stem, (owner, first, at), (name, shard, position))
                            if error is None:
                                return False
                            raise error
                    position += 1
                    lower = name.lower()
                    if hash(lower) in folded:
                        spelling, mine = spellings.setdefault(lower, name), own.setdefault(lower, name)
                        if mine != name and mine != spelling:
                            return False  # its shard warned about a pair one writer does not: decline
                        if spelling != name:
                            self.report.warn(case_clash(spelling, name))
        return True

    def _repeated(self, stem: str, *members: tuple[str, int, int]) -> DatasetError | None:
        """The error for two members ``(name, shard, position)`` of shards that are one item id ``stem``: one
        writer's, naming the items, when the shards' item lists tell them; None when they are one item."""
        items = []
        for _, shard, position in members:
            try:
                listed = self.items[shard].read_text(encoding="utf-8", errors="surrogatepass").split("\0")[:-1]
            except (IndexError, OSError):
                listed = []
            start = self.ends[shard - 1] if shard else 0
            if len(listed) != self.ends[shard] - start:  # not written by this writer
                return DatasetError(
                    f"member {members[1][0]!r} of shard {members[1][1]} and member {members[0][0]!r} of an earlier "
                    f"shard would both be item {stem!r}: an item id is repeated across shards (or across subsets: "
                    "use --subset-dirs)")
            items.append(listed[position - start])
        if items[0] == items[1]:
            return None
        return DatasetError(same_item(items[0], items[1], stem, members[0][0], members[1][0]))


def merge(parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Report) -> bool | None:
    """Append every part's members, in shard order, to ``path/<name>``, exactly as the writer stores them.

    Members are appended as the parts store them (compressed bytes copied, not inflated) with the same
    settings as the writer (same date, attributes, compression and zip64 headers), so the archive bytes equal
    a single writer's output. Parts that local workers placed in the merged output file (see
    :mod:`dsformats.placement`) stay there: only their central directory records are taken. With
    ``shards_out``, each part's archive is checked and moved, unchanged, to ``<stem>-<shard>.zip``. None (the
    conversion runs in one process) when one item is in two shards.
    """
    name = safe_relative(options["name"], location="--name")
    path.mkdir(parents=True, exist_ok=True)
    members = _Members(report)
    failed: list[Exception] = []  # a shard that failed, whose part the merge asked for
    if options["shards_out"]:
        written = shard_archive_name(name, 0)  # every part's writer names its archive as shard 0
        for index, part in enumerate(_until_failed(parts, failed)):
            with StreamingZipReader(part / written) as source:
                for member_name, *_ in source.iter_entries():
                    members.add(member_name)
            members.end_shard()
            members.items.append(part / SHARD_ITEMS)
            target = path / shard_archive_name(name, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(part / written, target)
            members.archives.append(target)
        return _finish(members, failed)
    compression = COMPRESSION[options["compression"]]
    target = path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    archive: SpoolingZipWriter | None = None
    placed: Path | None = None  # the merged output file that placed parts were written into, the archive's file
    adopting = True  # every part so far was adopted where it was placed
    try:
        for index, part in enumerate(_until_failed(parts, failed)):
            marker = read_marker(part)
            if marker is not None and archive is None:  # placed from offset 0 on: the archive is that file
                placed = Path(marker[0].path)
                archive = SpoolingZipWriter.at_start(placed, compression)
            if marker is not None and adopting:
                assert archive is not None
                if _adopted(archive, part / name, marker, members):
                    members.end_shard()
                    members.items.append(part / SHARD_ITEMS)
                    continue
                # Not where it was predicted: this part and the later placed ones become ordinary parts, and the
                # archive goes on from the last part adopted.
                adopting = False
                _unplace(parts, index, name)
                archive.truncate()
            moved = False
            if archive is None:  # the first part is the archive's start: moved, not copied, where it can be
                archive = _moved_first(part / name, target, compression, members)
                moved = archive is not None
                archive = archive or SpoolingZipWriter(target, "w", compression=compression)
            if not moved:
                with StreamingZipReader(part / name) as source:
                    if not archive.append_archive(source, members.add):  # else the usual part: one block copy
                        _append_members(archive, source, compression, members)
                # Copied: removed now, so the parts never take the whole output's space again (nor, on a disk,
                # get written to it, when removed before the kernel writes them back).
                (part / name).unlink()
            members.end_shard()
            members.items.append(part / SHARD_ITEMS)
        if archive is None:
            archive = SpoolingZipWriter(target, "w", compression=compression)
    finally:
        if archive is not None:
            archive.close()
    if placed is not None:
        shutil.move(placed, target)  # a rename: the parts are beside the output
    members.archives.append(target)
    return _finish(members, failed)  # an error discards the staged output


def _adopted(archive: SpoolingZipWriter, tail: Path, marker: tuple[Placement, int], members: _Members) -> bool:
    """Adopt a placed part where it lies, when it fills its range of the archive's file exactly and the range
    starts where the archive's members end; False (nothing taken) otherwise."""
    placement, length = marker
    if placement.offset != archive.start_dir or length < placement.size:  # type: ignore[attr-defined]
        return False
    with placed_part(placement, length, tail) as stream:
        try:
            source = StreamingZipReader(stream)
        except zipfile.BadZipFile:  # left for the ordinary path to read (and report)
            return False
        with source:
            return source.start_dir == placement.size and archive.adopt_archive(source, members.add)


def _unplace(parts: Sequence[Path], first: int, name: str) -> None:
    """Turn part ``first`` and every later placed part into ordinary parts (the bytes of each copied out of the
    merged output file into its archive), waiting for their shards: the archive is then free to grow over their
    ranges. Stops at a failed shard, which the merge meets next."""
    for index in range(first, len(parts)):
        try:
            part = parts[index]
        except Exception:  # noqa: BLE001 - the merge's loop takes the same part next and records the failure
            return
        marker = read_marker(part)
        if marker is None:
            continue
        whole = part / f"{name}.whole"
        with placed_part(*marker, part / name) as source, open(whole, "wb") as target:
            shutil.copyfileobj(source, target, 1 << 20)
        os.replace(whole, part / name)
        (part / MARKER).unlink()


def _moved_first(part: Path, target: Path, compression: int, members: _Members) -> SpoolingZipWriter | None:
    """The first part's archive moved to ``target`` and open to append the next parts to (its members checked
    by ``members``); None, nothing moved, where it cannot be (another file system, another layout)."""
    try:
        os.replace(part, target)
    except OSError:
        return None
    archive = SpoolingZipWriter.continuing(target, compression, members.add)
    if archive is None:
        os.replace(target, part)
    return archive


def _until_failed(parts: Sequence[Path], failed: list[Exception]) -> Iterator[Path]:
    """The parts in shard order, until one whose shard failed (its error goes to ``failed``)."""
    for index in range(len(parts)):
        try:
            part = parts[index]
        except Exception as exc:  # noqa: BLE001 - raised by _finish, unless the shards before it hold an error
            failed.append(exc)
            return
        yield part


def _finish(members: _Members, failed: list[Exception]) -> bool | None:
    """Check the members merged; then raise a failed shard's error: an id that the shards before it repeat comes
    first in item order, as one writer meets it."""
    merged = members.finish()
    if failed:
        raise failed[0]
    return merged or None


def _append_members(archive: SpoolingZipWriter, source: StreamingZipReader, compression: int, members: _Members
                    ) -> None:
    """Append the members of a part laid out otherwise than :meth:`SpoolingZipWriter.append_archive` copies, one
    by one, as the writer stores them."""
    for info in source.iter_infos():
        members.add(info.filename)
        copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
        copy.compress_type = compression
        copy.external_attr = info.external_attr
        if info.compress_type == compression:  # as the part stores it: not compressed again
            archive.write_compressed(copy, ZipMember(source, info).compressed())
            continue
        with source.open(info) as stream, archive.open(copy, "w", force_zip64=True) as member:
            shutil.copyfileobj(stream, member, 1 << 20)
