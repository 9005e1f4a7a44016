"""Issue 6: image_zip keeps nothing per member in memory (no ZipInfo lists, no dicts of ids) when reading or writing.

Measured with tracemalloc (Python allocations, deterministic), at two sizes: the growth per member must stay
far below a ``ZipInfo`` (~500 bytes) or a dict entry of two strings (~150 bytes).
"""

from __future__ import annotations

import io
import tracemalloc
import zipfile
from pathlib import Path

import dsformats
from dsformats import Item, Media

SMALL, LARGE = 5_000, 20_000
JPEG = b"\xff\xd8\xff\xe0" + b"\0" * 60  # member bytes are copied, never decoded


def _archive(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for number in range(count):
            archive.writestr(zipfile.ZipInfo(f"images/{number:07d}.jpg", date_time=(1980, 1, 1, 0, 0, 0)), JPEG)
    return path


def _items(count: int):
    for number in range(count):
        yield Item(
            id=f"img/{number:07d}", media=Media(name=f"m{number}", suffix=".jpg", opener=lambda: io.BytesIO(JPEG))
        )


def _peak(action) -> int:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_reading_holds_nothing_per_member(tmp_path):
    def read(count: int):
        archive = _archive(tmp_path / f"{count}.zip", count)

        def run():
            with dsformats.read(archive, "image_zip") as reader:
                assert reader.header.size_hint == count
                assert sum(1 for _ in reader.items()) == count

        return run

    small, large = read(SMALL), read(LARGE)
    small()  # imports and first-use caches, outside the measurement
    growth = (_peak(large) - _peak(small)) / (LARGE - SMALL)
    # the id check's hashes: 8 bytes a member, 16 while the sorted array is merged, and the recent-hash set
    assert growth < 40, f"{growth:.0f} bytes a member"


def test_writing_holds_nothing_per_member(tmp_path):
    def write(count: int):
        def run():
            dsformats.write(_items(count), tmp_path / f"out{count}", "image_zip", overwrite=True)

        return run

    write(SMALL)()  # imports and first-use caches, outside the measurement
    small, large = _peak(write(SMALL)), _peak(write(LARGE))
    # two id checks (the dispatcher's and the writer's stems) and the case check: ~8 bytes a key each
    growth = (large - small) / (LARGE - SMALL)
    assert growth < 100, f"{growth:.0f} bytes an item"
    with zipfile.ZipFile(tmp_path / f"out{LARGE}" / "default.zip") as archive:
        names = archive.namelist()
        assert len(names) == LARGE and names[-1] == f"img/{LARGE - 1:07d}.jpg"
        assert archive.testzip() is None
