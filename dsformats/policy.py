"""The error policy for bad items: fail on the first (the default), or skip and report them.

Readers and writers call :func:`bad_item` when one item cannot be used, then skip that item if the call
returns. The dispatcher chooses the policy for the duration of a conversion.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

from dsformats.errors import DatasetError
from dsformats.report import Report

__all__ = ["bad_item", "skipping_bad_items"]

_log = logging.getLogger("dsformats")
_report: contextvars.ContextVar[Report | None] = contextvars.ContextVar("dsformats_skip_report", default=None)


def bad_item(error: DatasetError) -> None:
    """Raise ``error`` under the default policy; under ``--skip-bad-items``, record it and return."""
    report = _report.get()
    if report is None:
        raise error
    _log.warning("skipped: %s", error)
    report.skipped.append(str(error))


@contextlib.contextmanager
def skipping_bad_items(report: Report, enabled: bool = True) -> Iterator[None]:
    """Within the block, :func:`bad_item` records into ``report`` instead of raising (when ``enabled``)."""
    token = _report.set(report if enabled else None)
    try:
        yield
    finally:
        _report.reset(token)
