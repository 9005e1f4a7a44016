"""Read COCO task files lazily: categories and images when the reader opens, annotations per item.

Every task file of a subset is indexed once (annotation element -> item) when the reader opens; items are
then built one at a time, parsing only their own annotations. Several task files of one subset merge into
one item per image, joined by ``file_name`` (each file's own image ids are resolved within that file).
"""

from __future__ import annotations

import collections
import copy
import os
import posixpath
import weakref
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from dsformats import (
    Annotation,
    Bbox,
    Caption,
    Categories,
    DatasetError,
    Header,
    Item,
    KeypointSchema,
    Label,
    LabelDef,
    Mask,
    Media,
    Points,
    Polygon,
    Rle,
    Shard,
    range_shards,
    shard_range,
)
from dsformats.fileaccess import (
    Joiner,
    as_path,
    holds_no_symlink,
    is_local,
    join_within,
    open_binary,
    safe_relative,
    walk_files,
)
from dsformats.limits import MAX_IMAGE_SIDE, declared_size
from dsformats.model import DeferredAnnotations
from dsformats.parallel import forked
from dsformats.placement import PlannedMedia
from dsformats.policy import bad_item, not_stored, stored_kinds, warn

from .jsonindex import JsonFile, JsonView
from .schema import (
    ANNOTATIONS_DIR,
    AREA_ATTR,
    CAPTION_ANN_KEYS,
    CAPTIONS,
    CATEGORY_TASKS,
    CROWD_ATTR,
    DEFAULT_SUBSET,
    FORMAT,
    IMAGE_DEFAULTS,
    IMAGE_ID_ATTR,
    IMAGE_INFO,
    IMAGE_KEYS,
    IMAGES_DIR,
    INFO_KEY,
    INSTANCES,
    ISTHING_ATTR,
    JSON_SUFFIX,
    LABEL_ANN_KEYS,
    LABELS,
    PANOPTIC,
    PERSON_KEYPOINTS,
    PLAIN_ANN_KEYS,
    ROBOFLOW_JSON,
    SCORE_ATTR,
    SEGMENT_KEYS,
    SHAPE_ANN_KEYS,
    SHAPE_TASKS,
    TASK_ATTR,
    TASKS,
    TOP_KEYS,
    file_stem,
    split_name,
    split_task_name,
)

_MISSING = object()


# ------------------------------------------------------------------------------------- value checks


def _int(value: Any, where: str, what: str = "an integer") -> int:
    """An int (an integral float such as ``4.0`` is accepted); DatasetError otherwise."""
    if type(value) is int:  # the common case (bool is not int here)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"expected {what}, got {value!r}", where)
    if isinstance(value, float):
        if not value.is_integer():
            raise DatasetError(f"expected {what}, got {value!r}", where)
        return int(value)
    return value


def _number(value: Any, where: str) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DatasetError(f"expected a number, got {value!r}", where)
    return value


_NUMBER_TYPES = frozenset({int, float})
_INT_TYPE = frozenset({int})


def _numbers(value: Any, where: str, field: str = "") -> list[int | float]:
    """``value`` if it is a list of numbers; DatasetError at ``where + field`` (joined only on error) otherwise."""
    if type(value) is list and _NUMBER_TYPES.issuperset(map(type, value)):  # the common case, checked in C
        return value
    if not isinstance(value, list):
        raise DatasetError(f"expected a list of numbers, got {type(value).__name__}", where + field)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise DatasetError(f"expected a list of numbers, found {v!r}", where + field)
    return value


def _require(record: dict[str, Any], key: str, where: str) -> Any:
    value = record.get(key, _MISSING)
    if value is _MISSING:
        raise DatasetError(f"missing key {key!r}", where)
    return value


def _dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DatasetError(f"expected an object, got {type(value).__name__}", where)
    return value


# -------------------------------------------------------------------------------------------- sources


class _Source:
    """One task file: where it is, what it holds, and its per-item annotation index."""

    def __init__(self, task: str | None, subset: str, path: Path, images_dir: Path, name: str) -> None:
        self.task = task
        self.subset = subset
        self.path = path
        self.images_dir = images_dir
        self.name = name
        self.json: Any = None  # a JsonFile; in a shard reader, a JsonView of the shard's annotations
        self.labels: dict[int, str] = {}
        self.order: Any = None
        self.keys: Any = None
        #: Per element of ``order`` (instances files): its kinds code (see :func:`_plain_code`), -1 if unusual.
        self.codes: Any = None
        self.bounds: tuple[int, array[int]] | None = None  # (first key, where each key from it starts in keys)

    def span(self, item_index: int) -> tuple[int, int]:
        """Where the elements of ``item_index`` are in ``order`` (and ``codes``)."""
        if self.keys is None or not len(self.keys):
            return 0, 0
        if self.bounds is None:  # once: every span is then two list lookups
            import numpy as np

            first = int(self.keys[0])
            starts = self.keys.searchsorted(np.arange(first, int(self.keys[-1]) + 2)).astype(np.int64)
            self.bounds = first, array("q", starts.tobytes())
        first, bounds = self.bounds
        k = item_index - first
        if k < 0:
            return 0, 0
        if k >= len(bounds) - 1:
            return bounds[-1], bounds[-1]
        return bounds[k], bounds[k + 1]

    def hits(self, item_index: int) -> Sequence[int]:
        """Annotation element indices of ``item_index``, in file order."""
        lo, hi = self.span(item_index)
        return self.order[lo:hi].tolist() if hi > lo else ()

    @property
    def panoptic_dir(self) -> Path:
        return self.path.with_suffix("")


def _guess_task(json: JsonFile) -> str:
    """The task of a file whose name has no task prefix, from its first annotation and categories."""
    if len(json):
        first = json.element(0)
        if isinstance(first, dict):
            if "segments_info" in first:
                return PANOPTIC
            if "caption" in first:
                return CAPTIONS
            if "keypoints" in first:
                return PERSON_KEYPOINTS
            if "bbox" not in first and "segmentation" not in first and "category_id" in first:
                return LABELS
        return INSTANCES
    return INSTANCES if json.section("categories") else IMAGE_INFO


def _images_dir_for(root: Path, subset: str) -> Path:
    """``images/<subset>`` if it exists, else ``images/``, else ``<subset>/`` (mmdetection)."""
    for candidate in (root / IMAGES_DIR / subset, root / IMAGES_DIR, root / subset):
        if candidate.is_dir():
            return candidate
    return root / IMAGES_DIR / subset


