"""Scale-out conversion on Dask distributed: shards read and written by workers, merged on the client.

``convert_distributed`` splits the input into shards (the reader's ``shards()`` when it has one, else ranges
of item indexes), runs the ordinary reader -> writer pipeline of each shard on a Dask worker into a partial
directory, then merges the partials on the client through the target plugin's ``dsformats_merge`` hook into
the staged output, which is published atomically (see :func:`dsformats.dispatch.staged_output`). A failed
shard publishes nothing. Targets without a merge implementation, or whose merge declines the partials (it
returns None when it cannot give the single-process bytes), are converted in a single process on the
client, with a warning in the report.

Dask is an optional dependency (``pip install 'dsformats[dask]'``), imported only when this runs.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import os
import pickle
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from dsformats import archives, dispatch
from dsformats.errors import DsformatsError, OptionError
from dsformats.formats import FormatSpec
from dsformats.model import Header
from dsformats.placement import Placement, PlannedMedia
from dsformats.policy import partial_output, placing, reporting
from dsformats.registry import Registry, default_registry
from dsformats.report import Report

__all__ = ["convert_distributed", "plan_shards"]

#: ``(shards done, shards in all, items done)`` after each finished shard.
ShardProgress = Callable[[int, int, int], None]

#: Range shards per worker when the reader has no ``shards()``: more shards balance load better, each costs
#: one reader opening (for COCO, one parse of the JSON) on a worker.
SHARDS_PER_WORKER = 4

#: Shards are placed in the merged output (see :mod:`dsformats.placement`) while their parts average at least this
#: many bytes an item (predicting takes a ``stat`` per file on the client, about what the merge spends copying
#: 10 KB of a part): after a shard of smaller files, the later ones write ordinary parts.
PLACED_MIN_BYTES = 16 << 10

#: ``engine="auto"`` uses the local process pool from this many items on (below, one process is faster:
#: starting the pool and merging cost about as much as converting a couple of thousand items).
AUTO_MIN_ITEMS = 2000


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _auto_candidate(src: Any, dst: Any, workers: int, source: FormatSpec) -> bool:
    """Whether ``engine="auto"`` may shard at all: several CPUs, a local output folder, and a local input
    folder, a file that the source format reads itself (an image_zip archive, a COCO JSON file), or a dataset
    in a local .zip (read through an archive file system, which each worker process opens once; a tar, and a
    compressed one above all, would be read again from its start by every worker)."""
    plain = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # URLs (s3://, memory://, zip://) stay in one process
    if workers < 2 or plain.match(str(src)) or plain.match(str(dst)) or str(dst).lower().endswith(".zip"):
        return False
    path = Path(src)
    zipped = archives.archive_kind(path.name) == "zip"
    return path.is_dir() or ((source.reads_file(path.name) or zipped) and path.is_file())


class _Declined(Exception):
    """The target's merge hook returned None: it cannot give the single-process output from these partials."""


def plan_shards(reader: Any, *, count: int) -> list[dict[str, Any]]:
    """The shards of an open reader: ``{"key": ...}`` from ``reader.shards()``, else index ranges.

    A range shard is ``{"start": i, "stop": j}`` (the last one has ``stop`` None, so a low size hint loses
    nothing). ``count`` is the number of range shards wanted.
    """
    shards = getattr(reader, "shards", None)
    if callable(shards):
        found = list(shards(count) if inspect.signature(shards).parameters else shards())
        if len(found) > 1:
            return [{"key": shard.key, "size": shard.size_hint} for shard in found]
    total = reader.header.size_hint
    if total is None:
        total = sum(1 for _ in reader.items())
    count = max(1, min(count, total))
    bounds = [round(i * total / count) for i in range(count + 1)]
    plans = [{"start": a, "stop": b, "size": b - a} for a, b in itertools.pairwise(bounds)]
    plans[-1]["stop"] = None
    return plans


