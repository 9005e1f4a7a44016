"""yolo on Dask: the dsformats_merge hook gives exactly the files one YoloWriter writes, or declines."""

from __future__ import annotations

from pathlib import Path

import dsformats
import pytest
from dsformats import Bbox, Categories, DatasetError, DuplicateItemError, Header, Item, LabelDef, Report
from dsformats.testing import assert_distributed_equals_single, assert_trees_equal, generate_items, read_tree


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A YOLO dataset of 30 random PNG and JPEG images in three splits, with boxes and polygons."""
    header, items = generate_items(("bbox", "polygon"), seed=5, count=30, subsets=("train", "val", "test"))
    out = tmp_path_factory.mktemp("yolo") / "src"
    dsformats.write(items, out, "yolo", header=header)
    return out


@pytest.mark.parametrize("options", [{}, {"image_ext": ".png"}, {"save_images": False}])
@pytest.mark.parametrize("shards", [3, 8])
def test_dask_output_equals_single_process(source, dsformats_scheduler, tmp_path, options, shards):
    report = assert_distributed_equals_single(
        "yolo", source, tmp_path, scheduler=dsformats_scheduler, source_format="yolo", writer_options=options,
        shards=shards,
    )
    assert report.items_written == {"train": 10, "val": 10, "test": 10}
    files = read_tree(tmp_path / "dask")
    assert sum(name.startswith("labels/") for name in files) == 30
    assert sum(name.startswith("images/") for name in files) == (0 if options.get("save_images") is False else 30)
    assert files["data.yaml"].decode().splitlines()[1:4] == [
        "test: images/test", "train: images/train", "val: images/val"
    ]


def test_cli_engine_dask(source, dsformats_scheduler, tmp_path):
    from dsformats.cli import main

    code = main(["convert", "-i", str(source), "-f", "yolo", "-o", str(tmp_path / "dask"), "-q", "--engine", "dask",
                 "--scheduler", dsformats_scheduler])
    assert code == 0
    dsformats.convert(source, tmp_path / "single", "yolo")
    assert_trees_equal(tmp_path / "single", tmp_path / "dask")


def _item(n: int, subset: str, *labels: str) -> Item:
    _header, (generated,) = generate_items(seed=n, count=1)
    return Item(id=f"img{n}", subset=subset, media=generated.media,
                annotations=[Bbox(x=1, y=1, w=4, h=3, label=label) for label in labels])


def _merge(tmp_path: Path, header: Header, chunks: list[list[Item]]) -> bool | None:
    """Write each chunk as a part, as the Dask workers do, and call the hook into ``tmp_path/merged``."""
    registry = dsformats.default_registry()
    parts = []
    for n, chunk in enumerate(chunks):
        parts.append(tmp_path / f"part{n}")
        dsformats.write(chunk, parts[-1], "yolo", header=header)
    (tmp_path / "merged").mkdir()
    options = {"save_images": True, "image_ext": None}
    return registry.merge("yolo", parts, tmp_path / "merged", options, Report())


def test_hook_merges_labels_first_met_in_items(tmp_path):
    """Labels missing from the header: every part's class indices agree with one writer's, so it merges."""
    header = Header(categories=Categories(labels=[LabelDef(name="dog")]))
    chunks = [[_item(0, "train", "cat")], [_item(1, "val")], [_item(2, "train", "dog", "cat", "bird")]]
    dsformats.write([i for chunk in chunks for i in chunk], tmp_path / "single", "yolo", header=header)
    assert _merge(tmp_path, header, chunks) is True
    assert_trees_equal(tmp_path / "single", tmp_path / "merged")
    assert (tmp_path / "merged" / "data.yaml").read_text().endswith("nc: 3\nnames:\n  0: dog\n  1: cat\n  2: bird\n")


def test_hook_declines_when_shards_number_classes_differently(tmp_path):
    """Shard 1 meets 'bird' first and writes it as class 0; one writer would have made it class 1."""
    chunks = [[_item(0, "train", "cat")], [_item(1, "train", "bird")]]
    assert _merge(tmp_path, Header(), chunks) is None


def test_id_repeated_across_shards_is_an_error(tmp_path):
    items = [_item(n, "train", "cat") for n in range(4)]
    header = Header(categories=Categories(labels=[LabelDef(name="cat")]))
    with pytest.raises(DuplicateItemError):  # as a single process refuses it
        dsformats.write([*items, items[1]], tmp_path / "single", "yolo", header=header)
    with pytest.raises(DatasetError) as caught:
        _merge(tmp_path, header, [items[:2], items[2:], [items[1]]])
    assert caught.value.location == "images/train/img1.png"
    assert "shard 2 and an earlier shard both wrote this file: an item id is repeated across shards" in str(
        caught.value
    )
