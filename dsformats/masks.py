"""Binary-mask codecs: COCO run-length encoding (list and compressed string) to and from numpy bitmaps.

numpy is imported by the functions that need it, never at module import.
"""

from __future__ import annotations

from typing import Any

from dsformats.errors import DatasetError
from dsformats.limits import max_image_pixels
from dsformats.model import Rle

__all__ = ["bitmap_to_rle", "compress_counts", "decompress_counts", "rle_area", "rle_to_bitmap"]


def decompress_counts(text: str) -> list[int]:
    """Decode COCO's compressed RLE string (as written by pycocotools) into run lengths."""
    counts: list[int] = []
    pos, end = 0, len(text)
    while pos < end:
        value, shift, more = 0, 0, True
        while more:
            if pos >= end:
                raise ValueError("truncated compressed RLE string")
            c = ord(text[pos]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {text[pos]!r} in compressed RLE string")
            value |= (c & 0x1F) << shift
            more = bool(c & 0x20)
            pos += 1
            shift += 5
            if not more and c & 0x10:
                value |= -1 << shift
        if len(counts) > 2:
            value += counts[-2]
        counts.append(value)
    return counts


def compress_counts(counts: list[int] | tuple[int, ...]) -> str:
    """Encode run lengths as COCO's compressed RLE string (identical to pycocotools' output)."""
    out: list[str] = []
    for i, count in enumerate(counts):
        value = count - counts[i - 2] if i > 2 else count
        more = True
        while more:
            c = value & 0x1F
            value >>= 5
            more = value != -1 if c & 0x10 else value != 0
            if more:
                c |= 0x20
            out.append(chr(c + 48))
    return "".join(out)


def _counts(rle: Rle) -> list[int]:
    return decompress_counts(rle.counts) if isinstance(rle.counts, str) else list(rle.counts)


def rle_area(rle: Rle) -> int:
    """Number of foreground pixels."""
    return sum(_counts(rle)[1::2])


def rle_to_bitmap(rle: Rle) -> Any:
    """Decode to a numpy bool array of shape ``(height, width)``."""
    import numpy as np

    height, width = rle.size
    limit = max_image_pixels()
    if limit is not None and height * width > limit:  # checked before anything that size is allocated
        raise DatasetError(f"an RLE mask of {width}x{height} pixels is over the decode limit of {limit:,} pixels "
                           "(DSFORMATS_MAX_IMAGE_PIXELS)")
    counts = np.asarray(_counts(rle), dtype=np.int64)
    if (counts < 0).any() or counts.sum() != height * width:
        raise ValueError(f"RLE counts sum to {int(counts.sum())}, expected {height}x{width}={height * width}")
    values = np.zeros(len(counts), dtype=bool)
    values[1::2] = True
    flat = np.repeat(values, counts)
    return flat.reshape((width, height)).T


def bitmap_to_rle(bitmap: Any, *, compressed: bool = False) -> Rle:
    """Encode a 2-D bool-like array as :class:`Rle` (column-major, first run counts zeros)."""
    import numpy as np

    array = np.asarray(bitmap).astype(bool)
    height, width = array.shape
    flat = array.T.reshape(-1)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        runs.insert(0, 0)
    counts = compress_counts(runs) if compressed else tuple(runs)
    return Rle(size=(height, width), counts=counts)
