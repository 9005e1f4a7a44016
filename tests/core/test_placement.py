"""Placed parts (dsformats.placement): a file split between a range of a shared file and a file of its own."""

from __future__ import annotations

import os
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsformats.placement import PlacedFile, Placement, placed_part, read_marker, write_marker
from dsformats.policy import placement, placing


def _shared(tmp_path, size: int, seed: int = 0) -> tuple[str, bytes]:
    data = random.Random(seed).randbytes(size)
    path = tmp_path / "shared"
    path.write_bytes(data)
    return str(path), data


def test_writes_fill_the_range_then_go_to_the_rest_file(tmp_path):
    path, before = _shared(tmp_path, 100)
    payload = random.Random(1).randbytes(50)
    where = Placement(path, 10, 20)
    with PlacedFile(where, tmp_path / "rest") as placed:
        for start in range(0, 50, 7):  # writes that straddle the range's end
            assert placed.write(payload[start : start + 7]) == len(payload[start : start + 7])
        assert placed.length == placed.tell() == 50
    after = (tmp_path / "shared").read_bytes()
    assert after[10:30] == payload[:20]
    assert after[:10] == before[:10] and after[30:] == before[30:]  # nothing outside the range is touched
    assert (tmp_path / "rest").read_bytes() == payload[20:]
    with placed_part(where, 50, tmp_path / "rest") as joined:
        assert joined.read() == payload
        joined.seek(15)
        assert joined.read(10) == payload[15:25]


def test_a_part_shorter_than_its_range_reads_back_to_its_length(tmp_path):
    path, _ = _shared(tmp_path, 64)
    payload = random.Random(2).randbytes(12)
    where = Placement(path, 8, 40)
    with PlacedFile(where, tmp_path / "rest") as placed:
        placed.write(payload)
    assert (tmp_path / "rest").read_bytes() == b""
    with placed_part(where, 12, tmp_path / "rest") as joined:
        assert joined.read() == payload


def test_a_missing_rest_ends_the_joined_file_with_an_error(tmp_path):
    path, _ = _shared(tmp_path, 32)
    (tmp_path / "rest").write_bytes(b"abc")
    with placed_part(Placement(path, 0, 16), 30, tmp_path / "rest") as joined, pytest.raises(EOFError):
        joined.read()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 80), st.binary(max_size=40)), max_size=12),
       st.integers(0, 30), st.integers(0, 60))
def test_seeks_and_writes_match_an_ordinary_file(tmp_path_factory, writes, offset, size):
    """Any sequence of seeks and writes (zipfile seeks back to finish a streamed member's header) reads back as
    the same writes to one ordinary file, and leaves the shared file outside the range as it was."""
    folder = tmp_path_factory.mktemp("placed")
    path, before = _shared(folder, 128, seed=offset)
    model = bytearray()
    where = Placement(path, offset, size)
    with PlacedFile(where, folder / "rest") as placed:
        for position, data in writes:
            placed.seek(position)
            placed.write(data)
            if not data:
                continue
            if len(model) < position:
                model.extend(bytes(position - len(model)))
            model[position : position + len(data)] = data
        assert placed.length == len(model)
    after = (folder / "shared").read_bytes()
    assert after[:offset] == before[:offset]
    assert after[offset + size : 128] == before[offset + size : 128]
    # bytes never written inside the range are whatever the file held: compare only the written ones
    with placed_part(where, len(model), folder / "rest") as joined:
        data = joined.read()
    assert len(data) == len(model)
    written = bytearray(len(model))
    for position, chunk in writes:
        written[position : position + len(chunk)] = b"\1" * len(chunk)
    assert bytes(d for d, w in zip(data, written, strict=True) if w) == bytes(
        m for m, w in zip(model, written, strict=True) if w)


def test_markers_and_the_placement_context(tmp_path):
    assert read_marker(tmp_path) is None
    where = Placement(str(tmp_path / "out"), 123, 456)
    write_marker(tmp_path, where, 789)
    assert read_marker(tmp_path) == (where, 789)
    assert placement() is None
    with placing(where):
        assert placement() == where
    assert placement() is None


def test_negative_seeks_are_refused(tmp_path):
    path, _ = _shared(tmp_path, 8)
    with PlacedFile(Placement(path, 0, 4), tmp_path / "rest") as placed, pytest.raises(OSError):
        placed.seek(-1)
    assert os.path.exists(tmp_path / "rest")
