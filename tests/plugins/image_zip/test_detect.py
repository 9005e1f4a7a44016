"""image_zip detection: opens central directories, never trusts a .zip name alone."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import dsformats
from dsformats import Confidence

from .conftest import write_zip


def verdict(path: Path) -> dsformats.Detection:
    (found,) = [d for d in dsformats.detect(path) if d.format == "image_zip"]
    return found


def test_reference_directory_is_certain(image_zip_assets: Path):
    found = verdict(image_zip_assets)
    assert found.confidence == Confidence.CERTAIN
    assert "2 zip archive" in found.reason
    assert dsformats.detect_format(image_zip_assets) == "image_zip"


@pytest.mark.parametrize("name", ["1.zip", "2.zip"])
def test_reference_zip_is_certain(image_zip_assets: Path, name: str):
    assert verdict(image_zip_assets / name).confidence == Confidence.CERTAIN
    assert dsformats.detect_format(image_zip_assets / name) == "image_zip"


def test_upper_case_archive_and_members(tmp_path: Path, make_image):
    archive = write_zip(tmp_path / "d" / "UPPER.ZIP", {"A.JPG": make_image(2, 2, ".jpg")})
    assert verdict(archive).confidence == Confidence.CERTAIN
    assert verdict(archive.parent).confidence == Confidence.CERTAIN


def test_text_file_named_zip_is_not_detected(tmp_path: Path):
    fake = tmp_path / "d" / "backup.zip"
    fake.parent.mkdir()
    fake.write_text("not a zip at all\n")
    assert verdict(fake).confidence == Confidence.NONE
    assert verdict(fake.parent).confidence == Confidence.NONE
    with pytest.raises(dsformats.FormatNotFoundError):
        dsformats.detect_format(fake.parent)


def test_folder_of_jpegs_with_a_stray_zip_is_at_most_weak(tmp_path: Path, make_image):
    folder = tmp_path / "photos"
    folder.mkdir()
    for n in range(20):
        (folder / f"{n:03}.jpg").write_bytes(make_image(4, 4, ".jpg", seed=n))
    write_zip(folder / "backup.zip", {"old.jpg": make_image(4, 4, ".jpg")})
    assert verdict(folder).confidence <= Confidence.WEAK
    assert verdict(folder).confidence > Confidence.NONE


def test_folder_of_jpegs_with_a_text_zip_is_not_detected(tmp_path: Path, make_image):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(make_image(4, 4, ".jpg"))
    (folder / "backup.zip").write_text("text")
    assert verdict(folder).confidence == Confidence.NONE


def test_zip_with_images_and_json_is_weak(tmp_path: Path, make_image):
    archive = write_zip(
        tmp_path / "d" / "data.zip",
        {"images/1.jpg": make_image(2, 2, ".jpg"), "annotations/instances.json": b'{"images": []}'},
    )
    found = verdict(archive)
    assert found.confidence == Confidence.WEAK
    assert "instances.json" in found.reason
    assert verdict(archive.parent).confidence == Confidence.WEAK


def test_zip_without_images_is_not_detected(tmp_path: Path):
    archive = write_zip(tmp_path / "d" / "docs.zip", {"readme.txt": b"hi", "a/": None})
    assert verdict(archive).confidence == Confidence.NONE
    assert verdict(archive.parent).confidence == Confidence.NONE


def test_junk_does_not_weaken_detection(tmp_path: Path, make_image):
    archive = write_zip(
        tmp_path / "d" / "a.zip",
        [
            ("__MACOSX/._1.jpg", b"\x00"),
            (".DS_Store", b"x"),
            ("dir/", None),
            ("1.jpg", make_image(2, 2, ".jpg")),
        ],
    )
    (archive.parent / ".DS_Store").write_bytes(b"Bud1")
    assert verdict(archive).confidence == Confidence.CERTAIN
    assert verdict(archive.parent).confidence == Confidence.CERTAIN


def test_nested_archives_are_detected(tmp_path: Path, make_image):
    write_zip(tmp_path / "d" / "train" / "part1.zip", {"1.png": make_image(2, 2)})
    write_zip(tmp_path / "d" / "val" / "part1.zip", {"2.png": make_image(2, 2)})
    assert verdict(tmp_path / "d").confidence == Confidence.CERTAIN


def test_empty_directory_and_plain_file(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    assert verdict(tmp_path / "empty").confidence == Confidence.NONE
    (tmp_path / "a.jpg").write_bytes(b"\xff\xd8\xff")
    assert verdict(tmp_path / "a.jpg").confidence == Confidence.NONE


def test_detection_reads_no_member_bytes(image_zip_assets: Path, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("detection opened a member")

    monkeypatch.setattr(zipfile.ZipFile, "open", refuse)
    assert verdict(image_zip_assets).confidence == Confidence.CERTAIN
