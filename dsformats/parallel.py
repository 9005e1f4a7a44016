"""Ordered parallel work for writers: decode/encode images and render masks on every core.

Writers stream items in order and must write them in order, so that the output bytes do not depend on the
number of workers. :func:`ordered_map` runs a picklable function over payloads in worker processes, keeps at
most a small window of payloads in flight (memory stays bounded), and yields results in input order.
:func:`read_ahead` reads the media bytes of the next few items in threads while the writer works.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import sys
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pragma: no cover
    from dsformats.model import Item, Media

__all__ = ["forked", "ordered_map", "read_ahead", "resolve_jobs"]

C = TypeVar("C")
R = TypeVar("R")

def resolve_jobs(jobs: int | None) -> int:
    """``jobs`` itself, or the number of usable CPUs when None or below 1."""
    if jobs and jobs > 0:
        return jobs
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def ordered_map(
    function: Callable[[Any], R],
    tasks: Iterable[tuple[C, Any]],
    *,
    jobs: int | None = 1,
    window: int | None = None,
    catch: tuple[type[Exception], ...] = (),
    chunk: int = 1,
) -> Generator[tuple[C, Any], None, None]:
    """Yield ``(context, function(payload))`` for each ``(context, payload)`` of ``tasks``, in order.

    ``function`` and payloads must be picklable when ``jobs > 1``; contexts never leave this process. A
    payload of None is not submitted: its result is None. Exceptions of the types in ``catch`` are yielded
    as results instead of raised. With ``jobs == 1`` everything runs inline. At most ``window`` (default
    ``4 * jobs``) tasks are in flight; a task is ``chunk`` consecutive payloads, which cuts the per-task
    cost of the process pool when each payload is small work.
    """
    workers = resolve_jobs(jobs)
    if workers == 1:
        for context, payload in tasks:
            yield context, _call(function, payload, catch)
        return
    iterator = iter(tasks)
    # No process pool until there is work for it: while payloads are None, results pass straight through.
    for context, payload in iterator:
        if payload is not None:
            tasks = itertools.chain([(context, payload)], iterator)
            yield from _pooled(function, tasks, workers, window, catch, max(1, chunk))
            return
        yield context, None


def _pooled(
    function: Callable[[Any], R],
    tasks: Iterable[tuple[C, Any]],
    workers: int,
    window: int | None,
    catch: tuple[type[Exception], ...],
    chunk: int,
) -> Iterator[tuple[C, Any]]:
    import multiprocessing

    limit = window or 4 * workers
    method = "forkserver" if sys.platform.startswith("linux") else "spawn"
    pending: collections.deque[tuple[list[C], concurrent.futures.Future[list[Any]] | None]] = collections.deque()
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:

        def submit(batch: list[tuple[C, Any]]) -> None:
            payloads = [payload for _, payload in batch]
            busy = any(payload is not None for payload in payloads)
            future = pool.submit(_call_chunk, function, payloads, catch) if busy else None
            pending.append(([context for context, _ in batch], future))

        def drain(*, everything: bool = False) -> Iterator[tuple[C, Any]]:
            while pending and (everything or len(pending) > limit or _ready(pending[0][1])):
                contexts, future = pending.popleft()
                results = _result(future, ()) if future is not None else [None] * len(contexts)
                yield from zip(contexts, results, strict=True)

        try:
            batch: list[tuple[C, Any]] = []
            for context, payload in tasks:
                batch.append((context, payload))
                if len(batch) >= chunk or payload is None and len(batch) == 1:
                    submit(batch)
                    batch = []
                yield from drain()
            if batch:
                submit(batch)
            yield from drain(everything=True)
        finally:
            for _, future in pending:
                if future is not None:
                    future.cancel()


def _call_chunk(function: Callable[[Any], R], payloads: list[Any], catch: tuple[type[Exception], ...]) -> list[Any]:
    return [_call(function, payload, catch) for payload in payloads]


def _call(function: Callable[[Any], R], payload: Any, catch: tuple[type[Exception], ...]) -> Any:
    if payload is None:
        return None
    try:
        return function(payload)
    except catch as exc:
        return exc


def _result(future: concurrent.futures.Future[Any] | None, catch: tuple[type[Exception], ...]) -> Any:
    if future is None:
        return None
    try:
        return future.result()
    except catch as exc:
        return exc


def _ready(future: concurrent.futures.Future[Any] | None) -> bool:
    return future is None or future.done()


#: :func:`read_ahead`: items whose media are read ahead (two tasks of the reading thread: one read while the writer
#: uses the other), items per task (each task is a few hand-offs of the GIL between the thread and the writer,
#: whatever its size, when its media are members of one local zip: COCO zip -> VOC on 10,000 deflated JPEGs took
#: 3.35-3.40 s with tasks of 16 items, 3.19-3.20 s with 64, 3.25 s with 128), the largest media read ahead, and
#: the bytes read ahead at most (shared by the tasks in flight; a task reads at least one media up to the limit).
READ_AHEAD_WINDOW = 128
READ_AHEAD_CHUNK = 64
READ_AHEAD_LIMIT = 8 << 20
READ_AHEAD_BUDGET = 64 << 20


def read_ahead(
    items: Iterable[Item],
    *,
    window: int = READ_AHEAD_WINDOW,
    chunk: int = READ_AHEAD_CHUNK,
    limit: int = READ_AHEAD_LIMIT,
    budget: int = READ_AHEAD_BUDGET,
) -> Iterator[Item]:
    """Yield ``items`` in order while a thread reads the media bytes of the next ``window`` items.

    For writers that copy every image, when the bytes come from an archive or object storage: inflating a
    zip member (read and inflated with the GIL released) or waiting for a download then overlaps with the
    writer's work, on another core. The thread reads the media of ``chunk`` consecutive items per task, the
    deflated members of a local zip all at once (:meth:`~dsformats.model.Media.load_all`). Only media marked
    :attr:`~dsformats.model.Media.read_ahead` are read, each at most ``limit`` bytes, and a task at most its
    share of ``budget`` (``budget * chunk / window``, and at least one media): the others stay lazy. A media
    that fails to read stays lazy: the writer's own read raises the same error, at the same item. An item
    with nothing to read and nothing before it waiting passes straight through. ``items``
    is iterated in this thread, and an exception it raises is raised after the items before it. Close the
    generator (or exhaust it) before closing the reader: closing waits for the reads in flight.
    """
    import attrs

    source = iter(items)
    chunk = max(1, min(chunk, window))
    share = max(1, budget * chunk // window)
    pending: collections.deque[tuple[Item, concurrent.futures.Future[list[Media | None]] | None, int]]
    pending = collections.deque()
    batch: list[tuple[Item, Media | None]] = []
    failure: Exception | None = None
    done = False
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dsformats-read-ahead") as pool:

        def submit() -> None:
            medias = [media for _, media in batch]
            future = None
            if any(media is not None for media in medias):
                future = pool.submit(_loaded, medias, limit, share)
            pending.extend((item, future, k) for k, (item, _) in enumerate(batch))
            batch.clear()

        try:
            while True:
                while not done and len(pending) + len(batch) < window:
                    try:
                        item = next(source)
                    except StopIteration:
                        done = True
                        break
                    except Exception as exc:  # raised in turn, after the items read before it
                        failure, done = exc, True
                        break
                    media = item.media if item.media is not None and item.media.read_ahead else None
                    if media is None and not batch and not pending:
                        yield item  # nothing to read, nothing before it: straight through
                        continue
                    batch.append((item, media))
                    if len(batch) == chunk:
                        submit()
                if not pending:
                    submit()
                    if not pending:
                        break
                item, future, k = pending.popleft()
                loaded = future.result()[k] if future is not None else None
                yield item if loaded is None else attrs.evolve(item, media=loaded)
            if failure is not None:
                raise failure
        finally:
            for _, future, _ in pending:
                if future is not None:
                    future.cancel()


def _loaded(medias: list[Media | None], limit: int, budget: int) -> list[Media | None]:
    """Each media backed by its bytes, or None (not to be read, too large, over the budget, or failed: its
    user's own read raises again)."""
    from dsformats.model import Media

    wanted = [(k, media) for k, media in enumerate(medias) if media is not None]
    out: list[Media | None] = [None] * len(medias)
    found = Media.load_all([media for _, media in wanted], limit, budget=budget)
    for (k, _), media in zip(wanted, found, strict=True):
        out[k] = media
    return out


def forked(function: Callable[[], R]) -> Callable[[], R | None] | None:
    """Start ``function()`` in a forked child process, to run beside this one; None when that cannot pay or is
    unsafe (not Linux, where system libraries may not survive a fork; one usable CPU; or other Python threads
    running in this process, which a fork would not copy).

    The child works on a copy-on-write snapshot of this process and sends its result back pickled. Call the
    returned function to wait for the result: None when the child failed in any way (an exception, a result
    that does not pickle, a crash), so that the caller does that part of the work itself.
    """
    import pickle
    import threading

    if not sys.platform.startswith("linux") or resolve_jobs(None) < 2 or threading.active_count() != 1:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(read)
            data = pickle.dumps(function(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write, "wb") as out:
                out.write(data)
            code = 0
        finally:
            os._exit(code)
    os.close(write)

    def result() -> R | None:
        with os.fdopen(read, "rb") as stream:
            data = stream.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not data:
            return None
        try:
            return pickle.loads(data)  # type: ignore[no-any-return]
        except Exception:  # noqa: BLE001 - a truncated or odd result: the caller does the work itself
            return None

    return result
