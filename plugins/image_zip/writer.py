"""Write images into one .zip archive: byte copies when the suffix is kept, re-encodes when it changes."""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import io
import zipfile
from collections.abc import Generator, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from dsformats import DatasetError, Header, Item, Media, Report
from dsformats.fileaccess import safe_relative
from dsformats.idset import KeyMap
from dsformats.imaging import reencode_task, same_encoding
from dsformats.parallel import ordered_map, resolve_jobs
from dsformats.placement import PlacedFile, Placement, PlannedMedia, write_marker
from dsformats.policy import bad_item, placement, writing_partial
from dsformats.zipstream import Compressed, SpoolingZipWriter, compress, stored_member_size

from .schema import (
    COMPRESSION,
    MEMBER_DATE_TIME,
    SHARD_ITEMS,
    case_clash,
    member_path,
    member_stem,
    same_item,
    shard_archive_name,
)

#: Media larger than this are streamed into the archive instead of held in memory (and then compressed again
#: even when their source member was already compressed the same way).
_IN_MEMORY = 16 << 20
#: Members compressed ahead of the writer, per thread.
_AHEAD = 4


class _SameItem(DatasetError):
    """Two items stored as one item id: not a bad item (skipping one would lose it silently), but an error."""


def _thread_safe(media: Media) -> bool:
    """True when the media's bytes may be read from a worker thread (files, zip members, bytes, read-ahead)."""
    return media.data is not None or media.path is not None or media.zip_member is not None or media.read_ahead


def _read(media: Media) -> bytes | DatasetError | None:
    """The bytes of a media read in this thread; None when over :data:`_IN_MEMORY` (streamed later)."""
    try:
        loaded = media.loaded(_IN_MEMORY)
    except DatasetError as exc:
        return exc
    return None if loaded is None else loaded.data


