"""Exact comparison of items (with an optional tolerance for formats that store normalised numbers) and of
output trees, byte for byte."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dsformats.model import (
    Annotation,
    Bbox,
    Caption,
    Item,
    Mask,
    Points,
    Polygon,
    PolyLine,
)


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


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under the directory ``root`` by POSIX relative path, with its bytes (``root`` may be a file)."""
    if root.is_file():
        return {root.name: root.read_bytes()}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_trees_equal(expected: Path, actual: Path, *, what: str = "output") -> None:
    """The same files, with the same bytes, under both directories; the message names the files that differ."""
    want, got = read_tree(expected), read_tree(actual)
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    differ = sorted(name for name in set(want) & set(got) if want[name] != got[name])
    assert not (missing or extra or differ), f"{what}: missing {missing}, unexpected {extra}, different bytes {differ}"
