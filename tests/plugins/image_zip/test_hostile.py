"""image_zip against hostile archives: traversal, bombs, encryption, corrupt data, symlinks, odd ids."""

from __future__ import annotations

import os
import zipfile

import attrs
import pytest

import dsformats
from dsformats import DatasetError, Item, Media

from .conftest import read_all, write_zip, zip_members


def _error(path, **options) -> str:
    with pytest.raises(DatasetError) as info:
        read_all(path, **options)
    return str(info.value)


# ------------------------------------------------------------------------------------------- traversal
@pytest.mark.parametrize(
    "name",
    [
        "../escape.jpg",
        "a/../../escape.jpg",
        "/etc/escape.jpg",
        "C:/escape.jpg",
        "C:escape.jpg",
        "c:\\escape.jpg",
        "..\\escape.jpg",
        "a\\..\\..\\escape.jpg",
        "\\\\server\\share\\escape.jpg",
    ],
)
def test_traversal_member_names_are_refused_with_the_member(tmp_path, make_image, name):
    path = write_zip(tmp_path / "in.zip", {"ok.jpg": make_image(4, 4, ".jpg"), name: make_image(4, 4, ".jpg")})
    message = _error(path)
    assert f"in.zip!{name}" in message
    report = dsformats.convert(path, tmp_path / "out", "image_zip", skip_bad_items=True)
    assert report.items_written == {"default": 1} and len(report.skipped) == 1
    assert list(zip_members(tmp_path / "out" / "default.zip")) == ["ok.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zip", "out"]


@pytest.mark.parametrize("item_id", ["../up", "/abs", "C:/drive", "a\\..\\b", "a/../../b"])
def test_writer_refuses_unsafe_item_ids_that_bypass_the_model(tmp_path, item_id):
    item = Item(id="safe", media=Media.from_bytes(b"x", ".jpg"))
    object.__setattr__(item, "id", item_id)  # what a buggy third-party reader could produce
    with pytest.raises(DatasetError, match="item"):
        dsformats.write([item], tmp_path / "out", "image_zip")
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------------------------- bombs
def _deflated_bomb(path, size=64 << 20):
    """A real deflated member of ``size`` zero bytes (ratio ~1000:1), written in chunks."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("bomb.png", "w", force_zip64=True) as member:
            chunk = b"\0" * (1 << 20)
            for _ in range(size >> 20):
                member.write(chunk)
    return path


def test_real_deflated_bomb_is_refused_before_inflating(tmp_path):
    path = _deflated_bomb(tmp_path / "bomb.zip")
    assert path.stat().st_size < 1 << 20
    message = _error(path)
    assert "bomb.zip!bomb.png" in message and "zip bomb" in message


def test_bomb_limit_is_configurable(tmp_path, monkeypatch):
    path = _deflated_bomb(tmp_path / "bomb.zip", 8 << 20)
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_RATIO", "100000")
    ((_, item_id, data),) = read_all(path)  # now allowed: the member inflates (and matches its CRC)
    assert item_id == "bomb" and len(data) == 8 << 20
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_MEMBER", "1M")
    assert "DSFORMATS_ZIP_MAX_MEMBER" in _error(path)


def test_total_budget_stops_many_small_members(tmp_path, monkeypatch, make_image):
    image = make_image(8, 8, ".png")
    path = write_zip(tmp_path / "many.zip", {f"{i}.png": image for i in range(20)})
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_TOTAL", str(len(image) * 10))
    message = _error(path)
    assert "many.zip!10.png" in message and "DSFORMATS_ZIP_MAX_TOTAL" in message


def test_lying_declared_size_cannot_inflate_more(tmp_path, make_image):
    """A central directory that under-declares a member's size: zipfile stops at the declared size."""
    data = make_image(16, 16, ".png")
    path = write_zip(tmp_path / "lie.zip", {"a.png": data})
    raw = bytearray(path.read_bytes())
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 24 : central + 28] = (10).to_bytes(4, "little")  # uncompressed size in the central dir
    path.write_bytes(bytes(raw))
    with dsformats.read(path, "image_zip") as reader:
        (item,) = reader.items()
        with pytest.raises(DatasetError, match="lie.zip!a.png"):
            item.media.read_bytes()


def test_nested_archives_are_not_inflated(tmp_path, make_image):
    inner = tmp_path / "inner.zip"
    _deflated_bomb(inner, 4 << 20)
    path = write_zip(tmp_path / "outer.zip", {"inner.zip": inner.read_bytes(), "a.png": make_image(4, 4)})
    assert [i for _, i, _ in read_all(path)] == ["a"]


