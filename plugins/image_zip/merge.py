"""Merge the partial archives of a scale-out conversion into the one archive a single writer would write."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dsformats import DatasetError, Report
from dsformats.fileaccess import safe_relative

from .schema import COMPRESSION


def merge(parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Report) -> bool:
    """Append every part's members, in shard order, to ``path/<name>``, exactly as the writer stores them.

    Members are rewritten through ``zipfile`` with the same settings as the writer (same date, attributes,
    compression and zip64 headers), so the archive bytes equal a single writer's output.
    """
    name = safe_relative(options["name"], location="--name")
    compression = COMPRESSION[options["compression"]]
    target = path / name
    target.parent.mkdir(parents=True, exist_ok=True)
    owners: dict[str, str] = {}
    folded: dict[str, str] = {}
    with zipfile.ZipFile(target, "w", compression=compression) as archive:
        for part in parts:
            with zipfile.ZipFile(part / name) as source:
                for info in source.infolist():
                    suffix = Path(info.filename).suffix
                    stem = info.filename[: -len(suffix)] if suffix else info.filename
                    if stem in owners:
                        raise DatasetError(
                            f"members {owners[stem]!r} and {info.filename!r} would both be item {stem!r}; "
                            "use --subset-dirs to keep subsets apart"
                        )
                    owners[stem] = info.filename
                    if folded.setdefault(info.filename.lower(), info.filename) != info.filename:
                        report.warn(
                            f"members {folded[info.filename.lower()]!r} and {info.filename!r} differ only in case "
                            "and collide when extracted on a case-insensitive file system"
                        )
                    copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
                    copy.compress_type = compression
                    copy.external_attr = info.external_attr
                    with source.open(info) as stream, archive.open(copy, "w", force_zip64=True) as member:
                        shutil.copyfileobj(stream, member, 1 << 20)
    return True
