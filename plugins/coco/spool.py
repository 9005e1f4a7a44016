"""The COCO writer's scratch spool, and the assembly of the task files of a subset from it.

Why spool: ``images`` is repeated in every task file of a subset, and a generated id must avoid every
explicit id, which is known only after the last item. The writer therefore appends compact JSON records to
files per subset, in item order, and the files are assembled at the end:

- images: ``<explicit id> <record>`` (0: none);
- annotations, one file per task: ``<image index> <id> <record>``, where ``<id>`` is the id the record
  keeps, ``0`` for a fresh id, ``-<n>`` for a fresh id shared by the records of one object written to
  several task files, or ``-`` for a record without an id; or, when the record keeps its id and its
  image keeps its explicit id (known as they are spooled), the element as it is written. The assembly
  copies runs of such lines at once.

An id is kept where it is the first use of that id in its task file (for a shared object: in all of its
files); :class:`Claims` decides that in record order, as records are spooled. Fresh ids, the lowest free
ones, are given at assembly, when every kept id is known. Memory holds only the sets of ids in use.

A shard of a scale-out conversion decides the same way, but an earlier shard may already hold an id it
kept. So it also spools the ids as the data gave them, in one file for every task: ``<image index> <id>
<object> <task> <record>``, where ``<id>`` is ``-`` for a record without one and ``<object>`` numbers the
records of one object written to several task files (0: a single record). The merge takes the shards'
decisions when no shard kept an id that an earlier shard kept in the same task file (then one writer given
every item decides exactly as they did) and no two shards use one explicit image id (a shard writes elements
whole assuming that its images keep their ids); otherwise it reads the raw files one after the other and
decides again with the same :class:`Claims` (:func:`_claim`).
"""

from __future__ import annotations

import re
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
_OTHER_NEXT = re.compile(rb"\n[^{]")  # the end of a line followed by one that is not an element written whole


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


class Claims:
    """Which records keep the id the data gave them, decided in record order (see the module docstring)."""

    def __init__(self) -> None:
        self.kept: dict[str, set[int]] = {}  # task -> the ids kept in its file; every task with records
        self.objects = 0

    def decide(self, ann_id: int | None, tasks: Sequence[str]) -> bytes:
        """The ``<id>`` of the records of one object in ``tasks`` (``ann_id``: the data's id; None: none)."""
        taken = [self.kept.setdefault(task, set()) for task in tasks]
        if ann_id is None:
            return NO_ID
        if ann_id > 0 and all(ann_id not in ids for ids in taken):
            for ids in taken:
                ids.add(ann_id)
            return b"%d" % ann_id
        if len(tasks) > 1:
            self.objects += 1
            return b"-%d" % self.objects
        return b"0"