def _shard_reader(reader: Any, plan: Mapping[str, Any], run: _Run) -> _Shipped | None:
    """The reader's own reader of one shard (``shard_reader(key)``, reusing its index), to ship; else None.

    Without one, the worker opens the input again with the reader option ``shard``.
    """
    make = getattr(reader, "shard_reader", None)
    if "key" not in plan or not callable(make):
        return None
    return _Shipped(make(plan["key"]), run)


class _Run:
    """The shard tasks of a run, as the client follows them: the shard readers not yet pickled (the client's
    reader, whose index they share, stays open until none is) and each finished shard's report (``progress`` is
    told as they come, in any order). A failed shard raises once every earlier shard is done, and the earliest
    failure is the one raised: the error of the first bad item in item order, as one process raises it."""

    def __init__(self, progress: ShardProgress | None) -> None:
        self.changed = threading.Condition()
        self.unshipped: set[int] = set()  # ids of the _Shipped not yet pickled
        self.futures: list[Any] = []
        self.reports: dict[int, Report] = {}
        self.failures: dict[int, BaseException] = {}
        self.finished: list[int] = []  # shards done (or failed) since the client last looked
        self.progress = progress

    def add(self, future: Any) -> None:
        index = len(self.futures)
        self.futures.append(future)
        future.add_done_callback(lambda done: self._done(index, done))

    def _done(self, index: int, future: Any) -> None:  # in a pool's or Dask's thread
        with self.changed:
            self.finished.append(index)
            self.changed.notify_all()

    def shipped(self, shipped: _Shipped) -> None:  # in the thread that pickles the task
        with self.changed:
            self.unshipped.discard(id(shipped))
            self.changed.notify_all()

    def wait(self, ready: Callable[[], bool]) -> None:
        """Return once ``ready()``, collecting the reports of the shards that finish meanwhile. The earliest shard
        that failed raises its error here once every shard before it is done, unless ``ready()``: the caller may
        take every shard before it (a merge may find an error of their items, which comes first in item order)."""
        while True:
            with self.changed:
                while not (self.finished or ready() or self._failure()):
                    self.changed.wait(1.0)
                finished, self.finished = self.finished, []
            for index in finished:
                try:
                    self.reports[index] = self.futures[index].result()
                except BaseException as exc:  # noqa: BLE001 - raised below, in shard order
                    self.failures[index] = exc
            if finished and self.progress is not None:
                items = sum(sum(r.items_written.values()) for r in self.reports.values())
                self.progress(len(self.reports), len(self.futures), items)
            if ready():
                return
            failure = self._failure()
            if failure is not None:
                raise failure

    def _failure(self) -> BaseException | None:
        """The earliest failed shard's error, once every shard before it is done; else None."""
        if self.failures:
            first = min(self.failures)
            if all(index in self.reports for index in range(first)):
                return self.failures[first]
        return None

    def report(self, index: int) -> Report:
        """Shard ``index``'s report, once it is done."""
        self.wait(lambda: index in self.reports)
        return self.reports[index]


class _Shipped:
    """A shard reader on its way to a worker: pickled once, when its task is, and unpickled as the reader itself,
    or as None (the worker opens the input again) when it does not pickle.

    Its parent reader must still be open then: a shard reader may build its part of the index only now.
    """

    def __init__(self, reader: Any, run: _Run) -> None:
        self.reader, self.run = reader, run
        run.unshipped.add(id(self))

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        try:
            data = pickle.dumps(self.reader)
        except Exception:  # noqa: BLE001 - e.g. a path inside an archive file system: the worker reopens instead
            return _none, ()
        finally:
            self.run.shipped(self)
        return pickle.loads, (data,)


def _none() -> None:
    return None


