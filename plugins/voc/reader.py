"""Read a Pascal VOC tree lazily: XML boxes with parts and actions, class flags, palette masks, subset lists.

``__enter__`` reads only ``labelmap.txt`` and the ``ImageSets`` lists (streamed) and lists the data
directories, keeping a few dozen bytes per item (ids numbered in :class:`.catalog.IdNumbers`, per-item bits
and suffix codes in arrays); XML files and masks are parsed one item at a time in :meth:`VocReader.items`,
and images are never decoded.
"""

from __future__ import annotations

import codecs
import os
import posixpath
import re
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterator
from math import isfinite, nan
from pathlib import Path
from types import TracebackType
from typing import Any

from dsformats import (
    Bbox,
    Categories,
    DatasetError,
    Header,
    Item,
    Label,
    LabelDef,
    Mask,
    Media,
    Shard,
    range_shards,
    shard_range,
)
from dsformats.fileaccess import (
    Joiner,
    as_path,
    is_local,
    join_within,
    open_binary,
    read_file,
    safe_relative,
    walk_files,
)
from dsformats.imaging import is_image_name
from dsformats.limits import declared_size
from dsformats.placement import PlannedMedia
from dsformats.policy import bad_item, not_stored, stored_kinds, warn

from .catalog import IdNumbers
from .schema import (
    ACTION_SETS,
    ANNOTATIONS_DIR,
    BBOX_PIXEL_INCLUSIVE,
    CLASS_DIR,
    DATUMARO_IGNORED,
    DEFAULT_SUBSET,
    FLAG_FIELDS,
    FORMAT,
    IMAGES_DIR,
    INSTANCE_DIR,
    LABELMAP_FILE,
    LAYOUT_SETS,
    LIST_SUFFIX,
    MAIN_SETS,
    MASK_SUFFIX,
    OBJECT_FIELDS,
    POINT,
    POSE,
    READ_ELEMENTS,
    READ_OBJECT_CHILDREN,
    SET_DIRS,
    SETS_DIR,
    VOID,
    VOID_ATTR,
    VOID_COLOR,
    XML_SUFFIX,
    LabelSpec,
    add,
    kept_elements,
    parse_labelmap,
    voc_colormap,
    voc_label_specs,
)

_FLAG_LINE = re.compile(r"^\S.*\s(-1|0|1)$")
_ACTION_LINE = re.compile(r"^\S.*\s\d+\s+(-1|0|1)$")
_NUMBERED_LINE = re.compile(r"^\S.*\s[-+]?\d+$")
_OBJECT_TAG = re.compile(r"<object[\s>]")
#: Bits of :attr:`VocReader._files`, per item: which files the scan of the data folders found.
_XML, _XML_NAMED, _CLASS, _INSTANCE, _IMAGE = 1, 2, 4, 8, 16  # _XML_NAMED: ``<id>.xml`` itself, not ``<id>.XML``
_FOUND = _XML | _CLASS | _INSTANCE | _IMAGE
_EXISTS = _XML | _IMAGE | _CLASS  # what an id in a list line is checked against
_LIST_CHUNK = 1 << 16


_SAFE_ENCODING = re.compile(rb"""encoding\s*=\s*["'](?:utf-?8|us-ascii|ascii|iso-8859-1|latin-?1)["']""", re.I)


def _fast_parse(data: bytes) -> Any:
    """The C ElementTree parse of a document that cannot declare entities, else None (use defusedxml).

    defusedxml guards against entity declarations (billion laughs, external entities) in a DTD. A document
    without ``<!`` anywhere has no DTD (nor comments or CDATA, which also take the careful path), and one
    without NUL bytes in an ASCII-compatible encoding cannot spell ``<!`` differently; so for these the
    plain parser is as safe, and several times faster. Malformed documents also return None, so their
    errors come from the defusedxml path.
    """
    from xml.etree.ElementTree import ParseError, fromstring

    if b"<!" in data or b"\x00" in data:
        return None
    head = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if head.lstrip()[:5] == b"<?xml":
        declaration = head[: head.find(b"?>")]
        if b"encoding" in declaration and not _SAFE_ENCODING.search(declaration):
            return None
    try:
        return fromstring(data)
    except ParseError:
        return None


# ------------------------------------------------------------------------------- quick XML path
#: The bytes a plainly written annotation file is made of besides its ``<`` and ``>``: printable ASCII but
#: ``&``, tabs and newlines. A document with any other byte (non-ASCII text, control characters, ``\r``,
#: entity references), or with a ``>`` that does not end a tag, is parsed by ElementTree.
_PLAIN_BYTES = bytes(b for b in range(128) if (b >= 0x20 and b not in b"&<>") or b in (0x09, 0x0A))
_QUICK_DECLARATION = re.compile(
    r"""<\?xml[ \t\n]+version[ \t\n]*=[ \t\n]*(["'])1\.0\1"""
    r"""(?:[ \t\n]+encoding[ \t\n]*=[ \t\n]*(["'])(?:[Uu][Tt][Ff]-8|[Uu][Ss]-[Aa][Ss][Cc][Ii][Ii])\2)?"""
    r"""(?:[ \t\n]+standalone[ \t\n]*=[ \t\n]*(["'])(?:yes|no)\3)?[ \t\n]*\?>"""
)
_QUICK_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
_EMPTY = -1  # a text reference to an element without text (``<tag/>`` or ``<tag></tag>``)
#: ``_flag`` of the usual flag texts.
_FLAGS = {"0": False, "1": True}


class _Unsupported(Exception):
    """A document (or a part of it) that the quick path leaves to ElementTree."""


class _Node:
    """An element of a tag skeleton: its tag, the index of its opening tag, and its children (None: no
    child elements, then its text follows the opening tag)."""

    __slots__ = ("tag", "at", "children", "empty")

    def __init__(self, tag: str, at: int, empty: bool) -> None:
        self.tag = tag
        self.at = at
        self.empty = empty
        self.children: list[_Node] | None = None

    def first(self, tag: str) -> _Node | None:
        for child in self.children or ():
            if child.tag == tag:
                return child
        return None

    def text(self) -> int:
        """The reference to this element's text, for an element without children."""
        if self.children is not None:
            raise _Unsupported  # ElementTree would give the text before the first child: not handled here
        return _EMPTY if self.empty else self.at


def _skeleton(tags: list[str]) -> list[_Node]:
    """The top-level elements of a run of tags (``name``, ``/name``, ``name/``); _Unsupported unless the run
    is balanced and every tag a plain XML name."""
    top: list[_Node] = []
    stack: list[_Node] = []
    for at, tag in enumerate(tags):
        if tag[:1] == "/":
            if not stack or stack[-1].tag != tag[1:].rstrip(" \t\n"):
                raise _Unsupported
            stack.pop()
            continue
        empty = tag[-1:] == "/"
        name = (tag[:-1] if empty else tag).rstrip(" \t\n")
        if not _QUICK_NAME.fullmatch(name):
            raise _Unsupported
        node = _Node(name, at, empty)
        if stack:
            parent = stack[-1]
            if parent.children is None:
                parent.children = []
            parent.children.append(node)
        else:
            top.append(node)
        if not empty:
            stack.append(node)
    if stack:
        raise _Unsupported
    return top


