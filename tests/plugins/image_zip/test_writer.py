"""image_zip writer: passthrough bytes, PNG re-encode, compressions, subsets, overwrite, atomicity, report."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

import dsformats
from dsformats import Bbox, Caption, DatasetError, Item, Label, Media, OptionError, OutputExistsError

from .conftest import pixels, read_all, write_zip, zip_infos, zip_members

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def image_item(item_id: str, data: bytes, suffix: str, subset: str = "default", **kwargs) -> Item:
    return Item(id=item_id, subset=subset, media=Media.from_bytes(data, suffix), **kwargs)


def siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


# --------------------------------------------------------------------------------------------- round trips


def test_can_save_and_load(tmp_path: Path, make_image):
    """Datumaro's test_can_save_and_load, with random images and byte comparison."""
    one = make_image(10, 6, ".png", seed=1)
    two = make_image(5, 4, ".jpg", seed=2)
    out = tmp_path / "out"
    report = dsformats.write([image_item("1", one, ".png"), image_item("2", two, ".jpg")], out, "image_zip")
    assert sorted(p.name for p in out.iterdir()) == ["default.zip"]
    assert zip_members(out / "default.zip") == {"1.png": one, "2.jpg": two}
    assert read_all(out / "default.zip") == [("default", "1", one), ("default", "2", two)]
    assert (report.media_copied, report.media_reencoded) == (2, 0)
    assert report.items_written == {"default": 2}
    assert report.lossless and report.target_format == "image_zip"


def test_can_save_and_load_with_custom_archive_name(tmp_path: Path, make_image):
    data = make_image(3, 3)
    out = tmp_path / "out"
    dsformats.write([image_item("x", data, ".png")], out, "image_zip", options={"name": "my_archive.zip"})
    assert sorted(p.name for p in out.iterdir()) == ["my_archive.zip"]
    assert read_all(out / "my_archive.zip") == [("default", "x", data)]


def test_archive_name_in_a_subfolder(tmp_path: Path, make_image):
    data = make_image(3, 3)
    out = tmp_path / "out"
    dsformats.write([image_item("x", data, ".png")], out, "image_zip", options={"name": "pack/images.zip"})
    assert zip_members(out / "pack" / "images.zip") == {"x.png": data}


@pytest.mark.parametrize("name", ["../escape.zip", "/abs.zip"])
def test_archive_name_cannot_escape(tmp_path: Path, make_image, name: str):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="--name"):
        dsformats.write([image_item("x", make_image(2, 2), ".png")], out, "image_zip", options={"name": name})
    assert siblings(out) == []


def test_relative_paths(tmp_path: Path, make_image):
    data = {i: make_image(4, 4, ".jpg", seed=n) for n, i in enumerate(["1", "a/2", "a/b/3"])}
    out = tmp_path / "out"
    dsformats.write([image_item(i, d, ".jpg") for i, d in data.items()], out, "image_zip")
    assert zip_members(out / "default.zip") == {f"{i}.jpg": d for i, d in data.items()}
    assert read_all(out / "default.zip") == [("default", i, d) for i, d in data.items()]


def test_can_save_and_load_with_arbitrary_extensions(tmp_path: Path, make_image):
    """Each image keeps its own suffix and its exact bytes."""
    items = {
        "a": (make_image(3, 2, ".png", seed=1), ".png"),
        "b": (make_image(3, 2, ".jpg", seed=2), ".jpg"),
        "c": (make_image(3, 2, ".bmp", seed=3), ".bmp"),
        "d": (make_image(3, 2, ".webp", seed=4), ".webp"),
        "e": (make_image(3, 2, ".tif", seed=5), ".tif"),
    }
    out = tmp_path / "out"
    report = dsformats.write([image_item(i, d, s) for i, (d, s) in items.items()], out, "image_zip")
    assert zip_members(out / "default.zip") == {f"{i}{s}": d for i, (d, s) in items.items()}
    assert (report.media_copied, report.media_reencoded) == (5, 0)


