"""The conformance kit: the checks every format passes, for the built-ins and for third-party plugins.

Use it in two ways.

* Subclass :class:`FormatConformance` in a test module and set ``format_name``; pytest collects every
  ``test_*`` method (name your subclass ``Test...``)::

      from dsformats.testing import FormatConformance

      class TestYoloConformance(FormatConformance):
          format_name = "yolo"
          tolerance = 1e-6          # YOLO stores normalised floats

* Or call the ``assert_*`` functions from your own tests; each raises ``AssertionError`` with a message
  naming the format and what went wrong.

The checks: metadata (:func:`assert_metadata`), round trip of generated items (:func:`assert_round_trip`),
a lazy single-pass reader (:func:`assert_reader_is_lazy`), a writer fed by a one-shot iterator
(:func:`assert_writer_accepts_iterator`), detection (:func:`assert_detects_own_output`,
:func:`assert_does_not_claim_others`), options refused early (:func:`assert_unknown_options_refused`) and
atomic output (:func:`assert_failed_write_leaves_no_output`).

This module is not imported by ``import dsformats``; pytest, Pillow and numpy are imported inside the
functions. Add ``pytest_plugins = ["dsformats.testing"]`` to a ``conftest.py`` for the fixtures
``dsformats_registry`` and ``dsformats_items``.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import dsformats
from dsformats.detect import Confidence
from dsformats.errors import OptionError
from dsformats.formats import PLUGIN_API_VERSION
from dsformats.imaging import IMAGE_SUFFIXES, same_encoding
from dsformats.model import (
    ANNOTATION_KINDS,
    Annotation,
    Bbox,
    Caption,
    Categories,
    Header,
    Item,
    KeypointSchema,
    Label,
    LabelDef,
    Mask,
    Media,
    Points,
    Polygon,
    PolyLine,
)
from dsformats.registry import Registry, build_registry

__all__ = [
    "FormatConformance",
    "MediaAccessLog",
    "assert_detects_own_output",
    "assert_does_not_claim_others",
    "assert_failed_write_leaves_no_output",
    "assert_items_equal",
    "assert_metadata",
    "assert_reader_is_lazy",
    "assert_round_trip",
    "assert_unknown_options_refused",
    "assert_writer_accepts_iterator",
    "canonical_item",
    "generate_items",
    "random_image",
]

#: Label names used by generated items: plain, with a digit and with a space.
DEFAULT_LABELS = ("cat", "dog2", "traffic light")
#: The keypoint schema generated ``points`` annotations use (label ``person``).
KEYPOINT_LABEL = "person"
KEYPOINT_NAMES = ("nose", "left_eye", "right_eye")

Normalizer = Callable[[Item], Item]
#: Modules a plugin's entry-point module must not import (the metadata has to load without them).
HEAVY_MODULES = ("PIL", "numpy", "orjson", "json", "defusedxml", "xml.etree", "pycocotools")


# ------------------------------------------------------------------------------------------ generation


def random_image(rng: random.Random, width: int, height: int, suffix: str) -> bytes:
    """Encode an RGB image of random (not constant) pixels for ``suffix`` (``.png``, ``.jpg``, ...)."""
    import io

    from PIL import Image

    pixels = bytes(rng.getrandbits(8) for _ in range(width * height * 3))
    image = Image.frombytes("RGB", (width, height), pixels)
    Image.init()
    out = io.BytesIO()
    image.save(out, format=Image.registered_extensions()[suffix.lower()])
    return out.getvalue()


def _random_id(rng: random.Random, taken: set[str]) -> str:
    words = ("img", "frame", "photo", "shot", "x")
    while True:
        stem = f"{rng.choice(words)}{rng.randrange(10_000)}"
        depth = rng.choice((0, 0, 1, 2))
        parts = [f"d{rng.randrange(100)}" for _ in range(depth)] + [stem]
        item_id = "/".join(parts)
        # Unique across subsets and case-insensitively, so that every format can hold the ids.
        if item_id.lower() not in taken and not any(t.startswith(item_id + "/") for t in taken):
            taken.add(item_id.lower())
            return item_id


def _box(rng: random.Random, width: int, height: int) -> tuple[int, int, int, int]:
    x, y = rng.randrange(0, width - 2), rng.randrange(0, height - 2)
    return x, y, rng.randrange(1, width - x), rng.randrange(1, height - y)


def _polygon(rng: random.Random, width: int, height: int, vertices: int) -> list[int]:
    x, y, w, h = _box(rng, width, height)
    # Corners of a box, with extra vertices on its top edge: never self-intersecting, never degenerate.
    w, h = max(w, 2), max(h, 2)
    x, y = min(x, width - 1 - w), min(y, height - 1 - h)
    top = sorted(rng.sample(range(x + 1, x + w), min(vertices - 3, w - 1))) if vertices > 3 else []
    points = [x, y, *[c for t in top for c in (t, y)], x + w, y, x + w, y + h, x, y + h]
    return points if len(points) >= 6 else [x, y, x + w, y, x, y + h]


def _annotations(rng: random.Random, kinds: Iterable[str], labels: Sequence[str], size: tuple[int, int]) -> list:
    width, height = size
    anns: list[Annotation] = []
    for kind in sorted(kinds):
        if kind == "label":  # image-level labels are a set: no label twice on one image
            anns.extend(Label(label=name) for name in rng.sample(list(labels), rng.randrange(0, min(3, len(labels)))))
            continue
        for _ in range(rng.randrange(0, 3)):
            label = rng.choice(labels)
            if kind == "bbox":
                x, y, w, h = _box(rng, width, height)
                anns.append(Bbox(x=x, y=y, w=w, h=h, label=label))
            elif kind == "polygon":
                anns.append(Polygon(points=_polygon(rng, width, height, rng.randrange(3, 6)), label=label))
            elif kind == "polyline":
                coords = [c for _ in range(rng.randrange(2, 5)) for c in (rng.randrange(width), rng.randrange(height))]
                anns.append(PolyLine(points=coords, label=label))
            elif kind == "points":
                visibility = [rng.choice((1, 2, 2)) for _ in KEYPOINT_NAMES]
                coords = [c for _ in KEYPOINT_NAMES for c in (rng.randrange(width), rng.randrange(height))]
                anns.append(Points(points=coords, visibility=visibility, label=KEYPOINT_LABEL))
            elif kind == "caption":
                anns.append(Caption(caption=f"a {label} number {rng.randrange(1000)}"))
            elif kind == "mask" and not any(isinstance(a, Mask) for a in anns):
                anns.append(_mask(rng, width, height, label))
    # Labels of one kind repeat in a stable order; shuffle so that formats are not tested in kind order only.
    rng.shuffle(anns)
    return anns


def _mask(rng: random.Random, width: int, height: int, label: str) -> Mask:
    import numpy as np

    x, y, w, h = _box(rng, width, height)
    bitmap = np.zeros((height, width), dtype=bool)
    bitmap[y : y + h, x : x + w] = True
    return Mask(loader=lambda: bitmap.copy(), label=label)


def generate_items(
    kinds: Iterable[str] = (),
    *,
    seed: int = 0,
    count: int = 6,
    subsets: Sequence[str] = ("train", "val"),
    labels: Sequence[str] = DEFAULT_LABELS,
    image_suffixes: Sequence[str] = (".png", ".jpg"),
) -> tuple[Header, list[Item]]:
    """A header and ``count`` items with random ids (some nested), subsets, images and annotations.

    Only annotations of ``kinds`` are generated (one mask per item at most). Images are small, of random
    sizes and random pixels, held in memory; ``items[i].media.read_bytes()`` gives their bytes.
    Coordinates are integer pixels inside the image. Deterministic for a given ``seed``.
    """
    rng = random.Random(seed)
    kinds = frozenset(kinds)
    unknown = kinds - ANNOTATION_KINDS
    if unknown:
        raise ValueError(f"unknown annotation kinds: {sorted(unknown)}")
    taken: set[str] = set()
    items = []
    for n in range(count):
        size = (rng.randrange(12, 33), rng.randrange(12, 33))
        suffix = image_suffixes[n % len(image_suffixes)]
        data = random_image(rng, *size, suffix)
        item_id = _random_id(rng, taken)
        media = Media.from_bytes(data, suffix, name=f"<generated {item_id}{suffix}>")
        items.append(
            Item(
                id=item_id,
                subset=subsets[n % len(subsets)],
                media=media,
                annotations=_annotations(rng, kinds, labels, size),
            )
        )
    keypoints = {KEYPOINT_LABEL: KeypointSchema(names=KEYPOINT_NAMES, skeleton=[(0, 1), (0, 2)])}
    label_defs = [LabelDef(name=name) for name in labels]
    if "points" in kinds and KEYPOINT_LABEL not in labels:
        label_defs.append(LabelDef(name=KEYPOINT_LABEL))
    categories = Categories(
        labels=label_defs if kinds - {"caption"} else (), keypoints=keypoints if "points" in kinds else {}
    )
    header = Header(categories=categories, subsets=sorted(set(subsets[: len(items)])), size_hint=len(items))
    return header, items


# ------------------------------------------------------------------------------------------ comparison


def _numbers(values: Iterable[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def canonical_annotation(ann: Annotation) -> tuple[Any, ...]:
    """``(kind, label, payload)`` of an annotation: what the round trip compares.

    Annotation ids, groups, z-orders and attributes are not compared: formats legitimately assign their own
    ids and add attributes of their own (COCO ``iscrowd``, VOC ``difficult``). Numbers become floats; masks
    become their bitmap's shape and packed bits.
    """
    label = getattr(ann, "label", None)
    if isinstance(ann, Bbox):
        return ("bbox", label, _numbers((ann.x, ann.y, ann.w, ann.h)))
    if isinstance(ann, (Polygon, PolyLine)):
        return (ann.kind, label, _numbers(ann.points))
    if isinstance(ann, Points):
        return ("points", label, _numbers(ann.points), tuple(ann.visibility))
    if isinstance(ann, Mask):
        import numpy as np

        bitmap = np.asarray(ann.to_bitmap(), dtype=bool)
        return ("mask", label, bitmap.shape, np.packbits(bitmap).tobytes())
    if isinstance(ann, Caption):
        return ("caption", None, ann.caption)
    return (ann.kind, label)


def canonical_item(item: Item) -> tuple[str, str, list[tuple[Any, ...]]]:
    """``(subset, id, sorted canonical annotations)``; media are compared separately."""
    anns = sorted((canonical_annotation(a) for a in item.annotations), key=_sort_key)
    return item.subset, item.id, anns


def _sort_key(value: tuple[Any, ...]) -> str:
    def rounded(v: Any) -> Any:
        if isinstance(v, tuple):
            return tuple(rounded(x) for x in v)
        return round(v, 3) if isinstance(v, float) else v

    return repr(rounded(value))


def _close(a: Any, b: Any, tolerance: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b if tolerance == 0 else math.isclose(a, b, rel_tol=0, abs_tol=tolerance)
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def assert_items_equal(
    expected: Iterable[Item], actual: Iterable[Item], *, tolerance: float = 0.0, what: str = "round trip"
) -> None:
    """Items equal by ``(subset, id)`` and annotations (see :func:`canonical_annotation`), in any order.

    ``tolerance`` is the absolute difference allowed between coordinates, in pixels (0 = exact).
    """
    want = {(i.subset, i.id): canonical_item(i) for i in expected}
    got = {(i.subset, i.id): canonical_item(i) for i in actual}
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, f"{what}: items missing {missing}, unexpected {extra}"
    for key in sorted(want):
        a, b = want[key][2], got[key][2]
        assert _close(tuple(a), tuple(b), tolerance), (
            f"{what}: annotations of item {key[1]!r} (subset {key[0]!r}) differ"
            f"{f' beyond {tolerance}' if tolerance else ''}:\n  expected {a}\n  got      {b}"
        )


# ------------------------------------------------------------------------------------------ media log


class MediaAccessLog:
    """Records which images are opened: image files through the ``open`` audit event, and every
    :class:`Media` read through its methods. Use as a context manager; nothing is recorded outside it.

    ``count()`` is the number of distinct images opened so far.
    """

    _lock = threading.Lock()
    _active: list[MediaAccessLog] = []
    _hooked = False

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.media: set[int] = set()
        self._saved: dict[str, Any] = {}

    @classmethod
    def _audit(cls, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not cls._active:
            return
        path = args[0] if args else None
        if isinstance(path, (str, os.PathLike)):
            name = os.fspath(path)
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                for log in cls._active:
                    log.files.add(os.path.realpath(name))

    def __enter__(self) -> MediaAccessLog:
        with self._lock:
            if not MediaAccessLog._hooked:
                sys.addaudithook(MediaAccessLog._audit)  # audit hooks cannot be removed: it idles when unused
                MediaAccessLog._hooked = True
        log = self

        def spy(name: str) -> None:
            original = getattr(Media, name)
            self._saved[name] = original

            def wrapper(media: Media, *args: Any, **kwargs: Any) -> Any:
                log.media.add(id(media))
                return original(media, *args, **kwargs)

            setattr(Media, name, wrapper)

        for name in ("open", "read_bytes", "copy_to"):
            spy(name)
        MediaAccessLog._active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        MediaAccessLog._active.remove(self)
        for name, original in self._saved.items():
            setattr(Media, name, original)

    def count(self) -> int:
        """Distinct images opened so far (files and Media objects; a Media read from a file counts once
        or twice, which only makes the check stricter)."""
        return max(len(self.files), len(self.media))


# ------------------------------------------------------------------------------------------ checks


def _reg(registry: Registry | None) -> Registry:
    return registry if registry is not None else build_registry()


def assert_metadata(format_name: str, *, registry: Registry | None = None, check_light_import: bool = True) -> None:
    """The format is registered, built for this plugin API, declares known kinds and options as data.

    With ``check_light_import``, importing the plugin module in a fresh interpreter must not import
    any of :data:`HEAVY_MODULES` (the metadata has to load without heavy dependencies).
    """
    reg = _reg(registry)
    assert format_name in reg.formats, (
        f"format {format_name!r} is not registered (formats: {', '.join(reg.formats)}; "
        f"load errors: {[str(e) for e in reg.load_errors] or 'none'})"
    )
    info = reg.formats[format_name]
    spec = info.spec
    assert spec.name == format_name
    assert spec.api_version == PLUGIN_API_VERSION
    assert spec.description.strip(), f"{format_name}: FormatSpec.description is empty"
    assert spec.can_read or spec.can_write, f"{format_name}: neither reads nor writes"
    assert set(spec.annotation_kinds) <= ANNOTATION_KINDS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in spec.extensions), spec.extensions
    for what, options in (("reader", spec.reader_options), ("writer", spec.writer_options)):
        for option in options:
            assert isinstance(option, dsformats.Option), f"{format_name}: {what} option {option!r} is not an Option"
            assert option.help.strip(), f"{format_name}: {what} option {option.name!r} has no help text"
            if option.default is not None:
                option.convert(option.default)  # the default must be a valid value
        defaults = dsformats.options.validate_options(options, {}, what=f"{what} option")
        assert set(defaults) == {o.name for o in options}
    for alias, preset in spec.aliases.items():
        dsformats.options.validate_options(spec.writer_options, preset, what=f"alias {alias} preset")
    plugin = reg.plugin_manager.get_plugin(info.plugin)
    module = getattr(plugin, "__name__", None)
    if check_light_import and module and type(plugin).__name__ == "module" and module in sys.modules:
        code = (
            f"import sys, {module}; heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules];"
            " print(','.join(heavy))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert out.returncode == 0, f"importing {module} failed: {out.stderr.strip()[-500:]}"
        assert not out.stdout.strip(), (
            f"importing plugin module {module} imports {out.stdout.strip()}; import heavy libraries inside the hooks"
        )


def _write(
    format_name: str,
    items: Iterable[Item],
    dst: Path,
    header: Header,
    options: Mapping[str, Any],
    registry: Registry,
) -> dsformats.Report:
    return dsformats.write(items, dst, format_name, header=header, options=options, registry=registry)


def assert_round_trip(
    format_name: str,
    dst: Path,
    header: Header,
    items: Sequence[Item],
    *,
    writer_options: Mapping[str, Any] | None = None,
    reader_options: Mapping[str, Any] | None = None,
    tolerance: float = 0.0,
    normalize: Normalizer | None = None,
    passthrough: bool = True,
    lossless: bool = True,
    registry: Registry | None = None,
) -> list[Item]:
    """Write ``items`` to ``dst``, read them back and compare.

    Compared: ``(subset, id)``, annotations (:func:`canonical_annotation`, coordinates within
    ``tolerance`` pixels), image sizes, and with ``passthrough`` the image bytes and suffix exactly.
    ``normalize`` maps each item (expected and read back) before comparing: use it for what a format
    changes by design. With ``lossless`` the report must record no drop. Returns the items read back.
    """
    reg = _reg(registry)
    report = _write(format_name, items, dst, header, writer_options or {}, reg)
    assert sum(report.items_written.values()) == len(items), f"{format_name}: report {report.to_dict()}"
    if lossless:
        assert report.lossless, f"{format_name}: writer dropped data it declares it can hold: {report.dropped}"
    expected = {(i.subset, i.id): i for i in items}
    back: list[Item] = []
    with dsformats.read(dst, format_name, options=reader_options, registry=reg) as reader:
        read_labels = reader.header.categories.label_names
        for item in reader.items():
            back.append(item)
            source = expected.get((item.subset, item.id))
            if source is None or source.media is None:
                continue
            assert item.media is not None, f"{format_name}: item {item.id!r} came back without its image"
            assert item.media.size == source.media.size, f"{format_name}: image size of {item.id!r} changed"
            if passthrough:
                assert same_encoding(item.media.suffix, source.media.suffix), (
                    f"{format_name}: {item.id!r} was written {source.media.suffix}, read back {item.media.suffix}"
                )
                assert item.media.read_bytes() == source.media.read_bytes(), (
                    f"{format_name}: image bytes of {item.id!r} changed; a kept suffix must copy bytes unchanged"
                )
    used = {getattr(a, "label", None) for i in items for a in i.annotations} - {None}
    missing = sorted(used - set(read_labels))
    assert not missing, f"{format_name}: labels {missing} are missing from the header read back ({read_labels})"
    norm = normalize or (lambda item: item)
    assert_items_equal(
        [norm(i) for i in items], [norm(i) for i in back], tolerance=tolerance, what=f"{format_name} round trip"
    )
    return back


def assert_reader_is_lazy(
    format_name: str, path: Path, *, reader_options: Mapping[str, Any] | None = None, registry: Registry | None = None
) -> None:
    """Opening the reader opens no image; after ``k`` items at most ``k`` images were opened; ``items()``
    returns an iterator (single pass), not a list."""
    reg = _reg(registry)
    with MediaAccessLog() as log:
        with dsformats.read(path, format_name, options=reader_options, registry=reg) as reader:
            assert log.count() == 0, f"{format_name}: opening the reader opened {log.count()} image(s)"
            items = reader.items()
            assert isinstance(items, Iterator), f"{format_name}: items() must return an iterator, got {type(items)}"
            assert log.count() == 0, f"{format_name}: items() opened images before the first item was taken"
            for n, _item in enumerate(items, 1):
                assert log.count() <= n, (
                    f"{format_name}: {log.count()} images opened after {n} item(s); the reader reads ahead"
                )


class OneShot:
    """An iterable that can be iterated once; a second ``iter()`` raises."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = iter(items)
        self._used = False
        self.taken = 0

    def __iter__(self) -> Iterator[Item]:
        if self._used:
            raise AssertionError("the writer iterated over the items twice; items are a single-pass stream")
        self._used = True
        for item in self._items:
            self.taken += 1
            yield item


