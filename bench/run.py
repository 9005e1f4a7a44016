"""Benchmark dsformats conversions, optionally side by side with Datumaro, as whole processes.

    python bench/run.py --images 10000 --runs 3 --peers        # the README table
    python bench/run.py --images 200 --runs 1                  # a smoke run
    python bench/run.py --group memory|jobs|scaleout --help    # the other row groups (memory.py, jobs.py, scaleout.py)

Each workload runs as a separate process, ``--runs`` times per tool; the table shows the best (minimum) and
median wall time, the peak RSS measured from outside the process (``wait4``), and the CPU time (user + system)
of the fastest run's whole process tree, with the number of cores it kept busy on average. ``--peers`` installs
Datumaro into its own virtualenv (``bench/.venv-datumaro``, created on first use) and runs the same
workloads with it. Outputs go under ``--work`` (default ``/dev/shm/dsformats-bench``), because this machine's
disk slows file creation for minutes after a mass delete. No timing is asserted here: the targets are read
off the table.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


DSFORMATS = [sys.executable, "-m", "dsformats"]
#: Row groups besides the default conversions table: ``--group NAME`` runs ``bench/NAME.py``'s ``main``.
GROUPS = ("memory", "jobs", "scaleout")


class Measured(NamedTuple):
    """One run of a command: wall time, peak RSS in bytes (the largest single process), and CPU seconds (user +
    system) of the command and of every process it waited for (its workers)."""

    seconds: float
    peak: int
    cpu: float


def best(values: list[Measured]) -> Measured:
    """The fastest run."""
    return min(values, key=lambda value: value.seconds)


def peak(values: list[Measured]) -> int:
    """The largest peak RSS of the runs, in bytes."""
    return max(value.peak for value in values)


@dataclass
class Workload:
    """One conversion, as a dsformats command and the equivalent Datumaro command."""

    name: str
    ours: list[str]
    theirs: list[str] | None
    floor: str | None = None
    results: dict[str, list[Measured]] = field(default_factory=dict)
    peer: str | None = None  # compare with the Datumaro run of this other workload (same conversion)


def workloads(data: Path, out: Path) -> list[Workload]:
    """The workloads of the performance issue, with ``{out}`` output folders."""
    coco, voc, izip = data / "coco", data / "voc", data / "image_zip"

    def convert(src_fmt: str, src: Path, fmt: str, *extra: str) -> list[str]:
        return [*DSFORMATS, "convert", "-q", "-if", src_fmt, "-i", str(src), "-f", fmt, "-o", "{out}", *extra]

    def datum(src_fmt: str, src: Path, fmt: str, *extra: str) -> list[str]:
        return ["{datum}", "convert", "-if", src_fmt, "-i", str(src), "-f", fmt, "-o", "{out}", *extra]

    return [
        Workload("COCO → VOC detection, with images",
                 convert("coco", coco, "voc", "--", "--tasks", "detection", "--save-images"),
                 datum("coco", coco, "voc_detection", "--", "--save-media")),
        # reading a zipped export in place, against unpacking it first (both timed as one command)
        Workload("COCO zip → VOC detection, with images",
                 convert("coco", data / "coco.zip", "voc", "--", "--tasks", "detection", "--save-images"), None),
        Workload("COCO zip, JPEGs stored → VOC detection, with images",
                 convert("coco", data / "coco-stored.zip", "voc", "--", "--tasks", "detection", "--save-images"),
                 None),
        Workload("COCO zip: unzip, then → VOC detection",
                 ["sh", "-c", f"rm -rf {{out}}.src && {sys.executable} -c 'import sys, zipfile; "
                  f"zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' {data / 'coco.zip'} {{out}}.src && "
                  + " ".join(convert("coco", Path("{out}.src/coco"), "voc", "--", "--tasks", "detection",
                                     "--save-images"))], None),
        Workload("COCO → VOC all tasks, with images",
                 convert("coco", coco, "voc", "--", "--save-images"),
                 datum("coco", coco, "voc", "--", "--save-media")),
        Workload("VOC → COCO", convert("voc", voc, "coco"), datum("voc", voc, "coco")),
        # Datumaro's plain "coco" writer also writes panoptic and crashes on >255 objects: ask for instances
        Workload("COCO → COCO (annotations)", convert("coco", coco, "coco"), datum("coco", coco, "coco_instances"),
                 floor="json"),
        Workload("image_zip → COCO image_info", convert("image_zip", izip, "coco", "--", "--tasks", "image_info"),
                 datum("image_zip", izip, "coco_image_info"), floor="zip_list"),
        Workload("COCO → image_zip", convert("coco", coco, "image_zip"), datum("coco", coco, "image_zip"),
                 floor="copy"),
        # the source archive is stored: this row deflates every image (on every core); its floor deflates too
        Workload("image_zip → image_zip (deflated)",
                 convert("image_zip", izip, "image_zip", "--", "--compression", "deflated"),
                 datum("image_zip", izip, "image_zip", "--", "--compression", "ZIP_DEFLATED"),
                 floor="copy_deflated"),
        # its floor reads the members from the same archive (zipfile), as the conversion must
        Workload("image_zip → image_zip", convert("image_zip", izip, "image_zip"), None, floor="copy_zip"),
        # "image_zip -> anything, anything -> image_zip": a folder format on the other side, images kept
        Workload("VOC → image_zip", convert("voc", voc, "image_zip"), datum("voc", voc, "image_zip"), floor="copy"),
        Workload("image_zip → VOC, with images", convert("image_zip", izip, "voc", "--", "--save-images"),
                 datum("image_zip", izip, "voc", "--", "--save-media"), floor="extract"),
        Workload("format detection (whole process)", [*DSFORMATS, "detect", str(coco)],
                 ["{datum}", "detect", str(coco)]),
        # the default engine ("auto") shards local folders and archives of 2,000+ items on every core; the same
        # conversions in one process (--engine local), against Datumaro's same run
        *(Workload(f"{name}, one process", [*command[:4], "--engine", "local", *command[4:]], None,
                   peer=name)
          for name, command in [
              ("COCO → VOC detection, with images",
               convert("coco", coco, "voc", "--", "--tasks", "detection", "--save-images")),
              ("COCO → VOC all tasks, with images", convert("coco", coco, "voc", "--", "--save-images")),
              ("VOC → COCO", convert("voc", voc, "coco")),
              ("COCO → COCO (annotations)", convert("coco", coco, "coco")),
              ("COCO → image_zip", convert("coco", coco, "image_zip")),
          ]),
    ]


#: Starts a command and reports its time, peak RSS and CPU time. Linux counts the resident size of the process
#: that starts a command into the command's peak RSS (the peak is carried across fork and exec), and this runner
#: holds tens of MB by the end of a run: a small launcher of its own (about 9 MB) starts every command. It is the
#: child subreaper of the command's tree, so that processes the command did not wait for (a multiprocessing
#: forkserver and the workers it forked) are reaped, and counted, by it: for up to ORPHANS_WAIT seconds after the
#: command exits.
_LAUNCH = """
import ctypes, os, sys, time
try:
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except (AttributeError, OSError):  # not Linux: only the processes the command waits for are counted
    pass
