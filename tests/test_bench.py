"""A tiny smoke run of the benchmark, so that it cannot rot. No timing is asserted."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import orjson

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
                 "COCO → image_zip", "format detection"):
        assert name in text
    assert text.startswith("120 images (small, 7 objects each), best of 1 runs;")
    rows = [line for line in text.splitlines() if line.startswith("| ") and " s (median" in line]
    assert len(rows) == 11
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