def assert_writer_accepts_iterator(
    format_name: str,
    dst: Path,
    header: Header,
    items: Sequence[Item],
    *,
    writer_options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> None:
    """The writer, called directly, consumes a one-shot generator of items exactly once and entirely."""
    reg = _reg(registry)
    info, preset = reg.writer_format(format_name)
    options = dsformats.options.validate_options(
        info.spec.writer_options, {**preset, **(writer_options or {})}, what="writer option"
    )
    dst.mkdir(parents=True, exist_ok=False)
    stream = OneShot(item for item in items)
    report = dsformats.Report()
    with reg.open_writer(info.name, dst, options) as writer:
        writer.write(header, stream, report)
    assert stream.taken == len(items), f"{format_name}: the writer took {stream.taken} of {len(items)} items"
    assert sum(report.items_written.values()) == len(items), f"{format_name}: report {report.to_dict()}"
    assert any(dst.iterdir()), f"{format_name}: the writer wrote nothing"


def assert_detects_own_output(format_name: str, path: Path, *, registry: Registry | None = None) -> None:
    """``path`` (this format's output) is detected as ``format_name`` alone, above NONE."""
    reg = _reg(registry)
    verdicts = reg.detect(path)
    mine = max((d.confidence for d in verdicts if d.format == format_name), default=Confidence.NONE)
    assert mine > Confidence.NONE, f"{format_name}: does not detect its own output: {verdicts}"
    rivals = [d for d in verdicts if d.format != format_name and d.confidence >= mine]
    assert not rivals, f"{format_name}: its own output is claimed as strongly by {rivals}"
    assert dsformats.detect_format(path, registry=reg) == format_name


def assert_does_not_claim_others(
    format_name: str,
    workdir: Path,
    *,
    others: Iterable[str] | None = None,
    registry: Registry | None = None,
    seed: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """Write a small dataset with each other format and check that ``format_name`` claims it with less
    confidence than that format itself (or not at all when that format does not detect it).

    ``others`` defaults to every other writable format of the ``dsformats`` distribution (the built-ins).
    Returns the formats checked, and the formats that could not write a sample with the error (a bug of
    that format, which its own conformance tests report; it does not fail this format's check).
    """
    reg = _reg(registry)
    if others is None:
        others = [n for n, i in reg.formats.items() if i.distribution == "dsformats" and i.spec.can_write]
    checked: list[str] = []
    unavailable: dict[str, str] = {}
    for other in others:
        if other == format_name:
            continue
        spec = reg.get(other).spec
        header, items = generate_items(spec.annotation_kinds, seed=seed, count=3)
        options = {"save_images": True} if any(o.name == "save_images" for o in spec.writer_options) else {}
        out = workdir / f"sample-{other}"
        try:
            _write(other, items, out, header, options, reg)
        except Exception as exc:
            unavailable[other] = repr(exc)[:300]
            continue
        verdicts = reg.detect(out)
        theirs = max((d.confidence for d in verdicts if d.format == other), default=Confidence.NONE)
        mine = [d for d in verdicts if d.format == format_name]
        for verdict in mine:
            assert verdict.confidence == Confidence.NONE or verdict.confidence < theirs, (
                f"{format_name} claims {other}'s output with {verdict.confidence.name} ({verdict.reason}); "
                f"{other} itself says {theirs.name}"
            )
        checked.append(other)
    return checked, unavailable


def assert_unknown_options_refused(
    format_name: str, workdir: Path, src: Path | None = None, *, registry: Registry | None = None
) -> None:
    """Unknown reader and writer options raise :class:`OptionError` before any file is read or written.

    ``src`` is a dataset of any readable format to convert from (optional).
    """
    import pytest

    reg = _reg(registry)
    info = reg.get(format_name)
    bogus = {"no_such_option_xyz": "1"}
    calls: list[str] = []
    missing = workdir / "does-not-exist"
    if info.spec.can_read:
        with _spy_hooks(reg, calls), pytest.raises(OptionError, match="no_such_option_xyz"):
            with dsformats.read(missing, format_name, options=bogus, registry=reg):
                pass
        assert not calls, f"{format_name}: {calls} called before the unknown reader option was refused"
    if info.spec.can_write:
        dst = workdir / "refused-output"
        source = src if src is not None else missing
        with _spy_hooks(reg, calls), pytest.raises(OptionError, match="no_such_option_xyz"):
            dsformats.convert(source, dst, format_name, writer_options=bogus, registry=reg)
        assert not calls, f"{format_name}: {calls} called before the unknown writer option was refused"
        assert not dst.exists(), f"{format_name}: output created although an option was refused"
        with _spy_hooks(reg, calls), pytest.raises(OptionError, match="no_such_option_xyz"):
            dsformats.write(iter(()), dst, format_name, options=bogus, registry=reg)
        assert not calls and not dst.exists()


class _spy_hooks:
    """Record every hook call made through the registry (pluggy's hook-call monitoring)."""

    def __init__(self, registry: Registry, calls: list[str]) -> None:
        self.registry = registry
        self.calls = calls
        self.undo: Callable[[], None] | None = None

    def __enter__(self) -> _spy_hooks:
        def before(hook_name: str, impls: Any, kwargs: Any) -> None:
            self.calls.append(hook_name)

        def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
            return None

        self.undo = self.registry.plugin_manager.add_hookcall_monitoring(before, after)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.undo is not None:
            self.undo()


class _Boom(Exception):
    """Raised by the kit's failing item stream."""


def assert_failed_write_leaves_no_output(
    format_name: str,
    workdir: Path,
    header: Header,
    items: Sequence[Item],
    *,
    writer_options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> None:
    """A stream that fails mid-way propagates its error, leaves no output, no staging directory, and
    leaves an existing output untouched when overwriting."""
    import pytest

    reg = _reg(registry)
    assert len(items) >= 2, "give at least two items"

    def failing() -> Iterator[Item]:
        yield from items[: len(items) // 2 + 1]
        raise _Boom("the item stream failed mid-way")

    before = set(workdir.iterdir()) if workdir.exists() else set()
    dst = workdir / "failed-output"
    with pytest.raises(_Boom):
        _write(format_name, failing(), dst, header, writer_options or {}, reg)
    assert not dst.exists(), f"{format_name}: a failed write left {dst}"
    assert set(workdir.iterdir()) == before, f"{format_name}: a failed write left {set(workdir.iterdir()) - before}"

    kept = workdir / "kept-output"
    kept.mkdir()
    (kept / "old.txt").write_text("old")
    with pytest.raises(_Boom):
        dsformats.write(
            failing(), kept, format_name, header=header, options=writer_options, overwrite=True, registry=reg
        )
    assert [p.name for p in kept.iterdir()] == ["old.txt"], f"{format_name}: a failed overwrite changed {kept}"


# ------------------------------------------------------------------------------------------ test class


class FormatConformance:
    """Subclass as ``class TestMyFormat(FormatConformance): format_name = "myformat"``.

    Class attributes customise the generated data and the comparison:

    * ``format_name``: the format under test.
    * ``plugins``: plugin objects to register in code (with ``entrypoints`` to also load the installed ones).
    * ``kinds``: annotation kinds to generate; default: every kind the format declares.
    * ``subsets``, ``labels``, ``image_suffixes``, ``item_count``, ``seed``: the generated items.
    * ``writer_options``, ``reader_options``: used for every write and read; ``save_images=True`` is added
      when the format declares that option.
    * ``tolerance``: absolute coordinate difference allowed, in pixels (0 = exact). For formats that store
      normalised or rounded coordinates (YOLO).
    * ``passthrough``: image bytes and suffix must be kept exactly (turn off only for formats that
      re-encode by design).
    * ``lossless``: the report must record no drop for the generated items.
    * ``other_formats``: formats whose outputs must not be claimed; default: the other built-ins.

    Override :meth:`make_items` to generate your own data and :meth:`normalize` to map items (expected and
    read back) before the comparison, for what the format changes by design.
    """

    format_name: ClassVar[str] = ""
    plugins: ClassVar[Sequence[object]] = ()
    entrypoints: ClassVar[bool] = True
    kinds: ClassVar[Iterable[str] | None] = None
    subsets: ClassVar[Sequence[str]] = ("train", "val")
    labels: ClassVar[Sequence[str]] = DEFAULT_LABELS
    image_suffixes: ClassVar[Sequence[str]] = (".png", ".jpg")
    item_count: ClassVar[int] = 6
    seed: ClassVar[int] = 0
    writer_options: ClassVar[Mapping[str, Any]] = {}
    reader_options: ClassVar[Mapping[str, Any]] = {}
    tolerance: ClassVar[float] = 0.0
    passthrough: ClassVar[bool] = True
    lossless: ClassVar[bool] = True
    other_formats: ClassVar[Sequence[str] | None] = None

    # -- customisation points
    def make_registry(self) -> Registry:
        """The registry under test: installed plugins plus ``plugins``."""
        return build_registry(entrypoints=self.entrypoints, plugins=self.plugins)

    def make_items(self, registry: Registry) -> tuple[Header, list[Item]]:
        """The header and items to write; by default :func:`generate_items` for the declared kinds."""
        spec = registry.get(self.format_name).spec
        kinds = spec.annotation_kinds if self.kinds is None else frozenset(self.kinds)
        return generate_items(
            kinds,
            seed=self.seed,
            count=self.item_count,
            subsets=self.subsets,
            labels=self.labels,
            image_suffixes=self.image_suffixes,
        )

    def normalize(self, item: Item) -> Item:
        """Map an item before comparison (applied to expected and read-back items); identity by default."""
        return item

    def options_for_writing(self, registry: Registry) -> dict[str, Any]:
        """``writer_options``, plus ``save_images=True`` when the format has that option."""
        spec = registry.get(self.format_name).spec
        options = dict(self.writer_options)
        if any(o.name == "save_images" for o in spec.writer_options):
            options.setdefault("save_images", True)
        return options

    # -- plumbing
    def _setup(self) -> tuple[Registry, Header, list[Item]]:
        assert self.format_name, f"{type(self).__name__} must set format_name"
        registry = self.make_registry()
        assert self.format_name in registry.formats, (
            f"format {self.format_name!r} is not installed (formats: {', '.join(registry.formats)}; "
            f"load errors: {[str(e) for e in registry.load_errors] or 'none'})"
        )
        header, items = self.make_items(registry)
        return registry, header, items

    def _written(self, tmp_path: Path) -> tuple[Registry, Header, list[Item], Path]:
        registry, header, items = self._setup()
        out = tmp_path / "written"
        _write(self.format_name, items, out, header, self.options_for_writing(registry), registry)
        return registry, header, items, out

    def _require(self, registry: Registry, read: bool = True, write: bool = True) -> None:
        import pytest

        spec = registry.get(self.format_name).spec
        if (read and not spec.can_read) or (write and not spec.can_write):
            pytest.skip(f"{self.format_name} does not {'read' if read and not spec.can_read else 'write'}")

    # -- the checks
    def test_metadata(self) -> None:
        assert_metadata(self.format_name, registry=self._setup()[0])

    def test_round_trip(self, tmp_path: Path) -> None:
        registry, header, items = self._setup()
        self._require(registry)
        assert_round_trip(
            self.format_name,
            tmp_path / "out",
            header,
            items,
            writer_options=self.options_for_writing(registry),
            reader_options=self.reader_options,
            tolerance=self.tolerance,
            normalize=self.normalize,
            passthrough=self.passthrough,
            lossless=self.lossless,
            registry=registry,
        )

    def test_reader_is_lazy(self, tmp_path: Path) -> None:
        registry, _header, _items, out = self._written(tmp_path)
        self._require(registry)
        assert_reader_is_lazy(self.format_name, out, reader_options=self.reader_options, registry=registry)

    def test_writer_accepts_iterator(self, tmp_path: Path) -> None:
        registry, header, items = self._setup()
        self._require(registry, read=False)
        assert_writer_accepts_iterator(
            self.format_name, tmp_path / "out", header, items,
            writer_options=self.options_for_writing(registry), registry=registry,
        )

    def test_detects_own_output(self, tmp_path: Path) -> None:
        registry, _header, _items, out = self._written(tmp_path)
        self._require(registry)
        assert_detects_own_output(self.format_name, out, registry=registry)

    def test_does_not_claim_others(self, tmp_path: Path) -> None:
        import pytest

        registry = self._setup()[0]
        _checked, unavailable = assert_does_not_claim_others(
            self.format_name, tmp_path, others=self.other_formats, registry=registry
        )
        if unavailable:  # shown by pytest -ra: the other formats' own conformance tests fail on this
            pytest.skip(f"checked the others, but these formats could not write a sample: {unavailable}")

    def test_unknown_options_refused(self, tmp_path: Path) -> None:
        registry, _header, _items, out = self._written(tmp_path) if self._can_write() else (*self._setup(), None)
        assert_unknown_options_refused(self.format_name, tmp_path, out, registry=registry)

    def _can_write(self) -> bool:
        return self.make_registry().get(self.format_name).spec.can_write

    def test_failed_write_leaves_no_output(self, tmp_path: Path) -> None:
        registry, header, items = self._setup()
        self._require(registry, read=False)
        workdir = tmp_path / "work"
        workdir.mkdir()
        assert_failed_write_leaves_no_output(
            self.format_name, workdir, header, items, writer_options=self.options_for_writing(registry),
            registry=registry,
        )


# ------------------------------------------------------------------------------------------ pytest plugin

try:  # the fixtures exist only under pytest (``pytest_plugins = ["dsformats.testing"]``)
    import pytest as _pytest
except ImportError:  # pragma: no cover
    _pytest = None  # type: ignore[assignment]

if _pytest is not None:

    @_pytest.fixture
    def dsformats_registry() -> Registry:
        """A freshly built registry of the installed plugins."""
        return build_registry()

    @_pytest.fixture
    def dsformats_items() -> Callable[..., tuple[Header, list[Item]]]:
        """:func:`generate_items`, as a fixture: ``header, items = dsformats_items({"bbox"}, seed=3)``."""
        return generate_items

