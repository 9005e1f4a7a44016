"""Generated datasets for the conformance kit: random ids, subsets, labels, every kind, random images."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence

from dsformats.model import (
    ANNOTATION_KINDS,
    Annotation,
    Bbox,
    Caption,
    Categories,
    Header,
    Item,
    KeypointSchema,
    Label,
    LabelDef,
    Mask,
    Media,
    Points,
    Polygon,
    PolyLine,
)

#: Label names used by generated items: plain, with a digit and with a space.
DEFAULT_LABELS = ("cat", "dog2", "traffic light")
#: The keypoint schema generated ``points`` annotations use (label ``person``).
KEYPOINT_LABEL = "person"
KEYPOINT_NAMES = ("nose", "left_eye", "right_eye")

Normalizer = Callable[[Item], Item]
#: Modules a plugin's entry-point module must not import (the metadata has to load without them).
HEAVY_MODULES = ("PIL", "numpy", "orjson", "json", "defusedxml", "xml.etree", "pycocotools")


def random_image(rng: random.Random, width: int, height: int, suffix: str) -> bytes:
    """Encode an RGB image of random (not constant) pixels for ``suffix`` (``.png``, ``.jpg``, ...)."""
    import io

    from PIL import Image

    pixels = bytes(rng.getrandbits(8) for _ in range(width * height * 3))
    image = Image.frombytes("RGB", (width, height), pixels)
    Image.init()
    out = io.BytesIO()
    image.save(out, format=Image.registered_extensions()[suffix.lower()])
    return out.getvalue()


def _random_id(rng: random.Random, taken: set[str]) -> str:
    words = ("img", "frame", "photo", "shot", "x")
    while True:
        stem = f"{rng.choice(words)}{rng.randrange(10_000)}"
        depth = rng.choice((0, 0, 1, 2))
        parts = [f"d{rng.randrange(100)}" for _ in range(depth)] + [stem]
        item_id = "/".join(parts)
        # Unique across subsets and case-insensitively, so that every format can hold the ids.
        if item_id.lower() not in taken and not any(t.startswith(item_id + "/") for t in taken):
            taken.add(item_id.lower())
            return item_id


def _box(rng: random.Random, width: int, height: int) -> tuple[int, int, int, int]:
    x, y = rng.randrange(0, width - 2), rng.randrange(0, height - 2)
    return x, y, rng.randrange(1, width - x), rng.randrange(1, height - y)


def _polygon(rng: random.Random, width: int, height: int, vertices: int) -> list[int]:
    x, y, w, h = _box(rng, width, height)
    # Corners of a box, with extra vertices on its top edge: never self-intersecting, never degenerate.
    w, h = max(w, 2), max(h, 2)
    x, y = min(x, width - 1 - w), min(y, height - 1 - h)
    top = sorted(rng.sample(range(x + 1, x + w), min(vertices - 3, w - 1))) if vertices > 3 else []
    points = [x, y, *[c for t in top for c in (t, y)], x + w, y, x + w, y + h, x, y + h]
    return points if len(points) >= 6 else [x, y, x + w, y, x, y + h]


def _annotations(rng: random.Random, kinds: Iterable[str], labels: Sequence[str], size: tuple[int, int]) -> list:
    width, height = size
    anns: list[Annotation] = []
    for kind in sorted(kinds):
        if kind == "label":  # image-level labels are a set: no label twice on one image
            anns.extend(Label(label=name) for name in rng.sample(list(labels), rng.randrange(0, min(3, len(labels)))))
            continue
        for _ in range(rng.randrange(0, 3)):
            label = rng.choice(labels)
            if kind == "bbox":
                x, y, w, h = _box(rng, width, height)
                anns.append(Bbox(x=x, y=y, w=w, h=h, label=label))
            elif kind == "polygon":
                anns.append(Polygon(points=_polygon(rng, width, height, rng.randrange(3, 6)), label=label))
            elif kind == "polyline":
                coords = [c for _ in range(rng.randrange(2, 5)) for c in (rng.randrange(width), rng.randrange(height))]
                anns.append(PolyLine(points=coords, label=label))
            elif kind == "points":
                visibility = [rng.choice((1, 2, 2)) for _ in KEYPOINT_NAMES]
                coords = [c for _ in KEYPOINT_NAMES for c in (rng.randrange(width), rng.randrange(height))]
                anns.append(Points(points=coords, visibility=visibility, label=KEYPOINT_LABEL))
            elif kind == "caption":
                anns.append(Caption(caption=f"a {label} number {rng.randrange(1000)}"))
            elif kind == "mask" and not any(isinstance(a, Mask) for a in anns):
                anns.append(_mask(rng, width, height, label))
    # Labels of one kind repeat in a stable order; shuffle so that formats are not tested in kind order only.
    rng.shuffle(anns)
    return anns


def _mask(rng: random.Random, width: int, height: int, label: str) -> Mask:
    import numpy as np

    x, y, w, h = _box(rng, width, height)
    bitmap = np.zeros((height, width), dtype=bool)
    bitmap[y : y + h, x : x + w] = True
    return Mask(loader=lambda: bitmap.copy(), label=label)


def generate_items(
    kinds: Iterable[str] = (),
    *,
    seed: int = 0,
    count: int = 6,
    subsets: Sequence[str] = ("train", "val"),
    labels: Sequence[str] = DEFAULT_LABELS,
    image_suffixes: Sequence[str] = (".png", ".jpg"),
) -> tuple[Header, list[Item]]:
    """A header and ``count`` items with random ids (some nested), subsets, images and annotations.

    Only annotations of ``kinds`` are generated (one mask per item at most). Images are small, of random
    sizes and random pixels, held in memory; ``items[i].media.read_bytes()`` gives their bytes.
    Coordinates are integer pixels inside the image. Deterministic for a given ``seed``.
    """
    rng = random.Random(seed)
    kinds = frozenset(kinds)
    unknown = kinds - ANNOTATION_KINDS
    if unknown:
        raise ValueError(f"unknown annotation kinds: {sorted(unknown)}")
    taken: set[str] = set()
    items = []
    for n in range(count):
        size = (rng.randrange(12, 33), rng.randrange(12, 33))
        suffix = image_suffixes[n % len(image_suffixes)]
        data = random_image(rng, *size, suffix)
        item_id = _random_id(rng, taken)
        media = Media.from_bytes(data, suffix, name=f"<generated {item_id}{suffix}>")
        items.append(
            Item(
                id=item_id,
                subset=subsets[n % len(subsets)],
                media=media,
                annotations=_annotations(rng, kinds, labels, size),
            )
        )
    keypoints = {KEYPOINT_LABEL: KeypointSchema(names=KEYPOINT_NAMES, skeleton=[(0, 1), (0, 2)])}
    label_defs = [LabelDef(name=name) for name in labels]
    if "points" in kinds and KEYPOINT_LABEL not in labels:
        label_defs.append(LabelDef(name=KEYPOINT_LABEL))
    categories = Categories(
        labels=label_defs if kinds - {"caption"} else (), keypoints=keypoints if "points" in kinds else {}
    )
    header = Header(categories=categories, subsets=sorted(set(subsets[: len(items)])), size_hint=len(items))
    return header, items
