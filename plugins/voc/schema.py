"""Pascal VOC constants: directory and file names, the standard labels and palette, tasks and options."""

from __future__ import annotations

import functools
import math
import posixpath
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from dsformats import Categories

FORMAT = "voc"

# -- layout
ANNOTATIONS_DIR = "Annotations"
IMAGES_DIR = "JPEGImages"
CLASS_DIR = "SegmentationClass"
INSTANCE_DIR = "SegmentationObject"
SETS_DIR = "ImageSets"
MAIN_SETS = "Main"
SEGMENTATION_SETS = "Segmentation"
ACTION_SETS = "Action"
LAYOUT_SETS = "Layout"
#: The ImageSets sub-directories whose ``<subset>.txt`` lists are read, in reading order.
SET_DIRS = (MAIN_SETS, SEGMENTATION_SETS, ACTION_SETS, LAYOUT_SETS)
LABELMAP_FILE = "labelmap.txt"
LABELMAP_HEADER = "# label:color_rgb:parts:actions"
XML_SUFFIX = ".xml"
#: ``<annotation>`` children the reader reads (or the writer derives): every other one (``<folder>``,
#: ``<source>``, ``<owner>``, ``<path>``, ...) is kept as an item attribute and written back.
READ_ELEMENTS = frozenset({"filename", "size", "segmented", "object"})
#: The ``<source>`` the writer gives an item without one (Datumaro's too): not kept as an attribute.
DEFAULT_SOURCE = {"database": "Unknown", "annotation": "Unknown", "image": "Unknown"}
MASK_SUFFIX = ".png"
LIST_SUFFIX = ".txt"
DEFAULT_IMAGE_EXT = ".jpg"
DEFAULT_SUBSET = "default"

#: A scale-out shard's record of its class flag files, left beside its partial tree for the merge: whether a
#: single writer of its items would have written them (one line, ``0`` or ``1``: some item had labels, or
#: classification is the only task), then the flag files written, one path a line.
FLAGS_STATE = ".dsformats-voc-flags"
#: A scale-out shard's record for the merge (JSON): ``subsets``, those whose ``ImageSets/Main/<subset>.txt`` it
#: wrote (to tell an id listed in two subsets, whose files one writer writes again, the later item's last, from
#: an item repeated in one subset), and ``labels_added``, the labels it added as "used but not declared" (each
#: changes the palette of the masks written after it, where one writer may have added it earlier).
SHARD_STATE = ".dsformats-voc-shard"


def case_clash(first: str, item_id: str) -> str:
    """The warning for item ids ``first`` and ``item_id`` that differ only in case."""
    return (f"item ids {first!r} and {item_id!r} differ only in case; their files collide on a case-insensitive "
            "file system")

# -- tasks (writer option ``tasks``)
CLASSIFICATION = "classification"
DETECTION = "detection"
SEGMENTATION = "segmentation"
LAYOUT = "layout"
ACTION = "action"
TASKS = (CLASSIFICATION, DETECTION, SEGMENTATION, LAYOUT, ACTION)

# -- option values
BBOX_XYXY = "xyxy"  #: x = xmin, w = xmax - xmin (Datumaro and most converters)
BBOX_PIXEL_INCLUSIVE = "pixel_inclusive"  #: 1-based inclusive pixels: x = xmin - 1, w = xmax - xmin + 1
BBOX_CONVENTIONS = (BBOX_XYXY, BBOX_PIXEL_INCLUSIVE)
LABEL_MAP_SOURCE = "source"
LABEL_MAP_VOC = "voc"
LABEL_MAPS = (LABEL_MAP_SOURCE, LABEL_MAP_VOC)