def test_zip_to_zip_passthrough_via_convert(tmp_path: Path, make_image):
    src = tmp_path / "src"
    first = {"1.jpg": make_image(8, 6, ".jpg", seed=1), "sub/2.png": make_image(5, 5, seed=2)}
    second = {"3.JPG": make_image(4, 9, ".jpg", seed=3), "deep/er/4.bmp": make_image(2, 3, ".bmp", seed=4)}
    write_zip(src / "a.zip", first, compression=zipfile.ZIP_DEFLATED)
    write_zip(src / "nested" / "b.zip", second)
    out = tmp_path / "out"
    report = dsformats.convert(
        src, out, "image_zip", writer_options={"name": "x.zip", "compression": "ZIP_DEFLATED"}
    )
    assert report.source_format == "image_zip"
    members = zip_members(out / "x.zip")
    assert members == {
        "1.jpg": first["1.jpg"],
        "sub/2.png": first["sub/2.png"],
        "3.jpg": second["3.JPG"],
        "deep/er/4.bmp": second["deep/er/4.bmp"],
    }
    assert {i.compress_type for i in zip_infos(out / "x.zip")} == {zipfile.ZIP_DEFLATED}
    assert (report.media_copied, report.media_reencoded) == (4, 0)
    assert report.items_read == report.items_written == {"default": 4}


def test_reference_assets_passthrough(tmp_path: Path, image_zip_assets: Path):
    out = tmp_path / "out"
    dsformats.convert(image_zip_assets, out, "image_zip", writer_options={"compression": "lzma"})
    expected = {}
    for name in ("1.zip", "2.zip"):
        expected.update(zip_members(image_zip_assets / name))
    assert zip_members(out / "default.zip") == expected
    assert set(expected) == {"1.jpg", "2.jpg"}


def test_convert_subsets_from_archives_into_folders(tmp_path: Path, make_image):
    src = tmp_path / "src"
    train, val = make_image(3, 3, seed=1), make_image(3, 3, seed=2)
    write_zip(src / "train.zip", {"1.png": train})
    write_zip(src / "val.zip", {"1.png": val})
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="--subset-dirs"):
        dsformats.convert(src, out, "image_zip", reader_options={"subset_from": "archive"})
    assert siblings(out) == ["src"]
    report = dsformats.convert(
        src, out, "image_zip", reader_options={"subset_from": "archive"}, writer_options={"subset_dirs": True}
    )
    assert zip_members(out / "default.zip") == {"train/1.png": train, "val/1.png": val}
    assert report.items_written == {"train": 1, "val": 1}


# ------------------------------------------------------------------------------------------ re-encoding


@pytest.mark.parametrize("source", [".bmp", ".png", ".tif", ".webp"])
@pytest.mark.parametrize("ext", [".png", "png", ".PNG"])
def test_png_reencode_is_pixel_exact(tmp_path: Path, make_image, source: str, ext: str):
    data = make_image(13, 7, source, seed=11)
    out = tmp_path / "out"
    report = dsformats.write(
        [image_item("a/img", data, source)], out, "image_zip", options={"image_ext": ext}
    )
    members = zip_members(out / "default.zip")
    assert list(members) == ["a/img.png"]
    png = members["a/img.png"]
    assert png.startswith(PNG_MAGIC)
    assert pixels(png) == pixels(data)
    if source == ".png":
        assert png == data
        assert (report.media_copied, report.media_reencoded) == (1, 0)
    else:
        assert (report.media_copied, report.media_reencoded) == (0, 1)


