"""A tiny smoke run of the benchmark, so that it cannot rot. No timing is asserted."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_smoke_run(tmp_path):
    table = tmp_path / "table.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--images", "120", "--image-size", "small", "--runs", "1",
         "--work", str(tmp_path / "work"), "--markdown", str(table)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = table.read_text()
    for name in ("COCO → VOC detection", "VOC → COCO", "COCO → COCO", "image_zip → COCO image_info",
                 "COCO → image_zip", "image_zip → image_zip (deflated)", "image_zip → image_zip |", "format detection",
                 "VOC → image_zip", "image_zip → VOC, with images"):
        assert name in text
    assert text.startswith("120 images (small, 7 objects each), best of 1 runs (the floors too, measured before and "
                           "after the workloads);")
    rows = [line for line in text.splitlines() if line.startswith("| ") and " s (median" in line]
    assert len(rows) == 19
    assert all("× floor)" in row for row in rows if "image_zip" in row and "one process" not in row)  # floors
    for row in table_rows(text):  # the CPU time of the fastest run: more than nothing, at most every core busy
        cpu, cores = re.fullmatch(r"(\d+\.\d\d) s \((\d+\.\d) cores\)", row[3]).groups()
        assert 0 < float(cpu) and 0 < float(cores) <= os.cpu_count() + 0.1
        # each printed value is rounded: cores to 0.05, the times to 0.005 s
        shown = seconds(row[1])
        assert abs(float(cpu) - float(cores) * shown) <= 0.05 * (shown + 0.005) + 0.005 * (float(cores) + 1) + 1e-9
    assert text.count(", one process |") == 5
    assert "COCO zip → VOC detection" in text and "COCO zip: unzip, then → VOC detection" in text
    assert "COCO zip, JPEGs stored → VOC detection" in text

    # the generated data is what the runner claims: 120 images, 7 objects each, the same bytes in each format
    data = next((tmp_path / "work").glob("data-120-7-small"))
    doc = orjson.loads((data / "coco" / "annotations" / "instances_default.json").read_bytes())
    assert len(doc["images"]) == 120 and len(doc["annotations"]) == 840
    assert {a["iscrowd"] for a in doc["annotations"]} <= {0, 1}
    with zipfile.ZipFile(data / "image_zip" / "images.zip") as archive:
        first = doc["images"][0]["file_name"]
        assert archive.read(first) == (data / "coco" / "images" / "default" / first).read_bytes()
    assert len(list((data / "voc" / "Annotations").glob("*.xml"))) == 120


def run_group(tmp_path: Path, group: str, *args: str) -> str:
    """``bench/run.py --group GROUP ARGS`` into ``tmp_path``; returns the markdown it wrote."""
    table = tmp_path / f"{group}.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--group", group, *args, "--work", str(tmp_path / "work"),
         "--markdown", str(table)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return table.read_text()


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every markdown table in ``text``, as cells."""
    lines = text.splitlines()
    return [line.strip("| ").split(" | ") for i, line in enumerate(lines)
            if line.startswith("| ") and not line.startswith("| ---")
            and not (i + 1 < len(lines) and lines[i + 1].startswith("| ---"))]


def seconds(cell: str) -> float:
    """``"0.42 s (median 0.45)"`` -> 0.42."""
    match = re.fullmatch(r"(\d+\.\d\d) s \(median (\d+\.\d\d)\)(, \d+ MB)?", cell)
    assert match, cell
    assert float(match[1]) <= float(match[2])
    return float(match[1])


