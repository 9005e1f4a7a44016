"""The VOC merge hook refuses an item id repeated across shards, as a single process does."""

from __future__ import annotations

import pytest

import dsformats
from dsformats.errors import DatasetError, DuplicateItemError
from dsformats.options import validate_options
from dsformats.registry import default_registry
from dsformats.report import Report
from dsformats.testing import generate_items, read_tree


def test_id_repeated_across_shards_is_an_error(tmp_path):
    header, items = generate_items(("bbox",), seed=8, count=6)
    again = items[4]  # the same (subset, id) in shard 1 and shard 2
    options = {"save_images": True}
    with pytest.raises(DuplicateItemError):
        dsformats.write([*items, again], tmp_path / "single", "voc", header=header, options=options)
    parts = []
    for n, chunk in enumerate([items[:3], items[3:], [again]]):
        parts.append(tmp_path / f"part{n}")
        dsformats.write(chunk, parts[-1], "voc", header=header, options=options)
    registry = default_registry()
    checked = validate_options(registry.get("voc").spec.writer_options, options, what="writer option")
    (tmp_path / "merged").mkdir()
    with pytest.raises(DatasetError) as caught:
        registry.merge("voc", parts, tmp_path / "merged", checked, Report())
    assert caught.value.location == f"Annotations/{again.id}.xml"
    assert str(caught.value) == (
        f"Annotations/{again.id}.xml: shard 2 and an earlier shard both wrote this file: an item id is repeated "
        "across shards"
    )


@pytest.mark.parametrize(("labelled", "tasks"), [(True, []), (False, []), (False, ["classification"])],
                         ids=["labels-in-one-shard", "no-labels", "no-labels-classification-only"])
def test_class_flags_of_a_shard_without_labels_are_the_single_writer_s(tmp_path, make_image, labelled, tasks):
    """One writer writes every subset's class flags once any item has labels (``-1`` rows for the others), and
    none when no item has any (unless classification is the only task). A shard whose items have no labels
    cannot tell: the merged tree must still be the single writer's, whichever shard the labels are in."""
    from dsformats.scaleout import convert_distributed

    labels = [dsformats.LabelDef(name="cat"), dsformats.LabelDef(name="dog")]
    header = dsformats.Header(categories=dsformats.Categories(labels=labels))
    items = [
        dsformats.Item(id=name, subset=subset, media=dsformats.Media.from_bytes(make_image(6, 4, seed=n), ".png"),
                       annotations=[dsformats.Bbox(x=1, y=1, w=2, h=2, label="dog")]
                       + ([dsformats.Label(label="cat")] if labelled and n == 0 else []))
        for n, (subset, name) in enumerate([("train", "a"), ("train", "b"), ("test", "c"), ("test", "d")])
    ]
    dsformats.write(items, tmp_path / "src", "voc", header=header, options={"save_images": True})
    options = {"save_images": True, "tasks": tasks}
    dsformats.convert(tmp_path / "src", tmp_path / "single", "voc", source_format="voc", writer_options=options)
    report = convert_distributed(tmp_path / "src", tmp_path / "sharded", "voc", source_format="voc",
                                 writer_options=options, engine="processes", workers=2, shards=2)
    assert not [w for w in report.warnings if "single process" in w]  # merged, not converted again
    single = read_tree(tmp_path / "single")
    assert read_tree(tmp_path / "sharded") == single
    flags = sorted(name for name in single if name.startswith("ImageSets/Main/") and name.count("_"))
    if labelled or tasks:
        assert flags == [f"ImageSets/Main/{label}_{subset}.txt" for label in ("cat", "dog")
                         for subset in ("test", "train")]
        assert single["ImageSets/Main/cat_test.txt"] == b"c -1\nd -1\n"
    else:
        assert flags == []


