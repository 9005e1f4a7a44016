"""Placed shards (dsformats.placement) into image_zip: parts written straight into the merged archive, adopted
there when they fill their range exactly, and copied as ordinary parts when a prediction was wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import attrs
import pytest
from dsformats_image_zip.writer import placed_size

import dsformats
import dsformats.zipstream
from dsformats.options import validate_options
from dsformats.placement import Placement, PlannedMedia, read_marker
from dsformats.policy import partial_output, placing
from dsformats.registry import default_registry
from dsformats.report import Report
from dsformats.testing import generate_items


def _options(**given: object) -> dict:
    spec = default_registry().get("image_zip").spec
    return validate_options(spec.writer_options, given, what="writer option")


def _planned(items: list[dsformats.Item]) -> list[PlannedMedia]:
    return [PlannedMedia(i.subset, i.id, i.media.suffix, len(i.media.read_bytes())) for i in items]


@pytest.fixture(scope="module")
def items() -> list[dsformats.Item]:
    _header, items = generate_items(seed=21, count=30, subsets=("train", "val"))
    items[4] = attrs.evolve(items[4], id="dossier/ünï-çødé")  # a name that takes more bytes than characters
    return items


@pytest.mark.parametrize("given", [{}, {"subset_dirs": True}, {"image_ext": ".jpeg", "subset_dirs": True}])
def test_the_size_is_the_members_bytes_of_one_writer(tmp_path, items, given):
    """The predicted bytes are where one writer's central directory starts (its members' headers and data)."""
    kept = [i for i in items if i.media.suffix == ".jpg"] if "image_ext" in given else items
    dsformats.write(kept, tmp_path / "out", "image_zip", options=given)
    with dsformats.zipstream.StreamingZipReader(tmp_path / "out" / "default.zip") as archive:
        assert placed_size(_planned(kept), _options(**given)) == archive.start_dir > 0


def test_hook_dsformats_placed_size(tmp_path, items):
    """Through the registry: image_zip sizes its parts; a format without the hook gives None."""
    registry = default_registry()
    dsformats.write(items, tmp_path / "out", "image_zip")
    with dsformats.zipstream.StreamingZipReader(tmp_path / "out" / "default.zip") as archive:
        assert registry.placed_size("image_zip", iter(_planned(items)), _options()) == archive.start_dir
    voc = validate_options(registry.get("voc").spec.writer_options, {}, what="writer option")
    assert registry.placed_size("voc", iter(_planned(items)), voc) is None


def test_no_size_where_the_bytes_are_not_known_ahead(items):
    planned = _planned(items)
    assert placed_size(planned, _options(compression="deflated")) is None
    assert placed_size(planned, _options(shards_out=True)) is None
    assert placed_size(planned, _options(image_ext=".png")) is None  # the JPEGs are re-encoded
    unknown = [*planned[:3], planned[3]._replace(size=None)]
    assert placed_size(unknown, _options()) is None
    no_image = PlannedMedia("train", "x", None, None)  # an item without an image stores nothing
    assert placed_size([*planned[:3], no_image], _options()) == placed_size(planned[:3], _options())
    assert placed_size([PlannedMedia("train", "../x", ".jpg", 5)], _options()) is None  # refused by the writer


def _placed_merge(tmp_path: Path, chunks: list[list[dsformats.Item]], errors: list[int]) -> Path:
    """Write each chunk as a placed part (its range size off by ``errors[n]`` bytes from the prediction), as
    the local engine's workers do, then merge the parts."""
    shared = tmp_path / "shared"
    shared.touch()
    options = _options()
    offset, parts = 0, []
    for n, chunk in enumerate(chunks):
        size = placed_size(_planned(chunk), options) + errors[n]
        parts.append(tmp_path / f"part{n}")
        with partial_output(), placing(Placement(str(shared), offset, size)):
            dsformats.write(chunk, parts[-1], "image_zip", header=dsformats.Header())
        offset += size
    (tmp_path / "merged").mkdir()
    assert default_registry().merge("image_zip", parts, tmp_path / "merged", options, Report()) is True
    return tmp_path / "merged" / "default.zip"


def test_exact_parts_are_adopted_in_place(tmp_path, items, monkeypatch):
    dsformats.write(items, tmp_path / "single", "image_zip")
    chunks = [items[:7], items[7:8], items[8:20], items[20:]]

    def no_copy(*args: object) -> None:
        raise AssertionError("a placed part was copied")

    monkeypatch.setattr(dsformats.zipstream, "_copy_range", no_copy)
    merged = _placed_merge(tmp_path, chunks, [0, 0, 0, 0])
    assert merged.read_bytes() == (tmp_path / "single" / "default.zip").read_bytes()
    for n in range(4):  # each part's own archive file holds only its central directory
        assert (tmp_path / f"part{n}" / "default.zip").stat().st_size < 200 * len(chunks[n])
        assert read_marker(tmp_path / f"part{n}") is not None


@pytest.mark.parametrize("errors", [
    [5, 0, 0, 0],  # the first part is shorter than its range
    [0, -5, 0, 0],  # a middle part overflows its range into its own file
    [0, 0, 0, 9],  # the last one is short
    [0, -1, 3, 0],  # both, one after the other
    [-40, 40, 0, 0],  # the sizes add up, but the second part starts elsewhere
])
def test_wrong_predictions_still_give_one_writers_bytes(tmp_path, items, errors):
    dsformats.write(items, tmp_path / "single", "image_zip")
    chunks = [items[:7], items[7:8], items[8:20], items[20:]]
    merged = _placed_merge(tmp_path, chunks, errors)
    assert merged.read_bytes() == (tmp_path / "single" / "default.zip").read_bytes()
    first_wrong = min(n for n, error in enumerate(errors) if error)
    assert [read_marker(tmp_path / f"part{n}") is not None for n in range(4)] == [n < first_wrong for n in range(4)]
    with zipfile.ZipFile(merged) as archive:
        assert archive.testzip() is None
        assert [archive.read(i) for i in archive.infolist()] == [i.media.read_bytes() for i in items]
