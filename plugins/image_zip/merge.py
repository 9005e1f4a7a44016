"""Merge the partial archives of a scale-out conversion into the one archive a single writer would write, or,
with ``--shards-out``, publish each shard's archive under its shard number."""

from __future__ import annotations

import functools
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dsformats import DatasetError, Report
from dsformats.fileaccess import safe_relative
from dsformats.idset import KeyMap
from dsformats.zipstream import SpoolingZipWriter, StreamingZipReader, ZipMember

from .schema import COMPRESSION, path_suffix, shard_archive_name


class _Members:
    """The writer's checks across every part: no two members read back as the same item id; case clashes warned.

    The names wait in compact spooled maps (:class:`dsformats.idset.KeyMap`), not in memory.
    """

    def __init__(self, report: Report, spool_dir: Path) -> None:
        self.report = report
        self.owners = KeyMap(spool_dir)
        self.folded = KeyMap(spool_dir)

    def add(self, name: str, shard: int) -> None:
        suffix = path_suffix(name)
        stem = name[: -len(suffix)] if suffix else name
        owner = self.owners.insert(stem, name)
        if owner is not None:
            raise DatasetError(
                f"member {name!r} of shard {shard} and member {owner!r} of an earlier shard would both "
                f"be item {stem!r}: an item id is repeated across shards (or across subsets: use --subset-dirs)"
            )
        first = self.folded.setdefault(name.lower(), name)
        if first != name:
            self.report.warn(
                f"members {first!r} and {name!r} differ only in case and collide when extracted "
                "on a case-insensitive file system"
            )

    def close(self) -> None:
        self.owners.close()
        self.folded.close()


def merge(parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Report) -> bool:
    """Append every part's members, in shard order, to ``path/<name>``, exactly as the writer stores them.

    Members are appended as the parts store them (compressed bytes copied, not inflated) with the same
    settings as the writer (same date, attributes, compression and zip64 headers), so the archive bytes equal
    a single writer's output. With
    ``shards_out``, each part's archive is checked and moved, unchanged, to ``<stem>-<shard>.zip``.
    """
    name = safe_relative(options["name"], location="--name")
    path.mkdir(parents=True, exist_ok=True)
    members = _Members(report, path)
    try:
        if options["shards_out"]:
            written = shard_archive_name(name, 0)  # every part's writer names its archive as shard 0
            for index, part in enumerate(parts):
                with StreamingZipReader(part / written) as source:
                    for info in source.iter_infos():
                        members.add(info.filename, index)
                target = path / shard_archive_name(name, index)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(part / written, target)
            return True
        compression = COMPRESSION[options["compression"]]
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with SpoolingZipWriter(target, "w", compression=compression) as archive:
            for index, part in enumerate(parts):
                with StreamingZipReader(part / name) as source:
                    if archive.append_archive(source, functools.partial(members.add, shard=index)):
                        continue  # the usual part: copied as one block
                    for info in source.iter_infos():
                        members.add(info.filename, index)
                        copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                        copy.compress_type = compression
                        copy.external_attr = info.external_attr
                        if info.compress_type == compression:  # as the part stores it: not compressed again
                            archive.write_compressed(copy, ZipMember(source, info).compressed())
                            continue
                        with source.open(info) as stream, archive.open(copy, "w", force_zip64=True) as member:
                            shutil.copyfileobj(stream, member, 1 << 20)
        return True
    finally:
        members.close()
