"""Limits and the bad-item policy: zip bombs, pixel bombs, corrupt media, --skip-bad-items."""

from __future__ import annotations

import struct
import zipfile
import zlib

import pytest

import dsformats
from dsformats import DatasetError, Item, Media
from dsformats.limits import ZipBudget, max_image_pixels
from dsformats.policy import bad_item, reporting, warn


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares a huge size, with a tiny (invalid) body: a decompression bomb stand-in."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b"")


def test_pixel_bomb_is_a_dataset_error_on_decode_but_size_is_readable():
    media = Media.from_bytes(png_header_only(50_000, 50_000), ".png", name="bomb.png")
    assert media.size == (50_000, 50_000)  # header only: harmless
    with pytest.raises(DatasetError, match="bomb.png: image is too large to decode safely.*DSFORMATS_MAX_IMAGE_PIXELS"):
        media.open_image()


def test_pixel_limit_is_configurable(monkeypatch, make_image):
    media = Media.from_bytes(make_image(40, 30, ".png"), ".png", name="small.png")
    monkeypatch.setenv("DSFORMATS_MAX_IMAGE_PIXELS", "1000")
    assert max_image_pixels() == 1000
    with pytest.raises(DatasetError, match="too large"):
        media.open_image()
    monkeypatch.setenv("DSFORMATS_MAX_IMAGE_PIXELS", "0")
    assert media.open_image().size == (40, 30)


def test_an_rle_mask_over_the_pixel_limit_is_refused_before_it_is_allocated(monkeypatch, tmp_path, make_image):
    """An RLE declares any size; decoding one of 50,000 x 50,000 would take 2.5 GB. The image limit applies, and
    a VOC conversion names the item."""
    import numpy as np

    from dsformats import Mask, Rle

    monkeypatch.setattr(np, "zeros", lambda *args, **kwargs: pytest.fail("allocated"))
    huge = Rle(size=(50_000, 50_000), counts=(7, 3, 50_000 * 50_000 - 10))
    with pytest.raises(DatasetError, match="an RLE mask of 50000x50000 pixels is over the decode limit of 89,478,485"):
        Mask(label="cat", rle=huge).to_bitmap()
    monkeypatch.undo()
    monkeypatch.setenv("DSFORMATS_MAX_IMAGE_PIXELS", "20")
    small = Rle(size=(5, 4), counts=(7, 3, 10))
    assert Mask(label="cat", rle=small).to_bitmap().sum() == 3  # at the limit
    with pytest.raises(DatasetError, match="over the decode limit of 20 pixels"):
        Mask(label="cat", rle=Rle(size=(5, 5), counts=(7, 3, 15))).to_bitmap()
    item = Item(id="big", media=None, annotations=[Mask(label="cat", rle=Rle(size=(5, 5), counts=(7, 3, 15)))])
    header = dsformats.Header(categories=dsformats.Categories(labels=[dsformats.LabelDef(name="cat")]))
    with pytest.raises(DatasetError, match="^item 'big': an RLE mask of 5x5 pixels is over the decode limit"):
        dsformats.write([item], tmp_path / "voc", "voc", header=header)
    with pytest.raises(DatasetError, match="^item 'big': an RLE mask of 5x5 pixels is over the decode limit"):
        dsformats.write([item], tmp_path / "coco", "coco", header=header, options={"segmentation_mode": "polygons"})
    dsformats.write([item], tmp_path / "kept", "coco", header=header)  # an RLE kept as it is: nothing decoded


def test_corrupt_media_fails_only_when_decoded(make_image):
    data = make_image(20, 20, ".png")[:60]
    media = Media.from_bytes(data, ".png", name="cut.png")
    assert media.read_bytes() == data  # copying needs no decode
    with pytest.raises(DatasetError, match="cut.png: cannot"):
        media.open_image()


def _info(name, size, compressed):
    info = zipfile.ZipInfo(name)
    info.file_size, info.compress_size = size, compressed
    return info


def test_zip_budget_defaults_pass_real_data_and_stop_bombs():
    budget = ZipBudget("a.zip")
    budget.check(_info("big_stored.jpg", 3 << 30, 3 << 30))  # a 3 GiB stored member is fine
    budget.check(_info("tiny.png", 1000, 1))  # small members may compress arbitrarily well
    with pytest.raises(DatasetError, match=r"a.zip!bomb.png: member compression ratio .* zip bomb"):
        budget.check(_info("bomb.png", 3 << 30, 1 << 20))
    with pytest.raises(DatasetError, match="DSFORMATS_ZIP_MAX_MEMBER"):
        budget.check(_info("huge.jpg", 5 << 30, 5 << 30))