def test_memory_group(tmp_path):
    # the rows into VOC: both kinds of target (growth, and the COCO input against its JSON); the others are alike
    text = run_group(tmp_path, "memory", "--sizes", "20", "40", "--runs", "1", "--only", "→ VOC")
    rows = table_rows(text)
    assert [r[0] for r in rows] == [
        "image_zip → VOC, with images", "VOC → VOC detection, with images", "COCO → VOC detection, annotations only"]
    for row in rows:
        assert seconds(row[1]) > 0 and seconds(row[3]) > 0
        small, large = (float(cell.removesuffix(" MB")) for cell in (row[2], row[4]))
        assert 10 < small < 500 and 10 < large < 500
        assert abs(float(row[5].removesuffix(" MB")) - (large - small)) < 0.11
        assert row[7] in ({"—"} if row[0] == "VOC → COCO" else {"yes", "**no**"})
    # the JSON sizes in the header and the ratio are the generated files'
    json_40 = (tmp_path / "work" / "data-40-4-tiny" / "coco" / "annotations" / "instances_default.json")
    assert len(orjson.loads(json_40.read_bytes())["annotations"]) == 160
    assert f"{json_40.stat().st_size / 2**20:.1f} MB at 40" in text
    for row in rows[-1:]:
        ratio = float(re.search(r"JSON: (\d+\.\d\d)×", row[6])[1])
        assert abs(ratio - float(row[4].removesuffix(" MB")) * 2**20 / json_40.stat().st_size) / ratio < 0.01


def test_jobs_group(tmp_path):
    text = run_group(tmp_path, "jobs", "--images", "4", "--image-size", "tiny", "--runs", "1")
    rows = table_rows(text)
    assert [r[0] for r in rows] == ["image_zip → image_zip, --image-ext .png",
                                    "COCO → VOC detection, with images, --image-ext .png",
                                    "VOC → COCO, with images, --image-ext .png"]
    for row in rows:
        jobs1, jobs2, default = (seconds(cell) for cell in row[1:4])
        # the ratios are of the unrounded times
        assert float(row[4].removesuffix("×")) == pytest.approx(jobs1 / jobs2, rel=0.1, abs=0.02)
        assert float(row[5].removesuffix("×")) == pytest.approx(jobs1 / default, rel=0.1, abs=0.02)
        assert row[6].startswith("yes (")  # every run of every --jobs gave the same bytes
    assert rows[0][6].startswith("yes (1 file, ")  # one zip of PNGs
    assert int(re.match(r"yes \((\d+) files, ", rows[1][6])[1]) >= 8  # 4 PNGs, 4 XMLs, the lists
    assert rows[2][6].startswith("yes (5 files, ")  # 4 PNGs and the instances JSON
    assert not list((tmp_path / "work" / "out").glob("jobs-*"))  # the outputs were removed


def test_scaleout_group(tmp_path):
    pytest.importorskip("dask.distributed")
    pytest.importorskip("psutil")
    text = run_group(tmp_path, "scaleout", "--images", "4", "--image-size", "tiny", "--runs", "1", "--only",
                     "image_zip", "--tiny", "300", "--per-archive", "150", "--interval", "0.05")
    reencode, tiny = (table_rows(part) for part in text.split("\nTiny images"))
    assert [(r[0], r[1]) for r in reencode] == [
        ("image_zip → image_zip, --image-ext .png", "1 process, --jobs 1"),
        ("image_zip → image_zip, --image-ext .png", f"1 process, default --jobs ({os.cpu_count()})"),
        ("image_zip → image_zip, --image-ext .png", "Dask, 2 workers")]
    assert all(r[8] == "yes" for r in reencode)  # Dask gave the single-process bytes
    base = seconds(reencode[0][2])
    assert float(reencode[2][6].removesuffix("×")) == pytest.approx(base / seconds(reencode[2][2]), rel=0.1, abs=0.02)
    assert re.fullmatch(r"\d+ MB", reencode[2][5])  # the Dask workers were sampled
    assert [(r[0], r[1], r[2]) for r in tiny] == [
        ("300", layout, run) for layout in ("1 zip of 300 (range shards)", "2 zips of ≤ 150 (1 shard each)")
        for run in ("1 process", "processes, 2 workers", "Dask, 2 workers")]
    for row in tiny:
        assert row[11] == "yes" and int(row[4].replace(",", "")) > 0
        if row[2].startswith("Dask"):  # its workers live long enough to be sampled (a 300-item pool may not)
            assert re.fullmatch(r"(\d+ )+MB", row[9]) and 20 < int(row[8].removesuffix(" MB")) < 1000
            assert 0 <= float(row[10].removesuffix(" s")) < seconds(row[3])
        elif row[2] == "1 process":
            assert row[7] == row[8] == row[9] == row[10] == "—"
    data = tmp_path / "work" / "data-300-0-tiny-image_zip-x2"
    parts = sorted((data / "image_zip_parts").glob("*.zip"))
    with zipfile.ZipFile(data / "image_zip" / "images.zip") as whole:
        members = [n for part in parts for n in zipfile.ZipFile(part).namelist()]
        assert len(parts) == 2 and members == whole.namelist() and len(members) == 300


