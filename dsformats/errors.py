"""Exceptions raised by dsformats and by format plugins.

Every error a user can cause derives from :class:`DsformatsError`. The CLI prints its message (never a
traceback) and exits with :attr:`DsformatsError.exit_code`.
"""

from __future__ import annotations

import re
from types import TracebackType

__all__ = [
    "AmbiguousFormatError",
    "DatasetError",
    "DsformatsError",
    "DuplicateFormatError",
    "DuplicateItemError",
    "FormatNotFoundError",
    "OptionError",
    "OutputExistsError",
    "PluginLoadError",
    "UnknownFormatError",
    "naming",
]


class DsformatsError(Exception):
    """Base class of all errors that a user can cause; the message is meant for people."""

    exit_code = 1


class DatasetError(DsformatsError):
    """Bad input or unwritable output. ``location`` names the file, archive member or JSON path.

    A member of an archive opened by dsformats, which paths spell as an fsspec URL
    (``dszip://a/b.xml::file:///data/x.zip``, maybe with ``:line``), is shown as ``/data/x.zip!a/b.xml``.
    """

    def __init__(self, message: str, location: str | None = None) -> None:
        self.location = _readable(location) if location else location
        super().__init__(f"{self.location}: {message}" if self.location else message)


_ARCHIVE_MEMBER = re.compile(r"^ds(?:zip|tar)://(?P<member>.*?)::(?:file://)?(?P<archive>.+?)(?P<line>:\d+)?$")


def _readable(location: str) -> str:
    match = _ARCHIVE_MEMBER.match(location) if location.startswith("ds") else None
    if match is None:
        return location
    return f"{match['archive']}!{match['member']}{match['line'] or ''}"


class naming:  # noqa: N801 - used as a function, like contextlib.suppress
    """``with naming(location):`` a :class:`DatasetError` raised in the block without a location gets ``location``
    (for example an item, around work on its annotations whose own errors cannot know it). A class, not a
    generator: entered once an item on hot paths."""

    __slots__ = ("location",)

    def __init__(self, location: str) -> None:
        self.location = location

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
                 ) -> None:
        if isinstance(exc, DatasetError) and exc.location is None:
            raise DatasetError(str(exc), self.location) from None


class DuplicateItemError(DatasetError):
    """Two items share the same ``(subset, id)``."""


class OutputExistsError(DsformatsError):
    """The output exists and ``overwrite`` was not given."""

    exit_code = 1


class OptionError(DsformatsError):
    """An unknown or invalid reader/writer option, detected before anything is read."""

    exit_code = 2


class UnknownFormatError(DsformatsError):
    """A format name that no loaded plugin provides (or that cannot read/write as asked)."""

    exit_code = 2


class FormatNotFoundError(DsformatsError):
    """Detection found no format for a path."""

    exit_code = 2


class AmbiguousFormatError(DsformatsError):
    """Detection found several formats with the same, highest confidence."""

    exit_code = 3

    def __init__(self, message: str, candidates: list[str]) -> None:
        self.candidates = candidates
        super().__init__(message)


class PluginLoadError(DsformatsError):
    """A plugin failed to load or to validate (raised only in strict mode)."""


class DuplicateFormatError(PluginLoadError):
    """Two plugins declare the same format name."""
