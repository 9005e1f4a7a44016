"""The COCO merge of a scale-out run: shards' spools assembled into the single writer's bytes."""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest

import dsformats
from dsformats import Bbox, Caption, Categories, Header, Item, KeypointSchema, Label, LabelDef, Mask, Points, Polygon
from dsformats.errors import DatasetError
from dsformats.options import validate_options
from dsformats.policy import partial_output
from dsformats.registry import default_registry
from dsformats.report import Report
from dsformats.testing import random_image

LABELS = ("person", "cat", "dog")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def colliding_items(seed: int, count: int = 40, unique: bool = False, unique_images: bool = False
                    ) -> tuple[Header, list[Item]]:
    """Items whose image ids and annotation ids repeat and collide, across the whole dataset.

    Every kind of record: boxes, polygons, RLE masks, keypoints sharing an object with a box (written to
    instances and person_keypoints with one id), captions, labels; ids from a small range so that explicit
    ids are repeated by later items, and zeros (no id). With ``unique``, annotation ids are zeros or differ
    from all others: no shard keeps an id an earlier one kept, and the merge takes the shards' decisions.
    With ``unique_images`` too, every item has its own explicit image id: the shards' elements, written
    whole, are copied as they are.
    """
    rng = random.Random(seed)
    header = Header(
        categories=Categories(labels=[LabelDef(name=name, id=n + 4) for n, name in enumerate(LABELS)],
                              keypoints={"person": KeypointSchema(names=("a", "b"), skeleton=((0, 1),))}),
        subsets=("train", "val"),
    )
    items = []
    for n in range(count):
        width, height = rng.randrange(8, 20), rng.randrange(8, 20)
        suffix = rng.choice((".png", ".jpg"))
        media = dsformats.Media.from_bytes(random_image(rng, width, height, suffix), suffix)
        ids = iter(range(100 * n + 1, 100 * n + 100))
        small = (lambda ids=ids: rng.choice((0, next(ids)))) if unique else (lambda: rng.choice((0, 1, 2, 3, 5, 8)))  # noqa: E731
        anns: list[dsformats.Annotation] = []
        for _ in range(rng.randrange(0, 4)):
            x, y = rng.randrange(0, width - 4), rng.randrange(0, height - 4)
            label = rng.choice(LABELS)
            shape = rng.randrange(3)
            if shape == 0:
                anns.append(Bbox(x=x, y=y, w=3, h=2, label=label, id=small()))
            elif shape == 1:
                anns.append(Polygon(points=(x, y, x + 3, y, x + 3, y + 3), label=label, id=small()))
            else:
                start = x * height + y  # column-major, as COCO RLE
                rle = dsformats.Rle(size=(height, width), counts=(start, 3, width * height - start - 3))
                anns.append(Mask(label=label, id=small(), rle=rle))
        if rng.random() < 0.5:
            group = 7
            anns.append(Bbox(x=1, y=1, w=4, h=4, label="person", id=small(), group=group))
            anns.append(Points(points=(1, 1, 3, 3), visibility=(2, 1), label="person", id=small(), group=group))
        if rng.random() < 0.5:
            anns.append(Caption(caption=f"caption {n}", id=small()))
        if rng.random() < 0.5:
            anns.append(Label(label=rng.choice(LABELS), id=small()))
        attributes = {"id": rng.choice((0, 1, 2, 3, 4, 10, 11))} if rng.random() < 0.8 else {}
        if unique_images:
            attributes = {"id": 1000 + n} if rng.random() < 0.8 else {}
        items.append(Item(id=f"img{n:03d}", subset=rng.choice(("train", "val")), media=media, annotations=anns,
                          attributes=attributes))
    return header, items


def merge_parts(tmp_path: Path, header: Header, items: list[Item], cuts: list[int], options: dict) -> bool | None:
    registry = default_registry()
    bounds = [0, *cuts, len(items)]
    parts = []
    for n, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
        parts.append(tmp_path / f"part{n}")
        with partial_output():
            dsformats.write(items[a:b], parts[-1], "coco", header=header, options=options)
    checked = validate_options(registry.get("coco").spec.writer_options, options, what="writer option")
    (tmp_path / "merged").mkdir()
    return registry.merge("coco", parts, tmp_path / "merged", checked, Report())


