"""Safety limits for untrusted input, configurable through environment variables.

| variable | default | guards against |
| --- | --- | --- |
| ``DSFORMATS_ZIP_MAX_MEMBER`` | 4 GiB | one archive member that inflates beyond this size |
| ``DSFORMATS_ZIP_MAX_TOTAL`` | 1 TiB | an archive whose members inflate beyond this in total |
| ``DSFORMATS_ZIP_MAX_RATIO`` | 1000 | a member (over 1 MiB inflated) compressed more than this ratio (zip bombs) |
| ``DSFORMATS_MAX_IMAGE_PIXELS`` | Pillow's limit (89,478,485) | decoding an image (or an RLE mask) with more pixels |

Sizes accept suffixes ``K``, ``M``, ``G`` and ``T`` (powers of 1024). Archives of real images compress by
ratios near 1, so stored archives of tens of GB pass; a 42.zip-style bomb does not.
"""

from __future__ import annotations

import os
import zipfile

from dsformats.errors import DatasetError

__all__ = ["MAX_IMAGE_SIDE", "ZipBudget", "declared_size", "max_image_pixels"]

#: The largest image side a dataset may declare (PNG's limit; no image format stores a larger one).
MAX_IMAGE_SIDE = 2**31 - 1

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_RATIO_FLOOR = 1 << 20  # members smaller than this may compress arbitrarily well


def _size(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip().upper().removesuffix("IB").removesuffix("B")
    if not text:
        return default
    unit = text[-1] if text[-1] in _UNITS else ""
    try:
        return int(float(text[: len(text) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise DatasetError(f"invalid size {os.environ[name]!r} in {name}") from None


def declared_size(width: int | float, height: int | float) -> tuple[tuple[int, int] | None, bool]:
    """``(size, odd)`` for the width and height a dataset declares for an image: ``(width, height)`` when both are
    whole numbers from 1 to :data:`MAX_IMAGE_SIDE`, else None; ``odd`` when it is None for another reason than a
    zero side, which tools write for "unknown" (readers warn about an odd size and read the image's header)."""
    if 0 < width <= MAX_IMAGE_SIDE and 0 < height <= MAX_IMAGE_SIDE and width == int(width) and height == int(height):
        return (int(width), int(height)), False
    return None, bool(width and height or width < 0 or height < 0)


def max_image_pixels() -> int | None:
    """The decode limit in pixels (``DSFORMATS_MAX_IMAGE_PIXELS``; 0 disables it)."""
    value = _size("DSFORMATS_MAX_IMAGE_PIXELS", 89_478_485)
    return value or None


class ZipBudget:
    """Checks the declared sizes of an archive's members before any of them is inflated.

    ``zipfile`` never inflates a member beyond its declared size, so checking the declarations is enough.
    """

    def __init__(self, archive: str) -> None:
        self.archive = archive
        self.max_member = _size("DSFORMATS_ZIP_MAX_MEMBER", 4 << 30)
        self.max_total = _size("DSFORMATS_ZIP_MAX_TOTAL", 1 << 40)
        self.max_ratio = _size("DSFORMATS_ZIP_MAX_RATIO", 1000)
        self.total = 0

    def check(self, info: zipfile.ZipInfo) -> None:
        """Raise :class:`DatasetError` naming the member when it breaks a limit."""
        self.check_sizes(info.filename, info.file_size, info.compress_size)

    def check_sizes(self, name: str, size: int, compressed: int) -> None:
        """:meth:`check` of member ``name`` from its declared sizes."""
        self.total += size
        if size <= _RATIO_FLOOR and size <= self.max_member and self.total <= self.max_total:
            return  # the common case: a small member within every limit
        self.total -= size
        where = f"{self.archive}!{name}"
        if size > self.max_member:
            raise DatasetError(
                f"member inflates to {size:,} bytes, over the limit of {self.max_member:,} "
                "(DSFORMATS_ZIP_MAX_MEMBER)",
                where,
            )
        if size > _RATIO_FLOOR and size > self.max_ratio * max(compressed, 1):
            raise DatasetError(
                f"member compression ratio {size / max(compressed, 1):,.0f} exceeds "
                f"{self.max_ratio} (DSFORMATS_ZIP_MAX_RATIO); this looks like a zip bomb",
                where,
            )
        self.total += size
        if self.total > self.max_total:
            raise DatasetError(
                f"archive inflates to more than {self.max_total:,} bytes (DSFORMATS_ZIP_MAX_TOTAL)", where
            )
