"""coco passes the conformance kit (dsformats.testing)."""

from __future__ import annotations

import attrs

from dsformats import Item
from dsformats.testing import FormatConformance


class TestCocoConformance(FormatConformance):
    format_name = "coco"

    def normalize(self, item: Item) -> Item:
        """COCO gives every object a bbox: a polygon, mask or keypoints annotation reads back with a Bbox in
        its group. Drop those derived boxes; boxes written on their own (group 0 here) are still compared."""
        shaped = {a.group for a in item.annotations if a.group and a.kind != "bbox"}
        kept = [a for a in item.annotations if not (a.kind == "bbox" and a.group in shaped)]
        return attrs.evolve(item, annotations=kept)
