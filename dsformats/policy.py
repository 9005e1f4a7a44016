"""The error policy for bad items, and the warning channel of readers and writers.

Readers and writers call :func:`bad_item` when one item cannot be used, then skip that item if the call
returns: the default policy raises (fail on the first bad item), ``--skip-bad-items`` records the error in
the report and returns. :func:`warn` records a warning in the current conversion's report (and logs it).
The dispatcher sets both up for the duration of a conversion. :func:`writing_partial` tells a writer that
it writes one shard of a scale-out conversion, whose partial output its format's merge hook will combine.
:func:`stored_kinds` tells a reader which annotation kinds the conversion's target can store, so that it
may skip building the others and only count them with :func:`not_stored`. :func:`placement` tells a shard's
writer where its part goes in the merged output (see :mod:`dsformats.placement`).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

from dsformats.errors import DatasetError
from dsformats.placement import Placement
from dsformats.report import Report

__all__ = [
    "bad_item", "collecting", "not_stored", "partial_output", "placement", "placing", "reporting", "stored_kinds",
    "storing", "warn", "writing_partial",
]

_log = logging.getLogger("dsformats")
_current: contextvars.ContextVar[tuple[Report, bool] | None] = contextvars.ContextVar(
    "dsformats_reporting", default=None
)
_collected: contextvars.ContextVar[list[DatasetError] | None] = contextvars.ContextVar(
    "dsformats_collected", default=None
)
_partial: contextvars.ContextVar[bool] = contextvars.ContextVar("dsformats_partial", default=False)
_placement: contextvars.ContextVar[Placement | None] = contextvars.ContextVar("dsformats_placement", default=None)
_storing: contextvars.ContextVar[tuple[str, frozenset[str], Report] | None] = contextvars.ContextVar(
    "dsformats_storing", default=None
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


def writing_partial() -> bool:
    """True while a writer writes one shard of a scale-out conversion (see ``dsformats_merge``).

    The partial output is never published: only the format's merge hook reads it. A writer whose merge
    needs more than its ordinary files (state known only after the last item, such as ids assigned from
    the whole dataset) may leave that state in its output instead of finishing the files.
    """
    return _partial.get()


@contextlib.contextmanager
def partial_output() -> Iterator[None]:
    """Within the block, :func:`writing_partial` is True (set by scale-out engines around a shard's write)."""
    token = _partial.set(True)
    try:
        yield
    finally:
        _partial.reset(token)


def placement() -> Placement | None:
    """Where the current shard's part goes in the merged output, when the scale-out engine placed it (see
    :mod:`dsformats.placement`); None otherwise. A writer that cannot use it ignores it."""
    return _placement.get()


@contextlib.contextmanager
def placing(where: Placement | None) -> Iterator[None]:
    """Within the block, :func:`placement` returns ``where`` (set by the local scale-out engine around a shard)."""
    token = _placement.set(where)
    try:
        yield
    finally:
        _placement.reset(token)


def not_stored_reason(target: str, kind: str) -> str:
    """The report's reason for dropping ``kind`` annotations that the format ``target`` cannot store."""
    return f"{target} cannot store {kind} annotations"


def stored_kinds() -> frozenset[str] | None:
    """The annotation kinds the current conversion's target stores; None when there is no such target.

    Annotations of other kinds are dropped (and counted) by the dispatcher. A reader may instead skip
    building them and report them with :func:`not_stored`: the conversion's report is then the same.
    """
    current = _storing.get()
    return None if current is None else current[1]


def not_stored(kind: str, count: int = 1) -> None:
    """Count ``count`` annotations of ``kind`` that a reader skipped because the target cannot store them."""
    current = _storing.get()
    if current is None:
        raise RuntimeError("not_stored() outside a conversion (stored_kinds() returned None)")
    target, _kinds, report = current
    report.drop(kind, not_stored_reason(target, kind), count)


@contextlib.contextmanager
def storing(target: str, kinds: frozenset[str], report: Report) -> Iterator[None]:
    """Within the block, :func:`stored_kinds` returns ``kinds`` (set by the dispatcher around a write)."""
    token = _storing.set((target, frozenset(kinds), report))
    try:
        yield
    finally:
        _storing.reset(token)