@pytest.mark.parametrize("cuts", [[1], [13, 14, 30], [20], [39]])
@pytest.mark.parametrize(
    "options",
    [{}, {"save_images": True, "segmentation_mode": "mask"}, {"reindex": True},
     {"tasks": ["person_keypoints", "instances", "captions"]}],
)
def test_merge_equals_single_writer(tmp_path, cuts, options):
    header, items = colliding_items(seed=len(cuts) + len(options))
    dsformats.write(items, tmp_path / "single", "coco", header=header, options=options)
    assert merge_parts(tmp_path, header, items, cuts, options) is True
    merged, single = tree(tmp_path / "merged"), tree(tmp_path / "single")
    assert merged == single
    instances = orjson.loads(single["annotations/instances_train.json"])
    assert len({image["id"] for image in instances["images"]}) == len(instances["images"])  # ids collided, got fixed
    assert not any(".coco-spool" in name for name in merged)


@pytest.mark.parametrize("cuts", [[1], [13, 14, 30]])
@pytest.mark.parametrize("options", [{}, {"reindex": True}, {"tasks": ["person_keypoints", "instances", "captions"]}])
def test_merge_without_colliding_annotation_ids_equals_single_writer(tmp_path, cuts, options):
    header, items = colliding_items(seed=len(cuts) + 7, unique=True)
    dsformats.write(items, tmp_path / "single", "coco", header=header, options=options)
    assert merge_parts(tmp_path, header, items, cuts, options) is True
    assert tree(tmp_path / "merged") == tree(tmp_path / "single")


def test_partial_keeps_spool_instead_of_files(tmp_path):
    header, items = colliding_items(seed=1, count=5)
    with partial_output():
        dsformats.write(items, tmp_path / "part", "coco", header=header)
    files = tree(tmp_path / "part")
    assert not [name for name in files if name.startswith("annotations/")]
    state = orjson.loads(files[".coco-spool/state.json"])
    assert state["catalog"]["ids"] == {"person": 4, "cat": 5, "dog": 6}
    assert sum(s["count"] for s in state["subsets"].values()) == 5


def test_undeclared_label_declines(tmp_path):
    header, items = colliding_items(seed=2, count=6)
    header = Header(categories=Categories(labels=[LabelDef(name="person")]), subsets=header.subsets)
    assert merge_parts(tmp_path, header, items, [3], {}) is None


def test_item_repeated_across_shards_is_an_error(tmp_path):
    header, items = colliding_items(seed=3, count=6)
    for n, options in enumerate(({"save_images": True}, {})):
        (tmp_path / str(n)).mkdir()
        with pytest.raises(DatasetError, match=r"img000\.(png|jpg).*shards|shards.*img000"):
            merge_parts(tmp_path / str(n), header, [*items, items[0]], [6], options)


@pytest.mark.parametrize("parsed", [False, True], ids=["regex", "parsed"])
def test_repeated_names_are_found_whatever_they_hold(tmp_path, monkeypatch, parsed):
    """File names with quotes (escaped in JSON) and non-ASCII text, and attributes that look like a file name:
    distinct names merge; a name repeated across shards is refused, named as it is (also where the spool's
    lines are parsed instead)."""
    if parsed:
        import re

        from dsformats_coco import merge

        monkeypatch.setattr(merge, "_FILE_NAME", re.compile(rb"(?!)"))  # matches nothing
    odd = ['a"b', "é/日本", 'x","file_name":"y', "plain"]
    rng = random.Random(5)
    items = [Item(id=name, media=dsformats.Media.from_bytes(random_image(rng, 4, 3, ".png"), ".png"),
                  attributes={"note": f' {{"width":4,"height":3,"file_name":"{odd[-1 - n]}.png"}}',
                              "meta": {"width": 4, "height": 3, "file_name": f"{odd[-1 - n]}.png"}})
             for n, name in enumerate(odd)]
    header = Header(subsets=("default",))
    dsformats.write(items, tmp_path / "single", "coco", header=header)
    (tmp_path / "ok").mkdir()
    assert merge_parts(tmp_path / "ok", header, items, [2], {}) is True
    assert tree(tmp_path / "ok" / "merged") == tree(tmp_path / "single")
    for n, name in enumerate(odd):
        (tmp_path / f"bad{n}").mkdir()
        with pytest.raises(DatasetError, match="shards") as error:
            merge_parts(tmp_path / f"bad{n}", header, [*items, items[n]], [len(items)], {})
        assert f"image default/{name}.png is written by two shards" in str(error.value)


