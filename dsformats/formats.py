"""Format metadata and the reader/writer contracts that plugins implement."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

import attrs

from dsformats.errors import OptionError
from dsformats.model import ANNOTATION_KINDS, Header, Item
from dsformats.options import Option
from dsformats.report import Report

__all__ = [
    "PLUGIN_API_VERSION", "RANGE_SHARD", "FormatSpec", "Reader", "Shard", "Writer", "range_shards", "shard_range",
]

#: The major version of the plugin API (hooks, model, FormatSpec). A plugin declares the version it was
#: built for in ``FormatSpec.api_version``; a different major version is refused when plugins load.
PLUGIN_API_VERSION = 1

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def _strs(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _kinds(values: Iterable[str]) -> frozenset[str]:
    return frozenset(values)


def _options(values: Iterable[Option]) -> tuple[Option, ...]:
    return tuple(values)


def _alias_dict(values: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: dict(preset) for name, preset in values.items()}


def _check_kinds(_inst: object, _attr: object, value: frozenset[str]) -> None:
    unknown = set(value) - ANNOTATION_KINDS
    if unknown:
        raise ValueError(f"unknown annotation kinds {sorted(unknown)}; known: {sorted(ANNOTATION_KINDS)}")


def _check_options(_inst: object, attr: attrs.Attribute, value: tuple[Option, ...]) -> None:
    names = [n for o in value for n in (o.name, *o.aliases)]
    if len(set(names)) != len(names):
        raise ValueError(f"{attr.name} declares an option name twice: {names}")


@attrs.frozen(kw_only=True)
class FormatSpec:
    """What a plugin declares about one format. Cheap to build: no heavy imports.

    ``annotation_kinds`` lists the kinds the format stores (see ``dsformats.model.ANNOTATION_KINDS``); the
    dispatcher drops and counts the others before they reach the writer. ``extensions`` are the file
    suffixes the format's inputs typically have (``.zip``, ``.json``). ``aliases`` are other names that
    select this format, possibly with preset writer options (``{"coco_instances": {"tasks": "instances"}}``).
    ``api_version`` is the plugin API major version the format was built for.
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(_NAME))
    description: str = ""
    extensions: tuple[str, ...] = attrs.field(default=(), converter=_strs)
    can_read: bool = True
    can_write: bool = True
    annotation_kinds: frozenset[str] = attrs.field(default=frozenset(), converter=_kinds, validator=_check_kinds)
    reader_options: tuple[Option, ...] = attrs.field(default=(), converter=_options, validator=_check_options)
    writer_options: tuple[Option, ...] = attrs.field(default=(), converter=_options, validator=_check_options)
    aliases: dict[str, dict[str, Any]] = attrs.field(factory=dict, converter=_alias_dict, hash=False)
    api_version: int = PLUGIN_API_VERSION

    def reads_file(self, name: str) -> bool:
        """Whether an input file named ``name`` goes to this format's reader as it is (its suffix is one of
        ``extensions``: an image_zip ``.zip``, a COCO ``.json``), rather than opened as an archive of a tree."""
        lowered = name.lower()
        return any(lowered.endswith(ext.lower()) for ext in self.extensions)

    @aliases.validator
    def _check_aliases(self, _attr: object, value: Mapping[str, Any]) -> None:
        for alias in value:
            if not _NAME.match(alias):
                raise ValueError(f"alias {alias!r} is not a valid format name")


@attrs.frozen
class Shard:
    """An independent part of a dataset that a reader can read on its own (for scale-out engines).

    ``key`` is JSON-serialisable and is passed back as the reader option ``shard``; ``size_hint`` counts
    its items when cheap to know.
    """

    key: Any
    description: str = ""
    size_hint: int | None = None


#: The reader option of readers whose shards are ranges of item positions (``shards(count)`` via
#: :func:`range_shards`): ``"START:STOP"`` reads items START to STOP-1, counted in reading order.
RANGE_SHARD = Option(
    name="shard",
    default=None,
    metavar="START:STOP",
    help="read only the items at positions START..STOP-1 in reading order (a key from the reader's shards())",
)


def range_shards(total: int, count: int) -> list[Shard]:
    """``count`` (at most ``total``) contiguous ranges of ``total`` item positions, as ``"START:STOP"`` shards.

    The last quarter of them are half as long as the others (given at least two items a shard): the workers
    of a scale-out conversion (a quarter of the shards each, by default) then finish closer together, and a
    merge that takes each part as its shard is done has little left after the last one.
    """
    count = max(1, min(count, total))
    short = count // 4 if total >= 2 * count else 0
    weights = list(itertools.accumulate([2] * (count - short) + [1] * short, initial=0))
    bounds = [round(weight * total / weights[-1]) for weight in weights]
    return [Shard(f"{a}:{b}", f"items {a}..{b - 1}", b - a) for a, b in itertools.pairwise(bounds)]


def shard_range(key: str | None) -> range | None:
    """The item positions of a ``"START:STOP"`` shard key (None: every item); OptionError when malformed."""
    if key is None:
        return None
    start, _, stop = str(key).partition(":")
    if not (start.isdigit() and stop.isdigit() and int(start) <= int(stop)):
        raise OptionError(f"reader option shard: expected START:STOP item positions, got {key!r}")
    return range(int(start), int(stop))


@runtime_checkable
class Reader(Protocol):
    """A dataset being read: a context manager with a header and a single-pass item iterator.

    Items and their media are valid only while the reader is open. Readers may also define
    ``shards(count) -> list[Shard]`` when their input splits into independent parts: their natural parts
    (the archives of a directory of zips), or about ``count`` ranges of items (:func:`range_shards`, read
    back through the :data:`RANGE_SHARD` option) that the reader can start without reading what precedes.
    """

    header: Header

    def __enter__(self) -> Reader: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None: ...

    def items(self) -> Iterator[Item]:
        """Yield the items once, lazily, in a stable order."""
        ...


@runtime_checkable
class Writer(Protocol):
    """A dataset being written into a directory that the dispatcher provides and later publishes."""

    def __enter__(self) -> Writer: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None: ...

    def write(self, header: Header, items: Iterable[Item], report: Report) -> None:
        """Consume ``items`` (any iterable, consumed once) and record what was written in ``report``."""
        ...
