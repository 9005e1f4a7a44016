"""The external plugin examples/dsformats-yolo, installed with pip like a stranger's distribution.

Proves the claims of the plugin kit: ``formats`` lists it with its distribution name, ``convert`` between
yolo and every built-in works both ways through the CLI (boxes equal within 1e-6 of the image size), and
the conformance kit passes on it. These tests fail, not skip, when the plugin is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

import dsformats
from dsformats import Bbox, Polygon
from dsformats.testing import FormatConformance, generate_items

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_DIR = ROOT / "examples" / "dsformats-yolo"
INSTALL_HINT = f"the yolo plugin is not installed: run 'pip install {PLUGIN_DIR}' (or -e) before the tests"
EPSILON = 1e-6


@pytest.fixture(autouse=True)
def yolo_installed() -> None:
    """Fail every test of this module, with the install command, when dsformats-yolo is missing."""
    from importlib import metadata

    try:
        metadata.distribution("dsformats-yolo")
    except metadata.PackageNotFoundError:
        pytest.fail(INSTALL_HINT)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m dsformats`` and return the finished process (exit code checked by the caller)."""
    return subprocess.run(
        [sys.executable, "-m", "dsformats", *map(str, args)], capture_output=True, text=True, check=False
    )


def convert(src: Path, dst: Path, fmt: str, *writer_options: str, source: str | None = None) -> str:
    words: list[str | Path] = ["convert", "-i", src, "-f", fmt, "-o", dst, "-q"]
    if source:
        words += ["-if", source]
    done = cli(*words, *(["--", *writer_options] if writer_options else []))
    assert done.returncode == 0, f"convert {src} -> {fmt} failed ({done.returncode}): {done.stderr}"
    return done.stdout


def boxes(path: Path, fmt: str) -> dict[tuple[str, str], list[tuple[str | None, float, float, float, float]]]:
    """Every item's boxes as ``(label, x/W, y/H, w/W, h/H)``, sorted; keyed by ``(subset, id)``."""
    result = {}
    with dsformats.read(path, fmt) as reader:
        for item in reader.items():
            assert item.media is not None, f"{fmt}: {item.id} has no image"
            width, height = item.media.size
            result[(item.subset, item.id)] = sorted(
                (b.label, b.x / width, b.y / height, b.w / width, b.h / height)
                for b in item.annotations_of(Bbox)
                if isinstance(b, Bbox)
            )
    return result


def polygons(path: Path, fmt: str) -> dict[tuple[str, str], list[tuple[str | float | None, ...]]]:
    """Every item's polygons as ``(label, x1/W, y1/H, ...)``, sorted; keyed by ``(subset, id)``."""
    result = {}
    with dsformats.read(path, fmt) as reader:
        for item in reader.items():
            assert item.media is not None
            width, height = item.media.size
            result[(item.subset, item.id)] = sorted(
                (p.label, *(v / (width if n % 2 == 0 else height) for n, v in enumerate(p.points)))
                for p in item.annotations_of(Polygon)
                if isinstance(p, Polygon)
            )
    return result


def close(a: Iterable[float], b: Iterable[float]) -> bool:
    a, b = list(a), list(b)
    return len(a) == len(b) and all(abs(x - y) <= EPSILON for x, y in zip(a, b, strict=True))


def assert_boxes_equal(want: dict, got: dict, *, subset_of: bool = False) -> None:
    """Boxes equal per item within EPSILON (normalised); with ``subset_of``, ``got`` may hold more boxes."""
    assert set(want) == set(got), f"items differ: {sorted(set(want) ^ set(got))}"
    for key, expected in want.items():
        remaining = list(got[key])
        for label, *coords in expected:
            match = next((b for b in remaining if b[0] == label and close(b[1:], coords)), None)
            assert match is not None, f"{key}: box {(label, *coords)} not found within {EPSILON} in {got[key]}"
            remaining.remove(match)
        assert subset_of or not remaining, f"{key}: unexpected boxes {remaining}"


def image_bytes(path: Path, fmt: str) -> dict[tuple[str, str], bytes]:
    with dsformats.read(path, fmt) as reader:
        return {(i.id.rsplit("/", 1)[-1]): i.media.read_bytes() for i in reader.items() if i.media}  # type: ignore[misc]


def yolo_source(tmp_path: Path, seed: int = 5) -> Path:
    """A yolo dataset with boxes and polygons (written by the plugin itself from generated items)."""
    header, items = generate_items({"bbox", "polygon"}, seed=seed, count=5, subsets=("train", "val"))
    dsformats.write(items, tmp_path / "yolo-src", "yolo", header=header)
    return tmp_path / "yolo-src"


# ---------------------------------------------------------------------------------------------- listing


def test_formats_lists_yolo_with_its_distribution():
    done = cli("formats", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)["formats"]}
    assert rows["yolo"]["distribution"] == "dsformats-yolo"
    assert rows["yolo"]["read"] and rows["yolo"]["write"]
    text = cli("formats", "--verbose").stdout
    line = next(line for line in text.splitlines() if line.startswith("yolo "))
    assert "dsformats-yolo" in line


