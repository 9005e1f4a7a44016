"""The conformance kit itself: it passes a sound format and catches the faults it is meant to catch."""

from __future__ import annotations

from pathlib import Path

import pytest

import dsformats
from dsformats import Confidence, Detection, FormatSpec, hookimpl
from dsformats.testing import (
    assert_detects_own_output,
    assert_does_not_claim_others,
    assert_failed_write_leaves_no_output,
    assert_metadata,
    assert_reader_is_lazy,
    assert_round_trip,
    assert_writer_accepts_iterator,
    generate_items,
)

FAILED = (AssertionError, pytest.fail.Exception)


class FaultyPlugin:
    """``faulty``: image_zip under another name, with one fault switched on."""

    __name__ = "faulty"

    def __init__(self, fault: str = "") -> None:
        self.fault = fault

    @hookimpl
    def dsformats_formats(self):
        return [FormatSpec(name="faulty", description="image_zip with a fault")]

    @hookimpl
    def dsformats_detect(self, probe):
        if self.fault == "greedy":
            return Detection("faulty", Confidence.CERTAIN, "claims everything")
        return Detection("faulty", Confidence.NONE, "never detected")

    @hookimpl
    def dsformats_open_reader(self, format, path, options):
        if format != "faulty":
            return None
        from dsformats_image_zip.reader import ImageZipReader

        class EagerReader(ImageZipReader):
            def __enter__(self):
                super().__enter__()
                for item in super().items():
                    item.media.read_bytes()
                return self

        return (EagerReader if self.fault == "eager" else ImageZipReader)(path)

    @hookimpl
    def dsformats_open_writer(self, format, path, options):
        if format != "faulty":
            return None
        from dsformats_image_zip.writer import ImageZipWriter

        fault = self.fault

        class Writer(ImageZipWriter):
            def write(self, header, items, report):
                if fault == "list":
                    items = list(items) and list(items)
                super().write(header, items, report)

            def __exit__(self, *exc):
                return fault == "swallow"

        return Writer(path, image_ext=".bmp" if fault == "reencode" else None)


def registry(fault: str = "") -> dsformats.Registry:
    return dsformats.build_registry(plugins=[FaultyPlugin(fault)])


def sample() -> tuple[dsformats.Header, list[dsformats.Item]]:
    return generate_items((), seed=3, count=4, subsets=("default",))


def test_a_sound_format_passes(tmp_path: Path):
    reg = registry()
    header, items = sample()
    assert_metadata("faulty", registry=reg, check_light_import=False)
    assert_round_trip("faulty", tmp_path / "out", header, items, registry=reg)
    assert_reader_is_lazy("faulty", tmp_path / "out", registry=reg)
    assert_writer_accepts_iterator("faulty", tmp_path / "direct", header, items, registry=reg)
    (tmp_path / "work").mkdir()
    assert_failed_write_leaves_no_output("faulty", tmp_path / "work", header, items, registry=reg)


def test_re_encoded_images_fail_the_round_trip(tmp_path: Path):
    header, items = sample()
    with pytest.raises(AssertionError, match="written .png, read back .bmp|image bytes"):
        assert_round_trip("faulty", tmp_path / "out", header, items, registry=registry("reencode"))


def test_an_eager_reader_is_caught(tmp_path: Path):
    header, items = sample()
    dsformats.write(items, tmp_path / "out", "image_zip", header=header)
    with pytest.raises(AssertionError, match="opening the reader opened"):
        assert_reader_is_lazy("faulty", tmp_path / "out", registry=registry("eager"))


def test_a_writer_that_iterates_twice_is_caught(tmp_path: Path):
    header, items = sample()
    with pytest.raises(AssertionError, match="iterated over the items twice"):
        assert_writer_accepts_iterator("faulty", tmp_path / "direct", header, items, registry=registry("list"))


def test_a_writer_that_swallows_errors_is_caught(tmp_path: Path):
    header, items = sample()
    (tmp_path / "work").mkdir()
    with pytest.raises(FAILED):
        assert_failed_write_leaves_no_output("faulty", tmp_path / "work", header, items, registry=registry("swallow"))


def test_a_greedy_detector_is_caught(tmp_path: Path):
    reg = registry("greedy")
    with pytest.raises(AssertionError, match="faulty claims image_zip's output with CERTAIN"):
        assert_does_not_claim_others("faulty", tmp_path, others=["image_zip"], registry=reg)
    dsformats.write(sample()[1], tmp_path / "zip", "image_zip")
    with pytest.raises(AssertionError, match="claimed as strongly"):
        assert_detects_own_output("faulty", tmp_path / "zip", registry=reg)
