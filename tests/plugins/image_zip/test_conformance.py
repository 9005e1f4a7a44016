"""image_zip passes the conformance kit (dsformats.testing)."""

from __future__ import annotations

from dsformats.testing import FormatConformance


class TestImageZipConformance(FormatConformance):
    format_name = "image_zip"
    # One archive holds no subset: every item reads back in subset "default".
    subsets = ("default",)
