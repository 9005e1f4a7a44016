"""Property-based tests (hypothesis) of the built-in formats.

1. Any dataset built from the model (random nested and unicode ids, subsets, labels, every annotation kind
   the format supports, random small images) round-trips through the format's writer and reader.
2. Bit flips and truncations of valid zip, XML, JSON and PNG files make the readers (and decoding) raise
   only dsformats' own errors: never KeyError, IndexError, ValueError, RecursionError and the like.

CI runs the bounded ``ci`` profile (deterministic, a few hundred examples in total). Set
``DSFORMATS_FUZZ_PROFILE=long`` for thousands of random examples per property.
"""

from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsformats
from dsformats import DsformatsError, Header, Item, Media
from dsformats.testing import DEFAULT_LABELS, assert_round_trip, generate_items, random_image
from dsformats.testing.generate import _annotations

settings.register_profile(
    "ci",
    max_examples=75,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=2000,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("DSFORMATS_FUZZ_PROFILE", "ci"))

# --------------------------------------------------------------------------------------- round trip
#: Characters of generated id components: ASCII and non-ASCII letters, digits, spaces and punctuation.
_CHARS = "abcXYZ019 -_.,;()[]&+=@!'~%#ïé日本語🐱"
_component = st.text(alphabet=_CHARS, min_size=1, max_size=8).filter(
    lambda c: c == c.strip() and not c.startswith(".") and not c.endswith(".")
)
_item_id = st.lists(_component, min_size=1, max_size=3).map("/".join)


def _compatible(ids: list[str]) -> bool:
    """Ids that no format could hold apart: equal ignoring case, or one a folder of another."""
    folded = [i.casefold() for i in ids]
    if len(set(folded)) != len(folded):
        return False
    return not any(b.startswith(a + "/") for a in folded for b in folded)


_ids = st.lists(_item_id, min_size=1, max_size=4, unique=True).filter(_compatible)

KINDS = {"image_zip": (), "voc": ("bbox", "label", "mask"), "coco": ("bbox", "polygon", "mask", "points", "caption")}


def _coco_normalize(item: Item) -> Item:
    shaped = {a.group for a in item.annotations if a.group and a.kind != "bbox"}
    return attrs.evolve(item, annotations=[a for a in item.annotations if not (a.kind == "bbox" and a.group in shaped)])


def _dataset(fmt: str, ids: list[str], subsets: list[str], seed: int) -> tuple[Header, list[Item]]:
    header, _ = generate_items(KINDS[fmt], count=0, subsets=subsets, labels=DEFAULT_LABELS)
    rng = random.Random(seed)
    items = []
    for n, item_id in enumerate(ids):
        size = (rng.randrange(12, 20), rng.randrange(12, 20))
        suffix = rng.choice((".png", ".jpg"))
        media = Media.from_bytes(random_image(rng, *size, suffix), suffix, name=f"<{item_id}{suffix}>")
        annotations = _annotations(rng, KINDS[fmt], DEFAULT_LABELS, size)
        items.append(Item(id=item_id, subset=subsets[n % len(subsets)], media=media, annotations=annotations))
    header = attrs.evolve(header, subsets=sorted(set(subsets[: len(items)])), size_hint=len(items))
    return header, items


@pytest.mark.parametrize("fmt", sorted(KINDS))
@settings(PROFILE)
@given(
    ids=_ids,
    subsets=st.lists(st.sampled_from(["train", "val", "test"]), min_size=1, max_size=3, unique=True),
    seed=st.integers(0, 2**32 - 1),
)
def test_model_datasets_round_trip(fmt, ids, subsets, seed):
    header, items = _dataset(fmt, ids, subsets, seed)
    options = {} if fmt == "image_zip" else {"save_images": True}
    if fmt == "image_zip" and len(subsets) > 1:
        options = {"subset_dirs": True}
    with tempfile.TemporaryDirectory() as tmp:
        assert_round_trip(
            fmt,
            Path(tmp) / "out",
            header,
            items,
            writer_options=options,
            reader_options={"subset_from": "archive"} if fmt == "image_zip" and len(subsets) > 1 else None,
            normalize=_coco_normalize if fmt == "coco" else None,
        ) if fmt != "image_zip" else _image_zip_round_trip(Path(tmp) / "out", items)


