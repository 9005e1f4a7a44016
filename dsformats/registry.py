"""Plugin discovery and the typed registry of formats.

Entry points of group ``dsformats`` are loaded one at a time: a plugin that fails to import or to
validate is recorded in :attr:`Registry.load_errors` and skipped, unless strict mode is on. The registry
is built on demand (never at import) and is immutable once built.

Environment variables:

* ``DSFORMATS_DISABLE_PLUGINS=a,b``: do not load these plugins (entry-point names).
* ``DSFORMATS_STRICT_PLUGINS=1``: any plugin load error is fatal.
* ``DSFORMATS_TRACE_PLUGINS=1``: print every hook call and its result to stderr.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pluggy

from dsformats import hookspecs
from dsformats.detect import Confidence, Detection, Probe
from dsformats.errors import DatasetError, DuplicateFormatError, PluginLoadError, UnknownFormatError
from dsformats.formats import PLUGIN_API_VERSION, FormatSpec, Reader, Writer
from dsformats.model import Header
from dsformats.placement import PlannedMedia

if sys.version_info >= (3, 12):
    from importlib import metadata
else:  # the backport: the same API, with the newer entry-point fixes
    import importlib_metadata as metadata

__all__ = ["ENTRY_POINT_GROUP", "FormatInfo", "LoadError", "Registry", "build_registry", "default_registry"]

ENTRY_POINT_GROUP = "dsformats"


@attrs.frozen
class FormatInfo:
    """A format as registered: its spec and where it comes from."""

    spec: FormatSpec
    plugin: str
    distribution: str | None = None
    version: str | None = None

    @property
    def name(self) -> str:
        """The format name."""
        return self.spec.name


@attrs.frozen
class LoadError:
    """A plugin that could not be used, and why."""

    plugin: str
    error: str
    distribution: str | None = None
    target: str = ""

    def __str__(self) -> str:
        dist = f" (distribution {self.distribution})" if self.distribution else ""
        return f"plugin {self.plugin!r}{dist}: {self.error}"


def _env_list(name: str) -> list[str]:
    return [part.strip() for part in os.environ.get(name, "").split(",") if part.strip()]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Registry:
    """The formats provided by the loaded plugins, with a typed facade over the hooks."""

    def __init__(
        self,
        manager: pluggy.PluginManager,
        formats: Mapping[str, FormatInfo],
        load_errors: Sequence[LoadError],
        conflicts: Mapping[str, str],
        disabled: Sequence[str] = (),
    ) -> None:
        self._pm = manager
        self.formats: Mapping[str, FormatInfo] = dict(sorted(formats.items()))
        self.load_errors: tuple[LoadError, ...] = tuple(load_errors)
        self.disabled: tuple[str, ...] = tuple(disabled)
        self._conflicts = dict(conflicts)
        self._aliases: dict[str, tuple[str, dict[str, Any]]] = {}
        for info in self.formats.values():
            for alias, preset in info.spec.aliases.items():
                if alias not in self.formats:
                    self._aliases.setdefault(alias, (info.name, dict(preset)))

    # -- lookup
    def resolve(self, name: str) -> tuple[FormatInfo, dict[str, Any]]:
        """The format called ``name`` (or an alias of it) and the writer options the alias presets."""
        if name in self._conflicts:
            raise DuplicateFormatError(self._conflicts[name])
        if name in self.formats:
            return self.formats[name], {}
        if name in self._aliases:
            target, preset = self._aliases[name]
            return self.formats[target], dict(preset)
        known = [*self.formats, *self._aliases]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise UnknownFormatError(f"unknown format {name!r}{hint} (known: {', '.join(self.formats) or 'none'})")

    def get(self, name: str) -> FormatInfo:
        """The format called ``name`` or an alias of it; :class:`UnknownFormatError` otherwise."""
        return self.resolve(name)[0]

    def reader_format(self, name: str) -> FormatInfo:
        """Like :meth:`get`, and the format must be able to read."""
        info = self.get(name)
        if not info.spec.can_read:
            raise UnknownFormatError(f"format {info.name!r} cannot read; readers: {', '.join(self.readers())}")
        return info

    def writer_format(self, name: str) -> tuple[FormatInfo, dict[str, Any]]:
        """Like :meth:`resolve`, and the format must be able to write."""
        info, preset = self.resolve(name)
        if not info.spec.can_write:
            raise UnknownFormatError(f"format {info.name!r} cannot write; writers: {', '.join(self.writers())}")
        return info, preset

    def readers(self) -> list[str]:
        """Names of the formats that can read."""
        return [n for n, info in self.formats.items() if info.spec.can_read]

    def writers(self) -> list[str]:
        """Names of the formats that can write."""
        return [n for n, info in self.formats.items() if info.spec.can_write]

    # -- typed facade over the hooks
    def open_reader(self, format: str, path: Path | Any, options: Mapping[str, Any]) -> Reader:
        """Call ``dsformats_open_reader`` with validated options.

        ``path`` is a local ``Path`` or a UPath (a tree inside an archive, on object storage): passed as is.
        """
        reader = self._pm.hook.dsformats_open_reader(format=format, path=_as_path(path), options=dict(options))
        if reader is None:
            raise PluginLoadError(f"no plugin opened a reader for format {format!r}")
        return reader

    def open_writer(self, format: str, path: Path, options: Mapping[str, Any]) -> Writer:
        """Call ``dsformats_open_writer`` with validated options."""
        writer = self._pm.hook.dsformats_open_writer(format=format, path=Path(path), options=dict(options))
        if writer is None:
            raise PluginLoadError(f"no plugin opened a writer for format {format!r}")
        return writer

    def header_losses(self, format: str, header: Header, options: Mapping[str, Any]) -> list[tuple[str, str, int]]:
        """Call ``dsformats_header_losses``: every ``(kind, reason, count)`` the plugins report for ``format``."""
        results = self._pm.hook.dsformats_header_losses(format=format, header=header, options=dict(options))
        return [(str(kind), str(reason), int(count)) for found in results for kind, reason, count in found or ()]

    def merge(self, format: str, parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Any) -> Any:
        """Call ``dsformats_merge``: None when no plugin merged (see :mod:`dsformats.scaleout`)."""
        return self._pm.hook.dsformats_merge(
            format=format, parts=parts, path=Path(path), options=dict(options), report=report
        )

    def placed_size(self, format: str, media: Iterable[PlannedMedia], options: Mapping[str, Any]) -> int | None:
        """Call ``dsformats_placed_size``: None when no plugin sizes a placed part (see :mod:`dsformats.placement`)."""
        result: int | None = self._pm.hook.dsformats_placed_size(format=format, media=media, options=dict(options))
        return result

    def detect(self, path: str | os.PathLike[str] | Any) -> list[Detection]:
        """Ask every plugin about ``path``; return all verdicts, best first.

        ``path`` is a local path, an fsspec URL or a UPath. For an archive file (``.zip``, ``.tar[.gz]``),
        the plugins are asked about the file and about the tree inside it (at its root, and inside its only top
        folder when it has one); each format keeps its best verdict, and the reason says where it was found.
        A detector that raises gives a NONE verdict carrying the error, attributed to its formats.
        """
        from dsformats import archives

        target = archives.as_input(path)
        verdicts = self._detect_at(target)
        if not archives.is_archive_file(target):
            return verdicts
        top = max((d.confidence for d in verdicts), default=Confidence.NONE)
        if top >= Confidence.CERTAIN:
            return verdicts  # e.g. a flat zip of images, which image_zip reads itself
        best = {d.format: d for d in verdicts}
        try:
            with archives.opened_archive(target) as root:
                for folder, where in archives.tree_candidates(root):
                    label = f"inside {target.name}" + (f", in {folder}/" if folder else "")
                    for inner in self._detect_at(where):
                        outer = best.get(inner.format)
                        if outer is not None and inner.confidence == Confidence.NONE == outer.confidence:
                            reason = f"{outer.reason}; {label}: {inner.reason}"
                            best[inner.format] = Detection(inner.format, Confidence.NONE, reason)
                        elif outer is None or inner.confidence > outer.confidence:
                            best[inner.format] = Detection(inner.format, inner.confidence, f"{label}: {inner.reason}")
        except DatasetError as exc:  # the archive's tree cannot be read: what the file itself showed stands
            why = f"; the archive's content cannot be read: {exc}"
            return [d if d.confidence > Confidence.NONE else attrs.evolve(d, reason=d.reason + why) for d in verdicts]
        return sorted(best.values(), key=lambda d: (-d.confidence, d.format))

    def detect_in(self, path: Any, format: str) -> Detection | None:
        """The verdict of ``format``'s detector alone about ``path`` (a local path or a UPath)."""
        owner = self.formats[format].plugin if format in self.formats else None
        return next((d for d in self._detect_at(path, only=owner) if d.format == format), None)

    def _detect_at(self, path: Any, only: str | None = None) -> list[Detection]:
        """Every plugin's verdicts about ``path`` (``only``: just that plugin's), most confident first."""
        probe = Probe(path)
        path = _as_path(path)
        verdicts: list[Detection] = []
        plugins = {impl.plugin_name for impl in self._pm.hook.dsformats_detect.get_hookimpls()}
        for plugin in sorted(plugins if only is None else plugins & {only}):
            owned = [n for n, info in self.formats.items() if info.plugin == plugin]
            if not owned:
                continue
            others = [self._pm.get_plugin(p) for p in plugins - {plugin}]
            call = self._pm.subset_hook_caller("dsformats_detect", remove_plugins=others)
            try:
                results: list[Any] = []
                for result in call(path=path, probe=probe):
                    results.extend([result] if isinstance(result, Detection) else list(result or ()))
            except Exception as exc:
                verdicts.extend(Detection(n, Confidence.NONE, f"detector failed: {exc!r}") for n in owned)
                continue
            verdicts.extend(d for d in results if isinstance(d, Detection) and d.format in owned)
        return sorted(verdicts, key=lambda d: (-d.confidence, d.format))

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        """The underlying pluggy manager (for introspection and tests)."""
        return self._pm