start = time.perf_counter()
pid = os.posix_spawnp(sys.argv[3], sys.argv[3:], os.environ)
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - start
peak, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:  # the orphans
    try:
        orphan, _, usage = os.wait4(-1, os.WNOHANG)
    except ChildProcessError:
        break
    if not orphan:
        time.sleep(0.005)
        continue
    peak, cpu = max(peak, usage.ru_maxrss), cpu + usage.ru_utime + usage.ru_stime
with open(sys.argv[1], "w") as report:
    report.write(f"{elapsed!r} {peak} {cpu!r}")
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""
#: How long the launcher waits for a command's orphaned processes to exit (they normally do at once).
ORPHANS_WAIT = 10.0


def run_once(command: list[str], out: Path, datum: str | None,
             monitor: Callable[[int], contextlib.AbstractContextManager[Any]] | None = None) -> Measured:
    """Run a command and measure it. Fails loudly on a non-zero exit.

    The peak RSS is ``wait4``'s: the largest single process of the tree (the command, or a worker process it
    waited for), not their sum. The CPU time is ``wait4``'s too: the command's and its waited-for descendants'.
    Without ``monitor`` the command is started (and timed) by a small launcher process (see ``_LAUNCH``), which
    also counts the processes the command left behind; ``monitor(pid)`` is entered while the command runs,
    started directly (to sample its processes; the CPU time is then only the waited-for processes').
    """
    shutil.rmtree(out, ignore_errors=True)
    argv = [a.replace("{out}", str(out)).replace("{datum}", datum or "datum") for a in command]
    # stderr goes to a file: a pipe read only after the exit deadlocks once the child writes 64 KB to it
    with tempfile.TemporaryFile() as errors, tempfile.NamedTemporaryFile("r") as measured:
        launch = [sys.executable, "-S", "-c", _LAUNCH, measured.name, str(ORPHANS_WAIT)] if monitor is None else []
        start = time.perf_counter()
        proc = subprocess.Popen([*launch, *argv], stdout=subprocess.DEVNULL, stderr=errors)
        with monitor(proc.pid) if monitor else contextlib.nullcontext():
            _, status, usage = os.wait4(proc.pid, 0)
        elapsed, largest, cpu = time.perf_counter() - start, usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        report = measured.read().split() if launch else []
        if report:  # (empty when the launcher failed to start the command: its error is in stderr)
            elapsed, largest, cpu = float(report[0]), int(report[1]), float(report[2])
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode(errors="replace")
    if proc.returncode not in (0,):
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv)}\n{stderr[-2000:]}")
    return Measured(elapsed, largest * 1024, cpu)