def test_zip_limits_are_configurable(monkeypatch):
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_TOTAL", "1K")
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_MEMBER", "0.5KiB")
    budget = ZipBudget("a.zip")
    budget.check(_info("1.jpg", 500, 500))
    budget.check(_info("2.jpg", 500, 500))
    with pytest.raises(DatasetError, match="DSFORMATS_ZIP_MAX_TOTAL"):
        budget.check(_info("3.jpg", 500, 500))
    with pytest.raises(DatasetError, match="DSFORMATS_ZIP_MAX_MEMBER"):
        budget.check(_info("4.jpg", 600, 600))
    monkeypatch.setenv("DSFORMATS_ZIP_MAX_RATIO", "lots")
    with pytest.raises(DatasetError, match="invalid size 'lots'"):
        ZipBudget("a.zip")


def test_a_real_zip_bomb_is_refused_by_the_image_zip_reader(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("ok.png", b"x")
        archive.writestr("zeros.png", b"\0" * (20 << 20))  # 20 MiB of zeros: ratio ~1000
    with pytest.raises(DatasetError, match="bomb.zip!zeros.png: member compression ratio"):
        with dsformats.read(tmp_path / "bomb.zip", "image_zip"):
            pass


def test_bad_item_raises_by_default_and_records_when_skipping():
    error = DatasetError("broken", "x.xml")
    with pytest.raises(DatasetError, match="x.xml: broken"):
        bad_item(error)
    report = dsformats.Report()
    with reporting(report, skip_bad_items=True):
        bad_item(error)
        warn("something odd")
    assert report.skipped == ["x.xml: broken"] and report.warnings == ["something odd"]
    with reporting(report), pytest.raises(DatasetError):
        bad_item(error)
    with pytest.raises(DatasetError):
        bad_item(error)  # the policy ends with the block


def test_skip_bad_items_in_a_conversion(tmp_path, make_image):
    good = make_image(8, 8, ".jpg", seed=1)
    with zipfile.ZipFile(tmp_path / "in.zip", "w") as archive:
        archive.writestr("good.jpg", good)
        archive.writestr("bad.jpg", b"not an image at all")
        archive.writestr("../escape.jpg", good)
    options = {"image_ext": ".png"}
    with pytest.raises(DatasetError, match="escape.jpg"):
        dsformats.convert(tmp_path / "in.zip", tmp_path / "out", "image_zip", writer_options=options)
    assert not (tmp_path / "out").exists()
    report = dsformats.convert(tmp_path / "in.zip", tmp_path / "out", "image_zip", writer_options=options,
                               skip_bad_items=True)
    assert report.items_written == {"default": 1}
    assert len(report.skipped) == 2
    assert any("../escape.jpg" in s and "escapes" in s for s in report.skipped)
    assert any("in.zip!bad.jpg: cannot read image" in s for s in report.skipped)
    with zipfile.ZipFile(tmp_path / "out" / "default.zip") as archive:
        assert archive.namelist() == ["good.png"]
    with pytest.raises(DatasetError, match="strict mode.*2 bad items skipped"):
        dsformats.convert(tmp_path / "in.zip", tmp_path / "out2", "image_zip", writer_options=options,
                          skip_bad_items=True, strict=True)


def test_duplicates_are_skipped_under_the_policy(tmp_path):
    items = [Item(id="a", media=Media.from_bytes(b"1", ".jpg")), Item(id="a", media=Media.from_bytes(b"2", ".jpg"))]
    report = dsformats.write(items, tmp_path / "o", "image_zip", skip_bad_items=True)
    assert report.items_written == {"default": 1}
    assert report.skipped == ["duplicate item id 'a' in subset 'default'"]


def test_naming_gives_a_location_only_to_errors_without_one():
    with pytest.raises(DatasetError, match="^item 'a': over the limit$"):
        with dsformats.naming("item 'a'"):
            raise DatasetError("over the limit")
    with pytest.raises(DatasetError, match="^x.json: bad$"):
        with dsformats.naming("item 'a'"):
            raise DatasetError("bad", "x.json")
    with pytest.raises(ValueError, match="^other$"), dsformats.naming("item 'a'"):
        raise ValueError("other")
