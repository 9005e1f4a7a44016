"""The library API: list formats, detect, read, write and convert, streaming items from reader to writer."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from dsformats.detect import Detection, best_detections
from dsformats.errors import (
    AmbiguousFormatError,
    DatasetError,
    DsformatsError,
    DuplicateItemError,
    FormatNotFoundError,
    OutputExistsError,
)
from dsformats.formats import FormatSpec, Reader
from dsformats.model import Header, Item
from dsformats.options import SAVE_IMAGES, validate_options
from dsformats.policy import bad_item, not_stored_reason, reporting, storing, writing_partial
from dsformats.registry import FormatInfo, Registry, default_registry
from dsformats.report import Report

__all__ = ["convert", "detect", "detect_format", "list_formats", "read", "staged_output", "write", "check_output"]

Progress = Callable[[int, "int | None"], None]


def _registry(registry: Registry | None) -> Registry:
    return registry if registry is not None else default_registry()


def list_formats(*, registry: Registry | None = None) -> list[FormatInfo]:
    """Every loaded format, sorted by name."""
    return list(_registry(registry).formats.values())


def _input(path: str | os.PathLike[str] | Any) -> Any:
    """``path`` as a local Path or a UPath (for fsspec URLs), checked to exist."""
    from dsformats import archives

    target = archives.as_input(path)
    try:
        found = target.exists() or (isinstance(target, Path) and target.is_symlink())
    except OSError as exc:
        raise DatasetError(f"cannot access: {exc}", str(path)) from None
    if not found:
        raise DatasetError("no such file or directory", str(path))
    return target


def detect(path: str | os.PathLike[str], *, registry: Registry | None = None) -> list[Detection]:
    """Every plugin's verdict about ``path`` (a local path or an fsspec URL), best first."""
    return _registry(registry).detect(_input(path))


def detect_format(path: str | os.PathLike[str], *, registry: Registry | None = None) -> str:
    """The single best format for ``path``; raises when nothing or several formats tie."""
    verdicts = detect(path, registry=registry)
    best = best_detections(verdicts)
    if not best:
        raise FormatNotFoundError(f"{path}: no known format detected; give the format with -if")
    if len(best) > 1:
        names = [d.format for d in best]
        raise AmbiguousFormatError(
            f"{path}: ambiguous format, equally likely: {', '.join(names)}; choose one with -if", names
        )
    return best[0].format


@contextlib.contextmanager
def read(
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    options: Mapping[str, Any] | None = None,
    registry: Registry | None = None,
) -> Iterator[Reader]:
    """Open a dataset for reading: ``with read(path) as reader: for item in reader.items(): ...``.

    ``path`` is a local directory or file, an fsspec URL (``s3://bucket/coco/``, ``memory://...``), or an
    archive (``.zip``, ``.tar``, ``.tar.gz``) holding a dataset tree, read in place without extraction (a
    single wrapping top folder is skipped). Formats that read an archive file themselves (those listing its
    suffix in ``FormatSpec.extensions``, like ``image_zip``) get the file. The format is detected when not
    given. Options are validated before anything is read.
    """
    reg = _registry(registry)
    info = reg.reader_format(format) if format else None
    checked = validate_options(info.spec.reader_options, options, what="reader option") if info else None
    target = _input(path)
    if info is None:
        info = reg.reader_format(detect_format(target, registry=reg))
        checked = validate_options(info.spec.reader_options, options, what="reader option")
    assert checked is not None
    with _dataset_root(target, info, reg) as root, reg.open_reader(info.name, root, checked) as reader:
        yield reader


