"""Merge the partial archives of a scale-out conversion into the one archive a single writer would write, or,
with ``--shards-out``, publish each shard's archive under its shard number."""

from __future__ import annotations

import shutil
import zipfile
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dsformats import DatasetError, Report
from dsformats.fileaccess import safe_relative
from dsformats.idset import repeated_values
from dsformats.zipstream import SpoolingZipWriter, StreamingZipReader, ZipMember

from .schema import COMPRESSION, case_clash, member_stem, shard_archive_name


class _Members:
    """The writer's checks across every part: no two members read back as the same item id; case clashes warned.

    Memory keeps two 64-bit hashes a member (its stem, its lower-case name), checked in bulk by :meth:`finish`;
    only the names of repeated hashes (a repeated id or spelling, or a rare hash collision) are compared
    exactly, in a second pass over the archives' central directories, in member order.
    """

    def __init__(self, report: Report) -> None:
        self.report = report
        self.stems, self.folded = array("q"), array("q")
        self.archives: list[Path] = []  # where each shard's members are, in shard order

    def add(self, name: str) -> None:
        self.stems.append(hash(member_stem(name)[0]))
        self.folded.append(hash(name.lower()))

    def finish(self) -> None:
        """Raise for an item id of two shards, warn for names that differ only in case (as a single writer)."""
        stems, folded = repeated_values(self.stems), repeated_values(self.folded)
        if not (stems or folded):
            return
        owners: dict[str, tuple[str, int]] = {}
        spellings: dict[str, str] = {}
        for shard, archive in enumerate(self.archives):
            with StreamingZipReader(archive) as source:
                for name, *_ in source.iter_entries():
                    stem = member_stem(name)[0]
                    if hash(stem) in stems:
                        owner, first = owners.setdefault(stem, (name, shard))
                        if first != shard:
                            raise DatasetError(
                                f"member {name!r} of shard {shard} and member {owner!r} of an earlier shard would "
                                f"both be item {stem!r}: an item id is repeated across shards (or across subsets: "
                                "use --subset-dirs)"
                            )
                    lower = name.lower()
                    if hash(lower) in folded and spellings.setdefault(lower, name) != name:
                        self.report.warn(case_clash(spellings[lower], name))


def merge(parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Report) -> bool:
    """Append every part's members, in shard order, to ``path/<name>``, exactly as the writer stores them.

    Members are appended as the parts store them (compressed bytes copied, not inflated) with the same
    settings as the writer (same date, attributes, compression and zip64 headers), so the archive bytes equal
    a single writer's output. With
    ``shards_out``, each part's archive is checked and moved, unchanged, to ``<stem>-<shard>.zip``.
    """
    name = safe_relative(options["name"], location="--name")
    path.mkdir(parents=True, exist_ok=True)
    members = _Members(report)
    if options["shards_out"]:
        written = shard_archive_name(name, 0)  # every part's writer names its archive as shard 0
        for index, part in enumerate(parts):
            with StreamingZipReader(part / written) as source:
                for member_name, *_ in source.iter_entries():
                    members.add(member_name)
            target = path / shard_archive_name(name, index)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(part / written, target)
            members.archives.append(target)
        members.finish()
        return True
    compression = COMPRESSION[options["compression"]]
    target = path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    with SpoolingZipWriter(target, "w", compression=compression) as archive:
        for part in parts:
            members.archives.append(part / name)
            with StreamingZipReader(part / name) as source:
                if archive.append_archive(source, members.add):
                    continue  # the usual part: copied as one block
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
    members.finish()  # an error discards the staged output
    return True
