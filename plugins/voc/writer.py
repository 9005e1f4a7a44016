"""Write a Pascal VOC tree: one XML per item, ImageSets lists and flags, palette PNG masks, labelmap.txt.

Items stream through once; only the per-subset id lists (and the class flags of each item) are kept until
the end, when the list files and ``labelmap.txt`` are written.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from dsformats import Bbox, DatasetError, Header, Item, Label, Mask, Media, Polygon, Report, naming, text_flag
from dsformats.fileaccess import safe_relative
from dsformats.idset import KeyMap, LineSpool, RecordSpool
from dsformats.imaging import (
    IMAGE_SUFFIXES,
    encode_palette_png,
    header_from_bytes,
    image_info,
    reencode_ahead,
    same_encoding,
    save_image,
    write_file,
)
from dsformats.parallel import ordered_map
from dsformats.policy import bad_item, writing_partial

from .schema import (
    ACTION,
    ACTION_SETS,
    ANNOTATIONS_DIR,
    BACKGROUND,
    BBOX_PIXEL_INCLUSIVE,
    CLASS_DIR,
    CLASSIFICATION,
    DEFAULT_IMAGE_EXT,
    DEFAULT_SOURCE,
    DETECTION,
    FLAG_FIELDS,
    FLAGS_STATE,
    IMAGES_DIR,
    INSTANCE_DIR,
    LABEL_MAP_VOC,
    LABELMAP_FILE,
    LAYOUT,
    LAYOUT_SETS,
    LIST_SUFFIX,
    MAIN_SETS,
    MASK_SUFFIX,
    MAX_INSTANCES,
    OBJECT_FIELDS,
    PERSON,
    POINT,
    POSE,
    READ_ELEMENTS,
    READ_OBJECT_CHILDREN,
    SEGMENTATION,
    SEGMENTATION_SETS,
    SETS_DIR,
    SHARD_STATE,
    TASKS,
    VOC_LABELS,
    VOC_PARTS,
    VOID,
    VOID_ATTR,
    VOID_COLOR,
    XML_SUFFIX,
    LabelSpec,
    add,
    case_clash,
    default_folder,
    format_labelmap,
    is_xml_name,
    part_parents,
    voc_colormap,
    voc_label_specs,
)

#: The types written with ``repr`` straight away (``format_number`` gives the same text for them).
_PLAIN = frozenset({int, float})
#: ``<object>`` children that take the careful path in :meth:`VocWriter._object` when present.
_SPECIAL = frozenset({POSE, *FLAG_FIELDS, POINT})
_ZERO_FLAGS = "".join(f"\n    <{field}>0</{field}>" for field in FLAG_FIELDS)
_BNDBOX = {
    indent: (
        f"\n{indent}<bndbox>\n{indent}  <xmin>%r</xmin>\n{indent}  <ymin>%r</ymin>\n{indent}  <xmax>%r</xmax>"
        f"\n{indent}  <ymax>%r</ymax>\n{indent}</bndbox>"
    )
    for indent in ("    ", "      ")
}
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
#: Images up to this size are copied through memory (their header read from the same bytes).
_COPY_LIMIT = 32 << 20
_HEAD = 4096
_HEAD_MAX = 1 << 16



def format_number(value: int | float) -> str:
    """``12`` -> ``"12"``, ``12.5`` -> ``"12.5"``: ints stay ints, floats use Python's shortest repr."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a coordinate: {value!r}")
    return repr(value) if isinstance(value, float) else str(int(value))


def _local_header(path: str, data: bytes | None) -> tuple[int, int, int] | None:
    """:func:`header_info` of the regular file ``path`` (``data``: its bytes, when already read); None when
    it is not a regular file, cannot be read, or its header is not plain (then the careful path decides)."""
    if data is None:
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError:
            return None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            data = _read_up_to(fd, _HEAD)
            info = header_from_bytes(data)
            if info is None and len(data) == _HEAD:
                data += _read_up_to(fd, _HEAD_MAX - _HEAD)
                info = header_from_bytes(data)
            return info
        except OSError:
            return None
        finally:
            os.close(fd)
    info = header_from_bytes(data[:_HEAD])
    if info is None and len(data) >= _HEAD:
        info = header_from_bytes(data[:_HEAD_MAX])
    return info


