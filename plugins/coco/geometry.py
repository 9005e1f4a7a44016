"""Segmentation conversions for the writer, with numpy and pycocotools (no per-pixel Python loops).

Polygons here use pixel-edge coordinates: pixel ``(x, y)`` covers the square ``[x, x+1] x [y, y+1]``, which
pycocotools rasterises back to exactly that pixel. :func:`mask_to_polygons` therefore round-trips every
pixel, including 1-pixel-thin parts that contour tracers drop.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from dsformats import Rle


def to_coco_rle(rle: Rle) -> dict[str, Any]:
    """A pycocotools (compressed) RLE object for ``rle``."""
    height, width = rle.size
    if isinstance(rle.counts, str):
        return {"size": [height, width], "counts": rle.counts.encode("ascii")}
    return mask_utils.frPyObjects({"size": [height, width], "counts": list(rle.counts)}, height, width)


def polygons_bitmap(polygons: Sequence[Sequence[float]], height: int, width: int) -> Any:
    """Rasterise polygons (flat coordinate lists) into one bool bitmap."""
    rles = mask_utils.frPyObjects([[float(v) for v in p] for p in polygons], height, width)
    with warnings.catch_warnings():
        # pycocotools' Cython decode trips numpy 2's __array__(copy=...) DeprecationWarning
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def bitmap_rle(bitmap: Any) -> dict[str, Any]:
    """A pycocotools RLE object for a bool bitmap."""
    return mask_utils.encode(np.asfortranarray(bitmap.astype(np.uint8)))


def rle_area(coco_rle: dict[str, Any]) -> int:
    """Foreground pixel count."""
    return int(mask_utils.area(coco_rle))


def rle_bbox(coco_rle: dict[str, Any]) -> list[float]:
    """``[x, y, w, h]`` of the foreground, as pycocotools computes it."""
    return [float(v) for v in mask_utils.toBbox(coco_rle)]


def polygons_area(polygons: Sequence[Sequence[float]], size: tuple[int, int] | None) -> float:
    """Pixel area when the image size ``(width, height)`` is known, else the shoelace area."""
    if size is not None:
        width, height = size
        rles = mask_utils.frPyObjects([[float(v) for v in p] for p in polygons], height, width)
        return float(mask_utils.area(mask_utils.merge(rles)))
    total = 0.0
    for p in polygons:
        xs, ys = np.asarray(p[0::2], dtype=float), np.asarray(p[1::2], dtype=float)
        total += abs(float(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))) / 2
    return total


def polygons_bbox(polygons: Sequence[Sequence[float]]) -> list[float]:
    """``[x, y, w, h]`` enclosing every polygon vertex."""
    xs = [v for p in polygons for v in p[0::2]]
    ys = [v for p in polygons for v in p[1::2]]
    return [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]


def mask_to_polygons(bitmap: Any) -> list[list[int]]:
    """Exact polygons covering a bool bitmap: horizontal runs chained row to row into staircase outlines.

    Each chain of overlapping runs on consecutive rows becomes one simple polygon; a pixel belongs to
    exactly one chain, so the union of the polygons rasterises back to the bitmap.
    """
    array = np.asarray(bitmap, dtype=bool)
    padded = np.pad(array, ((0, 0), (1, 1))).astype(np.int8)
    diff = np.diff(padded, axis=1)
    starts = np.argwhere(diff == 1)
    ends = np.argwhere(diff == -1)
    chains: list[list[tuple[int, int, int]]] = []
    previous: list[tuple[int, int, int]] = []  # (start, end, chain index) on the previous row
    current: list[tuple[int, int, int]] = []
    row_of_previous = -2
    row = -1
    taken: set[int] = set()
    for (r, s), (_, e) in zip(starts.tolist(), ends.tolist(), strict=True):
        if r != row:
            if row >= 0:
                previous, row_of_previous = current, row
            current, row, taken = [], r, set()
        chain = None
        if row_of_previous == r - 1:
            for ps, pe, index in previous:
                if ps < e and s < pe and index not in taken:
                    chain = index
                    break
        if chain is None:
            chain = len(chains)
            chains.append([])
        taken.add(chain)
        chains[chain].append((r, s, e))
        current.append((s, e, chain))
    return [_outline(chain) for chain in chains]


def _outline(chain: list[tuple[int, int, int]]) -> list[int]:
    vertices: list[tuple[int, int]] = []
    for r, s, _ in chain:
        vertices += [(s, r), (s, r + 1)]
    for r, _, e in reversed(chain):
        vertices += [(e, r + 1), (e, r)]
    simplified: list[tuple[int, int]] = []
    for v in vertices:
        if simplified and simplified[-1] == v:
            continue
        if len(simplified) >= 2:
            (x0, y0), (x1, y1) = simplified[-2], simplified[-1]
            if (x0 == x1 == v[0]) or (y0 == y1 == v[1]):
                simplified[-1] = v
                continue
        simplified.append(v)
    while len(simplified) > 3 and (
        simplified[0] == simplified[-1]
        or simplified[-2][0] == simplified[-1][0] == simplified[0][0]
        or simplified[-2][1] == simplified[-1][1] == simplified[0][1]
    ):
        simplified.pop()
    return [c for v in simplified for c in v]


def bitmap_to_counts(bitmap: Any) -> list[int]:
    """Uncompressed COCO RLE counts (column-major, first run counts zeros) of a bool bitmap."""
    from dsformats.masks import bitmap_to_rle

    counts = bitmap_to_rle(bitmap).counts
    assert not isinstance(counts, str)  # uncompressed by default
    return list(counts)
