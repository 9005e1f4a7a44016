"""The dispatcher: option checks before reading, streaming, duplicates, drops, atomic output."""

from __future__ import annotations

import pytest

import dsformats
from dsformats import (
    AmbiguousFormatError,
    Bbox,
    Caption,
    Confidence,
    DatasetError,
    Detection,
    DuplicateItemError,
    FormatNotFoundError,
    FormatSpec,
    Header,
    Item,
    Label,
    Media,
    Option,
    OptionError,
    OutputExistsError,
    build_registry,
    hookimpl,
)
from dsformats.policy import bad_item
from tests.core.test_model import CountedAnnotations


class Recorder:
    """An inline plugin: ``rec`` reads N generated items and writes labels to ``labels.txt``."""

    __name__ = "recorder"

    def __init__(self, count=3, fail_at=None, detect=Confidence.LIKELY):
        self.count, self.fail_at, self.confidence = count, fail_at, detect
        self.opened_readers = 0
        self.yielded = 0
        self.max_in_flight = 0

    @hookimpl
    def dsformats_formats(self):
        return [FormatSpec(name="rec", annotation_kinds={"label", "bbox"},
                           reader_options=(Option(name="count", type="int", default=None),),
                           writer_options=(Option(name="prefix", default=""),),
                           aliases={"rec_upper": {"prefix": "UP:"}})]

    @hookimpl
    def dsformats_detect(self, path, probe):
        return [Detection("rec", self.confidence, "recorder says so")]

    @hookimpl
    def dsformats_open_reader(self, format, path, options):
        if format != "rec":
            return None
        self.opened_readers += 1
        plugin = self
        count = options["count"] or self.count

        class Reader:
            header = Header(size_hint=count)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def items(self):
                for i in range(count):
                    plugin.yielded += 1
                    yield Item(id=f"n{i}", annotations=[Label(label=f"l{i}"), Caption(caption="c"),
                                                         Bbox(x=i, y=0, w=1, h=1, label="b")])

        return Reader()

    @hookimpl
    def dsformats_open_writer(self, format, path, options):
        if format != "rec":
            return None
        plugin = self

        class Writer:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def write(self, header, items, report):
                with open(path / "labels.txt", "w") as out:
                    for n, item in enumerate(items):
                        plugin.max_in_flight = max(plugin.max_in_flight, plugin.yielded - n)
                        if plugin.fail_at == n:
                            raise DatasetError("synthetic failure", f"item {item.id}")
                        for ann in item.annotations:
                            out.write(f"{options['prefix']}{item.subset}/{item.id}:{ann.kind}\n")
                            report.wrote_annotation(ann.kind)
                        report.wrote_item(item.subset)

        return Writer()


@pytest.fixture
def src(tmp_path):
    (tmp_path / "in").mkdir()
    return tmp_path / "in"


def registry_with(plugin):
    return build_registry(entrypoints=False, plugins=[plugin])


def test_convert_streams_and_reports(tmp_path, src):
    plugin = Recorder(count=5)
    report = dsformats.convert(src, tmp_path / "out", "rec", source_format="rec",
                               registry=registry_with(plugin))
    lines = (tmp_path / "out" / "labels.txt").read_text().splitlines()
    assert lines[:2] == ["default/n0:label", "default/n0:bbox"] and len(lines) == 10
    assert plugin.max_in_flight == 1  # one item at a time: nothing materialised
    assert report.items_read == {"default": 5} and report.items_written == {"default": 5}
    assert report.annotations_written == {"label": 5, "bbox": 5}
    assert report.dropped == {"caption": [5, "rec cannot store caption annotations"]}
    assert not report.lossless
    assert report.to_dict()["dropped"] == {"caption": {"count": 5, "reason": "rec cannot store caption annotations"}}
    assert "DROPPED caption: 5" in report.summary()


def test_invalid_options_fail_before_anything_is_read(tmp_path, src):
    plugin = Recorder()
    registry = registry_with(plugin)
    with pytest.raises(OptionError, match="unknown writer option 'bogus'.*valid writer option.*prefix"):
        dsformats.convert(src, tmp_path / "out", "rec", source_format="rec",
                          writer_options={"bogus": 1}, registry=registry)
    with pytest.raises(OptionError, match="reader option 'count'"):
        dsformats.convert(src, tmp_path / "out", "rec", source_format="rec",
                          reader_options={"count": "many"}, registry=registry)
    assert plugin.opened_readers == 0
    assert not (tmp_path / "out").exists()


def test_failure_leaves_no_output_and_no_temporary_files(tmp_path, src):
    plugin = Recorder(count=5, fail_at=3)
    with pytest.raises(DatasetError, match="item n3: synthetic failure"):
        dsformats.convert(src, tmp_path / "out", "rec", source_format="rec",
                          registry=registry_with(plugin))
    assert [p.name for p in tmp_path.iterdir()] == ["in"]