def _merged(parts_items, header, tmp_path, options=None):
    """Write each list of items as a shard would (a partial output), then merge them: (result, merged tree)."""
    from dsformats.policy import partial_output

    options = {"save_images": True, **(options or {})}
    parts = []
    for n, chunk in enumerate(parts_items):
        parts.append(tmp_path / f"part{n}")
        with partial_output():
            dsformats.write(chunk, parts[-1], "voc", header=header, options=options)
    registry = default_registry()
    checked = validate_options(registry.get("voc").spec.writer_options, options, what="writer option")
    (tmp_path / "merged").mkdir()
    result = registry.merge("voc", parts, tmp_path / "merged", checked, Report())
    return result, read_tree(tmp_path / "merged")


def _box_item(item_id, subset, label, seed, make_image):
    media = dsformats.Media.from_bytes(make_image(6, 4, seed=seed), ".png")
    return dsformats.Item(id=item_id, subset=subset, media=media,
                          annotations=[dsformats.Bbox(x=1, y=1, w=seed + 1, h=2, label=label)])


def test_an_id_listed_in_two_subsets_across_shards_is_the_single_writer_s(tmp_path, make_image):
    """One writer writes the files of an id in two subsets twice (the later item's remain) and lists it in both;
    so does the merge, where the two items are in different shards (it raised "repeated across shards")."""
    header = dsformats.Header(categories=dsformats.Categories(labels=[dsformats.LabelDef(name="cat")]))
    items = [_box_item("a", "trainval", "cat", 1, make_image), _box_item("b", "trainval", "cat", 2, make_image),
             _box_item("a", "val", "cat", 3, make_image), _box_item("c", "val", "cat", 4, make_image)]
    dsformats.write(items, tmp_path / "single", "voc", header=header, options={"save_images": True})
    single = read_tree(tmp_path / "single")
    assert b"<xmax>5</xmax>" in single["Annotations/a.xml"]  # the val item's box: w=4 from x=1
    assert single["ImageSets/Main/val.txt"] == b"a\nc\n"
    result, merged = _merged([items[:2], items[2:]], header, tmp_path)
    assert result is True and merged == single
    from dsformats.scaleout import convert_distributed  # end to end, reading that tree

    dsformats.convert(tmp_path / "single", tmp_path / "one", "voc", source_format="voc",
                      writer_options={"save_images": True})
    report = convert_distributed(tmp_path / "single", tmp_path / "sharded", "voc", source_format="voc",
                                 writer_options={"save_images": True}, engine="processes", workers=2, shards=2)
    assert not [w for w in report.warnings if "single process" in w]
    assert read_tree(tmp_path / "sharded") == read_tree(tmp_path / "one")
    assert dict(report.items_written) == {"trainval": 2, "val": 2}


def test_an_item_repeated_in_one_subset_across_shards_declines_the_merge(tmp_path, make_image):
    """One process raises (or skips) the repeated (subset, id): the merge declines, and the engine gives exactly
    that by converting in one process. (The built-in readers refuse such a source themselves.)"""
    header = dsformats.Header(categories=dsformats.Categories(labels=[dsformats.LabelDef(name="cat")]))
    items = [_box_item(name, "train", "cat", n, make_image) for n, name in enumerate("abcd")]
    result, _ = _merged([items[:2], [items[3], _box_item("a", "train", "cat", 5, make_image)]], header, tmp_path)
    assert result is None


def test_labels_added_on_the_fly_decline_the_merge(tmp_path, make_image):
    """A label used but not declared is added where a shard first meets it: the masks written after it get it in
    their palette, where one writer may have added it earlier. Equal label maps do not prove otherwise."""
    header = dsformats.Header(categories=dsformats.Categories(labels=[dsformats.LabelDef(name="cat")]))
    items = [_box_item(name, "train", "dog" if name in "bd" else "cat", n, make_image) for n, name in enumerate("abcd")]
    result, _ = _merged([items[:2], items[2:]], header, tmp_path)
    assert result is None
