"""coco: MS COCO annotation files (instances, person_keypoints, captions, labels, image_info, panoptic, stuff).

This module holds only metadata and hook implementations; the reader and writer are imported when used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dsformats import IMAGE_EXT, JOBS, RANGE_SHARD, SAVE_IMAGES, FormatSpec, Option, Probe, hookimpl

from .schema import ALIASES, FORMAT, SEGMENTATION_MODES, TASKS

SPEC = FormatSpec(
    name=FORMAT,
    description="MS COCO JSON (annotations/<task>_<subset>.json + images/<subset>/; Roboflow and mmdet "
    "layouts; or one .json file); every task, original image/annotation/category ids kept",
    extensions=(".json",),
    annotation_kinds=("bbox", "polygon", "mask", "points", "label", "caption"),
    reader_options=(
        Option(
            name="tasks",
            type="list",
            choices=TASKS,
            default=(),
            help="read only these tasks (comma-separated); default: every task file present",
        ),
        Option(
            name="images_dir",
            default=None,
            metavar="DIR",
            help="directory the images' file_name values are relative to (for a single .json input)",
        ),
        RANGE_SHARD,
    ),
    writer_options=(
        SAVE_IMAGES,
        IMAGE_EXT,
        JOBS,
        Option(
            name="tasks",
            type="list",
            choices=TASKS,
            default=(),
            help="task files to write (comma-separated); default: the source's COCO tasks, else those "
            "the data has",
        ),
        Option(
            name="segmentation_mode",
            type="choice",
            choices=SEGMENTATION_MODES,
            default="guess",
            help="'guess' keeps each object's own encoding; 'polygons' converts masks to polygons; "
            "'mask' rasterises polygons to RLE",
        ),
        Option(
            name="reindex",
            type="bool",
            default=False,
            help="renumber image and annotation ids 1..N instead of keeping the source's ids",
        ),
    ),
    aliases={alias: {"tasks": task} for alias, task in ALIASES.items()},
)


@hookimpl
def dsformats_formats() -> list[FormatSpec]:
    """Declare coco."""
    return [SPEC]


@hookimpl
def dsformats_detect(path: Path, probe: Probe):
    """Recognise the default, Roboflow and mmdetection layouts, and a single COCO .json file."""
    from .detect import detect

    return detect(probe)


@hookimpl
def dsformats_open_reader(format: str, path: Path, options: Mapping[str, Any]):
    """Open a coco reader."""
    if format != FORMAT:
        return None
    from .reader import CocoReader

    return CocoReader(path, tasks=options["tasks"], images_dir=options["images_dir"], shard=options.get("shard"))


@hookimpl
def dsformats_open_writer(format: str, path: Path, options: Mapping[str, Any]):
    """Open a coco writer."""
    if format != FORMAT:
        return None
    from .writer import CocoWriter

    return CocoWriter(
        path,
        save_images=options["save_images"],
        image_ext=options["image_ext"],
        tasks=options["tasks"],
        segmentation_mode=options["segmentation_mode"],
        reindex=options["reindex"],
        jobs=options["jobs"],
    )


@hookimpl
def dsformats_merge(format: str, parts: list[Path], path: Path, options: Mapping[str, Any], report: Any):
    """Assemble the COCO files of a scale-out run from the shards' spools."""
    if format != FORMAT:
        return None
    from .merge import merge

    return merge(parts, path, options, report)