def test_png_reencode_from_jpeg_keeps_decoded_pixels(tmp_path: Path, make_image):
    """JPEG -> PNG is lossless with respect to the decoded JPEG (random pixels, not a constant image)."""
    jpgs = {f"{n}": make_image(16, 12, ".jpg", seed=n) for n in range(3)}
    src = write_zip(tmp_path / "src" / "in.zip", {f"{i}.jpg": d for i, d in jpgs.items()})
    out = tmp_path / "out"
    report = dsformats.convert(src, out, "image_zip", writer_options={"image_ext": ".png"})
    members = zip_members(out / "default.zip")
    assert sorted(members) == ["0.png", "1.png", "2.png"]
    for item_id, jpg in jpgs.items():
        png = members[f"{item_id}.png"]
        assert png.startswith(PNG_MAGIC)
        mode, size, raw = pixels(png)
        assert (mode, size) == ("RGB", (16, 12))
        assert raw == pixels(jpg)[2]
        assert len(set(raw)) > 50  # random content, not a constant image
    assert (report.media_copied, report.media_reencoded) == (0, 3)


def test_jpeg_spellings_are_byte_copies(tmp_path: Path, make_image):
    data = make_image(4, 4, ".jpg")
    out = tmp_path / "out"
    report = dsformats.write([image_item("a", data, ".jpeg")], out, "image_zip", options={"image_ext": "jpg"})
    assert zip_members(out / "default.zip") == {"a.jpg": data}
    assert report.media_copied == 1


def test_media_without_suffix_becomes_jpeg(tmp_path: Path, make_image):
    data = make_image(6, 4, ".png", seed=5)
    out = tmp_path / "out"
    report = dsformats.write([image_item("a", data, "")], out, "image_zip")
    jpg = zip_members(out / "default.zip")["a.jpg"]
    assert jpg.startswith(JPEG_MAGIC)
    assert pixels(jpg)[:2] == ("RGB", (6, 4))
    assert report.media_reencoded == 1


def test_unknown_image_ext_is_an_option_error(tmp_path: Path, make_image):
    out = tmp_path / "out"
    with pytest.raises(OptionError, match="txt"):
        dsformats.write(
            [image_item("a", make_image(2, 2), ".png")], out, "image_zip", options={"image_ext": ".txt"}
        )
    assert siblings(out) == []


def test_corrupt_member_byte_copy_succeeds_but_reencode_fails(tmp_path: Path, make_image):
    bad = b"\xff\xd8\xff\xe0 definitely not a complete jpeg"
    good = make_image(3, 3, ".jpg")
    src = write_zip(tmp_path / "src" / "archive.zip", {"good.jpg": good, "broken/bad.jpg": bad})
    out = tmp_path / "copy"
    report = dsformats.convert(src, out, "image_zip")
    assert zip_members(out / "default.zip") == {"good.jpg": good, "broken/bad.jpg": bad}
    assert report.media_copied == 2
    out = tmp_path / "png"
    with pytest.raises(DatasetError) as info:
        dsformats.convert(src, out, "image_zip", writer_options={"image_ext": ".png"})
    assert "archive.zip!broken/bad.jpg" in str(info.value)
    assert siblings(out) == ["copy", "src"]


# ----------------------------------------------------------------------------------------- compression


COMPRESSIONS = [
    ("ZIP_STORED", zipfile.ZIP_STORED),
    ("ZIP_DEFLATED", zipfile.ZIP_DEFLATED),
    ("ZIP_BZIP2", zipfile.ZIP_BZIP2),
    ("ZIP_LZMA", zipfile.ZIP_LZMA),
    ("stored", zipfile.ZIP_STORED),
    ("store", zipfile.ZIP_STORED),
    ("deflated", zipfile.ZIP_DEFLATED),
    ("deflate", zipfile.ZIP_DEFLATED),
    ("bzip2", zipfile.ZIP_BZIP2),
    ("lzma", zipfile.ZIP_LZMA),
    ("zip_lzma", zipfile.ZIP_LZMA),
]


