"""image_zip through the command line, run as a subprocess (``python -m dsformats``)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from .conftest import pixels, write_zip, zip_infos, zip_members

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dsformats", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout


@pytest.fixture
def source_dir(tmp_path: Path, make_image) -> tuple[Path, dict[str, bytes]]:
    """A directory of two zips: ``a.zip`` (deflated, nested member) and ``b/b.zip`` (stored, upper case)."""
    members = {
        "1.jpg": make_image(9, 7, ".jpg", seed=1),
        "sub/2.png": make_image(6, 5, ".png", seed=2),
        "3.JPG": make_image(4, 8, ".jpg", seed=3),
    }
    src = tmp_path / "src"
    first = {k: members[k] for k in ("1.jpg", "sub/2.png")}
    write_zip(src / "a.zip", first, compression=zipfile.ZIP_DEFLATED)
    write_zip(src / "b" / "B.ZIP", {"3.JPG": members["3.JPG"]})
    return src, members


def test_convert_zip_to_zip_is_byte_identical(tmp_path: Path, source_dir):
    src, members = source_dir
    out = tmp_path / "out"
    proc = run("convert", "-i", src, "-f", "image_zip", "-o", out, "--", "--name", "x.zip",
               "--compression", "ZIP_DEFLATED")
    assert proc.returncode == 0, proc.stderr
    assert "2 copied byte for byte" not in proc.stdout
    assert "3 copied byte for byte, 0 re-encoded" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["x.zip"]
    got = zip_members(out / "x.zip")
    assert got == {"1.jpg": members["1.jpg"], "sub/2.png": members["sub/2.png"], "3.jpg": members["3.JPG"]}
    assert [i.compress_type for i in zip_infos(out / "x.zip")] == [zipfile.ZIP_DEFLATED] * 3


def test_convert_reference_assets(tmp_path: Path, image_zip_assets: Path):
    out = tmp_path / "out"
    report_file = tmp_path / "report.json"
    proc = run("convert", "-i", image_zip_assets, "-if", "image_zip", "-f", "image_zip", "-o", out,
               "--report", report_file, "-io", "subset_from=archive", "--", "--subset-dirs",
               "--compression", "bzip2")
    assert proc.returncode == 0, proc.stderr
    expected = {}
    for name in ("1", "2"):
        with zipfile.ZipFile(image_zip_assets / f"{name}.zip") as zf:
            expected[f"{name}/{name}.jpg"] = zf.read(f"{name}.jpg")
    assert zip_members(out / "default.zip") == expected
    assert {i.compress_type for i in zip_infos(out / "default.zip")} == {zipfile.ZIP_BZIP2}
    report = json.loads(report_file.read_text())
    assert report["items_written"] == {"1": 1, "2": 1}
    assert (report["media_copied"], report["media_reencoded"]) == (2, 0)


def test_convert_image_ext_png(tmp_path: Path, source_dir):
    src, members = source_dir
    out = tmp_path / "out"
    proc = run("convert", "-i", src, "-f", "image_zip", "-o", out, "--", "--name", "export.zip",
               "--image-ext", ".png")
    assert proc.returncode == 0, proc.stderr
    assert "1 copied byte for byte, 2 re-encoded" in proc.stdout
    got = zip_members(out / "export.zip")
    assert sorted(got) == ["1.png", "3.png", "sub/2.png"]
    assert got["sub/2.png"] == members["sub/2.png"]
    for name, source in (("1.png", "1.jpg"), ("3.png", "3.JPG"), ("sub/2.png", "sub/2.png")):
        assert got[name].startswith(PNG_MAGIC)
        assert pixels(got[name]) == pixels(members[source])


def test_convert_existing_output_needs_overwrite(tmp_path: Path, source_dir):
    src, members = source_dir
    out = tmp_path / "out"
    out.mkdir()
    (out / "default.zip").write_bytes(b"precious")
    proc = run("convert", "-i", src, "-f", "image_zip", "-o", out)
    assert proc.returncode == 1
    assert "output exists" in proc.stderr and "--overwrite" in proc.stderr
    assert_no_traceback(proc)
    assert (out / "default.zip").read_bytes() == b"precious"
    proc = run("convert", "-i", src, "-f", "image_zip", "-o", out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert set(zip_members(out / "default.zip")) == {"1.jpg", "sub/2.png", "3.jpg"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]


def test_convert_corrupt_member_names_it(tmp_path: Path):
    src = write_zip(tmp_path / "src" / "archive.zip", {"bad.jpg": b"\xff\xd8\xff garbage"})
    out = tmp_path / "out"
    proc = run("convert", "-i", src, "-f", "image_zip", "-o", out, "--", "--image-ext", "png")
    assert proc.returncode == 1
    assert "archive.zip!bad.jpg" in proc.stderr
    assert_no_traceback(proc)
    assert not out.exists()


def test_convert_unsafe_member_names_it(tmp_path: Path, make_image):
    src = write_zip(tmp_path / "src" / "evil.zip", {"ok.jpg": make_image(2, 2, ".jpg"), "../evil.jpg": b"x"})
    proc = run("convert", "-i", src, "-f", "image_zip", "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert "evil.zip!../evil.jpg" in proc.stderr
    assert_no_traceback(proc)
    assert not (tmp_path / "out").exists()


def test_writer_help(tmp_path: Path):
    proc = run("convert", "-i", tmp_path / "missing", "-f", "image_zip", "-o", tmp_path / "out", "--", "-h")
    assert proc.returncode == 0, proc.stderr
    for flag in ("--compression", "--name", "--image-ext", "--save-images", "--subset-dirs", "ZIP_LZMA"):
        assert flag in proc.stdout
    assert not (tmp_path / "out").exists()


def test_unknown_writer_option_lists_valid_options(tmp_path: Path, image_zip_assets: Path):
    out = tmp_path / "out"
    proc = run("convert", "-i", image_zip_assets, "-f", "image_zip", "-o", out, "--", "--level", "9")
    assert proc.returncode == 2
    assert "--level" in proc.stderr
    for option in (r"\bname\b", r"\bcompression\b", r"\bimage[-_]ext\b", r"\bsubset[-_]dirs\b"):
        assert re.search(option, proc.stderr), f"valid option {option} not listed: {proc.stderr!r}"
    assert_no_traceback(proc)
    assert not (tmp_path / "out").exists()


def test_bogus_compression_exits_2_with_choices(tmp_path: Path, image_zip_assets: Path):
    proc = run("convert", "-i", image_zip_assets, "-f", "image_zip", "-o", tmp_path / "out", "--",
               "--compression", "zstd")
    assert proc.returncode == 2
    assert "zstd" in proc.stderr
    for choice in ("ZIP_STORED", "ZIP_DEFLATED", "ZIP_BZIP2", "ZIP_LZMA"):
        assert choice in proc.stderr
    assert_no_traceback(proc)
    assert not (tmp_path / "out").exists()


def test_short_compression_names(tmp_path: Path, image_zip_assets: Path):
    for value, expected in (("lzma", zipfile.ZIP_LZMA), ("Deflated", zipfile.ZIP_DEFLATED)):
        out = tmp_path / value
        proc = run("convert", "-i", image_zip_assets, "-f", "image_zip", "-o", out, "--",
                   "--compression", value)
        assert proc.returncode == 0, proc.stderr
        assert {i.compress_type for i in zip_infos(out / "default.zip")} == {expected}


def test_formats_lists_image_zip():
    proc = run("formats")
    assert proc.returncode == 0, proc.stderr
    (line,) = [line for line in proc.stdout.splitlines() if line.split()[:1] == ["image_zip"]]
    assert line.split()[1:3] == ["rw", "dsformats"]
    proc = run("formats", "--json")
    (entry,) = [f for f in json.loads(proc.stdout)["formats"] if f["name"] == "image_zip"]
    assert (entry["read"], entry["write"], entry["distribution"]) == (True, True, "dsformats")
    assert entry["plugin"] and entry["extensions"] == [".zip"]
    assert entry["writer_options"] == [
        "save_images", "image_ext", "jobs", "name", "compression", "subset_dirs", "shards_out"
    ]
    assert entry["reader_options"] == ["subset_from", "shard"]


def test_detect(image_zip_assets: Path, tmp_path: Path):
    for path in (image_zip_assets, image_zip_assets / "1.zip"):
        proc = run("detect", path)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "image_zip"
    proc = run("detect", image_zip_assets, "--json")
    assert json.loads(proc.stdout)["formats"] == ["image_zip"]
    fake = tmp_path / "backup.zip"
    fake.write_text("text")
    proc = run("detect", fake, "--explain")
    assert proc.returncode == 2
    assert "image_zip: none" in proc.stdout


def test_info(image_zip_assets: Path):
    proc = run("info", image_zip_assets)
    assert proc.returncode == 0, proc.stderr
    assert "2 items" in proc.stdout
    assert "\n  default: 2\n" in proc.stdout
    proc = run("info", image_zip_assets, "-io", "subset_from=archive", "--json")
    summary = json.loads(proc.stdout)
    assert (summary["items"], summary["subsets"], summary["annotations"]) == (2, {"1": 1, "2": 1}, {})


def test_not_a_zip_with_explicit_format(tmp_path: Path):
    fake = tmp_path / "backup.zip"
    fake.write_text("text")
    proc = run("convert", "-i", fake, "-if", "image_zip", "-f", "image_zip", "-o", tmp_path / "out")
    assert proc.returncode == 1
    assert f"{fake}: not a readable zip archive" in proc.stderr
    assert_no_traceback(proc)
