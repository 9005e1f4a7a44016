"""The conformance checks, as ``assert_*`` functions."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dsformats
from dsformats.detect import Confidence
from dsformats.errors import OptionError
from dsformats.formats import PLUGIN_API_VERSION
from dsformats.imaging import IMAGE_SUFFIXES, same_encoding
from dsformats.model import (
    ANNOTATION_KINDS,
    Header,
    Item,
    Media,
)
from dsformats.registry import Registry, build_registry
from dsformats.testing.compare import assert_items_equal
from dsformats.testing.generate import HEAVY_MODULES, Normalizer, generate_items

# ------------------------------------------------------------------------------------------ media log


class MediaAccessLog:
    """Records which images are opened: image files through the ``open`` audit event, and every
    :class:`Media` read through its methods. Use as a context manager; nothing is recorded outside it.

    ``count()`` is the number of distinct images opened so far.
    """

    _lock = threading.Lock()
    _active: list[MediaAccessLog] = []
    _hooked = False

    def __init__(self) -> None:
        self.files: set[str] = set()
        self.media: set[int] = set()
        self._saved: dict[str, Any] = {}

    @classmethod
    def _audit(cls, event: str, args: tuple[Any, ...]) -> None:
        if event != "open" or not cls._active:
            return
        path = args[0] if args else None
        if isinstance(path, (str, os.PathLike)):
            name = os.fspath(path)
            if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                for log in cls._active:
                    log.files.add(os.path.realpath(name))

    def __enter__(self) -> MediaAccessLog:
        with self._lock:
            if not MediaAccessLog._hooked:
                sys.addaudithook(MediaAccessLog._audit)  # audit hooks cannot be removed: it idles when unused
                MediaAccessLog._hooked = True
        log = self

        def spy(name: str) -> None:
            original = getattr(Media, name)
            self._saved[name] = original

            def wrapper(media: Media, *args: Any, **kwargs: Any) -> Any:
                log.media.add(id(media))
                return original(media, *args, **kwargs)

            setattr(Media, name, wrapper)

        for name in ("open", "read_bytes", "copy_to"):
            spy(name)
        MediaAccessLog._active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        MediaAccessLog._active.remove(self)
        for name, original in self._saved.items():
            setattr(Media, name, original)

    def count(self) -> int:
        """Distinct images opened so far (files and Media objects; a Media read from a file counts once
        or twice, which only makes the check stricter)."""
        return max(len(self.files), len(self.media))


# ------------------------------------------------------------------------------------------ checks


def _reg(registry: Registry | None) -> Registry:
    return registry if registry is not None else build_registry()


def assert_metadata(format_name: str, *, registry: Registry | None = None, check_light_import: bool = True) -> None:
    """The format is registered, built for this plugin API, declares known kinds and options as data.

    With ``check_light_import``, importing the plugin module in a fresh interpreter must not import
    any of :data:`HEAVY_MODULES` (the metadata has to load without heavy dependencies).
    """
    reg = _reg(registry)
    assert format_name in reg.formats, (
        f"format {format_name!r} is not registered (formats: {', '.join(reg.formats)}; "
        f"load errors: {[str(e) for e in reg.load_errors] or 'none'})"
    )
    info = reg.formats[format_name]
    spec = info.spec
    assert spec.name == format_name
    assert spec.api_version == PLUGIN_API_VERSION
    assert spec.description.strip(), f"{format_name}: FormatSpec.description is empty"
    assert spec.can_read or spec.can_write, f"{format_name}: neither reads nor writes"
    assert set(spec.annotation_kinds) <= ANNOTATION_KINDS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in spec.extensions), spec.extensions
    for what, options in (("reader", spec.reader_options), ("writer", spec.writer_options)):
        for option in options:
            assert isinstance(option, dsformats.Option), f"{format_name}: {what} option {option!r} is not an Option"
            assert option.help.strip(), f"{format_name}: {what} option {option.name!r} has no help text"
            if option.default is not None:
                option.convert(option.default)  # the default must be a valid value
        defaults = dsformats.options.validate_options(options, {}, what=f"{what} option")
        assert set(defaults) == {o.name for o in options}
    for alias, preset in spec.aliases.items():
        dsformats.options.validate_options(spec.writer_options, preset, what=f"alias {alias} preset")
    plugin = reg.plugin_manager.get_plugin(info.plugin)
    module = getattr(plugin, "__name__", None)
    if check_light_import and module and type(plugin).__name__ == "module" and module in sys.modules:
        code = (
            f"import sys, {module}; heavy = [m for m in {HEAVY_MODULES!r} if m in sys.modules]; print(','.join(heavy))"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
        assert out.returncode == 0, f"importing {module} failed: {out.stderr.strip()[-500:]}"
        assert not out.stdout.strip(), (
            f"importing plugin module {module} imports {out.stdout.strip()}; import heavy libraries inside the hooks"
        )


def write_sample(
    format_name: str,
    items: Iterable[Item],
    dst: Path,
    header: Header,
    options: Mapping[str, Any],
    registry: Registry,
) -> dsformats.Report:
    return dsformats.write(items, dst, format_name, header=header, options=options, registry=registry)


def assert_round_trip(
    format_name: str,
    dst: Path,
    header: Header,
    items: Sequence[Item],
    *,
    writer_options: Mapping[str, Any] | None = None,
    reader_options: Mapping[str, Any] | None = None,
    tolerance: float = 0.0,
    normalize: Normalizer | None = None,
    passthrough: bool = True,
    lossless: bool = True,
    registry: Registry | None = None,
) -> list[Item]:
    """Write ``items`` to ``dst``, read them back and compare.

    Compared: ``(subset, id)``, annotations (:func:`canonical_annotation`, coordinates within
    ``tolerance`` pixels), image sizes, and with ``passthrough`` the image bytes and suffix exactly.
    ``normalize`` maps each item (expected and read back) before comparing: use it for what a format
    changes by design. With ``lossless`` the report must record no drop. Returns the items read back.
    """
    reg = _reg(registry)
    report = write_sample(format_name, items, dst, header, writer_options or {}, reg)
    assert sum(report.items_written.values()) == len(items), f"{format_name}: report {report.to_dict()}"
    if lossless:
        assert report.lossless, f"{format_name}: writer dropped data it declares it can hold: {report.dropped}"
    expected = {(i.subset, i.id): i for i in items}
    back: list[Item] = []
    with dsformats.read(dst, format_name, options=reader_options, registry=reg) as reader:
        read_labels = reader.header.categories.label_names
        for item in reader.items():
            back.append(item)
            source = expected.get((item.subset, item.id))
            if source is None or source.media is None:
                continue
            assert item.media is not None, f"{format_name}: item {item.id!r} came back without its image"
            assert item.media.size == source.media.size, f"{format_name}: image size of {item.id!r} changed"
            if passthrough:
                assert same_encoding(item.media.suffix, source.media.suffix), (
                    f"{format_name}: {item.id!r} was written {source.media.suffix}, read back {item.media.suffix}"
                )
                assert item.media.read_bytes() == source.media.read_bytes(), (
                    f"{format_name}: image bytes of {item.id!r} changed; a kept suffix must copy bytes unchanged"
                )
    used: set[str] = {label for i in items for a in i.annotations if (label := getattr(a, "label", None)) is not None}
    missing = sorted(used - set(read_labels))
    assert not missing, f"{format_name}: labels {missing} are missing from the header read back ({read_labels})"
    norm = normalize or (lambda item: item)
    assert_items_equal(
        [norm(i) for i in items], [norm(i) for i in back], tolerance=tolerance, what=f"{format_name} round trip"
    )
    return back


def assert_reader_is_lazy(
    format_name: str, path: Path, *, reader_options: Mapping[str, Any] | None = None, registry: Registry | None = None
) -> None:
    """Opening the reader opens no image; after ``k`` items at most ``k`` images were opened; ``items()``
    returns an iterator (single pass), not a list."""
    reg = _reg(registry)
    with MediaAccessLog() as log:
        with dsformats.read(path, format_name, options=reader_options, registry=reg) as reader:
            assert log.count() == 0, f"{format_name}: opening the reader opened {log.count()} image(s)"
            items = reader.items()
            assert isinstance(items, Iterator), f"{format_name}: items() must return an iterator, got {type(items)}"
            assert log.count() == 0, f"{format_name}: items() opened images before the first item was taken"
            for n, _item in enumerate(items, 1):
                assert log.count() <= n, (
                    f"{format_name}: {log.count()} images opened after {n} item(s); the reader reads ahead"
                )


class OneShot:
    """An iterable that can be iterated once; a second ``iter()`` raises."""

    def __init__(self, items: Iterable[Item]) -> None:
        self._items = iter(items)
        self._used = False
        self.taken = 0

    def __iter__(self) -> Iterator[Item]:
        if self._used:
            raise AssertionError("the writer iterated over the items twice; items are a single-pass stream")
        self._used = True
        for item in self._items:
            self.taken += 1
            yield item


def assert_writer_accepts_iterator(
    format_name: str,
    dst: Path,
    header: Header,
    items: Sequence[Item],
    *,
    writer_options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> None:
    """The writer, called directly, consumes a one-shot generator of items exactly once and entirely."""
    reg = _reg(registry)
    info, preset = reg.writer_format(format_name)
    options = dsformats.options.validate_options(
        info.spec.writer_options, {**preset, **(writer_options or {})}, what="writer option"
    )
    dst.mkdir(parents=True, exist_ok=False)
    stream = OneShot(item for item in items)
    report = dsformats.Report()
    with reg.open_writer(info.name, dst, options) as writer:
        writer.write(header, stream, report)
    assert stream.taken == len(items), f"{format_name}: the writer took {stream.taken} of {len(items)} items"
    assert sum(report.items_written.values()) == len(items), f"{format_name}: report {report.to_dict()}"
    assert any(dst.iterdir()), f"{format_name}: the writer wrote nothing"


def assert_detects_own_output(format_name: str, path: Path, *, registry: Registry | None = None) -> None:
    """``path`` (this format's output) is detected as ``format_name`` alone, above NONE."""
    reg = _reg(registry)
    verdicts = reg.detect(path)
    mine = max((d.confidence for d in verdicts if d.format == format_name), default=Confidence.NONE)
    assert mine > Confidence.NONE, f"{format_name}: does not detect its own output: {verdicts}"
    rivals = [d for d in verdicts if d.format != format_name and d.confidence >= mine]
    assert not rivals, f"{format_name}: its own output is claimed as strongly by {rivals}"
    assert dsformats.detect_format(path, registry=reg) == format_name


def assert_does_not_claim_others(
    format_name: str,
    workdir: Path,
    *,
    others: Iterable[str] | None = None,
    registry: Registry | None = None,
    seed: int = 1,
) -> tuple[list[str], dict[str, str]]:
    """Write a small dataset with each other format and check that ``format_name`` claims it with less
    confidence than that format itself (or not at all when that format does not detect it).

    ``others`` defaults to every other writable format of the ``dsformats`` distribution (the built-ins).
    Returns the formats checked, and the formats that could not write a sample with the error (a bug of
    that format, which its own conformance tests report; it does not fail this format's check).
    """
    reg = _reg(registry)
    if others is None:
        others = [n for n, i in reg.formats.items() if i.distribution == "dsformats" and i.spec.can_write]
    checked: list[str] = []
    unavailable: dict[str, str] = {}
    for other in others:
        if other == format_name:
            continue
        spec = reg.get(other).spec
        header, items = generate_items(spec.annotation_kinds, seed=seed, count=3)
        options = {"save_images": True} if any(o.name == "save_images" for o in spec.writer_options) else {}
        out = workdir / f"sample-{other}"
        try:
            write_sample(other, items, out, header, options, reg)
        except Exception as exc:
            unavailable[other] = repr(exc)[:300]
            continue
        verdicts = reg.detect(out)
        theirs = max((d.confidence for d in verdicts if d.format == other), default=Confidence.NONE)
        mine = [d for d in verdicts if d.format == format_name]
        for verdict in mine:
            assert verdict.confidence == Confidence.NONE or verdict.confidence < theirs, (
                f"{format_name} claims {other}'s output with {verdict.confidence.name} ({verdict.reason}); "
                f"{other} itself says {theirs.name}"
            )
        checked.append(other)
    return checked, unavailable


def assert_unknown_options_refused(
    format_name: str, workdir: Path, src: Path | None = None, *, registry: Registry | None = None
) -> None:
    """Unknown reader and writer options raise :class:`OptionError` before any file is read or written.

    ``src`` is a dataset of any readable format to convert from (optional).
    """
    import pytest

    reg = _reg(registry)
    info = reg.get(format_name)
    bogus = {"no_such_option_xyz": "1"}
    calls: list[str] = []
    missing = workdir / "does-not-exist"
    if info.spec.can_read:
        with _spy_hooks(reg, calls), pytest.raises(OptionError, match="no_such_option_xyz"):
            with dsformats.read(missing, format_name, options=bogus, registry=reg):
                pass
        assert not calls, f"{format_name}: {calls} called before the unknown reader option was refused"
    if info.spec.can_write:
        dst = workdir / "refused-output"
        source = src if src is not None else missing
        with _spy_hooks(reg, calls), pytest.raises(OptionError, match="no_such_option_xyz"):
            dsformats.convert(source, dst, format_name, writer_options=bogus, registry=reg)
        assert not calls, f"{format_name}: {calls} called before the unknown writer option was refused"
        assert not dst.exists(), f"{format_name}: output created although an option was refused"
        with _spy_hooks(reg, calls), pytest.raises(OptionError, match="no_such_option_xyz"):
            dsformats.write(iter(()), dst, format_name, options=bogus, registry=reg)
        assert not calls and not dst.exists()


class _spy_hooks:
    """Record every hook call made through the registry (pluggy's hook-call monitoring)."""

    def __init__(self, registry: Registry, calls: list[str]) -> None:
        self.registry = registry
        self.calls = calls
        self.undo: Callable[[], None] | None = None

    def __enter__(self) -> _spy_hooks:
        def before(hook_name: str, impls: Any, kwargs: Any) -> None:
            self.calls.append(hook_name)

        def after(outcome: Any, hook_name: str, impls: Any, kwargs: Any) -> None:
            return None

        self.undo = self.registry.plugin_manager.add_hookcall_monitoring(before, after)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.undo is not None:
            self.undo()


class _Boom(Exception):
    """Raised by the kit's failing item stream."""


def assert_failed_write_leaves_no_output(
    format_name: str,
    workdir: Path,
    header: Header,
    items: Sequence[Item],
    *,
    writer_options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> None:
    """A stream that fails mid-way propagates its error, leaves no output, no staging directory, and
    leaves an existing output untouched when overwriting."""
    import pytest

    reg = _reg(registry)
    assert len(items) >= 2, "give at least two items"

    def failing() -> Iterator[Item]:
        yield from items[: len(items) // 2 + 1]
        raise _Boom("the item stream failed mid-way")

    before = set(workdir.iterdir()) if workdir.exists() else set()
    dst = workdir / "failed-output"
    with pytest.raises(_Boom):
        write_sample(format_name, failing(), dst, header, writer_options or {}, reg)
    assert not dst.exists(), f"{format_name}: a failed write left {dst}"
    assert set(workdir.iterdir()) == before, f"{format_name}: a failed write left {set(workdir.iterdir()) - before}"

    kept = workdir / "kept-output"
    kept.mkdir()
    (kept / "old.txt").write_text("old")
    with pytest.raises(_Boom):
        dsformats.write(
            failing(), kept, format_name, header=header, options=writer_options, overwrite=True, registry=reg
        )
    assert [p.name for p in kept.iterdir()] == ["old.txt"], f"{format_name}: a failed overwrite changed {kept}"


def assert_distributed_equals_single(
    format_name: str,
    src: Path,
    workdir: Path,
    *,
    scheduler: str,
    source_format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    writer_options: Mapping[str, Any] | None = None,
    shards: int | None = None,
    merged: bool = True,
    registry: Registry | None = None,
) -> dsformats.Report:
    """Convert ``src`` to ``format_name`` in one process (``workdir/single``) and on the Dask ``scheduler``
    (``workdir/dask``); every file must have the same bytes and the reports the same counts.

    With ``merged`` the format's ``dsformats_merge`` must have built the output (no single-process
    fallback). Needs Dask and the plugins installed where the workers run. Returns the Dask run's report.
    """
    from dsformats.scaleout import convert_distributed
    from dsformats.testing.compare import assert_trees_equal

    single = dsformats.convert(src, workdir / "single", format_name, source_format=source_format,
                               reader_options=reader_options, writer_options=writer_options, registry=registry)
    report = convert_distributed(src, workdir / "dask", format_name, source_format=source_format,
                                 reader_options=reader_options, writer_options=writer_options, registry=registry,
                                 scheduler=scheduler, shards=shards, retries=0)
    assert_trees_equal(workdir / "single", workdir / "dask", what=f"{format_name} on Dask vs one process")
    fallback = [w for w in report.warnings if "single process" in w]
    assert bool(fallback) != merged, f"{format_name}: expected {'a merge' if merged else 'a fallback'}: {fallback}"
    assert (report.items_written, report.annotations_written, report.dropped) == (
        single.items_written, single.annotations_written, single.dropped
    ), f"{format_name}: the Dask report counts differ from the single-process report"
    return report
