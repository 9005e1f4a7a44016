"""Meta checks: every hook is documented and tested; the public API is documented and light to import."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dsformats
from dsformats import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name in dir(hookspecs) if name.startswith("dsformats_"))


def test_there_are_seven_hooks():
    assert HOOKS == [
        "dsformats_detect", "dsformats_formats", "dsformats_header_losses", "dsformats_merge",
        "dsformats_open_reader", "dsformats_open_writer", "dsformats_placed_size",
    ]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    function = getattr(hookspecs, hook)
    assert function.__doc__ and len(function.__doc__) > 80
    args = ", ".join(inspect.signature(function).parameters)
    assert f"## {hook}({args})" in (ROOT / "docs" / "hooks.md").read_text()


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_has_a_test(hook):
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("test_*.py"))
    assert re.search(rf"^def test_hook_{hook}\b", sources, re.M), f"add a test named test_hook_{hook}"


def test_public_api_has_docstrings():
    missing = [name for name in dsformats.__all__
               if callable(getattr(dsformats, name)) and not (getattr(dsformats, name).__doc__ or "").strip()]
    assert missing == []


@pytest.mark.parametrize(
    "code",
    [
        "import dsformats",
        "import runpy, sys; sys.argv = ['dsformats', 'formats']; runpy.run_module('dsformats', run_name='__main__')",
        "from dsformats.cli import main; main(['convert', '-i', 'x', '-f', 'image_zip', '-o', 'y', '--', '-h'])",
    ],
)
def test_light_imports(code):
    check = (
        "\nimport sys\nheavy = sorted(m for m in ('PIL', 'numpy', 'orjson', 'msgspec', 'json', 'defusedxml',"
        " 'pycocotools', 'xml.etree.ElementTree', 'tqdm', 'dsformats_image_zip.reader', 'dsformats_image_zip.writer') "
        "if m in sys.modules)\nprint('HEAVY', heavy)"
    )
    wrapped = f"try:\n    {code}\nexcept SystemExit:\n    pass\n{check}"
    out = subprocess.run([sys.executable, "-c", wrapped], capture_output=True, text=True, check=True).stdout
    heavy = out.strip().splitlines()[-1]
    # the CLI module imports json for its --json output; nothing else heavy is allowed
    allowed = "['json']" if "cli" in code or "runpy" in code else "[]"
    assert heavy == f"HEAVY {allowed}"


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "."],
        ["mypy", "dsformats", "plugins", "--explicit-package-bases"],
    ],
    ids=["ruff", "mypy"],
)
def test_lint_and_types_are_clean(command):
    result = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
