"""dsformats: read, write and convert computer-vision datasets through pluggable, streaming formats.

Importing this package is light: no Pillow, numpy or JSON library is loaded until a reader or writer needs
it, and plugins are discovered only when a registry is first needed.
"""

from dsformats.detect import Confidence, Detection, Probe
from dsformats.dispatch import convert, detect, detect_format, list_formats, read, write
from dsformats.errors import (
    AmbiguousFormatError,
    DatasetError,
    DsformatsError,
    DuplicateFormatError,
    DuplicateItemError,
    FormatNotFoundError,
    OptionError,
    OutputExistsError,
    PluginLoadError,
    UnknownFormatError,
    naming,
)
from dsformats.formats import (
    PLUGIN_API_VERSION,
    RANGE_SHARD,
    FormatSpec,
    Reader,
    Shard,
    Writer,
    range_shards,
    shard_range,
)
from dsformats.hookspecs import hookimpl
from dsformats.model import (
    ANNOTATION_KINDS,
    Annotation,
    Bbox,
    Caption,
    Categories,
    DeferredAnnotations,
    Header,
    Item,
    KeypointSchema,
    Label,
    LabelDef,
    Mask,
    Media,
    Points,
    Polygon,
    PolyLine,
    Rle,
    text_flag,
)
from dsformats.options import IMAGE_EXT, JOBS, SAVE_IMAGES, Option
from dsformats.policy import not_stored, stored_kinds, writing_partial
from dsformats.registry import FormatInfo, Registry, build_registry, default_registry
from dsformats.report import Report
from dsformats.verify import verify

__version__ = "0.1.0"

__all__ = [
    "ANNOTATION_KINDS",
    "IMAGE_EXT",
    "JOBS",
    "PLUGIN_API_VERSION",
    "RANGE_SHARD",
    "SAVE_IMAGES",
    "AmbiguousFormatError",
    "Annotation",
    "Bbox",
    "Caption",
    "Categories",
    "Confidence",
    "DatasetError",
    "DeferredAnnotations",
    "Detection",
    "DsformatsError",
    "DuplicateFormatError",
    "DuplicateItemError",
    "FormatInfo",
    "FormatNotFoundError",
    "FormatSpec",
    "Header",
    "Item",
    "KeypointSchema",
    "Label",
    "LabelDef",
    "Mask",
    "Media",
    "Option",
    "OptionError",
    "OutputExistsError",
    "PluginLoadError",
    "Points",
    "PolyLine",
    "Polygon",
    "Probe",
    "Reader",
    "Registry",
    "Report",
    "Rle",
    "Shard",
    "UnknownFormatError",
    "Writer",
    "build_registry",
    "convert",
    "default_registry",
    "detect",
    "detect_format",
    "hookimpl",
    "list_formats",
    "naming",
    "not_stored",
    "range_shards",
    "read",
    "shard_range",
    "stored_kinds",
    "text_flag",
    "verify",
    "write",
    "writing_partial",
]
