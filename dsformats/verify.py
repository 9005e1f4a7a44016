"""Decode everything a dataset holds and list what is broken: the library side of ``info --verify``.

Conversions copy images byte for byte whenever they can, so a corrupt or truncated image passes through
unnoticed until something decodes it. :func:`verify` reads a dataset under the skip-bad-items policy and
decodes every image and every mask, collecting each failure with its location instead of stopping.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from dsformats.errors import DatasetError
from dsformats.policy import collecting, reporting
from dsformats.report import Report

if TYPE_CHECKING:  # pragma: no cover
    from dsformats.registry import Registry

__all__ = ["verify"]


def _where(error: DatasetError, fallback: str) -> str:
    return error.location or fallback


def verify(
    path: str | os.PathLike[str], format: str | None = None, *, registry: Registry | None = None
) -> list[tuple[str, DatasetError]]:
    """Decode every image and mask of the dataset at ``path``; return ``[(location, error), ...]``.

    An empty list means every item could be read and decoded. Bad items that the reader skips (broken XML,
    bad annotations, unsafe paths) are listed too; a dataset that cannot be opened at all gives one entry.
    The format is detected when not given; unknown or ambiguous formats raise as in :func:`dsformats.read`.
    """
    from dsformats.dispatch import read

    problems: list[tuple[str, DatasetError]] = []
    report = Report()
    with reporting(report, skip_bad_items=True), collecting() as skipped:
        try:
            with read(path, format, registry=registry) as reader:
                for item in reader.items():
                    where = f"{item.subset}/{item.id}"
                    if item.media is not None:
                        try:
                            item.media.open_image().close()
                        except DatasetError as exc:
                            problems.append((_where(exc, item.media.name), exc))
                    for ann in item.annotations:
                        to_bitmap = getattr(ann, "to_bitmap", None)
                        if to_bitmap is None:
                            continue
                        try:
                            to_bitmap()
                        except DatasetError as exc:
                            problems.append((_where(exc, where), exc))
        except DatasetError as exc:
            problems.append((_where(exc, str(path)), exc))
    return [(_where(exc, str(path)), exc) for exc in skipped] + problems
