"""Plugin discovery: entry points, broken and duplicate plugins, disabling, hook typos, tracing."""

from __future__ import annotations

import sys

import pytest

import dsformats
from dsformats import (
    DuplicateFormatError,
    FormatSpec,
    PluginLoadError,
    UnknownFormatError,
    build_registry,
    hookimpl,
)

from .conftest import LINES_PLUGIN, spec_plugin


def test_builtin_formats_come_from_entry_points():
    registry = build_registry()
    image_zip = registry.get("image_zip")
    assert image_zip.plugin == "image_zip"
    assert image_zip.distribution == "dsformats"
    assert image_zip.version == dsformats.__version__
    assert image_zip.spec.can_read and image_zip.spec.can_write


def test_third_party_plugin_is_discovered_and_converts(fake_site, tmp_path, make_image):
    fake_site.add("dsformats-lines", "dsformats_lines", LINES_PLUGIN, entry_name="lines")
    registry = build_registry()
    info = registry.get("lines")
    assert (info.distribution, info.version, info.plugin) == ("dsformats-lines", "0.1", "lines")
    assert "lines" in registry.readers() and "lines" in registry.writers()

    data = make_image(6, 5, ".png", seed=1)
    items = [dsformats.Item(id="a/b", subset="train", media=dsformats.Media.from_bytes(data, ".png"))]
    report = dsformats.write(items, tmp_path / "out", "lines", registry=registry)
    assert report.items_written == {"train": 1} and report.media_copied == 1
    assert (tmp_path / "out" / "media" / "train" / "a" / "b.png").read_bytes() == data
    assert dsformats.detect_format(tmp_path / "out", registry=registry) == "lines"
    report = dsformats.convert(tmp_path / "out", tmp_path / "zip", "image_zip", registry=registry)
    with dsformats.read(tmp_path / "zip", registry=registry) as reader:
        got = [(i.id, i.media.read_bytes()) for i in reader.items()]
    assert got == [("a/b", data)]


def test_broken_plugin_is_reported_and_the_others_still_load(fake_site):
    fake_site.add("broken-dist", "broken_plugin", "raise ImportError('missing dependency xyz')")
    fake_site.add("other-dist", "other_plugin", spec_plugin("other"))
    registry = build_registry()
    assert "other" in registry.formats and "image_zip" in registry.formats
    (error,) = [e for e in registry.load_errors if e.plugin == "broken_plugin"]
    assert error.distribution == "broken-dist"
    assert "missing dependency xyz" in error.error
    assert "broken_plugin" in str(error) and "broken-dist" in str(error)


def test_strict_mode_makes_a_broken_plugin_fatal(fake_site, monkeypatch):
    fake_site.add("broken-dist", "broken_plugin", "raise RuntimeError('boom')")
    with pytest.raises(PluginLoadError, match="broken-dist.*boom"):
        build_registry(strict=True)
    monkeypatch.setenv("DSFORMATS_STRICT_PLUGINS", "1")
    with pytest.raises(PluginLoadError):
        build_registry()


def test_duplicate_format_names_name_both_distributions(fake_site):
    fake_site.add("dist-one", "plugin_one", spec_plugin("dupe"))
    fake_site.add("dist-two", "plugin_two", spec_plugin("dupe"))
    registry = build_registry()
    with pytest.raises(DuplicateFormatError) as info:
        registry.get("dupe")
    assert "dist-one" in str(info.value) and "dist-two" in str(info.value)
    assert "DSFORMATS_DISABLE_PLUGINS" in str(info.value)
    assert any("dupe" in e.error for e in registry.load_errors)
    assert "image_zip" in registry.formats
    with pytest.raises(DuplicateFormatError):
        build_registry(strict=True)
    # disabling one of them resolves the conflict
    assert build_registry(disabled=["plugin_two"]).get("dupe").distribution == "dist-one"


def test_disabled_plugins_are_not_loaded(fake_site, monkeypatch):
    fake_site.add("other-dist", "other_plugin", spec_plugin("other"))
    monkeypatch.setenv("DSFORMATS_DISABLE_PLUGINS", "other_plugin, image_zip")
    registry = build_registry()
    assert "other" not in registry.formats and "image_zip" not in registry.formats
    assert set(registry.disabled) == {"other_plugin", "image_zip"}
    assert "other_plugin" not in sys.modules


def test_misspelled_hook_disqualifies_the_plugin(fake_site):
    source = spec_plugin("typo") + "\n@hookimpl\ndef dsformats_detcet(path, probe):\n    return None\n"
    fake_site.add("typo-dist", "typo_plugin", source)
    registry = build_registry()
    assert "typo" not in registry.formats
    (error,) = [e for e in registry.load_errors if e.plugin == "typo_plugin"]
    assert "unknown hook 'dsformats_detcet'" in error.error and "dsformats_detect" in error.error
    with pytest.raises(PluginLoadError, match="dsformats_detcet"):
        build_registry(strict=True)


