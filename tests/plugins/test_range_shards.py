"""Range shards of the COCO and VOC readers: ``shards(count)`` and the ``shard="START:STOP"`` reader option."""

from __future__ import annotations

import pytest

import dsformats
from dsformats import OptionError
from dsformats.testing import generate_items


def _snapshot(items) -> list[tuple]:
    return [(i.subset, i.id, i.annotations, i.media.read_bytes() if i.media else None) for i in items]


@pytest.fixture(params=["coco", "voc"])
def dataset(request, tmp_path):
    header, items = generate_items(("bbox", "polygon", "label"), seed=11, count=23)
    path = tmp_path / request.param
    dsformats.write(items, path, request.param, header=header, options={"save_images": True})
    return request.param, path


def test_shards_cover_every_item_once_in_order(dataset):
    fmt, path = dataset
    with dsformats.read(path, fmt) as reader:
        everything = _snapshot(reader.items())
        shards = reader.shards(4)
    # the last quarter of the shards are half as long (23 items: weights 2, 2, 2, 1 of 7)
    assert [s.key for s in shards] == ["0:7", "7:13", "13:20", "20:23"]
    assert [s.size_hint for s in shards] == [7, 6, 7, 3]
    pieces = []
    for shard in shards:
        with dsformats.read(path, fmt, options={"shard": shard.key}) as reader:
            pieces.append(_snapshot(reader.items()))
    assert [len(p) for p in pieces] == [7, 6, 7, 3]
    assert [row for piece in pieces for row in piece] == everything
    with dsformats.read(path, fmt, options={"shard": "20:99"}) as reader:
        assert _snapshot(reader.items()) == everything[20:]


def test_a_shard_does_not_read_items_before_it(tmp_path):
    """A broken XML outside the range is never parsed: a shard starts where it starts."""
    header, items = generate_items(("bbox",), seed=12, count=8)
    path = tmp_path / "voc"
    dsformats.write(items, path, "voc", header=header)
    with dsformats.read(path, "voc") as reader:
        order = [(i.subset, i.id) for i in reader.items()]
    (path / "Annotations" / f"{order[1][1]}.xml").write_text("<annotation><object>", encoding="utf-8")
    with dsformats.read(path, "voc", options={"shard": "2:8"}) as reader:
        assert [(i.subset, i.id) for i in reader.items()] == order[2:]
    with pytest.raises(dsformats.DatasetError, match=order[1][1]), dsformats.read(path, "voc") as reader:
        list(reader.items())


@pytest.mark.parametrize("key", ["5", "a:b", "4:2", "-1:3"])
def test_malformed_shard_key_is_refused(dataset, key):
    fmt, path = dataset
    with pytest.raises(OptionError, match="START:STOP"), dsformats.read(path, fmt, options={"shard": key}) as reader:
        list(reader.items())


def test_coco_shard_reader_reuses_the_index(tmp_path, monkeypatch):
    """A pickled shard reader yields the shard's items without scanning or indexing the JSON again."""
    import pickle

    from dsformats_coco import jsonindex

    header, items = generate_items(("bbox", "polygon", "label", "caption", "mask"), seed=13, count=17)
    path = tmp_path / "coco"
    dsformats.write(items, path, "coco", header=header, options={"save_images": True})
    with dsformats.read(path, "coco") as reader:
        everything = _snapshot(reader.items())
        payloads = [pickle.dumps(reader.shard_reader(shard.key)) for shard in reader.shards(3)]
    whole = sum(p.stat().st_size for p in (path / "annotations").iterdir())
    assert all(len(payload) < whole for payload in payloads)

    def no_scan(self):
        raise AssertionError("the JSON file was scanned again")

    monkeypatch.setattr(jsonindex.JsonFile, "__init__", no_scan)
    pieces = []
    for payload in payloads:
        with pickle.loads(payload) as shard_reader:
            pieces += _snapshot(shard_reader.items())
    assert pieces == everything


@pytest.mark.parametrize(("total", "count", "sizes"), [
    (10_000, 8, [1429, 1428, 1429, 1428, 1429, 1428, 715, 714]),  # two workers: each one's last shard is short
    (8, 4, [2, 3, 2, 1]),
    (7, 4, [2, 2, 1, 2]),  # fewer than two items a shard: equal
    (3, 5, [1, 1, 1]),
    (1, 1, [1]),
])
def test_range_shards_end_with_short_ones(total, count, sizes):
    shards = dsformats.range_shards(total, count)
    assert [s.size_hint for s in shards] == sizes
    assert [s.key for s in shards] == [f"{sum(sizes[:k])}:{sum(sizes[:k + 1])}" for k in range(len(sizes))]
