"""Annotated previews: images with their annotations drawn, one PNG per item, plus a contact sheet.

Works for every format, third-party ones included, because it reads through the model only. Pillow (and
numpy, for masks) are imported inside the functions, never at module import.

What is drawn:

* ``Bbox``: an outline and the label name on a tab above its top-left corner;
* ``Polygon`` and ``Mask``: translucent fills (polygons also get an outline); masks via ``Mask.to_bitmap()``;
* ``PolyLine``: an open line;
* ``Points``: a dot per labelled keypoint (hollow when hidden) joined by the label's skeleton
  (``Categories.keypoints``);
* ``Label`` and ``Caption``: text lines in a banner at the top of the image.

Colours are the dataset's label colours (``LabelDef.color``, e.g. the VOC label map) when it has them, else a
stable colour derived from a hash of the label name (the same name gets the same colour on every run).
"""

from __future__ import annotations

import colorsys
import math
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from dsformats.errors import DsformatsError
from dsformats.model import Bbox, Caption, Categories, Item, Label, Mask, Points, Polygon, PolyLine

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage

    from dsformats.registry import Registry

__all__ = ["SHEET_CAPTION", "SHEET_CELL", "PreviewResult", "label_color", "render_item", "render_previews"]

#: Contact-sheet cell: each thumbnail fits in a square of this many pixels...
SHEET_CELL = 256
#: ... above a caption strip of this height (``subset/id``).
SHEET_CAPTION = 14
#: Most thumbnails a contact sheet holds (a sheet of ``-n 0`` on a large dataset would be enormous).
SHEET_MAX = 100
#: Opacity (0-255) of polygon and mask fills.
FILL_ALPHA = 96
#: Canvas colour for items whose image cannot be read but whose size is known.
BLANK = (40, 40, 40)
UNLABELED = (255, 255, 255)


@attrs.define
class PreviewResult:
    """What :func:`render_previews` wrote: the item PNGs, the contact sheet, and notes about skipped items."""

    images: list[Path] = attrs.field(factory=list)
    contact_sheet: Path | None = None
    notes: list[str] = attrs.field(factory=list)


def label_color(name: str | None, categories: Categories | None = None) -> tuple[int, int, int]:
    """The label's colour from the categories, else a stable, saturated colour hashed from its name."""
    if name is None:
        return UNLABELED
    if categories is not None:
        label = categories.get(name)
        if label is not None and label.color is not None:
            return (int(label.color[0]), int(label.color[1]), int(label.color[2]))
    digest = zlib.crc32(name.encode("utf-8"))
    hue = (digest & 0xFFFF) / 0x10000
    value = 0.75 + ((digest >> 16) & 0xFF) / 0xFF * 0.25
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, value)
    return (round(r * 255), round(g * 255), round(b * 255))


