"""Shared fixtures: Datumaro's reference datasets, random images, and plugin-free registries."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from dsformats.testing import dsformats_scheduler  # noqa: F401  (one 2-worker Dask LocalCluster per session)

ROOT = Path(__file__).resolve().parents[1]
DATUMARO_FIXTURES = ROOT.parent / "shared" / "fixtures" / "datumaro"


@pytest.fixture(scope="session")
def datumaro_fixtures() -> Path:
    """``../shared/fixtures/datumaro`` (read-only); skips with a clear message when it is absent."""
    if not DATUMARO_FIXTURES.is_dir():
        pytest.skip(f"Datumaro reference fixtures not found at {DATUMARO_FIXTURES} (../shared is absent)")
    return DATUMARO_FIXTURES


def random_image_bytes(width: int, height: int, suffix: str = ".png", *, seed: int = 0, mode: str = "RGB") -> bytes:
    """Encode an image of random (not constant) pixels; deterministic for a given seed."""
    from PIL import Image

    rng = random.Random(seed)
    channels = len(mode)
    image = Image.frombytes(mode, (width, height), bytes(rng.getrandbits(8) for _ in range(width * height * channels)))
    out = io.BytesIO()
    formats = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".bmp": "BMP", ".tif": "TIFF", ".webp": "WEBP"}
    fmt = formats[suffix.lower()]
    image.save(out, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return out.getvalue()


@pytest.fixture
def make_image():
    """``make_image(w, h, suffix=".png", seed=0)`` -> bytes of a random image."""
    return random_image_bytes