class SubsetSpool:
    """The spool of one subset being written (see the module docstring for the line formats).

    ``partial``: also spool the data's ids, for a merge.
    """

    def __init__(self, folder: Path, index: int, *, partial: bool = False) -> None:
        self.index = index
        self.claims = Claims()
        self.source = SpoolSource(folder, str(index), 0, self.claims.kept)
        self.images: IO[bytes] = open(self.source.images, "wb")  # noqa: SIM115 - closed by close()
        self.files: dict[str, IO[bytes]] = {}  # task -> its annotations file, opened at its first record
        self.raw: IO[bytes] | None = open(self.source.raw, "wb") if partial else None  # noqa: SIM115 - see close()
        self.explicit: set[int] = set()
        self.labels: dict[str, dict[str, None]] = {}  # task -> labels its records use, first use first
        self.objects = 0
        self.last = (-1, 0)  # (index, id) of the last image, when its id is known already (else 0)

    def _file(self, task: str) -> IO[bytes]:
        stream = self.files.get(task)
        if stream is None:
            stream = self.files[task] = open(self.source.annotations(task), "wb")  # noqa: SIM115 - see close()
        return stream

    def add_image(self, explicit: int, record: bytes) -> int:
        """Spool an image record (``explicit``: its id, 0 for none); return its index in the subset."""
        # An explicit id is kept at its first use (see _images_array). A shard assumes that its first use is
        # the first of all: the merge checks it, and decides again from the raw file when it is not.
        kept = explicit if explicit and explicit not in self.explicit else 0
        if explicit:
            self.explicit.add(explicit)
        self.images.write(b"%d %s\n" % (explicit, record))
        self.source.count += 1
        self.last = (self.source.count - 1, kept)
        return self.source.count - 1

    def add_records(self, image: int, task: str, records: Sequence[tuple[int, bytes, str]]) -> None:
        """:meth:`add_object` for objects of one record each, ``(id (0: none given), record, label)``, fast."""
        used = self.labels.get(task)
        if used is None:
            for ann_id, record, label in records:
                self.add_object(image, ann_id, [(task, record, (label,))])
            return
        kept = self.claims.kept[task]  # as Claims.decide
        image_id = self.last[1] if self.last[0] == image else 0
        lines = []
        for ann_id, record, label in records:
            if label not in used:
                used[label] = None
            if ann_id > 0 and ann_id not in kept:
                kept.add(ann_id)
                if image_id:  # both ids known: the element as it is written
                    lines.append(b'{"id":%d,"image_id":%d,%s\n' % (ann_id, image_id, record[1:]))
                else:
                    lines.append(b"%d %d %s\n" % (image, ann_id, record))
            else:
                lines.append(b"%d 0 %s\n" % (image, record))
        self.files[task].write(b"".join(lines))
        if self.raw is not None:
            name = task.encode()
            self.raw.write(b"".join([b"%d %d 0 %s %s\n" % (image, ann_id, name, record)
                                     for ann_id, record, _ in records]))

    def add_object(self, image: int, ann_id: int | None, records: Sequence[tuple[str, bytes, Iterable[str]]]) -> None:
        """Spool the records ``(task, record, labels)`` of one object, which share one id (None: no id)."""
        for task, _, labels in records:
            self.labels.setdefault(task, {}).update(dict.fromkeys(labels))
        decided = self.claims.decide(ann_id, [task for task, _, _ in records])
        for task, record, _ in records:
            self._file(task).write(b"%d %s %s\n" % (image, decided, record))
        if self.raw is not None:
            link = 0
            if len(records) > 1:
                self.objects += 1
                link = self.objects
            raw = NO_ID if ann_id is None else b"%d" % ann_id
            for task, record, _ in records:
                self.raw.write(b"%d %s %d %s %s\n" % (image, raw, link, task.encode(), record))

    def close(self) -> None:
        self.images.close()
        for stream in self.files.values():
            stream.close()
        if self.raw is not None:
            self.raw.close()

    def state(self) -> dict[str, Any]:
        """This spool as JSON data, for a partial output; the kept ids go to files (``kept``: their tasks)."""
        for task, ids in self.claims.kept.items():
            self.source.kept_file(task).write_bytes(array("q", sorted(ids)).tobytes())
        return {"index": self.index, "count": self.source.count, "explicit": sorted(self.explicit),
                "labels": {task: list(labels) for task, labels in self.labels.items()}, "kept": list(self.claims.kept)}


@attrs.define
class SpoolSource:
    """The spool files of a subset, named ``<name>-...`` in ``folder``, and its number of images.

    ``kept``: the ids kept per task (every task with records) by the decisions in its task files (see
    :class:`Claims`); for a shard's spool read back, ``kept_tasks`` names those tasks instead and the ids
    are in files (:meth:`kept_file`). Both are None when the source has only the raw file of a shard.
    """

    folder: Path
    name: str
    count: int
    kept: dict[str, set[int]] | None = None
    kept_tasks: list[str] | None = None

    @property
    def tasks(self) -> Iterable[str] | None:
        """The tasks with records in decided files; None when there are none (a raw file only)."""
        return self.kept if self.kept is not None else self.kept_tasks

    def kept_ids(self, task: str) -> set[int] | array[int]:
        if self.kept is not None:
            return self.kept[task]
        found: array[int] = array("q")
        found.frombytes(self.kept_file(task).read_bytes())
        return found

    def kept_file(self, task: str) -> Path:
        return self.folder / f"{self.name}-kept-{task}"

    @property
    def images(self) -> Path:
        return self.folder / f"{self.name}-images"

    @property
    def raw(self) -> Path:
        return self.folder / f"{self.name}-annotations"

    def annotations(self, task: str) -> Path:
        return self.folder / f"{self.name}-{task}"