def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_tab(draw: Any, xy: tuple[float, float], text: str, color: tuple[int, int, int], font: Any) -> None:
    """Text on a filled tab of ``color`` whose bottom-left corner is ``xy`` (kept inside the image)."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w, h = right - left + 4, bottom - top + 2
    x = max(0.0, xy[0])
    y = xy[1] - h if xy[1] - h >= 0 else xy[1]
    draw.rectangle((x, y, x + w, y + h), fill=(*color, 255))
    ink = (0, 0, 0, 255) if sum(color) > 380 else (255, 255, 255, 255)
    draw.text((x + 2 - left, y + 1 - top), text, fill=ink, font=font)


def _base_image(item: Item, notes: list[str]) -> PILImage | None:
    from PIL import Image

    name = f"{item.subset}/{item.id}"
    if item.media is None:
        notes.append(f"{name}: skipped, the item has no image")
        return None
    try:
        image = item.media.open_image()
    except DsformatsError as exc:
        size = item.media.known_size
        if size is None:
            notes.append(f"{name}: skipped, {exc}")
            return None
        notes.append(f"{name}: image unreadable ({exc}); drawn on a blank {size[0]}x{size[1]} canvas")
        return Image.new("RGBA", (int(size[0]), int(size[1])), (*BLANK, 255))
    with image:
        return image.convert("RGBA")


def render_item(item: Item, categories: Categories | None = None, *, notes: list[str] | None = None) -> PILImage | None:
    """Draw ``item``'s annotations on its image; return an RGB Pillow image, or None (reason in ``notes``)."""
    from PIL import Image, ImageDraw

    notes = notes if notes is not None else []
    base = _base_image(item, notes)
    if base is None:
        return None
    width, height = base.size
    line = max(1, round(min(width, height) / 200))
    font = _font(max(10, min(24, round(min(width, height) / 30))))
    fills = Image.new("RGBA", base.size, (0, 0, 0, 0))
    fill_draw = ImageDraw.Draw(fills)
    for ann in sorted(item.annotations, key=lambda a: a.z_order):
        color = label_color(getattr(ann, "label", None), categories)
        if isinstance(ann, Mask):
            _paint_mask(fills, ann, color, item, notes)
        elif isinstance(ann, Polygon):
            fill_draw.polygon(_pairs(ann.points), fill=(*color, FILL_ALPHA))
    canvas = Image.alpha_composite(base, fills)
    draw = ImageDraw.Draw(canvas)
    tabs: list[tuple[tuple[float, float], str, tuple[int, int, int]]] = []
    texts: list[str] = []
    for ann in item.annotations:
        label = getattr(ann, "label", None)
        color = label_color(label, categories)
        if isinstance(ann, Bbox):
            x1, y1, x2, y2 = ann.xyxy
            draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=(*color, 255), width=line)
            if label:
                tabs.append(((x1, y1), label, color))
        elif isinstance(ann, Polygon):
            pairs = _pairs(ann.points)
            draw.line([*pairs, pairs[0]], fill=(*color, 255), width=line)
        elif isinstance(ann, PolyLine):
            draw.line(_pairs(ann.points), fill=(*color, 255), width=line + 1)
        elif isinstance(ann, Points):
            _draw_points(draw, ann, color, categories, line)
        elif isinstance(ann, Label):
            texts.append(f"label: {ann.label}")
        elif isinstance(ann, Caption):
            texts.append(f"caption: {ann.caption}")
    for xy, text, color in tabs:
        _text_tab(draw, xy, text, color, font)
    y = 0.0
    for text in texts:
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        draw.rectangle((0, y, right - left + 6, y + bottom - top + 4), fill=(0, 0, 0, 160))
        draw.text((3 - left, y + 2 - top), text, fill=(255, 255, 255, 255), font=font)
        y += bottom - top + 4
    return canvas.convert("RGB")


def _pairs(points: Sequence[float]) -> list[tuple[float, float]]:
    return list(zip(points[0::2], points[1::2], strict=True))


def _paint_mask(layer: PILImage, mask: Mask, color: tuple[int, int, int], item: Item, notes: list[str]) -> None:
    import numpy as np
    from PIL import Image

    try:
        bitmap = np.asarray(mask.to_bitmap(), dtype=bool)
    except DsformatsError as exc:
        notes.append(f"{item.subset}/{item.id}: a mask was not drawn: {exc}")
        return
    if bitmap.ndim != 2 or not bitmap.any():
        return
    if bitmap.shape != (layer.height, layer.width):
        notes.append(
            f"{item.subset}/{item.id}: a {bitmap.shape[1]}x{bitmap.shape[0]} mask on a "
            f"{layer.width}x{layer.height} image was drawn from the top-left corner"
        )
        bitmap = bitmap[: layer.height, : layer.width]
    alpha = Image.fromarray((bitmap * FILL_ALPHA).astype(np.uint8), mode="L")
    tint = Image.new("RGBA", alpha.size, (*color, 255))
    tint.putalpha(alpha)
    layer.alpha_composite(tint)


def _draw_points(draw: Any, ann: Points, color: tuple[int, int, int], categories: Categories | None, line: int) -> None:
    pairs = _pairs(ann.points)
    schema = categories.keypoints.get(ann.label) if categories is not None and ann.label else None
    for a, b in schema.skeleton if schema else ():
        if a < len(pairs) and b < len(pairs) and ann.visibility[a] and ann.visibility[b]:
            draw.line([pairs[a], pairs[b]], fill=(*color, 255), width=line)
    radius = line + 2
    for (x, y), visible in zip(pairs, ann.visibility, strict=True):
        if visible:
            box = (x - radius, y - radius, x + radius, y + radius)
            draw.ellipse(box, fill=(*color, 255) if visible == 2 else None, outline=(0, 0, 0, 255))


