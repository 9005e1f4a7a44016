"""Helpers for the image_zip tests: build zips by hand, read them back, compare pixels."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

import dsformats

FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def write_zip(
    path: Path,
    members: Mapping[str, bytes | None] | Iterable[tuple[str, bytes | None]],
    *,
    compression: int = zipfile.ZIP_STORED,
) -> Path:
    """Write a zip whose member names are used verbatim (``../x``, ``/abs``, ``dir/``); None = directory."""
    pairs = members.items() if isinstance(members, Mapping) else members
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in pairs:
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = compression
            if data is None:
                info.external_attr = 0o40755 << 16 | 0x10
                data = b""
            archive.writestr(info, data)
    return path


def zip_members(path: Path) -> dict[str, bytes]:
    """Every member's name and bytes, in archive order."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def zip_infos(path: Path) -> list[zipfile.ZipInfo]:
    """The archive's ZipInfo records, in order."""
    with zipfile.ZipFile(path) as archive:
        return archive.infolist()


def read_all(path: Path, **options: str) -> list[tuple[str, str, bytes]]:
    """``(subset, id, media bytes)`` of every item, read while the reader is open."""
    with dsformats.read(path, "image_zip", options=options or None) as reader:
        return [(item.subset, item.id, item.media.read_bytes()) for item in reader.items()]


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    """``(mode, size, raw pixels)`` of encoded image bytes, fully decoded."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.mode, image.size, image.tobytes()


@pytest.fixture
def image_zip_assets(datumaro_fixtures: Path) -> Path:
    """Datumaro's ``image_zip_dataset`` directory (``1.zip`` and ``2.zip``)."""
    return datumaro_fixtures / "image_zip_dataset"