def _read_up_to(fd: int, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = os.read(fd, count)
        if not chunk:
            break
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _flag_value(value: Any) -> int | None:
    """``True``/``1``/``"1"``/``"true"`` -> 1, false-like -> 0, other ints stay; None if not a flag."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return text_flag(value)
    return None


def _escape(text: str) -> str:
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


#: The report's reason for an attribute that :meth:`VocWriter._element` cannot write.
_NOT_AN_ELEMENT = "not a VOC XML element (a name, and text, dicts or lists)"


def _has_structure(attributes: dict[str, Any]) -> bool:
    """Whether an attribute value is a dict or a list (written as child elements of the object)."""
    return any(isinstance(value, dict | list) for value in attributes.values())


def _leaf(indent: str, tag: str, text: str) -> str:
    """One element with text on its own line: ``"\\n" + indent + "<tag>text</tag>"`` (``<tag />`` when empty).

    The annotation files are written line by line with the indentation of each level spelled out, exactly
    as ``ElementTree.indent(root, "  ")`` + ``tostring`` would lay them out, without building a tree.
    """
    return f"\n{indent}<{tag}>{_escape(text)}</{tag}>" if text else f"\n{indent}<{tag} />"


#: The ``<folder>`` of an item without a folder in its id: ``default_folder`` of a top-level id.
_TOP_FOLDER = _leaf("  ", "folder", IMAGES_DIR)
#: The ``<source>`` of an item without one.
_SOURCE = "\n  <source>" + "".join(_leaf("    ", tag, text) for tag, text in DEFAULT_SOURCE.items()) + "\n  </source>"


class _Labels:
    """The label map being written: line order = class value in SegmentationClass PNGs."""

    def __init__(self, header: Header, mode: str) -> None:
        categories = header.categories
        # parts: labels whose parent is a label that is not itself a part (VOC does not nest parts; a lost
        # parent is reported by the plugin's dsformats_header_losses, see schema.lost_parents)
        self.part_of = part_parents(categories)
        self.added_background = False
        self.added = 0  # labels added as used but not declared
        if mode == LABEL_MAP_VOC:
            self.specs = voc_label_specs()
            self.part_of.update({part: PERSON for part in VOC_PARTS})
            self.standard = True
            by_name = {spec.name: spec for spec in self.specs}
            parts = []
            for label in categories.labels:
                if label.name in by_name or label.name in self.part_of and label.name in VOC_PARTS:
                    continue
                self.standard = False
                if label.name in self.part_of:
                    parts.append(label.name)  # attached once every label is known: its parent may come later
                    continue
                spec = LabelSpec(label.name, label.color, (), self._actions(label.attributes))
                self.specs.append(spec)
                by_name[spec.name] = spec
            for name in parts:
                parent = by_name.get(self.part_of[name])
                if parent is None:  # its parent is one of VOC's own parts (head, hand, foot): a label of its own
                    own = categories.get(name)
                    assert own is not None
                    spec = by_name[name] = LabelSpec(name, own.color, (), self._actions(own.attributes))
                    self.specs.append(spec)
                elif name not in parent.parts:
                    parent.parts += (name,)
        else:
            self.standard = False
            self.specs = [
                LabelSpec(
                    d.name,
                    d.color,
                    tuple(p for p, parent in self.part_of.items() if parent == d.name),
                    self._actions(d.attributes),
                )
                for d in categories.labels
                if d.name not in self.part_of
            ]
            first = next((s for s in self.specs if s.name == BACKGROUND), None)
            first = first or next((s for s in self.specs if s.color == (0, 0, 0)), None)
            if first is None:
                first = LabelSpec(BACKGROUND, (0, 0, 0))
                self.added_background = True
            else:
                self.specs.remove(first)
            self.specs.insert(0, first)
        self.index = {spec.name: i for i, spec in enumerate(self.specs)}
        self._fill_colors()
        self._palette: bytes | None = None  # palette_bytes(), until a label is added

    @staticmethod
    def _actions(attributes: Iterable[str]) -> tuple[str, ...]:
        return tuple(a for a in attributes if a not in OBJECT_FIELDS and is_xml_name(a))

    def _fill_colors(self) -> None:
        palette = voc_colormap(256)
        used = {spec.color for spec in self.specs if spec.color is not None} | {VOID_COLOR}
        for i, spec in enumerate(self.specs):
            if spec.color is None:
                color = palette[i] if i < VOID and palette[i] not in used else None
                color = color or next((c for c in palette[1:VOID] if c not in used), None)
                if color is None:  # more than 254 labels: any colour not yet used
                    color = next(
                        (i // 65536, (i // 256) % 256, i % 256)
                        for i in range(1 << 24)
                        if ((i // 65536, (i // 256) % 256, i % 256) not in used)
                    )
                spec.color = color
                used.add(color)

    def ensure(self, name: str, report: Report) -> None:
        """Add a label that items use but the header did not declare."""
        if name in self.index or name in self.part_of:
            return
        report.warn(f"label {name!r} is used but not declared in the categories; added to {LABELMAP_FILE}")
        self.added += 1
        self.standard = False
        self.specs.append(LabelSpec(name))
        self.index[name] = len(self.specs) - 1
        self._fill_colors()
        self._palette = None

    def add_action(self, label: str, action: str) -> None:
        spec = self.specs[self.index[label]] if label in self.index else None
        if spec is not None and action not in spec.actions:
            spec.actions += (action,)
            if not (spec.name == PERSON and action in voc_label_specs()[VOC_LABELS.index(PERSON)].actions):
                self.standard = False

    def actions(self, label: str) -> tuple[str, ...]:
        return self.specs[self.index[label]].actions if label in self.index else ()

    def palette_bytes(self) -> bytes:
        """``bytes(self.palette())``, kept until a label is added."""
        if self._palette is None:
            self._palette = bytes(self.palette())
        return self._palette

    def palette(self) -> list[int]:
        colors = voc_colormap(256)
        for i, spec in enumerate(self.specs[:VOID]):
            colors[i] = spec.color  # type: ignore[assignment]
        colors[VOID] = VOID_COLOR
        return [c for color in colors for c in color]


class VocWriter:
    """Writes ``Annotations/<id>.xml`` for every item, and the lists, flags and masks of the chosen tasks."""

    def __init__(
        self,
        path: Path,
        *,
        save_images: bool = False,
        image_ext: str | None = None,
        tasks: Iterable[str] = (),
        label_map: str = "source",
        bbox_convention: str = "xyxy",
        jobs: int | None = None,
    ) -> None:
        self.root = Path(path)
        self.jobs = jobs
        self._dirs: set[str] = set()
        self.save_images = save_images
        self.image_ext = image_ext  # normalised and checked by the IMAGE_EXT option
        self.tasks = frozenset(tasks) or frozenset(TASKS)
        self.label_map = label_map
        self.inclusive = bbox_convention == BBOX_PIXEL_INCLUSIVE
        # per-item list lines and case-folded ids wait in temporary files (dsformats.idset), not in memory
        self._lists: dict[str, dict[str, LineSpool]] = {d: {} for d in (MAIN_SETS, SEGMENTATION_SETS, ACTION_SETS)}
        self._layout: dict[str, list[str]] = {}
        self._action_rows: dict[str, list[tuple[str, int, dict[str, bool]]]] = {}
        self._flags: dict[str, RecordSpool] = {}  # (id, flags) rows of every item, spooled
        self._any_labels = False
        self._any_masks = False
        self._text_attributes = False
        self._text_elements = False
        self._folded = KeyMap()
        # Caches of the per-item work: checked subset names, the kind of each annotation type, the rendered
        # ``<object>`` openings per label, ``<attribute>`` name lines per key and XML-name checks per key.
        self._subsets_ok: set[str] = set()
        self._kinds: dict[type, int] = {}
        self._heads: dict[str, str] = {}
        self._keys: dict[str, str] = {}
        self._xml_names: dict[str, bool] = {}

    def __enter__(self) -> VocWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    # --------------------------------------------------------------------------------------- write
    def write(self, header: Header, items: Iterable[Item], report: Report) -> None:
        """Write every item, then the list files and the label map."""
        self.labels = _Labels(header, self.label_map)
        self.root.mkdir(parents=True, exist_ok=True)
        self._root = str(self.root)
        for subset in header.subsets or ():
            self._subset_name(subset)
        # Masks are rasterised and PNG-encoded in worker processes, in item order (the same bytes for any
        # number of jobs); everything else is written here while the workers run.
        pairs: Iterable[tuple[Item, bytes | None]] = (
            reencode_ahead(items, self._image_ext, jobs=self.jobs)
            if self.save_images and self.image_ext else ((item, None) for item in items)
        )
        tasks = (self._write_item(item, report, image) for item, image in pairs)
        # _MASK_BATCH items per task (numpy's per-call costs shared by the batch), in workers or inline
        rendered = ordered_map(render_mask_batch, _batches(tasks, _MASK_BATCH), jobs=self.jobs)
        with contextlib.closing(rendered):  # an error below shuts the worker pool down now, not at exit
            for contexts, results in rendered:
                for context, result in zip(contexts, results or [None] * len(contexts), strict=True):
                    if result is not None:
                        self._finish_masks(context, result, report)
        if self.labels.added_background and not self._any_masks:
            self.labels.specs.pop(0)
        self._write_lists()
        if not (self.label_map == LABEL_MAP_VOC and self.labels.standard):
            (self.root / LABELMAP_FILE).write_text(format_labelmap(self.labels.specs), encoding="utf-8")

    @staticmethod
    def _subset_name(subset: str) -> str:
        if not subset or "/" in subset or "\\" in subset or subset in (".", "..") or subset != subset.strip():
            raise DatasetError(f"subset name {subset!r} cannot be a VOC list file name")
        return subset

    def _file(self, folder: str, item_id: str, suffix: str, rel: str | None = None) -> str:
        """The path of an item's file (``rel``: the item id already checked by ``safe_relative``)."""
        if rel is None:
            rel = safe_relative(item_id, location=f"item {item_id!r}")
        path = f"{self._root}/{folder}/{rel}{suffix}"
        parent = path[: path.rfind("/")]
        if parent not in self._dirs:
            os.makedirs(parent, exist_ok=True)
            self._dirs.add(parent)
        return path

    def _image_ext(self, item: Item) -> str:
        ext = self.image_ext or (item.media.suffix if item.media and item.media.suffix in IMAGE_SUFFIXES else None)
        return ext or DEFAULT_IMAGE_EXT

    def _write_item(self, item: Item, report: Report, image: bytes | None = None) -> tuple[Any, Any]:
        """Write the item's image (``image``: already re-encoded), XML and list entries.

        Returns ``(context, mask payload or None)``.
        """
        subset = item.subset
        if subset not in self._subsets_ok:
            self._subsets_ok.add(self._subset_name(subset))
        ext = self._image_ext(item)
        item_id = item.id
        self._check_case(item_id, report)
        rel = safe_relative(item_id, location=f"item {item_id!r}")
        media = item.media
        data = None  # the image's bytes, when they were copied through memory
        if self.save_images and media is not None:
            target = self._file(IMAGES_DIR, item_id, ext, rel)
            try:
                if image is not None:
                    write_file(target, image)
                    reencoded = True
                elif media.path is not None and same_encoding(ext, media.suffix):
                    data = self._copy(media, target, ext)
                    reencoded = False
                else:
                    reencoded = save_image(media, target, ext)
            except DatasetError as exc:  # a missing or undecodable image: skip the item under the policy
                try:
                    os.unlink(target)
                except FileNotFoundError:
                    pass
                bad_item(exc)
                return None, None
            report.wrote_media(reencoded)
        try:
            size, depth = self._image_info(media, data)
        except DatasetError as exc:  # a corrupt image is copied as is; only its size may be unknown
            assert media is not None
            size, depth = media.known_size, None
            if size is None:
                report.warn(f"image size unknown for {item.subset}/{item_id}: {exc}")

        boxes: list[Bbox] = []
        shapes: list[Polygon | Mask] = []
        labels = 0
        kinds = self._kinds
        for ann in item.annotations:
            kind = kinds.get(type(ann))
            if kind is None:
                kind = kinds[type(ann)] = (
                    1 if isinstance(ann, Bbox) else 2 if isinstance(ann, Polygon | Mask) else
                    3 if isinstance(ann, Label) else 0
                )
            if kind == 1:
                boxes.append(ann)  # type: ignore[arg-type]
            elif kind == 2:
                shapes.append(ann)  # type: ignore[arg-type]
            elif kind == 3:
                labels += 1
        index, part_of = self.labels.index, self.labels.part_of
        for group in (boxes, shapes):
            for ann in group:
                name = ann.label
                if name is not None and name not in index and name not in part_of:
                    self.labels.ensure(name, report)
        objects, parts = self._objects(boxes, report)
        context = payload = None
        if SEGMENTATION in self.tasks:
            with naming(f"item {item.id!r}"):  # e.g. a mask over the decode limit
                planned = self._plan_masks(item, shapes, objects, size, report)
            if planned is not None:
                context, payload = planned
            segmented = payload is not None
        else:
            segmented = False
            if shapes:
                with naming(f"item {item.id!r}"):
                    objects += self._shape_boxes(shapes, objects, size, report)

        folder, source, extra = self._elements(item.attributes, report) if item.attributes else (None, None, "")
        if folder is None:
            folder = _TOP_FOLDER if "/" not in item_id else _leaf("  ", "folder", default_folder(item_id))
        out = ["<annotation>", folder, _leaf("  ", "filename", item_id + ext), _SOURCE if source is None else source]
        if extra:
            out.append(extra)
        if size is not None:
            out.append(f"\n  <size>\n    <width>{size[0]}</width>\n    <height>{size[1]}</height>")
            if depth is not None:
                out.append(f"\n    <depth>{depth}</depth>")
            out.append("\n  </size>")
        out.append("\n  <segmented>1</segmented>" if segmented else "\n  <segmented>0</segmented>")
        has_actions = False
        for number, box in enumerate(objects, 1):
            own_parts = parts.get(number, []) if parts else []
            acts = self._object(out, box, own_parts, report)
            if acts:
                has_actions = True
                self._action_rows.setdefault(subset, []).append((self._quoted(item_id), number, acts))
            if own_parts:
                self._layout.setdefault(subset, []).append(f"{self._quoted(item_id)} {number}")
        if objects:
            report.wrote_annotation("bbox", len(objects))
        out.append("\n</annotation>\n")
        write_file(self._file(ANNOTATIONS_DIR, item_id, XML_SUFFIX, rel), "".join(out).encode("utf-8"))

        self._lists[MAIN_SETS].setdefault(subset, LineSpool()).append(item_id)
        if segmented:
            self._lists[SEGMENTATION_SETS].setdefault(subset, LineSpool()).append(item_id)
        if has_actions:
            self._lists[ACTION_SETS].setdefault(subset, LineSpool()).append(item_id)
        if labels or CLASSIFICATION in self.tasks:
            self._classification(item, subset, report)
        report.wrote_item(subset)
        return context, payload

    def _elements(self, attributes: dict[str, Any], report: Report) -> tuple[str | None, str | None, str]:
        """``<folder>``, ``<source>`` (None: absent) and the other ``<annotation>`` children, from the item's
        attributes (what the reader keeps of an XML, and any other format's item attributes).

        A value is an element's text (a non-text one written as text, with a warning), a dict its children, a
        list repeated elements; an attribute that cannot be an element is dropped and counted.
        """
        folder: str | None = None
        source: str | None = None
        rest: list[str] = []
        for key, value in attributes.items():
            out: list[str] = []
            if type(key) is not str or key in READ_ELEMENTS or not self._element(out, "  ", key, value, report):
                report.drop("item attribute", _NOT_AN_ELEMENT)
            elif key == "folder":
                folder = "".join(out)
            elif key == "source":
                source = "".join(out)
            else:
                rest += out
        return folder, source, "".join(rest)

    def _element(self, out: list[str], indent: str, tag: str, value: Any, report: Report) -> bool:
        """Append ``value`` as ``<tag>`` elements to ``out``; False (``out`` partly written) if it cannot be."""
        if not self._xml_name(tag):
            return False
        if isinstance(value, dict):
            if not value:  # an empty element, read back as empty text
                out.append(_leaf(indent, tag, ""))
                self._warn_text(report)
                return True
            out.append(f"\n{indent}<{tag}>")
            if not all(type(k) is str and self._element(out, indent + "  ", k, v, report) for k, v in value.items()):
                return False
            out.append(f"\n{indent}</{tag}>")
            return True
        if isinstance(value, list):
            return bool(value) and all(
                not isinstance(v, list) and self._element(out, indent, tag, v, report) for v in value
            )
        if value is not None and not isinstance(value, str | int | float):
            return False
        out.append(_leaf(indent, tag, value if type(value) is str else "" if value is None else str(value)))
        if not isinstance(value, str):
            self._warn_text(report)
        return True

    def _warn_text(self, report: Report) -> None:
        if not self._text_elements:
            self._text_elements = True
            report.warn("VOC XML elements hold text: non-text item attribute values were written as text")

    def _copy(self, media: Media, target: str, ext: str) -> bytes | None:
        """Copy the local file of ``media`` to ``target`` byte for byte, as :func:`save_image` does.

        Small regular files go through memory, and their bytes are returned (the header is read from them,
        not from a second open); anything else is copied by :func:`save_image`, and None is returned.
        """
        path = media.path
        assert path is not None
        try:
            fd = os.open(path, _READ_FLAGS)
        except OSError:
            save_image(media, target, ext)  # the same error, raised the same way
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > _COPY_LIMIT:
                data = None
            else:
                chunks = []
                size = info.st_size + 1  # one more byte: a file that grew is read to its end all the same
                while True:
                    chunk = os.read(fd, size)
                    if not chunk:
                        break
                    chunks.append(chunk)
                data = b"".join(chunks) if len(chunks) != 1 else chunks[0]
        except OSError:
            data = None
        finally:
            os.close(fd)
        if data is None:
            save_image(media, target, ext)
            return None
        write_file(target, data)
        return data

    def _check_case(self, item_id: str, report: Report) -> None:
        """Warn when ``item_id`` differs from an earlier id only in case (its files would collide)."""
        first = self._folded.setdefault(item_id.casefold(), item_id)
        if first != item_id:
            report.warn(case_clash(first, item_id))

    @staticmethod
    def _quoted(item_id: str) -> str:
        if any(c.isspace() for c in item_id):
            if '"' in item_id:
                raise DatasetError(f"item id {item_id!r} has both spaces and quotes; VOC layout lists cannot hold it")
            return f'"{item_id}"'
        return item_id

    @staticmethod
    def _image_info(media: Media | None, data: bytes | None = None) -> tuple[tuple[int, int] | None, int | None]:
        """``(size, depth)`` from the image header; the size the reader knew when the image is missing.

        ``data``: the bytes of the media's local file, just copied (then the file is not opened again).
        """
        if media is None:
            return None, None
        info = _local_header(media.path, data) if media.path is not None else None
        if info is not None:
            size = media.known_size or info[:2]
            return (int(size[0]), int(size[1])), info[2]
        if media.path is not None and not os.path.isfile(media.path):
            return media.known_size, None
        width, height, depth = image_info(media)
        size = media.known_size or (width, height)
        return (int(size[0]), int(size[1])), depth

    # ------------------------------------------------------------------------------------- objects
    def _objects(self, boxes: list[Bbox], report: Report) -> tuple[list[Bbox], dict[int, list[Bbox]]]:
        """The main boxes (objects, numbered from 1) and the parts attached to each object."""
        part_of = self.labels.part_of
        unlabeled = [b for b in boxes if b.label is None]
        if unlabeled:
            report.drop("bbox", "VOC objects need a label", len(unlabeled))
            boxes = [b for b in boxes if b.label is not None]
        if not part_of or not any(b.group and b.label in part_of for b in boxes):  # no parts: every box is an object
            if DETECTION not in self.tasks:
                if boxes:
                    report.drop("bbox", "--tasks excludes detection", len(boxes))
                return [], {}
            return boxes, {}

        def owner_label(box: Bbox) -> str | None:
            return part_of.get(box.label) if box.group else None  # type: ignore[arg-type]

        is_part = [
            owner_label(b) is not None
            and any(o is not b and o.group == b.group and o.label == owner_label(b) for o in boxes)
            for b in boxes
        ]
        objects = [b for b, part in zip(boxes, is_part, strict=True) if not part]
        parts: dict[int, list[Bbox]] = {}
        if DETECTION not in self.tasks:
            if boxes:
                report.drop("bbox", "--tasks excludes detection", len(boxes))
            return [], {}
        for box, part in zip(boxes, is_part, strict=True):
            if not part:
                continue
            if LAYOUT not in self.tasks:
                report.drop("part", "--tasks excludes layout")
                continue
            owner = next(i for i, o in enumerate(objects, 1) if o.group == box.group and o.label == owner_label(box))
            parts.setdefault(owner, []).append(box)
        return objects, parts

    def _corners(self, box: Bbox) -> tuple[int | float, ...]:
        if self.inclusive:
            return add(box.x, 1), add(box.y, 1), add(box.x, box.w), add(box.y, box.h)
        return box.x, box.y, add(box.x, box.w), add(box.y, box.h)

    def _bndbox(self, out: list[str], box: Bbox, indent: str) -> None:
        x, y, w, h = box.x, box.y, box.w, box.h
        if not self.inclusive and type(x) in _PLAIN and type(y) in _PLAIN and type(w) in _PLAIN and type(h) in _PLAIN:
            corners = (  # add() of two ints is their sum
                x,
                y,
                x + w if type(x) is int and type(w) is int else add(x, w),
                y + h if type(y) is int and type(h) is int else add(y, h),
            )
            if type(corners[2]) in _PLAIN and type(corners[3]) in _PLAIN:
                out.append(_BNDBOX[indent] % corners)  # %r is format_number's text for ints and floats
                return
        xmin, ymin, xmax, ymax = (format_number(value) for value in self._corners(box))
        inner = indent + "  "
        out.append(
            f"\n{indent}<bndbox>\n{inner}<xmin>{xmin}</xmin>\n{inner}<ymin>{ymin}</ymin>\n{inner}<xmax>{xmax}</xmax>"
            f"\n{inner}<ymax>{ymax}</ymax>\n{indent}</bndbox>"
        )

    def _xml_name(self, name: str) -> bool:
        """:func:`is_xml_name`, remembered per name."""
        ok = self._xml_names.get(name)
        if ok is None:
            ok = self._xml_names[name] = is_xml_name(name)
        return ok

    def _object(self, out: list[str], box: Bbox, parts: list[Bbox], report: Report) -> dict[str, bool]:
        """Append one ``<object>`` to ``out``; return the actions it was written with."""
        assert box.label is not None
        source = box.attributes
        if not parts and not (source and (not _SPECIAL.isdisjoint(source) or _has_structure(source))):
            return self._plain_object(out, box, source, report)
        out.append("\n  <object>" + _leaf("    ", "name", box.label))
        attributes = dict(source)
        if POSE in attributes:
            out.append(_leaf("    ", POSE, str(attributes.pop(POSE))))
        extra: dict[str, Any] = {}
        for field in FLAG_FIELDS:
            value = attributes.pop(field, False)
            flag = _flag_value(value)
            out.append(f"\n    <{field}>{flag if flag is not None else 0}</{field}>")  # digits only
            if flag is None:
                extra[field] = value
        self._bndbox(out, box, "    ")
        point = attributes.pop(POINT, None)
        if point is not None:
            if (
                isinstance(point, list | tuple)
                and len(point) == 2
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in point)
            ):
                out.append(f"\n    <{POINT}>\n      <x>{format_number(point[0])}</x>\n      "
                           f"<y>{format_number(point[1])}</y>\n    </{POINT}>")
            else:
                extra[POINT] = point
        for part in parts:
            out.append("\n    <part>" + _leaf("      ", "name", str(part.label)))
            self._bndbox(out, part, "      ")
            out.append("\n    </part>")
            report.wrote_annotation("bbox")
            if part.attributes:
                report.drop("part attribute", "VOC parts have no attributes", len(part.attributes))
        actions = [(k, v) for k, v in attributes.items() if isinstance(v, bool) and self._xml_name(k)]
        if ACTION not in self.tasks:
            actions = []  # booleans stay in <attributes>, as text
        if actions:
            out.append("\n    <actions>")
            for key, value in actions:
                self.labels.add_action(box.label, key)
                out.append(f"\n      <{key}>{1 if value else 0}</{key}>")
                attributes.pop(key)
            out.append("\n    </actions>")
        structured = {k: attributes.pop(k) for k in [k for k, v in attributes.items() if isinstance(v, dict | list)]}
        extra.update(attributes)
        if extra:
            out.append("\n    <attributes>")
            for key, value in extra.items():
                out.append(
                    "\n      <attribute>" + _leaf("        ", "name", str(key)) + _leaf("        ", "value", str(value))
                    + "\n      </attribute>"
                )
                if not isinstance(value, str) and not self._text_attributes:
                    self._text_attributes = True
                    report.warn("VOC <attributes> hold text: non-text attribute values were written as text")
            out.append("\n    </attributes>")
        for key, value in structured.items():  # dicts and lists: child elements, as the reader keeps them
            elements: list[str] = []
            if type(key) is str and key not in READ_OBJECT_CHILDREN and self._element(elements, "    ", key, value,
                                                                                        report):
                out += elements
            else:
                report.drop("attribute", _NOT_AN_ELEMENT)
        out.append("\n  </object>")
        return dict(actions)

    def _plain_object(self, out: list[str], box: Bbox, attributes: dict[str, Any], report: Report) -> dict[str, bool]:
        """:meth:`_object` for a box without parts, pose, flags or point: the same text, with cached pieces."""
        label = box.label
        assert label is not None
        head = self._heads.get(label)
        if head is None:
            head = self._heads[label] = "\n  <object>" + _leaf("    ", "name", label) + _ZERO_FLAGS
        out.append(head)
        self._bndbox(out, box, "    ")
        if not attributes:
            out.append("\n  </object>")
            return {}
        actions: dict[str, bool] = {}
        if ACTION in self.tasks:
            for key, value in attributes.items():
                if type(value) is bool and self._xml_name(key):
                    actions[key] = value
        if actions:
            out.append("\n    <actions>")
            for key, value in actions.items():
                self.labels.add_action(label, key)
                out.append(f"\n      <{key}>{1 if value else 0}</{key}>")
            out.append("\n    </actions>")
            if len(actions) == len(attributes):
                out.append("\n  </object>")
                return actions
        out.append("\n    <attributes>")
        keys = self._keys
        for key, value in attributes.items():
            if key in actions:
                continue
            line = keys.get(key) if type(key) is str else None
            if line is None:
                line = "\n      <attribute>" + _leaf("        ", "name", str(key))
                if type(key) is str:
                    keys[key] = line
            text = value if type(value) is str else str(value)
            out.append(line)
            out.append(f"\n        <value>{_escape(text)}</value>\n      </attribute>" if text else
                       "\n        <value />\n      </attribute>")
            if not isinstance(value, str) and not self._text_attributes:
                self._text_attributes = True
                report.warn("VOC <attributes> hold text: non-text attribute values were written as text")
        out.append("\n    </attributes>")
        out.append("\n  </object>")
        return actions

    def _shape_boxes(
        self, shapes: list[Polygon | Mask], objects: list[Bbox], size: tuple[int, int] | None, report: Report
    ) -> list[Bbox]:
        """Boxes of polygons and masks that have no box of their own (``--tasks`` without segmentation)."""
        boxes = []
        grouped = {o.group for o in objects if o.group}
        dropped: dict[str, int] = {}  # per kind, in the order first seen (the report's order)
        for shape in shapes:
            dropped[shape.kind] = dropped.get(shape.kind, 0) + 1
        for kind, count in dropped.items():
            report.drop(kind, "--tasks excludes segmentation (boxes are written for ungrouped shapes)", count)
        for shape in shapes:
            if DETECTION not in self.tasks or shape.label is None or (shape.group and shape.group in grouped):
                continue
            if isinstance(shape, Polygon):
                xs, ys = shape.points[0::2], shape.points[1::2]
                x, y = min(xs), min(ys)
                w, h = add(max(xs), -x), add(max(ys), -y)
            else:
                import numpy as np

                bitmap = np.asarray(shape.to_bitmap(), dtype=bool)
                rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
                if not rows.size:
                    continue
                x, y = int(cols[0]), int(rows[0])
                w, h = int(cols[-1]) + 1 - x, int(rows[-1]) + 1 - y
            boxes.append(Bbox(x=x, y=y, w=w, h=h, label=shape.label, group=shape.group, attributes=shape.attributes))
        return boxes

    # --------------------------------------------------------------------------------------- masks
    def _plan_masks(
        self,
        item: Item,
        shapes: list[Polygon | Mask],
        objects: list[Bbox],
        size: tuple[int, int] | None,
        report: Report,
    ) -> tuple[Any, Any] | None:
        """Check the shapes to paint into ``SegmentationClass`` and ``SegmentationObject`` PNGs.

        Returns ``(context, payload)`` for :func:`render_masks` (run in a worker) and
        :meth:`_finish_masks`, or None when the item gets no masks. Every error is raised here, in item
        order; the worker only rasterises and encodes.
        """
        usable: list[Polygon | Mask] = []
        for shape in shapes:
            if isinstance(shape, Mask) and shape.attributes.get(VOID_ATTR) is True:
                usable.append(shape)  # void / boundary pixels, painted 255 on top
            elif shape.label is None:
                report.drop(shape.kind, "VOC masks need a label")
            elif shape.label not in self.labels.index:
                report.drop(shape.kind, "part labels have no class value in VOC masks")
            else:
                usable.append(shape)
        if not usable:
            return None
        import numpy as np

        def mismatch(shape: Polygon | Mask, mask: tuple[int, int], image: tuple[int, int]) -> DatasetError:
            """The error for a mask of ``mask`` size (width, height) on an image of ``image`` size."""
            return DatasetError(f"a {shape.kind} of label {shape.label!r} is {mask[0]}x{mask[1]} but the image is "
                                f"{image[0]}x{image[1]}", f"item {item.id!r}")

        if size is not None:  # an RLE declares its size: one that does not fit is refused before it is decoded
            for shape in usable:
                if isinstance(shape, Mask) and shape.rle is not None and tuple(shape.rle.size) != (size[1], size[0]):
                    raise mismatch(shape, (shape.rle.size[1], shape.rle.size[0]), size)
        bitmaps = [np.asarray(s.to_bitmap(), dtype=bool) if isinstance(s, Mask) else None for s in usable]
        if size is None:
            shapes_seen = {b.shape for b in bitmaps if b is not None}
            if len(shapes_seen) != 1:
                report.drop("polygon", "the image size is unknown, so polygons cannot be rasterised", len(usable))
                return None
            height, width = shapes_seen.pop()
        else:
            width, height = size
        instance_of = self._instances(usable, objects, item)
        layers = []
        for i in sorted(range(len(usable)), key=lambda i: usable[i].z_order):
            shape, bitmap = usable[i], bitmaps[i]
            if bitmap is not None and bitmap.shape != (height, width):
                raise mismatch(shape, (bitmap.shape[1], bitmap.shape[0]), (width, height))
            void = _is_void(shape)
            value = VOID if void else self.labels.index[shape.label]  # type: ignore[index]
            if value >= VOID and not void:
                raise DatasetError(f"label {shape.label!r} has class value {value}; VOC masks hold 0..254")
            data = np.packbits(bitmap) if bitmap is not None else list(map(float, shape.points))  # type: ignore[union-attr]
            layers.append((data, value, VOID if void else instance_of[i] if value else 0))
        self._any_masks = True
        shown = [
            (s.kind, instance_of[i], VOID if _is_void(s) else self.labels.index[s.label])  # type: ignore[index]
            for i, s in enumerate(usable)
        ]
        context = (item.id, shown, any(instance_of))
        return context, (width, height, layers, self.labels.palette_bytes(), any(instance_of))

    def _finish_masks(self, context: Any, result: tuple[bytes, bytes | None, frozenset[int]], report: Report) -> None:
        """Write the PNGs a worker encoded, and count each shape as written or covered."""
        item_id, shown, with_instances = context
        classes, instances, present = result
        for kind, instance, value in shown:
            if instance and instance not in present and value:
                report.drop(kind, "covered entirely by shapes above it")
            else:
                report.wrote_annotation(kind)
        write_file(self._file(CLASS_DIR, item_id, MASK_SUFFIX), classes)
        if with_instances:
            assert instances is not None
            write_file(self._file(INSTANCE_DIR, item_id, MASK_SUFFIX), instances)

    def _instances(self, shapes: list[Polygon | Mask], objects: list[Bbox], item: Item) -> list[int]:
        """Instance value per shape: 0 for semantic shapes (no id, no group), the object's index when the
        shape is grouped with an object of the same label, else the next free value."""
        by_group = {o.group: i for i, o in enumerate(objects, 1) if o.group}
        used: set[int] = set()
        values: list[int] = []
        for shape in shapes:
            value = 0
            if shape.id or shape.group:
                index = by_group.get(shape.group) if shape.group else None
                if index is not None and index not in used and objects[index - 1].label == shape.label:
                    value = index
                else:
                    value = max(len(objects), max(used, default=0)) + 1
                    while value in used:
                        value += 1
                if value > MAX_INSTANCES:
                    raise DatasetError(
                        f"more than {MAX_INSTANCES} instances (VOC instance masks are 8-bit and 255 is void)",
                        f"item {item.id!r}",
                    )
                used.add(value)
            values.append(value)
        return values

    # ---------------------------------------------------------------------------- classification
    def _classification(self, item: Item, subset: str, report: Report) -> None:
        labels = [a for a in item.annotations if isinstance(a, Label)]
        if labels and CLASSIFICATION not in self.tasks:
            report.drop("label", "--tasks excludes classification", len(labels))
            return
        if CLASSIFICATION not in self.tasks:
            return
        flags: dict[str, int] = {}
        for label in labels:
            self.labels.ensure(label.label, report)
            difficult = _flag_value(label.attributes.get("difficult")) == 1
            flags[label.label] = max(flags.get(label.label, 0), 0 if difficult else 1)
            others = {k for k in label.attributes if k != "difficult"}
            if others:
                report.drop("label attribute", "VOC class flags hold no attributes", len(others))
            report.wrote_annotation("label")
        self._any_labels |= bool(labels)
        self._flags.setdefault(subset, RecordSpool()).append((item.id, flags))

    # ------------------------------------------------------------------------------------- lists
    def _write_lists(self) -> None:
        sets = self.root / SETS_DIR
        for task_dir, subsets in self._lists.items():
            for subset, ids in subsets.items():
                (sets / task_dir).mkdir(parents=True, exist_ok=True)
                ids.write_to(sets / task_dir / (subset + LIST_SUFFIX))
                ids.close()
        for subset, lines in self._layout.items():
            self._write_text(sets / LAYOUT_SETS / (subset + LIST_SUFFIX), lines)
        if writing_partial():
            state = {"subsets": list(self._lists[MAIN_SETS]), "labels_added": self.labels.added}
            (self.root / SHARD_STATE).write_text(json.dumps(state), encoding="utf-8")
        for subset, action_rows in self._action_rows.items():  # VOC2012's <action>_<subset>.txt: "<id> <object> <flag>"
            for action in sorted({name for _, _, acts in action_rows for name in acts}):
                lines = [f"{item_id} {index} {1 if acts.get(action) else -1}" for item_id, index, acts in action_rows]
                self._write_text(sets / ACTION_SETS / f"{action}_{subset}{LIST_SUFFIX}", lines)
        # One writer writes class flags for every subset once any item has labels. A shard cannot know that of
        # the others: it writes them whenever it writes classification, and the merge keeps them only if some
        # shard would have kept them on its own (see FLAGS_STATE).
        keep = self._any_labels or CLASSIFICATION in self.tasks and len(self.tasks) == 1
        partial = writing_partial() and CLASSIFICATION in self.tasks
        if not (keep or partial):
            return
        names = [spec.name for spec in self.labels.specs]
        flagged = {name for rows in self._flags.values() for _, flags in rows for name in flags}
        names += sorted(flagged - set(names))  # part labels used as image labels
        written = []
        for subset, rows in self._flags.items():
            for name in names:
                lines = [f"{item_id} {flags.get(name, -1): d}" for item_id, flags in rows]
                written.append(f"{SETS_DIR}/{MAIN_SETS}/{name}_{subset}{LIST_SUFFIX}")
                self._write_text(self.root / written[-1], lines)
        if partial:
            self._write_text(self.root / FLAGS_STATE, [str(int(keep)), *written])

    @staticmethod
    def _write_text(path: Path, lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _is_void(shape: Polygon | Mask) -> bool:
    return isinstance(shape, Mask) and shape.attributes.get(VOID_ATTR) is True


@functools.lru_cache(maxsize=1)
def _instance_palette() -> bytes:
    return bytes(c for color in voc_colormap(256) for c in color)


#: Layers up to which :func:`_render` finds the top-most layer of each segment with bit operations.
_XOR_LAYERS = 52
#: Items per mask-rendering task in worker processes (the pool's window of tasks is 4 per worker).
_MASK_BATCH = 8


def _batches(tasks: Iterable[tuple[Any, Any]], size: int) -> Iterator[tuple[list[Any], list[Any] | None]]:
    """``(contexts, payloads)`` of ``size`` consecutive tasks (payloads None when none of them has one)."""
    iterator = iter(tasks)
    while True:
        batch = list(itertools.islice(iterator, size))
        if not batch:
            return
        payloads = [payload for _, payload in batch]
        yield [context for context, _ in batch], payloads if any(p is not None for p in payloads) else None


def render_mask_batch(payloads: list[Any]) -> list[Any]:
    """:func:`render_masks` of each payload (None stays None), the polygons of all of them decoded together."""
    from pycocotools import mask as mask_utils

    texts: list[bytes] = []
    for payload in payloads:
        if payload is not None:
            width, height, layers = payload[0], payload[1], payload[2]
            polygons = [data for data, _, _ in layers if isinstance(data, list)]
            if polygons:
                texts += [rle["counts"] for rle in mask_utils.frPyObjects(polygons, height, width)]
    ends = iter(_run_ends(texts))
    return [None if payload is None else _render(payload, ends) for payload in payloads]


def render_masks(payload: tuple[int, int, list[tuple[Any, int, int]], bytes, bool]) -> tuple[bytes, Any, Any]:
    """Paint one item's layers into class and instance masks and encode both as palette PNGs.

    ``payload`` is ``(width, height, layers, class palette, with instances)``; each layer, in z order, is
    ``(polygon as flat [x, y, ...] or np.packbits of a bitmap, class value, instance value)``. Polygons are
    rasterised with pycocotools, like COCO tools do. Returns ``(class PNG, instance PNG or None, instance
    values present)``. Runs in worker processes: the result depends on the payload only.
    """
    return render_mask_batch([payload])[0]  # type: ignore[no-any-return]


def _render(payload: tuple[int, int, list[tuple[Any, int, int]], bytes, bool], polygons: Iterator[Any]) -> Any:
    """:func:`render_masks`, the run ends of the payload's polygons taken in turn from ``polygons``."""
    import numpy as np

    width, height, layers, palette, with_instances = payload
    total = width * height
    # Each layer as the ends of its runs, column-major (the layout of COCO RLEs): runs alternate
    # background, foreground, ... from pixel 0. The picture is composed in run space: the boundaries of all
    # layers cut the image into segments, each inside one run of every layer, and a segment takes the value
    # of the top-most layer whose foreground covers it. Only the final images are pixel-sized.
    layer_ends = []
    for data, _, _ in layers:
        if isinstance(data, list):
            ends = next(polygons)
        else:
            flat = np.unpackbits(data, count=total).reshape(height, width).T.reshape(-1)
            changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
            ends = np.concatenate(([0] if total and flat[0] else [], changes, [total])).astype(np.int64)
        layer_ends.append(ends)
    starts, lengths, owner = _segments(layer_ends, total)
    class_values = np.array([0, *(value for _, value, _ in layers)], dtype=np.uint8)[owner]
    instance_values = np.array([0, *(instance for _, _, instance in layers)], dtype=np.uint8)[owner]
    present = frozenset(instance_values.tolist()) - {0}
    classes = np.repeat(class_values, lengths).reshape(width, height)
    instances = np.repeat(instance_values, lengths).reshape(width, height)
    class_png = encode_palette_png(classes.T, palette)
    instance_png = encode_palette_png(instances.T, _instance_palette()) if with_instances else None
    return class_png, instance_png, present


def _segments(layer_ends: list[Any], total: int, *, bits: bool = True) -> tuple[Any, Any, Any]:
    """``(starts, lengths, owner)`` of the segments that the run ends of all layers cut ``0..total`` into;
    ``owner``: the number (from 1, in z order) of the top-most layer whose foreground covers the segment,
    0 for none. ``bits=False`` takes the loop over the layers (the same result)."""
    import numpy as np

    if bits and 0 < len(layer_ends) <= _XOR_LAYERS:
        # A layer covers a point when an odd number of its run ends lie at or before it: give layer k the bit
        # 1 << (k - 1), and the layers covering a point are the XOR of the bits of every end at or before it
        # (one sort and one accumulate for all layers). The top-most is the highest bit: frexp's exponent,
        # exact below 2**53.
        positions = np.concatenate(layer_ends)
        order = np.argsort(positions, kind="stable")
        positions = positions[order]
        layer_bits = np.left_shift(1, np.arange(len(layer_ends), dtype=np.int64))
        covering = np.bitwise_xor.accumulate(np.repeat(layer_bits, [len(e) for e in layer_ends])[order])
        bounds = np.concatenate(([0], positions, [total]))  # sorted: every end lies in 0..total
        bounds = bounds[np.concatenate(([True], bounds[1:] != bounds[:-1]))]
        starts, lengths = bounds[:-1], np.diff(bounds)
        at = np.searchsorted(positions, starts, side="right") - 1
        state = np.where(at >= 0, covering[np.maximum(at, 0)], 0)
        owner = np.frexp(state.astype(np.float64))[1].astype(np.intp)
    else:
        bounds = np.sort(np.concatenate([np.zeros(1, dtype=np.int64), np.full(1, total, dtype=np.int64), *layer_ends]))
        bounds = bounds[np.concatenate(([True], bounds[1:] != bounds[:-1]))]  # np.unique, without its hashing
        starts, lengths = bounds[:-1], np.diff(bounds)
        owner = np.zeros(len(starts), dtype=np.intp)
        for number, ends in enumerate(layer_ends, 1):
            owner[(np.searchsorted(ends, starts, side="right") & 1).astype(bool)] = number
    return starts, lengths, owner


def polygon_run_ends(polygons: list[list[Any]], height: int, width: int) -> list[Any]:
    """The run ends (column-major, from background) of each polygon rasterised by pycocotools.

    All polygons of an item are rasterised in one pycocotools call and their compressed RLE strings
    (``dsformats.masks.decompress_counts`` decodes one) are decoded together, vectorised: the per-call
    cost of numpy, not the pixels, dominates small masks.
    """
    if not polygons:
        return []
    from pycocotools import mask as mask_utils

    return _run_ends([rle["counts"] for rle in mask_utils.frPyObjects(polygons, height, width)])


def _run_ends(texts: list[bytes]) -> list[Any]:
    """The run ends of compressed COCO RLE strings, all decoded in one vectorised pass."""
    import numpy as np

    if not texts:
        return []
    chars = np.frombuffer(b"".join(texts), dtype=np.uint8).astype(np.int64) - 48
    last = np.flatnonzero((chars & 0x20) == 0)  # the last character of each number
    firsts = np.concatenate(([0], last[:-1] + 1))
    position = np.arange(len(chars)) - np.repeat(firsts, last - firsts + 1)
    values = np.add.reduceat((chars & 0x1F) << (5 * position), firsts)
    negative = (chars[last] & 0x10) != 0
    values[negative] |= -1 << (5 * (last - firsts + 1)[negative])
    # Numbers per string, and each number's index within its string.
    bounds = np.searchsorted(last, np.cumsum([len(text) for text in texts]) - 1, side="right")
    sizes = np.diff(bounds, prepend=0)
    starts = bounds - sizes
    local = np.arange(len(values)) - np.repeat(starts, sizes)

    def segmented_cumsum(data: Any) -> Any:
        total = np.cumsum(data)
        before = np.where(starts > 0, total[np.maximum(starts - 1, 0)], 0)
        return total - np.repeat(before, sizes)

    # From the fourth number of a string on, each is stored as the difference to the one two back.
    counts = values.copy()
    for chosen in ((local % 2 == 1), (local % 2 == 0) & (local >= 2)):
        counts[chosen] = segmented_cumsum(np.where(chosen, values, 0))[chosen]
    return np.split(segmented_cumsum(counts), bounds[:-1])