@contextlib.contextmanager
def _dataset_root(target: Any, info: FormatInfo, reg: Registry) -> Iterator[Any]:
    """The path the reader gets: the archive's tree (root or single top folder) or ``target`` itself."""
    from dsformats import archives
    from dsformats.detect import Confidence

    if info.spec.reads_file(target.name) or not archives.is_archive_file(target):
        yield target
        return
    with archives.opened_archive(target) as root:
        candidates = archives.tree_candidates(root)
        chosen, best = candidates[-1][1], Confidence.NONE
        for _folder, where in candidates:
            verdict = reg.detect_in(where, info.name)
            if verdict is not None and verdict.confidence > best:
                chosen, best = where, verdict.confidence
        yield chosen


def check_output(dst: str | os.PathLike[str], *, overwrite: bool = False) -> bool:
    """Refuse an existing, non-empty ``dst`` unless ``overwrite``; return whether ``dst`` exists."""
    from dsformats import archives

    if archives.is_url(dst) and not str(dst).startswith("file://"):
        remote = archives.to_upath(str(dst))
        try:
            exists = remote.exists()
            filled = exists and (remote.is_file() or any(True for _ in remote.iterdir()))
        except OSError as exc:
            raise DatasetError(f"cannot access the output: {exc}", str(dst)) from None
        if filled and not overwrite:
            raise OutputExistsError(f"{dst}: output exists; pass overwrite (CLI: --overwrite) to replace it")
        return bool(exists)
    target = Path(archives.as_input(dst))
    exists = target.exists() or target.is_symlink()
    if exists and not overwrite and (not target.is_dir() or any(target.iterdir())):
        raise OutputExistsError(f"{target}: output exists; pass overwrite (CLI: --overwrite) to replace it")
    return exists