def test_existing_output_needs_overwrite_and_is_replaced_only_on_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        dsformats.convert(tmp_path, out, "rec", source_format="rec", registry=registry_with(Recorder()))
    assert (out / "keep.txt").read_text() == "old"
    with pytest.raises(DatasetError):
        dsformats.convert(tmp_path, out, "rec", source_format="rec", overwrite=True,
                          registry=registry_with(Recorder(fail_at=1)))
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    dsformats.convert(tmp_path, out, "rec", source_format="rec", overwrite=True, registry=registry_with(Recorder()))
    assert sorted(p.name for p in out.iterdir()) == ["labels.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # an empty directory is not "existing output"
    (tmp_path / "empty").mkdir()
    dsformats.convert(tmp_path, tmp_path / "empty", "rec", source_format="rec", registry=registry_with(Recorder()))


def test_strict_mode_refuses_loss_and_publishes_nothing(tmp_path, src):
    with pytest.raises(DatasetError, match="strict mode.*caption: 3"):
        dsformats.convert(src, tmp_path / "out", "rec", source_format="rec", strict=True,
                          registry=registry_with(Recorder()))
    assert not (tmp_path / "out").exists()


def test_alias_presets_writer_options(tmp_path, src):
    dsformats.convert(src, tmp_path / "out", "rec_upper", source_format="rec",
                      registry=registry_with(Recorder(count=1)))
    assert (tmp_path / "out" / "labels.txt").read_text().startswith("UP:default/n0:label")


def test_write_accepts_a_generator_of_user_items_and_rejects_duplicates(tmp_path):
    registry = registry_with(Recorder())

    def generate():
        yield Item(id="a", subset="s", annotations=[Label(label="x")])
        yield Item(id="a", subset="t", annotations=[Label(label="y")])

    report = dsformats.write(generate(), tmp_path / "ok", "rec", registry=registry)
    assert report.items_written == {"s": 1, "t": 1}
    assert (tmp_path / "ok" / "labels.txt").read_text() == "s/a:label\nt/a:label\n"

    def duplicated():
        yield Item(id="a/b", subset="s")
        yield Item(id="a/b", subset="s")

    with pytest.raises(DuplicateItemError, match="'a/b' in subset 's'"):
        dsformats.write(duplicated(), tmp_path / "dup", "rec", registry=registry)
    assert not (tmp_path / "dup").exists()
    with pytest.raises(TypeError, match="dsformats.Item"):
        dsformats.write([{"id": "x"}], tmp_path / "bad", "rec", registry=registry)


def test_dataset_metadata_of_another_format_is_reported_dropped_once(tmp_path):
    from dsformats.policy import partial_output

    registry = registry_with(Recorder())
    header = Header(metadata={"x licence": 2, "x info": 1}, metadata_format="x")
    report = dsformats.write([Item(id="a", subset="s")], tmp_path / "out", "rec", header=header, registry=registry)
    assert report.dropped == {"x licence": [2, "only a x writer keeps it"], "x info": [1, "only a x writer keeps it"]}
    same = Header(metadata={"rec info": 1}, metadata_format="rec")  # the target keeps its own format's records
    assert dsformats.write([], tmp_path / "same", "rec", header=same, registry=registry).lossless
    with partial_output():  # a scale-out shard: the client reports the header once, not every shard
        assert dsformats.write([], tmp_path / "part", "rec", header=header, registry=registry).lossless


def test_keypoint_schemas_and_label_lists_a_target_cannot_hold_are_reported_dropped(tmp_path):
    from dsformats.dispatch import report_metadata
    from dsformats.model import Categories, KeypointSchema, LabelDef
    from dsformats.report import Report

    categories = Categories(
        labels=[LabelDef(name="person"), LabelDef(name="car"), LabelDef(name="dog")],
        keypoints={"person": KeypointSchema(names=["head", "tail"], skeleton=[(0, 1)]),
                   "dog": KeypointSchema(names=["nose"]), "car": KeypointSchema(names=[])},  # car: says nothing
    )
    header = Header(categories=categories)
    report = dsformats.write([Item(id="a", subset="s")], tmp_path / "out", "rec", header=header,
                             registry=registry_with(Recorder()))
    assert report.dropped == {"keypoint schema": [2, "rec stores no keypoints"]}  # rec keeps labels, not points
    kinds = {
        "points": {},
        "media": {"keypoint schema": [2, "media stores no keypoints"],
                  "label definition": [3, "media stores no labels"]},
    }
    for spec in (FormatSpec(name="points", annotation_kinds={"points"}), FormatSpec(name="media")):
        report = Report()
        report_metadata(header, spec, report, registry_with(Recorder()), {})
        assert report.dropped == kinds[spec.name]
    report = Report()
    report_metadata(Header(), FormatSpec(name="media"), report, registry_with(Recorder()), {})
    assert report.lossless


class Lossy(Recorder):
    """``rec`` whose writer cannot keep label colours, reported through ``dsformats_header_losses``."""

    __name__ = "lossy"

    @hookimpl
    def dsformats_header_losses(self, format, header, options):
        if format != "rec":
            return None
        coloured = sum(1 for label in header.categories.labels if label.color)
        return [("label colour", f"rec{options['prefix']} has no colours", coloured), ("nothing", "zero", 0)]


def test_hook_dsformats_header_losses(tmp_path):
    """A plugin reports what its writer cannot keep of the header: dropped once per conversion."""
    from dsformats.model import Categories, LabelDef
    from dsformats.policy import partial_output

    registry = registry_with(Lossy())
    header = Header(categories=Categories(labels=[LabelDef(name="a", color=(1, 2, 3)), LabelDef(name="b")]))
    report = dsformats.write([Item(id="x", subset="s")], tmp_path / "out", "rec_upper", header=header,
                             registry=registry)
    assert report.dropped == {"label colour": [1, "recUP: has no colours"]}  # with the alias' preset options
    with pytest.raises(DatasetError, match=r"strict mode: .*label colour: 1"):
        dsformats.write([], tmp_path / "strict", "rec", header=header, registry=registry, strict=True)
    with partial_output():  # a scale-out shard: the client reports it, once
        assert dsformats.write([], tmp_path / "part", "rec", header=header, registry=registry).lossless
    assert registry.header_losses("other", header, {}) == []


def test_detection_outcomes(tmp_path):
    assert dsformats.detect_format(tmp_path, registry=registry_with(Recorder())) == "rec"
    with pytest.raises(FormatNotFoundError, match="use -if|give the format"):
        dsformats.detect_format(tmp_path, registry=registry_with(Recorder(detect=Confidence.NONE)))
    with pytest.raises(DatasetError, match="no such file"):
        dsformats.detect(tmp_path / "missing", registry=registry_with(Recorder()))


class Twin(Recorder):
    __name__ = "twin"

    @hookimpl
    def dsformats_formats(self):
        return [FormatSpec(name="twin")]

    @hookimpl
    def dsformats_detect(self, path, probe):
        return Detection("twin", Confidence.LIKELY, "me too")


def test_ambiguous_detection_lists_the_candidates(tmp_path):
    registry = build_registry(entrypoints=False, plugins=[Recorder(), Twin()])
    with pytest.raises(AmbiguousFormatError) as info:
        dsformats.detect_format(tmp_path, registry=registry)
    assert info.value.candidates == ["rec", "twin"] and info.value.exit_code == 3


class Crashing(Recorder):
    __name__ = "crashing"

    @hookimpl
    def dsformats_detect(self, path, probe):
        raise RuntimeError("detector bug")


def test_a_crashing_detector_is_a_verdict_not_a_crash(tmp_path):
    verdicts = build_registry(entrypoints=False, plugins=[Crashing()]).detect(tmp_path)
    assert verdicts == [Detection("rec", Confidence.NONE, "detector failed: RuntimeError('detector bug')")]


def test_same_format_conversion_is_allowed(tmp_path, make_image):
    data = make_image(4, 4, ".png", seed=9)
    dsformats.write([Item(id="x", media=Media.from_bytes(data, ".png"))], tmp_path / "a", "image_zip")
    report = dsformats.convert(tmp_path / "a", tmp_path / "b", "image_zip", writer_options={"compression": "lzma"})
    assert report.source_format == "image_zip" and report.media_copied == 1


class MediaCopier:
    """An inline plugin: ``copier`` writes each item's image bytes to ``<id>.jpg`` when ``save_images`` is on."""

    __name__ = "copier"

    @hookimpl
    def dsformats_formats(self):
        return [FormatSpec(name="copier", can_read=False, writer_options=(dsformats.SAVE_IMAGES,))]

    @hookimpl
    def dsformats_open_writer(self, format, path, options):
        if format != "copier":
            return None

        class Writer:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def write(self, header, items, report):
                for item in items:
                    if options["save_images"]:
                        try:
                            data = item.media.read_bytes()
                        except DatasetError as exc:
                            bad_item(exc)
                            continue
                        (path / f"{item.id}.jpg").write_bytes(data)
                    report.wrote_item(item.subset)

        return Writer()


def _archived_items(opens, fail=()):
    """Items whose media look like archive members (read_ahead) and count their opens."""
    import io

    def opener(item_id):
        def open_():
            opens[item_id] = opens.get(item_id, 0) + 1
            if item_id in fail:
                raise OSError("bad CRC")
            return io.BytesIO(item_id.encode() * 100)

        return open_

    for n in range(12):
        item_id = f"i{n:02}"
        yield Item(id=item_id, media=Media(name=f"a.zip!{item_id}.jpg", suffix=".jpg", opener=opener(item_id),
                                           size=(4, 3), read_ahead=True))


def test_media_are_read_ahead_only_when_the_writer_saves_images(tmp_path):
    registry = registry_with(MediaCopier())
    opens: dict[str, int] = {}
    dsformats.write(_archived_items(opens), tmp_path / "lazy", "copier", registry=registry)
    assert opens == {}  # nothing read: the writer does not need the bytes
    report = dsformats.write(_archived_items(opens), tmp_path / "copied", "copier", registry=registry,
                             options={"save_images": True})
    assert report.items_written == {"default": 12}
    assert opens == {f"i{n:02}": 1 for n in range(12)}  # each member read once, ahead of the writer
    assert {p.name: p.read_bytes() for p in (tmp_path / "copied").iterdir()} == {
        f"i{n:02}.jpg": f"i{n:02}".encode() * 100 for n in range(12)
    }


def test_a_media_that_fails_ahead_fails_in_the_writer_under_the_policy(tmp_path):
    registry = registry_with(MediaCopier())
    with pytest.raises(DatasetError) as info:
        dsformats.write(_archived_items({}, fail={"i05"}), tmp_path / "strict", "copier", registry=registry,
                        options={"save_images": True})
    assert str(info.value) == "a.zip!i05.jpg: cannot read: bad CRC"
    assert not (tmp_path / "strict").exists()
    report = dsformats.write(_archived_items({}, fail={"i05"}), tmp_path / "skip", "copier", registry=registry,
                             options={"save_images": True}, skip_bad_items=True)
    assert report.skipped == ["a.zip!i05.jpg: cannot read: bad CRC"]
    assert sorted(p.stem for p in (tmp_path / "skip").iterdir()) == [f"i{n:02}" for n in range(12) if n != 5]


def test_deferred_annotations_are_counted_without_building_and_built_only_to_drop():
    from dsformats.dispatch import _guarded
    from dsformats.model import PolyLine
    from dsformats.report import Report

    spec = FormatSpec(name="boxes", description="", annotation_kinds=("bbox",))
    box, line = Bbox(x=1, y=2, w=3, h=4, label="a"), PolyLine(points=[0, 0, 1, 1], label="a")
    kept = CountedAnnotations([box], {"bbox": 1})
    mixed = CountedAnnotations([box, line, line], {"bbox": 1, "polyline": 2})
    report = Report()
    items = list(_guarded([Item(id="a", annotations=kept), Item(id="b", annotations=mixed)], spec, report, None, None))
    assert kept.builds == 0 and items[0].deferred is kept  # nothing the target cannot store: untouched
    assert mixed.builds == 1 and items[1].deferred is None and items[1].annotations == (box,)
    assert report.dropped == {"polyline": [2, "boxes cannot store polyline annotations"]}


def test_deferred_annotations_of_kinds_the_target_holds_are_not_counted(monkeypatch):
    """``possible_kinds`` within the target's kinds: kinds() is not called; beyond them (or unknown): it is."""
    from dsformats.dispatch import _guarded
    from dsformats.report import Report

    spec = FormatSpec(name="shapes", description="", annotation_kinds=("bbox", "polygon"))
    box = Bbox(x=1, y=2, w=3, h=4, label="a")
    counted = []
    monkeypatch.setattr(CountedAnnotations, "kinds", lambda self: counted.append(self) or {"bbox": 1})
    sources = [CountedAnnotations([box]) for _ in range(3)]
    sources[0].possible_kinds = frozenset({"bbox"})
    sources[1].possible_kinds = frozenset({"bbox", "mask"})
    report = Report()
    items = list(_guarded([Item(id=str(n), annotations=s) for n, s in enumerate(sources)], spec, report, None, None))
    assert counted == sources[1:] and all(item.deferred is s for item, s in zip(items, sources, strict=True))
    assert all(s.builds == 0 for s in sources) and not report.dropped


def test_a_format_reads_files_with_its_extensions_itself():
    """``FormatSpec.reads_file``: such a file goes to the reader as it is (and may be sharded by ``auto``);
    any other archive is opened as the tree it holds."""
    spec = dsformats.FormatSpec(name="x", extensions=(".zip", ".JSON"))
    assert spec.reads_file("a/b/Data.ZIP") and spec.reads_file("instances.json")
    assert not spec.reads_file("data.zip.txt") and not spec.reads_file("zip")
    assert not dsformats.FormatSpec(name="y").reads_file("a.zip")
