"""YOLO on-disk names, label lines, and the small subset of YAML that ``data.yaml`` uses.

Ultralytics writes ``data.yaml`` with top-level ``key: value`` pairs (``path``, ``train``, ``val``,
``test``, ``nc``), and ``names`` as a block mapping (``0: person``), a block list (``- person``) or a flow
list (``[person, car]``). That subset is parsed here by hand, so the plugin needs no YAML library; anything
else (anchors, multi-line strings, nested mappings besides ``names``) is refused with the line number.
"""

from __future__ import annotations

import re
from typing import Any

from dsformats import DatasetError

FORMAT = "yolo"
DATA_YAML = "data.yaml"
YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml")
IMAGES_DIR = "images"
LABELS_DIR = "labels"
LABEL_SUFFIX = ".txt"
#: The split keys Ultralytics knows; other top-level keys are splits too when they name a directory.
SPLIT_KEYS = ("train", "val", "test")
#: Top-level keys that are never splits.
RESERVED_KEYS = frozenset(
    {"path", "names", "nc", "download", "kpt_shape", "flip_idx", "channels", "yaml_file", "roboflow", "license"}
)
#: Significant digits of the normalised coordinates written (1e-12 relative: far below a pixel).
DIGITS = 12

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_ ./()+-]*$")
_SPECIAL = frozenset({"true", "false", "yes", "no", "on", "off", "null", "none", "~", ""})
_INT = re.compile(r"^[-+]?\d+$")
_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


def number(value: float) -> str:
    """A normalised coordinate as written in a label line."""
    return f"{value:.{DIGITS}g}"


# ------------------------------------------------------------------------------------------- YAML


def _strip_comment(line: str) -> str:
    quote = None
    for pos, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (pos == 0 or line[pos - 1] in " \t"):
            return line[:pos]
    return line


def scalar(text: str, where: str = "data.yaml") -> Any:
    """A YAML scalar: quoted string, int, float, bool, null or plain string."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        import json  # here, not at module level: listing formats must stay light

        try:
            return json.loads(text)
        except ValueError:
            raise DatasetError(f"unsupported double-quoted string {text}", where) from None
    if text.lower() in ("null", "~", ""):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    if text[:1] in "&*!|>{[":
        raise DatasetError(f"unsupported YAML syntax {text!r} (dsformats-yolo reads Ultralytics' subset)", where)
    return text


def _split_flow(body: str) -> list[str]:
    parts, quote, start = [], None, 0
    for pos, char in enumerate(body):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == ",":
            parts.append(body[start:pos])
            start = pos + 1
    parts.append(body[start:])
    return [p.strip() for p in parts if p.strip()]


def _flow(text: str, where: str) -> Any:
    if text.startswith("[") and text.endswith("]"):
        return [scalar(p, where) for p in _split_flow(text[1:-1])]
    if text.startswith("{") and text.endswith("}"):
        pairs = [p.partition(":") for p in _split_flow(text[1:-1])]
        return {scalar(k, where): scalar(v, where) for k, _, v in pairs}
    return scalar(text, where)


def parse_yaml(text: str, location: str = DATA_YAML) -> dict[str, Any]:
    """Parse Ultralytics' ``data.yaml`` subset into a dict (``names`` as a list or an int-keyed dict)."""
    result: dict[str, Any] = {}
    block: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{location}:{lineno}"
        line = _strip_comment(raw).rstrip()
        if not line.strip() or line.strip() in ("---", "..."):
            continue
        body = line.strip()
        if line[0] not in " \t-":
            key, sep, value = body.partition(":")
            if not sep:
                raise DatasetError("expected 'key: value'", where)
            key = str(scalar(key, where))
            value = value.strip()
            result[key] = _flow(value, where) if value else None
            block = key if not value else None
            continue
        if block is None:
            raise DatasetError("unexpected indented line", where)
        if body.startswith("-"):
            entries = result[block] if isinstance(result[block], list) else []
            if result[block] not in (None, entries):
                raise DatasetError(f"{block!r} mixes a list and a mapping", where)
            entries.append(scalar(body[1:], where))
            result[block] = entries
        else:
            key, sep, value = body.partition(":")
            entries = result[block] if isinstance(result[block], dict) else {}
            if not sep or result[block] not in (None, entries):
                raise DatasetError(f"expected '<key>: <value>' under {block!r}", where)
            entries[scalar(key, where)] = scalar(value, where)
            result[block] = entries
    return result


def quote(value: str) -> str:
    """``value`` as a YAML scalar: plain when unambiguous, else double-quoted (JSON escapes)."""
    import json

    plain = _PLAIN.match(value) and value.lower() not in _SPECIAL and value == value.strip()
    return value if plain and not _FLOAT.match(value) else json.dumps(value, ensure_ascii=False)


def dump_yaml(splits: dict[str, str], names: list[str]) -> str:
    """``data.yaml`` as Ultralytics writes it: split paths relative to the file (sorted by split), ``nc``,
    ``names`` by index."""
    lines = ["# YOLO dataset written by dsformats-yolo; paths are relative to this file"]
    lines += [f"{quote(key)}: {quote(value)}" for key, value in sorted(splits.items())]
    lines.append(f"nc: {len(names)}")
    lines.append("names:" if names else "names: []")
    lines += [f"  {index}: {quote(name)}" for index, name in enumerate(names)]
    return "\n".join(lines) + "\n"


def class_names(data: dict[str, Any], location: str) -> dict[int, str]:
    """``{class index: name}`` from a parsed ``data.yaml``; checks ``nc`` when given."""
    names = data.get("names")
    if isinstance(names, list):
        table = {index: str(name) for index, name in enumerate(names)}
    elif isinstance(names, dict):
        try:
            table = {int(index): str(name) for index, name in names.items()}
        except (TypeError, ValueError):
            raise DatasetError("'names' keys must be class indices", location) from None
    else:
        raise DatasetError("no 'names' list or mapping of class names", location)
    if len(set(table.values())) != len(table):
        raise DatasetError("'names' lists a class name twice", location)
    nc = data.get("nc")
    if nc is not None and nc != len(table):
        raise DatasetError(f"'nc' is {nc} but 'names' has {len(table)} entries", location)
    return dict(sorted(table.items()))