def _image_zip_round_trip(out: Path, items: list[Item]) -> None:
    """image_zip stores images only, and has no subsets of its own: ids and bytes must survive."""
    dsformats.write(items, out, "image_zip")
    with dsformats.read(out, "image_zip") as reader:
        back = {item.id: item.media.read_bytes() for item in reader.items()}
    assert back == {item.id: item.media.read_bytes() for item in items}


# ------------------------------------------------------------------------------------- mutated inputs
_SAMPLES: dict[str, Path] = {}


def _sample(kind: str) -> Path:
    """A small valid dataset of each kind, written once per session into a temporary directory."""
    if kind not in _SAMPLES:
        root = Path(tempfile.mkdtemp(prefix=f"dsformats-fuzz-{kind}-"))
        fmt = {"zip": "image_zip", "xml": "voc", "png": "voc", "json": "coco"}[kind]
        header, items = generate_items(KINDS[fmt], seed=7, count=2, subsets=("train",))
        options = {} if fmt == "image_zip" else {"save_images": True}
        dsformats.write(items, root / "data", fmt, header=header, options=options)
        _SAMPLES[kind] = root / "data"
    return _SAMPLES[kind]


def _target(kind: str, root: Path) -> Path:
    pattern = {"zip": "*.zip", "xml": "Annotations/*.xml", "png": "Segmentation*/*.png", "json": "annotations/*.json"}
    return sorted(root.glob(pattern[kind]))[0]


@st.composite
def _mutation(draw, size: int):
    """A list of edits: flip bits, truncate, cut a slice out, or overwrite bytes with 0x00/0xFF."""
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "flip", "truncate", "cut", "fill"]))
        offset = draw(st.integers(0, max(size - 1, 0)))
        if kind == "flip":
            edits.append(("flip", offset, draw(st.integers(0, 7))))
        elif kind == "truncate":
            edits.append(("truncate", offset, 0))
        else:
            edits.append((kind, offset, draw(st.integers(1, 16))))
    return edits


def _apply(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for kind, offset, arg in edits:
        offset = min(offset, max(len(buf) - 1, 0))
        if not buf:
            break
        if kind == "flip":
            buf[offset] ^= 1 << arg
        elif kind == "truncate":
            del buf[offset:]
        elif kind == "cut":
            del buf[offset : offset + arg]
        else:
            buf[offset : offset + arg] = bytes([0xFF if arg % 2 else 0]) * len(buf[offset : offset + arg])
    return bytes(buf)


def _consume(root: Path, fmt: str) -> None:
    """Read every item, its image bytes, its decoded image and every mask."""
    with dsformats.read(root, fmt) as reader:
        for item in reader.items():
            if item.media is not None:
                item.media.read_bytes()
                item.media.open_image().close()
            for ann in item.annotations:
                if hasattr(ann, "to_bitmap"):
                    ann.to_bitmap()


@contextlib.contextmanager
def _small_pixel_limit():
    old = os.environ.get("DSFORMATS_MAX_IMAGE_PIXELS")
    os.environ["DSFORMATS_MAX_IMAGE_PIXELS"] = "1000000"  # a flipped header must not make us decode gigapixels
    try:
        yield
    finally:
        if old is None:
            del os.environ["DSFORMATS_MAX_IMAGE_PIXELS"]
        else:
            os.environ["DSFORMATS_MAX_IMAGE_PIXELS"] = old


@pytest.mark.parametrize("kind", ["zip", "xml", "json", "png"])
@settings(PROFILE)
@given(data=st.data())
def test_mutated_inputs_raise_only_dsformats_errors(kind, data):
    import shutil

    sample = _sample(kind)
    fmt = {"zip": "image_zip", "xml": "voc", "png": "voc", "json": "coco"}[kind]
    original = _target(kind, sample).read_bytes()
    edits = data.draw(_mutation(len(original)))
    with tempfile.TemporaryDirectory() as tmp, _small_pixel_limit():
        root = Path(tmp) / "data"
        shutil.copytree(sample, root)
        _target(kind, root).write_bytes(_apply(original, edits))
        try:
            _consume(root, fmt)
        except DsformatsError:
            pass
