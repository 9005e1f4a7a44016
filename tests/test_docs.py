"""Every Python example in README.md and docs/*.md runs, so that the docs cannot rot.

The fenced ``python`` blocks of one page run in order in one namespace (like a notebook), in a fresh
directory holding the small inputs the pages use: ``photos/cat.jpg``, ``photos/dog.png``, ``zips/`` (a copy
of ``examples/zips``) and ``0.png`` .. ``2.png``. A block preceded by the line ``<!-- not-executed -->``
is an illustrative fragment and is skipped. Blocks are compiled with ``from __future__ import
annotations``, so that signatures in fragments may name types they do not import. ``FormatConformance``
subclasses a page defines are run too.
"""

from __future__ import annotations
import __future__

import re
import shutil
from pathlib import Path

import pytest

from dsformats.testing import FormatConformance, random_image

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_MARK = "<!-- not-executed -->"
FENCE = re.compile(r"^```python\s*$")


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(first line number, source)`` of every executed ```python block of ``page``."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    n = 0
    while n < len(lines):
        if FENCE.match(lines[n]):
            previous = next((lines[k].strip() for k in range(n - 1, -1, -1) if lines[k].strip()), "")
            end = next(k for k in range(n + 1, len(lines)) if lines[k].startswith("```"))
            if previous != SKIP_MARK:
                blocks.append((n + 2, "\n".join(lines[n + 1 : end]) + "\n"))
            n = end
        n += 1
    return blocks


def make_inputs(root: Path) -> None:
    import random

    rng = random.Random(0)
    (root / "photos").mkdir()
    (root / "photos" / "cat.jpg").write_bytes(random_image(rng, 24, 16, ".jpg"))
    (root / "photos" / "dog.png").write_bytes(random_image(rng, 12, 20, ".png"))
    shutil.copytree(ROOT / "examples" / "zips", root / "zips")
    for n in range(3):
        (root / f"{n}.png").write_bytes(random_image(rng, 8 + n, 8, ".png"))


def test_pages_have_examples():
    assert python_blocks(ROOT / "docs" / "plugins.md") and python_blocks(ROOT / "docs" / "api.md")


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(ROOT).as_posix() for p in PAGES])
def test_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    make_inputs(work)
    monkeypatch.chdir(work)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    flags = __future__.annotations.compiler_flag
    for line, source in python_blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        code = compile(source, where, "exec", flags=flags, dont_inherit=True)
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"the example at {where} failed: {exc!r}") from exc
    kits = [v for v in namespace.values() if isinstance(v, type) and issubclass(v, FormatConformance)]
    for kit in (k for k in kits if k is not FormatConformance):
        for name in sorted(n for n in dir(kit) if n.startswith("test_")):
            method = getattr(kit(), name)
            folder = tmp_path / f"{kit.__name__}-{name}"
            folder.mkdir()
            try:
                method(folder) if "tmp_path" in method.__code__.co_varnames else method()
            except pytest.skip.Exception:
                pass
