"""dsformats.idset: KeyMap (exact first-value-wins map at ~8 bytes a key), LineSpool and RecordSpool."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from dsformats.idset import KeyMap, LineSpool, RecordSpool, repeated_values


def test_keymap_behaves_like_dict_setdefault(tmp_path):
    rng = random.Random(7)
    keys = [f"{rng.choice(['a', 'B', 'é', 'x/y'])}{rng.randrange(30_000)}" for _ in range(40_000)]
    model: dict[str, str] = {}
    with KeyMap(tmp_path) as keymap:
        for number, key in enumerate(keys):
            value = f"v{number}"
            assert keymap.setdefault(key, value) == model.setdefault(key, value)
        assert len(keymap) == len(model)
        for number, bucket in enumerate(keymap._buckets):  # each bucket holds its own hashes, sorted, once
            assert bucket.tolist() == sorted(set(bucket)) and all(h % len(keymap._buckets) == number for h in bucket)
        assert sum(map(len, keymap._buckets)) == len(model)
        for key in rng.sample(keys, 500):
            assert key in keymap
            assert keymap.get(key) == model[key]
            assert keymap.insert(key, "other") == model[key]
        for key in ("missing", "a-1", ""):
            assert key not in keymap and keymap.get(key) is None
    assert list(tmp_path.iterdir()) == []  # the spool files are unnamed


def test_keymap_add_and_insert():
    keymap = KeyMap()
    assert keymap.add("a") and not keymap.add("a") and keymap.add("A")
    assert keymap.insert("k", "first") is None
    assert keymap.insert("k", "second") == "first"
    assert keymap.setdefault("k", "third") == "first"
    assert keymap.setdefault("\udcff surrogate", "v") == "v"  # lone surrogates (surrogateescape names) are kept
    assert keymap.get("\udcff surrogate") == "v"
    keymap.close()
    assert len(keymap) == 0 and "a" not in keymap


def test_keymap_hash_collisions_are_resolved_exactly():
    """Different keys with the same 64-bit hash stay different; the same key is still found."""
    import dsformats.idset as idset

    class Colliding(str):
        def __hash__(self) -> int:
            return 42

    keymap = KeyMap()
    keys = [Colliding(f"key{i}") for i in range(300)]
    for number, key in enumerate(keys):
        assert keymap.insert(key, str(number)) is None
        assert keymap.add(f"plain{number}")
    assert keymap._buckets[42].tolist().count(42) == 1  # one hash entry; the 300 keys are told apart in the spool
    for number, key in enumerate(keys[::7]):
        assert keymap.get(key) == str(number * 7)
        assert keymap.insert(Colliding(str(key)), "again") == str(number * 7)
    assert Colliding("key-none") not in keymap
    assert len(keymap) == 600
    assert idset._MASK == (1 << 64) - 1


def test_keymap_memory_per_key_is_small():
    keys = [f"images/{i:07d}" for i in range(60_000)]
    tracemalloc.start()
    try:
        keymap = KeyMap()
        before, _ = tracemalloc.get_traced_memory()
        for key in keys:
            keymap.add(key)
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 8 bytes a key in the sorted arrays (with their spare room), plus the file buffers
    assert (after - before) / len(keys) < 24, f"{(after - before) / len(keys):.1f} bytes a key"
    keymap.close()


@pytest.mark.parametrize("count", [0, 1, 10_000])
def test_line_spool_round_trips_and_writes_text(tmp_path, count):
    lines = [f"id {i} é" for i in range(count)]
    spool = LineSpool(tmp_path)
    for line in lines:
        spool.append(line)
    assert len(spool) == count
    assert list(spool) == lines
    assert list(spool) == lines  # repeatable
    spool.write_to(tmp_path / "out.txt")
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == "".join(line + "\n" for line in lines)
    spool.close()


def test_line_spool_write_fails_like_text_on_unencodable_lines(tmp_path):
    spool = LineSpool()
    spool.append("bad \udcff")
    with pytest.raises(UnicodeEncodeError):
        spool.write_to(tmp_path / "out.txt")


def test_record_spool_round_trips():
    records = [("a", {"cat": 1, "dog": 0}), ("b\nc", {}), ("\udcff", {"x": -1})]
    spool = RecordSpool()
    for record in records:
        spool.append(record)
    assert list(spool) == records and list(spool) == records and len(spool) == 3
    spool.close()
    assert list(spool) == []


@pytest.mark.parametrize("count", [0, 1, 5_000, 100_000])
def test_repeated_values_are_those_seen_twice(count):
    import collections
    from array import array

    rng = random.Random(count)
    unique = [rng.randrange(-(1 << 63), 1 << 63) for _ in range(count)]
    twice = [-(1 << 63), (1 << 63) - 1][:count] + unique[: count // 10]  # the extremes of int64 among them
    values = unique + twice + [-(1 << 63), (1 << 63) - 1][:count] + twice[-3:]  # some three times
    rng.shuffle(values)
    expected = {v for v, n in collections.Counter(values).items() if n > 1}
    assert repeated_values(array("q", values)) == expected == set(twice)
    assert repeated_values(array("q", [5] * 3 + [5 + 256, 7])) == {5}  # one bucket: 5 and 261 share it
