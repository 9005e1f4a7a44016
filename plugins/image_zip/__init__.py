"""image_zip: images stored inside .zip archives (a file, or a directory of archives).

This module holds only metadata and hook implementations; the reader and writer are imported when used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dsformats import IMAGE_EXT, JOBS, SAVE_IMAGES, FormatSpec, Option, Probe, hookimpl

from .schema import COMPRESSION, COMPRESSION_ALIASES, DEFAULT_NAME, FORMAT

SPEC = FormatSpec(
    name=FORMAT,
    description="images inside .zip archives, at any depth; item id = member path without suffix",
    extensions=(".zip",),
    annotation_kinds=(),
    reader_options=(
        Option(
            name="subset_from",
            type="choice",
            choices=("none", "archive"),
            default="none",
            help="'none': every item in subset 'default'; 'archive': each archive's stem is the subset",
        ),
        Option(
            name="shard",
            default=None,
            metavar="KEY",
            help="read only this archive (its path relative to the input) or ARCHIVE@FIRST:STOP, a range of its "
            "central directory records: a key from the reader's shards()",
        ),
    ),
    writer_options=(
        SAVE_IMAGES,
        IMAGE_EXT,
        JOBS,
        Option(name="name", default=DEFAULT_NAME, metavar="NAME", help="archive file name"),
        Option(
            name="compression",
            type="choice",
            choices=tuple(COMPRESSION),
            value_aliases=COMPRESSION_ALIASES,
            default="ZIP_STORED",
            help="zip compression method (short forms such as 'deflated' accepted)",
        ),
        Option(
            name="subset_dirs",
            type="bool",
            default=False,
            help="store each subset in its own folder (needed when ids repeat across subsets)",
        ),
        Option(
            name="shards_out",
            type="bool",
            default=False,
            help="with --engine dask: one archive per shard, <name stem>-00000.zip, -00001.zip, ... in shard order "
            "(read back as a directory of zips); in a single process: one archive, named as shard 0",
        ),
    ),
)


@hookimpl
def dsformats_formats() -> list[FormatSpec]:
    """Declare image_zip."""
    return [SPEC]


@hookimpl
def dsformats_detect(path: Path, probe: Probe):
    """Recognise a zip of images, or a directory of such zips."""
    from .detect import detect

    return detect(probe)


@hookimpl
def dsformats_open_reader(format: str, path: Path, options: Mapping[str, Any]):
    """Open an image_zip reader."""
    if format != FORMAT:
        return None
    from .reader import ImageZipReader

    return ImageZipReader(path, subset_from=options["subset_from"], shard=options.get("shard"))


@hookimpl
def dsformats_open_writer(format: str, path: Path, options: Mapping[str, Any]):
    """Open an image_zip writer."""
    if format != FORMAT:
        return None
    from .writer import ImageZipWriter

    return ImageZipWriter(
        path,
        name=options["name"],
        compression=options["compression"],
        image_ext=options["image_ext"],
        subset_dirs=options["subset_dirs"],
        jobs=options["jobs"],
        shards_out=options["shards_out"],
    )


@hookimpl
def dsformats_placed_size(format: str, media: Any, options: Mapping[str, Any]):
    """The bytes a stored archive's members take for items with these media (for placed scale-out shards)."""
    if format != FORMAT:
        return None
    from .writer import placed_size

    return placed_size(media, options)


@hookimpl
def dsformats_merge(format: str, parts: list[Path], path: Path, options: Mapping[str, Any], report: Any):
    """Merge the partial archives of a scale-out run into one archive (or publish one per shard)."""
    if format != FORMAT:
        return None
    from .merge import merge

    return merge(parts, path, options, report)
