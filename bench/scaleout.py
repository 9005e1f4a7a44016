"""Issue 11's benchmark rows: re-encoding on Dask against a single process, and tiny-image runs (up to 1,000,000
images) with the memory of every worker sampled over the run.

    python bench/run.py --group scaleout --images 300 --runs 3 --tiny --markdown bench/results-scaleout-reencode.md
    python bench/run.py --group scaleout --images 0 --tiny 100000 1000000 --markdown bench/results-scaleout-tiny.md
    python bench/scaleout.py ...          # the same; with both --images N and --tiny SIZES, both tables

Every run is a whole ``dsformats convert`` process (``--engine dask --workers N`` starts a LocalCluster), timed
from outside; while it runs, a sampler reads the RSS of the process and of each of its worker processes (the
Dask workers, or a ``--jobs`` pool) every ``--interval`` seconds with psutil.

- Re-encode rows (``--images`` full-size JPEGs, ``--image-ext .png``): one process with ``--jobs 1``, one
  process with the default ``--jobs`` (the CPU count), and Dask; runs interleaved, best time. Target: Dask on 2
  workers at least 1.7x the single-process throughput. Every output is hashed and compared.
- Tiny rows (``--tiny`` sizes of 32x24 JPEGs, image_zip -> image_zip byte copies), each in two layouts: one
  zip (range shards, each opening the whole archive) and a directory of zips of ``--per-archive`` images
  (one shard per archive); one process against Dask. Memory per worker must stay flat: the table shows each
  run's worker RSS over time (the largest worker, per tenth of the run). Big data and outputs live under
  ``--work`` (``/dev/shm``); ``--clean`` removes the generated tiny data afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import os
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jobs import reencode_loads
from run import (
    LOCAL,
    Measured,
    best,
    convert_command,
    dataset,
    fmt_time,
    machine,
    markdown_table,
    peak,
    publish,
    run_once,
    tree_digest,
)

MB = 2**20
TARGET_THROUGHPUT = 1.7


@dataclass
class Samples:
    """Samples of one run, as (seconds, value): the root process's RSS, each worker process's RSS and CPU time."""

    root: list[tuple[float, int]] = field(default_factory=list)
    workers: dict[int, list[tuple[float, int]]] = field(default_factory=dict)
    cpu: dict[int, list[tuple[float, float]]] = field(default_factory=dict)

    def busy_until(self, share: float = 0.3) -> float | None:
        """The last sample at which a worker was busy (more than ``share`` of a CPU since the sample before):
        when the shards were done. What follows is the client's merge, the publish and the cluster's stop."""
        last = None
        for series in self.cpu.values():
            for (t0, c0), (t1, c1) in itertools.pairwise(series):
                if c1 - c0 > share * (t1 - t0):
                    last = t1 if last is None else max(last, t1)
        return last

    def worker_peak(self) -> int | None:
        return max((rss for series in self.workers.values() for _, rss in series), default=None)

    def worker_median(self) -> int | None:
        """The median RSS of the worker with the highest median."""
        medians = [statistics.median(rss for _, rss in series) for series in self.workers.values() if series]
        return int(max(medians)) if medians else None

    def timeline(self, bins: int = 10) -> list[int]:
        """The largest worker RSS in each of ``bins`` equal slices of the time any worker was alive."""
        points = sorted((t, rss) for series in self.workers.values() for t, rss in series)
        if not points:
            return []
        start, stop = points[0][0], points[-1][0]
        width = (stop - start) / bins or 1.0
        slices = [0] * bins
        for t, rss in points:
            index = min(int((t - start) / width), bins - 1)
            slices[index] = max(slices[index], rss)
        return [s for s in slices if s]


class Sampler:
    """``run_once`` monitor: samples the command's RSS and its worker processes' while it runs."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.runs: list[Samples] = []

    @contextlib.contextmanager
    def __call__(self, pid: int) -> Iterator[None]:
        import psutil

        samples = Samples()
        self.runs.append(samples)
        stop = threading.Event()
        # pid: is a worker: a multiprocessing child (Dask spawns its workers, a --jobs pool forks them from a
        # forkserver, which counts too, and --engine processes forks them: the same command line as the root),
        # not the resource tracker
        kinds: dict[int, bool] = {}

        def loop() -> None:
            started = time.perf_counter()
            try:
                root = psutil.Process(pid)
                while not stop.is_set():
                    now = time.perf_counter() - started
                    samples.root.append((now, root.memory_info().rss))
                    for child in root.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            if child.pid not in kinds:
                                command = " ".join(child.cmdline())
                                forked = command == " ".join(root.cmdline())  # root has run exec by now
                                kinds[child.pid] = (forked or "spawn_main" in command
                                                    or "multiprocessing.forkserver" in command)
                            if kinds[child.pid]:
                                samples.workers.setdefault(child.pid, []).append((now, child.memory_info().rss))
                                times = child.cpu_times()
                                samples.cpu.setdefault(child.pid, []).append((now, times.user + times.system))
                    stop.wait(self.interval)
            except psutil.Error:  # the command has exited
                pass

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


