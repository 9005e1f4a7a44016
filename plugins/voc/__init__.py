"""voc: Pascal VOC trees (classification, detection, segmentation, person layout and actions).

This module holds only metadata and hook implementations; the reader and writer are imported when used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dsformats import IMAGE_EXT, JOBS, RANGE_SHARD, SAVE_IMAGES, FormatSpec, Header, Option, Probe, hookimpl

from .schema import BBOX_CONVENTIONS, BBOX_XYXY, FORMAT, LABEL_MAP_SOURCE, LABEL_MAPS, TASKS, lost_parents

_BBOX_HELP = (
    "'xyxy': x = xmin, w = xmax - xmin (Datumaro and most converters); "
    "'pixel_inclusive': official VOC 1-based inclusive pixels, x = xmin - 1, w = xmax - xmin + 1"
)

SPEC = FormatSpec(
    name=FORMAT,
    description="Pascal VOC: Annotations/*.xml, ImageSets lists and flags, SegmentationClass/Object PNGs",
    annotation_kinds=("label", "bbox", "polygon", "mask"),
    reader_options=(
        Option(
            name="bbox_convention",
            type="choice",
            choices=BBOX_CONVENTIONS,
            value_aliases={"dm-zero-based": BBOX_XYXY, "voc-one-based": "pixel_inclusive"},
            default=BBOX_XYXY,
            help=_BBOX_HELP,
        ),
        RANGE_SHARD,
    ),
    writer_options=(
        SAVE_IMAGES,
        IMAGE_EXT,
        Option(
            name="tasks",
            type="list",
            choices=TASKS,
            default=(),
            aliases=("task",),
            metavar="TASK[,TASK...]",
            help="tasks to write, from " + ", ".join(TASKS) + "; default: every task the data has",
        ),
        Option(
            name="label_map",
            type="choice",
            choices=LABEL_MAPS,
            default=LABEL_MAP_SOURCE,
            help="'source': the dataset's labels (background first); 'voc': the 21 VOC labels, "
            "then any other label used",
        ),
        Option(
            name="bbox_convention",
            type="choice",
            choices=BBOX_CONVENTIONS,
            value_aliases={"dm-zero-based": BBOX_XYXY, "voc-one-based": "pixel_inclusive"},
            default=BBOX_XYXY,
            aliases=("coordinate_mode",),
            help=_BBOX_HELP,
        ),
        JOBS,
    ),
    aliases={f"voc_{task}": {"tasks": task} for task in TASKS},
)


@hookimpl
def dsformats_formats() -> list[FormatSpec]:
    """Declare voc."""
    return [SPEC]


@hookimpl
def dsformats_detect(path: Path, probe: Probe):
    """Recognise a VOC directory tree."""
    from .detect import detect

    return detect(probe)


@hookimpl
def dsformats_open_reader(format: str, path: Path, options: Mapping[str, Any]):
    """Open a VOC reader."""
    if format != FORMAT:
        return None
    from .reader import VocReader

    return VocReader(path, bbox_convention=options["bbox_convention"], shard=options.get("shard"))


@hookimpl
def dsformats_open_writer(format: str, path: Path, options: Mapping[str, Any]):
    """Open a VOC writer."""
    if format != FORMAT:
        return None
    from .writer import VocWriter

    return VocWriter(
        path,
        save_images=options["save_images"],
        image_ext=options["image_ext"],
        tasks=options["tasks"],
        label_map=options["label_map"],
        bbox_convention=options["bbox_convention"],
        jobs=options["jobs"],
    )


@hookimpl
def dsformats_merge(format: str, parts: list[Path], path: Path, options: Mapping[str, Any], report: Any):
    """Merge the partial VOC trees of a scale-out run."""
    if format != FORMAT:
        return None
    from .merge import merge

    return merge(parts, path, options, report)


@hookimpl
def dsformats_header_losses(format: str, header: Header, options: Mapping[str, Any]):
    """Label parents that are not labels (COCO supercategories), or are parts: a VOC label map cannot hold them."""
    if format != FORMAT:
        return None
    lost = lost_parents(header.categories, options.get("label_map", LABEL_MAP_SOURCE))
    reason = "VOC keeps a parent only as a label whose part this is (parts do not nest)"
    return [("label parent", reason, lost)] if lost else []