#: ``convert`` arguments for one process: the default engine ("auto") shards 2,000+ items over every core.
LOCAL = ("--engine", "local")


def convert_command(src_fmt: str, src: Path, fmt: str, *extra: str) -> list[str]:
    """A quiet ``dsformats convert`` of ``src`` into ``{out}``; ``extra``: more arguments (writer options after --)."""
    return [*DSFORMATS, "convert", "-q", "-if", src_fmt, "-i", str(src), "-f", fmt, "-o", "{out}", *extra]


def publish(text: str, markdown: Path | None) -> int:
    """Print a result table, also write it to ``markdown`` when given; the exit code of a row group's main."""
    print(text)
    if markdown:
        markdown.write_text(text)
    return 0


def markdown_table(columns: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def dataset(work: Path, images: int, objects: int, image_size: str, formats: str | None = None,
            archives: int = 1) -> Path:
    """Generate (or reuse) ``bench/generate.py`` data under ``work``, in a child process; return its folder."""
    name = f"data-{images}-{objects}-{image_size}"
    extra = []
    if formats:
        name += f"-{formats.replace(',', '+')}"
        extra += ["--formats", formats]
    if archives > 1:
        name += f"-x{archives}"
        extra += ["--archives", str(archives)]
    data = work / name
    subprocess.run([sys.executable, str(HERE / "generate.py"), "--images", str(images), "--objects", str(objects),
                    "--image-size", image_size, "--out", str(data), *extra], check=True, stdout=subprocess.DEVNULL)
    return data


def tree_digest(root: Path) -> tuple[str, int, int]:
    """(SHA-256 over every file's relative path and bytes, files, bytes) of a folder or a file."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
    size = 0
    for path in files:
        name = path.relative_to(root).as_posix() if root.is_dir() else ""
        digest.update(name.encode() + b"\0")
        with path.open("rb") as stream:
            while chunk := stream.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        digest.update(b"\0")
    return digest.hexdigest(), len(files), size


def floors(data: Path, work: Path) -> dict[str, float]:
    """What the hardware allows: orjson load+dump, listing the zip, copying the image files into a zip with
    zipfile in this process, stored (``copy``) and deflated in one thread (``copy_deflated``), and copying the
    image_zip archive's members into a stored zip (``copy_zip``: the same source as image_zip -> image_zip),
    and writing them out as files (``extract``)."""
    import orjson

    result = {}
    instances = data / "coco" / "annotations" / "instances_default.json"
    start = time.perf_counter()
    (work / "floor.json").write_bytes(orjson.dumps(orjson.loads(instances.read_bytes())))
    result["json"] = time.perf_counter() - start
    start = time.perf_counter()
    with zipfile.ZipFile(data / "image_zip" / "images.zip") as archive:
        archive.infolist()
    result["zip_list"] = time.perf_counter() - start
    for name, compression in [("copy", zipfile.ZIP_STORED), ("copy_deflated", zipfile.ZIP_DEFLATED)]:
        start = time.perf_counter()
        with zipfile.ZipFile(work / "floor.zip", "w", compression) as archive:
            for path in sorted((data / "coco" / "images" / "default").iterdir()):
                archive.writestr(path.name, path.read_bytes())
        result[name] = time.perf_counter() - start
    start = time.perf_counter()
    with (zipfile.ZipFile(data / "image_zip" / "images.zip") as source,
          zipfile.ZipFile(work / "floor.zip", "w", zipfile.ZIP_STORED) as archive):
        for info in source.infolist():
            archive.writestr(info.filename, source.read(info))
    result["copy_zip"] = time.perf_counter() - start
    start = time.perf_counter()
    with zipfile.ZipFile(data / "image_zip" / "images.zip") as source:
        for info in source.infolist():
            target = work / "floor-extract" / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read(info))
    result["extract"] = time.perf_counter() - start
    shutil.rmtree(work / "floor-extract")
    return result


def precompile() -> None:
    """Byte-compile dsformats and its built-in plugins, as ``pip install`` does for a regular install.

    An editable install compiles nothing, and where ``PYTHONDONTWRITEBYTECODE`` is set (this benchmark's
    machine) nothing is ever cached: every timed process would compile the sources again (0.05-0.08 s),
    which no installed tool pays (Datumaro's virtualenv has its ``.pyc`` files from pip).
    """
    import compileall
    import importlib.util

    for name in ("dsformats", "dsformats_coco", "dsformats_voc", "dsformats_image_zip"):
        spec = importlib.util.find_spec(name)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            compileall.compile_dir(folder, quiet=1)


def ensure_datumaro(venv: Path) -> str:
    """The ``datum`` executable of a virtualenv holding Datumaro, created (pip install) when missing."""
    datum = venv / "bin" / "datum"
    if not datum.exists():
        print(f"installing Datumaro into {venv} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "datumaro[cli]"], check=True)
    return str(datum)


def machine() -> str:
    """One line describing the machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, Python {platform.python_version()}"


def fmt_time(values: list[Measured]) -> str:
    return f"{best(values).seconds:.2f} s (median {statistics.median(v.seconds for v in values):.2f})"


def fmt_mem(values: list[Measured]) -> str:
    return f"{peak(values) / 2**20:.0f} MB"


def fmt_cpu(values: list[Measured]) -> str:
    """The fastest run's CPU time, and the cores it kept busy on average (CPU time / wall time)."""
    fastest = best(values)
    return f"{fastest.cpu:.2f} s ({fastest.cpu / fastest.seconds:.1f} cores)"


def table(loads: list[Workload], floor_times: dict[str, float], header: str) -> str:
    peers = any("datumaro" in w.results for w in loads)
    cols = ["workload", "dsformats", "peak RSS", "CPU (cores busy)"]
    if peers:
        cols += ["Datumaro", "peak RSS", "speed-up", "memory ratio"]
    cols += ["floor"]
    lines = [header, "", "| " + " | ".join(cols) + " |", "|" + " --- |" * len(cols)]
    by_name = {w.name: w for w in loads}
    for w in loads:
        ours = w.results["dsformats"]
        row = [w.name, fmt_time(ours), fmt_mem(ours), fmt_cpu(ours)]
        if peers:
            peer = by_name.get(w.peer or "")
            theirs = w.results.get("datumaro") or (peer.results.get("datumaro") if peer else None)
            if theirs:
                speed = best(theirs).seconds / best(ours).seconds
                memory = peak(ours) / peak(theirs)
                row += [fmt_time(theirs), fmt_mem(theirs), f"{speed:.1f}×", f"{memory:.2f}"]
            else:
                row += ["—"] * 4
        floor = floor_times.get(w.floor or "")
        # two decimals: a ratio at a target's edge (1.5×) must not be rounded onto it
        row += [f"{floor:.3f} s ({best(ours).seconds / floor:.2f}× floor)" if floor else "—"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--floors"]:  # internal: measure the floors (best of --runs) in a child process, print JSON
        runs = [floors(Path(argv[1]), Path(argv[2])) for _ in range(int(argv[3]) if len(argv) > 3 else 1)]
        print(json.dumps({name: min(run[name] for run in runs) for name in runs[0]}))  # the best, as for the tools
        return 0
    precompile()
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--group", choices=("conversions", *GROUPS), default="conversions")
    chosen, rest = pre.parse_known_args(argv)
    if chosen.group != "conversions":
        return importlib.import_module(chosen.group).main(rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--group", choices=("conversions", *GROUPS), default="conversions",
                        help="rows to run: the conversions table (default), memory growth with size (memory.py), "
                             "--jobs scaling of re-encoding (jobs.py), Dask scale-out (scaleout.py)")
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=7)
    parser.add_argument("--image-size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="also run Datumaro (installed on first use)")
    parser.add_argument("--datumaro-venv", type=Path, default=HERE / ".venv-datumaro")
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/dsformats-bench"))
    parser.add_argument("--only", help="run only workloads whose name contains this text")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here (default: print only)")
    args = parser.parse_args(argv)

    datum = ensure_datumaro(args.datumaro_venv) if args.peers else None
    # Generation and the floors run in child processes: Linux carries a process's peak RSS across exec, so
    # a parent that once held the parsed JSON would inflate every measured child's peak RSS.
    data = dataset(args.work, args.images, args.objects, args.image_size)
    out = args.work / "out"
    out.mkdir(parents=True, exist_ok=True)
    loads = [w for w in workloads(data, out) if not args.only or args.only in w.name]

    def measure_floors() -> dict[str, float]:
        return json.loads(subprocess.run([sys.executable, str(HERE / "run.py"), "--floors", str(data), str(out),
                                          str(args.runs)], check=True, capture_output=True, text=True).stdout)

    floor_times = measure_floors()
    for w in loads:
        tools = [("dsformats", w.ours)] + ([("datumaro", w.theirs)] if datum and w.theirs else [])
        for tool, command in tools:
            target = out / tool
            w.results[tool] = [run_once(command, target, datum) for _ in range(args.runs)]
            print(f"{w.name:<40} {tool:<10} {fmt_time(w.results[tool])}  {fmt_mem(w.results[tool])}",
                  file=sys.stderr)
        shutil.rmtree(out / "dsformats", ignore_errors=True)
        shutil.rmtree(out / "datumaro", ignore_errors=True)
    # Measured again at the end, the best of both kept: a floor caught in a slow minute (this machine's speed drifts)
    # would flatter every ratio to it.
    floor_times = {name: min(value, floor_times[name]) for name, value in measure_floors().items()}
    header = (f"{args.images:,} images ({args.image_size}, {args.objects} objects each), best of {args.runs} runs "
              "(the floors too, measured before and after the workloads); "
              f"{machine()}. dsformats runs its default engine (auto: folders, image_zip archives and datasets in a "
              "zip, of 2,000+ items, are converted in one worker process per core, then merged), and again in one "
              "process where the row says so. Peak RSS is the largest single process (the client or one worker).")
    return publish(table(loads, floor_times, header), args.markdown)


if __name__ == "__main__":
    sys.exit(main())
