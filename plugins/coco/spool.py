"""The COCO writer's scratch spool, and the assembly of the task files of a subset from it.

Why spool: ``images`` is repeated in every task file of a subset, and a generated id must avoid every
explicit id, which is known only after the last item. The writer therefore appends compact JSON records to
two files per subset, in item order, and the files are assembled at the end:

- images: ``<explicit id> <record>`` (0: none);
- annotations of every task: ``<image index> <id> <object> <task> <record>``, where ``<id>`` is the id the
  data gave (``-`` for a record without one) and ``<object>`` numbers the records of one object written to
  several task files (0: a single record), which must share one id.

Ids are decided only at assembly, from every line in order: an id is kept where it is the first use of
that id in its task file (for a shared object: in all of its files), other records get the lowest free
ids. So the spools of the shards of a scale-out conversion, assembled one after the other, give exactly
the files that one writer given every item would have written. Memory holds only the sets of ids in use.
"""

from __future__ import annotations

import shutil
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from .schema import (
    ANNOTATIONS_DIR,
    CATEGORY_TASKS,
    DEFAULT_INFO,
    DEFAULT_LICENSES,
    IMAGE_INFO,
    PANOPTIC,
    PERSON_KEYPOINTS,
    TASKS,
    file_stem,
)

NO_ID = b"-"


@attrs.define
class Catalog:
    """What the heads of the task files are built from: the source's COCO info and the categories.

    Plain JSON data, so that a partial output can carry it to the merge.
    """

    tasks: list[str]  # --tasks
    info: dict[str, Any]  # the reader's COCO info block (kept files, tasks per subset, category extras...)
    ids: dict[str, int]  # label -> category id, in category order
    parents: dict[str, str | None]  # label -> supercategory
    keypoints: dict[str, list[Any]]  # label -> [keypoint names, skeleton pairs]
    isthing: dict[str, Any]  # label -> panoptic isthing, first seen first

    def subset_tasks(self, subset: str, present: Iterable[str]) -> list[str]:
        """The task files of ``subset``: --tasks, else the source's and those the data has, else image_info."""
        if self.tasks:
            return list(self.tasks)
        source = (self.info.get("tasks") or {}).get(subset) or []
        found = set(present) | set(source)
        return [t for t in TASKS if t in found] or [IMAGE_INFO]

    def head(self, task: str, stem: str, labels: Iterable[str]) -> dict[str, Any]:
        """``licenses``, ``info`` and ``categories`` of one task file; ``labels``: those its records use."""
        kept = (self.info.get("files") or {}).get(stem, {})
        return {
            "licenses": kept.get("licenses", DEFAULT_LICENSES),
            "info": kept.get("info", DEFAULT_INFO),
            "categories": self._categories(task, kept.get("categories"), labels),
        }

    def _categories(self, task: str, known: list[str] | None, labels: Iterable[str]) -> list[dict[str, Any]]:
        if task not in CATEGORY_TASKS:
            return []
        names = list(known) if known is not None else list(self.ids)
        names += [n for n in labels if n not in names]
        zero_based = set(self.info.get("zero_based_skeleton") or ())
        extras = self.info.get("category_extras") or {}
        records = []
        for label in names:
            if label not in self.ids:
                continue
            parent = self.parents.get(label, "")
            record: dict[str, Any] = {"id": self.ids[label], "name": label, "supercategory": parent}
            if extras.get(label):
                record.update({k: v for k, v in extras[label].items() if k not in record})
            if task == PANOPTIC:
                record["isthing"] = self.isthing.get(label, 0)
            if task == PERSON_KEYPOINTS:
                names_, skeleton = self.keypoints.get(label) or ([], [])
                shift = 0 if label in zero_based else 1
                record["keypoints"] = list(names_)
                record["skeleton"] = [[a + shift, b + shift] for a, b in skeleton]
            records.append(record)
        return records


class SubsetSpool:
    """The spool of one subset being written (see the module docstring for the line formats)."""

    def __init__(self, folder: Path, index: int) -> None:
        self.index = index
        self.source = SpoolSource(folder / f"{index}-images", folder / f"{index}-annotations", 0)
        self.images: IO[bytes] = open(self.source.images, "wb")  # noqa: SIM115 - closed by close()
        self.annotations: IO[bytes] = open(self.source.annotations, "wb")  # noqa: SIM115 - closed by close()
        self.explicit: set[int] = set()
        self.labels: dict[str, dict[str, None]] = {}  # task -> labels its records use, first use first
        self.objects = 0

    def add_image(self, explicit: int, record: bytes) -> int:
        """Spool an image record (``explicit``: its id, 0 for none); return its index in the subset."""
        if explicit:
            self.explicit.add(explicit)
        self.images.write(b"%d %s\n" % (explicit, record))
        self.source.count += 1
        return self.source.count - 1

    def add_object(self, image: int, ann_id: int | None, records: Sequence[tuple[str, bytes, Iterable[str]]]) -> None:
        """Spool the records ``(task, record, labels)`` of one object, which share one id (None: no id)."""
        link = 0
        if len(records) > 1:
            self.objects += 1
            link = self.objects
        raw = NO_ID if ann_id is None else b"%d" % ann_id
        for task, record, labels in records:
            used = self.labels.setdefault(task, {})
            used.update(dict.fromkeys(labels))
            self.annotations.write(b"%d %s %d %s %s\n" % (image, raw, link, task.encode(), record))

    def close(self) -> None:
        self.images.close()
        self.annotations.close()

    def state(self) -> dict[str, Any]:
        """This spool as JSON data, for a partial output."""
        return {"index": self.index, "count": self.source.count, "explicit": sorted(self.explicit),
                "labels": {task: list(labels) for task, labels in self.labels.items()}}


