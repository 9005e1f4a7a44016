"""Issue 6's memory rows: peak-RSS growth from 10,000 to 100,000 tiny images, and COCO input against its JSON.

    python bench/run.py --group memory --sizes 10000 100000 --runs 2 --markdown bench/results-memory.md

Every size is a ``generate.py`` dataset of tiny (32x24) JPEGs with ``--objects`` objects each (default 4, so
that 100,000 images make a COCO instances file of about 100 MB). Each workload runs as a whole process
``--runs`` times at every size (best time, largest peak RSS measured from outside with ``wait4``), and the
table compares the sizes against the targets:

- image_zip and VOC paths: less than 10 MB of peak-RSS growth from the smallest to the largest size;
- COCO input: peak RSS grows with the JSON only, and stays under 2.5x the instances file at the largest size.

MB here is 2**20 bytes, on both sides of every ratio.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from run import Measured, convert_command, dataset, fmt_time, machine, markdown_table, peak, publish, run_once

MB = 2**20
TARGET_GROWTH_MB = 10
TARGET_JSON_RATIO = 2.5


@dataclass
class Row:
    """One workload: ``kind`` is "flat" (the growth target), "json" (the COCO-input target) or "info" (none)."""

    name: str
    kind: str
    command: Callable[[Path], list[str]]
    results: dict[int, list[Measured]] = field(default_factory=dict)


def rows() -> list[Row]:
    """The image_zip and VOC paths, and the COCO inputs (annotations only: no images are written)."""
    return [
        Row("image_zip → image_zip", "flat", lambda d: convert_command("image_zip", d / "image_zip", "image_zip")),
        Row("image_zip → VOC, with images", "flat",
            lambda d: convert_command("image_zip", d / "image_zip", "voc", "--", "--save-images")),
        Row("VOC → VOC detection, with images", "flat",
            lambda d: convert_command("voc", d / "voc", "voc", "--", "--tasks", "detection", "--save-images")),
        Row("VOC → image_zip", "flat", lambda d: convert_command("voc", d / "voc", "image_zip")),
        # a VOC input, but the COCO output: the issue states no memory target for COCO output
        Row("VOC → COCO", "info", lambda d: convert_command("voc", d / "voc", "coco")),
        Row("COCO → VOC detection, annotations only", "json",
            lambda d: convert_command("coco", d / "coco", "voc", "--", "--tasks", "detection")),
        Row("COCO → COCO (annotations)", "json", lambda d: convert_command("coco", d / "coco", "coco")),
    ]


def json_size(data: Path) -> int:
    return (data / "coco" / "annotations" / "instances_default.json").stat().st_size


def verdict(row: Row, sizes: list[int], jsons: dict[int, int]) -> tuple[str, str]:
    """(target, met) cells of a row."""
    growth = (peak(row.results[sizes[-1]]) - peak(row.results[sizes[0]])) / MB
    if row.kind == "flat":
        return f"growth < {TARGET_GROWTH_MB} MB", "yes" if growth < TARGET_GROWTH_MB else "**no**"
    if row.kind == "json":
        ratio = peak(row.results[sizes[-1]]) / jsons[sizes[-1]]
        per_json = growth / ((jsons[sizes[-1]] - jsons[sizes[0]]) / MB)
        text = (f"< {TARGET_JSON_RATIO}× the {jsons[sizes[-1]] / MB:.1f} MB JSON: {ratio:.2f}×; "
                f"{per_json:.2f} MB per MB of JSON")
        return text, "yes" if ratio < TARGET_JSON_RATIO else "**no**"
    return "— (COCO output: none stated)", "—"


def table(loads: list[Row], sizes: list[int], jsons: dict[int, int], header: str) -> str:
    columns = ["workload"]
    for size in sizes:
        columns += [f"{size:,}: time", "peak RSS"]
    columns += [f"growth {sizes[0]:,} → {sizes[-1]:,}", "target", "met"]
    body = []
    for row in loads:
        cells = [row.name]
        for size in sizes:
            cells += [fmt_time(row.results[size]), f"{peak(row.results[size]) / MB:.1f} MB"]
        growth = (peak(row.results[sizes[-1]]) - peak(row.results[sizes[0]])) / MB
        cells += [f"{growth:+.1f} MB", *verdict(row, sizes, jsons)]
        body.append(cells)
    return header + "\n\n" + markdown_table(columns, body)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py --group memory", description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="numbers of images")
    parser.add_argument("--objects", type=int, default=4, help="objects per image (4: about 1 KB of JSON each)")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/dev/shm/dsformats-bench"))
    parser.add_argument("--only", help="run only workloads whose name contains this text")
    parser.add_argument("--clean", action="store_true", help="remove the generated data afterwards")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here (default: print only)")
    args = parser.parse_args(argv)
    sizes = sorted(args.sizes)
    if len(sizes) < 2:
        parser.error("--sizes needs at least two sizes")

    datas = {size: dataset(args.work, size, args.objects, "tiny") for size in sizes}
    jsons = {size: json_size(data) for size, data in datas.items()}
    out = args.work / "out" / f"memory-{os.getpid()}"  # per process: others may run the bench at the same time
    loads = [r for r in rows() if not args.only or args.only in r.name]
    for row in loads:
        for size in sizes:
            row.results[size] = [run_once(row.command(datas[size]), out, None) for _ in range(args.runs)]
            print(f"{row.name:<42} {size:>9,} {fmt_time(row.results[size])}  {peak(row.results[size]) / MB:.1f} MB",
                  file=sys.stderr)
        shutil.rmtree(out, ignore_errors=True)
    if args.clean:
        for data in datas.values():
            shutil.rmtree(data, ignore_errors=True)
    files = ", ".join(f"{jsons[s] / MB:.1f} MB at {s:,}" for s in sizes)
    header = (f"Tiny images (32x24 JPEGs, {args.objects} objects each; COCO instances file {files}), best time "
              f"and largest peak RSS of {args.runs} runs; {machine()}.")
    return publish(table(loads, sizes, jsons, header), args.markdown)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
