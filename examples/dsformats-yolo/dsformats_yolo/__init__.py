"""yolo: the Ultralytics YOLO detection and segmentation format, as an external dsformats plugin.

Only metadata and hook implementations live here, so that listing formats stays light; the reader and
writer are imported inside the hooks. This package uses dsformats only through its public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dsformats import IMAGE_EXT, FormatSpec, Option, Probe, hookimpl

from .schema import FORMAT

SPEC = FormatSpec(
    name=FORMAT,
    description="Ultralytics YOLO: data.yaml, images/<split>/, labels/<split>/*.txt (normalised boxes, polygons)",
    extensions=(".yaml", ".yml"),
    annotation_kinds={"bbox", "polygon"},
    writer_options=(
        # Label files are meaningless without their images (coordinates are relative to the image size).
        Option(
            name="save_images",
            type="bool",
            default=True,
            aliases=("save_media",),
            help="also write the images, byte for byte when their suffix is kept (default: yes; --no-save-images)",
        ),
        IMAGE_EXT,
    ),
)


@hookimpl
def dsformats_formats() -> list[FormatSpec]:
    """Declare yolo."""
    return [SPEC]


@hookimpl
def dsformats_detect(path: Path, probe: Probe):
    """Recognise a directory holding data.yaml (or the YAML file itself)."""
    from .detect import detect

    return detect(probe)


@hookimpl
def dsformats_open_reader(format: str, path: Path, options: Mapping[str, Any]):
    """Open a yolo reader."""
    if format != FORMAT:
        return None
    from .reader import YoloReader

    return YoloReader(path)


@hookimpl
def dsformats_open_writer(format: str, path: Path, options: Mapping[str, Any]):
    """Open a yolo writer."""
    if format != FORMAT:
        return None
    from .writer import YoloWriter

    return YoloWriter(path, save_images=options["save_images"], image_ext=options["image_ext"])


@hookimpl
def dsformats_merge(format: str, parts: list[Path], path: Path):
    """Merge the partial YOLO trees of a scale-out run; None when they cannot give one writer's bytes."""
    if format != FORMAT:
        return None
    from .merge import merge

    return merge(parts, path)
