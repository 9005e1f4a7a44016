"""Write COCO task files, streaming: per-task records are spooled as JSON lines, files assembled at the end.

Why spool: ``images`` must be repeated in every task file of a subset and generated ids must avoid every
explicit id, which is known only after the last item. Holding records in memory would grow with the
dataset; JSON lines in a scratch folder of the staging directory keep memory to a few integers per image
and annotation (the sets of ids in use). The scratch folder is deleted before the writer returns.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from dsformats import Annotation, Bbox, Caption, DatasetError, Header, Item, Label, Mask, Points, Polygon, Report
from dsformats.fileaccess import safe_relative
from dsformats.imaging import write_image
from dsformats.policy import bad_item

from .schema import (
    ANNOTATIONS_DIR,
    AREA_ATTR,
    BBOX_ATTR,
    CAPTIONS,
    CATEGORY_TASKS,
    CROWD_ATTR,
    DEFAULT_IMAGE_EXT,
    DEFAULT_INFO,
    DEFAULT_LICENSES,
    IMAGE_DEFAULTS,
    IMAGE_ID_ATTR,
    IMAGE_INFO,
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
    TASKS,
    file_stem,
)


class _LazyGeometry:
    """``geometry`` imported on first use: it loads numpy and pycocotools, which box-only data never needs."""

    def __getattr__(self, name: str) -> Any:
        from . import geometry as module

        return getattr(module, name)


geometry = _LazyGeometry()

_SPOOL = ".coco-spool"
_SHAPES = (Bbox, Polygon, Mask)



def _explicit_id(value: Any) -> int:
    """A positive int id from an attribute value (``5`` or ``"5"``), else 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value if value > 0 else 0
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


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
        return self.ids[label]