@contextlib.contextmanager
def staged_output(dst: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a fresh sibling directory of ``dst``; publish it as ``dst`` only if the block succeeds.

    An existing non-empty ``dst`` is refused unless ``overwrite``; it is replaced only after the new output
    is complete. On any error (or interrupt) the staging directory is removed and ``dst`` is untouched.

    A ``dst`` ending in ``.zip`` is published as one zip file holding the output tree (packed in one
    streaming pass; a tree that is a single ``.zip`` file, as ``image_zip`` writes, is published as is). An
    fsspec URL (``s3://bucket/out/``) is staged locally, uploaded under a temporary prefix and published by
    copying, with a ``_DSFORMATS_COMPLETE`` marker written last (see docs/safety.md).
    """
    from dsformats import archives

    if archives.is_url(dst) and not str(dst).startswith("file://"):
        with _staged_remote(str(dst), overwrite=overwrite) as staging:
            yield staging
        return
    target = Path(archives.as_input(dst))
    pack = target.suffix.lower() == ".zip"
    _remove_stale_staging(target)
    exists = check_output(target, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging = target.parent / f".{target.name}.dsformats-{token}.tmp"
    staging.mkdir()
    try:
        yield staging
        if pack:
            staging = _pack(staging, target.parent / f".{target.name}.dsformats-{token}-zip.tmp")
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        # A full disk, a quota or a read-only file system: say so, not a traceback (nor "cannot read" when the
        # failed write happened inside a media copy, which wraps it).
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        full = isinstance(cause, OSError) and cause.errno in _FULL
        if isinstance(cause, OSError) and (full or isinstance(exc, OSError)):
            raise DatasetError(
                f"{'cannot write the output' if full else 'I/O error'} ({cause.strerror or cause}); "
                "nothing was published and the temporary output was removed",
                cause.filename if isinstance(cause.filename, str) else str(target),
            ) from exc
        raise
    if exists:
        trash = target.parent / f".{target.name}.dsformats-{token}.old"
        os.replace(target, trash)
        os.replace(staging, target)
        if trash.is_dir() and not trash.is_symlink():
            shutil.rmtree(trash, ignore_errors=True)
        else:
            trash.unlink()
    else:
        os.replace(staging, target)


def _pack(staging: Path, packed: Path) -> Path:
    """Turn the staging tree into the zip file ``packed`` (removing the tree); return ``packed``."""
    from dsformats.archives import pack_tree

    entries = list(staging.iterdir())
    try:
        if len(entries) == 1 and entries[0].is_file() and entries[0].suffix.lower() == ".zip":
            os.replace(entries[0], packed)  # image_zip's output is already one zip: no zip inside a zip
        else:
            pack_tree(staging, packed)
    except BaseException:
        with contextlib.suppress(OSError):
            packed.unlink()
        raise
    shutil.rmtree(staging, ignore_errors=True)
    return packed


@contextlib.contextmanager
def _staged_remote(url: str, *, overwrite: bool) -> Iterator[Path]:
    """Stage locally; upload under a temporary prefix; publish by copying; write the completion marker last.

    Object stores have no atomic rename. Until the marker exists the output must be taken as incomplete; a
    failure before publishing leaves ``url`` untouched, one while publishing removes what was copied.
    """
    import json
    import tempfile
    import time

    from dsformats import archives
    from dsformats.archives import COMPLETE_MARKER, pack_tree, to_upath

    exists = check_output(url, overwrite=overwrite)
    remote = to_upath(url)
    fs, base = remote.fs, remote.path.rstrip("/")
    archives.remove_abandoned_temporaries(fs, base)
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    local = Path(tempfile.mkdtemp(prefix="dsformats-"))
    staging = local / "out"
    staging.mkdir()
    try:
        yield staging
        if base.lower().endswith(".zip"):  # one object: a single upload is atomic on object stores
            packed = local / "out.zip"
            entries = list(staging.iterdir())
            if len(entries) == 1 and entries[0].is_file() and entries[0].suffix.lower() == ".zip":
                packed = entries[0]
            else:
                pack_tree(staging, packed)
            fs.put_file(str(packed), base)
            return
        files = [p.relative_to(staging).as_posix() for p in sorted(staging.rglob("*")) if p.is_file()]
        temporary = archives.temporary_prefix(base, token)
        leased = time.monotonic()

        def keep_lease() -> None:  # so that later writers see this prefix in use (see docs/safety.md)
            nonlocal leased
            if time.monotonic() - leased > archives.LEASE_REFRESH:
                archives.write_lease(fs, temporary)
                leased = time.monotonic()

        try:
            archives.write_lease(fs, temporary)
            for rel in files:
                keep_lease()
                fs.put_file(str(staging / rel), f"{temporary}/{rel}")
            published = False
            try:
                if exists:
                    with contextlib.suppress(FileNotFoundError):
                        fs.rm_file(f"{base}/{COMPLETE_MARKER}")
                    with contextlib.suppress(FileNotFoundError):
                        fs.rm(base, recursive=True)
                for rel in files:
                    keep_lease()
                    fs.copy(f"{temporary}/{rel}", f"{base}/{rel}")
                marker = {"complete": True, "files": len(files), "by": "dsformats"}
                fs.pipe_file(f"{base}/{COMPLETE_MARKER}", json.dumps(marker).encode())
                published = True
            finally:
                if not published:
                    with contextlib.suppress(Exception):
                        fs.rm(base, recursive=True)
        finally:
            with contextlib.suppress(Exception):
                fs.rm(temporary, recursive=True)
    except DsformatsError:
        raise
    except OSError as exc:
        raise DatasetError(f"cannot write the output ({exc}); nothing was published", url) from exc
    finally:
        shutil.rmtree(local, ignore_errors=True)


_FULL = {errno.ENOSPC, errno.EFBIG, errno.EROFS, getattr(errno, "EDQUOT", errno.ENOSPC)}
_STALE_AFTER = 24 * 3600  # seconds; used where a staging directory's process cannot be checked


def _remove_stale_staging(target: Path) -> None:
    """Remove ``.<name>.dsformats-<pid>-<token>.tmp`` / ``.old`` siblings left by killed runs.

    A sibling is stale when the process that created it is gone (POSIX), or, when that cannot be checked
    (Windows, or names without a pid), when it is older than a day. A running conversion's staging
    directory is never touched.
    """
    import time

    prefix = f".{target.name}.dsformats-"
    try:
        siblings = [p for p in target.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for path in siblings:
        if not path.name.endswith((".tmp", ".old")):
            continue
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        stale = False
        if pid_text.isdigit() and len(path.name[len(prefix) :].split("-", 1)) == 2 and os.name == "posix":
            pid = int(pid_text)
            if pid != os.getpid():
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    stale = True
                except OSError:
                    pass  # alive but not ours
        if not stale:
            with contextlib.suppress(OSError):
                stale = time.time() - path.lstat().st_mtime > _STALE_AFTER
        if stale and path.name.endswith(".old") and not (target.exists() or target.is_symlink()):
            with contextlib.suppress(OSError):  # killed between the two renames: restore the previous output
                os.replace(path, target)
            continue
        if stale:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    path.unlink()


def _guarded(
    items: Iterable[Item], spec: FormatSpec, report: Report, progress: Progress | None, total: int | None
) -> Iterator[Item]:
    """Check items as they stream by: type, unique (subset, id), and kinds the target cannot hold."""
    from dsformats.idset import KeyMap  # ~8 bytes a key in memory; the exact keys are spooled to a temporary file

    seen = KeyMap()
    supported = spec.annotation_kinds
    for count, item in enumerate(items, 1):
        if not isinstance(item, Item):
            raise TypeError(f"writers accept dsformats.Item objects, got {type(item).__name__}")
        key = f"{len(item.subset)}:{item.subset}/{item.id}"  # (subset, id), unambiguously
        if not seen.add(key):
            bad_item(DuplicateItemError(f"duplicate item id {item.id!r} in subset {item.subset!r}"))
            continue
        report.items_read[item.subset] += 1
        deferred = item.deferred
        if deferred is not None:  # counted without building them; built only when some must go
            unsupported = {}
            if deferred.possible_kinds is None or not supported.issuperset(deferred.possible_kinds):
                unsupported = {kind: n for kind, n in deferred.kinds().items() if kind not in supported and n}
        else:
            unsupported = {}
            for ann in item.annotations:
                if ann.kind not in supported:
                    unsupported[ann.kind] = unsupported.get(ann.kind, 0) + 1
        if unsupported:
            for kind, n in unsupported.items():
                report.drop(kind, not_stored_reason(spec.name, kind), n)
            item = attrs.evolve(item, annotations=[a for a in item.annotations if a.kind in supported])
        yield item
        if progress is not None:
            progress(count, total)


def _ahead(items: Iterable[Item], options: Mapping[str, Any]) -> Generator[Item, None, None]:
    """``items``, with media read ahead in threads when the writer copies images (its ``save_images`` is on)."""
    if not options.get(SAVE_IMAGES.name):
        yield from items
        return
    from dsformats.parallel import read_ahead

    yield from read_ahead(items)


def write(
    items: Iterable[Item],
    path: str | os.PathLike[str],
    format: str,
    *,
    header: Header | None = None,
    options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    registry: Registry | None = None,
    progress: Progress | None = None,
    report: Report | None = None,
    strict: bool = False,
    skip_bad_items: bool = False,
) -> Report:
    """Write ``items`` (any iterable, consumed once) as ``format`` into the directory ``path``.

    The output appears only if everything succeeded. With ``strict``, anything dropped or skipped is an
    error and nothing is published. With ``skip_bad_items``, bad items are skipped and listed in
    ``report.skipped`` instead of failing the run. Returns the :class:`Report`.
    """
    reg = _registry(registry)
    info, preset = reg.writer_format(format)
    checked = validate_options(info.spec.writer_options, {**preset, **(options or {})}, what="writer option")
    header = header or Header()
    report = report or Report()
    report.target_format = info.name
    with (
        staged_output(path, overwrite=overwrite) as staging,
        reporting(report, skip_bad_items=skip_bad_items),
        storing(info.name, info.spec.annotation_kinds, report),
        contextlib.closing(_ahead(items, checked)) as stream,
    ):
        if not writing_partial():  # a scale-out shard's partial: the client reports it once
            report_metadata(header, info.spec, report, reg, checked)
        with reg.open_writer(info.name, staging, checked) as writer:
            writer.write(header, _guarded(stream, info.spec, report, progress, header.size_hint), report)
        if strict:
            refuse_loss(report)
    return report


def refuse_loss(report: Report) -> None:
    """Raise the strict-mode error when ``report`` dropped or skipped anything."""
    if not report.lossless:
        lost = "; ".join(
            [f"{kind}: {count} ({reason})" for kind, (count, reason) in report.dropped.items()]
            + ([f"{len(report.skipped)} bad items skipped"] if report.skipped else [])
        )
        raise DatasetError(f"strict mode: the conversion would lose data ({lost}); nothing was written")


def report_metadata(
    header: Header, target: FormatSpec, report: Report, registry: Registry, options: Mapping[str, Any]
) -> None:
    """Count the header's dataset-level records that ``target`` cannot keep as dropped: the format-specific
    ones (:attr:`Header.metadata`) unless it is their format, keypoint schemas (names or skeleton) when it
    stores no keypoints, the label list when it stores no annotations at all, and what the target's plugin
    reports through ``dsformats_header_losses`` (with the writer ``options``). Called once per conversion."""
    source = header.metadata_format
    if source and source != target.name:
        for kind, count in header.metadata.items():
            report.drop(kind, f"only a {source} writer keeps it", count)
    categories = header.categories
    if "points" not in target.annotation_kinds:
        schemas = sum(1 for schema in categories.keypoints.values() if schema.names or schema.skeleton)
        if schemas:
            report.drop("keypoint schema", f"{target.name} stores no keypoints", schemas)
    if categories.labels and not target.annotation_kinds:
        report.drop("label definition", f"{target.name} stores no labels", len(categories.labels))
    for kind, reason, count in registry.header_losses(target.name, header, options):
        if count:
            report.drop(kind, reason, count)


def prepare_conversion(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str,
    source_format: str | None,
    reader_options: Mapping[str, Any] | None,
    writer_options: Mapping[str, Any] | None,
    *,
    overwrite: bool = False,
    registry: Registry | None = None,
) -> tuple[Registry, FormatInfo, dict[str, Any], str]:
    """The checks every conversion makes before reading: options, output, and the input format.

    Returns the registry, the target format, its validated writer options and the source format's name.
    """
    reg = _registry(registry)
    info, preset = reg.writer_format(format)
    checked = validate_options(info.spec.writer_options, {**preset, **(writer_options or {})}, what="writer option")
    if source_format:
        validate_options(reg.reader_format(source_format).spec.reader_options, reader_options, what="reader option")
    check_output(dst, overwrite=overwrite)
    if not source_format:
        source_format = detect_format(src, registry=reg)
    return reg, info, checked, reg.reader_format(source_format).name


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str,
    *,
    source_format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    writer_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    registry: Registry | None = None,
    progress: Progress | None = None,
    strict: bool = False,
    skip_bad_items: bool = False,
) -> Report:
    """Convert the dataset at ``src`` into ``format`` at ``dst``, streaming; return the report.

    Every option is validated before anything is read; the input format is detected when not given.
    """
    reg, info, checked, source_format = prepare_conversion(
        src, dst, format, source_format, reader_options, writer_options, overwrite=overwrite, registry=registry
    )
    report = Report(source_format=source_format)
    with (
        reporting(report, skip_bad_items=skip_bad_items),
        read(src, source_format, options=reader_options, registry=reg) as reader,
    ):
        return write(
            reader.items(),
            dst,
            info.name,
            header=reader.header,
            options=checked,
            overwrite=overwrite,
            registry=reg,
            progress=progress,
            report=report,
            strict=strict,
            skip_bad_items=skip_bad_items,
        )