def _output_path(out_dir: Path, item: Item) -> Path:
    """``out_dir/<subset>/<id>.png``; a subset name that is not a safe folder name is quoted."""
    subset = item.subset
    if not subset or subset in (".", "..") or "/" in subset or "\\" in subset or "\x00" in subset:
        subset = subset.replace("/", "%2F").replace("\\", "%5C").replace("\x00", "") or "_"
        subset = "_" + subset if subset in (".", "..") else subset
    return out_dir / subset / f"{item.id}.png"


def _thumbnail(image: PILImage) -> PILImage:
    """``image`` fitted into a ``SHEET_CELL`` square: shrunk smoothly, or enlarged by a whole factor."""
    from PIL import Image

    factor = SHEET_CELL // max(image.width, image.height)
    if factor > 1:
        return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)
    thumb = image.copy()
    thumb.thumbnail((SHEET_CELL, SHEET_CELL))
    return thumb


def _contact_sheet(thumbs: list[tuple[str, PILImage]], path: Path) -> None:
    """A grid of ``SHEET_CELL``-pixel cells, each with a caption strip, about square."""
    from PIL import Image, ImageDraw

    columns = math.ceil(math.sqrt(len(thumbs)))
    rows = math.ceil(len(thumbs) / columns)
    cell_h = SHEET_CELL + SHEET_CAPTION
    sheet = Image.new("RGB", (columns * SHEET_CELL, rows * cell_h), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    font = _font(SHEET_CAPTION - 4)
    for index, (name, thumb) in enumerate(thumbs):
        x, y = (index % columns) * SHEET_CELL, (index // columns) * cell_h
        sheet.paste(thumb, (x + (SHEET_CELL - thumb.width) // 2, y + (SHEET_CELL - thumb.height) // 2))
        text = name
        while len(text) > 4 and draw.textlength(text, font=font) > SHEET_CELL - 4:
            text = "..." + text[4:]
        draw.text((x + 2, y + SHEET_CELL + 1), text, fill=(230, 230, 230), font=font)
    sheet.save(path, format="PNG")


def render_previews(
    path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    format: str | None = None,
    options: dict[str, Any] | None = None,
    limit: int = 16,
    subset: str | None = None,
    ids: Sequence[str] | None = None,
    contact_sheet: bool = True,
    registry: Registry | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> PreviewResult:
    """Render the first ``limit`` items of the dataset at ``path`` (0 = every selected item) into ``out_dir``.

    Items are chosen in reading order, restricted to ``subset`` and to ``ids`` when given. Each becomes
    ``out_dir/<subset>/<id>.png`` at the image's own size; ``out_dir/contact_sheet.png`` holds thumbnails
    of the first rendered items (at most :data:`SHEET_MAX`). Items without a readable image are drawn on a
    blank canvas when their size is known, else skipped with a note. Existing files are overwritten.
    Memory stays bounded: one image at a time, plus the sheet's small thumbnails.
    """
    from dsformats import dispatch

    if limit < 0:
        raise ValueError("limit must be >= 0")
    wanted = set(ids) if ids else None
    target = Path(out_dir)
    result = PreviewResult()
    thumbs: list[tuple[str, PILImage]] = []
    total = limit or (len(wanted) if wanted else None)
    seen: set[str] = set()
    with dispatch.read(path, format, options=options, registry=registry) as reader:
        categories = reader.header.categories
        done = 0
        for item in reader.items():
            if (subset is not None and item.subset != subset) or (wanted is not None and item.id not in wanted):
                continue
            done += 1
            if wanted is not None:
                seen.add(item.id)
            image = render_item(item, categories, notes=result.notes)
            if image is not None:
                with image:
                    file = _output_path(target, item)
                    file.parent.mkdir(parents=True, exist_ok=True)
                    image.save(file, format="PNG")
                    result.images.append(file)
                    if contact_sheet and len(thumbs) < SHEET_MAX:
                        thumbs.append((f"{item.subset}/{item.id}", _thumbnail(image)))
            if progress is not None:
                progress(done, total)
            if limit and done >= limit:
                break
    if wanted is not None and not (limit and done >= limit):
        result.notes.extend(f"{name}: no such item id" for name in sorted(wanted - seen))
    if thumbs:
        target.mkdir(parents=True, exist_ok=True)
        result.contact_sheet = target / "contact_sheet.png"
        _contact_sheet(thumbs, result.contact_sheet)
    return result
