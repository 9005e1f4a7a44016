"""Fake distributions with ``dsformats`` entry points, installed on a temporary ``sys.path`` entry."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

#: A complete third-party format, written only against the public API: ``lines`` stores one
#: ``<subset>/<id><suffix>`` per line in ``index.txt`` and the images under ``media/``.
LINES_PLUGIN = '''
from pathlib import Path
from dsformats import FormatSpec, Header, Item, Media, Detection, Confidence, hookimpl, SAVE_IMAGES
from dsformats.fileaccess import join_within
from dsformats.imaging import write_image

SPEC = FormatSpec(name="lines", description="a test format", annotation_kinds=(), writer_options=(SAVE_IMAGES,))

@hookimpl
def dsformats_formats():
    return [SPEC]

@hookimpl
def dsformats_detect(probe):
    if probe.is_file("index.txt"):
        return Detection("lines", Confidence.CERTAIN, "index.txt present")
    return Detection("lines", Confidence.NONE, "no index.txt")

class Reader:
    def __init__(self, path):
        self.path = Path(path)
        self.header = Header()
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return None
    def items(self):
        for line in (self.path / "index.txt").read_text().splitlines():
            subset, _, rest = line.partition("/")
            stem, dot, suffix = rest.rpartition(".")
            yield Item(id=stem, subset=subset, media=Media.from_file(join_within(self.path / "media", line)))

class Writer:
    def __init__(self, path):
        self.path = Path(path)
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        return None
    def write(self, header, items, report):
        lines = []
        for item in items:
            name = f"{item.subset}/{item.id}{item.media.suffix}"
            target = self.path / "media" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                report.wrote_media(write_image(item.media, out, item.media.suffix))
            report.wrote_item(item.subset)
            lines.append(name)
        (self.path / "index.txt").write_text("\\n".join(lines))

@hookimpl
def dsformats_open_reader(format, path, options):
    return Reader(path) if format == "lines" else None

@hookimpl
def dsformats_open_writer(format, path, options):
    return Writer(path) if format == "lines" else None
'''


def spec_plugin(format_name: str) -> str:
    """Source of a minimal plugin declaring ``format_name`` (read and write)."""
    return textwrap.dedent(f'''
        from dsformats import FormatSpec, hookimpl

        @hookimpl
        def dsformats_formats():
            return [FormatSpec(name="{format_name}", description="from " + __name__)]

        @hookimpl
        def dsformats_open_reader(format, path, options):
            return None

        @hookimpl
        def dsformats_open_writer(format, path, options):
            return None
    ''')


class FakeSite:
    """A directory on ``sys.path`` where tests create distributions with entry points."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, dist: str, module: str, source: str, entry_name: str | None = None) -> None:
        """Create distribution ``dist`` 0.1 whose entry point ``entry_name`` loads module ``module``."""
        (self.root / f"{module}.py").write_text(source)
        info = self.root / f"{dist.replace('-', '_')}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
        (info / "entry_points.txt").write_text(f"[dsformats]\n{entry_name or module} = {module}\n")
        importlib.invalidate_caches()


@pytest.fixture
def fake_site(tmp_path, monkeypatch):
    """A :class:`FakeSite` on ``sys.path``; its modules are forgotten afterwards."""
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    before = set(sys.modules)
    yield FakeSite(root)
    for name in set(sys.modules) - before:
        if getattr(sys.modules[name], "__file__", "") and str(root) in (sys.modules[name].__file__ or ""):
            del sys.modules[name]