@pytest.mark.parametrize("cuts", [[1], [13, 14, 30]])
@pytest.mark.parametrize("options", [{}, {"tasks": ["person_keypoints", "instances", "captions"]}])
def test_merge_of_unique_ids_equals_single_writer(tmp_path, cuts, options):
    header, items = colliding_items(seed=len(cuts) + 11, unique=True, unique_images=True)
    dsformats.write(items, tmp_path / "single", "coco", header=header, options=options)
    assert merge_parts(tmp_path, header, items, cuts, options) is True
    merged, single = tree(tmp_path / "merged"), tree(tmp_path / "single")
    assert merged == single
    instances = orjson.loads(single["annotations/instances_train.json"])
    kept = [image["id"] for image in instances["images"] if image["id"] >= 1000]
    assert kept and len(set(kept)) == len(kept)  # the explicit ids were kept


def test_panoptic_pngs_that_differ_only_in_case_across_shards_are_warned_about_as_one_writer_does(tmp_path):
    """Each shard warns about its own PNG names; the merge adds those across shards, in one writer's words."""
    registry = default_registry()
    header = Header(categories=Categories(labels=[LabelDef(name=name, id=n + 1) for n, name in enumerate(LABELS)]))
    rng = random.Random(5)
    items = []
    for name in ["a", "b", "sub/c", "A", "d", "B", "SUB/C"]:
        start = rng.randrange(1, 20)
        rle = dsformats.Rle(size=(6, 5), counts=(start, 4, 30 - start - 4))
        media = dsformats.Media.from_bytes(random_image(rng, 5, 6, ".png"), ".png")
        items.append(Item(id=name, subset="train", media=media, annotations=[Mask(label="cat", id=1, rle=rle)]))
    options = {"tasks": ["panoptic"]}
    single = dsformats.write(items, tmp_path / "single", "coco", header=header, options=options)
    assert sorted(single.warnings) == sorted(
        f"files 'annotations/panoptic_train/{a}.png' and 'annotations/panoptic_train/{b}.png' differ only in case; "
        "they collide on a case-insensitive file system" for a, b in [("a", "A"), ("b", "B"), ("sub/c", "SUB/C")])
    parts, warned = [tmp_path / "part0", tmp_path / "part1"], []
    for part, chunk in zip(parts, (items[:3], items[3:]), strict=True):
        with partial_output():
            warned += dsformats.write(chunk, part, "coco", header=header, options=options).warnings
    assert warned == []  # no shard holds two spellings
    report = Report()
    checked = validate_options(registry.get("coco").spec.writer_options, options, what="writer option")
    (tmp_path / "merged").mkdir()
    assert registry.merge("coco", parts, tmp_path / "merged", checked, report) is True
    assert sorted(report.warnings) == sorted(single.warnings)
    assert tree(tmp_path / "merged") == tree(tmp_path / "single")


@pytest.mark.parametrize("block", [7, 64, 1 << 16])
def test_spool_runs_give_back_every_line_whatever_the_block_size(monkeypatch, block):
    """Element lines ("{...") come in runs, other lines one by one, in order, lines longer than a block too."""
    import io

    from dsformats_coco import spool

    rng = random.Random(block)
    lines = []
    for n in range(300):
        body = b"x" * rng.choice([0, 3, 50, 200, 70_000])
        lines.append((b'{"id":%d,%s}\n' % (n, body)) if rng.random() < 0.7 else (b"%d 0 {%s}\n" % (n, body)))
    monkeypatch.setattr(spool, "_BLOCK", block)
    runs = list(spool._runs(io.BytesIO(b"".join(lines))))
    assert b"".join(text for _, text in runs) == b"".join(lines)
    for whole, text in runs:
        assert all(line.startswith(b"{") == whole for line in text.splitlines())
        assert whole or text.count(b"\n") == 1
    if block > 1000:  # several element lines to a run
        assert sum(whole for whole, _ in runs) < sum(line.startswith(b"{") for line in lines)
