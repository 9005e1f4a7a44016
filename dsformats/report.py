"""The conversion report: what was read, written, copied, re-encoded and lost."""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs

__all__ = ["Report"]

#: How many skipped items :meth:`Report.summary` names (the JSON report has all of them).
SHOWN_SKIPPED = 10


@attrs.define
class Report:
    """Counts filled in by the dispatcher (reading) and the writer (writing).

    ``dropped`` maps an annotation kind (or another thing a format cannot hold, such as ``"attribute"``)
    to ``[count, reason]``. Nothing a target cannot hold may be lost without an entry here.
    """

    source_format: str = ""
    target_format: str = ""
    items_read: Counter[str] = attrs.field(factory=Counter)
    items_written: Counter[str] = attrs.field(factory=Counter)
    media_copied: int = 0
    media_reencoded: int = 0
    annotations_written: Counter[str] = attrs.field(factory=Counter)
    dropped: dict[str, list[Any]] = attrs.field(factory=dict)
    skipped: list[str] = attrs.field(factory=list)
    warnings: list[str] = attrs.field(factory=list)

    def wrote_item(self, subset: str) -> None:
        """Count one item written to ``subset``."""
        self.items_written[subset] += 1

    def wrote_media(self, reencoded: bool) -> None:
        """Count one image written, either copied byte for byte or re-encoded."""
        if reencoded:
            self.media_reencoded += 1
        else:
            self.media_copied += 1

    def wrote_annotation(self, kind: str, count: int = 1) -> None:
        """Count annotations written, per kind."""
        self.annotations_written[kind] += count

    def drop(self, kind: str, reason: str, count: int = 1) -> None:
        """Record ``count`` things of ``kind`` that the target cannot hold, with the reason."""
        entry = self.dropped.setdefault(kind, [0, reason])
        entry[0] += count

    def warn(self, message: str) -> None:
        """Record a warning; repeated identical warnings are kept once."""
        if message not in self.warnings:
            self.warnings.append(message)

    @property
    def lossless(self) -> bool:
        """True when nothing was dropped or skipped."""
        return not self.dropped and not self.skipped

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "source_format": self.source_format,
            "target_format": self.target_format,
            "items_read": dict(self.items_read),
            "items_written": dict(self.items_written),
            "media_copied": self.media_copied,
            "media_reencoded": self.media_reencoded,
            "annotations_written": dict(self.annotations_written),
            "dropped": {k: {"count": c, "reason": r} for k, (c, r) in self.dropped.items()},
            "skipped": list(self.skipped),
            "warnings": list(self.warnings),
        }

    def summary(self) -> str:
        """A human-readable, multi-line summary."""

        def per_subset(counter: Counter[str]) -> str:
            parts = ", ".join(f"{k}: {v:,}" for k, v in sorted(counter.items()))
            return f"{sum(counter.values()):,}" + (f" ({parts})" if parts else "")

        lines = [
            f"items read:    {per_subset(self.items_read)}",
            f"items written: {per_subset(self.items_written)}",
            f"media: {self.media_copied:,} copied byte for byte, {self.media_reencoded:,} re-encoded",
        ]
        if self.annotations_written:
            kinds = ", ".join(f"{k}: {v:,}" for k, v in sorted(self.annotations_written.items()))
            lines.append(f"annotations written: {kinds}")
        for kind, (count, reason) in sorted(self.dropped.items()):
            lines.append(f"DROPPED {kind}: {count:,} ({reason})")
        if self.skipped:
            lines.append(f"SKIPPED items: {len(self.skipped):,}")
            lines.extend(f"  {entry}" for entry in self.skipped[:SHOWN_SKIPPED])
            if len(self.skipped) > SHOWN_SKIPPED:
                lines.append(f"  ... and {len(self.skipped) - SHOWN_SKIPPED:,} more (all in the JSON report)")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)
