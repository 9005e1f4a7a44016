"""voc passes the conformance kit (dsformats.testing)."""

from __future__ import annotations

from dsformats.testing import FormatConformance


class TestVocConformance(FormatConformance):
    format_name = "voc"
    # VOC has no polygons on disk: the writer rasterises them into the segmentation PNGs, so they read
    # back as masks. The round trip therefore generates masks (one per item, so none overlap) rather than
    # polygons, and compares them bit for bit.
    kinds = ("bbox", "label", "mask")
