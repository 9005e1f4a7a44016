"""Write COCO task files, streaming: records are spooled as compact JSON lines, files assembled at the end.

The spool (see :mod:`.spool`) lives in a scratch folder of the staging directory and is deleted before the
writer returns, except when the writer writes one shard of a scale-out conversion
(:func:`dsformats.writing_partial`): then it keeps the spool, with its state, for :mod:`.merge`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import orjson

from dsformats import (
    Annotation,
    Bbox,
    Caption,
    DatasetError,
    Header,
    Item,
    Label,
    Mask,
    Points,
    Polygon,
    Report,
    Rle,
    naming,
    text_flag,
)
from dsformats.fileaccess import safe_relative
from dsformats.imaging import reencode_ahead, write_image
from dsformats.policy import bad_item, writing_partial

from .schema import (
    ANNOTATIONS_DIR,
    AREA_ATTR,
    BBOX_ATTR,
    CAPTIONS,
    CROWD_ATTR,
    DEFAULT_IMAGE_EXT,
    FORMAT,
    IMAGE_DEFAULTS,
    IMAGE_ID_ATTR,
    IMAGES_DIR,
    INFO_KEY,
    INSTANCES,
    ISTHING_ATTR,
    LABELS,
    PANOPTIC,
    PANOPTIC_SUFFIX,
    PERSON_KEYPOINTS,
    SCORE_ATTR,
    STUFF,
    TASK_ATTR,
    file_case_clash,
    file_stem,
)
from .spool import Catalog, SubsetSpool, assemble


class _LazyGeometry:
    """``geometry`` imported on first use: it loads numpy and pycocotools, which box-only data never needs."""

    def __getattr__(self, name: str) -> Any:
        from . import geometry as module

        return getattr(module, name)


geometry = _LazyGeometry()

SPOOL = ".coco-spool"
STATE = "state.json"  # in SPOOL, when the spool is kept for a merge
_SHAPES = (Bbox, Polygon, Mask)


def _crowd(value: Any, default: int) -> int:
    """COCO's ``iscrowd`` from an ``is_crowd`` attribute; text (VOC attributes are text) is read as a flag."""
    if value is None:
        return default
    if isinstance(value, str):
        flag = text_flag(value) if value.strip() else 0
        if flag is not None:
            return flag
    return int(bool(value))


def _area(value: Any) -> int | float | None:
    """An ``area`` attribute as a number (numeric text parsed, as VOC gives it back), or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return None
    return None


def _explicit_id(value: Any) -> int:
    """A positive int id from an attribute value (``5`` or ``"5"``), else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if value > 0 else 0
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _rle_json(rle: Rle) -> dict[str, Any]:
    """``rle`` as COCO JSON, counts exactly as stored (list or compressed string)."""
    counts = rle.counts if isinstance(rle.counts, str) else list(rle.counts)
    return {"size": list(rle.size), "counts": counts}


def _json_safe(value: Any) -> bool:
    try:
        orjson.dumps(value)
    except TypeError:
        return False
    return True


class _Categories:
    """Label name -> category id: the source's ids kept, free ids given to labels that have none."""

    def __init__(self, header: Header) -> None:
        self.labels = {label.name: label for label in header.categories.labels}
        self.keypoints = header.categories.keypoints
        self.ids: dict[str, int] = {}
        used: set[int] = set()
        for label in header.categories.labels:
            if label.id is not None and label.id not in used:
                self.ids[label.name] = label.id
                used.add(label.id)
        self.used = used
        self.added: list[str] = []  # labels met in the data but not in the header, in order
        self.next = 1
        for label in header.categories.labels:
            if label.name not in self.ids:
                self.ids[label.name] = self._free()

    def _free(self) -> int:
        while self.next in self.used:
            self.next += 1
        self.used.add(self.next)
        return self.next

    def id_of(self, label: str | None, report: Report) -> int:
        if label is None:
            return 0
        if label not in self.ids:
            report.warn(f"label {label!r} is not in the dataset's categories; added as a COCO category")
            self.ids[label] = self._free()
            self.added.append(label)
        return self.ids[label]


