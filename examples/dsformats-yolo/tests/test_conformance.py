"""The dsformats conformance kit, run on yolo exactly as on the built-in formats."""

from __future__ import annotations

from dsformats.testing import FormatConformance


class TestYoloConformance(FormatConformance):
    format_name = "yolo"
    # Boxes and polygons are stored normalised by the image size (12 significant digits), so pixel
    # coordinates come back as floats within a tiny fraction of a pixel of the integers written.
    tolerance = 1e-6