def test_measured_peak_rss_is_the_command_s_own(tmp_path, monkeypatch):
    """Linux carries the starting process's RSS into a child's peak: the runner must not count its own."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import run

    held = bytearray(200 << 20)  # this process: 200 MB more than a small Python process
    held[::4096] = b"\1" * len(held[::4096])
    grow = "data = bytearray(60 << 20)\ndata[::4096] = b'\\1' * len(data[::4096])"
    seconds, small, _ = run.run_once([sys.executable, "-c", "pass"], tmp_path / "out", None)
    grown = run.run_once([sys.executable, "-c", grow], tmp_path / "out", None).peak
    assert 0 < seconds and small < 100 << 20 and 60 << 20 < grown < small + (100 << 20)
    with pytest.raises(SystemExit, match=r"failed \(3\)"):
        run.run_once([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "out", None)
    del held


def test_measured_cpu_time_counts_the_worker_processes(tmp_path, monkeypatch):
    """The CPU column is the whole tree's: a command whose child process burns CPU is charged for it, and a
    command that only sleeps is charged far less than its wall time (so it is CPU time, not wall time)."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import run

    def burn(after: float) -> str:  # a process that sleeps ``after`` s, then spends 0.4 s of CPU
        spend = "end = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
        return f"import time\ntime.sleep({after})\n{spend}"

    parent = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {burn(0)!r}], check=True)"
    # a child left running when the command exits (as a multiprocessing forkserver's workers are): counted by
    # the launcher, which reaps it; its wall time is not the command's
    orphan = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {burn(0.3)!r}])"
    left = run.run_once([sys.executable, "-c", orphan], tmp_path / "out", None)
    assert left.cpu >= 0.4 and left.seconds < 0.3
    for monitor in (None, lambda pid: contextlib.nullcontext()):  # through the launcher, and started directly
        worked = run.run_once([sys.executable, "-c", parent], tmp_path / "out", None, monitor=monitor)
        assert 0.4 <= worked.cpu <= worked.seconds * 1.05 + 0.05
        slept = run.run_once([sys.executable, "-c", "import time; time.sleep(0.5)"], tmp_path / "out", None,
                             monitor=monitor)
        assert slept.seconds >= 0.5 and 0 < slept.cpu < 0.3
    assert run.fmt_cpu([run.Measured(2.0, 0, 3.0), run.Measured(1.0, 0, 1.5)]) == "1.50 s (1.5 cores)"  # the fastest


def test_runner_byte_compiles_dsformats_as_an_install_would(monkeypatch):
    """Timed processes must not compile dsformats' sources on every start (PYTHONDONTWRITEBYTECODE, editable)."""
    import importlib.util

    import dsformats_coco.reader

    import dsformats.cli

    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    import run

    cached = [Path(importlib.util.cache_from_source(m.__file__)) for m in (dsformats.cli, dsformats_coco.reader)]
    for path in cached:
        path.unlink(missing_ok=True)
    run.precompile()
    assert all(path.is_file() for path in cached)
