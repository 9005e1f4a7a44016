"""Helpers shared by the VOC tests: build trees on disk, read them back, compare items fully."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image

import dsformats
from dsformats import Mask

VOC_FIXTURES = "voc_dataset"


def copy_fixture(datumaro_fixtures: Path, name: str, tmp_path: Path) -> Path:
    """Copy a read-only Datumaro fixture into ``tmp_path`` and return the copy."""
    target = tmp_path / name
    shutil.copytree(datumaro_fixtures / VOC_FIXTURES / name, target)
    return target


def write_file(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def save_palette_png(path: Path, array, palette=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array, dtype=np.uint8)
    image = Image.frombytes("P", (array.shape[1], array.shape[0]), array.tobytes())
    from dsformats_voc.schema import voc_colormap

    image.putpalette(palette or [c for color in voc_colormap(256) for c in color])
    image.save(path)


def xml(objects: str = "", *, filename: str = "a.jpg", size: tuple[int, int, int] | None = (20, 10, 3)) -> str:
    size_xml = ""
    if size:
        size_xml = f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>{size[2]}</depth></size>"
    return f"<annotation>\n<filename>{filename}</filename>\n{size_xml}\n{objects}\n</annotation>\n"


def obj(name: str, box=(1, 2, 3, 4), extra: str = "") -> str:
    xmin, ymin, xmax, ymax = box
    return (
        f"<object>\n<name>{name}</name>\n{extra}\n<bndbox>\n<xmin>{xmin}</xmin>\n<ymin>{ymin}</ymin>\n"
        f"<xmax>{xmax}</xmax>\n<ymax>{ymax}</ymax>\n</bndbox>\n</object>"
    )


def read_all(path: Path, **options):
    """``(header, [item, ...])`` with every mask decoded (as ``(annotation, bitmap)`` in ``masks``)."""
    with dsformats.read(path, "voc", options=options or None) as reader:
        items = list(reader.items())
        return reader.header, items, {(i.subset, i.id): _snapshot(i) for i in items}


def _snapshot(item) -> dict:
    return {
        "media": item.media.read_bytes() if item.media is not None and Path(item.media.path).is_file() else None,
        "masks": [(a.label, a.group, a.to_bitmap().copy()) for a in item.annotations if isinstance(a, Mask)],
    }


def normalized(item) -> list:
    """Annotations without masks, in a canonical order (masks are compared through their bitmaps)."""
    return sorted(repr(a) for a in item.annotations if not isinstance(a, Mask))


def mask_set(item) -> list:
    return sorted(
        ((a.label, a.to_bitmap().astype(bool).tobytes()) for a in item.annotations if isinstance(a, Mask)),
        key=repr,
    )