@attrs.define
class SpoolSource:
    """The two spool files of a subset and its number of images."""

    images: Path
    annotations: Path
    count: int


def assemble(
    root: Path, subset: str, sources: Sequence[SpoolSource], explicit: set[int], labels: dict[str, dict[str, None]],
    catalog: Catalog, scratch: Path,
) -> None:
    """Write every task file of ``subset`` under ``root`` from ``sources``, read one after the other.

    ``explicit`` holds every explicit image id of the sources; ``labels`` the labels each task uses.
    """
    image_ids = _images_array(sources, explicit, scratch / "images.part")
    resolved, used = _claim(sources, scratch)
    ids = _AnnotationIds(used)
    for task in catalog.subset_tasks(subset, labels):
        stem = file_stem(task, subset)
        with open(root / ANNOTATIONS_DIR / f"{stem}.json", "wb") as out:
            out.write(b"{")
            for key, value in catalog.head(task, stem, labels.get(task, ())).items():
                out.write(orjson.dumps(key) + b":" + orjson.dumps(value) + b",\n")
            out.write(b'"images":[')
            with open(scratch / "images.part", "rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
            out.write(b'\n],\n"annotations":[')
            if task in resolved:
                ids.write(task, resolved[task], image_ids, out)
            out.write(b"\n]")
            extra = ((catalog.info.get("files") or {}).get(stem) or {}).get("extra") or {}
            for key, value in extra.items():
                out.write(b",\n" + orjson.dumps(key) + b":" + orjson.dumps(value))
            out.write(b"}\n")


def _lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as lines:
        yield from lines


def _images_array(sources: Sequence[SpoolSource], explicit: set[int], part: Path) -> array[int]:
    """Write the ``images`` array into ``part``; return the image ids in order.

    An explicit id is kept at its first use; images without one, or repeating one, get the lowest ids
    that no explicit id takes.
    """
    ids: array[int] = array("q")
    seen: set[int] = set()
    next_id = 1
    with open(part, "wb") as out:
        for source in sources:
            for line in _lines(source.images):
                number, record = line.split(b" ", 1)
                image_id = int(number)
                if not image_id or image_id in seen:
                    while next_id in explicit:
                        next_id += 1
                    image_id = next_id
                    next_id += 1
                else:
                    seen.add(image_id)
                out.write((b",\n" if ids else b"\n") + b'{"id":%d,' % image_id + record[1:-1])
                ids.append(image_id)
    return ids


def _claim(sources: Sequence[SpoolSource], scratch: Path) -> tuple[dict[str, Path], dict[str, set[int]]]:
    """Decide which records keep their id; split the records into one file per task.

    A line of a task file is ``<image index> <id> <record>``, where ``<id>`` is the kept id, 0 for a
    fresh id, a negative number for a fresh id shared by the records of one object, or ``-``.
    """
    used: dict[str, set[int]] = {}
    files: dict[str, IO[bytes]] = {}
    tokens = 0
    offset = 0

    def flush(group: list[tuple[bytes, bytes, bytes]], raw: bytes) -> None:
        nonlocal tokens
        tasks = [task for _, task, _ in group]
        taken = [used.setdefault(task.decode(), set()) for task in tasks]
        if raw == NO_ID:
            decided = NO_ID
        else:
            ann_id = int(raw)
            if ann_id > 0 and all(ann_id not in ids for ids in taken):
                for ids in taken:
                    ids.add(ann_id)
                decided = raw
            elif len(group) > 1:
                tokens -= 1
                decided = b"%d" % tokens
            else:
                decided = b"0"
        for image, task, record in group:
            name = task.decode()
            if name not in files:
                files[name] = open(scratch / f"{name}.part", "wb")  # noqa: SIM115 - closed below
            files[name].write(b"%d %s %s" % (int(image) + offset, decided, record))

    try:
        for source in sources:
            group: list[tuple[bytes, bytes, bytes]] = []
            group_key: tuple[bytes, bytes] = (b"0", b"")
            for line in _lines(source.annotations):
                image, raw, link, task, record = line.split(b" ", 4)
                if group and (link == b"0" or (link, raw) != group_key):
                    flush(group, group_key[1])
                    group = []
                group.append((image, task, record))
                group_key = (link, raw)
            if group:
                flush(group, group_key[1])
            offset += source.count
    finally:
        for stream in files.values():
            stream.close()
    return {task: scratch / f"{task}.part" for task in files}, used


class _AnnotationIds:
    """Fresh annotation ids: the lowest free in the record's file; a shared object's, free in every file."""

    def __init__(self, used: dict[str, set[int]]) -> None:
        self.used = used
        self.shared: dict[bytes, int] = {}
        self.next_shared = 1

    def _shared(self, token: bytes) -> int:
        if token not in self.shared:
            while any(self.next_shared in ids for ids in self.used.values()):
                self.next_shared += 1
            self.shared[token] = self.next_shared
            for ids in self.used.values():
                ids.add(self.next_shared)
        return self.shared[token]

    def write(self, task: str, path: Path, image_ids: array[int], out: IO[bytes]) -> None:
        used = self.used.setdefault(task, set())
        next_id = 1
        first = True
        for line in _lines(path):
            image, decided, record = line.split(b" ", 2)
            head = b"\n" if first else b",\n"
            first = False
            if decided == NO_ID:
                out.write(head + b'{"image_id":%d,' % image_ids[int(image)] + record[1:-1])
                continue
            if decided.startswith(b"-"):
                ann_id = self._shared(decided)
            elif decided == b"0":
                while next_id in used:
                    next_id += 1
                ann_id = next_id
                used.add(ann_id)
            else:
                ann_id = int(decided)
            out.write(head + b'{"id":%d,"image_id":%d,' % (ann_id, image_ids[int(image)]) + record[1:-1])
