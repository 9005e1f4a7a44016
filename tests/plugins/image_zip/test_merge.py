"""image_zip on Dask: ``--shards-out`` publishes one archive per shard; ids repeated across shards are refused."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import pytest
from dsformats_image_zip.schema import SHARD_ITEMS

import dsformats
from dsformats.errors import DatasetError, DuplicateItemError
from dsformats.options import validate_options
from dsformats.policy import partial_output
from dsformats.registry import default_registry
from dsformats.report import Report
from dsformats.testing import generate_items, read_tree


def members(path: Path) -> list[tuple[str, bytes, tuple[int, ...], int, int, int]]:
    """Every member of the archive, in order: name, bytes, date, compression, attributes, CRC."""
    with zipfile.ZipFile(path) as archive:
        return [(i.filename, archive.read(i), i.date_time, i.compress_type, i.external_attr, i.CRC)
                for i in archive.infolist()]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """One archive of 24 random images (nested ids, PNG and JPEG): the Dask engine splits it into ranges."""
    header, items = generate_items(seed=11, count=24, subsets=("default",))
    out = tmp_path_factory.mktemp("source") / "zip"
    dsformats.write(items, out, "image_zip", header=header)
    return out / "default.zip"


def test_single_process_writes_one_archive_named_as_shard_0(source, tmp_path):
    options = {"name": "a/all.zip"}
    dsformats.convert(source, tmp_path / "plain", "image_zip", writer_options=options)
    dsformats.convert(source, tmp_path / "shards", "image_zip", writer_options={**options, "shards_out": True})
    assert read_tree(tmp_path / "shards") == {"a/all-00000.zip": (tmp_path / "plain" / "a" / "all.zip").read_bytes()}


@pytest.mark.parametrize("options", [{}, {"compression": "deflated", "name": "sub/all.zip", "image_ext": ".png"}])
def test_shards_out_splits_the_single_archive_members(source, dsformats_scheduler, tmp_path, options):
    from dsformats.scaleout import convert_distributed

    name = options.get("name", "default.zip")
    dsformats.convert(source, tmp_path / "single", "image_zip", writer_options=options)
    report = convert_distributed(source, tmp_path / "dask", "image_zip", writer_options={**options, "shards_out": True},
                                 scheduler=dsformats_scheduler, shards=5, retries=0)
    stem = name[: -len(".zip")]
    archives = sorted(read_tree(tmp_path / "dask"))
    assert archives == [f"{stem}-{n:05d}.zip" for n in range(5)]
    split = [members(tmp_path / "dask" / archive) for archive in archives]
    assert all(split)  # every shard got items
    assert [m for shard in split for m in shard] == members(tmp_path / "single" / name)
    assert sum(report.items_written.values()) == 24 and not report.warnings
    with dsformats.read(tmp_path / "dask", "image_zip") as merged, dsformats.read(tmp_path / "single") as single:
        assert [(i.subset, i.id, i.media.read_bytes()) for i in merged.items()] == [
            (i.subset, i.id, i.media.read_bytes()) for i in single.items()
        ]


def test_cli_shards_out(source, dsformats_scheduler, tmp_path, capsys):
    from dsformats.cli import main

    assert main(["convert", "-f", "image_zip", "-i", ".", "-o", ".", "--", "-h"]) == 0
    assert "--shards-out" in capsys.readouterr().out
    code = main(["convert", "-i", str(source), "-if", "image_zip", "-f", "image_zip", "-o", str(tmp_path / "dask"),
                 "-q", "--engine", "dask", "--scheduler", dsformats_scheduler, "--", "--shards-out", "--name", "x.zip"])
    assert code == 0
    dsformats.convert(source, tmp_path / "single", "image_zip")
    archives = sorted(read_tree(tmp_path / "dask"))
    assert archives == [f"x-{n:05d}.zip" for n in range(8)]  # 4 range shards per worker, 2 workers
    assert [m for a in archives for m in members(tmp_path / "dask" / a)] == members(tmp_path / "single" / "default.zip")


def _merge_parts(
    tmp_path: Path, chunks: list[list[dsformats.Item]], options: dict, report: Report | None = None,
    merged: list[bool | None] | None = None, partial: bool = True,
) -> Path:
    """Write each chunk as a part with the writer, as the Dask workers do (``partial``), then call the merge hook
    (its result appended to ``merged``)."""
    registry = default_registry()
    header = dsformats.Header()
    parts = []
    for n, chunk in enumerate(chunks):
        parts.append(tmp_path / f"part{n}")
        with partial_output() if partial else contextlib.nullcontext():
            dsformats.write(chunk, parts[-1], "image_zip", header=header, options=options)
    checked = validate_options(registry.get("image_zip").spec.writer_options, options, what="writer option")
    (tmp_path / "merged").mkdir()
    result = registry.merge("image_zip", parts, tmp_path / "merged", checked, Report() if report is None else report)
    if merged is not None:
        merged.append(result)
    return tmp_path / "merged"


@pytest.mark.parametrize("options", [{}, {"shards_out": True}, {"subset_dirs": True}])
def test_an_item_repeated_across_shards_declines_the_merge(tmp_path, options):
    """One process refuses the second one as a duplicate (or skips it): the merge, which cannot, declines.
    Parts that do not list their items (not written as shards) give an error naming both members."""
    _header, items = generate_items(seed=4, count=6)
    again = items[1]  # the same (subset, id) in shard 0 and shard 2
    with pytest.raises(DuplicateItemError):  # as a single process refuses it
        dsformats.write([*items, again], tmp_path / "single", "image_zip", options=options)
    merged: list[bool | None] = []
    _merge_parts(tmp_path / "a", [items[:3], items[3:], [again]], options, merged=merged)
    assert merged == [None]
    with pytest.raises(DatasetError) as caught:
        _merge_parts(tmp_path / "b", [items[:3], items[3:], [again]], options, partial=False)
    member = f"{again.subset}/{again.id}" if options.get("subset_dirs") else again.id
    assert f"member {member + again.media.suffix!r} of shard 2" in str(caught.value)
    assert f"would both be item {member!r}: an item id is repeated across shards" in str(caught.value)


@pytest.mark.parametrize("options", [{}, {"shards_out": True}])
def test_an_id_of_two_subsets_across_shards_is_the_error_one_writer_gives(tmp_path, make_image, options):
    """Without --subset-dirs, ``train/a`` and ``val/a`` are one member: the merge names them as one writer does,
    from the items each shard lists (empty shards and a first one counted)."""
    image = dsformats.Media.from_bytes(make_image(4, 4, seed=2), ".png")
    chunks = [[], [dsformats.Item(id=i, subset="train", media=image) for i in "bac"], [],
              [dsformats.Item(id=i, subset="val", media=image) for i in "da"]]
    with pytest.raises(DatasetError) as single:
        dsformats.write([i for chunk in chunks for i in chunk], tmp_path / "single", "image_zip", options=options)
    with pytest.raises(DatasetError) as merged:
        _merge_parts(tmp_path, chunks, options)
    assert str(merged.value) == str(single.value) == (
        "items 'train/a' and 'val/a' would both be stored as item 'a' (members 'a.png' and 'a.png'); use "
        "--subset-dirs to keep subsets apart")


def test_id_repeated_across_shards_fails_the_dask_conversion(dsformats_scheduler, tmp_path):
    """Two archives (one shard each) both hold item ``a``: one process and the Dask merge both refuse it."""
    from dsformats.scaleout import convert_distributed

    _header, items = generate_items(seed=2, count=1)
    image = items[0].media.read_bytes()
    src = tmp_path / "zips"
    src.mkdir()
    for archive, names in (("train", "ab"), ("val", "ac")):
        with zipfile.ZipFile(src / f"{archive}.zip", "w") as created:
            for name in names:
                created.writestr(f"{name}.png", image)
    options = {"source_format": "image_zip", "reader_options": {"subset_from": "archive"}}
    with pytest.raises(DatasetError, match="would both be stored as item 'a'"):
        dsformats.convert(src, tmp_path / "single", "image_zip", **options)
    with pytest.raises(DatasetError) as caught:
        convert_distributed(src, tmp_path / "dask", "image_zip", scheduler=dsformats_scheduler, retries=0, **options)
    assert str(caught.value) == ("items 'train/a' and 'val/a' would both be stored as item 'a' (members 'a.png' and "
                                 "'a.png'); use --subset-dirs to keep subsets apart")  # one process's words
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zips"]  # nothing published, no partials left


@pytest.mark.parametrize("colliding", [False, True], ids=["hashes", "every-hash-repeated"])
@pytest.mark.parametrize("options", [{}, {"shards_out": True}])
def test_names_across_shards_are_compared_exactly(tmp_path, monkeypatch, make_image, options, colliding):
    """Names that differ only in case across shards are warned once, as one writer warns; an id repeated
    across shards names both members. With every hash taken as repeated (all names compared exactly, as if
    they all collided), a clean merge gives the same archive and no warning."""
    from dsformats_image_zip import merge as merge_module

    if colliding:
        monkeypatch.setattr(merge_module, "repeated_values", set)
    image = dsformats.Media.from_bytes(make_image(4, 4, seed=1), ".png")
    chunks = [[dsformats.Item(id=i, media=image) for i in ids] for ids in (["Cat", "dog"], ["cow"], ["cat", "ant"])]
    single = dsformats.write([i for chunk in chunks for i in chunk], tmp_path / "single", "image_zip")
    report = Report()
    merged = _merge_parts(tmp_path / "a", chunks, options, report)
    assert report.warnings == single.warnings == ["members 'Cat.png' and 'cat.png' differ only in case and collide "
                                                  "when extracted on a case-insensitive file system"]
    if not options:
        assert members(merged / "default.zip") == members(tmp_path / "single" / "default.zip")
        # each part's archive is removed once copied: the parts never hold a second copy of the whole output
        files = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*") if p.is_file())
        assert files == ["merged/default.zip", *(f"part{n}/{SHARD_ITEMS}" for n in range(3))]
    clean = Report()
    _merge_parts(tmp_path / "b", chunks[:2], options, clean)
    assert clean.warnings == []
    # the second pass tells shards apart by their member counts: an empty shard (and a first one) counted too
    again = [[], *chunks[:2], [], [dsformats.Item(id="dog", subset="val", media=image)]]
    with pytest.raises(DatasetError, match="items 'default/dog' and 'val/dog' would both be stored as item 'dog'"):
        _merge_parts(tmp_path / "c", again, options)
    _merge_parts(tmp_path / "d", [[dsformats.Item(id="dog", media=image)], [], chunks[1], []], options, clean)
    assert clean.warnings == []


@pytest.mark.parametrize("options", [{}, {"shards_out": True}])
def test_a_shard_with_two_spellings_of_an_earlier_name_declines_the_merge(tmp_path, make_image, options):
    """Shard 1 warns about ``SUB/C`` and ``sub/c``; one writer warns about each against the first, ``Sub/c``, of
    shard 0 only: the merge cannot remove a shard's warning, so it declines (one process converts)."""
    image = dsformats.Media.from_bytes(make_image(4, 4, seed=3), ".png")
    chunks = [[dsformats.Item(id=i, media=image) for i in ids] for ids in (["Sub/c", "a"], ["SUB/C", "sub/c"])]
    single = dsformats.write([i for chunk in chunks for i in chunk], tmp_path / "single", "image_zip", options=options)
    assert len(single.warnings) == 2 and all("'Sub/c.png' and" in w for w in single.warnings)
    merged: list[bool | None] = []
    _merge_parts(tmp_path / "a", chunks, options, merged=merged)
    assert merged == [None]
    # one spelling in the later shard: merged, and warned about as one writer does
    report = Report()
    _merge_parts(tmp_path / "b", [chunks[0], chunks[1][:1]], options, report, merged)
    assert merged == [None, True]
    assert report.warnings == single.warnings[:1]


