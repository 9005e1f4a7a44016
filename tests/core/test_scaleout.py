"""Scale-out on Dask: a LocalCluster of 2 worker processes gives the single-process output, byte for byte."""

from __future__ import annotations

import sys
import tarfile
import threading
import warnings
import zipfile
from pathlib import Path

import pytest

import dsformats
from dsformats.errors import DatasetError
from dsformats.options import validate_options
from dsformats.registry import default_registry
from dsformats.report import Report
from dsformats.testing import generate_items
from dsformats.testing import read_tree as tree

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The benchmark data (COCO, image_zip, VOC) with 60 tiny images, and a VOC tree of generated items."""
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from generate import generate
    finally:
        sys.path.remove(str(ROOT / "bench"))
    with warnings.catch_warnings():  # pycocotools on numpy 2 (the crowd RLEs)
        warnings.simplefilter("ignore", DeprecationWarning)
        out = generate(tmp_path_factory.mktemp("bench") / "data", 60, 3, "tiny")
    header, items = generate_items(("label", "bbox", "polygon", "mask"), seed=3, count=40)
    dsformats.write(items, out / "voc_generated", "voc", header=header, options={"save_images": True})
    return out


@pytest.fixture
def scheduler(dsformats_scheduler: str) -> str:
    """The session's LocalCluster of 2 single-threaded worker processes (``dsformats.testing``)."""
    return dsformats_scheduler


CASES = [
    ("coco", "coco", "image_zip", {}, True),
    ("image_zip", "image_zip", "image_zip", {"image_ext": ".png"}, True),
    ("coco", "coco", "image_zip", {"compression": "deflated", "name": "all.zip"}, True),
    ("coco", "coco", "voc", {"save_images": True}, True),
    ("voc", "voc", "voc", {}, True),
    ("voc_generated", "voc", "voc", {"save_images": True}, True),
    ("voc_generated", "voc", "voc", {"label_map": "voc", "tasks": ["detection", "classification"]}, True),
    ("coco", "coco", "coco", {}, True),
    ("coco", "coco", "coco", {"reindex": True, "save_images": True}, True),
    ("voc", "voc", "coco", {}, True),
    ("voc_generated", "voc", "coco", {"save_images": True, "segmentation_mode": "mask"}, True),
    ("voc", "voc", "yolo", {}, True),
]


