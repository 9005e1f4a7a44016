"""One test per hook: the contract each hookspec documents."""

from __future__ import annotations

from pathlib import Path

import pytest

import dsformats
from dsformats import Confidence, Detection, FormatSpec, Header, Item, Label, Option, build_registry, hookimpl


class Calls:
    """Records the keyword arguments each hook receives."""

    __name__ = "calls"

    def __init__(self):
        self.seen = {}

    @hookimpl
    def dsformats_formats(self):
        self.seen["formats"] = True
        return [FormatSpec(name="calls_fmt", annotation_kinds={"label"},
                           reader_options=(Option(name="flag", type="bool", default=False),),
                           writer_options=(Option(name="level", type="int", default=1),))]

    @hookimpl
    def dsformats_detect(self, path, probe):
        self.seen["detect"] = (path, probe.root)
        return [Detection("calls_fmt", Confidence.WEAK, "weak guess"), Detection("not_mine", Confidence.CERTAIN)]

    @hookimpl
    def dsformats_open_reader(self, format, path, options):
        if format != "calls_fmt":
            return None
        self.seen["reader"] = (path, dict(options))

        class Reader:
            header = Header()

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def items(self):
                yield Item(id="one", annotations=[Label(label="x")])

        return Reader()

    @hookimpl
    def dsformats_open_writer(self, format, path, options):
        if format != "calls_fmt":
            return None
        calls = self
        calls.seen["writer"] = (path, dict(options))

        class Writer:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return None

            def write(self, header, items, report):
                calls.seen["written"] = [item.id for item in items]
                (path / "done").write_text("ok")

        return Writer()


@pytest.fixture
def calls():
    return Calls()


@pytest.fixture
def registry(calls):
    return build_registry(plugins=[calls])


def test_hook_dsformats_formats(calls, registry):
    assert calls.seen["formats"] is True
    info = registry.get("calls_fmt")
    assert info.plugin == "calls" and info.distribution is None
    assert info.spec.annotation_kinds == {"label"}
    assert "image_zip" in registry.formats  # entry points load beside inline plugins


def test_hook_dsformats_detect(calls, registry, tmp_path):
    verdicts = registry.detect(tmp_path)
    assert calls.seen["detect"] == (tmp_path, tmp_path)
    ours = [d for d in verdicts if d.format in ("calls_fmt", "not_mine")]
    assert ours == [Detection("calls_fmt", Confidence.WEAK, "weak guess")]  # undeclared formats are ignored


def test_hook_dsformats_open_reader(calls, registry, tmp_path):
    with dsformats.read(tmp_path, "calls_fmt", options={"flag": "yes"}, registry=registry) as reader:
        assert [item.id for item in reader.items()] == ["one"]
    assert calls.seen["reader"] == (tmp_path, {"flag": True})


def test_hook_dsformats_open_writer(calls, registry, tmp_path):
    out = tmp_path / "out"
    report = dsformats.write([Item(id="a"), Item(id="b")], out, "calls_fmt", options={"level": "3"},
                             registry=registry)
    staging, options = calls.seen["writer"]
    assert options == {"level": 3}
    assert staging != out and staging.parent == out.parent and not staging.exists()
    assert calls.seen["written"] == ["a", "b"]
    assert (out / "done").read_text() == "ok"
    assert report.items_read == {"default": 2}
    assert isinstance(staging, Path)