class _TaskSpool:
    """One task file of one subset being written: its annotation records and ids in use."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream: IO[bytes] = open(path, "wb")  # noqa: SIM115 - closed in _finish
        self.used: set[int] = set()
        self.labels: dict[str, None] = {}
        self.count = 0

    def add(self, image_index: int, ann_id: int | None, record: dict[str, Any], label: str | None) -> None:
        """Spool a record; a missing or taken id is 0 (assigned at the end), a negative id is a link token."""
        if ann_id is not None and ann_id >= 0:
            if ann_id in self.used or ann_id == 0:
                ann_id = 0
            else:
                self.used.add(ann_id)
        if label is not None:
            self.labels[label] = None
        self.stream.write(orjson.dumps([image_index, ann_id, record]) + b"\n")
        self.count += 1


class _SubsetSpool:
    def __init__(self, scratch: Path, index: int) -> None:
        self.scratch = scratch
        self.index = index
        self.images = open(scratch / f"{index}-images.jsonl", "wb")  # noqa: SIM115 - closed in _finish
        self.explicit: set[int] = set()
        self.count = 0
        self.tasks: dict[str, _TaskSpool] = {}
        self.linked: dict[int, int] = {}  # link token -> the id given to every record carrying it
        self.tokens = 0

    def task(self, name: str) -> _TaskSpool:
        if name not in self.tasks:
            self.tasks[name] = _TaskSpool(self.scratch / f"{self.index}-{name}.jsonl")
        return self.tasks[name]

    def link(self, ann_id: int, tasks: Sequence[str]) -> int:
        """An id for one object written to several task files: ``ann_id`` when free in all, else a token.

        A token (negative) becomes, at the end, the same fresh id in every file, so the object reads back once.
        """
        spools = [self.task(name) for name in tasks]
        if ann_id > 0 and all(ann_id not in spool.used for spool in spools):
            return ann_id  # each file's add() then takes it
        self.tokens -= 1
        return self.tokens

    def resolve(self, token: int) -> int:
        """The id of a link token: the lowest id free in every task file of this subset."""
        if token not in self.linked:
            taken = set().union(*(spool.used for spool in self.tasks.values()))
            self.linked[token] = next(n for n in itertools.count(1) if n not in taken)
            for spool in self.tasks.values():
                spool.used.add(self.linked[token])
        return self.linked[token]


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
    ) -> None:
        self.root = Path(path)
        self.save_images = save_images
        self.image_ext = image_ext  # normalised and checked by the IMAGE_EXT option
        self.tasks = tuple(tasks)
        self.mode = segmentation_mode
        self.reindex = reindex

    def __enter__(self) -> CocoWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for subset in getattr(self, "_subsets", {}).values():
            subset.images.close()
            for task in subset.tasks.values():
                task.stream.close()
        shutil.rmtree(self.root / _SPOOL, ignore_errors=True)

    # -- items

    def write(self, header: Header, items: Iterable[Item], report: Report) -> None:
        """Spool every item's records, then assemble the task files."""
        self.header = header
        self.info = dict(header.infos.get(INFO_KEY) or {})
        self.top_keys = set(self.info.get("annotation_keys") or ())
        self.categories = _Categories(header)
        self.isthing: dict[str, Any] = dict(self.info.get("isthing") or {})
        (self.root / ANNOTATIONS_DIR).mkdir(parents=True, exist_ok=True)
        scratch = self.root / _SPOOL
        scratch.mkdir()
        self._subsets: dict[str, _SubsetSpool] = {}
        self._folded: dict[str, str] = {}
        for subset_name in header.subsets or ():
            (self.root / IMAGES_DIR / subset_name).mkdir(parents=True, exist_ok=True)
        for item in items:
            self._write_item(item, report)
        if not self._subsets:
            (self.root / IMAGES_DIR).mkdir(exist_ok=True)
        for name, subset in self._subsets.items():
            self._finish(name, subset, report)

    def _subset(self, name: str) -> _SubsetSpool:
        if name not in self._subsets:
            safe_relative(name, location=f"subset {name!r}")
            (self.root / IMAGES_DIR / name).mkdir(parents=True, exist_ok=True)
            self._subsets[name] = _SubsetSpool(self.root / _SPOOL, len(self._subsets))
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

    def _write_item(self, item: Item, report: Report) -> None:
        subset = self._subset(item.subset)
        ext = self.image_ext or (item.media.suffix if item.media is not None else "") or DEFAULT_IMAGE_EXT
        file_name = safe_relative(item.id + ext, location=f"item {item.id!r}")
        if self.save_images and item.media is not None:
            self._check_case(item.subset, file_name, report)
            target = self.root / IMAGES_DIR / item.subset / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with open(target, "wb") as stream:
                    reencoded = write_image(item.media, stream, ext)
            except DatasetError as exc:  # a missing or undecodable image: skip the item under the policy
                target.unlink(missing_ok=True)
                bad_item(exc)
                return
            report.wrote_media(reencoded)
        size = self._size(item, report)
        explicit = 0 if self.reindex else _explicit_id(item.attributes.get(IMAGE_ID_ATTR))
        if explicit in subset.explicit:
            explicit = 0
        elif explicit:
            subset.explicit.add(explicit)
        width, height = size or (0, 0)
        record: dict[str, Any] = {"width": width, "height": height, "file_name": file_name, **IMAGE_DEFAULTS}
        for key, value in item.attributes.items():
            if key == IMAGE_ID_ATTR or key in ("width", "height", "file_name"):
                continue
            if _json_safe(value):
                record[key] = value
            else:
                report.drop("item attribute", "not JSON-serialisable")
        index = subset.count
        subset.images.write(orjson.dumps([explicit, record]) + b"\n")
        subset.count += 1
        self._annotations(item, subset, index, size, report)
        report.wrote_item(item.subset)

    def _check_case(self, folder: str, name: str, report: Report) -> None:
        """Warn when ``folder/name`` differs from an earlier file only in case (they collide on some systems)."""
        path = f"{folder}/{name}"
        first = self._folded.setdefault(path.casefold(), path)
        if first != path:
            report.warn(
                f"files {first!r} and {path!r} differ only in case; they collide on a case-insensitive file system"
            )

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
        self, item: Item, subset: _SubsetSpool, index: int, size: tuple[int, int] | None, report: Report
    ) -> None:
        groups: dict[tuple[Any, ...], list[Annotation]] = {}
        panoptic: list[Mask] = []
        for position, ann in enumerate(item.annotations):
            if isinstance(ann, Caption):
                if self._simple_task(CAPTIONS, "caption", report):
                    record = {"category_id": 0, "caption": ann.caption, **self._extras(dict(ann.attributes), report)}
                    subset.task(CAPTIONS).add(index, 0 if self.reindex else ann.id, record, None)
                    report.wrote_annotation("caption")
            elif isinstance(ann, Label):
                if self._simple_task(LABELS, "label", report):
                    cid = self.categories.id_of(ann.label, report)
                    record = {"category_id": cid, **self._extras(dict(ann.attributes), report)}
                    subset.task(LABELS).add(index, 0 if self.reindex else ann.id, record, ann.label)
                    report.wrote_annotation("label")
            elif self._panoptic_mask(ann):
                assert isinstance(ann, Mask)
                panoptic.append(ann)
            elif isinstance(ann, (*_SHAPES, Points)) and getattr(ann, "label", None) is None:
                report.drop(ann.kind, "coco annotations need a category (this one has no label)")
            elif isinstance(ann, (*_SHAPES, Points)):
                # One COCO object = the shapes of one group *and label* (VOC groups a person's parts, which
                # carry other labels, with it: those stay separate objects). A COCO object has one box, so a
                # second box of the same group and label starts an object of its own.
                label = getattr(ann, "label", None)
                key: tuple[Any, ...] = ("group", ann.group, label) if ann.group else ("single", position)
                if isinstance(ann, Bbox) and any(isinstance(a, Bbox) for a in groups.get(key, ())):
                    key = ("single", position)
                groups.setdefault(key, []).append(ann)
            else:
                report.drop(ann.kind, f"coco cannot store {ann.kind} annotations")
        for members in groups.values():
            self._object(members, subset, index, size, report)
        if panoptic:
            self._panoptic(item, panoptic, subset, index, report)

    def _object(
        self, members: list[Annotation], subset: _SubsetSpool, index: int, size: tuple[int, int] | None,
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
        link: int | None = None
        if shape_task is not None:
            mode = "mask" if shape_task == STUFF else self.mode
            ann_id, record, label = self._instance(shapes, [], mode, size, report)
            if keypoints:  # the same object goes to two files: give it the same id in both
                link = ann_id = subset.link(ann_id, [shape_task, PERSON_KEYPOINTS])
            subset.task(shape_task).add(index, ann_id, record, label)
            for ann in shapes:
                report.wrote_annotation(ann.kind)
        if keypoints:
            ann_id, record, label = self._instance(shapes, points, self.mode, size, report)
            subset.task(PERSON_KEYPOINTS).add(index, ann_id if link is None else link, record, label)
            report.wrote_annotation("points", len(points))
            if shape_task is None:
                for ann in shapes:
                    report.wrote_annotation(ann.kind)
        elif points:
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
        area = attributes.pop(AREA_ATTR, None)
        if isinstance(area, bool) or not isinstance(area, int | float):
            if coco_rle is not None:
                area = geometry.rle_area(coco_rle)
            elif segmentation:
                area = geometry.polygons_area(segmentation, size)
            else:
                area = bbox[2] * bbox[3] if bbox else 0
        crowd = attributes.pop(CROWD_ATTR, None)
        iscrowd = int(bool(crowd)) if crowd is not None else int(coco_rle is not None)
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
            return geometry.rle_json(rle), geometry.to_coco_rle(rle)
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

    def _panoptic(self, item: Item, masks: list[Mask], subset: _SubsetSpool, index: int, report: Report) -> None:
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
            area = attributes.pop(AREA_ATTR, None)
            bbox = attributes.pop(BBOX_ATTR, None)
            if not isinstance(area, int | float) or isinstance(area, bool):
                area = int(pixels.sum())
            if not isinstance(bbox, list):
                bbox = geometry.rle_bbox(geometry.bitmap_rle(pixels))
            crowd = attributes.pop(CROWD_ATTR, False)
            info = {
                "id": seg_id,
                "category_id": self.categories.id_of(mask.label, report),
                "area": area,
                "bbox": bbox,
                "iscrowd": int(bool(crowd)),
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
        subset.task(PANOPTIC).add(index, None, record, None)
        for _, mask in segments:
            if mask.label is not None:
                subset.task(PANOPTIC).labels[mask.label] = None

    # -- files

    def _finish(self, name: str, subset: _SubsetSpool, report: Report) -> None:
        subset.images.close()
        for spool in subset.tasks.values():
            spool.stream.close()
        if self.tasks:
            tasks = list(self.tasks)
        else:
            source = (self.info.get("tasks") or {}).get(name) or []
            present = [t for t in TASKS if t in subset.tasks or t in source]
            tasks = present or [IMAGE_INFO]
        image_ids = self._images_part(subset)
        for task in tasks:
            self._write_file(name, task, subset, image_ids)

    def _images_part(self, subset: _SubsetSpool) -> list[int]:
        ids: list[int] = []
        next_id = 1
        part = subset.scratch / f"{subset.index}-images.part"
        with open(subset.scratch / f"{subset.index}-images.jsonl", "rb") as lines, open(part, "wb") as out:
            for n, line in enumerate(lines):
                explicit, record = orjson.loads(line)
                image_id = explicit
                if not image_id:
                    while next_id in subset.explicit:
                        next_id += 1
                    image_id = next_id
                    next_id += 1
                ids.append(image_id)
                out.write((b",\n" if n else b"\n") + orjson.dumps({"id": image_id, **record}))
        return ids

    def _category_records(self, task: str, stem: str, spool: _TaskSpool | None) -> list[dict[str, Any]]:
        if task not in CATEGORY_TASKS:
            return []
        known = (self.info.get("files") or {}).get(stem, {}).get("categories")
        names = list(known) if known is not None else list(self.categories.ids)
        if spool is not None:
            names += [n for n in spool.labels if n not in names]
        zero_based = set(self.info.get("zero_based_skeleton") or ())
        records = []
        for label in names:
            if label not in self.categories.ids:
                continue
            definition = self.categories.labels.get(label)
            record: dict[str, Any] = {
                "id": self.categories.ids[label],
                "name": label,
                "supercategory": definition.parent if definition is not None else "",
            }
            extras = (self.info.get("category_extras") or {}).get(label)
            if extras:
                record.update({k: v for k, v in extras.items() if k not in record})
            if task == PANOPTIC:
                record["isthing"] = self.isthing.get(label, 0)
            if task == PERSON_KEYPOINTS:
                schema = self.keypoint_schema(label)
                shift = 0 if label in zero_based else 1
                record["keypoints"] = list(schema.names) if schema else []
                record["skeleton"] = [[a + shift, b + shift] for a, b in schema.skeleton] if schema else []
            records.append(record)
        return records

    def keypoint_schema(self, label: str) -> Any:
        return self.categories.keypoints.get(label)

    def _write_file(self, subset_name: str, task: str, subset: _SubsetSpool, image_ids: list[int]) -> None:
        stem = file_stem(task, subset_name)
        kept = (self.info.get("files") or {}).get(stem, {})
        spool = subset.tasks.get(task)
        head = {
            "licenses": kept.get("licenses", DEFAULT_LICENSES),
            "info": kept.get("info", DEFAULT_INFO),
            "categories": self._category_records(task, stem, spool),
        }
        target = self.root / ANNOTATIONS_DIR / f"{stem}.json"
        with open(target, "wb") as out:
            out.write(b"{")
            for key, value in head.items():
                out.write(orjson.dumps(key) + b":" + orjson.dumps(value) + b",\n")
            out.write(b'"images":[')
            with open(subset.scratch / f"{subset.index}-images.part", "rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
            out.write(b'\n],\n"annotations":[')
            if spool is not None:
                self._write_annotations(spool, subset, image_ids, out)
            out.write(b"\n]")
            for key, value in (kept.get("extra") or {}).items():
                out.write(b",\n" + orjson.dumps(key) + b":" + orjson.dumps(value))
            out.write(b"}\n")

    def _write_annotations(
        self, spool: _TaskSpool, subset: _SubsetSpool, image_ids: list[int], out: IO[bytes]
    ) -> None:
        next_id = 1
        with open(spool.path, "rb") as lines:
            for n, line in enumerate(lines):
                image_index, ann_id, record = orjson.loads(line)
                head: dict[str, Any] = {}
                if ann_id is not None:
                    if ann_id < 0:
                        ann_id = subset.resolve(ann_id)
                    elif not ann_id:
                        while next_id in spool.used:
                            next_id += 1
                        ann_id = next_id
                        spool.used.add(ann_id)
                    head["id"] = ann_id
                head["image_id"] = image_ids[image_index]
                out.write((b",\n" if n else b"\n") + orjson.dumps({**head, **record}))
