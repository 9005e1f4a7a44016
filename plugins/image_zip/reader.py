"""Read images from a .zip archive, or from every .zip archive under a directory, lazily."""

from __future__ import annotations

import copy
import itertools
import zipfile
from array import array
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from dsformats import DatasetError, Header, Item, Media, Shard, shard_range
from dsformats.fileaccess import as_path, open_binary, safe_relative, walk_files
from dsformats.idset import repeated_values
from dsformats.imaging import IMAGE_SUFFIXES
from dsformats.limits import ZipBudget
from dsformats.policy import bad_item, warn
from dsformats.zipstream import MARK_EVERY, StreamingZipReader, ZipMember

from .schema import ARCHIVE_SUFFIX, is_junk, split_member

_T = TypeVar("_T")

#: Members that are not images are named in the warning up to this many.
_NAMED_OTHERS = 3


class _Archive:
    """One archive and which of its central directory records are images.

    Nothing per member is kept but one bit (image or not) and, every :data:`MARK_EVERY` records, the record's
    position: the central directory is parsed again, record by record, when the items are read, so memory
    does not grow with the number of members. :meth:`part` narrows it to a run of records (a range shard).
    Pickled, it keeps all that and drops the open file (:meth:`open` it again).
    """

    def __init__(self, path: Path, subset: str) -> None:
        self.path = path
        self.subset = subset
        self.count = 0  # image members
        self.records = 0  # central directory records
        self._images = bytearray()  # bit i: central directory record i (of the span) is an image member
        self._marks: list[int] = []  # the position of every MARK_EVERY-th record
        self._span: tuple[int, int | None] = (0, None)  # the central directory positions read
        self.zip: StreamingZipReader | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "zip": None}

    def open(self) -> None:
        """Open the archive (its end records only)."""
        stream = open_binary(self.path)
        try:
            self.zip = StreamingZipReader(stream)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            stream.close()
            raise DatasetError(f"not a readable zip archive ({exc})", str(self.path)) from None
        except BaseException:
            stream.close()
            raise

    def part(self, first: int, stop: int) -> _Archive:
        """The records ``first`` (a multiple of :data:`MARK_EVERY`) to ``stop`` of this indexed archive."""
        aligned = first % MARK_EVERY == 0 and (stop % MARK_EVERY == 0 or stop == self.records)
        if not (aligned and 0 <= first <= stop <= self.records):
            raise DatasetError(f"no shard of records {first}:{stop} in this archive of {self.records:,} records (a "
                               f"range starts at a multiple of {MARK_EVERY} and ends at one or at the last record)",
                               str(self.path))
        part = copy.copy(self)
        part.zip, part._marks = None, []
        part._images = self._images[first >> 3 : (stop + 7) >> 3]
        if stop & 7:
            part._images[-1] &= (1 << (stop & 7)) - 1
        part.count = int.from_bytes(part._images, "little").bit_count()
        part.records = stop - first
        end = self._marks[stop // MARK_EVERY] if stop < self.records else None  # stop: a multiple, or the end
        part._span = (self._marks[first // MARK_EVERY] if first else self._span[0], end)
        return part

    def index(self, keys: array[int], records: range | None = None) -> None:
        """Pick the image members (bad ones go to the bad-item policy); append the hash of each one's item key
        (:meth:`item_key`) to ``keys``, for :meth:`ImageZipReader._check_ids`.

        With ``records``, only the members of those record numbers are checked and picked.
        """
        budget = ZipBudget(str(self.path))
        images = self._images
        others: list[str] = []  # members that are not images (nor directories or OS metadata): told, not read
        other_count = 0
        number = -1
        for number, (name, flags, compress_size, file_size) in enumerate(self._walk("iter_entries", self._marks)):
            if number % 8 == 0:
                images.append(0)
            if records is not None and number not in records:
                continue
            if is_junk(name):  # directories too
                continue
            stem, suffix = split_member(name)
            if suffix not in IMAGE_SUFFIXES:
                other_count += 1
                if len(others) < _NAMED_OTHERS:
                    others.append(name)
                continue
            where = f"{self.path}!{name}"
            try:
                budget.check_sizes(name, file_size, compress_size)
                rel = safe_relative(name, location=where)
                if flags & 0x1:
                    raise DatasetError("member is encrypted", where)
            except DatasetError as exc:
                bad_item(exc)
                continue
            keys.append(hash(self.item_key(stem if rel == name else split_member(rel)[0])))
            images[number >> 3] |= 1 << (number & 7)
            self.count += 1
        if other_count:
            more = f" and {other_count - len(others):,} more" if other_count > len(others) else ""
            what = "1 member is not an image and was" if other_count == 1 else (
                f"{other_count:,} members are not images and were")
            warn(f"{self.path}: {what} not read: {', '.join(others)}{more}")
        self.records = number + 1

    def item_key(self, item_id: str) -> str:
        """What two members of one item share, in any archive of the reader: subset and item id."""
        return f"{self.subset}\0{item_id}"

    def _walk(self, how: str, marks: list[int] | None = None) -> Iterator[Any]:
        """The archive's ``iter_infos`` or ``iter_entries`` (``how``) over its span; a broken directory is a
        DatasetError naming the archive."""
        assert self.zip is not None
        try:
            yield from getattr(self.zip, how)(*self._span, marks=marks)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, UnicodeDecodeError) as exc:
            raise DatasetError(f"not a readable zip archive ({exc})", str(self.path)) from None

    def members(self) -> Iterator[tuple[str, zipfile.ZipInfo]]:
        """(item id, member) of every image member, in archive order."""
        images = self._images
        for number, info in enumerate(self._walk("iter_infos")):
            if images[number >> 3] & (1 << (number & 7)):
                yield split_member(safe_relative(info.filename))[0], info

    def media(self, info: zipfile.ZipInfo) -> Media:
        assert self.zip is not None
        member = ZipMember(self.zip, info)
        return Media(
            name=f"{self.path}!{info.filename}", suffix=split_member(info.filename)[1], opener=member.open,
            zip_member=member,
        )

    def close(self) -> None:
        if self.zip is None:
            return
        fp = self.zip.fp
        self.zip.close()
        self.zip = None
        if fp is not None:
            fp.close()


class ImageZipReader:
    """Items of one archive, or of all archives under a directory (sorted by path).

    Only the central directories are read when the reader opens; member bytes are read when an item's media
    is used. ``subset_from="archive"`` puts each archive's items in a subset named after its stem. ``shard``
    reads one key of :meth:`shards`: an archive, or a range of its records (``ARCHIVE@FIRST:STOP``).
    """

    def __init__(self, path: Path, *, subset_from: str = "none", shard: str | None = None) -> None:
        self.path = as_path(path)
        self.subset_from = subset_from
        self.shard = shard
        self.header = Header()
        self._archives: list[_Archive] = []
        self._indexed = False  # a shard reader arrives indexed: entering it opens its archive, nothing more
        self._keyed: dict[str, _Archive] | None = None  # the archives by shard key, once asked for

    def _archive_paths(self) -> list[Path]:
        if self.path.is_file():
            return [self.path]
        if not self.path.is_dir():
            raise DatasetError("no such file or directory", str(self.path))
        found = [self.path / rel for rel in walk_files(self.path) if rel.lower().endswith(ARCHIVE_SUFFIX)]
        found = [p for p in found if not is_junk(p.relative_to(self.path).as_posix())]
        if not found:
            raise DatasetError("no .zip archive found in this directory", str(self.path))
        return found

    def _selected(self, keyed: Mapping[str, _T]) -> tuple[_T, range | None]:
        """The archive of the ``shard`` key among ``keyed`` (archives by shard key), and the records it reads
        (None: all of them)."""
        archive, records = str(self.shard), None
        if archive not in keyed and "@" in archive:
            archive, _, span = archive.rpartition("@")
            records = shard_range(span)
        if archive not in keyed:
            raise DatasetError(f"no shard {self.shard!r}; the shards are: {', '.join(keyed)}, or ARCHIVE@FIRST:STOP "
                               "ranges of their records", str(self.path))
        return keyed[archive], records

    def __enter__(self) -> ImageZipReader:
        if self._indexed:
            try:
                for archive in self._archives:
                    archive.open()
            except BaseException:
                self.close()
                raise
            return self
        keys = array("q")  # the hash of each image member's item key, checked by _check_ids
        try:
            paths, records = self._archive_paths(), None
            if self.shard is not None:
                path, records = self._selected(dict(zip(self._shard_keys(paths), paths, strict=True)))
                paths = [path]
            stems: dict[str, Path] = {}
            for path in paths:
                subset = "default"
                if self.subset_from == "archive":
                    subset = path.name[: -len(ARCHIVE_SUFFIX)]
                    if subset in stems:
                        raise DatasetError(f"archives {stems[subset]} and {path} would both be subset {subset!r}")
                    stems[subset] = path
                archive = _Archive(path, subset)
                self._archives.append(archive)
                archive.open()
                archive.index(keys, records)
            if records is not None:  # read only the records of the range
                whole = self._archives[0]
                self._archives[0] = whole.part(records.start, min(records.stop, whole.records))
                self._archives[0].zip, whole.zip = whole.zip, None
            self._check_ids(keys)
        except BaseException:
            self.close()
            raise
        subsets = sorted({a.subset for a in self._archives})
        self.header = Header(subsets=subsets, size_hint=sum(a.count for a in self._archives))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_ids(self, keys: array[int]) -> None:
        """No two image members of one subset read back as the same item id (``a.jpg`` and ``a.png``).

        ``keys`` holds the hash of every image member's item key; the members are compared exactly (in a
        second pass over the central directories) only where a hash repeats.
        """
        repeated = repeated_values(keys)
        if not repeated:
            return
        first: dict[str, str] = {}
        for archive in self._archives:
            for item_id, info in archive.members():
                key = archive.item_key(item_id)
                if hash(key) in repeated:
                    where = f"{archive.path}!{info.filename}"
                    earlier = first.setdefault(key, where)
                    if earlier != where:
                        raise DatasetError(f"images {earlier} and {where} have the same item id {item_id!r}")

    def close(self) -> None:
        """Close every archive."""
        for archive in self._archives:
            archive.close()
        if not self._indexed:
            self._archives = []
            self._keyed = None

    def _shard_keys(self, paths: list[Path]) -> list[str]:
        folder = self.path.is_dir()
        return [path.relative_to(self.path).as_posix() if folder else path.name for path in paths]

    def _by_key(self) -> dict[str, _Archive]:
        """The open archives by shard key (made once)."""
        if self._keyed is None:
            keys = self._shard_keys([a.path for a in self._archives])
            self._keyed = dict(zip(keys, self._archives, strict=True))
        return self._keyed

    def shards(self, count: int = 1) -> list[Shard]:
        """One shard per archive; with fewer archives than ``count``, about ``count`` shards in all, an archive
        being split into ranges of its central directory records (keys ``ARCHIVE@FIRST:STOP``).

        Pass a key as ``shard=key`` to read only that shard, or get its reader from :meth:`shard_reader`.
        """
        total = sum(a.count for a in self._archives) or 1
        found = []
        for key, archive in self._by_key().items():
            blocks = -(-archive.records // MARK_EVERY)
            pieces = min(blocks, round(count * archive.count / total)) if len(self._archives) < count else 1
            if pieces <= 1:
                found.append(Shard(key, f"archive {archive.path.name}", archive.count))
                continue
            bounds = [round(i * blocks / pieces) * MARK_EVERY for i in range(pieces)] + [archive.records]
            for first, stop in itertools.pairwise(bounds):
                found.append(Shard(f"{key}@{first}:{stop}", f"archive {archive.path.name}, records {first}..{stop - 1}",
                                   archive.part(first, stop).count))
        return found

    def shard_reader(self, key: str) -> ImageZipReader:
        """A picklable reader of shard ``key`` of this open reader, for a scale-out worker: it carries the
        shard's part of the index, so entering it opens the archive and reads none of its other records."""
        chosen = ImageZipReader(self.path, subset_from=self.subset_from, shard=key)
        archive, records = chosen._selected(self._by_key())
        span = range(archive.records) if records is None else records
        chosen._archives = [archive.part(span.start, span.stop)]
        chosen._indexed = True
        chosen.header = Header(subsets=self.header.subsets, size_hint=chosen._archives[0].count)
        return chosen

    def items(self) -> Iterator[Item]:
        """Yield one item per image member, in archive order."""
        for archive in self._archives:
            for item_id, info in archive.members():
                yield Item(id=item_id, subset=archive.subset, media=archive.media(info))