def find_sources(path: Path, images_dir: str | None = None) -> list[_Source]:
    """The task files of a dataset at ``path`` (a directory in any supported layout, or one .json)."""
    if path.is_file():
        if path.name == ROBOFLOW_JSON:
            task, subset = INSTANCES, path.parent.name or DEFAULT_SUBSET
        else:
            task, subset = split_task_name(path.stem) or (None, DEFAULT_SUBSET)  # type: ignore[assignment]
        if images_dir:
            folder = Path(images_dir)
        elif path.parent.name == ANNOTATIONS_DIR:
            folder = _images_dir_for(path.parent.parent, subset)
        else:
            folder = path.parent
        return [_Source(task, subset, path, folder, path.name)]
    if not path.is_dir():
        raise DatasetError("no such file or directory", str(path))
    sources: list[_Source] = []
    ann_dir = path / ANNOTATIONS_DIR
    for root, folder in ((path, ann_dir), (path.parent, path)):
        if not folder.is_dir():
            continue
        for rel in walk_files(folder, max_depth=1):
            parsed = split_task_name(rel[: -len(JSON_SUFFIX)]) if rel.endswith(JSON_SUFFIX) else None
            if parsed:
                where = Path(images_dir) if images_dir else _images_dir_for(root, parsed[1])
                name = f"{folder.name}/{rel}"
                sources.append(_Source(parsed[0], parsed[1], folder / rel, where, name))
        if sources:
            return sources
    for rel in walk_files(path, max_depth=2):
        if rel.split("/")[-1] == ROBOFLOW_JSON:
            subset = rel.split("/")[0] if "/" in rel else DEFAULT_SUBSET
            json_path = path / rel
            sources.append(_Source(INSTANCES, subset, json_path, json_path.parent, rel))
    if not sources:
        raise DatasetError(
            "no COCO annotation files found (expected annotations/<task>_<subset>.json, "
            f"<split>/{ROBOFLOW_JSON} or a .json file)",
            str(path),
        )
    return sources


# --------------------------------------------------------------------------------------------- reader


class _ItemRecord:
    """One image: a few fields per image are all the reader holds until the image's item is yielded."""

    __slots__ = ("subset", "id", "file_name", "images_dir", "image_id", "size", "extras")

    def __init__(self, subset, item_id, file_name, images_dir, image_id, size, extras) -> None:
        self.subset = subset
        self.id = item_id
        self.file_name = file_name
        self.images_dir = images_dir
        self.image_id = image_id
        self.size = size
        self.extras = extras  # non-default image keys, or None

    @property
    def attributes(self) -> dict[str, Any]:
        return {IMAGE_ID_ATTR: self.image_id, **(self.extras or {})}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # pickled with shard readers: a plain tuple is fastest
        return _ItemRecord, (self.subset, self.id, self.file_name, self.images_dir, self.image_id, self.size,
                             self.extras)


