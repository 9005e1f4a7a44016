"""The error policy for bad items, and the warning channel of readers and writers.

Readers and writers call :func:`bad_item` when one item cannot be used, then skip that item if the call
returns: the default policy raises (fail on the first bad item), ``--skip-bad-items`` records the error in
the report and returns. :func:`warn` records a warning in the current conversion's report (and logs it).
The dispatcher sets both up for the duration of a conversion.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

from dsformats.errors import DatasetError
from dsformats.report import Report

__all__ = ["bad_item", "collecting", "reporting", "warn"]

_log = logging.getLogger("dsformats")
_current: contextvars.ContextVar[tuple[Report, bool] | None] = contextvars.ContextVar(
    "dsformats_reporting", default=None
)
_collected: contextvars.ContextVar[list[DatasetError] | None] = contextvars.ContextVar(
    "dsformats_collected", default=None
)


def bad_item(error: DatasetError) -> None:
    """Raise ``error`` under the default policy; under ``--skip-bad-items``, record it and return."""
    current = _current.get()
    if current is None or not current[1]:
        raise error
    _log.warning("skipped: %s", error)
    current[0].skipped.append(str(error))
    collected = _collected.get()
    if collected is not None:
        collected.append(error)


def warn(message: str) -> None:
    """Record a warning in the current conversion's report (logged when there is none)."""
    current = _current.get()
    if current is None:
        _log.warning("%s", message)
    else:
        current[0].warn(message)


@contextlib.contextmanager
def reporting(report: Report, *, skip_bad_items: bool = False) -> Iterator[None]:
    """Within the block, :func:`warn` and :func:`bad_item` report into ``report``."""
    token = _current.set((report, skip_bad_items))
    try:
        yield
    finally:
        _current.reset(token)


@contextlib.contextmanager
def collecting() -> Iterator[list[DatasetError]]:
    """Within the block, errors skipped by :func:`bad_item` are also appended to the yielded list."""
    errors: list[DatasetError] = []
    token = _collected.set(errors)
    try:
        yield errors
    finally:
        _collected.reset(token)