@pytest.mark.parametrize(("folder", "source", "target", "options", "merged"), CASES)
def test_dask_output_equals_single_process(data, scheduler, tmp_path, folder, source, target, options, merged):
    from dsformats.scaleout import convert_distributed

    if target == "yolo":
        pytest.importorskip("dsformats_yolo")
    single = dsformats.convert(data / folder, tmp_path / "single", target, source_format=source, writer_options=options)
    shards: list[tuple[int, int, int]] = []
    report = convert_distributed(
        data / folder, tmp_path / "dask", target, source_format=source, writer_options=options,
        scheduler=scheduler, progress=lambda *done: shards.append(done), retries=0,
    )
    assert tree(tmp_path / "dask") == tree(tmp_path / "single")
    assert report.items_written == single.items_written
    assert report.annotations_written == single.annotations_written
    assert report.dropped == single.dropped
    fallback = [w for w in report.warnings if "single process" in w]
    assert bool(fallback) != merged, report.warnings
    if merged:
        assert shards[-1][:2] == (8, 8) and shards[-1][2] == sum(single.items_written.values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dask", "single"]  # no partials left behind


@pytest.mark.parametrize(("folder", "source", "target", "options", "merged"), [CASES[1], CASES[3], CASES[7], CASES[9]])
def test_processes_engine_output_equals_single_process(data, tmp_path, folder, source, target, options, merged):
    """The same shards and merges on a local process pool (no Dask), e.g. ``--engine processes``."""
    from dsformats.scaleout import convert_distributed

    single = dsformats.convert(data / folder, tmp_path / "single", target, source_format=source, writer_options=options)
    shards: list[tuple[int, int, int]] = []
    report = convert_distributed(
        data / folder, tmp_path / "out", target, source_format=source, writer_options=options, engine="processes",
        workers=2, shards=3, progress=lambda *done: shards.append(done),
    )
    assert tree(tmp_path / "out") == tree(tmp_path / "single")
    assert report.items_written == single.items_written and report.annotations_written == single.annotations_written
    assert not [w for w in report.warnings if "single process" in w]
    assert shards[-1] == (3, 3, sum(single.items_written.values()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "single"]


@pytest.mark.parametrize(("folder", "source"), [("coco", "coco"), ("voc", "voc"), ("voc_generated", "voc")])
def test_local_workers_place_image_zip_parts_in_the_merged_archive(data, tmp_path, monkeypatch, folder, source):
    """Each shard's members go straight to their range of the merged archive (dsformats.placement): the merge
    copies no member, and the archive is one writer's. Files that average under PLACED_MIN_BYTES are placed for
    the first shard only (the later shards' parts are copied, as predicting costs a stat a file)."""
    import dsformats.zipstream
    from dsformats import scaleout

    single = dsformats.convert(data / folder, tmp_path / "single", "image_zip", source_format=source)
    copies: list[object] = []
    copy_range = dsformats.zipstream._copy_range
    monkeypatch.setattr(dsformats.zipstream, "_copy_range", lambda *args: copies.append(args) or copy_range(*args))
    for small, copied in [(0, 0), (1 << 20, 3)]:  # files of any size placed; else only the first shard's
        monkeypatch.setattr(scaleout, "PLACED_MIN_BYTES", small)
        copies.clear()
        out = tmp_path / f"out{small}"
        report = scaleout.convert_distributed(data / folder, out, "image_zip", source_format=source,
                                              engine="processes", workers=2, shards=4)
        assert tree(out) == tree(tmp_path / "single")
        assert report.items_written == single.items_written and report.dropped == single.dropped
        assert len(copies) == copied
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out0", f"out{1 << 20}", "single"]


def test_a_prediction_that_fails_places_nothing(data, tmp_path, monkeypatch):
    """A reader's planned_media() that raises (a plugin's bug) is only a prediction: the shards write ordinary
    parts and the conversion gives one process's bytes."""
    from dsformats_voc.reader import VocReader

    from dsformats.scaleout import convert_distributed

    def broken(self: VocReader) -> None:
        raise RuntimeError("no prediction")

    monkeypatch.setattr(VocReader, "planned_media", broken)
    dsformats.convert(data / "voc", tmp_path / "single", "image_zip", source_format="voc")
    convert_distributed(data / "voc", tmp_path / "out", "image_zip", source_format="voc", engine="processes",
                        workers=2, shards=3)
    assert tree(tmp_path / "out") == tree(tmp_path / "single")


def test_a_wrong_placement_prediction_costs_a_copy_not_a_byte(data, tmp_path, monkeypatch):
    """An XML that names another image than the one named after its id: the scan's prediction of that shard's
    bytes is wrong, so its part and the later ones are copied as ordinary parts, into the same archive."""
    import shutil

    import dsformats.zipstream
    from dsformats import scaleout
    from dsformats.scaleout import convert_distributed

    voc = shutil.copytree(data / "voc", tmp_path / "voc")
    images = sorted((voc / "JPEGImages").iterdir())
    other = next(p for p in images[1:] if p.stat().st_size != images[0].stat().st_size)
    xml = voc / "Annotations" / f"{images[0].stem}.xml"
    xml.write_text(xml.read_text().replace(f"<filename>{images[0].name}<", f"<filename>{other.name}<"))
    monkeypatch.setattr(scaleout, "PLACED_MIN_BYTES", 0)  # tiny images: placed all the same
    single = dsformats.convert(voc, tmp_path / "single", "image_zip", source_format="voc")
    copies: list[object] = []
    copy_range = dsformats.zipstream._copy_range
    monkeypatch.setattr(dsformats.zipstream, "_copy_range", lambda *args: copies.append(args) or copy_range(*args))
    report = convert_distributed(voc, tmp_path / "out", "image_zip", source_format="voc", engine="processes",
                                 workers=2, shards=4)
    assert tree(tmp_path / "out") == tree(tmp_path / "single")
    assert report.items_written == single.items_written
    assert len(copies) == 4  # the first part was the wrong one: every part copied
    with zipfile.ZipFile(tmp_path / "out" / "default.zip") as archive:
        assert archive.read(images[0].name) == other.read_bytes()


def test_the_client_releases_its_index_once_every_shard_is_shipped(data, tmp_path, monkeypatch):
    """The shard readers share the client's index; the merge starts at once, and the client's reader is released
    as soon as they are all pickled: by the time the merge has taken its last part, at the latest."""
    import gc

    from dsformats_voc.reader import VocReader

    from dsformats.registry import Registry
    from dsformats.scaleout import convert_distributed

    def readers() -> int:
        gc.collect()
        return sum(isinstance(o, VocReader) for o in gc.get_objects())

    before, during = readers(), []
    real = Registry.merge
    def merge(self, format, parts, *args, **kwargs):
        last = parts[len(parts) - 1]  # waits for the last shard, which was shipped before it ran
        during.append(readers())
        assert parts[len(parts) - 1] == last  # taken once
        return real(self, format, parts, *args, **kwargs)

    monkeypatch.setattr(Registry, "merge", merge)
    convert_distributed(data / "voc_generated", tmp_path / "out", "coco", engine="processes", workers=2, shards=3)
    assert during == [before]


def test_shard_readers_are_shipped_while_the_client_reader_is_open(data, tmp_path, monkeypatch):
    """A VOC shard reader of a large tree builds its part of the index when its task is pickled, from the
    client's index: the client's reader closes only after every task is shipped. Its ids are spooled here
    (the client's close deletes the spool), and every shard gets its part, built once, not the whole tree to list
    again."""
    from dsformats_voc import catalog
    from dsformats_voc import reader as voc_reader

    from dsformats import scaleout
    from dsformats.scaleout import convert_distributed

    monkeypatch.setattr(voc_reader, "_SHIP_LIMIT", 1)  # every tree is large: shard readers ship parts
    monkeypatch.setattr(catalog, "_FLUSH", 64)  # the client's ids go to its spool file
    events: list[str] = []
    exit, reduce = voc_reader.VocReader.__exit__, scaleout._Shipped.__reduce__
    monkeypatch.setattr(voc_reader.VocReader, "__exit__", lambda self, *exc: events.append("close") or exit(self, *exc))
    monkeypatch.setattr(scaleout._Shipped, "__reduce__", lambda self: events.append("ship") or reduce(self))
    part = voc_reader.VocReader._slice
    monkeypatch.setattr(voc_reader.VocReader, "_slice", lambda self: events.append("part") or part(self))
    source = data / "voc_generated"
    report = convert_distributed(source, tmp_path / "pool", "voc", engine="processes", workers=2, shards=7,
                                 writer_options={"save_images": True})
    assert events[:14] == ["ship", "part"] * 7 and events[14:] == ["close"]  # each part built once, then closed
    single = dsformats.convert(source, tmp_path / "single", "voc", writer_options={"save_images": True})
    assert tree(tmp_path / "pool") == tree(tmp_path / "single")
    assert report.items_written == single.items_written and sum(report.items_written.values()) == 40


def test_the_run_gives_reports_as_shards_finish_and_fails_as_one_process_would():
    """The client follows the shards through their futures: progress as they finish (any order), each report
    when asked for; a failure is raised once the shards before it are done, to a merge that asks for it or a
    later shard (the merge may take the shards before it, whose items come first), and the earliest failure in
    shard order is raised, as one process meets the first bad item first."""
    import concurrent.futures

    from dsformats.scaleout import _Ready, _Run

    told: list[tuple[int, int, int]] = []
    run = _Run(lambda *state: told.append(state))
    futures = [concurrent.futures.Future() for _ in range(3)]
    for future in futures:
        run.add(future)
    reports = [Report() for _ in range(3)]
    for number, report in enumerate(reports):
        report.wrote_item("default")
        report.items_written["default"] += number
    futures[2].set_result(reports[2])  # the last shard first
    futures[0].set_result(reports[0])
    assert run.report(0) is reports[0]
    assert told == [(2, 3, 4)]  # both finished shards, 1 + 3 items
    assert 1 not in run.reports
    futures[1].set_result(reports[1])
    parts = _Ready(3, lambda index: Path(f"part-{run.report(index).items_written['default']}"))
    assert list(parts) == [Path("part-1"), Path("part-2"), Path("part-3")] and parts[-1] == Path("part-3")
    assert parts[1:] == [Path("part-2"), Path("part-3")] and len(parts) == 3
    with pytest.raises(IndexError):
        parts[3]
    assert told[-1] == (3, 3, 6)

    for failed in ([2], [2, 1]):  # shard 2 fails first; then maybe shard 1, which is first in item order
        failing = _Run(None)
        futures = [concurrent.futures.Future() for _ in range(3)]
        for future in futures:
            failing.add(future)
        futures[2].set_exception(DatasetError("shard 2 broke"))
        later = [threading.Timer(0.2, futures[0].set_result, [Report()])]
        later.append(threading.Timer(0.4, futures[1].set_exception, [DatasetError("shard 1 broke")]) if 1 in failed
                     else threading.Timer(0.4, futures[1].set_result, [Report()]))
        for timer in later:
            timer.start()
        try:
            assert isinstance(failing.report(0), Report)  # shard 2 failed, but the merge may go on with shard 0
            if failed == [2]:
                assert isinstance(failing.report(1), Report)  # and with shard 1, done after it
            with pytest.raises(DatasetError, match=f"shard {min(failed)} broke"):
                failing.report(min(failed))  # shard 2's failure waits for shard 1
            with pytest.raises(DatasetError, match=f"shard {min(failed)} broke"):
                failing.wait(lambda run=failing: len(run.reports) == 3)  # the end of a merge
            assert futures[1].done()
        finally:
            for timer in later:
                timer.cancel()


def test_strict_refusal_and_a_declining_merge_publish_no_partials(data, tmp_path, monkeypatch):
    """``--strict`` refuses a loss found in the shards' reports after the merge, publishing nothing; a merge hook
    that declines gives the single-process conversion, with a warning. Neither leaves partials behind."""
    from dsformats.registry import Registry
    from dsformats.scaleout import convert_distributed

    with pytest.raises(DatasetError, match="strict mode: the conversion would lose data .*bbox"):
        convert_distributed(data / "coco", tmp_path / "strict", "image_zip", engine="processes", workers=2,
                            shards=3, strict=True)
    assert list(tmp_path.iterdir()) == []
    single = dsformats.convert(data / "coco", tmp_path / "single", "image_zip")
    monkeypatch.setattr(Registry, "merge", lambda self, format, parts, *rest: [parts[0], parts[-1]] and None)
    report = convert_distributed(data / "coco", tmp_path / "declined", "image_zip", engine="processes", workers=2,
                                 shards=3)
    assert tree(tmp_path / "declined") == tree(tmp_path / "single")
    assert report.items_written == single.items_written and report.dropped == single.dropped
    assert [w for w in report.warnings if "single process" in w] == [
        "converted in a single process on the client: the image_zip merge cannot give the single-process output "
        "for these partials"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["declined", "single"]


def test_processes_engine_from_the_cli(data, tmp_path):
    from dsformats.cli import main

    args = ["-i", str(data / "voc"), "-f", "coco", "-q", "--", "--save-images"]
    assert main(["convert", "-o", str(tmp_path / "one"), *args]) == 0
    assert main(["convert", "--engine", "processes", "--workers", "2", "-o", str(tmp_path / "two"), *args]) == 0
    assert tree(tmp_path / "two") == tree(tmp_path / "one")


@pytest.mark.parametrize(
    ("source", "folder", "target", "extra", "pool"),
    [("voc", "voc", "coco", [], True), ("coco", "coco", "voc", ["--", "--save-images"], True),
     ("voc", "voc", "image_zip", [], True), ("coco", "coco", "voc", [], "small"),
     ("coco", "coco", "voc.zip", [], False), ("coco", "coco", "yolo", [], True),
     ("image_zip", "image_zip", "coco", [], True), ("image_zip", "image_zip/images.zip", "voc", [], True),
     ("coco", "coco.zip", "voc", [], True), ("coco", "coco.tar", "voc", [], False),
     ("coco", "coco/annotations/instances_default.json", "voc", ["--", "--save-images"], True)],
)
def test_auto_engine_uses_the_pool_only_when_it_pays(data, tmp_path, monkeypatch, source, folder, target, extra, pool):
    """``--engine auto`` (the default): worker processes from AUTO_MIN_ITEMS items, same bytes either way."""
    from dsformats import scaleout
    from dsformats.cli import main

    pools = []
    real = scaleout._processes
    monkeypatch.setattr(scaleout, "_processes", lambda workers: pools.append(workers) or real(workers))
    monkeypatch.setattr(scaleout, "AUTO_MIN_ITEMS", 10_000 if pool == "small" else 20)
    fmt = target.removesuffix(".zip")
    out, single = tmp_path / f"auto-{target}", tmp_path / f"single-{target}"
    src = data / folder
    if folder.endswith(".tar"):  # stays in one process: every worker would read a tar again from its start
        src = tmp_path / folder
        with tarfile.open(src, "w") as packed:
            packed.add(data / "coco", arcname="coco")
    args = ["-if", source, "-i", str(src), "-f", fmt, "-q", *extra]
    assert main(["convert", "-o", str(out), *args]) == 0
    assert main(["convert", "--engine", "local", "-o", str(single), *args]) == 0
    assert pools == ([scaleout.usable_cpus()] if pool is True and scaleout.usable_cpus() > 1 else [])
    if target.endswith(".zip"):
        assert out.read_bytes() == single.read_bytes()
    else:
        assert tree(out) == tree(single)


def test_auto_engine_with_one_cpu_or_a_url_stays_in_this_process(data, tmp_path, monkeypatch):
    from dsformats import scaleout

    monkeypatch.setattr(scaleout, "AUTO_MIN_ITEMS", 1)
    monkeypatch.setattr(scaleout, "_processes", lambda workers: pytest.fail("the pool was started"))
    report = scaleout.convert_distributed(data / "coco", tmp_path / "one", "voc", engine="auto", workers=1)
    assert sum(report.items_written.values()) == 60 and not [w for w in report.warnings if "single process" in w]
    report = scaleout.convert_distributed(data / "coco", "memory://auto/out", "voc", engine="auto", workers=2)
    assert sum(report.items_written.values()) == 60


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--engine", "local", "--workers", "2"], "need --engine"),
     (["--engine", "local", "--parts-dir", "p"], "need --engine"),
     (["--engine", "processes", "--scheduler", "tcp://127.0.0.1:1"], "cannot go with --engine processes")],
)
def test_engine_options_are_checked(tmp_path, capsys, args, message):
    from dsformats.cli import main

    assert main(["convert", "-i", str(ROOT / "examples" / "coco"), "-f", "voc", "-o", str(tmp_path / "o"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_reader_shards_are_used(scheduler, tmp_path):
    """image_zip's shards(): one shard per archive of a directory of zips."""
    from dsformats.scaleout import convert_distributed

    src = ROOT / "examples" / "zips"
    options = {"reader_options": {"subset_from": "archive"}, "writer_options": {"subset_dirs": True}}
    dsformats.convert(src, tmp_path / "single", "image_zip", source_format="image_zip", **options)
    shards: list[tuple[int, int, int]] = []
    convert_distributed(src, tmp_path / "dask", "image_zip", source_format="image_zip", scheduler=scheduler,
                        progress=lambda *done: shards.append(done), **options)
    assert tree(tmp_path / "dask") == tree(tmp_path / "single")
    assert shards[-1][:2] == (2, 2)


def test_the_first_bad_item_is_the_error_raised_whichever_shard_fails_first(tmp_path):
    """The last item of shard 0 and the first of shard 1 are broken: shard 1 fails first, but one process
    meets shard 0's first, and so does the processes engine."""
    from dsformats.scaleout import convert_distributed

    src = tmp_path / "voc"
    items = [dsformats.Item(id=f"i{n}", media=dsformats.Media.from_bytes(_png(), ".png")) for n in range(40)]
    dsformats.write(items, src, "voc", options={"save_images": True})
    for n in (19, 20):  # 2 shards of 20 items
        (src / "Annotations" / f"i{n}.xml").write_text("<annotation><size>")
    with pytest.raises(DatasetError) as single:
        dsformats.convert(src, tmp_path / "single", "coco", source_format="voc")
    assert "i19.xml:1: malformed XML" in str(single.value)
    for _ in range(3):
        with pytest.raises(DatasetError) as sharded:
            convert_distributed(src, tmp_path / "sharded", "coco", source_format="voc", engine="processes", workers=2,
                                shards=2)
        assert str(sharded.value) == str(single.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["voc"]


@pytest.mark.parametrize("target", ["voc", "coco", "image_zip"])
def test_ids_that_differ_only_in_case_across_shards_are_warned_about_as_one_process_does(tmp_path, target):
    """Each shard warns about its own; the merge adds those across shards (or declines, when a shard holds two
    spellings of a name that another shard holds, and one process converts)."""
    from dsformats.scaleout import convert_distributed

    options = {"save_images": True} if target != "image_zip" else {}
    for n, names in enumerate([["a", "b", "c", "A", "d", "B"], ["ab", "AB", "c", "Ab", "d", "e"]]):
        src = tmp_path / f"src{n}"
        src.mkdir()
        with zipfile.ZipFile(src / "default.zip", "w") as archive:
            for name in names:
                archive.writestr(f"{name}.png", _png())
        single = dsformats.convert(src, tmp_path / f"single{n}", target, source_format="image_zip",
                                   writer_options=options)
        sharded = convert_distributed(src, tmp_path / f"sharded{n}", target, source_format="image_zip",
                                      writer_options=options, engine="processes", workers=2, shards=3)
        assert len(single.warnings) == 2  # a/A and b/B; ab/AB and ab/Ab, where shard 0 holds ab and AB
        assert sorted(w for w in sharded.warnings if "single process" not in w) == sorted(single.warnings)
        assert any("single process" in w for w in sharded.warnings) == (n == 1 and target != "image_zip")
        assert tree(tmp_path / f"sharded{n}") == tree(tmp_path / f"single{n}")


def test_failing_shard_publishes_nothing(scheduler, tmp_path):
    from dsformats.scaleout import convert_distributed

    src = tmp_path / "in.zip"
    with zipfile.ZipFile(src, "w") as archive:
        for n in range(12):
            archive.writestr(f"{n:02d}.jpg", b"not an image" if n == 9 else _png())
    dst = tmp_path / "out"
    with pytest.raises(DatasetError):
        convert_distributed(src, dst, "image_zip", source_format="image_zip", writer_options={"image_ext": ".bmp"},
                            scheduler=scheduler, retries=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zip"]


def test_cli_engine_dask(data, scheduler, tmp_path):
    from dsformats.cli import main

    code = main(["convert", "-i", str(data / "coco"), "-if", "coco", "-f", "image_zip", "-o", str(tmp_path / "dask"),
                 "-q", "--engine", "dask", "--scheduler", scheduler, "--", "--image-ext", ".png"])
    assert code == 0
    dsformats.convert(data / "coco", tmp_path / "single", "image_zip", writer_options={"image_ext": ".png"})
    assert tree(tmp_path / "dask") == tree(tmp_path / "single")


def test_hook_dsformats_merge(tmp_path):
    """The hook merges parts in shard order into the single-writer bytes; None for formats not its own."""
    registry = default_registry()
    header, items = generate_items(seed=1, count=8)
    dsformats.write(items, tmp_path / "single", "image_zip", header=header, options={"subset_dirs": True})
    parts = [tmp_path / "p0", tmp_path / "p1"]
    dsformats.write(items[:5], parts[0], "image_zip", header=header, options={"subset_dirs": True})
    dsformats.write(items[5:], parts[1], "image_zip", header=header, options={"subset_dirs": True})
    options = validate_options(
        registry.get("image_zip").spec.writer_options, {"subset_dirs": True}, what="writer option"
    )
    (tmp_path / "merged").mkdir()
    assert registry.merge("image_zip", parts, tmp_path / "merged", options, Report()) is True
    assert tree(tmp_path / "merged") == tree(tmp_path / "single")
    assert registry.merge("no_such_format", parts, tmp_path / "other", options, Report()) is None


def _png() -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 3), (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


def test_dead_worker_is_retried(data, scheduler, tmp_path):
    """A worker process that dies in the middle of a shard: Dask reruns the shard, the output is still exact."""
    from dask.distributed import Client

    from dsformats.scaleout import convert_distributed

    marker = tmp_path / "died"

    def die_once() -> None:
        import os

        from dsformats import dispatch

        original = dispatch.write

        def write(*args, **kwargs):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return original(*args, **kwargs)
            os._exit(1)  # the first shard to start kills its worker process

        dispatch.write = write
        dispatch._unpatched_write = original  # type: ignore[attr-defined]

    with Client(scheduler) as client:
        client.run(die_once)
        try:
            report = convert_distributed(data / "coco", tmp_path / "dask", "image_zip", source_format="coco",
                                         scheduler=scheduler, retries=0)
        finally:
            client.run(_restore_write)
    dsformats.convert(data / "coco", tmp_path / "single", "image_zip", source_format="coco")
    assert marker.exists()
    assert tree(tmp_path / "dask") == tree(tmp_path / "single")
    assert sum(report.items_written.values()) == 60


def _restore_write() -> None:
    from dsformats import dispatch

    dispatch.write = getattr(dispatch, "_unpatched_write", dispatch.write)


def test_bad_engine_arguments_are_refused(tmp_path):
    from dsformats.errors import OptionError
    from dsformats.scaleout import convert_distributed

    with pytest.raises(OptionError):
        convert_distributed(ROOT / "examples" / "zips", tmp_path / "out", "image_zip", workers=0)
    assert not (tmp_path / "out").exists()


def test_dask_converts_a_zipped_coco_as_one_process(data, scheduler, tmp_path):
    """Dask workers pickle their task's shard reader again; its COCO elements, carried in place of the zipped
    JSON, must go along (they once did not: the worker read the whole file and parsed it at the wrong places)."""
    from dsformats.scaleout import convert_distributed

    options = {"source_format": "coco", "writer_options": {"save_images": True}}
    dsformats.convert(data / "coco.zip", tmp_path / "single", "coco", **options)
    report = convert_distributed(data / "coco.zip", tmp_path / "dask", "coco", scheduler=scheduler, shards=3, **options)
    assert tree(tmp_path / "dask") == tree(tmp_path / "single")
    assert not [w for w in report.warnings if "single process" in w]