def _box_plan(node: _Node | None) -> tuple[int, ...]:
    """Text references of a ``<bndbox>``'s corners: the first child of each name, each with text."""
    if node is None or node.children is None:
        raise _Unsupported
    refs = []
    for field in _BOX_FIELDS:
        child = node.first(field)
        if child is None or child.empty:
            raise _Unsupported  # an error: ElementTree's path reports it
        refs.append(child.text())
    return tuple(refs)


def _object_plan(tags: list[str]) -> tuple[Any, ...]:
    """How to read an ``<object>`` with this tag skeleton: text references of what :meth:`VocReader._parse_object`
    reads, in the same order, with the same "first child of that name" rules as ElementTree's ``find``."""
    nodes = _skeleton(tags)
    if len(nodes) != 1 or nodes[0].children is None or any(t.strip(" \t\n/") == "object" for t in tags[1:-1]):
        raise _Unsupported
    obj = nodes[0]
    name = obj.first("name")
    if name is None or name.empty:
        raise _Unsupported
    pose = obj.first(POSE)
    flags = tuple(
        (field, None if node is None else node.text()) for field in FLAG_FIELDS for node in [obj.first(field)]
    )
    point = obj.first(POINT)
    point_refs = None
    if point is not None:
        x, y = point.first("x"), point.first("y")
        if point.children is None or x is None or y is None or x.empty or y.empty:
            raise _Unsupported
        point_refs = (x.text(), y.text())
    actions: tuple[tuple[str, int], ...] = ()
    holder = obj.first("actions")
    if holder is not None:
        actions = tuple((child.tag, child.text()) for child in holder.children or ())
    attributes = []
    for group in obj.children or ():
        if group.tag != "attributes":
            continue
        for attribute in group.children or ():
            if attribute.tag != "attribute":
                continue
            key, value = attribute.first("name"), attribute.first("value")
            if key is None or value is None:
                raise _Unsupported
            attributes.append((key.text(), value.text()))
    parts = []
    for part in obj.children or ():
        if part.tag == "part":
            part_name = part.first("name")
            if part_name is None or part_name.empty:
                raise _Unsupported
            parts.append((part_name.text(), _box_plan(part.first("bndbox"))))
    kept = tuple(
        (child.tag, _extra_plan(child)) for child in obj.children or () if child.tag not in READ_OBJECT_CHILDREN
    )
    if len({tag for tag, _ in kept}) != len(kept):
        raise _Unsupported  # a repeated element: a list, which the ElementTree path builds
    return (
        name.text(),
        _box_plan(obj.first("bndbox")),
        None if pose is None else pose.text(),
        flags,
        point_refs,
        actions,
        kept,
        tuple(attributes),
        tuple(parts),
    )


def _header_plan(tags: list[str]) -> tuple[int | None, int | None, int | None, int, tuple[Any, ...]]:
    """``(filename, width, height, sizes, extras)`` text references among the children of ``<annotation>`` in
    this run of tags (no ``<object>`` among them); ``sizes``: the number of ``<size>`` elements; ``extras``:
    the :func:`_extra_plan` of every other element (``<folder>``, ``<source>``, ``<owner>``, ...)."""
    filename = width = height = None
    sizes = 0
    extras = []
    for node in _skeleton(tags):
        if node.tag == "object":
            raise _Unsupported
        if node.tag == "filename" and filename is None:
            filename = node.text()
        elif node.tag == "size":
            sizes += 1
            for child in node.children or ():
                if child.tag == "width" and width is None:
                    width = child.text()
                elif child.tag == "height" and height is None:
                    height = child.text()
        elif node.tag not in READ_ELEMENTS:
            extras.append((node.tag, _extra_plan(node)))
    if len({tag for tag, _ in extras}) != len(extras):
        raise _Unsupported  # a repeated element: a list, which the ElementTree path builds
    return filename, width, height, sizes, tuple(extras)


def _document_plan(tags: list[str], header_plans: _Plans, object_plans: _Plans) -> tuple[Any, ...]:
    """How to read a whole document with these tags (``<annotation>`` first and last): ``(filename, width,
    height, extras, objects)``, each a text reference from the document's start (or None, or ``_EMPTY``),
    ``extras`` the ``(tag, plan, start)`` of each kept element and ``objects`` the ``(start, plan)`` of each
    ``<object>``; made from the plans of its runs of tags, and _Unsupported where one has none."""
    filename = width = height = None
    sizes = 0
    extras: list[tuple[str, Any, int]] = []
    objects: list[tuple[int, Any]] = []
    start, end = 1, len(tags) - 1
    while start < end:
        try:
            at = tags.index("object", start, end)
        except ValueError:
            at = end
        if at > start:  # children of <annotation> other than objects
            run = tags[start:at]
            plan = header_plans.get_plan("<".join(run), run)
            if plan is False:
                raise _Unsupported
            name_ref, width_ref, height_ref, count, extra_plans = plan
            extras += [(tag, extra, start) for tag, extra in extra_plans]
            if name_ref is not None and filename is None:
                filename = name_ref if name_ref == _EMPTY else start + name_ref
            if count:
                sizes += count
                width = width_ref if width_ref in (None, _EMPTY) else start + width_ref
                height = height_ref if height_ref in (None, _EMPTY) else start + height_ref
        if at == end:
            break
        try:
            close = tags.index("/object", at, end)
        except ValueError:
            raise _Unsupported from None
        run = tags[at : close + 1]
        plan = object_plans.get_plan("<".join(run), run)
        if plan is False:
            raise _Unsupported
        objects.append((at, plan))
        start = close + 1
    if sizes > 1 or len({tag for tag, _, _ in extras}) != len(extras):
        raise _Unsupported  # a repeated element: a list, which the ElementTree path builds
    return filename, width, height, tuple(extras), tuple(objects)


def _document_plans() -> _Plans:
    """The cache of :func:`_document_plan`: 128 documents of up to 1,024 tags (about 35 objects), whose keys
    take about 1 MB at most."""
    return _Plans(_document_plan, limit=128, longest=1024)


#: Elements kept as item attributes are kept this many levels deep (deeper ones: a warning, not kept).
_KEPT_DEPTH = 8


class _TooDeep(Exception):
    """An element nested deeper than :data:`_KEPT_DEPTH` levels."""


def _extra_plan(node: _Node, depth: int = 1) -> Any:
    """An element kept as an item attribute: its text reference, or ``(tag, plan)`` of each of its children."""
    if node.children is None:
        return node.text()
    if depth >= _KEPT_DEPTH:
        raise _Unsupported  # the ElementTree path warns
    plans = tuple((child.tag, _extra_plan(child, depth + 1)) for child in node.children)
    if len({tag for tag, _ in plans}) != len(plans):
        raise _Unsupported
    return plans


def _extra_value(plan: Any, texts: list[str], base: int) -> Any:
    """The item attribute value of an element read by its :func:`_extra_plan`."""
    if type(plan) is int:
        return "" if plan == _EMPTY else texts[base + plan].strip()
    return {tag: _extra_value(child, texts, base) for tag, child in plan}


def _element_value(element: Any, depth: int = 1) -> Any:
    """An element kept as an item attribute, from ElementTree: its stripped text, or a dict of its children
    (a repeated child: a list of their values); _TooDeep beyond :data:`_KEPT_DEPTH` levels."""
    if len(element) == 0:
        return (element.text or "").strip()
    if depth >= _KEPT_DEPTH:
        raise _TooDeep
    value: dict[str, Any] = {}
    for child in element:
        if isinstance(child.tag, str):  # not a comment or processing instruction
            _add_value(value, child.tag, _element_value(child, depth + 1))
    return value