class CocoWriter:
    """Writes ``annotations/<task>_<subset>.json`` and ``images/<subset>/`` (always created)."""

    def __init__(
        self,
        path: Path,
        *,
        save_images: bool = False,
        image_ext: str | None = None,
        tasks: Iterable[str] = (),
        segmentation_mode: str = "guess",
        reindex: bool = False,
        jobs: int | None = None,
    ) -> None:
        self.root = Path(path)
        self.save_images = save_images
        self.image_ext = image_ext  # normalised and checked by the IMAGE_EXT option
        self.tasks = tuple(tasks)
        self.mode = segmentation_mode
        self.reindex = reindex
        self.jobs = jobs  # processes re-encoding images for --image-ext

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for subset in getattr(self, "_subsets", {}).values():
            subset.close()
        if exc_type is not None or not writing_partial():
            shutil.rmtree(self.root / SPOOL, ignore_errors=True)

    # -- items

    def write(self, header: Header, items: Iterable[Item], report: Report) -> None:
        """Spool every item's records, then assemble the task files."""
        self.header = header
        self.info = dict(header.infos.get(INFO_KEY) or {})
        self.top_keys = set(self.info.get("annotation_keys") or ())
        self.categories = _Categories(header)
        self.isthing: dict[str, Any] = dict(self.info.get("isthing") or {})
        (self.root / ANNOTATIONS_DIR).mkdir(parents=True, exist_ok=True)
        scratch = self.root / SPOOL
        scratch.mkdir()
        self._subsets: dict[str, SubsetSpool] = {}
        self._folded: dict[str, str] = {}
        for subset_name in header.subsets or ():
            (self.root / IMAGES_DIR / subset_name).mkdir(parents=True, exist_ok=True)
        if self.save_images and self.image_ext:
            for item, image in reencode_ahead(items, lambda item: self.image_ext, jobs=self.jobs):
                self._write_item(item, report, image)
        else:
            for item in items:
                self._write_item(item, report)
        if not self._subsets:
            (self.root / IMAGES_DIR).mkdir(exist_ok=True)
        for subset in self._subsets.values():
            subset.close()
        catalog = self._catalog()
        if writing_partial():
            state = {"catalog": attrs.asdict(catalog), "added": self.categories.added,
                     "subsets": {name: subset.state() for name, subset in self._subsets.items()}}
            (scratch / STATE).write_bytes(orjson.dumps(state))
            return
        for name, subset in self._subsets.items():
            assemble(self.root, name, [subset.source], subset.explicit, subset.labels, catalog, scratch)

    def _catalog(self) -> Catalog:
        labels = self.categories.labels
        return Catalog(
            tasks=list(self.tasks),
            info=self.info,
            ids=self.categories.ids,
            parents={name: labels[name].parent if name in labels else "" for name in self.categories.ids},
            keypoints={name: [list(schema.names), [list(pair) for pair in schema.skeleton]]
                       for name, schema in self.categories.keypoints.items()},
            isthing=self.isthing,
        )

    def _subset(self, name: str) -> SubsetSpool:
        if name not in self._subsets:
            safe_relative(name, location=f"subset {name!r}")
            (self.root / IMAGES_DIR / name).mkdir(parents=True, exist_ok=True)
            self._subsets[name] = SubsetSpool(self.root / SPOOL, len(self._subsets), partial=writing_partial())
        return self._subsets[name]

    def _size(self, item: Item, report: Report) -> tuple[int, int] | None:
        if item.media is not None:
            if item.media.known_size is not None:
                return item.media.known_size
            try:
                return item.media.size
            except DatasetError as exc:
                report.warn(f"image size unknown for {item.subset}/{item.id}: {exc}")
        for ann in item.annotations:
            if isinstance(ann, Mask) and ann.rle is not None:
                return (ann.rle.size[1], ann.rle.size[0])
        return None

    def _write_item(self, item: Item, report: Report, image: bytes | None = None) -> None:
        subset = self._subset(item.subset)
        ext = self.image_ext or (item.media.suffix if item.media is not None else "") or DEFAULT_IMAGE_EXT
        file_name = safe_relative(item.id + ext, location=f"item {item.id!r}")
        if self.save_images and item.media is not None:
            self._check_case(item.subset, file_name, report)
            target = self.root / IMAGES_DIR / item.subset / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(target, "wb") as stream:
                    if image is not None:
                        stream.write(image)
                    reencoded = image is not None or write_image(item.media, stream, ext)
            except DatasetError as exc:  # a missing or undecodable image: skip the item under the policy
                target.unlink(missing_ok=True)
                bad_item(exc)
                return
            report.wrote_media(reencoded)
        size = self._size(item, report)
        explicit = 0 if self.reindex else _explicit_id(item.attributes.get(IMAGE_ID_ATTR))
        width, height = size or (0, 0)
        record: dict[str, Any] = {"width": width, "height": height, "file_name": file_name, **IMAGE_DEFAULTS}
        for key, value in item.attributes.items():
            if key == IMAGE_ID_ATTR or key in ("width", "height", "file_name"):
                continue
            if _json_safe(value):
                record[key] = value
            else:
                report.drop("item attribute", "not JSON-serialisable")
        index = subset.add_image(explicit, orjson.dumps(record))
        raw = self._raw(item)
        with naming(f"item {item.id!r}"):  # e.g. a mask over the decode limit
            if raw is not None:
                self._raw_annotations(item, raw, subset, index, size, report)
            else:
                self._annotations(item, subset, index, size, report)
        report.wrote_item(item.subset)

    def _check_case(self, folder: str, name: str, report: Report) -> None:
        """Warn when ``folder/name`` differs from an earlier file only in case (they collide on some systems)."""
        path = f"{folder}/{name}"
        first = self._folded.setdefault(path.casefold(), path)
        if first != path:
            report.warn(file_case_clash(first, path))

    # -- routing

    def _routes(self, tag: str | None, has_points: bool, has_shapes: bool) -> tuple[str | None, bool]:
        """(task for the shapes, whether a person_keypoints record is written) for one object."""
        chosen = self.tasks
        if not chosen:
            if tag == PERSON_KEYPOINTS:
                return None, True
            shape_task = tag if tag in (INSTANCES, STUFF) else INSTANCES
            return (shape_task if has_shapes else None), has_points
        keypoints = has_points and PERSON_KEYPOINTS in chosen
        if not has_shapes:
            return None, keypoints
        if tag in (INSTANCES, STUFF) and tag in chosen:
            return tag, keypoints
        if tag == PERSON_KEYPOINTS and keypoints:
            return None, True
        return next((t for t in (INSTANCES, STUFF) if t in chosen), None), keypoints

    def _panoptic_mask(self, ann: Annotation) -> bool:
        if not isinstance(ann, Mask):
            return False
        tagged = ann.attributes.get(TASK_ATTR) == PANOPTIC
        if not self.tasks:
            return tagged
        if PANOPTIC not in self.tasks:
            return False
        return tagged or not any(t in self.tasks for t in (INSTANCES, STUFF))

    def _simple_task(self, task: str, kind: str, report: Report) -> bool:
        if not self.tasks or task in self.tasks:
            return True
        report.drop(kind, f"coco: task {task!r} is not among --tasks {','.join(self.tasks)}")
        return False

    def _annotations(
        self, item: Item, subset: SubsetSpool, index: int, size: tuple[int, int] | None, report: Report
    ) -> None:
        groups, panoptic = self._group(item.annotations, subset, index, report)
        # Objects _plain_record can write are spooled and counted in the report in batches, in order.
        pending: list[tuple[int, bytes, str]] = []
        counts: dict[str, int] = {}
        for members in groups.values():
            self._emit(members, subset, index, size, report, pending, counts)
        self._flush(subset, index, pending, counts, report)
        if panoptic:
            self._panoptic(item, panoptic, subset, index, report)

    def _group(
        self, annotations: Iterable[Annotation], subset: SubsetSpool, index: int, report: Report
    ) -> tuple[dict[Any, list[Annotation]], list[Mask]]:
        """The objects of ``annotations`` (shapes and points, in data order) and the panoptic masks.

        Captions and labels are spooled here; what COCO cannot hold is counted as dropped.
        """
        groups: dict[Any, list[Annotation]] = {}  # object key -> its shapes and points, in data order
        boxed: set[tuple[int, str]] = set()  # group keys already holding a box
        panoptic: list[Mask] = []
        for position, ann in enumerate(annotations):
            cls = type(ann)
            if cls is Bbox or cls is Polygon:  # the common case first
                pass
            elif isinstance(ann, Caption):
                if self._simple_task(CAPTIONS, "caption", report):
                    record = {"category_id": 0, "caption": ann.caption, **self._extras(dict(ann.attributes), report)}
                    subset.add_object(index, 0 if self.reindex else ann.id, [(CAPTIONS, orjson.dumps(record), ())])
                    report.wrote_annotation("caption")
                continue
            elif isinstance(ann, Label):
                if self._simple_task(LABELS, "label", report):
                    cid = self.categories.id_of(ann.label, report)
                    record = {"category_id": cid, **self._extras(dict(ann.attributes), report)}
                    records = [(LABELS, orjson.dumps(record), (ann.label,))]
                    subset.add_object(index, 0 if self.reindex else ann.id, records)
                    report.wrote_annotation("label")
                continue
            elif self._panoptic_mask(ann):
                assert isinstance(ann, Mask)
                panoptic.append(ann)
                continue
            elif not isinstance(ann, (*_SHAPES, Points)):
                report.drop(ann.kind, f"coco cannot store {ann.kind} annotations")
                continue
            # One COCO object = the shapes of one group *and label* (VOC groups a person's parts, which carry
            # other labels, with it: those stay separate objects). A COCO object has one box, so a second box
            # of the same group and label starts an object of its own.
            label = ann.label  # type: ignore[attr-defined]
            if label is None:
                report.drop(ann.kind, "coco annotations need a category (this one has no label)")
                continue
            group = ann.group
            if not group:
                groups[position] = [ann]
                continue
            key: Any = (group, label)
            if isinstance(ann, Bbox):
                if key in boxed:
                    groups[position] = [ann]
                    continue
                boxed.add(key)
            members = groups.get(key)
            if members is None:
                groups[key] = [ann]
            else:
                members.append(ann)
        return groups, panoptic

    def _emit(
        self, members: list[Annotation], subset: SubsetSpool, index: int, size: tuple[int, int] | None,
        report: Report, pending: list[tuple[int, bytes, str]], counts: dict[str, int],
    ) -> None:
        """Spool one object: into ``pending`` (counted in ``counts``) when :meth:`_plain_record` can, else now."""
        if self.mode != "mask":
            spooled = self._plain_record(members, size, report, counts)
            if spooled is not None:
                pending.append(spooled)
                return
        self._flush(subset, index, pending, counts, report)
        self._object(members, subset, index, size, report)

    def _flush(
        self, subset: SubsetSpool, index: int, pending: list[tuple[int, bytes, str]], counts: dict[str, int],
        report: Report,
    ) -> None:
        if pending:
            subset.add_records(index, INSTANCES, pending)
            pending.clear()
        if counts:
            self._count(counts, report)

    def _raw(self, item: Item) -> Any:
        """The reader's raw form of the item's annotations when it is an untouched COCO source and the
        records it gives are written to ``instances`` (else None: the item takes the full path)."""
        deferred = item.deferred
        if deferred is None or deferred.format != FORMAT or self.mode == "mask":
            return None
        if self.tasks and self._routes(None, False, True) != (INSTANCES, False):
            return None
        return deferred.raw()

    def _raw_annotations(
        self, item: Item, raw: Any, subset: SubsetSpool, index: int, size: tuple[int, int] | None, report: Report
    ) -> None:
        """:meth:`_annotations` from the COCO reader's elements, giving the same records, ids and report.

        A plain element (a box and polygons, or a box and an RLE mask under ``--segmentation-mode guess``; no
        task tag) is written from its JSON (the commonest from its JSON text); any other is built by the reader
        (:meth:`convert`) and takes the full path.
        """
        pending: list[tuple[int, bytes, str]] = []
        counts: dict[str, int] = {}
        panoptic: list[Mask] = []
        boxes = polygon_count = 0
        labels, ids, reindex = raw.labels, self.categories.ids, self.reindex
        for element, code, ann in zip(raw.elements, raw.codes, raw.plain(), strict=True):
            # The commonest element, inline: a box and polygons, a numeric area, nothing else, decoded by the
            # reader with its JSON text. The record is what _plain_bytes makes of fields(ann): is_crowd read as a
            # flag, no attributes left.
            if ann.__class__ is not dict:
                label = labels[ann.category_id]
                record = b'{"category_id":%d,"segmentation":%s,"area":%s,"bbox":%s,"iscrowd":%d}' % (
                    ids.get(label) or self.categories.id_of(label, report), ann.segmentation, ann.area, ann.bbox,
                    1 if ann.iscrowd else 0,
                )
                pending.append((0 if reindex else ann.id, record, label))
                boxes += 1
                polygon_count += code >> 2
                continue
            if not code & 2 or self.mode == "guess":
                ann_id, label, attributes, bbox, polygons, rle = raw.fields(ann)
                if not attributes.get(TASK_ATTR):
                    spooled = self._plain_bytes(ann_id, label, None, attributes, bbox, polygons, size, report, rle)
                    if spooled is not None:
                        pending.append(spooled)
                        if bbox is not None:
                            counts["bbox"] = counts.get("bbox", 0) + 1
                        if polygons:
                            counts["polygon"] = counts.get("polygon", 0) + len(polygons)
                        if rle is not None:
                            counts["mask"] = counts.get("mask", 0) + 1
                        continue
            groups, masks = self._group(raw.convert(element), subset, index, report)
            panoptic += masks
            for members in groups.values():
                self._emit(members, subset, index, size, report, pending, counts)
        if boxes:
            counts["bbox"] = counts.get("bbox", 0) + boxes
        if polygon_count:
            counts["polygon"] = counts.get("polygon", 0) + polygon_count
        self._flush(subset, index, pending, counts, report)
        if panoptic:
            self._panoptic(item, panoptic, subset, index, report)

    @staticmethod
    def _count(counts: dict[str, int], report: Report) -> None:
        for kind, count in counts.items():
            report.wrote_annotation(kind, count)
        counts.clear()

    def _plain_record(
        self, members: list[Annotation], size: tuple[int, int] | None, report: Report, counts: dict[str, int],
    ) -> tuple[int, bytes, str] | None:
        """The common object, fast: at most one box and polygons, to ``instances``; None for any other.

        Returns (id, record, label): exactly what :meth:`_object` spools for it (never used with
        ``--segmentation-mode mask``). ``counts`` gets the annotations written, per kind.
        """
        box: Any = None
        first = members[0]
        if len(members) == 1:
            cls = type(first)
            if cls is Bbox:
                box = first
                segmentation = []
            elif cls is Polygon:
                segmentation = [first.points]  # type: ignore[attr-defined]
            else:
                return None
            attributes = first.attributes
            tag = attributes.get(TASK_ATTR)
            attributes = dict(attributes)
            ann_id = first.id
        elif len(members) == 2 and {type(first), type(members[1])} == {Bbox, Polygon}:  # a box and its polygon
            polygon: Any
            box, polygon = (first, members[1]) if type(first) is Bbox else (members[1], first)
            tag = first.attributes.get(TASK_ATTR) or members[1].attributes.get(TASK_ATTR)
            attributes = dict(box.attributes)
            if not polygon.attributes.keys() <= attributes.keys():
                for key, value in polygon.attributes.items():
                    attributes.setdefault(key, value)
            segmentation = [polygon.points]
            ann_id = polygon.id or box.id
        else:
            polygons: list[Any] = []
            tag = None
            for ann in members:
                cls = type(ann)
                if cls is Bbox:
                    if box is not None:
                        return None
                    box = ann
                elif cls is Polygon:
                    polygons.append(ann)
                else:
                    return None
                if not tag:
                    tag = ann.attributes.get(TASK_ATTR)
            attributes = dict(box.attributes if box is not None else first.attributes)  # box first, as _instance
            keys = attributes.keys()
            for polygon in polygons:
                if not polygon.attributes.keys() <= keys:
                    for key, value in polygon.attributes.items():
                        attributes.setdefault(key, value)
            segmentation = [polygon.points for polygon in polygons]
            ann_id = next((polygon.id for polygon in polygons if polygon.id), 0) or (box.id if box is not None else 0)
        label: str = first.label  # type: ignore[attr-defined]  # every member has it (see _annotations)
        bbox = [box.x, box.y, box.w, box.h] if box is not None else None
        spooled = self._plain_bytes(ann_id, label, tag, attributes, bbox, segmentation, size, report)
        if spooled is not None:
            for ann in members:
                counts[ann.kind] = counts.get(ann.kind, 0) + 1
        return spooled

    def _plain_bytes(
        self, ann_id: int, label: str, tag: Any, attributes: dict[str, Any], bbox: list[Any] | None,
        segmentation: list[Any], size: tuple[int, int] | None, report: Report, rle: Rle | None = None,
    ) -> tuple[int, bytes, str] | None:
        """The spooled ``(id, record, label)`` of a plain object (``attributes`` is consumed); None when it is
        not written to ``instances`` or is not JSON.

        A plain object is a box and polygons (``segmentation``), or a box and one RLE mask (``rle``, written as
        :meth:`_instance` writes it with ``--segmentation-mode guess``).
        """
        if (tag or self.tasks) and self._routes(tag or None, False, True) != (INSTANCES, False):
            return None
        if bbox is None:
            bbox = geometry.polygons_bbox(segmentation) if rle is None else geometry.rle_bbox(geometry.to_coco_rle(rle))
        area = attributes.pop(AREA_ATTR, None)
        if area.__class__ is not float and area.__class__ is not int and (area := _area(area)) is None:
            if rle is not None:
                area = geometry.rle_area(geometry.to_coco_rle(rle))
            else:
                area = geometry.polygons_area(segmentation, size) if segmentation else bbox[2] * bbox[3]
        crowd = attributes.pop(CROWD_ATTR, None)
        record: dict[str, Any] = {
            "category_id": self.categories.ids.get(label) or self.categories.id_of(label, report),
            "segmentation": segmentation if rle is None else _rle_json(rle),
            "area": area,
            "bbox": bbox,
            "iscrowd": _crowd(crowd, int(rle is not None)),
        }
        if attributes:  # as _extras, without its per-value JSON check (the dump below fails instead)
            attributes.pop(TASK_ATTR, None)
            if SCORE_ATTR in attributes:
                record["score"] = attributes.pop(SCORE_ATTR)
            if self.top_keys:
                nested = {}
                for key, value in attributes.items():
                    if key in self.top_keys:
                        record[key] = value
                    else:
                        nested[key] = value
                attributes = nested
            if attributes:
                record["attributes"] = attributes
        try:
            data = orjson.dumps(record)
        except TypeError:  # an attribute that is not JSON: the general path drops it and counts it
            return None
        return (0 if self.reindex else ann_id), data, label

    def _object(
        self, members: list[Annotation], subset: SubsetSpool, index: int, size: tuple[int, int] | None,
        report: Report,
    ) -> None:
        shapes = [a for a in members if isinstance(a, _SHAPES)]
        points = [a for a in members if isinstance(a, Points)]
        tag = next((a.attributes.get(TASK_ATTR) for a in shapes if a.attributes.get(TASK_ATTR)), None)
        shape_task, keypoints = self._routes(tag, bool(points), bool(shapes))
        if shape_task is None and not keypoints:
            for ann in members:
                report.drop(ann.kind, f"coco: no task among --tasks {','.join(self.tasks)} holds it")
            return
        ann_id: int | None = None
        records: list[tuple[str, bytes, tuple[str, ...]]] = []
        if shape_task is not None:
            mode = "mask" if shape_task == STUFF else self.mode
            ann_id, record, label = self._instance(shapes, [], mode, size, report)
            records.append((shape_task, orjson.dumps(record), (label,) if label is not None else ()))
            for ann in shapes:
                report.wrote_annotation(ann.kind)
        if keypoints:  # an object in two files gets one id in both (the shapes' id first)
            own_id, record, label = self._instance(shapes, points, self.mode, size, report)
            ann_id = own_id if ann_id is None else ann_id
            records.append((PERSON_KEYPOINTS, orjson.dumps(record), (label,) if label is not None else ()))
            report.wrote_annotation("points", len(points))
            if shape_task is None:
                for ann in shapes:
                    report.wrote_annotation(ann.kind)
        subset.add_object(index, ann_id, records)
        if not keypoints and points:
            report.drop("points", f"coco: person_keypoints is not among --tasks {','.join(self.tasks)}", len(points))

    # -- records

    def _extras(self, attributes: dict[str, Any], report: Report) -> dict[str, Any]:
        """``score``, kept top-level keys and the ``attributes`` dict, from annotation attributes."""
        attributes.pop(TASK_ATTR, None)
        out: dict[str, Any] = {}
        if SCORE_ATTR in attributes:
            out["score"] = attributes.pop(SCORE_ATTR)
        nested: dict[str, Any] = {}
        for key, value in attributes.items():
            if not _json_safe(value):
                report.drop("attribute", "not JSON-serialisable")
            elif key in self.top_keys:
                out[key] = value
            else:
                nested[key] = value
        if nested:
            out["attributes"] = nested
        return out

    def _instance(
        self, shapes: Sequence[Annotation], points: Sequence[Points], mode: str, size: tuple[int, int] | None,
        report: Report,
    ) -> tuple[int, dict[str, Any], str | None]:
        bboxes = [a for a in shapes if isinstance(a, Bbox)]
        polygons = [a for a in shapes if isinstance(a, Polygon)]
        masks = [a for a in shapes if isinstance(a, Mask)]
        ordered = [*masks, *polygons, *bboxes, *points]
        ann_id = 0 if self.reindex else next((a.id for a in ordered if a.id), 0)
        label = next((a.label for a in [*points, *ordered] if a.label is not None), None)  # type: ignore[attr-defined]
        attributes: dict[str, Any] = {}
        for ann in [*bboxes, *polygons, *masks, *points]:
            for key, value in ann.attributes.items():
                attributes.setdefault(key, value)

        segmentation, coco_rle = self._segmentation(polygons, masks, mode, size, bboxes, report)
        if bboxes:
            xs = [b.x for b in bboxes] + [b.x + b.w for b in bboxes]
            ys = [b.y for b in bboxes] + [b.y + b.h for b in bboxes]
            bbox = [bboxes[0].x, bboxes[0].y, bboxes[0].w, bboxes[0].h] if len(bboxes) == 1 else [
                min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        elif coco_rle is not None:
            bbox = geometry.rle_bbox(coco_rle)
        elif segmentation:
            bbox = geometry.polygons_bbox(segmentation)
        elif points:
            visible = [(p.points[2 * k], p.points[2 * k + 1]) for p in points for k, v in enumerate(p.visibility) if v]
            xs, ys = [x for x, _ in visible] or [0], [y for _, y in visible] or [0]
            bbox = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
        else:
            bbox = []
        area = _area(attributes.pop(AREA_ATTR, None))
        if area is None:
            if coco_rle is not None:
                area = geometry.rle_area(coco_rle)
            elif segmentation:
                area = geometry.polygons_area(segmentation, size)
            else:
                area = bbox[2] * bbox[3] if bbox else 0
        crowd = attributes.pop(CROWD_ATTR, None)
        iscrowd = _crowd(crowd, int(coco_rle is not None))
        record: dict[str, Any] = {
            "category_id": self.categories.id_of(label, report),
            "segmentation": segmentation,
            "area": area,
            "bbox": bbox,
            "iscrowd": iscrowd,
        }
        if points:
            flat: list[Any] = []
            for p in points:
                for k, v in enumerate(p.visibility):
                    flat += [p.points[2 * k], p.points[2 * k + 1], v]
            record["keypoints"] = flat
            record["num_keypoints"] = sum(1 for p in points for v in p.visibility if v > 0)
        record.update(self._extras(attributes, report))
        return ann_id, record, label

    def _segmentation(
        self, polygons: list[Polygon], masks: list[Mask], mode: str, size: tuple[int, int] | None,
        bboxes: list[Bbox], report: Report,
    ) -> tuple[Any, Any]:
        """(the JSON ``segmentation``, its pycocotools RLE when it is one)."""
        if not polygons and not masks:
            return [], None
        use_mask = mode == "mask" or (mode == "guess" and bool(masks))
        if not use_mask:
            parts = [list(p.points) for p in polygons]
            for mask in masks:
                parts += geometry.mask_to_polygons(mask.to_bitmap())
            return parts, None
        if len(masks) == 1 and not polygons and masks[0].rle is not None:
            rle = masks[0].rle
            return _rle_json(rle), geometry.to_coco_rle(rle)
        bitmaps = [m.to_bitmap() for m in masks]
        if bitmaps:
            height, width = bitmaps[0].shape
        elif size is not None:
            width, height = size
        else:
            coords = [v for p in polygons for v in p.points] + [v for b in bboxes for v in b.xyxy]
            width = int(max(coords[0::2]) + 1)
            height = int(max(coords[1::2]) + 1)
            report.warn("image size unknown: polygons rasterised on a canvas guessed from their extent")
        import numpy as np

        merged = np.zeros((height, width), dtype=bool)
        if polygons:
            merged |= geometry.polygons_bitmap([p.points for p in polygons], height, width)
        for bitmap in bitmaps:
            if bitmap.shape != merged.shape:
                raise DatasetError(f"masks of one object differ in size: {bitmap.shape} vs {merged.shape}")
            merged |= bitmap
        rle = geometry.bitmap_to_counts(merged)
        return {"size": [height, width], "counts": rle}, geometry.bitmap_rle(merged)

    def _panoptic(self, item: Item, masks: list[Mask], subset: SubsetSpool, index: int, report: Report) -> None:
        import numpy as np

        from dsformats.imaging import encode

        ids: Any = None
        used: set[int] = set()
        segments = []
        for mask in masks:
            bitmap = mask.to_bitmap()
            if ids is None:
                ids = np.zeros(bitmap.shape, dtype=np.uint32)
            if bitmap.shape != ids.shape:
                report.drop("mask", "panoptic: mask size differs from the item's other masks")
                continue
            seg_id = mask.id if mask.id > 0 and mask.id not in used and mask.id < 1 << 24 else 0
            if not seg_id:
                seg_id = max(used | {0}) + 1
            used.add(seg_id)
            ids[bitmap] = seg_id
            segments.append((seg_id, mask))
        if ids is None:
            return
        infos = []
        for seg_id, mask in segments:
            attributes = dict(mask.attributes)
            isthing = attributes.pop(ISTHING_ATTR, None)
            if mask.label is not None and isthing is not None:
                self.isthing.setdefault(mask.label, isthing)
            pixels = ids == seg_id
            area = _area(attributes.pop(AREA_ATTR, None))
            bbox = attributes.pop(BBOX_ATTR, None)
            if area is None:
                area = int(pixels.sum())
            if not isinstance(bbox, list):
                bbox = geometry.rle_bbox(geometry.bitmap_rle(pixels))
            crowd = attributes.pop(CROWD_ATTR, False)
            info = {
                "id": seg_id,
                "category_id": self.categories.id_of(mask.label, report),
                "area": area,
                "bbox": bbox,
                "iscrowd": _crowd(crowd, 0),
                **self._extras(attributes, report),
            }
            infos.append(info)
            report.wrote_annotation("mask")
        png_name = safe_relative(item.id + PANOPTIC_SUFFIX, location=f"item {item.id!r}")
        self._check_case(f"{ANNOTATIONS_DIR}/{file_stem(PANOPTIC, item.subset)}", png_name, report)
        target = self.root / ANNOTATIONS_DIR / f"{file_stem(PANOPTIC, item.subset)}" / png_name
        target.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image

        rgb = np.stack([ids & 0xFF, (ids >> 8) & 0xFF, (ids >> 16) & 0xFF], axis=-1).astype(np.uint8)
        target.write_bytes(encode(Image.fromarray(rgb, "RGB"), PANOPTIC_SUFFIX))
        record = {"file_name": png_name, "segments_info": infos}
        labels = [mask.label for _, mask in segments if mask.label is not None]
        subset.add_object(index, None, [(PANOPTIC, orjson.dumps(record), labels)])
