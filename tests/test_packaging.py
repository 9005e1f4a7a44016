"""A regular (non-editable) install works too: the plugin folders install as their own packages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_non_editable_install_registers_builtins_through_entry_points(tmp_path):
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    installed = sorted(p.name for p in target.iterdir() if not p.name.endswith(".dist-info"))
    assert {"dsformats", "dsformats_image_zip", "dsformats_voc", "dsformats_coco"} <= set(installed)
    assert "plugins" not in installed  # no colliding top-level package
    entry_points = next(target.glob("dsformats-*.dist-info")).joinpath("entry_points.txt").read_text()
    assert "image_zip = dsformats_image_zip" in entry_points

    code = (
        "import dsformats, dsformats_image_zip, sys; "
        "r = dsformats.build_registry(strict=True); "
        "print(dsformats.__file__); print(dsformats_image_zip.__file__); print(sorted(r.formats))"
    )
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path,
                         check=True).stdout.splitlines()
    assert out[0].startswith(str(target)) and out[1].startswith(str(target))
    assert "image_zip" in out[2]
    listing = subprocess.run([sys.executable, "-m", "dsformats", "formats"], capture_output=True, text=True,
                             env=env, cwd=tmp_path, check=True).stdout
    assert any(line.startswith("image_zip") and " rw " in line for line in listing.splitlines())
