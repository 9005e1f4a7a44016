"""Issue 6's re-encode row: ``--jobs 1`` against ``--jobs 2`` and the default, with byte-identical outputs.

    python bench/run.py --group jobs --images 300 --runs 3 --markdown bench/results-jobs.md

Re-encoding (``--image-ext .png``: decode and PNG-encode every JPEG) of ``generate.py`` data, as whole
processes. The variants run interleaved (``--jobs 1``, ``--jobs 2``, default, then again), so that a
disturbance on a shared machine hits them alike. After every run the output is hashed (every file's path
and bytes); the "identical" column says whether every run of every variant gave the same bytes. Target:
at least 1.8x speed-up of ``--jobs 2`` over ``--jobs 1`` on 2 cores, and the default uses every core.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from run import (
    LOCAL,
    Measured,
    best,
    convert_command,
    dataset,
    fmt_mem,
    fmt_time,
    machine,
    markdown_table,
    publish,
    run_once,
    tree_digest,
)

TARGET_SPEEDUP = 1.8
VARIANTS = {"--jobs 1": ["--jobs", "1"], "--jobs 2": ["--jobs", "2"], "default": []}


def reencode_loads(data: Path) -> dict[str, tuple[str, Path, str, list[str]]]:
    """The re-encode workloads (shared with scaleout.py): name: (source format, source, format, writer options)."""
    return {
        "image_zip → image_zip, --image-ext .png": ("image_zip", data / "image_zip", "image_zip",
                                                    ["--image-ext", ".png"]),
        "COCO → VOC detection, with images, --image-ext .png":
            ("coco", data / "coco", "voc", ["--tasks", "detection", "--save-images", "--image-ext", ".png"]),
        "VOC → COCO, with images, --image-ext .png":
            ("voc", data / "voc", "coco", ["--save-images", "--image-ext", ".png"]),
    }


def measure(command: list[str], variants: dict[str, list[str]], out: Path, runs: int
            ) -> tuple[dict[str, list[Measured]], set[str], tuple[int, int]]:
    """Run each variant ``runs`` times, interleaved; return the results, the output digests, (files, bytes)."""
    results: dict[str, list[Measured]] = {name: [] for name in variants}
    digests, shape = set(), (0, 0)
    for _ in range(runs):
        for name, extra in variants.items():
            results[name].append(run_once([*command, *extra], out, None))
            digest, files, size = tree_digest(out)
            digests.add(digest)
            shape = (files, size)
    shutil.rmtree(out, ignore_errors=True)
    return results, digests, shape


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py --group jobs", description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--objects", type=int, default=7)
    parser.add_argument("--image-size", choices=("tiny", "small", "full"), default="full")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/dsformats-bench"))
    parser.add_argument("--only", help="run only workloads whose name contains this text")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here (default: print only)")
    args = parser.parse_args(argv)

    data = dataset(args.work, args.images, args.objects, args.image_size)
    out = args.work / "out" / f"jobs-{os.getpid()}"  # per process: others may run the bench at the same time
    body = []
    for name, (src_fmt, src, fmt, options) in reencode_loads(data).items():
        if args.only and args.only not in name:
            continue
        command = convert_command(src_fmt, src, fmt, *LOCAL, "--", *options)
        results, digests, (files, size) = measure(command, VARIANTS, out, args.runs)
        for variant, values in results.items():
            print(f"{name:<52} {variant:<9} {fmt_time(values)}  {fmt_mem(values)}", file=sys.stderr)
        single = best(results["--jobs 1"]).seconds
        speedup = single / best(results["--jobs 2"]).seconds
        identical = (f"yes ({files:,} file{'s' * (files != 1)}, {size / 2**20:.1f} MB)" if len(digests) == 1
                     else f"**no** ({len(digests)} different outputs)")
        met = "yes" if speedup >= TARGET_SPEEDUP and len(digests) == 1 else "**no**"
        body.append([name, *(f"{fmt_time(results[v])}, {fmt_mem(results[v])}" for v in VARIANTS),
                     f"{speedup:.2f}×", f"{single / best(results['default']).seconds:.2f}×", identical, met])
    columns = ["workload", "--jobs 1", "--jobs 2", f"default (--jobs {os.cpu_count()})", "speed-up 2 vs 1",
               "default vs 1", "identical bytes, every run", f"met (≥ {TARGET_SPEEDUP}×, identical)"]
    header = (f"{args.images:,} images ({args.image_size}), re-encoded to PNG; best time (median) and largest peak "
              f"RSS of {args.runs} interleaved runs per variant; {machine()}.")
    return publish(header + "\n\n" + markdown_table(columns, body), args.markdown)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