def _convert_shard(task: Mapping[str, Any]) -> Report:
    """Run on a worker: read one shard and write it as ``task["format"]`` into ``task["part"]``."""
    registry = default_registry()
    report = Report(source_format=task["source_format"])
    reader_options = dict(task["reader_options"])
    shard = task["shard"]
    if "key" in shard:
        reader_options["shard"] = shard["key"]
    shipped = shard.get("reader")
    with (
        reporting(report, skip_bad_items=task["skip_bad_items"]),
        partial_output(),
        placing(task.get("placement")),
        shipped or dispatch.read(task["src"], task["source_format"], options=reader_options, registry=registry)
        as reader,
    ):
        items = reader.items()
        if "start" in shard:
            items = itertools.islice(items, shard["start"], shard["stop"])
        dispatch.write(
            items,
            task["part"],
            task["format"],
            header=task["header"],
            options=task["writer_options"],
            overwrite=True,
            registry=registry,
            report=report,
            skip_bad_items=task["skip_bad_items"],
        )
    return report


def _add_report(total: Report, part: Report, told: Collection[str] = ()) -> None:
    """Add a shard's ``part`` to ``total``; its skipped items in ``told`` (the client's, when a worker opened the
    input again and met the same bad ones) are not counted again."""
    total.items_read.update(part.items_read)
    total.items_written.update(part.items_written)
    total.media_copied += part.media_copied
    total.media_reencoded += part.media_reencoded
    total.annotations_written.update(part.annotations_written)
    for kind, (count, reason) in part.dropped.items():
        total.drop(kind, reason, count)
    total.skipped.extend(message for message in part.skipped if message not in told)
    for message in part.warnings:
        total.warn(message)


def _has_merge(registry: Registry, format: str) -> bool:
    plugin = registry.get(format).plugin
    return any(impl.plugin_name == plugin for impl in registry.plugin_manager.hook.dsformats_merge.get_hookimpls())


class _Engine:
    """Runs shard tasks: ``submit`` (a future with ``done``, ``result`` and ``add_done_callback``) and ``cancel``."""

    def __init__(self, submit: Callable[..., Any], cancel: Callable[[Any], Any]):
        self.submit, self.cancel = submit, cancel


@contextlib.contextmanager
def _dask(scheduler: str | None, workers: int, retries: int) -> Iterator[_Engine]:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - depends on the environment
        raise DsformatsError("the dask engine needs Dask: pip install 'dsformats[dask]'") from None

    def engine(client: Any) -> _Engine:
        def submit(task: Mapping[str, Any], index: int) -> Any:
            key = f"dsformats-shard-{index}-{uuid.uuid4().hex[:8]}"
            return client.submit(_convert_shard, task, retries=retries, pure=False, key=key)

        return _Engine(submit, client.cancel)

    if scheduler:
        with Client(scheduler) as client:
            yield engine(client)
        return
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        yield engine(client)


@contextlib.contextmanager
def _processes(workers: int) -> Iterator[_Engine]:
    """A pool of local processes: forked when this process runs no other thread (fast), else spawned."""
    import concurrent.futures
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1 else "spawn"
    context = multiprocessing.get_context(method)
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:

        def cancel(futures: Any) -> None:
            for future in futures:
                future.cancel()

        yield _Engine(lambda task, index: pool.submit(_convert_shard, task), cancel)