@pytest.mark.parametrize(("value", "expected"), COMPRESSIONS)
def test_can_save_and_load_custom_compression_method(tmp_path: Path, make_image, value: str, expected: int):
    data = {"1": make_image(20, 20, ".png", seed=1), "a/2": make_image(9, 9, ".bmp", seed=2)}
    items = [image_item("1", data["1"], ".png"), image_item("a/2", data["a/2"], ".bmp")]
    out = tmp_path / "out"
    dsformats.write(items, out, "image_zip", options={"compression": value})
    infos = zip_infos(out / "default.zip")
    assert [(i.filename, i.compress_type) for i in infos] == [("1.png", expected), ("a/2.bmp", expected)]
    assert read_all(out / "default.zip") == [("default", "1", data["1"]), ("default", "a/2", data["a/2"])]
    with zipfile.ZipFile(out / "default.zip") as zf:
        assert zf.testzip() is None


def test_default_compression_is_stored(tmp_path: Path, make_image):
    out = tmp_path / "out"
    dsformats.write([image_item("a", make_image(2, 2), ".png")], out, "image_zip")
    assert [i.compress_type for i in zip_infos(out / "default.zip")] == [zipfile.ZIP_STORED]


def test_bogus_compression_lists_choices_before_reading(tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(OptionError) as info:
        dsformats.convert(tmp_path / "missing", out, "image_zip", writer_options={"compression": "zstd"})
    message = str(info.value)
    assert "compression" in message and "zstd" in message
    for choice in ("ZIP_STORED", "ZIP_DEFLATED", "ZIP_BZIP2", "ZIP_LZMA"):
        assert choice in message
    assert siblings(out) == []


def test_unknown_writer_option_lists_valid_ones(tmp_path: Path):
    with pytest.raises(OptionError) as info:
        dsformats.convert(tmp_path / "missing", tmp_path / "out", "image_zip", writer_options={"level": 9})
    for name in ("name", "compression", "image_ext", "subset_dirs", "save_images"):
        assert name in str(info.value)


def test_save_images_is_accepted(tmp_path: Path, make_image):
    data = make_image(3, 3)
    for flag in (True, False):
        out = tmp_path / f"out{flag}"
        dsformats.write([image_item("a", data, ".png")], out, "image_zip", options={"save_images": flag})
        assert zip_members(out / "default.zip") == {"a.png": data}


# -------------------------------------------------------------------------------------------- subsets


def test_cross_subset_collision_is_an_error(tmp_path: Path, make_image):
    items = [image_item("1", make_image(2, 2, ".jpg"), ".jpg", "train"),
             image_item("1", make_image(2, 2, ".jpg", seed=1), ".jpg", "val")]
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="--subset-dirs") as info:
        dsformats.write(items, out, "image_zip")
    assert "train/1" in str(info.value) and "val/1" in str(info.value)
    assert siblings(out) == []


def test_cross_subset_collision_with_different_suffixes_is_an_error(tmp_path: Path, make_image):
    """``1.jpg`` and ``1.png`` are different members but would read back as the same id."""
    items = [image_item("1", make_image(2, 2, ".jpg"), ".jpg", "train"),
             image_item("1", make_image(2, 2, ".png"), ".png", "val")]
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="--subset-dirs") as info:
        dsformats.write(items, out, "image_zip")
    assert "1.jpg" in str(info.value) and "1.png" in str(info.value)
    assert siblings(out) == []


def test_subset_dirs(tmp_path: Path, make_image):
    train, val = make_image(2, 2, ".jpg", seed=1), make_image(2, 2, ".jpg", seed=2)
    items = [image_item("1", train, ".jpg", "train"), image_item("1", val, ".jpg", "val")]
    out = tmp_path / "out"
    report = dsformats.write(items, out, "image_zip", options={"subset_dirs": True})
    assert zip_members(out / "default.zip") == {"train/1.jpg": train, "val/1.jpg": val}
    assert report.items_written == {"train": 1, "val": 1}
    assert read_all(out / "default.zip") == [("default", "train/1", train), ("default", "val/1", val)]


