"""VOC detection: ``Annotations/*.xml`` files whose root is ``<annotation>``, or the ImageSets/JPEGImages tree."""

from __future__ import annotations

from dsformats import Confidence, Detection, Probe

from .schema import ANNOTATIONS_DIR, CLASS_DIR, FORMAT, IMAGES_DIR, INSTANCE_DIR, SET_DIRS, SETS_DIR

_SAMPLE = 5


def detect(probe: Probe) -> Detection:
    """CERTAIN for VOC XML annotations, LIKELY for ImageSets lists beside VOC data folders, NONE otherwise."""
    if not probe.is_dir():
        return Detection(FORMAT, Confidence.NONE, "a VOC dataset is a directory")
    # the pattern is anchored at the root: Annotations/<file> is two levels deep, so look no deeper
    xmls = probe.files(f"{ANNOTATIONS_DIR}/*.xml", max_depth=2, limit=_SAMPLE)
    if xmls:
        roots = {rel: probe.xml_root(rel) for rel in xmls}
        wrong = [f"{rel} (<{tag}>)" for rel, tag in roots.items() if tag != "annotation"]
        if not wrong:
            return Detection(FORMAT, Confidence.CERTAIN, f"{ANNOTATIONS_DIR}/*.xml with <annotation> roots")
        return Detection(FORMAT, Confidence.NONE, f"XML files that are not VOC annotations: {wrong[0]}")
    lists = [rel for task_dir in SET_DIRS for rel in probe.files(f"{SETS_DIR}/{task_dir}/*.txt", max_depth=3, limit=1)]
    data = [d for d in (IMAGES_DIR, CLASS_DIR, INSTANCE_DIR) if probe.is_dir(d)]
    if lists and data:
        return Detection(FORMAT, Confidence.LIKELY, f"{SETS_DIR} lists beside {', '.join(data)}")
    if lists:
        return Detection(FORMAT, Confidence.WEAK, f"{SETS_DIR} lists without {ANNOTATIONS_DIR} or images")
    if probe.is_dir(CLASS_DIR) and probe.files(f"{CLASS_DIR}/*.png", max_depth=2, limit=1):
        return Detection(FORMAT, Confidence.LIKELY, f"{CLASS_DIR}/*.png masks")
    return Detection(FORMAT, Confidence.NONE, f"no {ANNOTATIONS_DIR}/*.xml and no {SETS_DIR} lists")