def test_an_id_of_two_subsets_comes_before_a_later_shards_broken_image(tmp_path, make_image):
    """One writer meets test/x and train/x before val's broken image: the scale-out run raises the same error,
    though the shard that fails on the image ends before the merge finds the two x."""
    from dsformats.scaleout import convert_distributed

    src = tmp_path / "zips"
    src.mkdir()
    for archive, name, data in (("test", "x.png", make_image(4, 4, seed=1)),
                                ("train", "x.png", make_image(4, 4, seed=2)),
                                ("val", "y.jpg", make_image(4, 4, ".jpg", seed=3)[:10])):
        with zipfile.ZipFile(src / f"{archive}.zip", "w") as created:
            created.writestr(name, data)
    options = {"source_format": "image_zip", "reader_options": {"subset_from": "archive"},
               "writer_options": {"image_ext": ".png"}}
    with pytest.raises(DatasetError) as single:
        dsformats.convert(src, tmp_path / "single", "image_zip", **options)
    assert "items 'test/x' and 'train/x' would both be stored as item 'x'" in str(single.value)
    for shards in (2, 3):
        with pytest.raises(DatasetError) as sharded:
            convert_distributed(src, tmp_path / f"sharded{shards}", "image_zip", engine="processes", workers=2,
                                shards=shards, **options)
        assert str(sharded.value) == str(single.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zips"]


@pytest.mark.parametrize("moved", [True, False], ids=["moved", "other-file-system"])
def test_the_first_part_is_moved_not_copied(tmp_path, monkeypatch, moved):
    """The merged archive starts as the first part's file (renamed; the next parts appended to it); where it
    cannot be renamed (another file system), it is copied: the same bytes either way, those of one writer."""
    import types

    header, items = generate_items(seed=31, count=9, subsets=("default", "val"))
    dsformats.write(items, tmp_path / "single", "image_zip", header=header)
    if not moved:
        def cross_device(src, dst):
            raise OSError(18, "Invalid cross-device link")

        monkeypatch.setattr("dsformats_image_zip.merge.os", types.SimpleNamespace(replace=cross_device))
    write_part = dsformats.write
    inodes = []

    def write_and_note(chunk, path, *args, **kwargs):
        report = write_part(chunk, path, *args, **kwargs)
        inodes.append((Path(path) / "default.zip").stat().st_ino)
        return report

    monkeypatch.setattr(dsformats, "write", write_and_note)
    merged = _merge_parts(tmp_path, [items[:4], items[4:7], items[7:]], {})
    assert (merged / "default.zip").read_bytes() == (tmp_path / "single" / "default.zip").read_bytes()
    assert ((merged / "default.zip").stat().st_ino == inodes[0]) == moved
    assert not any((tmp_path / f"part{n}" / "default.zip").exists() for n in range(3))  # moved, or copied and removed