class CocoReader:
    """Items of every COCO task file found at ``path``, merged per subset and image.

    ``tasks`` restricts the task files read; ``images_dir`` overrides where images are looked up.
    """

    def __init__(
        self, path: Path, *, tasks: Sequence[str] = (), images_dir: str | None = None, shard: str | None = None
    ) -> None:
        self.path = as_path(path)
        self.positions = shard_range(shard)
        self.tasks = tuple(tasks)
        self.images_dir = images_dir
        self.header = Header()
        self._sources: list[_Source] = []
        self._items: list[_ItemRecord] = []
        self._first = 0  # the item index of _items[0] (a shard reader holds only its range)
        self._unlinked: frozenset[Path] = frozenset()  # image folders that hold no symlink (see Joiner)
        self._indexed = False  # a shard reader arrives indexed: entering it reads nothing
        self._png: tuple[Path, Any, Any] | None = None
        #: Deferred annotations given out and maybe not built yet: built when the reader closes, so that items
        #: kept after it (as a list of items) still read them.
        self._pending: weakref.WeakSet[_Deferred] | None = None  # made when needed (it cannot be pickled)

    # -- opening

    def __enter__(self) -> CocoReader:
        if self._indexed:
            return self
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release every mapped file (building the deferred annotations still held by someone first)."""
        for deferred in list(self._pending or ()):
            deferred.annotations  # noqa: B018 - built and cached
        self._pending = None
        for source in self._sources:
            if source.json is not None:
                source.json.close()
        self._sources = []
        self._png = None

    def _open(self) -> None:
        sources = find_sources(self.path, self.images_dir)
        for source in sources:
            source.json = JsonFile(source.path, source.name)
            if source.task is None:
                source.task = _guess_task(source.json)
        if self.tasks:
            for source in sources:
                if source.task not in self.tasks:
                    assert source.json is not None
                    source.json.close()
            sources = [s for s in sources if s.task in self.tasks]
            if not sources:
                raise DatasetError(f"no task file for tasks {', '.join(self.tasks)}", str(self.path))
        sources.sort(key=lambda s: (s.subset, TASKS.index(s.task or INSTANCES)))
        self._sources = sources
        # Image folders without a symlink, listed once here (shard readers inherit it): their images are not
        # tested one by one for being symlinks.
        folders = {source.images_dir for source in sources if is_local(source.images_dir)}
        self._unlinked = frozenset(folder for folder in folders if holds_no_symlink(folder))

        self._labels: dict[str, LabelDef] = {}
        self._keypoints: dict[str, KeypointSchema] = {}
        self._info: dict[str, Any] = {
            "files": {}, "tasks": {}, "zero_based_skeleton": [], "isthing": {}, "annotation_keys": [],
            "category_extras": {},
        }
        self._by_key: dict[tuple[str, str], int] = {}
        self._by_id: dict[tuple[str, str], str] = {}
        self._bad: set[int] = set()  # items with a bad annotation, skipped under --skip-bad-items
        annotation_keys: set[str] = set()
        for source in sources:
            self._read_source(source, annotation_keys)
        self._info["annotation_keys"] = sorted(annotation_keys)
        self._by_key, self._by_id = {}, {}  # needed only while the files are indexed
        subsets = list(dict.fromkeys(s.subset for s in sources))
        self.header = Header(
            categories=Categories(labels=list(self._labels.values()), keypoints=self._keypoints),
            subsets=subsets,
            size_hint=len(self._items),
            infos={INFO_KEY: self._info},
            metadata=self._metadata(),
            metadata_format=FORMAT,
        )

    def _metadata(self) -> dict[str, int]:
        """What only a COCO writer keeps, for the report of a conversion to another format: the distinct
        ``info`` objects and licenses that say anything (Datumaro writes empty placeholders), the extra
        top-level keys, and the category fields beyond id, name and supercategory (LVIS ``frequency``)."""
        import orjson

        infos: set[bytes] = set()
        licenses: set[bytes] = set()
        keys: set[str] = set()
        for found in self._info["files"].values():
            if _says_anything(found.get("info")):
                infos.add(orjson.dumps(found["info"], option=orjson.OPT_SORT_KEYS))
            listed = found.get("licenses")
            for license in listed if isinstance(listed, list) else [listed]:
                if _says_anything(license):
                    licenses.add(orjson.dumps(license, option=orjson.OPT_SORT_KEYS))
            keys.update(found.get("extra", ()))
        counts = {
            "coco info": len(infos),
            "coco license": len(licenses),
            "coco top-level key": len(keys),
            "coco category field": sum(len(extras) for extras in self._info["category_extras"].values()),
        }
        return {kind: count for kind, count in counts.items() if count}

    def _read_source(self, source: _Source, annotation_keys: set[str]) -> None:
        json = source.json
        assert json is not None and source.task is not None
        task, name = source.task, source.name
        for key in ("images", "annotations") + (("categories",) if task in CATEGORY_TASKS else ()):
            if key not in json.spans:
                raise DatasetError(f"missing top-level key {key!r}", name)
        if not json.is_list("annotations"):
            raise DatasetError("expected a list", f"{name}: annotations")
        file_info: dict[str, Any] = {
            "info": json.section("info", _MISSING),
            "licenses": json.section("licenses", _MISSING),
            "extra": {k: json.section(k) for k in json.keys if k not in TOP_KEYS},
        }
        file_info = {k: v for k, v in file_info.items() if v is not _MISSING}
        self._info["files"][file_stem(task, source.subset)] = file_info
        self._info["tasks"].setdefault(source.subset, []).append(task)

        categories = json.section("categories", [])
        if not isinstance(categories, list):
            raise DatasetError("expected a list", f"{name}: categories")
        file_info["categories"] = [self._read_category(source, i, c) for i, c in enumerate(categories)]

        images = _typed_images(json) if task == INSTANCES else None
        typed = images is not None
        if images is None:
            images = json.section("images")
            if not isinstance(images, list):
                raise DatasetError("expected a list", f"{name}: images")
        local: dict[int, int] = {}
        dead: set[int] = set()  # ids of images skipped as bad items: their annotations go with them
        for i, image in enumerate(images):
            if typed:
                if self._plain_image(source, image.id, image.file_name, image.width, image.height, local):
                    continue
                image = {"id": image.id, "file_name": image.file_name, "width": image.width, "height": image.height}
            elif (type(image) is dict and image.keys() == _PLAIN_IMAGE_KEYS and type(image["id"]) is int
                  and type(image["file_name"]) is str and type(image["width"]) is int
                  and type(image["height"]) is int and self._plain_image(
                      source, image["id"], image["file_name"], image["width"], image["height"], local)):
                continue
            where = f"{name}: images[{i}]"
            image_id = None
            try:
                _dict(image, where)
                image_id = _int(_require(image, "id", where), f"{where}.id")
                file_name = _require(image, "file_name", where)
                if not isinstance(file_name, str):
                    raise DatasetError(f"expected a string, got {file_name!r}", f"{where}.file_name")
                file_name = safe_relative(file_name, location=f"{where}.file_name")
                if image_id in local:
                    raise DatasetError(f"duplicate image id {image_id}", f"{where}.id")
                local[image_id] = self._add_image(source, image, image_id, file_name, where)
            except DatasetError as exc:
                bad_item(exc)
                if image_id is not None and image_id not in local:
                    dead.add(image_id)
        self._index(source, local, annotation_keys, dead)

    def _read_category(self, source: _Source, i: int, category: Any) -> str:
        where = f"{source.name}: categories[{i}]"
        _dict(category, where)
        cid = _int(_require(category, "id", where), f"{where}.id")
        name = _require(category, "name", where)
        if not isinstance(name, str):
            raise DatasetError(f"expected a string, got {name!r}", f"{where}.name")
        if cid in source.labels:
            raise DatasetError(f"duplicate category id {cid}", f"{where}.id")
        label = name
        if name in source.labels.values():
            label = f"{name}_{cid}"
            warn(f"{where}: duplicate category name {name!r} (id {cid}) imported as {label!r}")
        existing = self._labels.get(label)
        if existing is None:
            parent = category.get("supercategory") or ""
            self._labels[label] = LabelDef(name=label, parent=str(parent), id=cid)
        elif existing.id != cid:
            warn(f"{where}: category {label!r} has id {cid} here and {existing.id} elsewhere")
        source.labels[cid] = label
        if "isthing" in category:
            self._info["isthing"][label] = category["isthing"]
        extras = {k: v for k, v in category.items() if k not in _CATEGORY_KEYS}
        if extras:  # e.g. LVIS "frequency", Roboflow colours: written back by the coco writer
            self._info["category_extras"].setdefault(label, {}).update(extras)
        if "keypoints" in category or "skeleton" in category:
            names = category.get("keypoints") or []
            skeleton = category.get("skeleton") or []
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DatasetError("expected a list of names", f"{where}.keypoints")
            edges = []
            for j, edge in enumerate(skeleton if isinstance(skeleton, list) else [None]):
                if not isinstance(edge, list) or len(edge) != 2:
                    raise DatasetError("expected a list of [a, b] pairs", f"{where}.skeleton[{j}]")
                edges.append((_int(edge[0], f"{where}.skeleton[{j}]"), _int(edge[1], f"{where}.skeleton[{j}]")))
            zero_based = any(0 in e for e in edges)
            if zero_based:
                self._info["zero_based_skeleton"].append(label)
            else:
                edges = [(a - 1, b - 1) for a, b in edges]
            self._keypoints.setdefault(label, KeypointSchema(names=names, skeleton=edges))
        return label

    def _plain_image(
        self, source: _Source, image_id: int, file_name: str, width: int, height: int, local: dict[int, int]
    ) -> bool:
        """Add an image record of the common case, which :meth:`_add_image` adds as it is, without building its
        error locations: exactly the keys ``id``, ``file_name``, ``width`` and ``height`` (checked by the
        caller: ints and a string); a size that :func:`declared_size` takes; a file name already normal; a new
        id, name and item id. False (nothing added) for any other record, which takes the full path, where its
        problem is named."""
        if not (image_id not in local and 0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE
                and (key := (source.subset, file_name)) not in self._by_key):
            return False
        try:
            if safe_relative(file_name) != file_name:
                return False
        except DatasetError:
            return False
        item_id = split_name(file_name)[0]
        if self._by_id.setdefault((source.subset, item_id), file_name) != file_name:
            return False  # the full path raises
        local[image_id] = self._by_key[key] = len(self._items)
        self._items.append(_ItemRecord(source.subset, item_id, file_name, source.images_dir, image_id, (width, height),
                                       None))
        return True

    def _add_image(self, source: _Source, image: dict, image_id: int, file_name: str, where: str) -> int:
        key = (source.subset, file_name)
        index = self._by_key.get(key)
        if index is not None:
            return index
        width, height = image.get("width"), image.get("height")
        size = None
        if width and height:
            size, odd = declared_size(_int(width, f"{where}.width"), _int(height, f"{where}.height"))
            if odd:
                warn(f"{where}: width {width} and height {height} are not an image size; ignored (the image's own "
                     "header gives its size where it is needed)")
        item_id = split_name(file_name)[0]
        other = self._by_id.setdefault((source.subset, item_id), file_name)
        if other != file_name:
            raise DatasetError(f"images {other!r} and {file_name!r} would both be item {item_id!r}", where)
        extras = {k: v for k, v in image.items() if k not in IMAGE_KEYS and IMAGE_DEFAULTS.get(k, _MISSING) != v}
        self._by_key[key] = len(self._items)
        self._items.append(
            _ItemRecord(source.subset, item_id, file_name, source.images_dir, image_id, size, extras or None)
        )
        return len(self._items) - 1

    def _index(self, source: _Source, local: dict[int, int], annotation_keys: set[str], dead: set[int]) -> None:
        """Map every annotation element to its item; check image and category references.

        Under ``--skip-bad-items`` a bad annotation skips its item (or only itself when its image is unknown).
        """
        import numpy as np

        json = source.json
        assert json is not None
        task = source.task
        if task == IMAGE_INFO:
            return
        count = len(json)
        known = SHAPE_ANN_KEYS if task in SHAPE_TASKS else ()
        owners: array[int]
        codes: array[int] | None
        irregular: list[int]
        invalid: set[int]
        if task == PANOPTIC:  # every element the full way
            owners, codes, irregular, invalid = array("q", [-1]) * count, None, list(range(count)), set()
        else:
            # The common case is checked in two halves, the second in a forked child, when the file is big
            split = count // 2 if count >= _FORK_INDEX_FROM else count
            if task == INSTANCES:  # its decoder made once, before the fork
                from .fastdecode import index_decoder

                index_decoder()
            second = forked(lambda: self._index_range(source, local, split, count)) if split < count else None
            try:
                owners, codes, irregular, invalid, keys = self._index_range(source, local, 0, split)
            finally:
                rest = second() if second is not None else None
            if split < count:
                rest = rest or self._index_range(source, local, split, count)  # the child failed: here
                owners.extend(rest[0])
                if codes is not None and rest[1] is not None:
                    codes.extend(rest[1])
                irregular += rest[2]
                invalid |= rest[3]
                keys |= rest[4]
            annotation_keys.update(keys)
        for i in irregular:  # anything unusual (or wrong) takes the full path, which names the problem
            if i in invalid:
                json.element(i)  # raises, as reading it in order would
            try:
                self._index_one(source, i, local, dead, owners, known, annotation_keys)
            except DatasetError as exc:
                bad_item(exc)
                if owners[i] >= 0:
                    self._bad.add(owners[i])
        by_item = np.frombuffer(owners, dtype=np.int64)
        source.order = np.argsort(by_item, kind="stable")
        source.keys = by_item[source.order]
        if codes is not None:
            source.codes = np.frombuffer(codes, dtype=np.int16)[source.order]

    def _index_range(
        self, source: _Source, local: dict[int, int], start: int, stop: int
    ) -> tuple[array[int], array[int] | None, list[int], set[int], set[str]]:
        """Index the elements ``start`` to ``stop`` of the common case, with as few Python operations as possible.

        Returns their item indexes (-1: none yet) and kinds codes (instances only), the elements left to
        :meth:`_index_one` (in order; ``invalid`` ones are not JSON) and the extra annotation keys found.
        """
        json, task = source.json, source.task
        assert json is not None
        owners = array("q", [-1]) * (stop - start)
        codes = array("h", [-1]) * (stop - start) if task == INSTANCES else None
        plain = SHAPE_ANN_KEYS | {AREA_ATTR} if task in SHAPE_TASKS else None  # keys that add nothing to the keys
        labels, items = source.labels, self._items
        irregular: list[int] = []
        invalid: set[int] = set()
        keys: set[str] = set()
        import orjson

        decode: Any = None
        decoded_codes = codes if codes is not None else array("h")
        if codes is not None:
            from .fastdecode import NOT_PLAIN, index_decoder

            decode = index_decoder()
        for i, raw in enumerate(json.raw(start, stop), start):
            if decode is not None:  # instances: the common element is checked by typed decoding, in C
                try:
                    decoded = decode(raw)
                except NOT_PLAIN:  # anything else (or an error) is checked as before, with orjson
                    pass
                else:
                    if (index := local.get(decoded.image_id)) is None or not (
                        (cid := decoded.category_id) in labels or not cid
                    ):
                        irregular.append(i)
                    else:
                        owners[i - start] = index
                        if cid:
                            segmentation = decoded.segmentation
                            if segmentation.__class__ is list and len(decoded.bbox) == 4:  # the commonest, inline
                                code = 1
                                for part in segmentation:
                                    if part:
                                        code = code + 4 if len(part) >= 6 and not len(part) % 2 else -1 << 20
                                decoded_codes[i - start] = code if 0 < code < 1 << 14 else -1
                            else:
                                decoded_codes[i - start] = _decoded_code(decoded, items[index].size)
                    continue
            try:
                ann = orjson.loads(raw)
            except orjson.JSONDecodeError:
                ann = _INVALID
            if (
                type(ann) is dict
                and type(image_id := ann.get("image_id")) is int
                and (index := local.get(image_id)) is not None
                and type(ann.get("id")) is int
                and (task == CAPTIONS or (type(cid := ann.get("category_id")) is int and (cid in labels or not cid)))
            ):
                owners[i - start] = index
                if plain is not None and not plain.issuperset(ann):
                    keys.update(k for k in ann if k not in plain)
                if codes is not None and cid:
                    codes[i - start] = _plain_code(ann, items[index].size)
                continue
            irregular.append(i)
            if ann is _INVALID:
                invalid.add(i)
        return owners, codes, irregular, invalid, keys

    def _index_one(
        self, source: _Source, i: int, local: dict[int, int], dead: set[int], owners: Any, known: Any,
        annotation_keys: set[str],
    ) -> None:
        assert source.json is not None
        task, name = source.task, source.name
        where = f"{name}: annotations[{i}]"
        ann = _dict(source.json.element(i), where)
        image_id = _int(_require(ann, "image_id", where), f"{where}.image_id")
        index = local.get(image_id)
        if index is None:
            if image_id in dead:
                return
            raise DatasetError(f"unknown image id {image_id}", f"{where}.image_id")
        owners[i] = index
        if task == PANOPTIC:
            segments = _require(ann, "segments_info", where)
            if not isinstance(segments, list):
                raise DatasetError("expected a list", f"{where}.segments_info")
            for j, segment in enumerate(segments):
                seg_where = f"{where}.segments_info[{j}]"
                _dict(segment, seg_where)
                self._category(source, _require(segment, "category_id", seg_where), seg_where)
            return
        _int(_require(ann, "id", where), f"{where}.id")
        if task != CAPTIONS:
            self._category(source, _require(ann, "category_id", where), where)
        if known:
            annotation_keys.update(k for k in ann if k not in known and k != AREA_ATTR)

    def _category(self, source: _Source, value: Any, where: str) -> str | None:
        if type(value) is int and (value in source.labels or not value):  # the common case
            return source.labels.get(value)
        cid = _int(value, f"{where}.category_id")
        label = source.labels.get(cid)
        if label is None and cid != 0:
            raise DatasetError(f"unknown category id {cid}", f"{where}.category_id")
        return label

    # -- items

    def items(self) -> Iterator[Item]:
        """Yield one item per image, subset by subset, in file order."""
        by_subset: dict[str, list[_Source]] = {}
        for source in self._sources:
            by_subset.setdefault(source.subset, []).append(source)
        # A directory input bounds where images may live; for a single JSON file (or --images-dir) the
        # images folder itself is the boundary.
        boundary = self.path if is_local(self.path) and self.path.is_dir() and not self.images_dir else None
        join = Joiner(boundary, unlinked=self._unlinked)
        positions = range(self._first, self._first + len(self._items))
        if self.positions is not None:
            positions = positions[self.positions.start : self.positions.stop]
        # A target that stores no annotations (image_zip): count them by kind instead of building them.
        count_only = stored_kinds() == frozenset()
        # Items of a subset with one instances file only may be given deferred annotations (see _Deferred).
        single = {name: found[0] for name, found in by_subset.items() if len(found) == 1 and found[0].codes is not None}
        for index in positions:
            record = self._items[index - self._first]
            if index in self._bad:
                continue
            instances = single.get(record.subset)
            codes = self._codes(instances, index)
            if codes is not None:  # every element checked by the index: deferred, or only counted
                try:
                    path = join.text(record.images_dir, record.file_name, location=record.file_name)
                except DatasetError as exc:
                    bad_item(exc)
                    continue
                deferred: Any = ()
                if count_only:
                    for kind, count in _kinds_of(codes).items():
                        not_stored(kind, count)
                else:
                    assert instances is not None  # it gave the codes
                    deferred = self._deferred(instances, record, index, codes)
                yield Item(id=record.id, subset=record.subset, media=Media.from_file(path, size=record.size),
                           annotations=deferred, attributes=record.attributes)
                continue
            annotations: list[Annotation] = []
            state = _ItemState(record)
            counts: collections.Counter[str] = collections.Counter()
            try:
                for source in by_subset.get(record.subset, ()):
                    for element in source.hits(index):
                        annotations.extend(self._convert(source, element, state))
                if count_only:  # built and checked as for any target (the same items are skipped), then counted
                    counts = collections.Counter(annotation.kind for annotation in annotations)
                    annotations = []
                path = join.text(record.images_dir, record.file_name, location=record.file_name)
            except DatasetError as exc:  # one bad annotation (or image path) skips its item under the policy
                bad_item(exc)
                continue
            for kind, count in counts.items():
                not_stored(kind, count)
            yield Item(
                id=record.id,
                subset=record.subset,
                media=Media.from_file(path, size=record.size),
                annotations=annotations,
                attributes=record.attributes,
            )

    @staticmethod
    def _codes(source: _Source | None, index: int) -> list[int] | None:
        """The kinds codes of the item's elements (see :func:`_plain_code`), when the index checked every one
        of them in ``source`` (its subset's only instances file); else None."""
        if source is None:
            return None
        lo, hi = source.span(index)
        codes = source.codes[lo:hi].tolist()
        return None if -1 in codes else codes

    def _deferred(self, source: _Source, record: _ItemRecord, index: int, codes: list[int]) -> _Deferred:
        """The item's annotations as a :class:`_Deferred` (their ``codes`` from :meth:`_codes`)."""
        lo, hi = source.span(index)
        deferred = _Deferred(self, source, record, source.order[lo:hi].tolist(), codes)
        if self._pending is None:
            self._pending = weakref.WeakSet()
        self._pending.add(deferred)
        return deferred

    def _convert(self, source: _Source, element: int, state: _ItemState) -> list[Annotation]:
        assert source.json is not None
        where = f"{source.name}: annotations[{element}]"
        ann = source.json.element(element)
        task = source.task
        if task == PANOPTIC:
            return self._panoptic(source, ann, where, state)
        ann_id = ann["id"]
        if type(ann_id) is not int:
            ann_id = _int(ann_id, f"{where}.id")
        known = SHAPE_ANN_KEYS if task in SHAPE_TASKS else CAPTION_ANN_KEYS if task == CAPTIONS else LABEL_ANN_KEYS
        attributes = _attributes(ann, known, where)
        if task == CAPTIONS:
            caption = _require(ann, "caption", where)
            if not isinstance(caption, str):
                raise DatasetError(f"expected a string, got {caption!r}", f"{where}.caption")
            return [Caption(caption=caption, id=ann_id, attributes=attributes)]
        label = self._category(source, ann["category_id"], where)
        if task == LABELS:
            if label is None:
                raise DatasetError("a label annotation needs a declared category", f"{where}.category_id")
            return [Label(label=label, id=ann_id, attributes=attributes)]
        crowd = ann.get("iscrowd", _MISSING)
        if crowd is not _MISSING:
            attributes[CROWD_ATTR] = bool(crowd if type(crowd) is int else _int(crowd, f"{where}.iscrowd"))
        if task == PERSON_KEYPOINTS:
            joined = state.instances.get(ann_id)
            if joined is not None and joined[1] == label:
                return _points(ann, label, ann_id, joined[0], attributes, where)
        if task != INSTANCES:
            attributes[TASK_ATTR] = task
        group = state.group(ann_id)
        if task == INSTANCES:
            state.instances[ann_id] = (group, label)
        shapes = _shapes(ann, label, ann_id, group, attributes, where, state.record.size)
        if "keypoints" in ann:
            shapes.extend(_points(ann, label, ann_id, group, attributes, where))
        return shapes

    def _panoptic(self, source: _Source, ann: dict, where: str, state: _ItemState) -> list[Annotation]:
        file_name = _require(ann, "file_name", where)
        if not isinstance(file_name, str):
            raise DatasetError(f"expected a string, got {file_name!r}", f"{where}.file_name")
        png = join_within(source.panoptic_dir, file_name, location=f"{where}.file_name")
        segments = ann["segments_info"]
        listed = frozenset(_int(_require(s, "id", f"{where}.segments_info[{j}]"), f"{where}.segments_info[{j}].id")
                           for j, s in enumerate(segments))
        masks: list[Annotation] = []
        for j, segment in enumerate(segments):
            seg_where = f"{where}.segments_info[{j}]"
            seg_id = _int(segment["id"], f"{seg_where}.id")
            label = self._category(source, segment["category_id"], seg_where)
            attributes = _attributes(segment, SEGMENT_KEYS, seg_where)
            attributes[CROWD_ATTR] = bool(_int(_require(segment, "iscrowd", seg_where), f"{seg_where}.iscrowd"))
            if label is not None and label in self._info["isthing"]:
                attributes[ISTHING_ATTR] = self._info["isthing"][label]
            attributes[TASK_ATTR] = PANOPTIC
            masks.append(
                Mask(
                    label=label,
                    id=seg_id,
                    attributes=attributes,
                    loader=_SegmentLoader(self, png, seg_id, listed, seg_where),
                )
            )
        return masks

    def panoptic_ids(self, png: Path) -> tuple[Any, Any]:
        """The segment-id image of a panoptic PNG (``R + 256*G + 256^2*B``) and its distinct ids; cached."""
        if self._png is not None and self._png[0] == png:
            return self._png[1], self._png[2]
        import numpy as np
        from PIL import Image

        try:
            with open_binary(png) as stream, Image.open(stream) as image:
                rgb = np.asarray(image.convert("RGB"), dtype=np.uint32)
        except DatasetError:
            raise
        except Exception as exc:
            raise DatasetError(f"cannot read panoptic PNG: {exc}", str(png)) from None
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        self._png = (png, ids, frozenset(np.unique(ids).tolist()))
        return ids, self._png[2]

    def shards(self, count: int) -> list[Shard]:
        """About ``count`` ranges of images (read one with ``shard="START:STOP"``, or :meth:`shard_reader`)."""
        return range_shards(len(self._items), count)

    def shard_reader(self, key: str) -> CocoReader:
        """A reader of the range shard ``key`` that reuses this open reader's index, for a scale-out worker.

        It is picklable and small: the shard's image records, and per task file the byte spans of the
        shard's annotations. Entering it on the worker reads nothing; its items are parsed from those spans.
        """
        positions = shard_range(key)
        assert positions is not None and not self._first
        clone = copy.copy(self)
        clone.positions, clone._indexed, clone._png, clone._pending = None, True, None, None
        clone._first = positions.start
        clone._items = self._items[positions.start : positions.stop]
        clone._by_key, clone._by_id = {}, {}
        clone._bad = {i for i in self._bad if i in positions}
        clone._sources = []
        for source in self._sources:
            part = copy.copy(source)
            if source.keys is not None:
                lo, hi = source.keys.searchsorted([positions.start, positions.stop])
                part.order, part.keys, part.bounds = source.order[lo:hi], source.keys[lo:hi], None
                if source.codes is not None:
                    part.codes = source.codes[lo:hi]
            assert isinstance(source.json, JsonFile)
            part.json = JsonView(source.json, part.order if part.order is not None else ())
            clone._sources.append(part)
        return clone

    def planned_media(self) -> Iterator[PlannedMedia] | None:
        """The media of the items this (shard) reader yields, in order: each image record's file, its size from
        the file system (see :mod:`dsformats.placement`). None for a dataset in an archive or on object storage."""
        return self._planned_media() if is_local(self.path) else None

    def _planned_media(self) -> Iterator[PlannedMedia]:
        positions = range(self._first, self._first + len(self._items))  # as items() reads them
        if self.positions is not None:
            positions = positions[self.positions.start : self.positions.stop]
        for index in positions:
            if index in self._bad:
                continue
            record = self._items[index - self._first]
            if not is_local(record.images_dir):
                yield PlannedMedia(record.subset, record.id, "", None)
                continue
            try:
                size: int | None = os.stat(f"{record.images_dir}/{record.file_name}").st_size
            except OSError:
                size = None
            yield PlannedMedia(record.subset, record.id, posixpath.splitext(record.file_name)[1].lower(), size)


class _Deferred(DeferredAnnotations):
    """The annotations of one item of an instances file, built from its JSON elements when first read.

    The index checked every element (:func:`_plain_code`), so building cannot fail. It is also the raw
    form (:meth:`raw`) the COCO writer copies: :meth:`element` parses one element again, :meth:`label`
    names its category, :meth:`convert` builds only that element's annotations.
    """

    format = "coco"
    possible_kinds = frozenset({"bbox", "polygon", "mask"})  # see _kinds_of

    def __init__(
        self, reader: CocoReader, source: _Source, record: _ItemRecord, elements: list[int], codes: list[int]
    ) -> None:
        super().__init__()
        self.reader, self.source, self.record, self.elements, self.codes = reader, source, record, elements, codes
        self.state = _ItemState(record)

    def build(self) -> list[Annotation]:
        state = _ItemState(self.record)
        return [shape for ann in self.parsed() for shape in self._shapes(ann, state)]

    def _shapes(self, ann: dict[str, Any], state: _ItemState) -> list[Annotation]:
        """What :meth:`CocoReader._convert` makes of a checked element, without checking it again."""
        ann_id, label, attributes, bbox, polygons, rle = self.fields(ann)
        group = state.group(ann_id)
        shapes: list[Annotation] = []
        if bbox is not None:
            x, y, w, h = bbox
            shapes.append(Bbox(x=x, y=y, w=w, h=h, label=label, id=ann_id, group=group, attributes=attributes))
        for part in polygons:
            shapes.append(Polygon(points=part, label=label, id=ann_id, group=group, attributes=attributes))
        if rle is not None:
            shapes.append(Mask(rle=rle, label=label, id=ann_id, group=group, attributes=attributes))
        return shapes

    def kinds(self) -> dict[str, int]:
        return _kinds_of(self.codes)

    def raw(self) -> _Deferred:
        return self

    @property
    def labels(self) -> dict[int, str]:
        """Category id -> label, for the elements' file."""
        return self.source.labels

    @staticmethod
    def polygons(segmentation: list[Any]) -> list[list[Any]]:
        """The polygons of a checked, non-empty polygon ``segmentation`` (one flat list, or a list of them)."""
        return [part for part in segmentation if part] if type(segmentation[0]) is list else [segmentation]

    def parsed(self) -> list[dict[str, Any]]:
        """The JSON objects of :attr:`elements`, parsed again."""
        assert self.source.json is not None
        return self.source.json.elements(self.elements)

    def plain(self) -> list[Any]:
        """Per element of :attr:`elements`: its :func:`.fastdecode.record_decoder` record when it is a box and
        polygons with a numeric area and no other key, else its JSON object parsed again.

        A record's ``segmentation`` and ``bbox`` are JSON text without whitespace, the polygons as a list of
        non-empty lists (``[]`` for none), exactly as :meth:`polygons` gives them; numbers keep their text.
        """
        from .fastdecode import NOT_PLAIN, record_decoder

        json = self.source.json
        assert json is not None
        decode, loads = record_decoder(), json.loads
        out = []
        for element, code, raw in zip(self.elements, self.codes, json.raw_elements(self.elements), strict=True):
            if code & 3 == 1:
                try:
                    record = decode(raw)
                except NOT_PLAIN:
                    pass
                else:
                    if memoryview(record.area)[0] in _NUMBER_START:
                        record.bbox = bytes(record.bbox).translate(None, _SPACE)
                        if not code >> 2:
                            record.segmentation = b"[]"
                            out.append(record)
                            continue
                        polygons = record.segmentation = bytes(record.segmentation).translate(None, _SPACE)
                        # nested lists (no flat polygon), as many as non-empty polygons (no empty one)
                        if polygons[1] == 0x5B and polygons.count(b"[") == (code >> 2) + 1:
                            out.append(record)
                            continue
            out.append(loads(raw, element))
        return out

    def fields(
        self, ann: dict[str, Any]
    ) -> tuple[int, str, dict[str, Any], list[Any] | None, list[list[Any]], Rle | None]:
        """``(id, label, attributes, bbox or None, polygons, RLE or None)`` of a parsed element.

        Exactly what :meth:`build` gives its box, polygons and mask (the attributes dict is a new one).
        """
        if PLAIN_ANN_KEYS.issuperset(ann):  # as _attributes, fast: "area" is the only key with no model field
            attributes = {AREA_ATTR: ann[AREA_ATTR]} if AREA_ATTR in ann else {}
        else:
            attributes = _attributes(ann, SHAPE_ANN_KEYS, "")
        if "iscrowd" in ann:
            attributes[CROWD_ATTR] = bool(ann["iscrowd"])
        segmentation = ann.get("segmentation")
        polygons: list[list[Any]] = []
        rle = None
        if type(segmentation) is dict:
            (height, width), counts = segmentation["size"], segmentation["counts"]
            plain = type(counts) is str or _INT_TYPE.issuperset(map(type, counts))
            if plain and type(height) is int and type(width) is int:
                rle = Rle(size=(height, width), counts=counts)  # checked by the index: as _rle gives it
            else:
                rle = _rle(segmentation, "", self.record.size)
        elif segmentation:
            polygons = self.polygons(segmentation)
        return ann["id"], self.source.labels[ann["category_id"]], attributes, ann["bbox"] or None, polygons, rle

    def convert(self, element: int) -> list[Annotation]:
        """The annotations of one element, as :meth:`build` makes them (elements in order, each at most once)."""
        return self.reader._convert(self.source, element, self.state)


_PLAIN_IMAGE_KEYS = frozenset(IMAGE_KEYS)  # the image records CocoReader._plain_image adds
#: Annotation files with this many elements are indexed by two processes (see CocoReader._index).
_FORK_INDEX_FROM = 20_000
_INVALID = object()  # an element that is not valid JSON
_NUMBER_START = frozenset(b"-0123456789")  # the first bytes of a JSON number
_SPACE = b" \t\r\n"  # JSON whitespace


def _typed_images(json: JsonFile) -> list[Any] | None:
    """The ``images`` list decoded by :func:`.fastdecode.images_decoder`, when every record is a common one."""
    from .fastdecode import NOT_PLAIN, images_decoder

    raw = json.section_bytes("images")
    if raw is None:
        return None
    try:
        return images_decoder()(raw)
    except NOT_PLAIN:
        return None


def _kinds_of(codes: list[int]) -> dict[str, int]:
    """The annotations that elements of these kinds codes give, by kind (as :meth:`CocoReader._convert` makes them)."""
    counts: dict[str, int] = {}
    for code in codes:  # box, polygons, mask
        if code & 1:
            counts["bbox"] = counts.get("bbox", 0) + 1
        if code >> 2:
            counts["polygon"] = counts.get("polygon", 0) + (code >> 2)
        if code & 2:
            counts["mask"] = counts.get("mask", 0) + 1
    return counts


def _plain_code(ann: dict, size: tuple[int, int] | None) -> int:
    """What an instances annotation that :meth:`CocoReader._convert` turns into shapes without error holds.

    ``1`` for a box, ``2`` for an RLE mask, plus 4 per polygon; -1 for anything else (an error, keypoints,
    no shape, a value that is converted): such an item is built and checked when it is read, as before.
    """
    nested = ann.get("attributes")
    if (nested is not None and type(nested) is not dict) or "keypoints" in ann:
        return -1
    if "score" in ann and type(ann["score"]) is not int and type(ann["score"]) is not float:
        return -1
    if type(ann.get("iscrowd", 0)) is not int:
        return -1
    bbox = ann.get("bbox")
    if type(bbox) is not list:
        return -1
    code = 0
    if bbox:
        if len(bbox) != 4 or not _NUMBER_TYPES.issuperset(map(type, bbox)):
            return -1
        code = 1
    segmentation = ann.get("segmentation")
    if type(segmentation) is list:
        for part in segmentation if segmentation and type(segmentation[0]) is list else [segmentation]:
            if type(part) is not list:
                return -1
            if part:
                if len(part) % 2 or len(part) < 6 or not _NUMBER_TYPES.issuperset(map(type, part)):
                    return -1
                code += 4
    elif type(segmentation) is dict:
        try:
            _rle(segmentation, "", size)
        except DatasetError:
            return -1
        code |= 2
    elif segmentation is not None:
        return -1
    return code if 0 < code < 1 << 14 else -1


def _decoded_code(plain: Any, size: tuple[int, int] | None) -> int:
    """:func:`_plain_code` of an element decoded by :func:`.fastdecode.index_decoder` (its types are checked)."""
    bbox = plain.bbox
    code = 0
    if bbox:
        if len(bbox) != 4:
            return -1
        code = 1
    segmentation = plain.segmentation
    if type(segmentation) is list:
        for part in segmentation:
            if part:
                if len(part) % 2 or len(part) < 6:
                    return -1
                code += 4
    elif segmentation is not None:
        try:
            _rle({"size": segmentation.size, "counts": segmentation.counts}, "", size)
        except DatasetError:
            return -1
        code |= 2
    return code if 0 < code < 1 << 14 else -1


def _says_anything(value: Any) -> bool:
    """False for null, "", 0, false, and lists and objects holding only those (placeholders)."""
    if isinstance(value, dict):
        return any(map(_says_anything, value.values()))
    if isinstance(value, list):
        return any(map(_says_anything, value))
    return bool(value)


class _SegmentLoader:
    """Loads one panoptic segment as a bitmap, checking the PNG against ``segments_info``."""

    def __init__(self, reader: CocoReader, png: Path, seg_id: int, listed: frozenset[int], where: str) -> None:
        self.reader, self.png, self.seg_id, self.listed, self.where = reader, png, seg_id, listed, where

    def __call__(self) -> Any:
        ids, present = self.reader.panoptic_ids(self.png)
        if self.seg_id not in present:
            raise DatasetError(f"segment id {self.seg_id} does not occur in {self.png.name}", self.where)
        unlisted = sorted(present - self.listed - {0})
        if unlisted:
            raise DatasetError(
                f"{self.png.name} has segment ids {unlisted[:5]} that segments_info does not list", self.where
            )
        return ids == self.seg_id


class _ItemState:
    """Per-item bookkeeping while its task files are merged: groups in use, instances by annotation id."""

    def __init__(self, record: _ItemRecord) -> None:
        self.record = record
        self.used: set[int] = set()
        self.instances: dict[int, tuple[int, str | None]] = {}

    def group(self, ann_id: int) -> int:
        """``ann_id`` when free in this item, else a fresh group number."""
        group = ann_id if ann_id and ann_id not in self.used else max(self.used | {0}) + 1
        self.used.add(group)
        return group


_CATEGORY_KEYS = frozenset({"id", "name", "supercategory", "isthing", "keypoints", "skeleton"})


def _attributes(ann: dict, known: frozenset[str], where: str) -> dict[str, Any]:
    """The annotation's ``attributes`` dict, then every key with no model field, then ``score``."""
    nested = ann.get("attributes")
    attributes = dict(_dict(nested, f"{where}.attributes")) if nested is not None else {}
    if not known.issuperset(ann):  # type: ignore[union-attr]
        for key, value in ann.items():
            if key not in known:
                attributes[key] = value
    if "score" in ann:
        attributes[SCORE_ATTR] = _number(ann["score"], f"{where}.score")
    return attributes


def _shapes(
    ann: dict, label: str | None, ann_id: int, group: int, attributes: dict, where: str, size: Any
) -> list[Annotation]:
    shapes: list[Annotation] = []
    segmentation = ann.get("segmentation")
    bbox = ann.get("bbox", _MISSING)
    if bbox is _MISSING:
        if not segmentation:
            raise DatasetError("missing key 'bbox'", where)
        bbox = []
    if bbox is None or not isinstance(bbox, list) or (bbox and len(bbox) != 4):
        raise DatasetError(f"bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}", f"{where}.bbox")
    if bbox:
        x, y, w, h = _numbers(bbox, where, ".bbox")
        shapes.append(Bbox(x=x, y=y, w=w, h=h, label=label, id=ann_id, group=group, attributes=attributes))
    if isinstance(segmentation, list):
        parts = segmentation if segmentation and isinstance(segmentation[0], list) else [segmentation]
        for j, part in enumerate(parts):
            if not isinstance(part, list):
                raise DatasetError(
                    f"expected a polygon (list of numbers), got {part!r}", f"{where}.segmentation[{j}]"
                )
            if not part:
                continue
            if type(part) is not list or not _NUMBER_TYPES.issuperset(map(type, part)):
                _numbers(part, where, f".segmentation[{j}]")
            if len(part) % 2 or len(part) < 6:
                raise DatasetError(
                    f"a polygon needs an even number (>= 6) of coordinates, got {len(part)}",
                    f"{where}.segmentation[{j}]",
                )
            shapes.append(Polygon(points=part, label=label, id=ann_id, group=group, attributes=attributes))
    elif isinstance(segmentation, dict):
        rle = _rle(segmentation, f"{where}.segmentation", size)
        shapes.append(Mask(rle=rle, label=label, id=ann_id, group=group, attributes=attributes))
    elif segmentation is not None:
        raise DatasetError(f"expected polygons or an RLE object, got {segmentation!r}", f"{where}.segmentation")
    return shapes


def _rle(segmentation: dict, where: str, size: tuple[int, int] | None) -> Rle:
    rle_size = _require(segmentation, "size", where)
    if not isinstance(rle_size, list) or len(rle_size) != 2:
        raise DatasetError(f"RLE size must be [height, width], got {rle_size!r}", f"{where}.size")
    height, width = (_int(v, f"{where}.size") for v in rle_size)
    if size is not None and (width, height) != tuple(size):
        raise DatasetError(
            f"RLE size {height}x{width} does not match the image size {size[1]}x{size[0]} (height x width)",
            f"{where}.size",
        )
    counts = _require(segmentation, "counts", where)
    if isinstance(counts, list):
        _numbers(counts, f"{where}.counts")
        if sum(counts) != height * width or (counts and min(counts) < 0):
            raise DatasetError(f"RLE counts sum to {sum(counts)}, expected {height * width}", f"{where}.counts")
        if not _INT_TYPE.issuperset(map(type, counts)):  # integral floats (4.0) become ints
            counts = [_int(c, f"{where}.counts") for c in counts]
    elif not isinstance(counts, str):
        raise DatasetError(f"RLE counts must be a list or a string, got {counts!r}", f"{where}.counts")
    else:
        from dsformats.masks import decompress_counts

        try:
            runs = decompress_counts(counts)
        except ValueError as exc:
            raise DatasetError(str(exc), f"{where}.counts") from None
        if sum(runs) != height * width or any(c < 0 for c in runs):
            raise DatasetError(f"RLE counts sum to {sum(runs)}, expected {height * width}", f"{where}.counts")
    return Rle(size=(height, width), counts=counts)


def _points(ann: dict, label: str | None, ann_id: int, group: int, attributes: dict, where: str) -> list:
    values = _numbers(_require(ann, "keypoints", where), f"{where}.keypoints")
    if len(values) % 3:
        raise DatasetError(f"keypoints need x, y, v triplets, got {len(values)} values", f"{where}.keypoints")
    points: list[int | float] = []
    visibility: list[int] = []
    for k in range(0, len(values), 3):
        v = values[k + 2]
        if v not in (0, 1, 2):
            raise DatasetError(f"keypoint visibility must be 0, 1 or 2, got {v!r}", f"{where}.keypoints")
        points += values[k : k + 2]
        visibility.append(int(v))
    if not visibility:
        return []
    attributes = {k: v for k, v in attributes.items() if k != TASK_ATTR}
    return [Points(points=points, visibility=visibility, label=label, id=ann_id, group=group, attributes=attributes)]