@dataclass
class Result:
    times: list[Measured] = field(default_factory=list)
    samples: list[Samples] = field(default_factory=list)
    digests: set[str] = field(default_factory=set)

    @property
    def best(self) -> float:
        return best(self.times).seconds

    def peak(self) -> int:
        return peak(self.times)

    def worker_peak(self) -> int | None:
        return max((p for s in self.samples if (p := s.worker_peak()) is not None), default=None)


def measure(variants: dict[str, list[str]], out: Path, runs: int, interval: float) -> dict[str, Result]:
    """Run each variant's command ``runs`` times, interleaved, sampled and hashed."""
    results = {name: Result() for name in variants}
    for _ in range(runs):
        for name, command in variants.items():
            sampler = Sampler(interval)
            results[name].times.append(run_once(command, out, None, monitor=sampler))
            results[name].samples += sampler.runs
            results[name].digests.add(tree_digest(out)[0])
    shutil.rmtree(out, ignore_errors=True)
    return results


def mb(value: int | None) -> str:
    return "—" if value is None else f"{value / MB:.0f} MB"


def reencode_rows(data: Path, workers: int) -> dict[str, dict[str, list[str]]]:
    """Workload: variant: command."""
    dask = ["--engine", "dask", "--workers", str(workers)]
    return {
        name: {
            "1 process, --jobs 1": convert_command(sf, src, fmt, *LOCAL, "--", *options, "--jobs", "1"),
            f"1 process, default --jobs ({os.cpu_count()})": convert_command(sf, src, fmt, *LOCAL, "--", *options),
            f"Dask, {workers} workers": convert_command(sf, src, fmt, *dask, "--", *options),
        }
        for name, (sf, src, fmt, options) in reencode_loads(data).items()
    }


def reencode_table(args: argparse.Namespace, out: Path) -> str:
    data = dataset(args.work, args.images, 7, args.image_size)
    body = []
    for name, variants in reencode_rows(data, args.workers).items():
        if args.only and args.only not in name:
            continue
        results = measure(variants, out, args.runs, args.interval)
        base, default = (results[v].best for v in list(variants)[:2])
        digests = set().union(*(r.digests for r in results.values()))
        for variant, result in results.items():
            print(f"{name:<52} {variant:<28} {fmt_time(result.times)}", file=sys.stderr)
            is_dask = variant.startswith("Dask")
            met = ("yes" if base / result.best >= TARGET_THROUGHPUT else "**no**") if is_dask else "—"
            body.append([name, variant, fmt_time(result.times), f"{args.images / result.best:.1f}",
                         mb(result.peak()), mb(result.worker_peak()), f"{base / result.best:.2f}×",
                         f"{default / result.best:.2f}×", "yes" if len(digests) == 1 else "**no**", met])
    columns = ["workload", "run", "time", "images/s", "largest process peak RSS", "worker processes' RSS (max)",
               "vs 1 process --jobs 1", "vs 1 process default --jobs", "same bytes as every other run",
               f"Dask ≥ {TARGET_THROUGHPUT}× 1 process"]
    header = (f"Re-encoding {args.images:,} {args.image_size} JPEGs to PNG; best time (median) of {args.runs} "
              f"interleaved runs; {machine()}.")
    return header + "\n\n" + markdown_table(columns, body)