def _kept_children(element: Any, read: frozenset[str], where: Callable[[str], str]) -> dict[str, Any]:
    """The children of ``element`` not in ``read``, by tag, as :func:`_element_value` keeps them; one nested
    too deep is left out with a warning located by ``where(tag)``."""
    kept: dict[str, Any] = {}
    for child in element:
        if isinstance(child.tag, str) and child.tag not in read:
            try:
                _add_value(kept, child.tag, _element_value(child))
            except _TooDeep:
                warn(f"{where(child.tag)}: <{child.tag}> is nested more than {_KEPT_DEPTH} levels deep: not kept")
    return kept


def _add_value(values: dict[str, Any], key: str, value: Any) -> None:
    """``values[key] = value``, or a list of the values when ``key`` repeats."""
    if key not in values:
        values[key] = value
    elif isinstance(values[key], list):
        values[key].append(value)
    else:
        values[key] = [values[key], value]


class _Plans(dict):  # type: ignore[type-arg]
    """Plans by tag skeleton, computed once each (at most ``limit`` kept, of at most ``longest`` tags each: a
    longer skeleton's plan is made each time, not kept, as its key would be as long)."""

    def __init__(self, make: Callable[..., Any], limit: int = 4096, longest: int | None = None) -> None:
        super().__init__()
        self.make = make
        self.limit = limit
        self.longest = longest

    def get_plan(self, key: str, tags: list[str], *args: Any) -> Any:
        """The plan of ``tags`` (``make(tags, *args)``; False where that raises _Unsupported), by ``key``."""
        plan = self.get(key)
        if plan is None:
            try:
                plan = self.make(tags, *args)
            except _Unsupported:
                plan = False
            if self.longest is not None and len(tags) > self.longest:
                return plan
            if len(self) >= self.limit:
                self.clear()
            self[key] = plan
        return plan


def categories_from_specs(specs: list[LabelSpec]) -> Categories:
    """Categories for a label map: its labels in order (actions as label attributes), then the parts.

    A part is a label whose ``parent`` is the label that declares it; parts that are also labels of their
    own keep their place.
    """
    labels = {spec.name: LabelDef(name=spec.name, color=spec.color, attributes=spec.actions) for spec in specs}
    for spec in specs:
        for part in spec.parts:
            if part not in labels:
                labels[part] = LabelDef(name=part, parent=spec.name)
            elif not labels[part].parent and part != spec.name:
                old = labels[part]
                labels[part] = LabelDef(name=part, parent=spec.name, color=old.color, attributes=old.attributes)
    return Categories(labels=list(labels.values()), attributes=OBJECT_FIELDS[:-1])


