"""The msgspec decoders (fastdecode) are shortcuts only: reading and converting with them must give exactly what
the orjson path gives, for every element, however odd. Each test runs twice, once with the decoders refusing
everything (so every element takes the orjson path), and compares the two runs whole."""

from __future__ import annotations

import random
from pathlib import Path

import msgspec
import orjson
import pytest
from dsformats_coco import fastdecode, jsonindex

import dsformats
from dsformats import DatasetError

WIDTH, HEIGHT = 12, 9
IMAGES = 100
#: JSON texts a field may hold: the right types, near misses (booleans, integral floats, 64-bit edges, flat or
#: empty polygons, bad RLE objects, nested attributes) and plain wrong ones.
ODD_VALUES = [
    "1", "2", "5", "0", "-3", "true", "false", "null", "1.0", "-0", "2.5", "1e2", "1E-2", '"1"', '""', "[]", "{}",
    "9223372036854775807", "9223372036854775808", "18446744073709551615", "18446744073709551616",
    "-9223372036854775808", "-9223372036854775809", "123456789012345678901234567890",
    "[1,2,3,4]", "[1,2,3]", "[1,2,3,4,5]", "[1, 2.5, 3, 4]", "[true,2,3,4]", "[1,2,3,null]", '[1,"2",3,4]',
    "[1,2,3,18446744073709551616]", "[[1,2,3,4]]", "[1,2,3,4,5,6]", "[[1,2,3,4,5,6]]", "[[1,2,3,4,5]]",
    "[[1,2,3,4,5,6,7]]", "[[1,2,3,4,5,6],[1,2,3,4,5,6,7]]", "[[1,2,3,4,5,6],[]]", "[[],[1,2,3,4,5,6]]", "[[]]",
    "[[1,2,3,4,5,6],[7,8,9,10,11,12,13,14]]",
    "[[1,2,3,4,5,6],1]", "[[true,2,3,4,5,6]]", "[[[1,2,3,4,5,6]]]", "[ [ 1 , 2 ,3,4,\n5,6 ] ]",
    '{"size":[9,12],"counts":[108]}', '{"size":[9,12],"counts":[100,8]}', '{"size":[9,12],"counts":[100]}',
    '{"size":[9.0,12],"counts":[108]}', '{"size":[9,12],"counts":[108.0]}', '{"size":[9,12],"counts":"1c1"}',
    '{"size":[9,12],"counts":"!!"}', '{"size":[9,12],"counts":[108],"x":1}', '{"size":[9,12]}',
    '{"size":[12,9],"counts":[108]}', '{"size":[9,12],"counts":[-1,109]}', '{"counts":[108],"size":[9,12]}',
    '{"a":1}', '{"a":{"b":1}}', '{"a":[1]}', '{"a":true,"b":null,"c":"x","d":2.5}', '{"occluded":false}',
    '"\\u00e9"', '"x"', "[" * 40 + "]" * 40,
]
FIELDS = ["id", "image_id", "category_id", "bbox", "segmentation", "iscrowd", "area", "score", "attributes",
          "num_keypoints", "keypoints", "extra"]


def _plain(rng: random.Random, n: int) -> dict[str, str]:
    """A common element, as field -> JSON text."""
    poly = ",".join(str(round(rng.uniform(0, WIDTH - 1), 2)) for _ in range(2 * rng.randint(3, 5)))
    return {"id": str(n + 1), "image_id": str(rng.randrange(1, IMAGES + 1)), "category_id": rng.choice(["1", "2"]),
            "segmentation": f"[[{poly}]]", "area": "12.5", "bbox": "[1,2,3.25,4]", "iscrowd": "0"}


def _element(rng: random.Random, n: int) -> str:
    fields = _plain(rng, n)
    for _ in range(rng.choice([0, 0, 0, 0, 0, 1, 1, 2])):
        field = rng.choice(FIELDS)
        if rng.random() < 0.15:
            fields.pop(field, None)
        else:
            fields[field] = rng.choice(ODD_VALUES)
    pairs = [f'"{key}":{value}' for key, value in fields.items()]
    if rng.random() < 0.1:  # a repeated key: the last one counts
        key = rng.choice(list(fields))
        pairs.insert(rng.randrange(len(pairs) + 1), f'"{key}":{rng.choice(ODD_VALUES)}')
    rng.shuffle(pairs)
    space = rng.choice(["", "", " ", "\n  "])
    return "{" + space + ("," + space).join(pairs) + space + "}"


def _write(root: Path, elements: list[str]) -> Path:
    images = [{"id": i, "file_name": f"{i:03d}.jpg", "width": WIDTH, "height": HEIGHT} for i in range(1, IMAGES + 1)]
    categories = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
    head = orjson.dumps({"images": images, "categories": categories}).decode()[:-1]
    (root / "annotations").mkdir(parents=True)
    path = root / "annotations" / "instances_default.json"
    path.write_text(head + ',"annotations":[\n' + ",\n".join(elements) + "\n]}")
    return path


def _refusing(*_args):
    raise msgspec.ValidationError("refused by the test")


def _decoders(patch, *, fast: bool) -> dict[str, int]:
    """Patch the decoders to count the elements they take (``fast``) or to refuse every element; the counts."""
    taken = {"index": 0, "record": 0}
    for name in taken:
        if not fast:
            patch.setattr(fastdecode, f"{name}_decoder", lambda: _refusing)
            continue
        real = getattr(fastdecode, f"{name}_decoder")()

        def counting(raw, real=real, name=name):
            decoded = real(raw)
            taken[name] += 1
            return decoded

        patch.setattr(fastdecode, f"{name}_decoder", lambda counting=counting: counting)
    return taken


