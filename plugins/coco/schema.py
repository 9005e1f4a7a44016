"""coco constants: task names, file-name patterns, JSON keys and the attribute names used in the model."""

from __future__ import annotations

import posixpath

FORMAT = "coco"

#: COCO tasks, in the order files are read and written.
INSTANCES = "instances"
PERSON_KEYPOINTS = "person_keypoints"
CAPTIONS = "captions"
LABELS = "labels"
IMAGE_INFO = "image_info"
PANOPTIC = "panoptic"
STUFF = "stuff"
TASKS = (INSTANCES, PERSON_KEYPOINTS, CAPTIONS, LABELS, IMAGE_INFO, PANOPTIC, STUFF)

#: Tasks whose annotations are shapes (bbox, polygons, RLE) and share the instances parser and writer.
SHAPE_TASKS = (INSTANCES, PERSON_KEYPOINTS, STUFF)
#: Tasks whose file lists categories.
CATEGORY_TASKS = (INSTANCES, PERSON_KEYPOINTS, LABELS, PANOPTIC, STUFF)

#: Format aliases, each presetting the writer's ``tasks`` option.
ALIASES = {
    "coco_instances": INSTANCES,
    "coco_person_keypoints": PERSON_KEYPOINTS,
    "coco_captions": CAPTIONS,
    "coco_labels": LABELS,
    "coco_image_info": IMAGE_INFO,
    "coco_panoptic": PANOPTIC,
    "coco_stuff": STUFF,
}

SEGMENTATION_MODES = ("guess", "polygons", "mask")

# -- layout
IMAGES_DIR = "images"
ANNOTATIONS_DIR = "annotations"
ROBOFLOW_JSON = "_annotations.coco.json"
JSON_SUFFIX = ".json"
PANOPTIC_SUFFIX = ".png"
DEFAULT_IMAGE_EXT = ".jpg"
DEFAULT_SUBSET = "default"

# -- JSON keys
#: Top-level keys with a meaning; any other top-level key is kept verbatim for a coco->coco round trip.
TOP_KEYS = ("licenses", "info", "categories", "images", "annotations")
DEFAULT_LICENSES = [{"name": "", "id": 0, "url": ""}]
DEFAULT_INFO = {"contributor": "", "date_created": "", "description": "", "url": "", "version": "", "year": ""}

#: ``images[]`` keys that map to model fields.
IMAGE_KEYS = ("id", "width", "height", "file_name")
#: Other ``images[]`` keys the writer always emits, with their defaults. The reader keeps a value in the
#: item's attributes only when it differs from the default, so round trips stay exact and quiet.
IMAGE_DEFAULTS = {"license": 0, "flickr_url": "", "coco_url": "", "date_captured": 0}

#: ``annotations[]`` keys of shape tasks that map to model fields (everything else becomes an attribute).
SHAPE_ANN_KEYS = frozenset(
    {"id", "image_id", "category_id", "segmentation", "bbox", "iscrowd", "keypoints", "num_keypoints",
     "score", "attributes"}
)
CAPTION_ANN_KEYS = frozenset({"id", "image_id", "category_id", "caption", "score", "attributes"})
LABEL_ANN_KEYS = frozenset({"id", "image_id", "category_id", "score", "attributes"})
PANOPTIC_ANN_KEYS = frozenset({"image_id", "file_name", "segments_info"})
SEGMENT_KEYS = frozenset({"id", "category_id", "iscrowd", "attributes"})
#: The keys of the common instances annotation (a box, polygons or RLE, its area and crowd flag): one made of
#: these alone becomes shapes whose only attributes are ``area`` and ``is_crowd``.
PLAIN_ANN_KEYS = frozenset({"id", "image_id", "category_id", "segmentation", "bbox", "iscrowd", "area"})

# -- attribute names in the model
#: Item attribute holding the COCO image id.
IMAGE_ID_ATTR = "id"
#: Annotation attribute for ``iscrowd`` (bool), as Datumaro and CVAT name it.
CROWD_ATTR = "is_crowd"
SCORE_ATTR = "score"
#: Annotation attribute for the original ``area``; written back unchanged when present.
AREA_ATTR = "area"
#: Panoptic segment attributes kept from ``segments_info`` and the category.
BBOX_ATTR = "bbox"
ISTHING_ATTR = "isthing"
#: Annotation attribute naming the task file an annotation came from when it is not ``instances``
#: (``stuff``, ``panoptic``, ``person_keypoints``); it routes the annotation back to that file.
TASK_ATTR = "coco_task"

#: Keys of ``Header.infos["coco"]`` (what a coco->coco round trip needs beyond the items).
INFO_KEY = "coco"


def split_task_name(stem: str) -> tuple[str, str] | None:
    """``("instances", "train2017")`` for ``instances_train2017``; None when no task prefix matches."""
    for task in sorted(TASKS, key=len, reverse=True):
        if stem.startswith(task + "_") and len(stem) > len(task) + 1:
            return task, stem[len(task) + 1 :]
    return None


def file_stem(task: str, subset: str) -> str:
    """``instances_train`` for task ``instances`` and subset ``train``."""
    return f"{task}_{subset}"


def split_name(name: str) -> tuple[str, str]:
    """``("a/b/1", ".jpg")`` for ``a/b/1.JPG``: the item id and the lower-case suffix (as ``posixpath.splitext``)."""
    dot, slash = name.rfind("."), name.rfind("/")
    if dot > slash + 1 and name[slash + 1] != ".":  # the common case: a dot after the name's first character
        return name[:dot], name[dot:].lower()
    stem, suffix = posixpath.splitext(name)  # no dot, or leading dots (".hidden", "a/..b.png")
    return stem, suffix.lower()


def file_case_clash(first: str, path: str) -> str:
    """The warning for saved files ``first`` and ``path`` (``<folder>/<name>``) that differ only in case."""
    return f"files {first!r} and {path!r} differ only in case; they collide on a case-insensitive file system"