def assemble(
    root: Path, subset: str, sources: Sequence[SpoolSource], explicit: set[int], labels: dict[str, dict[str, None]],
    catalog: Catalog, scratch: Path, *, shared_explicit: bool = False,
) -> None:
    """Write every task file of ``subset`` under ``root`` from ``sources``, read one after the other.

    ``explicit`` holds every explicit image id of the sources; ``labels`` the labels each task uses.
    ``shared_explicit``: two sources use one explicit image id, so the later one's written elements (which
    assumed it keeps that id) do not hold; the raw files are decided again.
    """
    image_ids = _images_array(sources, explicit, scratch / "images.part")
    used = None if shared_explicit else _settled(sources)
    if used is None:
        sources = [_claim(sources, scratch)]
        used = sources[0].kept
    assert used is not None
    ids = _AnnotationIds(used)
    for task in catalog.subset_tasks(subset, labels):
        stem = file_stem(task, subset)
        with open(root / ANNOTATIONS_DIR / f"{stem}.json", "wb") as out:
            out.write(b"{")
            for key, value in catalog.head(task, stem, labels.get(task, ())).items():
                out.write(orjson.dumps(key) + b":" + orjson.dumps(value) + b",\n")
            out.write(b'"images":[')
            with open(scratch / "images.part", "rb") as part:
                shutil.copyfileobj(part, out, _BLOCK)
            out.write(b'\n],\n"annotations":[')
            if task in used:
                ids.write(task, sources, image_ids, out)
            out.write(b"\n]")
            extra = ((catalog.info.get("files") or {}).get(stem) or {}).get("extra") or {}
            for key, value in extra.items():
                out.write(b",\n" + orjson.dumps(key) + b":" + orjson.dumps(value))
            out.write(b"}\n")


_BLOCK = 1 << 16  # see _runs


def _runs(lines: IO[bytes]) -> Iterator[tuple[bool, bytes]]:
    """The lines of an annotations spool, read in blocks: ``(True, lines)`` for lines that are all elements
    spooled whole (copied at once by :meth:`_AnnotationIds.write`), ``(False, line)`` for each other line.

    Blocks of 64 KiB: the copies made of each stay below malloc's mmap threshold (128 KiB), so their memory is
    reused; 1 MiB blocks were mapped and unmapped each time, and their page faults made the merge half slower.
    """
    pending: list[bytes] = []  # the start of a line not yet ended
    while chunk := lines.read(_BLOCK):
        end = chunk.rfind(b"\n") + 1
        if not end:
            pending.append(chunk)
            continue
        block = chunk if end == len(chunk) else chunk[:end]
        yield from _split_runs(b"".join([*pending, block]) if pending else block)
        pending = [chunk[end:]] if end < len(chunk) else []
    yield from _split_runs(b"".join(pending))


def _split_runs(block: bytes) -> Iterator[tuple[bool, bytes]]:
    pos = 0
    while pos < len(block):
        if block[pos] == 0x7B:  # "{": this line and those up to the next other one are elements
            other = _OTHER_NEXT.search(block, pos)
            stop = len(block) if other is None else other.start() + 1
            yield True, block[pos:stop]
        else:
            stop = block.find(b"\n", pos) + 1 or len(block)
            yield False, block[pos:stop]
        pos = stop