class _Placer:
    """Reserves each shard's byte range of the merged output file, in shard order, for as long as the shards'
    readers predict their media and the target sizes them (see :mod:`dsformats.placement`)."""

    def __init__(self, registry: Registry, format: str, options: Mapping[str, Any], folder: Path) -> None:
        self.registry, self.format, self.options = registry, format, options
        self.path = folder / "placed-output"  # made with the first placement
        self.offset: int | None = 0

    def place(self, plan: Mapping[str, Any]) -> Placement | None:
        """The range of the shard ``plan`` (with its shipped reader), after the earlier ones'; None from the first
        shard that cannot be sized on, and after a shard whose files average under :data:`PLACED_MIN_BYTES`."""
        if self.offset is None:
            return None
        shipped = plan.get("reader")
        planned = getattr(shipped.reader, "planned_media", None) if shipped is not None else None
        size, count = None, 0

        def counted(media: Iterable[PlannedMedia]) -> Iterator[PlannedMedia]:
            nonlocal count
            for each in media:
                count += 1
                yield each

        if callable(planned):
            try:
                media = planned()
                if media is not None:
                    size = self.registry.placed_size(self.format, counted(media), self.options)
            except Exception:  # noqa: BLE001 - a prediction only (a plugin's bug too): the shard writes an ordinary part
                size = None
        if size is None:
            self.offset = None
            return None
        if not self.offset:
            self.path.touch()
        placement = Placement(str(self.path), self.offset, size)
        # A stat a file costs about what the merge spends copying 10 KB: parts of small files are left to it.
        self.offset = self.offset + size if size >= PLACED_MIN_BYTES * count else None
        return placement


class _Parts:
    """Where the shards write their partial outputs: a local folder, or a prefix on object storage.

    Local parts live next to the output (the same file system, so the merge moves files instead of copying
    them) or under ``parts_dir``. Remote parts (``parts_dir`` a URL, or an object-store output written by a
    remote cluster) are written by the workers like any remote output and downloaded by the client for the
    merge, which works on local folders.
    """

    def __init__(self, dst: str | os.PathLike[str], parts_dir: str | os.PathLike[str] | None, remote_cluster: bool):
        token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}-parts.tmp"
        remote_dst = archives.is_url(dst) and not str(dst).startswith("file://")
        self.url: str | None = None
        if archives.is_url(parts_dir) and not str(parts_dir).startswith("file://"):
            self.url = f"{str(parts_dir).rstrip('/')}/dsformats-{token}"
        elif parts_dir is None and remote_dst and remote_cluster:
            parent, _, name = str(dst).rstrip("/").rpartition("/")
            self.url = f"{parent}/.{name}.dsformats-{token}"
        if self.url is not None:
            archives.require_remote("object-storage partials")
            from fsspec.core import url_to_fs

            self.fs, self.prefix = url_to_fs(self.url)
            self.local = Path(tempfile.mkdtemp(prefix="dsformats-parts-"))
        elif parts_dir is not None:
            self.local = Path(archives.as_input(parts_dir)) / f"dsformats-{token}"
            self.local.mkdir(parents=True)
        elif remote_dst:  # a LocalCluster: the workers share this machine's disk
            self.local = Path(tempfile.mkdtemp(prefix="dsformats-parts-"))
        else:
            target = Path(archives.as_input(dst))
            self.local = target.parent / f".{target.name}.dsformats-{token}"
            self.local.mkdir(parents=True)

    def part(self, index: int) -> str:
        """The output of shard ``index``, as the workers write it."""
        return f"{self.url}/{index:06d}" if self.url is not None else str(self.local / f"{index:06d}")

    def fetch(self, index: int) -> Path:
        """The output of shard ``index`` as a local folder (downloaded from object storage)."""
        local = self.local / f"{index:06d}"
        if self.url is None:
            return local
        from dsformats.archives import COMPLETE_MARKER

        base = f"{self.prefix}/{index:06d}"
        for key in self.fs.find(base):
            rel = key[len(base) + 1 :]
            if rel != COMPLETE_MARKER:
                (local / rel).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(key, str(local / rel))
        local.mkdir(parents=True, exist_ok=True)
        return local

    def remove(self) -> None:
        shutil.rmtree(self.local, ignore_errors=True)
        if self.url is not None:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(self.prefix, recursive=True)


class _Ready(Sequence[Path]):
    """The parts' folders, in shard order, for the merge hook; taking one waits until its shard is done."""

    def __init__(self, size: int, part: Callable[[int], Path]) -> None:
        self.size, self.part = size, part

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self.part(i) for i in range(*index.indices(self.size))]
        if not -self.size <= index < self.size:
            raise IndexError(index)
        return self.part(index % self.size)


