"""--image-ext re-encoding on several processes (--jobs): the same bytes as one process, bad images skipped."""

from __future__ import annotations

import pytest

import dsformats
from dsformats import DatasetError, Item, Media
from dsformats.testing import generate_items, read_tree


def _items(count: int = 14) -> tuple[dsformats.Header, list[Item]]:
    return generate_items(("bbox", "polygon"), seed=21, count=count, image_suffixes=(".jpg", ".png", ".bmp"))


@pytest.mark.parametrize("fmt", ["voc", "coco", "image_zip"])
def test_jobs_give_the_same_bytes(tmp_path, fmt):
    header, items = _items()
    trees = []
    for jobs in (1, 2):
        options = {"save_images": True, "image_ext": ".png", "jobs": jobs}
        report = dsformats.write(items, tmp_path / str(jobs), fmt, header=header, options=options)
        assert report.media_reencoded == sum(1 for item in items if item.media.suffix != ".png")
        assert report.media_copied == len(items) - report.media_reencoded
        trees.append(read_tree(tmp_path / str(jobs)))
    assert trees[0] == trees[1]
    with dsformats.read(tmp_path / "2", fmt) as reader:
        images = {item.id: item.media.read_bytes() for item in reader.items()}
    import io

    from PIL import Image

    for item in items:  # decoded pixels survive the re-encode (PNG is lossless)
        original = Image.open(io.BytesIO(item.media.read_bytes())).convert("RGB")
        written = Image.open(io.BytesIO(images[item.id]))
        assert written.format == "PNG" and written.convert("RGB").tobytes() == original.tobytes()


@pytest.mark.parametrize("fmt", ["voc", "coco"])
def test_a_bad_image_is_skipped_at_its_item_with_jobs(tmp_path, fmt):
    header, items = _items(8)
    broken = Item(id="broken", subset=items[3].subset, media=Media.from_bytes(b"not a jpeg", ".jpg"))
    items = [*items[:3], broken, *items[3:]]
    options = {"save_images": True, "image_ext": ".png", "jobs": 2}
    with pytest.raises(DatasetError, match="broken|cannot"):
        dsformats.write(items, tmp_path / "strict", fmt, header=header, options=options)
    report = dsformats.write(items, tmp_path / "skip", fmt, header=header, options=options, skip_bad_items=True)
    assert len(report.skipped) == 1 and "broken" not in str(read_tree(tmp_path / "skip").keys())
    assert sum(report.items_written.values()) == len(items) - 1