# -------------------------------------------------------------------------------------- broken archives
@pytest.mark.parametrize("cut", [0, 10, 100, -22, -1])
def test_truncated_or_garbage_archives(tmp_path, make_image, cut):
    path = write_zip(tmp_path / "in.zip", {"a.png": make_image(8, 8), "b.png": make_image(8, 8, seed=2)})
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut else b"not a zip at all")
    with pytest.raises(DatasetError, match="in.zip"):
        for _ in read_all(path):
            pass


def test_encrypted_member(tmp_path, make_image):
    path = write_zip(tmp_path / "in.zip", {"a.png": make_image(4, 4)})
    raw = bytearray(path.read_bytes())
    raw[6] |= 1  # local header flag
    central = raw.rfind(b"PK\x01\x02")
    raw[central + 8] |= 1
    path.write_bytes(bytes(raw))
    assert "in.zip!a.png: member is encrypted" in _error(path)


def test_crc_mismatch_is_a_dataset_error_on_copy(tmp_path, make_image):
    data = make_image(8, 8)
    path = write_zip(tmp_path / "in.zip", {"a.png": data})
    raw = bytearray(path.read_bytes())
    offset = raw.find(data)
    raw[offset + len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError, match="in.zip!a.png"):
        dsformats.convert(path, tmp_path / "out", "image_zip")
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------ corrupt images
def test_corrupt_image_passes_a_byte_copy_and_fails_only_when_decoded(tmp_path, make_image):
    bad = make_image(16, 16)[:50]
    path = write_zip(tmp_path / "in.zip", {"bad.png": bad, "good.png": make_image(4, 4)})
    dsformats.convert(path, tmp_path / "copy", "image_zip")
    assert zip_members(tmp_path / "copy" / "default.zip")["bad.png"] == bad
    with pytest.raises(DatasetError, match="in.zip!bad.png: cannot"):
        dsformats.convert(path, tmp_path / "reencoded", "image_zip", writer_options={"image_ext": ".jpg"})
    problems = dsformats.verify(path)
    assert [loc for loc, _ in problems] == [f"{path}!bad.png"]


def test_pixel_bomb_member_fails_on_decode_only(tmp_path):
    from tests.core.test_safety import png_header_only

    path = write_zip(tmp_path / "in.zip", {"huge.png": png_header_only(40_000, 40_000)})
    dsformats.convert(path, tmp_path / "copy", "image_zip")  # a byte copy needs no decode
    with pytest.raises(DatasetError, match="huge.png: image is too large"):
        dsformats.convert(path, tmp_path / "re", "image_zip", writer_options={"image_ext": ".jpg"})
    ((location, error),) = dsformats.verify(path)
    assert location.endswith("in.zip!huge.png") and "DSFORMATS_MAX_IMAGE_PIXELS" in str(error)


# --------------------------------------------------------------------------------------------- symlinks
@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinked_archive_outside_the_input_directory_is_not_followed(tmp_path, make_image):
    outside = write_zip(tmp_path / "secret" / "s.zip", {"secret.png": make_image(4, 4)})
    root = tmp_path / "in"
    write_zip(root / "a.zip", {"a.png": make_image(4, 4)})
    os.symlink(outside, root / "link.zip")
    os.symlink(outside.parent, root / "linkdir")
    assert [i for _, i, _ in read_all(root)] == ["a"]


# ---------------------------------------------------------------------------------------------- odd ids
ODD_IDS = ["naïve café", "日本語/画像 1", "a b (c) [d] {e}", "x&y=z+w@v#u!t,s;r'q", "emoji 🐱", "-dash", "~tilde%20"]


def test_odd_ids_round_trip(tmp_path, make_image):
    items = [Item(id=i, media=Media.from_bytes(make_image(4, 4, seed=n), ".png")) for n, i in enumerate(ODD_IDS)]
    dsformats.write(items, tmp_path / "out", "image_zip")
    assert sorted(i for _, i, _ in read_all(tmp_path / "out")) == sorted(ODD_IDS)


def test_case_only_different_ids_are_reported(tmp_path, make_image):
    items = [Item(id=i, media=Media.from_bytes(make_image(4, 4), ".png")) for i in ("Cat", "cat")]
    report = dsformats.write(items, tmp_path / "out", "image_zip")
    assert any("differ only in case" in w for w in report.warnings)


def test_evolve_with_a_bad_id_is_refused_by_the_model():
    item = Item(id="a")
    with pytest.raises(ValueError):
        attrs.evolve(item, id="../b")
