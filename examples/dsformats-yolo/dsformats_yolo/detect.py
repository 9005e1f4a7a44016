"""YOLO detection: a data.yaml with class names, then label files whose lines parse as YOLO lines."""

from __future__ import annotations

import re

from dsformats import Confidence, Detection, Probe

from .schema import FORMAT, YAML_NAMES

_NAMES_KEY = re.compile(rb"^names\s*:", re.M)
_SPLIT_KEY = re.compile(rb"^(train|val|test)\s*:", re.M)
_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def looks_like_label_line(line: str) -> bool:
    """``class cx cy w h`` or ``class x1 y1 x2 y2 x3 y3 ...``, normalised (0..1, with a little slack)."""
    words = line.split()
    if len(words) < 5 or not words[0].isdigit() or not all(_NUMBER.match(w) for w in words[1:]):
        return False
    values = [float(w) for w in words[1:]]
    return (len(values) == 4 or len(values) % 2 == 0) and all(-0.01 <= v <= 1.01 for v in values)


def detect(probe: Probe) -> Detection:
    """CERTAIN: data.yaml with names and splits, and a label file of YOLO lines; LIKELY: the YAML only."""
    if probe.is_file():
        yaml_rel = ""
        if not str(probe.root).lower().endswith((".yaml", ".yml")):
            return Detection(FORMAT, Confidence.NONE, "not a .yaml file")
    else:
        yaml_rel = next((name for name in YAML_NAMES if probe.is_file(name)), "")
        if not yaml_rel:
            return Detection(FORMAT, Confidence.NONE, f"no {YAML_NAMES[0]} in the directory")
    head = probe.head(yaml_rel, 65_536)
    if not _NAMES_KEY.search(head):
        return Detection(FORMAT, Confidence.NONE, f"{yaml_rel or 'the YAML file'} has no 'names' key")
    if not _SPLIT_KEY.search(head):
        return Detection(FORMAT, Confidence.WEAK, "a YAML file with 'names' but no train/val/test split")
    if yaml_rel == "":
        return Detection(FORMAT, Confidence.LIKELY, "a YOLO data.yaml with names and splits")
    labels = probe.files("**/labels/**/*.txt", max_depth=6, limit=5)
    for rel in labels:
        lines = [line for line in probe.head(rel, 4_096).decode("utf-8", "replace").splitlines()[:5] if line.strip()]
        if lines and all(looks_like_label_line(line) for line in lines[:-1] or lines):
            return Detection(FORMAT, Confidence.CERTAIN, f"data.yaml with names and splits; {rel} has YOLO lines")
    return Detection(FORMAT, Confidence.LIKELY, "data.yaml with names and splits (no label line checked)")
