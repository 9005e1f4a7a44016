"""The VOC merge hook refuses an item id repeated across shards, as a single process does."""

from __future__ import annotations

import pytest

import dsformats
from dsformats.errors import DatasetError, DuplicateItemError
from dsformats.options import validate_options
from dsformats.registry import default_registry
from dsformats.report import Report
from dsformats.testing import generate_items


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