class _Joined:
    """Writes JSON array elements to ``out``: ``\n`` before the first, ``,\n`` between, a few hundred at a time."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.head = b"\n"
        self.pending: list[bytes] = []

    def add(self, element: bytes) -> None:
        self.pending.append(element)
        if len(self.pending) == 512:  # a few hundred kB at most
            self.flush()

    def add_lines(self, lines: bytes) -> None:
        """Add elements given one per line (each ending in ``\n``)."""
        self.flush()
        self.out.write(self.head)
        self.out.write(memoryview(lines.replace(b"\n", b",\n"))[:-2])  # one copy of the block
        self.head = b",\n"

    def flush(self) -> None:
        if self.pending:
            self.out.write(self.head + b",\n".join(self.pending))
            self.head, self.pending = b",\n", []


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
        joined = _Joined(out)
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
                joined.add(b'{"id":%d,%s' % (image_id, record[1:-1]))
                ids.append(image_id)
        joined.flush()
    return ids


def _settled(sources: Sequence[SpoolSource]) -> dict[str, set[int]] | None:
    """The ids the sources' task files keep, when one writer given every record decides as they did.

    That is when no source kept an id that an earlier one kept in the same task file (an object's id is
    kept in each of its files); None otherwise, or when a source has only a raw file.
    """
    if len(sources) == 1 and sources[0].kept is not None:
        return sources[0].kept  # one writer's own sets
    used: dict[str, set[int]] = {}
    for source in sources:
        tasks = source.tasks
        if tasks is None:
            return None
        for task in tasks:
            ids = source.kept_ids(task)
            known = used.setdefault(task, set())
            if not known.isdisjoint(ids):
                return None
            known.update(ids)
    return used


def _claim(sources: Sequence[SpoolSource], scratch: Path) -> SpoolSource:
    """Decide the ids of the shards' raw records, read one after the other, into per-task files in ``scratch``."""
    claims = Claims()
    claimed = SpoolSource(scratch, "claimed", 0, claims.kept)
    files: dict[str, IO[bytes]] = {}

    def flush(group: list[tuple[bytes, bytes, bytes]], raw: bytes) -> None:
        tasks = [task.decode() for _, task, _ in group]
        decided = claims.decide(None if raw == NO_ID else int(raw), tasks)
        for (image, _, record), name in zip(group, tasks, strict=True):
            if name not in files:
                files[name] = open(claimed.annotations(name), "wb")  # noqa: SIM115 - closed below
            files[name].write(b"%d %s %s" % (int(image) + claimed.count, decided, record))

    try:
        for source in sources:
            group: list[tuple[bytes, bytes, bytes]] = []
            group_key: tuple[bytes, bytes] = (b"0", b"")
            for line in _lines(source.raw):
                image, raw, link, task, record = line.split(b" ", 4)
                if group and (link == b"0" or (link, raw) != group_key):
                    flush(group, group_key[1])
                    group = []
                group.append((image, task, record))
                group_key = (link, raw)
            if group:
                flush(group, group_key[1])
            claimed.count += source.count
    finally:
        for stream in files.values():
            stream.close()
    return claimed


class _AnnotationIds:
    """Fresh annotation ids: the lowest free in the record's file; a shared object's, free in every file."""

    def __init__(self, used: dict[str, set[int]]) -> None:
        self.used = used
        self.shared: dict[tuple[int, bytes], int] = {}
        self.next_shared = 1

    def _shared(self, token: tuple[int, bytes]) -> int:
        if token not in self.shared:
            while any(self.next_shared in ids for ids in self.used.values()):
                self.next_shared += 1
            self.shared[token] = self.next_shared
            for ids in self.used.values():
                ids.add(self.next_shared)
        return self.shared[token]

    def write(self, task: str, sources: Sequence[SpoolSource], image_ids: array[int], out: IO[bytes]) -> None:
        """Write the ``annotations`` elements of ``task`` from the sources' task files, one after the other."""
        used = self.used.setdefault(task, set())
        next_id = 1
        joined = _Joined(out)
        offset = 0
        for number, source in enumerate(sources):
            if task not in (source.tasks or ()):
                offset += source.count
                continue
            with open(source.annotations(task), "rb") as lines:
                for whole, line in _runs(lines):
                    if whole:
                        joined.add_lines(line)
                        continue
                    image, decided, record = line.split(b" ", 2)
                    if decided == NO_ID:
                        joined.add(b'{"image_id":%d,%s' % (image_ids[int(image) + offset], record[1:-1]))
                        continue
                    if decided == b"0":
                        while next_id in used:
                            next_id += 1
                        used.add(next_id)
                        decided = b"%d" % next_id
                    elif decided[0] == 45:  # b"-<n>": a fresh id shared by the records of one object
                        decided = b"%d" % self._shared((number, decided))
                    joined.add(b'{"id":%s,"image_id":%d,%s' % (decided, image_ids[int(image) + offset], record[1:-1]))
            offset += source.count
        joined.flush()