# -- labels
BACKGROUND = "background"
#: The 21 standard VOC labels; the index is the class value in SegmentationClass PNGs.
VOC_LABELS = (
    BACKGROUND,
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
#: Datumaro's 22nd label for the void value; recognised in class flag files (``ignored_<subset>.txt``).
DATUMARO_IGNORED = "ignored"
PERSON = "person"
VOC_PARTS = ("head", "hand", "foot")
VOC_ACTIONS = (
    "other",
    "jumping",
    "phoning",
    "playinginstrument",
    "reading",
    "ridingbike",
    "ridinghorse",
    "running",
    "takingphoto",
    "usingcomputer",
    "walking",
)
VOID = 255  #: mask value for void / object boundaries; never a label or an instance
MAX_INSTANCES = 254  #: instance values 1..254 (255 is void)
#: Attribute marking the unlabelled Mask that carries a tree's void (255) pixels, so VOC -> VOC keeps them.
VOID_ATTR = "voc_void"

#: Object fields stored as elements of ``<object>`` (not in ``<attributes>`` or ``<actions>``).
FLAG_FIELDS = ("truncated", "occluded", "difficult")
POSE = "pose"
POINT = "point"
OBJECT_FIELDS = (POSE, *FLAG_FIELDS, POINT)
#: ``<object>`` children the reader reads: every other one is kept as an attribute of the object's box.
READ_OBJECT_CHILDREN = frozenset({"name", "bndbox", "actions", "attributes", "part", *OBJECT_FIELDS})

_XML_NAME = re.compile(r"^[A-Za-z_][\w.-]*$")


def is_xml_name(name: str) -> bool:
    """True when ``name`` can be an element tag (``<actions>`` children are named after actions)."""
    return bool(_XML_NAME.match(name)) and not name.lower().startswith("xml")


def voc_colormap(count: int = 256) -> list[tuple[int, int, int]]:
    """The standard PASCAL VOC palette (bit-interleaved); entry 255 is (224, 224, 192), the void colour."""
    return list(_colormap(count))  # a fresh list: callers may change entries


@functools.lru_cache(maxsize=8)
def _colormap(count: int) -> tuple[tuple[int, int, int], ...]:
    colors = []
    for index in range(count):
        r = g = b = 0
        value = index
        for shift in range(7, -1, -1):
            r |= ((value >> 0) & 1) << shift
            g |= ((value >> 1) & 1) << shift
            b |= ((value >> 2) & 1) << shift
            value >>= 3
        colors.append((r, g, b))
    return tuple(colors)


VOID_COLOR = (224, 224, 192)


# -- labelmap.txt: "name:r,g,b:part1,part2:action1,action2" per line
class LabelSpec:
    """One line of ``labelmap.txt``: a label, its colour (or None), its parts and its actions."""

    __slots__ = ("name", "color", "parts", "actions")

    def __init__(
        self,
        name: str,
        color: tuple[int, int, int] | None = None,
        parts: tuple[str, ...] = (),
        actions: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.color = color
        self.parts = tuple(parts)
        self.actions = tuple(actions)

    def __repr__(self) -> str:
        return f"LabelSpec({self.name!r}, {self.color!r}, {self.parts!r}, {self.actions!r})"


def voc_label_specs() -> list[LabelSpec]:
    """The 21 standard labels with the VOC colours; ``person`` has the parts and actions."""
    colors = voc_colormap(len(VOC_LABELS))
    return [
        LabelSpec(name, colors[i], *((VOC_PARTS, VOC_ACTIONS) if name == PERSON else ((), ())))
        for i, name in enumerate(VOC_LABELS)
    ]


def _split_list(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def parse_labelmap(text: str, location: str) -> list[LabelSpec]:
    """Parse ``labelmap.txt``; ValueError messages start with ``<location>:<line>``."""
    specs: list[LabelSpec] = []
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(":")
        if len(fields) != 4:
            raise ValueError(
                f"{location}:{number}: expected 4 ':'-separated fields (name:r,g,b:parts:actions), got {len(fields)}"
            )
        name, color_text, parts, actions = fields
        if not name:
            raise ValueError(f"{location}:{number}: empty label name")
        if name in seen:
            raise ValueError(f"{location}:{number}: label {name!r} is defined twice")
        seen.add(name)
        color = None
        if color_text.strip():
            try:
                values = tuple(int(c) for c in color_text.split(","))
            except ValueError:
                values = ()
            if len(values) != 3 or not all(0 <= v <= 255 for v in values):
                raise ValueError(
                    f"{location}:{number}: label {name!r} has colour {color_text!r}; expected 'r,g,b' "
                    "with values 0..255"
                )
            color = values
        specs.append(LabelSpec(name, color, _split_list(parts), _split_list(actions)))  # type: ignore[arg-type]
    return specs


def format_labelmap(specs: list[LabelSpec]) -> str:
    """The text of ``labelmap.txt`` for ``specs`` (Datumaro's layout, with its header comment)."""
    lines = [LABELMAP_HEADER]
    for spec in specs:
        color = ",".join(str(c) for c in spec.color) if spec.color else ""
        lines.append(f"{spec.name}:{color}:{','.join(spec.parts)}:{','.join(spec.actions)}")
    return "\n".join(lines) + "\n"


#: ``10 ** -k`` for the decimal places ``k`` that :func:`add` reads off ``repr`` without rounding.
_TENTHS = tuple(10.0**-k for k in range(13))


def add(a: int | float, b: int | float) -> int | float:
    """``a + b`` without binary noise: ``0.1 + 0.2`` gives ``0.3`` (the shortest value within 4 ulp)."""
    total = a + b
    if type(total) is float:
        if total - total != 0.0:  # inf or nan
            return total
        # A sum whose shortest repr has k decimal places, with 10**-k far above its ulp, is already the
        # answer: round(total, k) == total, and no shorter rounding is within 4 ulp of it (it would differ
        # from the repr's decimal by at least 10**-k). Only sums with binary noise take the loop.
        text = repr(total)
        places = len(text) - text.find(".") - 1
        if places <= 12 and "e" not in text and _TENTHS[places] > 8 * math.ulp(total):
            return total
    elif isinstance(total, int) or not math.isfinite(total):
        return total
    tolerance = 4 * math.ulp(total)
    for digits in range(0, 16):
        rounded = round(total, digits)
        if abs(rounded - total) <= tolerance:
            return rounded
    return total


def part_parents(categories: Categories) -> dict[str, str]:
    """The labels a VOC label map writes as parts, with their parents: those whose parent is a label that has
    no label parent of its own (VOC parts do not nest)."""
    names = set(categories.label_names)
    linked = {d.name: d.parent for d in categories.labels if d.parent and d.parent != d.name and d.parent in names}
    return {name: parent for name, parent in linked.items() if parent not in linked}


def lost_parents(categories: Categories, label_map: str = LABEL_MAP_SOURCE) -> int:
    """How many labels have a parent a VOC label map cannot keep: one that is not a label (a COCO
    supercategory, say), or a label that is itself a part (with ``--label-map voc``, VOC's own parts are).
    Any other parent makes the label its part."""
    parts = part_parents(categories)
    nested = frozenset(VOC_PARTS) if label_map == LABEL_MAP_VOC else frozenset()
    return sum(
        1 for d in categories.labels
        if d.parent and d.parent != d.name and (d.name not in parts or parts[d.name] in nested)
    )


def default_folder(item_id: str) -> str:
    """The ``<folder>`` the writer gives an item without one: the images folder holding its file."""
    return posixpath.dirname(f"{IMAGES_DIR}/{item_id}")


def kept_elements(extras: dict[str, Any], item_id: str) -> dict[str, Any]:
    """The item attributes of an XML's other ``<annotation>`` children: all but the ``<folder>`` and
    ``<source>`` that the writer would write anyway (so that what it writes reads back as it was), an empty
    ``<folder>``, and the one Datumaro derives from the id (``2007`` for ``2007_000001``)."""
    kept = dict(extras)
    folder = kept.get("folder")
    datumaro = item_id.partition("_")[0] if "_" in item_id else ""
    if folder is not None and folder in ("", default_folder(item_id), datumaro):
        del kept["folder"]
    if kept.get("source") == DEFAULT_SOURCE:
        del kept["source"]
    return kept
