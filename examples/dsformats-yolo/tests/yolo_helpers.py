"""Helpers for the yolo tests: small images and hand-written YOLO datasets."""

from __future__ import annotations

import io
from pathlib import Path


def png(width: int, height: int, seed: int = 0) -> bytes:
    """A PNG of non-constant pixels."""
    from PIL import Image

    image = Image.frombytes("RGB", (width, height), bytes((seed + n * 7) % 256 for n in range(width * height * 3)))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def make_dataset(root: Path, yaml: str, files: dict[str, bytes | str]) -> Path:
    """Write ``data.yaml`` and ``files`` (relative path -> bytes or text) under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.yaml").write_text(yaml)
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            target.write_text(data)
        else:
            target.write_bytes(data)
    return root