def tiny_table(args: argparse.Namespace, out: Path) -> str:
    body, datas = [], []
    for size in sorted(args.tiny):
        archives = math.ceil(size / args.per_archive)
        data = dataset(args.work, size, 0, "tiny", formats="image_zip", archives=archives)
        datas.append(data)
        layouts = {f"1 zip of {size:,} (range shards)": data / "image_zip"}
        if archives > 1:
            layouts[f"{archives} zips of ≤ {args.per_archive:,} (1 shard each)"] = data / "image_zip_parts"
        for layout, src in layouts.items():
            variants = {
                "1 process": convert_command("image_zip", src, "image_zip", *LOCAL),
                f"processes, {args.workers} workers": convert_command("image_zip", src, "image_zip", "--engine",
                                                                      "processes", "--workers", str(args.workers)),
                f"Dask, {args.workers} workers": convert_command("image_zip", src, "image_zip", "--engine", "dask",
                                                                 "--workers", str(args.workers)),
            }
            results = measure(variants, out, args.tiny_runs, args.interval)
            digests = set().union(*(r.digests for r in results.values()))
            for variant, result in results.items():
                samples = max(result.samples, key=lambda s: s.worker_peak() or 0)
                client = max((rss for s in result.samples for _, rss in s.root), default=0)
                if samples.worker_peak() is None:  # one process: wait4's peak is the client's, sampled or not
                    client = max(client, result.peak())
                timeline = " ".join(f"{rss / MB:.0f}" for rss in samples.timeline())
                fastest = min(range(len(result.times)), key=lambda i: result.times[i].seconds)
                busy = result.samples[fastest].busy_until()
                merge = "—" if busy is None else f"{result.times[fastest].seconds - busy:.1f} s"
                print(f"{size:>9,} {layout:<36} {variant:<16} {fmt_time(result.times)}  client {mb(client)}  "
                      f"workers {timeline}", file=sys.stderr)
                body.append([f"{size:,}", layout, variant, fmt_time(result.times), f"{size / result.best:,.0f}",
                             mb(result.peak()), mb(client), mb(samples.worker_median()), mb(samples.worker_peak()),
                             f"{timeline} MB" if timeline else "—", merge,
                             "yes" if len(digests) == 1 else "**no**"])
    if args.clean:
        for data in datas:
            shutil.rmtree(data, ignore_errors=True)
    columns = ["images", "input", "run", "time", "images/s", "largest process peak RSS", "client RSS",
               "worker RSS median", "worker RSS max", "worker RSS per tenth of the run",
               "after the workers' last busy sample (merge, publish, stop)", "same bytes"]
    header = (f"Tiny images (32x24 JPEGs, about 700 bytes each), image_zip → image_zip byte copies; best of "
              f"{args.tiny_runs} runs; RSS sampled every {args.interval} s; {machine()}.")
    return header + "\n\n" + markdown_table(columns, body)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py --group scaleout", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300, help="re-encode rows: images (0: skip those rows)")
    parser.add_argument("--image-size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--runs", type=int, default=2, help="re-encode rows: runs per variant")
    parser.add_argument("--tiny", type=int, nargs="*", default=[1_000_000],
                        help="tiny rows: numbers of images (none: skip those rows)")
    parser.add_argument("--per-archive", type=int, default=50_000, help="tiny rows: images per zip of the "
                        "directory-of-zips layout")
    parser.add_argument("--tiny-runs", type=int, default=1, help="tiny rows: runs per variant")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between RSS samples")
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/dsformats-bench"))
    parser.add_argument("--only", help="re-encode rows: only workloads whose name contains this text")
    parser.add_argument("--clean", action="store_true", help="remove the generated tiny data afterwards")
    parser.add_argument("--markdown", type=Path, default=None, help="write the tables here (default: print only)")
    args = parser.parse_args(argv)

    out = args.work / "out" / f"scaleout-{os.getpid()}"  # per process: others may run the bench at the same time
    tables = []
    if args.images:
        tables.append(reencode_table(args, out))
    if args.tiny:
        tables.append(tiny_table(args, out))
    return publish("\n".join(tables), args.markdown)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