def _lines(
    stream: Any, location: str, is_item: Callable[[str], bool] = lambda _: False
) -> Iterator[tuple[int, str]]:
    """Non-blank stripped lines of a binary stream with their numbers, read a chunk at a time (the lines of
    ``str.splitlines``). A line starting with ``#`` is a comment (as Datumaro writes them) unless it names an
    item of the dataset (``#1``, or ``#1 -1`` in a flag file)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    n = 0
    pending = ""  # the last line of a chunk, which may go on in the next (or be "\r" before "\n")
    while True:
        chunk = stream.read(_LIST_CHUNK)
        try:
            text = pending + decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as exc:
            raise DatasetError(f"not UTF-8 text ({exc.reason})", location) from None
        lines = text.splitlines(keepends=True)
        pending = lines.pop() if chunk and lines else ""
        for raw in lines:
            n += 1
            line = raw.strip()
            if line and (not line.startswith("#") or is_item(line) or is_item(line.rsplit(maxsplit=1)[0])):
                yield n, line
        if not chunk:
            return


def _entries_of(entries: array[int] | None, number: int) -> Iterator[int]:
    """The class flag entries (``number << 24 | class << 1 | difficult``, sorted) of item ``number``."""
    if not entries:
        return
    at = bisect_left(entries, number << 24)
    while at < len(entries) and entries[at] >> 24 == number:
        yield entries[at]
        at += 1


def _number(text: str | None, field: str, location: str) -> int | float:
    """``"12"`` -> 12, ``"12.5"`` -> 12.5; anything else is a DatasetError naming ``field``."""
    value = (text or "").strip()
    if "." not in value:  # int() never takes a dot: skip the exception for decimals
        try:
            return int(value)
        except ValueError:
            pass
    try:
        number = float(value)
    except ValueError:
        number = nan
    if not isfinite(number):
        raise DatasetError(f"<{field}> is not a number: {value!r}", location)
    return number


def _flag(text: str | None) -> Any:
    """``"1"``/``"0"`` (and true/false) -> bool; other integers stay int; other text stays text."""
    value = (text or "").strip()
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no", ""):
        return False
    try:
        return int(value)
    except ValueError:
        return value


class _Object:
    """One parsed ``<object>``: its box, label, attributes and parts (boxes with labels)."""

    __slots__ = ("label", "box", "attributes", "parts", "line")

    def __init__(self, label: str, box: tuple, attributes: dict[str, Any], parts: list, line: int) -> None:
        self.label = label
        self.box = box
        self.attributes = attributes
        self.parts = parts
        self.line = line


#: What an XML gives: the image size, ``<filename>``, the objects, and the other elements (item attributes).
_Parsed = tuple[tuple[int, int] | None, str | None, list[_Object], dict[str, Any]]

#: The most ids whose whole index a shard_reader() ships to scale-out workers (pickled, about 0.9 MB); a
#: larger tree's shard readers carry their own part of it.
_SHIP_LIMIT = 25_000


class VocReader:
    """Items of a VOC tree, in subset-list order; items found only in the data directories come last.

    Subsets are the stems of the ``ImageSets/{Main,Segmentation,Action,Layout}/<subset>.txt`` lists;
    ``<label>_<subset>.txt`` class flag files and ``<action>_<subset>.txt`` files are told apart from subset
    lists by their prefix (a known label or action), a matching subset list, and their content.
    """

    def __init__(self, path: Path, *, bbox_convention: str = "xyxy", shard: str | None = None) -> None:
        self.root = as_path(path)
        self.positions = shard_range(shard)
        self.inclusive = bbox_convention == BBOX_PIXEL_INCLUSIVE
        self._join = Joiner()
        self.header = Header()
        self._specs: list[LabelSpec] = []
        self._has_labelmap = False
        # Every item id gets a number (IdNumbers spools the ids); what is known of an item is kept in compact
        # arrays indexed by that number, so that memory does not grow by hundreds of bytes per item.
        self._ids = IdNumbers()
        self._files = bytearray()  # per number: the _XML, _XML_NAMED, _CLASS, _INSTANCE and _IMAGE bits
        self._image_suffix = array("H")  # per number: the index in _suffix_names of its image's suffix
        self._suffix_names = [""]
        self._suffixes: dict[str, int] = {}  # image suffix -> its index in _suffix_names
        self._subsets: dict[str, array[int]] = {}  # subset -> numbers of its items, in list order
        self._members: dict[str, bytearray] = {}  # subset -> per number: 1 when the item is in the subset
        self._listed = bytearray()  # per number: 1 when the item is in any subset
        self._flags: dict[str, array[int]] = {}  # subset -> number << 24 | flag file << 1 | difficult
        self._flag_labels: list[str] = []  # the label of each flag file
        self._object_plans = _Plans(_object_plan)
        self._local: str | None = None  # the root as a string, for a local tree
        self._header_plans = _Plans(_header_plan, limit=256)
        self._document_plans = _document_plans()
        self._shipped = False  # made by shard_reader(): opened already, and its id index is not its own

    # ------------------------------------------------------------------------------------ opening
    def __enter__(self) -> VocReader:
        if self._shipped:  # a shard_reader(): the index came with it
            return self
        if not self.root.is_dir():
            raise DatasetError("a VOC dataset is a directory", str(self.root))
        self._specs, self._has_labelmap = self._load_labelmap()
        self._scan(ANNOTATIONS_DIR, lambda n: n.lower().endswith(XML_SUFFIX), _XML)
        self._scan(CLASS_DIR, lambda n: n.lower().endswith(MASK_SUFFIX), _CLASS)
        self._scan(INSTANCE_DIR, lambda n: n.lower().endswith(MASK_SUFFIX), _INSTANCE)
        self._scan(IMAGES_DIR, is_image_name, _IMAGE)
        if is_local(self.root):
            self._local = str(self.root)
        self._load_lists()
        listed = self._listed
        listed.extend(bytes(len(self._files) - len(listed)))
        pairs = enumerate(zip(self._files, listed, strict=True))
        unlisted = [number for number, (found, seen) in pairs if found and not seen]
        if unlisted:
            self._subset(DEFAULT_SUBSET)
            for number in sorted(unlisted, key=self._ids.id):
                self._add(DEFAULT_SUBSET, number)
        if not self._subsets:
            raise DatasetError(
                "no VOC data found (no ImageSets lists, Annotations, JPEGImages or Segmentation PNGs)",
                str(self.root),
            )
        self._names = [spec.name for spec in self._specs]
        self._known = set(categories_from_specs(self._specs).label_names)
        self.header = Header(
            categories=categories_from_specs(self._specs),
            subsets=list(self._subsets),
            size_hint=sum(len(numbers) for numbers in self._subsets.values()),
            infos={"labelmap": self._has_labelmap},
            metadata=self._metadata(),
            metadata_format=FORMAT,
        )
        return self

    def _metadata(self) -> dict[str, int]:
        """What only a VOC writer keeps of ``labelmap.txt``: the colours other than the VOC palette's colour for
        the label's line (and the void colour), which a VOC writer fed by another format would not give back,
        and the actions declared per label (the objects' action values are attributes, kept elsewhere)."""
        if not self._has_labelmap:
            return {}
        palette = voc_colormap(256)
        counts = {
            "voc label colour": sum(1 for i, spec in enumerate(self._specs) if spec.color is not None
                                    and tuple(spec.color) not in (VOID_COLOR, palette[i] if i < 256 else None)),
            "voc label action": sum(len(spec.actions) for spec in self._specs),
        }
        return {kind: count for kind, count in counts.items() if count}

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._shipped:
            self._ids.close()

    def _read(self, rel: str) -> bytes:
        with open_binary(join_within(self.root, rel, location=str(self.root))) as stream:
            return stream.read()

    def _load_labelmap(self) -> tuple[list[LabelSpec], bool]:
        path = self.root / LABELMAP_FILE
        if not path.is_file():
            return voc_label_specs(), False
        data = self._read(LABELMAP_FILE)
        try:
            specs = parse_labelmap(data.decode("utf-8-sig"), str(path))
        except UnicodeDecodeError as exc:
            raise DatasetError(f"not UTF-8 text ({exc.reason})", str(path)) from None
        except ValueError as exc:
            raise DatasetError(str(exc)) from None
        return specs, True

    def _scan(self, folder: str, keep: Callable[[str], bool], bit: int) -> None:
        """Number the items of the files of ``folder`` that ``keep`` accepts, and mark them with ``bit``.

        Of several images of one id (``a.jpg``, ``a.png``), the first name in sorted order is the item's.
        """
        base = self.root / folder
        if not base.is_dir():
            return
        files, suffixes, codes = self._files, self._image_suffix, self._suffixes
        number_of = self._ids.number
        for rel in walk_files(base, ordered=False):  # no order needed: no listing held
            if not keep(rel):
                continue
            dot = rel.rfind(".")  # kept names have a suffix: posixpath.splitext, without its cost when plain
            stem = rel[:dot] if dot > 0 and rel[dot - 1] not in "./" else posixpath.splitext(rel)[0]
            number = number_of(stem)
            if number == len(files):
                files.append(0)
                suffixes.append(0)
            files[number] |= bit
            if bit == _XML:
                if rel[dot:] == XML_SUFFIX and dot == len(stem):
                    files[number] |= _XML_NAMED
            elif bit == _IMAGE:
                suffix = rel[len(stem) :]
                code = codes.get(suffix)
                if code is None:
                    code = codes[suffix] = len(self._suffix_names)
                    self._suffix_names.append(suffix)
                if not suffixes[number] or suffix < self._suffix_names[suffixes[number]]:
                    suffixes[number] = code

    def _number(self, item_id: str) -> int:
        """The number of ``item_id``, a new one (with no files) when it is new."""
        number = self._ids.number(item_id)
        if number == len(self._files):
            self._files.append(0)
            self._image_suffix.append(0)
        return number

    # --------------------------------------------------------------------------------- list files
    def _load_lists(self) -> None:
        labels = {spec.name for spec in self._specs} | {p for spec in self._specs for p in spec.parts}
        actions = {a for spec in self._specs for a in spec.actions}
        lists: list[tuple[str, str]] = []  # (task folder, stem)
        for task_dir in SET_DIRS:
            base = self.root / SETS_DIR / task_dir
            if base.is_dir():
                files = [rel for rel in walk_files(base, max_depth=1) if rel.endswith(LIST_SUFFIX)]
                lists += [(task_dir, rel[: -len(LIST_SUFFIX)]) for rel in files]
        stems = {stem for _, stem in lists}
        flag_files: list[tuple[str, str, str]] = []
        for task_dir, stem in lists:
            kind = self._classify(task_dir, stem, stems, labels, actions)
            if kind is None:
                self._add_list(task_dir, stem)
            elif kind[0] == "flags":
                flag_files.append((kind[1], kind[2], stem))
        if flag_files and DATUMARO_IGNORED in {f[0] for f in flag_files} and not self._has_labelmap:
            self._specs.append(LabelSpec(DATUMARO_IGNORED, VOID_COLOR))
            labels.add(DATUMARO_IGNORED)
        order = {name: i for i, name in enumerate(spec.name for spec in self._specs)}
        for label, subset, stem in sorted(flag_files, key=lambda f: (f[1], order.get(f[0], len(order)), f[0])):
            location = str(self.root / SETS_DIR / MAIN_SETS / (stem + LIST_SUFFIX))
            if label not in labels:
                raise DatasetError(
                    f"class flags for label {label!r}, which is not "
                    + (
                        "in labelmap.txt" if self._has_labelmap else "a standard VOC label and there is no labelmap.txt"
                    ),
                    location,
                )
            self._add_flags(label, subset, stem, location)
        for subset, entries in self._flags.items():  # by item number, each item's flags in file order
            self._flags[subset] = array("Q", sorted(entries, key=lambda entry: entry >> 24))
        if {"train", "val", "trainval"} <= set(self._subsets):
            train, val = self._members["train"], self._members["val"]
            if all(
                (number < len(train) and train[number]) or (number < len(val) and val[number])
                for number in self._subsets["trainval"]
            ):
                del self._subsets["trainval"]

    def _list_lines(self, task_dir: str, stem: str) -> Iterator[tuple[int, str]]:
        rel = f"{SETS_DIR}/{task_dir}/{stem}{LIST_SUFFIX}"
        with open_binary(join_within(self.root, rel, location=str(self.root))) as stream:
            yield from _lines(stream, str(self.root / rel), self._exists)

    def _classify(
        self,
        task_dir: str,
        stem: str,
        stems: set[str],
        labels: set[str],
        actions: set[str],
    ) -> tuple[str, str, str] | None:
        """``("flags", label, subset)``, ``("actions", action, subset)`` or None for a subset list."""
        if task_dir not in (MAIN_SETS, ACTION_SETS) or "_" not in stem:
            return None
        known = labels if task_dir == MAIN_SETS else actions
        kind = "flags" if task_dir == MAIN_SETS else "actions"
        splits = [(stem[:i], stem[i + 1 :]) for i, c in enumerate(stem) if c == "_" and 0 < i < len(stem) - 1]
        splits = [split for split in splits if split[1] in stems]
        if not splits:
            return None
        pattern = _FLAG_LINE if task_dir == MAIN_SETS else _ACTION_LINE
        shaped = numbered = True  # every line is <id> <flag>; every line ends in a number
        lines = 0
        for _, line in self._list_lines(task_dir, stem):
            lines += 1
            shaped = shaped and pattern.match(line) is not None
            numbered = numbered and _NUMBERED_LINE.match(line) is not None
            if not (shaped or numbered):
                break
        for prefix, subset in sorted(splits, key=lambda s: (s[0] not in known, -len(s[0]))):
            if (shaped or (lines and numbered and prefix in known)) and (prefix in known or lines):
                return kind, prefix, subset
        return None

    def _subset(self, subset: str) -> array[int]:
        """The item numbers of ``subset`` (made empty when new)."""
        numbers = self._subsets.get(subset)
        if numbers is None:
            numbers = self._subsets[subset] = array("I")
            self._members[subset] = bytearray()
        return numbers

    def _add(self, subset: str, number: int) -> None:
        """Add item ``number`` to ``subset`` (once)."""
        members = self._members[subset]
        if number >= len(members):
            members.extend(bytes(number + 1 - len(members)))
        if not members[number]:
            members[number] = 1
            self._subsets[subset].append(number)
            listed = self._listed
            if number >= len(listed):
                listed.extend(bytes(number + 1 - len(listed)))
            listed[number] = 1

    def _add_list(self, task_dir: str, subset: str) -> None:
        self._subset(subset)
        location = str(self.root / SETS_DIR / task_dir / (subset + LIST_SUFFIX))
        plain = task_dir not in (ACTION_SETS, LAYOUT_SETS)  # lines that are just ids
        for number, line in self._list_lines(task_dir, subset):
            try:
                item_id = safe_relative(line) if plain else None
            except (DatasetError, ValueError):
                item_id = None  # again, with the location (made only now)
            if item_id is None:
                item_id = self._list_id(task_dir, line, f"{location}:{number}")
            self._add(subset, self._number(item_id))

    def _list_id(self, task_dir: str, line: str, location: str) -> str:
        if task_dir in (ACTION_SETS, LAYOUT_SETS):
            if '"' in line:
                if line.count('"') != 2:
                    raise DatasetError("expected 0 or 2 quotes around the item id", location)
                item_id = line.split('"')[1]
            else:
                words = line.split()
                item_id = line
                if len(words) > 1 and words[-1].isdigit() and not self._exists(line):
                    item_id = line[: line.rfind(words[-1])].strip()
        else:
            item_id = line
        try:
            return safe_relative(item_id, location=location)
        except DatasetError:
            raise
        except ValueError as exc:
            raise DatasetError(str(exc), location) from None

    def _exists(self, item_id: str) -> bool:
        number = self._ids.find(item_id)
        return number is not None and bool(self._files[number] & _EXISTS)

    def _add_flags(self, label: str, subset: str, stem: str, location: str) -> None:
        self._subset(subset)
        entries = self._flags.setdefault(subset, array("Q"))
        file_bits = len(self._flag_labels) << 1
        self._flag_labels.append(label)
        for number, line in self._list_lines(MAIN_SETS, stem):
            fields = line.rsplit(maxsplit=1)
            if len(fields) != 2:
                raise DatasetError("expected '<item id> <flag>'", f"{location}:{number}")
            if fields[1] not in ("-1", "0", "1"):
                raise DatasetError(f"flag {fields[1]!r} is not -1, 0 or 1", f"{location}:{number}")
            if fields[1] == "-1":
                continue
            item = self._number(safe_relative(fields[0], location=f"{location}:{number}"))
            self._add(subset, item)
            entries.append(item << 24 | file_bits | (fields[1] == "0"))

    def _item_flags(self, subset: str, number: int) -> list[Label]:
        labels = []
        for entry in _entries_of(self._flags.get(subset), number):
            attributes = {"difficult": True} if entry & 1 else {}
            labels.append(Label(label=self._flag_labels[(entry & 0xFFFFFF) >> 1], attributes=attributes))
        return labels

    # -------------------------------------------------------------------------------------- items
    def shards(self, count: int) -> list[Shard]:
        """About ``count`` ranges of items (read one with ``shard="START:STOP"``)."""
        return range_shards(sum(len(numbers) for numbers in self._subsets.values()), count)

    def shard_reader(self, key: str) -> VocReader:
        """A reader of the range shard ``key`` (``"START:STOP"``) that reuses this open reader's index, for a
        scale-out worker: entering it lists and reads nothing. Pickled, it carries the whole index (about 35
        bytes an item) for trees of up to ``_SHIP_LIMIT`` ids; for a larger tree, only its own items' part of
        the index, renumbered (built when it is pickled, so that the client holds no shard's part for long)."""
        clone = object.__new__(VocReader)  # not copy.copy: that pickles through __getstate__
        clone.__dict__.update(self.__dict__)
        clone.positions, clone._shipped = shard_range(key), True
        clone._join = Joiner()
        clone._object_plans, clone._header_plans = _Plans(_object_plan), _Plans(_header_plan, limit=256)
        clone._document_plans = _document_plans()
        return clone

    def planned_media(self) -> Iterator[PlannedMedia] | None:
        """The media of the items this (shard) reader yields, in order, as the scan found them: the image named
        after the id (its size from the file system). A prediction (see :mod:`dsformats.placement`): an XML
        naming another image makes it wrong. None for a tree that is not local."""
        if self._local is None:
            return None
        return self._planned_media(self._local)

    def _planned_media(self, root: str) -> Iterator[PlannedMedia]:
        files, suffixes, names, item_id = self._files, self._image_suffix, self._suffix_names, self._ids.id
        for subset, numbers in self._runs(self.positions):
            for number in numbers:
                name = item_id(number)
                if files[number] & _IMAGE:
                    suffix = names[suffixes[number]]
                    try:
                        size: int | None = os.stat(f"{root}/{IMAGES_DIR}/{name}{suffix}").st_size
                    except OSError:
                        size = None
                    yield PlannedMedia(subset, name, suffix.lower(), size)
                elif files[number] & _XML:  # its image is whatever the XML names, if anything
                    yield PlannedMedia(subset, name, "", None)
                else:
                    yield PlannedMedia(subset, name, None, None)

    def __getstate__(self) -> dict[str, Any]:
        if len(self._ids) <= _SHIP_LIMIT:
            return self.__dict__.copy()
        if not self._shipped:
            raise TypeError(f"a VOC index of {len(self._ids):,} ids is not shipped to workers: only a shard of it")
        return self._slice()

    def _slice(self) -> dict[str, Any]:
        """This shard reader's state with only its own items' part of the index, numbered from 0 in item order
        (an item listed in two subsets keeps one number; its flags keep their file order)."""
        ids = IdNumbers()
        files, suffixes = bytearray(), array("H")
        subsets: dict[str, array[int]] = {}
        flags: dict[str, array[int]] = {subset: array("Q") for subset in self._flags}
        for subset, numbers in self._runs(self.positions):
            run = subsets[subset] = array("I")
            for number in numbers:
                new = ids.number(self._ids.id(number))
                if new == len(files):  # its first appearance
                    files.append(self._files[number])
                    suffixes.append(self._image_suffix[number])
                    for flag_subset, entries in self._flags.items():
                        renumbered = (new << 24 | entry & 0xFFFFFF for entry in _entries_of(entries, number))
                        flags[flag_subset].extend(renumbered)
                run.append(new)
        return {**self.__dict__, "_ids": ids, "_files": files, "_image_suffix": suffixes, "_subsets": subsets,
                "_flags": flags, "_members": {}, "_listed": bytearray(), "positions": None}

    def _runs(self, positions: range | None) -> Iterator[tuple[str, array[int]]]:
        """``(subset, item numbers)`` of the items at ``positions`` (None: every item), in item order."""
        at = 0
        for subset, numbers in self._subsets.items():
            if positions is None:
                yield subset, numbers
                continue
            start, stop = max(positions.start - at, 0), min(positions.stop - at, len(numbers))
            if start < stop:
                yield subset, numbers[start:stop]
            at += len(numbers)

    def items(self) -> Iterator[Item]:
        """Yield every item of every subset (or of the ``shard`` range), parsing its XML and masks only then."""
        pairs = ((subset, number) for subset, numbers in self._runs(self.positions) for number in numbers)
        # A target that stores no annotations (image_zip): count them by kind instead of building them.
        count_only = stored_kinds() == frozenset()
        for subset, number in pairs:
            try:
                item = self._item(subset, number, count_only)
            except DatasetError as exc:  # a broken XML or mask spoils one item: skip it under the policy
                bad_item(exc)
                continue
            yield item

    def _item(self, subset: str, number: int, count_only: bool = False) -> Item:
        item_id = self._ids.id(number)
        files = self._files[number]
        size, filename = None, None
        objects: list[Any] = []
        extras: dict[str, Any] = {}
        xml_path: str | Path | None = None
        if files & _XML:
            if self._local is not None and files & _XML_NAMED:  # listed by the scan: inside the tree
                xml_path = f"{self._local}/{safe_relative(f'{ANNOTATIONS_DIR}/{item_id}{XML_SUFFIX}')}"
            else:
                xml_path = self._join(self.root, f"{ANNOTATIONS_DIR}/{item_id}{XML_SUFFIX}")
            size, filename, objects, extras = self._parse_xml(xml_path, count_only)
            if extras:
                extras = kept_elements(extras, item_id)
        image = item_id + self._suffix_names[self._image_suffix[number]] if files & _IMAGE else None
        media = self._media(item_id, image, filename, size, str(xml_path))
        masks = self._masks(item_id, files, media, objects)
        if count_only:  # the same files read and checked; no annotation built
            counts = (("bbox", sum(1 + len(obj.parts) for obj in objects)),
                      ("label", len(self._item_flags(subset, number)) if self._flags else 0), ("mask", len(masks)))
            for kind, count in counts:
                if count:
                    not_stored(kind, count)
            return Item(id=item_id, subset=subset, media=media, attributes=extras)
        linked = {mask.group for mask in masks if mask.group and mask.group <= len(objects)}
        annotations: list[Any] = []
        box_of = self._box
        for index, obj in enumerate(objects, 1):
            group = index if obj.parts or index in linked else 0
            annotations.append(box_of(obj.box, obj.label, group, obj.attributes))
            for name, box in obj.parts:
                annotations.append(box_of(box, name, group, None))
        if self._flags:
            annotations.extend(self._item_flags(subset, number))
        annotations.extend(masks)
        return Item(id=item_id, subset=subset, media=media, annotations=annotations, attributes=extras)

    def _box(self, box: tuple, label: str, group: int, attributes: dict[str, Any] | None) -> Bbox:
        xmin, ymin, xmax, ymax = box
        if self.inclusive:
            xmin, ymin = add(xmin, -1), add(ymin, -1)
        if attributes is None:
            return Bbox(x=xmin, y=ymin, w=add(xmax, -xmin), h=add(ymax, -ymin), label=label, group=group)
        return Bbox(
            x=xmin, y=ymin, w=add(xmax, -xmin), h=add(ymax, -ymin), label=label, group=group, attributes=attributes
        )

    def _media(
        self, item_id: str, image: str | None, filename: str | None, size: tuple[int, int] | None, where: str
    ) -> Media | None:
        """The item's image: ``filename`` (from the XML) first, else ``image`` (the scan's name for the id)."""
        if filename and self._local is not None and image == filename:
            # The image the scan listed (a file, or a symlink to one inside the tree): what the join below
            # finds first, without a stat per item. The name is refused the same way when it is unsafe.
            return Media.from_file(f"{self._local}/{IMAGES_DIR}/{safe_relative(filename, location=where)}", size=size)
        images = self.root / IMAGES_DIR
        if filename:
            candidates = [filename]
            if "/" in item_id and "/" not in filename:
                candidates.append(f"{posixpath.dirname(item_id)}/{filename}")
            for name in candidates:
                path = self._join(images, name, location=where)
                if path.is_file():
                    return Media.from_file(path, size=size)
        if image is not None:
            return Media.from_file(self._join(images, image), size=size)
        if size is not None:  # the image is missing, but its size is known: keep it
            return Media.from_file(join_within(images, filename or item_id + ".jpg", location=where), size=size)
        return None

    # ---------------------------------------------------------------------------------------- XML
    def _parse_xml(self, path: str | Path, count_only: bool = False) -> _Parsed:
        if is_local(path):
            data = read_file(path)
            assert data is not None
        else:
            with open_binary(path) as stream:
                data = stream.read()
        quick = self._quick_parse(data, count_only)
        if quick is not None:
            return quick
        return self._parse_tree(data, path, count_only)

    def _parse_tree(self, data: bytes, path: str | Path, count_only: bool = False) -> _Parsed:
        """:meth:`_parse_xml` through ElementTree: any document, and the errors with their locations. With
        ``count_only``, objects are read as :meth:`_quick_parse` reads them then: their labels only."""
        from xml.etree.ElementTree import ParseError

        import defusedxml.ElementTree as DefusedET
        from defusedxml import DefusedXmlException

        try:
            root = _fast_parse(data)
            if root is None:
                root = DefusedET.fromstring(data)
        except ParseError as exc:
            line = exc.position[0] if getattr(exc, "position", None) else None
            raise DatasetError(f"malformed XML ({exc})", f"{path}:{line}" if line else str(path)) from None
        except DefusedXmlException as exc:
            raise DatasetError(f"refused XML ({exc})", str(path)) from None
        if root.tag != "annotation":
            raise DatasetError(f"the root element is <{root.tag}>, expected <annotation>", str(path))
        text, starts = "", []
        scanned = False

        def line_of(index: int, tag: str | None = None) -> str:
            nonlocal text, starts, scanned
            if not scanned:  # only when a location is needed
                text = data.decode("utf-8", "replace")
                starts = [m.start() for m in _OBJECT_TAG.finditer(text)]
                scanned = True
            if index >= len(starts):
                return str(path)
            pos = starts[index]
            if tag is not None:
                found = text.find(f"<{tag}", pos, starts[index + 1] if index + 1 < len(starts) else len(text))
                pos = found if found >= 0 else pos
            return f"{path}:{text.count(chr(10), 0, pos) + 1}"

        size = None
        width, height = root.findtext("size/width"), root.findtext("size/height")
        if width and width.strip() and height and height.strip():
            w = _number(width, "width", str(path))
            h = _number(height, "height", str(path))
            size, odd = declared_size(w, h)
            if odd:
                warn(f"{path}: <size> of {width.strip()} by {height.strip()} is not an image size; ignored (the "
                     "image's own header gives its size where it is needed)")
        filename = (root.findtext("filename") or "").strip() or None
        objects = [
            self._parse_object(element, i, line_of, count_only) for i, element in enumerate(root.findall("object"))
        ]
        return size, filename, objects, _kept_children(root, READ_ELEMENTS, lambda tag: str(path))

    def _quick_parse(self, data: bytes, count_only: bool = False) -> _Parsed | None:
        """What :meth:`_parse_xml` returns for a plainly written document, read off its tags without building a
        tree; None for anything else (other characters, comments, attributes, an unusual layout, any error),
        which then takes the ElementTree path.

        A plain document is ASCII without ``&``, ``\r`` or control characters, whose ``<`` and ``>`` alternate
        (so every ``<...>`` is a tag, and text holds neither), with an optional XML declaration. Its tags are
        checked here (names, nesting, one ``<annotation>`` root, nothing but white space outside it), so that
        a document read here is one ElementTree reads without error. Each ``<object>`` is read by a plan made
        once per distinct sequence of its tags, which applies ElementTree's ``find`` rules (the first child of a
        name); the plans of a whole document's runs of tags are found once per distinct sequence of its tags.
        """
        rest = data.translate(None, _PLAIN_BYTES)
        if rest != b"<>" * (len(rest) >> 1) or b"]]>" in data:
            return None
        text = data.decode("ascii")
        if text.startswith("<?"):
            declaration = _QUICK_DECLARATION.match(text)
            if declaration is None:
                return None
            text = text[declaration.end() :]
        parts = text.replace(">", "<").split("<")
        tags, texts = parts[1::2], parts[2::2]
        if not tags or tags[0] != "annotation" or tags[-1] != "/annotation" or parts[0].strip() or parts[-1].strip():
            return None
        document = self._document_plans.get_plan("<".join(tags), tags, self._header_plans, self._object_plans)
        if document is False:
            return None
        *refs, extra_plans, object_plans = document
        filename, width, height = (None if ref is None else "" if ref == _EMPTY else texts[ref] for ref in refs)
        read_object = self._counted_object if count_only else self._quick_object
        try:
            extras = {tag: _extra_value(extra, texts, start) for tag, extra, start in extra_plans}
            objects = [read_object(plan, texts, at, index) for index, (at, plan) in enumerate(object_plans)]
        except (_Unsupported, DatasetError):
            return None
        size = None
        if width and width.strip() and height and height.strip():
            try:
                w = _number(width, "width", "")
                h = _number(height, "height", "")
            except DatasetError:
                return None
            size, odd = declared_size(w, h)
            if odd:
                return None  # the ElementTree path warns
        return size, (filename or "").strip() or None, objects, extras

    def _quick_object(self, plan: tuple[Any, ...], texts: list[str], base: int, index: int) -> _Object:
        """The :class:`_Object` of one ``<object>`` read by its plan (texts of its tags from ``base``);
        _Unsupported (or DatasetError) where :meth:`_parse_object` would raise."""
        name_ref, box_refs, pose_ref, flags, point_refs, actions, kept, attribute_refs, part_plans = plan
        name = texts[base + name_ref].strip()
        if not name or name not in self._known:
            raise _Unsupported
        x0, y0, x1, y1 = box_refs
        box = (
            _number(texts[base + x0], "xmin", ""),
            _number(texts[base + y0], "ymin", ""),
            _number(texts[base + x1], "xmax", ""),
            _number(texts[base + y1], "ymax", ""),
        )
        attributes: dict[str, Any] = {}
        if pose_ref is not None:
            attributes[POSE] = "" if pose_ref == _EMPTY else texts[base + pose_ref].strip()
        for field, ref in flags:
            if ref is None or ref == _EMPTY:
                attributes[field] = False  # _flag(None)
            else:
                flag_text = texts[base + ref]
                value = _FLAGS.get(flag_text)
                attributes[field] = _flag(flag_text) if value is None else value
        if point_refs is not None:
            x_ref, y_ref = point_refs
            attributes[POINT] = (_number(texts[base + x_ref], "x", ""), _number(texts[base + y_ref], "y", ""))
        for tag, ref in actions:
            attributes[tag] = _flag(None if ref == _EMPTY else texts[base + ref])
        for tag, extra in kept:
            attributes[tag] = _extra_value(extra, texts, base)
        for key_ref, value_ref in attribute_refs:
            key = "" if key_ref == _EMPTY else texts[base + key_ref]
            attributes[key.strip()] = "" if value_ref == _EMPTY else texts[base + value_ref]
        parts = []
        for part_ref, part_box in part_plans:
            part_name = texts[base + part_ref].strip()
            if not part_name or part_name not in self._known:
                raise _Unsupported
            corners = zip(part_box, _BOX_FIELDS, strict=True)
            parts.append((part_name, tuple(_number(texts[base + ref], field, "") for ref, field in corners)))
        return _Object(name, box, attributes, parts, index)

    def _counted_object(self, plan: tuple[Any, ...], texts: list[str], base: int, index: int) -> _Object:
        """The :class:`_Object` of one ``<object>`` with its label and its parts' labels only (empty boxes and
        attributes), for counting; _Unsupported where a label is empty or unknown, as in :meth:`_quick_object`."""
        known = self._known
        label = texts[base + plan[0]].strip()
        parts = [(texts[base + ref].strip(), ()) for ref, _ in plan[-1]] if plan[-1] else []
        if not label or label not in known or (parts and not all(name and name in known for name, _ in parts)):
            raise _Unsupported
        return _Object(label, (), {}, parts, index)

    def _parse_object(self, element: Any, index: int, line_of: Callable[..., str], count_only: bool = False) -> _Object:
        """One ``<object>``; with ``count_only``, its label and its parts' labels only (checked), for counting."""
        name = (element.findtext("name") or "").strip()
        if not name:
            raise DatasetError("<object> without <name>", line_of(index))
        if name not in self._known:
            self._check_label(name, line_of(index, "name"))
        if count_only:
            return _Object(name, (), {}, self._parts(element, index, line_of, count_only), index)
        box = self._bndbox(element, lambda: line_of(index, "bndbox"))
        attributes: dict[str, Any] = {}
        if element.find(POSE) is not None:
            attributes[POSE] = (element.findtext(POSE) or "").strip()
        for field in FLAG_FIELDS:
            attributes[field] = _flag(element.findtext(field))
        point = element.find(POINT)
        if point is not None:
            where = line_of(index, POINT)
            attributes[POINT] = (_number(point.findtext("x"), "x", where), _number(point.findtext("y"), "y", where))
        actions = element.find("actions")
        if actions is not None:
            for action in actions:
                attributes[action.tag] = _flag(action.text)
        attributes.update(_kept_children(element, READ_OBJECT_CHILDREN, lambda tag: line_of(index, tag)))
        for attribute in element.iterfind("attributes/attribute"):
            key = attribute.findtext("name")
            if key is None or attribute.find("value") is None:
                raise DatasetError("<attribute> needs <name> and <value>", line_of(index, "attribute"))
            attributes[key.strip()] = attribute.findtext("value") or ""
        return _Object(name, box, attributes, self._parts(element, index, line_of), index)

    def _parts(self, element: Any, index: int, line_of: Callable[..., str], count_only: bool = False) -> list:
        """``(label, box)`` of each ``<part>`` of object ``index`` (an empty box with ``count_only``)."""
        parts = []
        for part_index, part in enumerate(element.findall("part")):
            part_name = (part.findtext("name") or "").strip()
            where = line_of(index, "part")
            if not part_name:
                raise DatasetError(f"<part> {part_index + 1} without <name>", where)
            self._check_label(part_name, where)
            parts.append((part_name, () if count_only else self._bndbox(part, where)))
        return parts

    def _check_label(self, name: str, where: str) -> None:
        if name not in self._known:
            if self._has_labelmap:
                raise DatasetError(f"unknown label {name!r}: it is not in labelmap.txt", where)
            raise DatasetError(
                f"unknown label {name!r}: it is not a standard VOC label; declare it in labelmap.txt", where
            )

    @staticmethod
    def _bndbox(element: Any, where: str | Callable[[], str]) -> tuple:
        """The four corners; ``where`` (or a function giving it) locates errors."""
        box = element.find("bndbox")
        if box is None:
            raise DatasetError("missing <bndbox>", where if isinstance(where, str) else where())
        values = []
        for field in ("xmin", "ymin", "xmax", "ymax"):
            child = box.find(field)
            try:
                if child is None:
                    raise DatasetError(f"missing <bndbox>/<{field}>")
                values.append(_number(child.text or "", field, ""))
            except DatasetError:  # again, with the location (computed only now)
                location = where if isinstance(where, str) else where()
                if child is None:
                    raise DatasetError(f"missing <bndbox>/<{field}>", location) from None
                values.append(_number(child.text or "", field, location))
        return tuple(values)

    # -------------------------------------------------------------------------------------- masks
    def _masks(self, item_id: str, files: int, media: Media | None, objects: list[_Object]) -> list[Mask]:
        has_class = bool(files & _CLASS)
        has_instances = bool(files & _INSTANCE)
        if not has_class and not has_instances:
            return []
        import numpy as np

        size = media.known_size if media is not None else None
        if size is None and media is not None and media.path and Path(media.path).is_file():
            size = media.size
        classes = self._load_png(f"{CLASS_DIR}/{item_id}{MASK_SUFFIX}", size, instance=False) if has_class else None
        if classes is not None:
            size = (classes.shape[1], classes.shape[0])
        instances = (
            self._load_png(f"{INSTANCE_DIR}/{item_id}{MASK_SUFFIX}", size, instance=True) if has_instances else None
        )
        masks: list[Mask] = []
        if instances is not None:
            for value in np.unique(instances).tolist():
                if value in (0, VOID):
                    continue
                obj = objects[value - 1] if value <= len(objects) else None
                label = obj.label if obj is not None else None
                if classes is not None:
                    under = classes[instances == value]
                    under = under[(under != 0) & (under != VOID)]
                    if under.size:
                        label = self._class_name(int(np.bincount(under).argmax()), item_id)
                group = value if obj is None or obj.label == label else len(objects) + value
                masks.append(Mask(label=label, group=group, loader=_equals(instances, value)))
        if classes is not None:
            rest = classes if instances is None else np.where(instances == 0, classes, 0)
            for value in np.unique(rest).tolist():
                if value in (0, VOID):
                    continue
                masks.append(Mask(label=self._class_name(value, item_id), loader=_equals(rest, value)))
        painted = classes if classes is not None else instances
        if painted is not None and (painted == VOID).any():  # boundaries: no label, on top of everything
            masks.append(Mask(label=None, attributes={VOID_ATTR: True}, loader=_equals(painted, VOID)))
        return masks

    def _class_name(self, value: int, item_id: str) -> str:
        if value >= len(self._names):
            raise DatasetError(
                f"class value {value} is not in the label map ({len(self._names)} labels)",
                str(self.root / CLASS_DIR / (item_id + MASK_SUFFIX)),
            )
        return self._names[value]

    def _load_png(self, rel: str, size: tuple[int, int] | None, *, instance: bool) -> Any:
        import numpy as np
        from PIL import Image

        path = join_within(self.root, rel)
        with open_binary(path) as stream:
            try:
                image = Image.open(stream)
                image.load()
            except Exception as exc:
                raise DatasetError(f"cannot read mask ({exc})", str(path)) from None
        if size is not None and image.size != tuple(size):
            raise DatasetError(
                f"mask is {image.size[0]}x{image.size[1]} but the image is {size[0]}x{size[1]}", str(path)
            )
        if image.mode in ("P", "L"):
            return np.asarray(image, dtype=np.uint8)
        if image.mode == "1":
            return np.asarray(image, dtype=np.uint8)
        if image.mode not in ("RGB", "RGBA"):
            raise DatasetError(f"unsupported mask mode {image.mode!r} (expected a palette PNG)", str(path))
        rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
        codes = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        palette = voc_colormap(256) if instance else [spec.color for spec in self._specs]
        lookup = {(c[0] << 16) | (c[1] << 8) | c[2]: i for i, c in enumerate(palette) if c is not None}
        lookup.setdefault((VOID_COLOR[0] << 16) | (VOID_COLOR[1] << 8) | VOID_COLOR[2], VOID)
        unique, inverse = np.unique(codes, return_inverse=True)
        mapped = []
        for code in unique.tolist():
            if code not in lookup:
                color = (code >> 16, (code >> 8) & 255, code & 255)
                raise DatasetError(f"colour {color} is not in the label map", str(path))
            mapped.append(lookup[code])
        return np.asarray(mapped, dtype=np.uint8)[inverse].reshape(codes.shape)


def _equals(array: Any, value: int) -> Callable[[], Any]:
    return lambda: array == value