def test_wrong_hook_arguments_are_a_load_error(fake_site):
    source = spec_plugin("args").replace("def dsformats_open_reader(format, path, options)",
                                         "def dsformats_open_reader(format, path, options, extra)")
    fake_site.add("args-dist", "args_plugin", source)
    registry = build_registry()
    assert "args" not in registry.formats
    assert any(e.plugin == "args_plugin" and "extra" in e.error for e in registry.load_errors)


def test_invalid_metadata_is_a_load_error(fake_site):
    fake_site.add("bad-dist", "bad_plugin", "from dsformats import hookimpl\n"
                  "@hookimpl\ndef dsformats_formats():\n    return ['not a spec']\n")
    fake_site.add("noimpl-dist", "noimpl_plugin", "from dsformats import hookimpl, FormatSpec\n"
                  "@hookimpl\ndef dsformats_formats():\n    return [FormatSpec(name='noimpl')]\n")
    registry = build_registry()
    assert any(e.plugin == "bad_plugin" and "FormatSpec" in e.error for e in registry.load_errors)
    assert any(e.plugin == "noimpl_plugin" and "open hook" in e.error for e in registry.load_errors)
    assert "noimpl" not in registry.formats


def test_incompatible_plugin_api_version_is_refused(fake_site):
    source = spec_plugin("future").replace('description="from " + __name__', "api_version=2")
    fake_site.add("future-dist", "future_plugin", source)
    registry = build_registry()
    assert "future" not in registry.formats
    (error,) = [e for e in registry.load_errors if e.plugin == "future_plugin"]
    assert "built for dsformats plugin API 2" in error.error and "provides API 1" in error.error


def test_duplicate_entry_point_name_across_distributions(fake_site):
    fake_site.add("first-dist", "first_mod", spec_plugin("first"), entry_name="same")
    fake_site.add("second-dist", "second_mod", spec_plugin("second"), entry_name="same")
    registry = build_registry()
    assert "first" in registry.formats and "second" not in registry.formats
    assert any(e.plugin == "same" and "first-dist" in e.error for e in registry.load_errors)


class InlinePlugin:
    """A plugin object registered directly (the embedding path)."""

    __name__ = "inline"

    @hookimpl
    def dsformats_formats(self):
        return [FormatSpec(name="inline_fmt", can_read=False, can_write=False, aliases={"inline_alias": {}})]


def test_inline_plugins_aliases_and_unknown_names():
    registry = build_registry(entrypoints=False, plugins=[InlinePlugin()])
    assert list(registry.formats) == ["inline_fmt"]
    assert registry.get("inline_alias").name == "inline_fmt"
    with pytest.raises(UnknownFormatError, match="did you mean inline_fmt"):
        registry.get("inline_fmx")
    with pytest.raises(UnknownFormatError, match="cannot read"):
        registry.reader_format("inline_fmt")
    with pytest.raises(UnknownFormatError, match="cannot write"):
        registry.writer_format("inline_fmt")


def test_tracing_prints_hook_calls(capsys, tmp_path):
    registry = build_registry(trace=True)
    registry.detect(tmp_path)
    err = capsys.readouterr().err
    assert "[dsformats trace] dsformats_detect" in err


def test_building_the_registry_imports_no_heavy_module():
    import subprocess

    code = ("import sys, dsformats; r = dsformats.build_registry(); assert 'image_zip' in r.formats; "
            "heavy = [m for m in ('PIL', 'numpy', 'orjson', 'msgspec', 'json', 'defusedxml', 'pycocotools', "
            "'xml.etree') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _FakeDist:
    """A distribution whose METADATA is ``text``; ``metadata``/``version`` are the full parser's answers."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.metadata = {"Name": "parsed-name"}
        self.version = "9.9"

    def read_text(self, name: str) -> str | None:
        return self.text if name == "METADATA" else None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Metadata-Version: 2.1\nName: dsformats-extra\nVersion: 1.2.3\n\nName: body\n", ("dsformats-extra", "1.2.3")),
        ("Name:  spaced \r\nVersion:0.1\r\nSummary: x\n", ("spaced", "0.1")),
        ("Metadata-Version: 2.1\nSummary: no name here\n", ("parsed-name", "9.9")),  # falls back to the parser
        ("", ("parsed-name", "9.9")),
    ],
)
def test_distribution_name_and_version_come_from_the_metadata_head(text, expected):
    from types import SimpleNamespace

    from dsformats.registry import _dist

    assert _dist(SimpleNamespace(dist=_FakeDist(text))) == expected
    assert _dist(SimpleNamespace(dist=None)) == (None, None)


def test_building_the_registry_does_not_import_the_email_parser():
    import subprocess

    code = "import sys, dsformats; dsformats.build_registry(); print('email.parser' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