def _index(src: Path, monkeypatch, *, fast: bool) -> tuple:
    """What the reader's index makes of ``src`` (order, keys and kinds codes of its elements), its items, the
    annotation keys, the skipped items and the error, and how many elements the index decoder took; with
    ``fast=False`` the decoders refuse every element."""
    with monkeypatch.context() as patch:
        taken = _decoders(patch, fast=fast)
        report = dsformats.Report()
        arrays, items, keys, error = None, [], [], ""
        try:
            with dsformats.policy.reporting(report, skip_bad_items=True), dsformats.read(src, "coco") as reader:
                (source,) = reader._sources
                arrays = [source.order.tolist(), source.keys.tolist(), source.codes.tolist()]
                keys = reader.header.infos["coco"]["annotation_keys"]
                items = [repr(item) for item in reader.items()]
        except DatasetError as exc:
            error = str(exc)
    return (arrays, items, keys, [str(s) for s in report.skipped], error), taken["index"]


@pytest.mark.parametrize("seed", range(6))
def test_index_codes_match_the_orjson_path(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    src = tmp_path / "src"
    _write(src, [_element(rng, n) for n in range(400)])
    fast, decoded = _index(src, monkeypatch, fast=True)
    slow, _ = _index(src, monkeypatch, fast=False)
    assert fast == slow
    arrays, items, _, skipped, error = fast
    assert not error and 150 < decoded < 400 and len(items) > 10 and skipped
    codes = arrays[2]
    assert codes.count(-1) > 20 and sum(code > 0 for code in codes) > 100  # both kinds of element occur


def test_every_odd_value_in_every_field(tmp_path, monkeypatch):
    """Each odd value in each field of an otherwise common element (the kinds codes are compared for all)."""
    rng = random.Random(0)
    elements = []
    for field in FIELDS:
        for value in ODD_VALUES:
            fields = _plain(rng, len(elements))
            fields[field] = value
            elements.append("{" + ",".join(f'"{key}":{text}' for key, text in fields.items()) + "}")
    src = tmp_path / "src"
    _write(src, elements)
    fast, decoded = _index(src, monkeypatch, fast=True)
    assert fast == _index(src, monkeypatch, fast=False)[0]
    assert not fast[4] and 0 < decoded < len(elements) and 0 < fast[0][2].count(-1) < len(elements)


def test_invalid_json_in_an_element_is_the_same_error(tmp_path, monkeypatch):
    rng = random.Random(1)
    elements = [_element(rng, n) for n in range(30)]
    elements[17] = elements[17][:-1] + ',"area":1e400}'  # out of range for both parsers
    src = tmp_path / "src"
    _write(src, elements)
    monkeypatch.setattr(jsonindex, "_VALIDATE_LIMIT", 0)  # found by the index, not by a whole-file parse
    fast, _ = _index(src, monkeypatch, fast=True)
    slow, _ = _index(src, monkeypatch, fast=False)
    assert fast == slow and "annotations[17]: invalid JSON" in fast[4]


def _convert(src: Path, out: Path, monkeypatch, *, fast: bool, **options) -> tuple[dict, bytes, dict, int]:
    """COCO -> COCO of ``src``: (the parsed instances file, its bytes, the report's annotation counts, the
    elements the record decoder took)."""
    with monkeypatch.context() as patch:
        taken = _decoders(patch, fast=fast)
        report = dsformats.convert(src, out, "coco", source_format="coco", writer_options=options,
                                   skip_bad_items=True)
    data = (out / "annotations" / "instances_default.json").read_bytes()
    return orjson.loads(data), data, dict(report.annotations_written), taken["record"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("options", [{}, {"reindex": True}], ids=["-", "reindex"])
def test_records_copied_from_the_source_text_match_the_orjson_path(tmp_path, monkeypatch, seed, options):
    """Odd elements: the same JSON values and report (numbers may keep their source text, e.g. ``1e2``)."""
    rng = random.Random(seed)
    src = tmp_path / "src"
    _write(src, [_element(rng, n) for n in range(400)])
    fast = _convert(src, tmp_path / "fast", monkeypatch, fast=True, **options)
    slow = _convert(src, tmp_path / "slow", monkeypatch, fast=False, **options)
    assert fast[0] == slow[0] and fast[2] == slow[2]
    assert len(fast[0]["annotations"]) > 80 and fast[3] > 50 and not slow[3]


@pytest.mark.parametrize("indent", [None, 2])
def test_records_of_canonical_numbers_are_the_same_bytes(tmp_path, monkeypatch, indent):
    """Whitespace in the source (an indented file, spaces after commas) is not copied: the same bytes."""
    import json

    rng = random.Random(7)
    elements = [orjson.loads(_element(rng, n)) for n in range(400) if rng.random() < 2]
    src = tmp_path / "src"
    separators = (", ", ": ") if indent is None else None
    _write(src, [json.dumps(element, indent=indent, separators=separators) for element in elements])
    fast = _convert(src, tmp_path / "fast", monkeypatch, fast=True)
    slow = _convert(src, tmp_path / "slow", monkeypatch, fast=False)
    assert fast[1] == slow[1] and fast[2] == slow[2] and fast[3] > 50
    assert b"\n" not in fast[1].split(b'"annotations":[')[1].replace(b",\n", b"").strip(b"\n]}")
