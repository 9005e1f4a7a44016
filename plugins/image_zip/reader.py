"""Read images from a .zip archive, or from every .zip archive under a directory, lazily."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from dsformats import DatasetError, Header, Item, Media, Shard
from dsformats.fileaccess import as_path, open_binary, safe_relative, walk_files
from dsformats.idset import KeyMap
from dsformats.imaging import IMAGE_SUFFIXES
from dsformats.limits import ZipBudget
from dsformats.policy import bad_item, warn
from dsformats.zipstream import StreamingZipReader, ZipMember

from .schema import ARCHIVE_SUFFIX, is_junk, split_member

#: Members that are not images are named in the warning up to this many.
_NAMED_OTHERS = 3


class _Archive:
    """One open archive and which of its members are images.

    Nothing per member is kept but one bit (image or not): the central directory is parsed again, record by
    record, when the items are read, so memory does not grow with the number of members.
    """

    def __init__(self, path: Path, subset: str) -> None:
        self.path = path
        self.subset = subset
        self.count = 0
        self._images = bytearray()  # bit i: central directory entry i is an image member
        stream = open_binary(path)
        try:
            self.zip = StreamingZipReader(stream)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            stream.close()
            raise DatasetError(f"not a readable zip archive ({exc})", str(path)) from None
        except BaseException:
            stream.close()
            raise

    def index(self, seen: KeyMap) -> None:
        """Pick the image members (bad ones go to the bad-item policy); ``seen`` maps item keys to members."""
        budget = ZipBudget(str(self.path))
        images = self._images
        others: list[str] = []  # members that are not images (nor directories or OS metadata): told, not read
        other_count = 0
        for number, info in enumerate(self._infos()):
            if number % 8 == 0:
                images.append(0)
            if info.is_dir() or is_junk(info.filename):
                continue
            name = info.filename
            stem, suffix = split_member(name)
            if suffix not in IMAGE_SUFFIXES:
                other_count += 1
                if len(others) < _NAMED_OTHERS:
                    others.append(name)
                continue
            where = f"{self.path}!{name}"
            try:
                budget.check(info)
                rel = safe_relative(name, location=where)
                item_id = stem if rel == name else split_member(rel)[0]
                if info.flag_bits & 0x1:
                    raise DatasetError("member is encrypted", where)
            except DatasetError as exc:
                bad_item(exc)
                continue
            first = seen.setdefault(f"{self.subset}\0{item_id}", where)
            if first != where:
                raise DatasetError(f"images {first} and {where} have the same item id {item_id!r}")
            images[number >> 3] |= 1 << (number & 7)
            self.count += 1
        if other_count:
            more = f" and {other_count - len(others):,} more" if other_count > len(others) else ""
            what = "1 member is not an image and was" if other_count == 1 else (
                f"{other_count:,} members are not images and were")
            warn(f"{self.path}: {what} not read: {', '.join(others)}{more}")

    def _infos(self) -> Iterator[zipfile.ZipInfo]:
        try:
            yield from self.zip.iter_infos()
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, UnicodeDecodeError) as exc:
            raise DatasetError(f"not a readable zip archive ({exc})", str(self.path)) from None

    def members(self) -> Iterator[tuple[str, zipfile.ZipInfo]]:
        """(item id, member) of every image member, in archive order."""
        images = self._images
        for number, info in enumerate(self._infos()):
            if images[number >> 3] & (1 << (number & 7)):
                yield split_member(safe_relative(info.filename))[0], info

    def media(self, info: zipfile.ZipInfo) -> Media:
        member = ZipMember(self.zip, info)
        return Media(
            name=f"{self.path}!{info.filename}", suffix=split_member(info.filename)[1], opener=member.open,
            zip_member=member,
        )

    def close(self) -> None:
        fp = self.zip.fp
        self.zip.close()
        if fp is not None:
            fp.close()


class ImageZipReader:
    """Items of one archive, or of all archives under a directory (sorted by path).

    Only the central directories are read when the reader opens; member bytes are read when an item's media
    is used. ``subset_from="archive"`` puts each archive's items in a subset named after its stem.
    """

    def __init__(self, path: Path, *, subset_from: str = "none", shard: str | None = None) -> None:
        self.path = as_path(path)
        self.subset_from = subset_from
        self.shard = shard
        self.header = Header()
        self._archives: list[_Archive] = []

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

    def __enter__(self) -> ImageZipReader:
        seen = KeyMap()  # (subset, item id) -> the first member of that item
        try:
            paths = self._archive_paths()
            if self.shard is not None:
                keys = [self._shard_key(p) for p in paths]
                paths = [p for p, key in zip(paths, keys, strict=True) if key == self.shard]
                if not paths:
                    raise DatasetError(f"no shard {self.shard!r}; the shards are: {', '.join(keys)}", str(self.path))
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
                archive.index(seen)
        except BaseException:
            self.close()
            raise
        finally:
            seen.close()
        subsets = sorted({a.subset for a in self._archives})
        self.header = Header(subsets=subsets, size_hint=sum(a.count for a in self._archives))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close every archive."""
        for archive in self._archives:
            archive.close()
        self._archives = []

    def _shard_key(self, path: Path) -> str:
        return path.relative_to(self.path).as_posix() if self.path.is_dir() else path.name

    def shards(self) -> list[Shard]:
        """One shard per archive; pass ``shard=key`` to read only that archive."""
        return [Shard(self._shard_key(a.path), f"archive {a.path.name}", a.count) for a in self._archives]

    def items(self) -> Iterator[Item]:
        """Yield one item per image member, in archive order."""
        for archive in self._archives:
            for item_id, info in archive.members():
                yield Item(id=item_id, subset=archive.subset, media=archive.media(info))