def test_duplicate_item_in_one_subset_is_an_error(tmp_path: Path, make_image):
    items = [image_item("1", make_image(2, 2), ".png"), image_item("1", make_image(2, 2, seed=1), ".png")]
    out = tmp_path / "out"
    with pytest.raises(dsformats.DuplicateItemError, match="'1'"):
        dsformats.write(items, out, "image_zip")
    assert siblings(out) == []


def test_case_only_difference_is_a_warning(tmp_path: Path, make_image):
    a, b = make_image(2, 2, seed=1), make_image(2, 2, seed=2)
    out = tmp_path / "out"
    report = dsformats.write([image_item("a", a, ".png"), image_item("A", b, ".png")], out, "image_zip")
    assert zip_members(out / "default.zip") == {"a.png": a, "A.png": b}
    assert len(report.warnings) == 1 and "'a.png'" in report.warnings[0] and "'A.png'" in report.warnings[0]


# ---------------------------------------------------------------------------------- output handling


def test_existing_output_without_overwrite_is_untouched(tmp_path: Path, make_image):
    out = tmp_path / "out"
    out.mkdir()
    (out / "default.zip").write_bytes(b"old archive")
    (out / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="overwrite"):
        dsformats.write([image_item("a", make_image(2, 2), ".png")], out, "image_zip")
    assert sorted(p.name for p in out.iterdir()) == ["default.zip", "keep.txt"]
    assert (out / "default.zip").read_bytes() == b"old archive"
    assert (out / "keep.txt").read_text() == "mine"
    assert siblings(out) == ["out"]


def test_existing_output_with_overwrite_is_replaced(tmp_path: Path, make_image):
    out = tmp_path / "out"
    out.mkdir()
    (out / "default.zip").write_bytes(b"old archive")
    (out / "stale.txt").write_text("old")
    data = make_image(2, 2)
    dsformats.write([image_item("a", data, ".png")], out, "image_zip", overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["default.zip"]
    assert zip_members(out / "default.zip") == {"a.png": data}
    assert siblings(out) == ["out"]


def _exploding_media() -> Media:
    def opener():
        raise RuntimeError("disk on fire")

    return Media(name="boom.png", suffix=".png", opener=opener)


@pytest.mark.parametrize("existing", [False, True])
def test_failure_midway_leaves_no_output(tmp_path: Path, make_image, existing: bool):
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "default.zip").write_bytes(b"old archive")
    items = [image_item("1", make_image(2, 2), ".png"), Item(id="2", media=_exploding_media()),
             image_item("3", make_image(2, 2), ".png")]
    with pytest.raises(RuntimeError, match="disk on fire"):
        dsformats.write(iter(items), out, "image_zip", overwrite=existing)
    if existing:
        assert siblings(out) == ["out"]
        assert [p.name for p in out.iterdir()] == ["default.zip"]
        assert (out / "default.zip").read_bytes() == b"old archive"
    else:
        assert siblings(out) == []


def test_item_without_media_is_dropped_and_counted(tmp_path: Path, make_image):
    data = make_image(2, 2)
    out = tmp_path / "out"
    report = dsformats.write([Item(id="nomedia"), image_item("a", data, ".png")], out, "image_zip")
    assert zip_members(out / "default.zip") == {"a.png": data}
    assert report.dropped["item without image"][0] == 1
    assert report.items_read == {"default": 2}
    assert report.items_written == {"default": 1}
    assert not report.lossless
    with pytest.raises(DatasetError, match="strict"):
        dsformats.write([Item(id="nomedia")], tmp_path / "strict", "image_zip", strict=True)
    assert not (tmp_path / "strict").exists()


