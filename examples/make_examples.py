"""Build the small example datasets examples/coco and examples/voc from the images in examples/zips.

Run once from the repository root (the outputs are committed; rerun after changing this script):

    python examples/make_examples.py

The annotations are synthetic but cover what the formats hold: per image a person (box + three keypoints
with a skeleton), a car (box + polygon, one object), a tree (an instance mask) and, on the first image,
a caption. Both datasets are written with dsformats itself, so they are also a test of its writers:
COCO keeps everything; VOC cannot hold the keypoints and the caption, and its conversion report says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import dsformats
from dsformats import Bbox, Caption, Categories, Header, Item, KeypointSchema, LabelDef, Mask, Points, Polygon

HERE = Path(__file__).resolve().parent
KEYPOINTS = KeypointSchema(names=("head", "left_hand", "right_hand"), skeleton=((0, 1), (0, 2)))
CATEGORIES = Categories(
    labels=(LabelDef(name="person", id=1), LabelDef(name="car", id=2), LabelDef(name="tree", id=3)),
    keypoints={"person": KEYPOINTS},
)


def tree_mask(width: int, height: int, left: int, ann_id: int) -> Mask:
    """A tree-like blob: a round crown over a trunk, as a bitmap mask of the image's size."""
    import numpy as np

    yy, xx = np.mgrid[:height, :width]
    crown = (xx - (left + 9)) ** 2 + (yy - 20) ** 2 <= 81
    trunk = (xx >= left + 7) & (xx <= left + 10) & (yy > 28) & (yy <= 42)
    bitmap = crown | trunk
    return Mask(loader=lambda: bitmap, label="tree", id=ann_id, group=3)


def annotate(item: Item, index: int) -> Item:
    """The item with synthetic annotations placed by its index (deterministic)."""
    width, height = item.media.size  # type: ignore[union-attr]
    base = index * 10  # annotation ids unique in the dataset, as COCO wants them
    shift = (index * 7) % 20
    px, py = 6 + shift, 10
    person = [
        Bbox(x=px, y=py, w=18, h=40, label="person", id=base + 1, group=1),
        Points(points=(px + 9, py + 5, px + 1, py + 22, px + 17, py + 22), visibility=(2, 2, 1), label="person",
               id=base + 1, group=1),
    ]
    cx = min(width - 34, 44 + shift)
    car = [
        Bbox(x=cx, y=36, w=32, h=16, label="car", id=base + 2, group=2),
        Polygon(points=(cx, 52, cx + 4, 42, cx + 10, 36, cx + 24, 36, cx + 30, 42, cx + 32, 52), label="car",
                id=base + 2, group=2),
    ]
    annotations = [*person, *car, tree_mask(width, height, min(width - 20, 70 - shift), base + 3)]
    if index == 0:
        annotations.append(Caption(caption="a person, a car and a tree", id=base + 4))
    return Item(id=item.id.rsplit("/", 1)[-1], subset=item.subset, media=item.media, annotations=annotations)


def main() -> int:
    header = Header(categories=CATEGORIES)
    for fmt, options in (("coco", {"save_images": True}), ("voc", {"save_images": True})):
        with dsformats.read(HERE / "zips", "image_zip", options={"subset_from": "archive"}) as reader:
            items = (annotate(item, n) for n, item in enumerate(reader.items()))
            report = dsformats.write(items, HERE / fmt, fmt, header=header, options=options, overwrite=True)
        print(f"examples/{fmt}:\n{report.summary()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
