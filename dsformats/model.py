"""The neutral data model: items, lazy media, annotations and categories.

Conventions, for every format:

* Coordinates are pixels, 0-based, origin at the top-left corner of the image, and are kept exactly as read
  (``int`` stays ``int``, ``float`` stays ``float``; nothing is rounded).
* Sizes are ``(width, height)``.
* Labels are referenced by **name**; the dataset's :class:`Categories` lists them before any item arrives.
* Keypoint visibility follows COCO: 0 = not labelled, 1 = labelled but hidden, 2 = visible.

Nothing here imports Pillow or numpy; :class:`Media` and :class:`Mask` import them only when asked to decode.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import io
import os
import posixpath
import re
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

import attrs

from dsformats.errors import DatasetError, DsformatsError
from dsformats.fileaccess import read_file, worth_reading_ahead

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage

    from dsformats.zipstream import Compressed, ZipMember

__all__ = [
    "ANNOTATION_KINDS",
    "Annotation",
    "Bbox",
    "Caption",
    "Categories",
    "DeferredAnnotations",
    "Header",
    "Item",
    "KeypointSchema",
    "Label",
    "LabelDef",
    "Mask",
    "Media",
    "Points",
    "PolyLine",
    "Polygon",
    "Rle",
    "validate_item_id",
]

Number = int | float
Color = tuple[int, int, int]

_DRIVE = re.compile(r"^[A-Za-z]:")


def validate_item_id(item_id: str) -> str:
    """Check that ``item_id`` is a safe relative POSIX path without suffix semantics; return it.

    Rejected: empty ids, backslashes, absolute paths, drive letters, ``.``/``..``/empty components and NUL.
    Unicode, spaces and other punctuation are allowed.
    """
    if not isinstance(item_id, str) or not item_id:
        raise ValueError(f"item id must be a non-empty string, got {item_id!r}")
    if "\\" in item_id or "\x00" in item_id:
        raise ValueError(f"item id {item_id!r} contains a backslash or NUL")
    if item_id.startswith("/") or _DRIVE.match(item_id):
        raise ValueError(f"item id {item_id!r} is an absolute path")
    # a component "", "." or ".." needs "//", a trailing "/" or a dot: most ids skip the split
    if ("." in item_id or "//" in item_id or item_id.endswith("/")) and any(
        part in ("", ".", "..") for part in item_id.split("/")
    ):
        raise ValueError(f"item id {item_id!r} has an empty, '.' or '..' component")
    return item_id


def _check_id(_inst: object, _attr: object, value: str) -> None:
    validate_item_id(value)


# --------------------------------------------------------------------------------------------- media


def _open_local(path: str | Path) -> IO[bytes]:
    from dsformats.fileaccess import open_binary

    return open_binary(Path(path))


def _open_any(path: Any) -> IO[bytes]:
    """Open a UPath through its filesystem directly (``UPath.open`` costs several times more per call)."""
    try:
        opener = getattr(path.fs, "open_member", None)  # dszip / dstar: by name, no protocol handling
        return opener(path.path) if opener is not None else path.fs.open(path.path, "rb")
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot open: {getattr(exc, 'strerror', None) or exc}", str(path)) from None


@attrs.define(eq=False, slots=True)
class Media:
    """A lazy image: bytes are opened on demand and nothing is read until used.

    ``name`` locates the source for messages (a path, or ``archive.zip!member``). ``suffix`` is lower-case
    with its dot (``".jpg"``) and drives byte-for-byte passthrough in writers. ``path`` is set when the
    bytes are a whole local file, so writers can copy it with the operating system's fast paths.
    ``read_ahead`` is True when the bytes are worth reading ahead in another thread and may be read
    concurrently with other reads of the same source (set by :meth:`from_file` for deflated zip members
    and object-store files): a conversion whose writer copies images then reads them while the writer works.
    ``zip_member`` is set by readers whose media are members of an open zip archive: the bytes are read
    through it (:meth:`read_bytes`, :meth:`packed`), from any thread, and zip writers can copy the member's
    compressed bytes without inflating them (:meth:`packed`).

    A Media object coming from a reader is valid only while that reader is open.
    """

    name: str
    suffix: str = attrs.field(converter=lambda s: s.lower())
    opener: Callable[[], IO[bytes]] = attrs.field(repr=False)
    path: str | None = None
    _size: tuple[int, int] | None = attrs.field(default=None, alias="size")
    read_ahead: bool = attrs.field(default=False, kw_only=True)
    zip_member: ZipMember | None = attrs.field(default=None, kw_only=True, repr=False)
    #: The bytes, when held in memory (:meth:`from_bytes`, :meth:`loaded`); then nothing is opened to use them.
    _data: bytes | None = attrs.field(default=None, init=False, repr=False)
    #: The UPath of a file of an archive or object store (:meth:`from_file`), which :meth:`load_all` reads.
    _location: Any = attrs.field(default=None, init=False, repr=False)

    @classmethod
    def from_file(cls, path: str | Path | Any, *, size: tuple[int, int] | None = None) -> Media:
        """Media backed by a file; the file is not opened until used.

        ``path`` is a local path, or a UPath inside an archive or on object storage (then :attr:`path` stays
        None: the bytes are not a whole local file).
        """
        if not isinstance(path, (str, os.PathLike)) and hasattr(path, "fs"):
            media = cls(name=str(path), suffix=posixpath.splitext(path.name)[1], opener=lambda: _open_any(path),
                        size=size, read_ahead=worth_reading_ahead(path))
            media._location = path
            return media
        text = str(path)
        suffix = posixpath.splitext(text)[1]
        return cls(name=text, suffix=suffix, opener=lambda: _open_local(path), path=text, size=size)

    @classmethod
    def from_bytes(cls, data: bytes, suffix: str, *, name: str = "<bytes>") -> Media:
        """Media backed by bytes in memory; ``suffix`` must describe the bytes (e.g. ``".png"``)."""
        media = cls(name=name, suffix=suffix, opener=functools.partial(io.BytesIO, data))
        if isinstance(data, bytes):
            media._data = data
        return media

    def open(self) -> IO[bytes]:
        """Open the raw bytes for reading; the caller closes the stream."""
        with self._reading():
            return self.opener()

    @property
    def data(self) -> bytes | None:
        """The raw bytes when this media holds them in memory (:meth:`from_bytes`, :meth:`loaded`), else None."""
        return self._data

    def _with_data(self, data: bytes) -> Media:
        media = Media(name=self.name, suffix=self.suffix, opener=functools.partial(io.BytesIO, data), size=self._size)
        media._data = data
        return media

    def loaded(self, limit: int) -> Media | None:
        """This media backed by its bytes, read now (errors as :meth:`read_bytes`); None when over ``limit`` bytes."""
        if self._data is not None:
            return self if len(self._data) <= limit else None
        data = self._read_upto(limit)
        return None if data is None else self._with_data(data)

    def _read_upto(self, limit: int) -> bytes | None:
        """All the bytes, or None when they are more than ``limit`` (errors as :meth:`read_bytes`)."""
        if self._data is not None:
            return self._data if len(self._data) <= limit else None
        with self._reading():
            if self.zip_member is not None:
                return self.zip_member.read() if self.zip_member.info.file_size <= limit else None
            if self.path is not None:
                return read_file(self.path, limit)
            with self.opener() as source:
                declared = getattr(source, "size", None)  # zip members and object-store files know it
                if isinstance(declared, int) and declared > limit:
                    return None
                data = source.read(limit + 1)
        return data if len(data) <= limit else None

    @classmethod
    def load_all(cls, medias: Sequence[Media], limit: int, *, budget: int | None = None) -> list[Media | None]:
        """:meth:`loaded` for each media, reading many at once where their source can.

        Deflated members of one local zip archive are read and inflated together (see
        :meth:`dsformats._archivefs.SafeZipFileSystem.read_members`); the rest, and any that could not be read
        that way, one at a time. None for a media over ``limit`` bytes, for one that would take the bytes read
        beyond ``budget`` (the first one read may take it beyond), and for one that fails to read (its user's own
        read raises the error again).
        """
        out: list[Media | None] = [None] * len(medias)
        spent = 0

        def room() -> int:
            return limit if budget is None or not spent else min(limit, budget - spent)

        batches: dict[int, tuple[Any, list[int]]] = {}
        for k, media in enumerate(medias):
            fs = getattr(media._location, "fs", None)
            if media._data is None and getattr(fs, "read_members", None) is not None:
                batches.setdefault(id(fs), (fs, []))[1].append(k)
        for fs, indexes in batches.values():
            try:
                found = fs.read_members([medias[k]._location.path for k in indexes], limit,
                                        budget=None if budget is None else budget - spent, first=not spent)
            except Exception:  # noqa: BLE001 - read them one at a time below, where errors are kept
                continue
            for k, data in zip(indexes, found, strict=True):
                if data is not None:
                    out[k] = medias[k]._with_data(data)
                    spent += len(data)
        for k, media in enumerate(medias):
            if out[k] is not None or room() < 0:
                continue
            try:
                loaded = media.loaded(room())
            except Exception:  # noqa: BLE001 - its user's own read raises it again, where the policy applies
                loaded = None
            if loaded is not None:
                out[k] = loaded
                spent += len(loaded._data or b"")
        return out

    def read_bytes(self) -> bytes:
        """Return all raw bytes."""
        if self._data is not None:
            return self._data
        with self._reading():
            if self.zip_member is not None:
                return self.zip_member.read()
            if self.path is not None:
                return read_file(self.path)  # type: ignore[return-value] # no limit: never None
            with self.opener() as stream:
                return stream.read()

    def packed(self, compression: int, limit: int) -> Compressed | None:
        """The bytes as a zip member compressed with ``compression`` (a ``zipfile`` constant) stores them; None
        when they are over ``limit`` bytes (stored or plain). Errors as :meth:`read_bytes`.

        A :attr:`zip_member` already compressed that way is copied as it is stored: not inflated, with the CRC
        and sizes its archive declares (a stored one has its CRC checked; a compressed one is not inflated, so
        its CRC is not checked). Anything else is read, checked, and compressed as ``zipfile`` would.
        """
        from dsformats.zipstream import compress, fast_crc32

        member = self.zip_member if self._data is None else None
        if member is not None and member.info.compress_type == compression:
            if member.info.compress_size > limit:
                return None
            with self._reading():
                packed = member.compressed()
                if compression == zipfile.ZIP_STORED and fast_crc32()(packed.data) != packed.crc:
                    raise zipfile.BadZipFile(f"Bad CRC-32 for file {member.info.filename!r}")
            return packed
        data = self._read_upto(limit)
        return None if data is None else compress(data, compression)

    def copy_to(self, dst: IO[bytes], *, keep_head: int = 0) -> bytes:
        """Copy the raw bytes into ``dst`` in chunks, without decoding; return the first ``keep_head`` bytes.

        (Fewer when the media is shorter.) Callers that need the header afterwards (image size) pass
        ``keep_head`` instead of opening the media again, which for an archive member means inflating it again.
        """
        if self._data is not None:
            dst.write(self._data)
            return self._data[:keep_head]
        head = b""
        with self._reading():
            with self.opener() as stream:
                while chunk := stream.read(1 << 20):
                    dst.write(chunk)
                    if len(head) < keep_head:
                        head += chunk[: keep_head - len(head)]
        return head

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """Turn low-level read failures (I/O, bad CRC, truncation) into a DatasetError naming the media."""
        try:
            yield
        except DsformatsError:
            raise
        except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as exc:
            raise DatasetError(f"cannot read: {exc}", self.name) from None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)``, from the reader when it knew it, else from the image header (no decode)."""
        if self._size is None:
            from dsformats.imaging import header_size

            self._size = header_size(self)
        return self._size

    @property
    def known_size(self) -> tuple[int, int] | None:
        """The size if it is already known, without touching the bytes."""
        return self._size

    def open_image(self) -> PILImage:
        """Decode with Pillow (imported here, not at module import); the image is fully loaded."""
        from dsformats.imaging import decode

        return decode(self)