def _as_path(path: Any) -> Any:
    """A ``Path`` for local paths; UPaths (archives, object storage) unchanged."""
    return path if not isinstance(path, (str, os.PathLike)) and hasattr(path, "fs") else Path(path)


# ------------------------------------------------------------------------------------------- loading


def _entry_points() -> list[tuple[metadata.EntryPoint, tuple[str | None, str | None]]]:
    """Entry points of our group, one per (distribution, name), each with its distribution's (name, version).

    ``entry_points(group=...)`` reads only the entry-point files and merges distributions found twice on the
    path (a ``lib64`` symlink, say); only the few distributions with our entry points have their metadata read.
    """
    found = [(ep, _dist(ep)) for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
    return sorted(found, key=lambda pair: (pair[0].name, pair[1][0] or ""))


def _dist(ep: metadata.EntryPoint) -> tuple[str | None, str | None]:
    """The (name, version) of the distribution that declares ``ep``.

    Read from the head of its METADATA file: ``Distribution.metadata`` parses the whole file with the
    ``email`` package, whose import and parse cost every command about 20 ms.
    """
    dist = getattr(ep, "dist", None)
    if dist is None:
        return None, None
    fields: dict[str, str] = {}
    for line in (dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "").splitlines():
        if not line.strip():
            break  # the headers end at the first blank line
        key, colon, value = line.partition(":")
        if colon and not key[:1].isspace():
            fields.setdefault(key.strip().lower(), value.strip())
    if "name" not in fields or "version" not in fields:  # unusual metadata: the full parser
        return dist.metadata["Name"], dist.version
    return fields["name"], fields["version"]


def _trace(manager: pluggy.PluginManager) -> None:
    def before(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        names = ", ".join(i.plugin_name for i in impls)
        print(f"[dsformats trace] {hook_name}({', '.join(kwargs)}) -> plugins: {names}", file=sys.stderr)

    def after(outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        try:
            result = repr(outcome.get_result())
        except BaseException as exc:  # noqa: BLE001 - tracing must not change behaviour
            result = f"raised {exc!r}"
        print(f"[dsformats trace] {hook_name} returned {result[:300]}", file=sys.stderr)

    manager.add_hookcall_monitoring(before, after)


def build_registry(
    *,
    entrypoints: bool = True,
    plugins: Iterable[object] = (),
    disabled: Iterable[str] = (),
    strict: bool | None = None,
    trace: bool | None = None,
) -> Registry:
    """Load plugins and build a :class:`Registry`.

    ``entrypoints`` loads the ``dsformats`` entry points; ``plugins`` registers extra plugin objects
    (modules or instances with hook implementations; named by their ``__name__`` attribute).
    ``disabled`` adds to ``DSFORMATS_DISABLE_PLUGINS``. ``strict`` (default: ``DSFORMATS_STRICT_PLUGINS``)
    turns any load error into a :class:`PluginLoadError`.
    """
    strict = _env_flag("DSFORMATS_STRICT_PLUGINS") if strict is None else strict
    trace = _env_flag("DSFORMATS_TRACE_PLUGINS") if trace is None else trace
    blocked = sorted({*_env_list("DSFORMATS_DISABLE_PLUGINS"), *disabled})

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    errors: list[LoadError] = []
    origin: dict[str, tuple[str | None, str | None]] = {}

    def fail(error: LoadError, exc: BaseException | None = None) -> None:
        if strict:
            if isinstance(exc, PluginLoadError):
                raise exc
            raise PluginLoadError(str(error)) from exc
        errors.append(error)

    candidates: list[tuple[str, Any, tuple[str | None, str | None], str]] = []
    if entrypoints:
        first_dist: dict[str, str | None] = {}  # plugin name -> distribution that declared it first
        for ep, dist in _entry_points():
            if ep.name in first_dist:
                first = first_dist[ep.name]
                fail(LoadError(ep.name, f"plugin name also used by distribution {first}; skipped", dist[0]))
                continue
            first_dist[ep.name] = dist[0]
            if pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                fail(LoadError(ep.name, f"failed to import {ep.value}: {exc!r}", dist[0], ep.value), exc)
                continue
            candidates.append((ep.name, plugin, dist, ep.value))
    for plugin in plugins:
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if not pm.is_blocked(name):
            candidates.append((name, plugin, (None, None), repr(plugin)))

    for name, plugin, dist, target in candidates:
        try:
            pm.register(plugin, name=name)
        except Exception as exc:
            fail(LoadError(name, f"invalid plugin: {exc}", dist[0], target), exc)
            continue
        origin[name] = dist

    # Hook implementations without a spec (misspelled hook names) disqualify their plugin.
    for hook_name, caller in sorted(vars(pm.hook).items()):
        if isinstance(caller, pluggy.HookCaller) and caller.spec is None:
            for impl in caller.get_hookimpls():
                if pm.get_plugin(impl.plugin_name) is not None:
                    specs = [h for h in dir(hookspecs) if h.startswith("dsformats_")]
                    close = difflib.get_close_matches(hook_name, specs, 1)
                    hint = f"; did you mean {close[0]}?" if close else ""
                    source = origin[impl.plugin_name][0]
                    fail(LoadError(impl.plugin_name, f"unknown hook {hook_name!r}{hint}", source))
                    pm.unregister(name=impl.plugin_name)
    pm.check_pending()

    formats, conflicts = _collect_formats(pm, origin, fail)
    if trace:
        _trace(pm)
    return Registry(pm, formats, errors, conflicts, blocked)


def _collect_formats(
    pm: pluggy.PluginManager, origin: Mapping[str, tuple[str | None, str | None]], fail: Any
) -> tuple[dict[str, FormatInfo], dict[str, str]]:
    formats: dict[str, FormatInfo] = {}
    conflicts: dict[str, str] = {}
    for impl in sorted(pm.hook.dsformats_formats.get_hookimpls(), key=lambda i: i.plugin_name):
        plugin = impl.plugin_name
        dist, version = origin.get(plugin, (None, None))
        try:
            declared: Any = impl.function()
            specs: list[Any] = list(declared or ())
            bad = [s for s in specs if not isinstance(s, FormatSpec)]
            if bad:
                raise TypeError(f"dsformats_formats must return FormatSpec objects, got {bad[0]!r}")
        except Exception as exc:
            fail(LoadError(plugin, f"dsformats_formats failed: {exc!r}", dist), exc)
            continue
        hooks = (
            {h.plugin_name for h in pm.hook.dsformats_open_reader.get_hookimpls()},
            {h.plugin_name for h in pm.hook.dsformats_open_writer.get_hookimpls()},
        )
        for spec in specs:
            if spec.api_version != PLUGIN_API_VERSION:
                fail(
                    LoadError(
                        plugin,
                        f"format {spec.name!r} is built for dsformats plugin API {spec.api_version}, "
                        f"but this dsformats provides API {PLUGIN_API_VERSION}; upgrade one of them",
                        dist,
                    )
                )
                continue
            if (spec.can_read and plugin not in hooks[0]) or (spec.can_write and plugin not in hooks[1]):
                fail(LoadError(plugin, f"format {spec.name!r} declares read/write without the open hook", dist))
                continue
            if spec.name in formats or spec.name in conflicts:
                other = formats.pop(spec.name, None)
                where = f"{other.plugin} ({other.distribution})" if other else "another plugin"
                message = (
                    f"format {spec.name!r} is declared by both plugin {where} and plugin {plugin} ({dist}); "
                    "disable one with DSFORMATS_DISABLE_PLUGINS"
                )
                conflicts[spec.name] = message
                fail(LoadError(plugin, message, dist), DuplicateFormatError(message))
                continue
            formats[spec.name] = FormatInfo(spec, plugin, dist, version)
    return formats, conflicts


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The registry of installed plugins, built on first use and then cached."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = build_registry()
    return _DEFAULT