def test_annotations_and_attributes_are_dropped_per_kind(tmp_path: Path, make_image):
    data = make_image(4, 4)
    item = image_item(
        "a",
        data,
        ".png",
        annotations=[Label(label="cat"), Bbox(x=1, y=1, w=2, h=2, label="cat"), Bbox(x=0, y=0, w=1, h=1),
                     Caption(caption="a cat")],
        attributes={"source_id": 7},
    )
    out = tmp_path / "out"
    report = dsformats.write([item, image_item("b", data, ".png", annotations=[Label(label="dog")])], out,
                             "image_zip")
    assert {kind: entry[0] for kind, entry in report.dropped.items()} == {
        "label": 2,
        "bbox": 2,
        "caption": 1,
        "item attribute": 1,
    }
    assert all("image_zip" in entry[1] for entry in report.dropped.values())
    assert zip_members(out / "default.zip") == {"a.png": data, "b.png": data}
    assert report.annotations_written == {}


def test_output_is_deterministic(tmp_path: Path, make_image):
    images = [(f"{n}", make_image(5, 5, ".jpg", seed=n)) for n in range(4)]
    outputs = []
    for run in range(2):
        out = tmp_path / f"out{run}"
        dsformats.write([image_item(i, d, ".jpg") for i, d in images], out, "image_zip",
                        options={"compression": "deflated"})
        outputs.append((out / "default.zip").read_bytes())
    assert outputs[0] == outputs[1]


def test_writer_consumes_items_lazily(tmp_path: Path, make_image):
    """A generator is consumed one item at a time: item n+1 is produced after item n was written."""
    out = tmp_path / "out"
    produced: list[str] = []
    opened: list[str] = []

    def media_for(name: str, data: bytes) -> Media:
        def opener():
            opened.append(name)
            assert produced[-1] == name, "the writer pulled items ahead of writing them"
            import io

            return io.BytesIO(data)

        return Media(name=name, suffix=".png", opener=opener)

    def generate():
        for n in range(3):
            produced.append(str(n))
            yield Item(id=str(n), media=media_for(str(n), make_image(2, 2, seed=n)))

    dsformats.write(generate(), out, "image_zip")
    assert opened == ["0", "1", "2"]


def test_interrupt_midway_leaves_no_output(tmp_path: Path, make_image):
    def opener():
        raise KeyboardInterrupt

    out = tmp_path / "out"
    items = [image_item("1", make_image(2, 2), ".png"), Item(id="2", media=Media(name="x", suffix=".png",
                                                                                  opener=opener))]
    with pytest.raises(KeyboardInterrupt):
        dsformats.write(items, out, "image_zip")
    assert siblings(out) == []


def test_unsafe_subset_folder_is_refused(tmp_path: Path, make_image):
    out = tmp_path / "out"
    with pytest.raises(DatasetError, match="escapes"):
        dsformats.write([image_item("1", make_image(2, 2), ".png", subset="..")], out, "image_zip",
                        options={"subset_dirs": True})
    assert siblings(out) == []


def test_unicode_and_spaces_in_ids_round_trip(tmp_path: Path, make_image):
    data = {"ünï côde/ä b": make_image(2, 2, seed=1), "日本/画像 1": make_image(2, 2, seed=2)}
    out = tmp_path / "out"
    dsformats.write([image_item(i, d, ".png") for i, d in data.items()], out, "image_zip")
    assert zip_members(out / "default.zip") == {f"{i}.png": d for i, d in data.items()}
    assert all(info.flag_bits & 0x800 for info in zip_infos(out / "default.zip"))
    assert read_all(out / "default.zip") == [("default", i, d) for i, d in data.items()]