# ---------------------------------------------------------------------------------------- annotations


def text_flag(text: str) -> int | None:
    """A yes/no attribute given as text (text formats such as VOC store attributes as text): ``"1"``,
    ``"true"``, ``"yes"`` -> 1; ``"0"``, ``"false"``, ``"no"`` -> 0 (any case, spaces ignored); else None."""
    word = text.strip().lower()
    return 1 if word in _TRUE_WORDS else 0 if word in _FALSE_WORDS else None


_TRUE_WORDS = frozenset({"1", "true", "yes"})
_FALSE_WORDS = frozenset({"0", "false", "no"})


def _plain_dict(value: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(value or {})


def _numbers(value: Iterable[Number]) -> tuple[Number, ...]:
    return tuple(value)


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _optional_strs(value: Iterable[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


def _color(value: Iterable[int] | None) -> Color | None:
    if value is None:
        return None
    r, g, b = value
    return (r, g, b)


def _pair(value: Iterable[int]) -> tuple[int, int]:
    first, second = value
    return (first, second)


@attrs.frozen(kw_only=True)
class Annotation:
    """Fields common to every annotation.

    ``id`` is the annotation's id in its source (0 = none); ``group`` ties annotations of one object
    together (0 = no group); ``z_order`` orders overlapping shapes; ``attributes`` holds everything else.
    """

    kind: ClassVar[str] = ""
    id: int = 0
    group: int = 0
    z_order: int = 0
    attributes: dict[str, Any] = attrs.field(factory=dict, converter=_plain_dict, hash=False)


@attrs.frozen(kw_only=True)
class Label(Annotation):
    """An image-level label."""

    kind: ClassVar[str] = "label"
    label: str


@attrs.frozen(kw_only=True)
class Bbox(Annotation):
    """An axis-aligned box: top-left ``(x, y)``, width ``w`` and height ``h`` in pixels (xywh)."""

    kind: ClassVar[str] = "bbox"
    x: Number
    y: Number
    w: Number
    h: Number
    label: str | None = None

    @property
    def xyxy(self) -> tuple[Number, Number, Number, Number]:
        """``(x1, y1, x2, y2)``, the corners."""
        return (self.x, self.y, self.x + self.w, self.y + self.h)


@attrs.frozen(kw_only=True)
class Polygon(Annotation):
    """A closed polygon; ``points`` is flat ``(x1, y1, x2, y2, ...)`` in pixels, at least 3 vertices."""

    kind: ClassVar[str] = "polygon"
    points: tuple[Number, ...] = attrs.field(converter=_numbers)
    label: str | None = None

    @points.validator
    def _check(self, _attr: object, value: tuple[Number, ...]) -> None:
        if len(value) % 2 or len(value) < 6:
            raise ValueError(f"a polygon needs an even number (>= 6) of coordinates, got {len(value)}")

    @property
    def area(self) -> float:
        """Shoelace area in square pixels."""
        xs, ys = self.points[0::2], self.points[1::2]
        n = len(xs)
        return abs(sum(xs[i] * ys[(i + 1) % n] - xs[(i + 1) % n] * ys[i] for i in range(n))) / 2


@attrs.frozen(kw_only=True)
class PolyLine(Annotation):
    """An open polyline; ``points`` is flat ``(x1, y1, x2, y2, ...)`` in pixels, at least 2 vertices."""

    kind: ClassVar[str] = "polyline"
    points: tuple[Number, ...] = attrs.field(converter=_numbers)
    label: str | None = None

    @points.validator
    def _check(self, _attr: object, value: tuple[Number, ...]) -> None:
        if len(value) % 2 or len(value) < 4:
            raise ValueError(f"a polyline needs an even number (>= 4) of coordinates, got {len(value)}")


@attrs.frozen(kw_only=True)
class Points(Annotation):
    """Keypoints: flat ``(x1, y1, ...)`` pixels and one visibility per point (0 absent, 1 hidden, 2 visible).

    The point names and skeleton live in the label's :class:`KeypointSchema`.
    """

    kind: ClassVar[str] = "points"
    points: tuple[Number, ...] = attrs.field(converter=_numbers)
    visibility: tuple[int, ...] = attrs.field(converter=_ints)
    label: str | None = None

    @visibility.validator
    def _check(self, _attr: object, value: tuple[int, ...]) -> None:
        if len(self.points) % 2 or len(value) * 2 != len(self.points):
            raise ValueError("points needs 2 coordinates and 1 visibility per keypoint")
        if any(v not in (0, 1, 2) for v in value):
            raise ValueError(f"keypoint visibility must be 0, 1 or 2, got {value}")


@attrs.frozen
class Rle:
    """COCO run-length encoding of a binary mask, column-major, starting with a run of zeros.

    ``counts`` is either a list of run lengths (uncompressed) or COCO's compressed string; it is kept as
    read so that it is written back unchanged. ``size`` is ``(height, width)``, as in COCO.
    """

    size: tuple[int, int] = attrs.field(converter=_pair)
    counts: tuple[int, ...] | str = attrs.field(converter=lambda c: c if isinstance(c, str) else tuple(c))


@attrs.frozen(kw_only=True)
class Mask(Annotation):
    """A binary mask, lazy: either an :class:`Rle` or a ``loader`` returning a 2-D numpy bool array.

    Use :meth:`to_bitmap` and :meth:`to_rle` to convert; both decode only when called.
    """

    kind: ClassVar[str] = "mask"
    label: str | None = None
    rle: Rle | None = None
    loader: Callable[[], Any] | None = attrs.field(default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if (self.rle is None) == (self.loader is None):
            raise ValueError("a Mask needs exactly one of rle= or loader=")

    def to_bitmap(self) -> Any:
        """The mask as a 2-D numpy bool array of shape ``(height, width)``."""
        if self.loader is not None:
            return self.loader()
        from dsformats.masks import rle_to_bitmap

        assert self.rle is not None
        return rle_to_bitmap(self.rle)

    def to_rle(self) -> Rle:
        """The mask as an :class:`Rle` (uncompressed counts when it came from a bitmap)."""
        if self.rle is not None:
            return self.rle
        from dsformats.masks import bitmap_to_rle

        return bitmap_to_rle(self.to_bitmap())


@attrs.frozen(kw_only=True)
class Caption(Annotation):
    """A free-text caption of the whole image."""

    kind: ClassVar[str] = "caption"
    caption: str


ANNOTATION_TYPES: tuple[type[Annotation], ...] = (Label, Bbox, Polygon, PolyLine, Points, Mask, Caption)
ANNOTATION_KINDS: frozenset[str] = frozenset(t.kind for t in ANNOTATION_TYPES)


# ---------------------------------------------------------------------------------------- categories


@attrs.frozen(kw_only=True)
class LabelDef:
    """One label of the dataset.

    ``parent`` names a parent label or group (COCO ``supercategory``), ``attributes`` names the attributes
    its annotations may carry, ``color`` is an RGB triple (VOC palette), ``id`` is the label's numeric id
    in its source format (COCO ``category_id``), kept so that writers can reuse it.
    """

    name: str
    parent: str = ""
    attributes: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    color: Color | None = attrs.field(default=None, converter=_color)
    id: int | None = None


@attrs.frozen(kw_only=True)
class KeypointSchema:
    """Keypoint names of a label and its skeleton, as 0-based index pairs into ``names``."""

    names: tuple[str, ...] = attrs.field(converter=_strs)
    skeleton: tuple[tuple[int, int], ...] = attrs.field(
        default=(), converter=lambda edges: tuple(tuple(e) for e in edges)
    )


def _label_defs(values: Iterable[LabelDef]) -> tuple[LabelDef, ...]:
    return tuple(values)


@attrs.frozen(kw_only=True)
class Categories:
    """Dataset-level label information, known before the first item.

    ``labels`` is ordered; ``keypoints`` maps a label name to its schema; ``attributes`` names attributes
    shared by all labels.
    """

    labels: tuple[LabelDef, ...] = attrs.field(default=(), converter=_label_defs)
    keypoints: dict[str, KeypointSchema] = attrs.field(factory=dict, converter=_plain_dict, hash=False)
    attributes: tuple[str, ...] = attrs.field(default=(), converter=_strs)

    @labels.validator
    def _unique(self, _attr: object, value: tuple[LabelDef, ...]) -> None:
        names = [label.name for label in value]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate label names: {', '.join(dupes)}")

    @property
    def label_names(self) -> list[str]:
        """The label names, in order."""
        return [label.name for label in self.labels]

    def get(self, name: str) -> LabelDef | None:
        """The label called ``name``, or None."""
        return next((label for label in self.labels if label.name == name), None)


@attrs.frozen(kw_only=True)
class Header:
    """What a reader knows before its items: categories, subsets (if known) and free-form ``infos``.

    ``size_hint`` is the number of items when known cheaply, used for progress only. ``metadata`` counts
    the dataset-level records, by kind, that only a writer of ``metadata_format`` keeps (COCO's ``info``
    and ``licenses``, say): a conversion to any other format reports them as dropped.
    """

    categories: Categories = attrs.field(factory=Categories)
    subsets: tuple[str, ...] | None = attrs.field(default=None, converter=_optional_strs)
    infos: dict[str, Any] = attrs.field(factory=dict, converter=_plain_dict, hash=False)
    size_hint: int | None = None
    metadata: dict[str, int] = attrs.field(factory=dict, converter=_plain_dict, hash=False)
    metadata_format: str = ""


# -------------------------------------------------------------------------------------------- items


class DeferredAnnotations(abc.ABC):
    """An item's annotations as a reader's own source, built only when someone reads them.

    A reader subclasses this and passes an instance as ``Item(annotations=...)``. Every consumer still sees
    :attr:`Item.annotations` as a tuple: it is built by :meth:`build` on first access and cached. Equality,
    hashing, ``repr`` and pickling of the item use that tuple (a pickled item carries the built tuple, not the
    source). Replacing the annotations (``attrs.evolve(item, annotations=...)``) drops the source.

    Subclasses implement :meth:`build`, and may implement :meth:`kinds` (counted without building) and
    :meth:`raw` (the source's own form, for a writer of the same ``format`` to copy without building).
    :meth:`build` must not fail: a reader checks the data before deferring, and gives anything it cannot
    vouch for as a tuple.
    """

    #: The format whose writer understands :meth:`raw` ("" for none).
    format: ClassVar[str] = ""
    #: Every kind :meth:`build` may give, when the subclass knows (a target that holds them all need not count
    #: :meth:`kinds`); None: unknown.
    possible_kinds: ClassVar[frozenset[str] | None] = None

    def __init__(self) -> None:
        self._built: tuple[Annotation, ...] | None = None

    @abc.abstractmethod
    def build(self) -> Iterable[Annotation]:
        """Make the annotations (called once, by :attr:`annotations`)."""

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        """The annotations, built on first access and cached."""
        if self._built is None:
            self._built = tuple(self.build())
        return self._built

    def kinds(self) -> dict[str, int]:
        """How many annotations of each kind :attr:`annotations` holds (by default, counted from them)."""
        counts: dict[str, int] = {}
        for ann in self.annotations:
            counts[ann.kind] = counts.get(ann.kind, 0) + 1
        return counts

    def raw(self) -> Any:
        """The source's own form of these annotations, for a writer of :attr:`format`; None when there is none."""
        return None

    def __reduce__(self) -> tuple[Any, ...]:
        return (tuple, (self.annotations,))  # crosses process boundaries as the plain tuple


def _annotations(values: Iterable[Annotation] | DeferredAnnotations) -> tuple[Annotation, ...] | DeferredAnnotations:
    return values if isinstance(values, DeferredAnnotations) else tuple(values)


def _built(value: tuple[Annotation, ...] | DeferredAnnotations) -> tuple[Annotation, ...]:
    return value.annotations if isinstance(value, DeferredAnnotations) else value


@attrs.frozen(kw_only=True, repr=False)
class Item:
    """One dataset sample.

    ``id`` is a relative POSIX path without suffix, possibly nested (``a/b/3``); ``subset`` defaults to
    ``"default"``; ``media`` is lazy; ``annotations`` is a tuple, or a reader's :class:`DeferredAnnotations`
    (read back as the tuple it builds); ``attributes`` holds item-level data (e.g. a source id).
    """

    id: str = attrs.field(validator=_check_id)
    subset: str = "default"
    media: Media | None = attrs.field(default=None, eq=False)
    _annotations: tuple[Annotation, ...] | DeferredAnnotations = attrs.field(
        default=(), converter=_annotations, eq=_built, alias="annotations"
    )
    attributes: dict[str, Any] = attrs.field(factory=dict, converter=_plain_dict, hash=False)

    @property
    def annotations(self) -> tuple[Annotation, ...]:
        """The annotations (built from a :class:`DeferredAnnotations` on first access)."""
        value = self._annotations
        return value.annotations if isinstance(value, DeferredAnnotations) else value

    @property
    def deferred(self) -> DeferredAnnotations | None:
        """The reader's deferred source of the annotations; None when they were given as a tuple."""
        value = self._annotations
        return value if isinstance(value, DeferredAnnotations) else None

    def annotations_of(self, *types: type[Annotation]) -> Iterator[Annotation]:
        """The annotations that are instances of ``types``."""
        return (ann for ann in self.annotations if isinstance(ann, types))

    def __repr__(self) -> str:
        return (f"Item(id={self.id!r}, subset={self.subset!r}, media={self.media!r}, "
                f"annotations={self.annotations!r}, attributes={self.attributes!r})")