def test_writer_options_come_from_the_plugin():
    done = cli("convert", "-f", "yolo", "-i", ".", "-o", ".", "--", "-h")
    assert done.returncode == 0 and "--save-images" in done.stdout and "--image-ext" in done.stdout


# ---------------------------------------------------------------------------------------------- image_zip


def test_yolo_to_image_zip_and_back_keeps_image_bytes(tmp_path):
    src = yolo_source(tmp_path)
    convert(src, tmp_path / "zip", "image_zip", "--subset-dirs")
    original = image_bytes(src, "yolo")
    assert image_bytes(tmp_path / "zip", "image_zip") == original
    convert(tmp_path / "zip", tmp_path / "back", "yolo", source="image_zip")
    assert image_bytes(tmp_path / "back", "yolo") == original


def test_example_zips_to_yolo_and_back(tmp_path):
    convert(ROOT / "examples" / "zips", tmp_path / "yolo", "yolo")
    assert (tmp_path / "yolo" / "data.yaml").is_file()
    assert dsformats.detect_format(tmp_path / "yolo") == "yolo"
    convert(tmp_path / "yolo", tmp_path / "zip", "image_zip")
    assert image_bytes(tmp_path / "zip", "image_zip") == image_bytes(ROOT / "examples" / "zips", "image_zip")


# ---------------------------------------------------------------------------------------------- coco


def test_coco_fixture_to_yolo_and_back(tmp_path, datumaro_fixtures):
    src = datumaro_fixtures / "coco_dataset" / "coco_instances"
    report = tmp_path / "report.json"
    done = cli("convert", "-i", src, "-if", "coco", "-f", "yolo", "-o", tmp_path / "yolo", "-q", "--report", report)
    assert done.returncode == 0, done.stderr
    assert "mask" in json.loads(report.read_text())["dropped"]  # YOLO cannot hold masks: counted, not lost silently
    source_boxes = boxes(src, "coco")
    assert any(source_boxes.values())
    assert_boxes_equal(source_boxes, boxes(tmp_path / "yolo", "yolo"))
    assert_boxes_equal(polygons(src, "coco"), polygons(tmp_path / "yolo", "yolo"))
    convert(tmp_path / "yolo", tmp_path / "coco", "coco", "--save-images")
    # COCO gives every polygon a bbox too, so the COCO read back may hold more boxes than the source.
    assert_boxes_equal(source_boxes, boxes(tmp_path / "coco", "coco"), subset_of=True)
    assert_boxes_equal(polygons(src, "coco"), polygons(tmp_path / "coco", "coco"))


def test_yolo_to_coco_and_back(tmp_path):
    src = yolo_source(tmp_path)
    convert(src, tmp_path / "coco", "coco", "--save-images")
    assert_boxes_equal(boxes(src, "yolo"), boxes(tmp_path / "coco", "coco"), subset_of=True)
    convert(tmp_path / "coco", tmp_path / "back", "yolo")
    assert_boxes_equal(boxes(src, "yolo"), boxes(tmp_path / "back", "yolo"), subset_of=True)
    assert_boxes_equal(polygons(src, "yolo"), polygons(tmp_path / "back", "yolo"))
    assert image_bytes(tmp_path / "back", "yolo") == image_bytes(src, "yolo")


# ---------------------------------------------------------------------------------------------- voc


def test_voc_fixture_to_yolo_and_back(tmp_path, datumaro_fixtures):
    src = datumaro_fixtures / "voc_dataset" / "voc_dataset1"
    convert(src, tmp_path / "yolo", "yolo", source="voc")
    source_boxes = boxes(src, "voc")
    assert any(source_boxes.values())
    assert_boxes_equal(source_boxes, boxes(tmp_path / "yolo", "yolo"))
    convert(tmp_path / "yolo", tmp_path / "voc", "voc", "--save-images")
    assert_boxes_equal(source_boxes, boxes(tmp_path / "voc", "voc"))


def test_yolo_to_voc_and_back(tmp_path):
    header, items = generate_items({"bbox"}, seed=9, count=5, subsets=("train", "val"))
    dsformats.write(items, tmp_path / "yolo", "yolo", header=header)
    convert(tmp_path / "yolo", tmp_path / "voc", "voc", "--save-images")
    assert_boxes_equal(boxes(tmp_path / "yolo", "yolo"), boxes(tmp_path / "voc", "voc"))
    convert(tmp_path / "voc", tmp_path / "back", "yolo", source="voc")
    assert_boxes_equal(boxes(tmp_path / "yolo", "yolo"), boxes(tmp_path / "back", "yolo"))


# ---------------------------------------------------------------------------------------------- the kit


class TestYoloConformance(FormatConformance):
    """The conformance kit on the installed plugin, in the main suite (the plugin's own tests run it too)."""

    format_name = "yolo"
    tolerance = 1e-6
