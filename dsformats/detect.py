"""Format detection: confidence levels, detection records and the bounded, read-only probe."""

from __future__ import annotations

import enum
import heapq
import itertools
import os
import re
import zipfile
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Confidence", "Detection", "Probe", "best_detections"]


class Confidence(enum.IntEnum):
    """How sure a plugin is that a path holds its format."""

    NONE = 0  #: not this format (reported by ``detect --explain``)
    WEAK = 10  #: loosely defined evidence that other formats could share
    LIKELY = 20  #: structure matches; content not fully verified
    CERTAIN = 30  #: a content-verified signature


@attrs.frozen
class Detection:
    """One plugin's verdict about one format at a path, with a reason meant for people."""

    format: str
    confidence: Confidence = attrs.field(converter=Confidence)
    reason: str = ""


def best_detections(detections: list[Detection]) -> list[Detection]:
    """The detections at the highest confidence above NONE (several means ambiguous)."""
    positive = [d for d in detections if d.confidence > Confidence.NONE]
    if not positive:
        return []
    top = max(d.confidence for d in positive)
    return [d for d in positive if d.confidence == top]


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    table = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(table.get(p, re.escape(p)) for p in parts) + r"\Z", re.I)


_XML_TAG = re.compile(rb"<([A-Za-z_][\w.:-]*)")
_XML_SKIP = re.compile(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>|\s+", re.S)


class Probe:
    """Bounded, read-only helpers for detectors, rooted at a file or a directory.

    Every helper takes paths relative to the root (``""`` is the root itself), refuses paths that leave
    it, reads at most a bounded number of bytes or entries, and never follows a symlink out of the root.
    The root is a local path or a UPath (inside an archive, on object storage); ``root`` keeps its type.
    """

    def __init__(self, root: str | os.PathLike[str] | Any, *, max_entries: int = 10_000) -> None:
        self.local = not (not isinstance(root, (str, os.PathLike)) and hasattr(root, "fs"))
        self.root: Any = Path(root) if self.local else root
        self.max_entries = max_entries
        self._real_root = os.path.realpath(self.root) if self.local else ""

    # -- paths
    def path(self, rel: str = "") -> Any:
        """The path of ``rel`` (a ``Path`` or UPath like the root); raises ValueError when it would leave the root."""
        if not self.local:
            if not rel:
                return self.root
            from dsformats.errors import DatasetError
            from dsformats.fileaccess import safe_relative

            try:
                return self.root.joinpath(*safe_relative(rel).split("/"))
            except DatasetError:
                raise ValueError(f"{rel!r} is outside the probed root") from None
        target = self.root / rel if rel else self.root
        real = os.path.realpath(target)
        if real != self._real_root and not real.startswith(self._real_root.rstrip(os.sep) + os.sep):
            raise ValueError(f"{rel!r} is outside the probed root")
        return target

    def is_dir(self, rel: str = "") -> bool:
        """True when ``rel`` is a directory inside the root."""
        try:
            return self.path(rel).is_dir()
        except (OSError, ValueError):
            return False

    def is_file(self, rel: str = "") -> bool:
        """True when ``rel`` is a regular file inside the root."""
        try:
            return self.path(rel).is_file()
        except (OSError, ValueError):
            return False

    def files(self, pattern: str = "*", *, max_depth: int = 3, limit: int | None = None) -> list[str]:
        """Relative POSIX paths of files under the root whose *relative path* matches ``pattern``.

        ``pattern`` is a glob matched case-insensitively (``*.xml``, ``Annotations/*.xml``, ``**/x.json``):
        ``*`` and ``?`` stay within one path component, ``**`` crosses them. A pattern without ``/``
        matches the file name at any depth. Walks at most ``max_depth`` levels and
        ``max_entries`` entries; returns at most ``limit`` results, sorted.
        """
        if not self.is_dir():
            return []
        limit = limit or self.max_entries
        rx = _glob_regex(pattern)
        by_name = "/" not in pattern
        if not self.local:
            from dsformats.errors import DatasetError
            from dsformats.fileaccess import walk_files

            try:
                names = list(itertools.islice(walk_files(self.root, max_depth=max_depth), self.max_entries))
            except DatasetError:
                return []
            matched = [rel for rel in names if rx.match(rel.rsplit("/", 1)[-1] if by_name else rel)]
            return sorted(matched[:limit])
        found: list[str] = []
        seen = 0
        stack: list[tuple[Path, str, int]] = [(self.root, "", 0)]
        while stack and len(found) < limit and seen < self.max_entries:
            folder, prefix, depth = stack.pop()
            try:
                with os.scandir(folder) as listing:  # the first names only: a huge folder is never held
                    entries = heapq.nsmallest(self.max_entries - seen, listing, key=lambda e: e.name)
            except OSError:
                continue
            subdirs = []
            for entry in entries:
                seen += 1
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if depth + 1 < max_depth:
                        subdirs.append((Path(entry.path), rel + "/", depth + 1))
                elif entry.is_file() and rx.match(entry.name if by_name else rel):
                    if not entry.is_symlink() or self.is_file(rel):
                        found.append(rel)
            stack.extend(reversed(subdirs))
        return sorted(found[:limit])

    # -- content
    def head(self, rel: str = "", size: int = 65_536) -> bytes:
        """The first ``size`` bytes of a file (empty when it is not a readable file)."""
        try:
            target = self.path(rel)
            with open(target, "rb") if self.local else target.open("rb") as stream:
                return stream.read(size)
        except (OSError, ValueError, EOFError, RuntimeError, zipfile.BadZipFile):
            return b""

    def zip_names(self, rel: str = "", limit: int = 1_000) -> list[str] | None:
        """Up to ``limit`` member names of a zip archive, or None when it is not a readable zip."""
        try:
            path = self.path(rel)
            if self.head(rel, 4) not in (b"PK\x03\x04", b"PK\x05\x06"):
                return None
            if not self.local and path.protocol in ("dszip", "dstar", "zip", "tar"):
                return None  # nested archives are never opened
            from dsformats.zipstream import StreamingZipReader  # parses the first entries only

            with open(path, "rb") if self.local else path.open("rb") as stream, StreamingZipReader(stream) as archive:
                return [info.filename for info in itertools.islice(archive.iter_infos(), limit)]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile):
            return None

    def xml_root(self, rel: str) -> str | None:
        """The root element's tag of an XML file, from its head only (no entity expansion)."""
        data = self.head(rel, 8_192)
        pos = 0
        if data.startswith(b"\xef\xbb\xbf"):
            pos = 3
        while True:
            skipped = _XML_SKIP.match(data, pos)
            if not skipped or skipped.end() == pos:
                break
            pos = skipped.end()
        match = _XML_TAG.match(data, pos)
        return match.group(1).decode("utf-8", "replace") if match else None

    def json_keys(self, rel: str = "", max_bytes: int = 1 << 20) -> list[str] | None:
        """Top-level keys of a JSON object seen in its first ``max_bytes`` bytes; None when not an object.

        The scan skips nested values without parsing them, so a huge file costs at most ``max_bytes``.
        """
        data = self.head(rel, max_bytes)
        return scan_json_keys(data)


_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:,]')
_WS = b" \t\r\n"


def scan_json_keys(data: bytes) -> list[str] | None:
    """Top-level keys of the JSON object that ``data`` (possibly truncated) starts with."""
    text = data.lstrip(_WS)
    if text.startswith(b"\xef\xbb\xbf"):
        text = text[3:].lstrip(_WS)
    if not text.startswith(b"{"):
        return None
    keys: list[str] = []
    depth = 0
    expect_key = False
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in (b"{", b"["):
            depth += 1
            expect_key = depth == 1 and token == b"{"
        elif token in (b"}", b"]"):
            depth -= 1
            if depth == 0:
                break
        elif token == b",":
            expect_key = depth == 1
        elif token == b":":
            expect_key = False
        elif expect_key and depth == 1:
            try:
                keys.append(token[1:-1].decode("utf-8"))
            except UnicodeDecodeError:
                return None
            expect_key = False
    return keys