def test_parallel_reencode_gives_the_same_bytes_as_one_job(tmp_path, make_image):
    items = [
        dsformats.Item(id=f"img/{n}", media=dsformats.Media.from_bytes(make_image(24, 16, ".jpg", seed=n), ".jpg"))
        for n in range(12)
    ]
    one = dsformats.write(items, tmp_path / "one", "image_zip", options={"image_ext": ".png", "jobs": 1})
    two = dsformats.write(iter(items), tmp_path / "two", "image_zip", options={"image_ext": ".png", "jobs": 2})
    assert one.media_reencoded == two.media_reencoded == 12
    assert (tmp_path / "one" / "default.zip").read_bytes() == (tmp_path / "two" / "default.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "two" / "default.zip") as archive:
        assert archive.namelist() == [f"img/{n}.png" for n in range(12)]


def test_parallel_reencode_skips_bad_images_in_order(tmp_path, make_image):
    items = [dsformats.Item(id=str(n), media=dsformats.Media.from_bytes(make_image(8, 8, ".jpg", seed=n), ".jpg"))
             for n in range(4)]
    items[1] = dsformats.Item(id="1", media=dsformats.Media.from_bytes(b"garbage", ".jpg", name="broken.jpg"))
    report = dsformats.write(items, tmp_path / "o", "image_zip", options={"image_ext": ".png", "jobs": 2},
                             skip_bad_items=True)
    assert report.skipped and "broken.jpg: cannot read image" in report.skipped[0]
    with zipfile.ZipFile(tmp_path / "o" / "default.zip") as archive:
        assert archive.namelist() == ["0.png", "2.png", "3.png"]
    with pytest.raises(dsformats.DatasetError, match="broken.jpg"):
        dsformats.write(items, tmp_path / "p", "image_zip", options={"image_ext": ".png", "jobs": 2})
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("compression", ["ZIP_STORED", "ZIP_DEFLATED"])  # deflated: packed in threads
def test_an_image_that_cannot_be_read_for_reencoding_is_a_bad_item(tmp_path, make_image, compression):
    """A missing file to re-encode is skipped in order under --skip-bad-items (it escaped the policy)."""
    folder = tmp_path / "images"
    folder.mkdir()
    items = []
    for n in range(4):
        (folder / f"{n}.jpg").write_bytes(make_image(8, 6, ".jpg", seed=n))
        items.append(dsformats.Item(id=str(n), media=dsformats.Media.from_file(folder / f"{n}.jpg")))
    (folder / "1.jpg").unlink()
    options = {"image_ext": ".png", "jobs": 2, "compression": compression}
    report = dsformats.write(items, tmp_path / "o", "image_zip", options=options, skip_bad_items=True)
    assert len(report.skipped) == 1 and report.skipped[0].startswith(f"{folder / '1.jpg'}: cannot open")
    assert report.media_reencoded == 3 and dict(report.items_written) == {"default": 3}
    with zipfile.ZipFile(tmp_path / "o" / "default.zip") as archive:
        assert archive.namelist() == ["0.png", "2.png", "3.png"]
        assert pixels(archive.read("2.png")) == pixels((folder / "2.jpg").read_bytes())
    with pytest.raises(DatasetError, match="1.jpg: cannot open"):
        dsformats.write(items, tmp_path / "p", "image_zip", options=options)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("skip", [False, True])
def test_two_items_of_one_member_stem_fail_in_item_order(tmp_path, make_image, skip):
    """``train/x`` and ``val/x`` are one member without --subset-dirs: an error, skipped or not, raised when the
    writer reaches ``val/x``; a broken image before it, which the writer also reads ahead, comes first."""
    broken = Media.from_bytes(make_image(4, 4, ".jpg", seed=1)[:10], ".jpg")
    items = [Item(id="a", subset="train", media=broken),
             Item(id="x", subset="train", media=Media.from_bytes(make_image(4, 4, seed=2), ".png")),
             Item(id="x", subset="val", media=Media.from_bytes(make_image(4, 4, seed=3), ".png"))]
    expected = "cannot read image" if not skip else "items 'train/x' and 'val/x' would both be stored as item 'x'"
    with pytest.raises(DatasetError, match=expected):
        dsformats.write(items, tmp_path / "out", "image_zip", options={"image_ext": ".png"}, skip_bad_items=skip)
    assert not (tmp_path / "out").exists()
