"""coco detection: task file names in the known layouts, confirmed by the JSON's top-level keys."""

from __future__ import annotations

from dsformats import Confidence, Detection, Probe

from .schema import ANNOTATIONS_DIR, FORMAT, JSON_SUFFIX, ROBOFLOW_JSON, split_task_name

_SIGNATURE = frozenset({"images", "annotations", "categories"})


def _looks_like_coco(probe: Probe, rel: str) -> bool | None:
    """True when the file's head shows COCO top-level keys, False when it shows others, None if unsure."""
    # COCO files name their keys early: a short head usually settles it (the scan is Python, ~0.1 s per MB)
    keys = probe.json_keys(rel, 1 << 14)
    if keys is not None and _SIGNATURE & set(keys):
        return True
    keys = probe.json_keys(rel)
    if keys is None:
        return False
    return True if _SIGNATURE & set(keys) else None


def _verdict(probe: Probe, files: list[str], layout: str) -> Detection:
    looks = {f: _looks_like_coco(probe, f) for f in files[:20]}
    verified = [f for f, ok in looks.items() if ok]
    rejected = [f for f, ok in looks.items() if ok is False]
    if verified:
        return Detection(FORMAT, Confidence.CERTAIN, f"{layout}: {len(files)} COCO file(s), e.g. {verified[0]}")
    if len(rejected) == len(looks):
        return Detection(FORMAT, Confidence.NONE, f"{layout}: {files[0]} is not a JSON object")
    return Detection(FORMAT, Confidence.LIKELY, f"{layout}: {len(files)} file(s) named like COCO, e.g. {files[0]}")


def _task_files(probe: Probe, pattern: str) -> list[str]:
    found = probe.files(pattern, max_depth=2)
    return [f for f in found if split_task_name(f.rsplit("/", 1)[-1][: -len(JSON_SUFFIX)])]


def detect(probe: Probe) -> Detection:
    """CERTAIN when task files sit in a known layout and their heads show ``images``; LIKELY by names only."""
    if probe.is_file():
        name = probe.root.name
        if not name.lower().endswith(JSON_SUFFIX):
            return Detection(FORMAT, Confidence.NONE, "not a .json file")
        keys = probe.json_keys("")
        if keys is None:
            return Detection(FORMAT, Confidence.NONE, "not a JSON object")
        if "images" in keys and ("annotations" in keys or "categories" in keys):
            named = name == ROBOFLOW_JSON or split_task_name(name[: -len(JSON_SUFFIX)])
            confidence = Confidence.CERTAIN if named else Confidence.LIKELY
            return Detection(FORMAT, confidence, "JSON object with COCO 'images' and 'annotations' keys")
        return Detection(FORMAT, Confidence.NONE, "JSON object without COCO 'images'/'annotations' keys")

    files = _task_files(probe, f"{ANNOTATIONS_DIR}/*{JSON_SUFFIX}")
    if files:
        return _verdict(probe, files, "default or mmdetection layout")
    roboflow = [f for f in probe.files(ROBOFLOW_JSON, max_depth=2) if f.count("/") <= 1]
    if roboflow:
        return _verdict(probe, roboflow, "Roboflow layout")
    files = [f for f in _task_files(probe, f"*{JSON_SUFFIX}") if "/" not in f]
    if files:
        return _verdict(probe, files, "annotations folder")
    return Detection(FORMAT, Confidence.NONE, "no annotations/<task>_<subset>.json or _annotations.coco.json")