class ImageZipWriter:
    """Writes every item's image as member ``[<subset>/]<id><ext>`` of ``<dir>/<name>``.

    With ``shards_out`` the archive is named as shard 0 of a ``--shards-out`` scale-out run (``<stem>-00000.zip``).
    """

    def __init__(
        self,
        path: Path,
        *,
        name: str = "default.zip",
        compression: str = "ZIP_STORED",
        image_ext: str | None = None,
        subset_dirs: bool = False,
        jobs: int | None = None,
        shards_out: bool = False,
    ) -> None:
        name = safe_relative(name, location="--name")
        self.root = Path(path)
        self.archive_path = self.root / (shard_archive_name(name, 0) if shards_out else name)
        self.compression = COMPRESSION[compression]
        self.image_ext = image_ext  # normalised and checked by the IMAGE_EXT option
        self.subset_dirs = subset_dirs
        self.jobs = jobs

    def __enter__(self) -> ImageZipWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def member_name(self, item: Item) -> str:
        """The archive member that ``item`` is stored as."""
        assert item.media is not None
        name = member_path(item.subset, item.id, item.media.suffix, image_ext=self.image_ext,
                           subset_dirs=self.subset_dirs)
        return safe_relative(name, location=f"item {item.id!r}")

    def write(self, header: Header, items: Iterable[Item], report: Report) -> None:
        """Store every item's image; items without one are counted as dropped."""
        self.archive_path.parent.mkdir(parents=True, exist_ok=True)
        planned = ordered_map(reencode_task, self._plan(items, report), jobs=self.jobs, catch=(DatasetError,))
        packed = self._packed(planned)
        # closing: a bad item raised below shuts the worker pools down now, not at interpreter exit
        with (
            contextlib.closing(planned),
            contextlib.closing(packed),
            self._archive(placement() if writing_partial() else None) as archive,
            open(self.root / SHARD_ITEMS, "w", encoding="utf-8", errors="surrogatepass") if writing_partial()
            else contextlib.nullcontext() as shard_items,
        ):
            for (item, name, reencoded), member in packed:
                if isinstance(member, _SameItem):
                    raise member
                if isinstance(member, DatasetError):
                    bad_item(member)
                    continue
                assert item.media is not None
                info = zipfile.ZipInfo(name, date_time=MEMBER_DATE_TIME)
                info.compress_type = self.compression
                info.external_attr = 0o644 << 16
                if member is not None:
                    archive.write_compressed(info, member)
                else:  # too large to hold: streamed through zipfile (compressed again)
                    with archive.open(info, "w", force_zip64=True) as stream:
                        item.media.copy_to(stream)
                if shard_items is not None:
                    shard_items.write(f"{item.subset}/{item.id}\0")  # ids and subsets hold no NUL
                report.wrote_media(reencoded)
                report.wrote_item(item.subset)

    @contextlib.contextmanager
    def _archive(self, placed: Placement | None) -> Iterator[SpoolingZipWriter]:
        """The archive being written: a new file, or, for a placed shard, its range of the merged output file
        followed by the part's archive file (see :mod:`dsformats.placement`), recorded in the part once closed."""
        if placed is None:
            with SpoolingZipWriter(self.archive_path, "w", compression=self.compression) as archive:
                yield archive
            return
        raw = PlacedFile(placed, self.archive_path)
        stream = io.BufferedWriter(raw, 1 << 16)
        with SpoolingZipWriter.owning(stream, self.compression, self.archive_path.parent) as archive:
            yield archive
        write_marker(self.root, placed, raw.length)

    def _packed(
        self, planned: Iterable[tuple[tuple[Item, str, DatasetError | None], Any]]
    ) -> Generator[tuple[tuple[Item, str, bool], Compressed | DatasetError | None], None, None]:
        """Each planned member as the bytes the archive stores (None: too large to hold, stream it).

        Compressed archives are compressed by ``jobs`` threads, in order, a few members ahead of the writer.
        """
        threads = resolve_jobs(self.jobs) if self.compression != zipfile.ZIP_STORED else 1
        if threads == 1:
            for (item, name, unread), result in planned:
                yield (item, name, result is not None), self._pack(item, unread or result)
            return
        pending: collections.deque[tuple[tuple[Item, str, bool], concurrent.futures.Future[Any]]]
        pending = collections.deque()
        with concurrent.futures.ThreadPoolExecutor(threads, thread_name_prefix="dsformats-zip") as pool:
            try:
                for (item, name, unread), result in planned:
                    context = (item, name, result is not None)
                    result = unread or result
                    assert item.media is not None
                    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
                    if result is None and not _thread_safe(item.media):
                        result = _read(item.media)  # read here, in order; compressed in a thread
                    if result is None and not _thread_safe(item.media):
                        future.set_result(None)  # too large to hold: streamed by the writer
                    else:
                        future = pool.submit(self._pack, item, result)
                    pending.append((context, future))
                    while pending and (len(pending) > _AHEAD * threads or pending[0][1].done()):
                        context, done = pending.popleft()
                        yield context, done.result()
                while pending:
                    context, done = pending.popleft()
                    yield context, done.result()
            finally:
                for _, future in pending:
                    future.cancel()

    def _pack(self, item: Item, result: bytes | DatasetError | None) -> Compressed | DatasetError | None:
        """Re-encoded bytes (``result``), or else the item's image, compressed for the archive."""
        if isinstance(result, DatasetError):
            return result
        try:
            if result is not None:
                return compress(result, self.compression)
            assert item.media is not None
            return item.media.packed(self.compression, _IN_MEMORY)
        except DatasetError as exc:
            return exc

    def _plan(
        self, items: Iterable[Item], report: Report
    ) -> Iterator[tuple[tuple[Item, str, DatasetError | None], Any]]:
        """Check each item's member name; pair it with a re-encode task, or None for a byte copy (or for an image
        that cannot be read, whose error goes along)."""
        # Kept on disk but for ~8 bytes a key (dsformats.idset): member stem -> "<where>\0<member>", and
        # lower-case member -> first member of that spelling.
        with KeyMap(self.archive_path.parent) as owners, KeyMap(self.archive_path.parent) as folded:
            for item in items:
                if item.attributes:
                    report.drop("item attribute", "image_zip stores images only", len(item.attributes))
                if item.media is None:
                    report.drop("item without image", "image_zip stores images only")
                    continue
                name = self.member_name(item)
                where = f"{item.subset}/{item.id}"
                # Key on the member path without its suffix: ``1.jpg`` and ``1.png`` are distinct members,
                # but they would read back as the same item id.
                stem, suffix = member_stem(name)
                owner = owners.insert(stem, f"{where}\0{name}")  # member names hold no NUL (safe_relative)
                if owner is not None:  # raised by the writer when it gets there: errors come in item order
                    first, _, first_name = owner.rpartition("\0")
                    yield (item, name, _SameItem(same_item(first, where, stem, first_name, name))), None
                    continue
                first_spelling = folded.setdefault(name.lower(), name)
                if first_spelling != name:
                    report.warn(case_clash(first_spelling, name))
                if same_encoding(suffix, item.media.suffix):
                    yield (item, name, None), None
                    continue
                # re-encoded (in a worker) before the member exists, so a bad image can be skipped cleanly
                try:
                    data = item.media.read_bytes()
                except DatasetError as exc:  # unreadable: the writer meets the error in order, under the policy
                    yield (item, name, exc), None
                    continue
                yield (item, name, None), (data, item.media.suffix, item.media.name, suffix)


def placed_size(media: Iterable[PlannedMedia], options: Mapping[str, Any]) -> int | None:
    """The bytes of the members a stored archive's writer writes for items with these media, copied unchanged
    (``dsformats_placed_size``); None for a compressed archive, a re-encoding, ``--shards-out`` (one archive
    a shard) or a media of unknown size."""
    if COMPRESSION[options["compression"]] != zipfile.ZIP_STORED or options["shards_out"]:
        return None
    image_ext, subset_dirs = options["image_ext"], options["subset_dirs"]
    total = 0
    for planned in media:
        if planned.suffix is None:  # no image: not stored
            continue
        if planned.size is None or (image_ext and not same_encoding(image_ext, planned.suffix)):
            return None
        name = member_path(planned.subset, planned.id, planned.suffix, image_ext=image_ext, subset_dirs=subset_dirs)
        try:
            total += stored_member_size(safe_relative(name), planned.size)
        except (DatasetError, ValueError):  # the writer refuses the name: nothing to place
            return None
    return total