def convert_distributed(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    format: str,
    *,
    source_format: str | None = None,
    reader_options: Mapping[str, Any] | None = None,
    writer_options: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    scheduler: str | None = None,
    workers: int = 2,
    registry: Registry | None = None,
    shards: int | None = None,
    retries: int = 1,
    parts_dir: str | os.PathLike[str] | None = None,
    progress: ShardProgress | None = None,
    strict: bool = False,
    skip_bad_items: bool = False,
    engine: str = "dask",
    item_progress: dispatch.Progress | None = None,
) -> Report:
    """Convert ``src`` into ``format`` at ``dst`` on a Dask cluster; the output equals :func:`dsformats.convert`'s.

    ``engine="processes"`` runs the shards on a pool of ``workers`` local processes instead (no Dask
    needed, no retries: a failed shard fails the conversion).

    ``scheduler`` (``tcp://host:8786``) connects to an existing cluster; without it a ``LocalCluster`` of
    ``workers`` single-threaded processes is started. Workers find the plugins installed in their own
    environment (``registry`` is used on the client only), read ``src`` themselves and write partials under
    ``parts_dir`` (default: next to ``dst``; for an object-store ``dst`` and a ``scheduler``, a prefix next
    to it on the store), which must be visible to the client and every worker: a shared folder, or an fsspec
    URL (``s3://bucket/tmp/``) that the client downloads from to merge. A task
    that raises is retried ``retries`` times; a task of a worker that dies is rerun by Dask. ``shards`` is
    the number of range shards (default 4 per worker) when the reader has no ``shards()``. ``progress`` is
    called with ``(shards done, shards, items done)``.

    ``engine="auto"`` (the CLI's default) is the processes engine when it pays: ``workers`` > 1, a local input
    folder (or a file that its format reads itself: an image_zip archive, a COCO JSON file; or a dataset in a local
    .zip) whose reader has ``shards()`` and at least :data:`AUTO_MIN_ITEMS` items, a merge hook for the target, a
    local output folder. Otherwise the
    conversion runs in this process (on the reader already opened), exactly as :func:`dsformats.convert`,
    and reports to ``item_progress``.
    """
    if engine not in ("dask", "processes", "auto"):
        raise OptionError(f"unknown engine {engine!r}; engines: auto, dask, processes")
    if workers < 1 or (shards is not None and shards < 1) or retries < 0:
        raise OptionError(f"workers and shards must be at least 1 and retries at least 0 (got {workers}, {shards}, "
                          f"{retries})")
    reg, info, checked, source_format = dispatch.prepare_conversion(
        src, dst, format, source_format, reader_options, writer_options, overwrite=overwrite, registry=registry
    )

    def single(why: str) -> Report:
        report = dispatch.convert(
            src, dst, info.name, source_format=source_format, reader_options=reader_options,
            writer_options=checked, overwrite=overwrite, registry=reg, strict=strict, skip_bad_items=skip_bad_items,
        )
        report.warn(f"converted in a single process on the client: {why}")
        return report

    auto = engine == "auto"
    if auto:
        engine = "processes"
        # It pays even for byte copies: workers get their part of the reader's index (an image_zip shard
        # reads only its records), write in parallel, and the archive merge appends each part in one block.
        source_spec = reg.reader_format(source_format).spec
        if not (_auto_candidate(src, dst, workers, source_spec) and _has_merge(reg, info.name)):
            return dispatch.convert(
                src, dst, info.name, source_format=source_format, reader_options=reader_options,
                writer_options=checked, overwrite=overwrite, registry=reg, progress=item_progress, strict=strict,
                skip_bad_items=skip_bad_items,
            )
    elif not _has_merge(reg, info.name):
        return single(f"format {info.name!r} has no dsformats_merge implementation")
    probe = Report(source_format=source_format)
    with contextlib.ExitStack() as client:  # the client's reader: open until the pool has shipped every shard reader
        with reporting(probe, skip_bad_items=skip_bad_items):
            reader = client.enter_context(dispatch.read(src, source_format, options=reader_options, registry=reg))
            header: Header = reader.header
            if auto and not (callable(getattr(reader, "shards", None)) and (header.size_hint or 0) >= AUTO_MIN_ITEMS):
                return dispatch.write(  # too small to pay: in this process, as convert() does
                    reader.items(), dst, info.name, header=header, options=checked, overwrite=overwrite,
                    registry=reg, progress=item_progress, report=probe, strict=strict, skip_bad_items=skip_bad_items,
                )
            plans = plan_shards(reader, count=shards or SHARDS_PER_WORKER * max(1, workers))
            run = _Run(progress)
            for plan in plans:
                plan["reader"] = _shard_reader(reader, plan, run)
        del reader  # its shard readers share its index; they and it are released once they are all pickled
        # Workers write with their own process pools off: Dask's worker processes are daemonic, and the bytes
        # do not depend on the number of jobs.
        task_options = {**checked, "jobs": 1} if "jobs" in checked else checked
        parts = _Parts(dst, parts_dir, remote_cluster=scheduler is not None and engine == "dask")
        try:
            report = Report(source_format=source_format, target_format=info.name)
            _add_report(report, probe)
            dispatch.report_metadata(header, info.spec, report, reg, checked)
            runner = _processes(workers) if engine == "processes" else _dask(scheduler, workers, retries)
            # Local workers write their parts straight into the merged output where the target can size them.
            local = (engine == "processes" and parts_dir is None and parts.url is None and not archives.is_url(dst)
                     and hasattr(os, "pwrite"))
            placer = _Placer(reg, info.name, checked, parts.local) if local else None
            with runner as pool:
                for index, shard in enumerate(plans):
                    task = {
                        "src": str(src), "source_format": source_format, "reader_options": dict(reader_options or {}),
                        "shard": shard, "format": info.name, "writer_options": task_options, "header": header,
                        "part": parts.part(index), "skip_bad_items": skip_bad_items,
                        "placement": placer.place(shard) if placer is not None else None,
                    }
                    run.add(pool.submit(task, index))

                fetched: dict[int, Path] = {}

                def release() -> None:
                    """Once every shard reader is pickled: release the client's reader and their index."""
                    if not run.unshipped:
                        client.close()
                        for plan in plans:
                            plan.pop("reader", None)

                def part(index: int) -> Path:
                    """Shard ``index``'s output, for the merge: waited for, then fetched (once)."""
                    if index not in fetched:
                        run.report(index)
                        release()
                        fetched[index] = parts.fetch(index)
                    return fetched[index]

                try:
                    # The merge starts at once, taking each part as its shard is done, while the pool still
                    # ships the later shards.
                    with dispatch.staged_output(dst, overwrite=overwrite) as staging:
                        merging = Report()  # the merge runs while the last shards do; its warnings come after theirs
                        with reporting(merging):
                            merged = reg.merge(info.name, _Ready(len(plans), part), staging, checked, merging)
                        run.wait(lambda: len(run.reports) == len(plans))
                        release()
                        told = set(probe.skipped)  # a shard that reopened the input met its part of them again
                        for index in range(len(plans)):
                            _add_report(report, run.reports[index], told)
                        _add_report(report, merging)
                        if merged is None:
                            raise _Declined
                        if strict:
                            dispatch.refuse_loss(report)
                except _Declined:
                    declined = True
                except BaseException:
                    pool.cancel(run.futures)
                    raise
                else:
                    declined = False
            if declined:
                parts.remove()
                return single(f"the {info.name} merge cannot give the single-process output for these partials")
            return report
        finally:
            parts.remove()
