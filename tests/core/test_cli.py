"""The command line, run as a subprocess: commands, messages and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from dsformats.cli import main

from .conftest import LINES_PLUGIN, spec_plugin


def run(*args, env_path=None, cwd=None, **extra_env):
    env = dict(os.environ, **extra_env)
    if env_path:
        env["PYTHONPATH"] = os.pathsep.join([str(env_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "dsformats", *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd)


@pytest.fixture
def zips(tmp_path, make_image):
    folder = tmp_path / "zips"
    folder.mkdir()
    payload = {}
    for n in range(2):
        data = make_image(8 + n, 6, ".jpg", seed=n)
        with zipfile.ZipFile(folder / f"part{n}.zip", "w") as archive:
            archive.writestr(f"img/{n}.jpg", data)
        payload[f"img/{n}.jpg"] = data
    return folder, payload


def test_formats_lists_builtins_with_their_distribution():
    result = run("formats")
    assert result.returncode == 0
    line = next(line for line in result.stdout.splitlines() if line.startswith("image_zip"))
    assert " rw " in line and "dsformats 0.1.0" in line
    verbose = run("formats", "--verbose").stdout
    assert "writer options: save_images, image_ext, jobs, name, compression, subset_dirs, shards_out" in verbose
    data = json.loads(run("formats", "--json").stdout)
    entry = next(f for f in data["formats"] if f["name"] == "image_zip")
    assert entry["read"] and entry["write"] and entry["distribution"] == "dsformats"


def test_convert_detect_and_info_end_to_end(tmp_path, zips):
    folder, payload = zips
    out = tmp_path / "out"
    result = run("convert", "-i", folder, "-f", "image_zip", "-o", out, "--report", tmp_path / "r.json",
                 "--", "--name", "x.zip", "--compression", "ZIP_DEFLATED")
    assert result.returncode == 0, result.stderr
    assert "2 copied byte for byte, 0 re-encoded" in result.stdout
    with zipfile.ZipFile(out / "x.zip") as archive:
        assert {i.filename: archive.read(i) for i in archive.infolist()} == payload
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["items_written"] == {"default": 2} and report["media_copied"] == 2

    detect = run("detect", out / "x.zip")
    assert (detect.returncode, detect.stdout.strip()) == (0, "image_zip")
    explained = json.loads(run("detect", folder, "--explain", "--json").stdout)
    assert explained["formats"] == ["image_zip"]
    assert explained["detections"][0]["confidence"] == "certain"

    info = json.loads(run("info", folder, "--json", "-io", "subset_from=archive").stdout)
    assert info["items"] == 2 and info["subsets"] == {"part0": 1, "part1": 1}


def test_usage_errors_exit_2_with_one_clear_line(tmp_path, zips):
    folder, _ = zips
    unknown = run("convert", "-i", folder, "-f", "image_zp", "-o", tmp_path / "o")
    assert unknown.returncode == 2
    assert "unknown format 'image_zp'; did you mean image_zip" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    bad_option = run("convert", "-i", folder, "-f", "image_zip", "-o", tmp_path / "o", "--", "--bogus")
    assert bad_option.returncode == 2 and "unknown option(s) --bogus; valid options: --save-images" in bad_option.stderr
    bad_choice = run("convert", "-i", folder, "-f", "image_zip", "-o", tmp_path / "o", "--", "--compression", "x")
    assert bad_choice.returncode == 2 and "ZIP_STORED" in bad_choice.stderr
    bad_reader = run("convert", "-i", folder, "-if", "image_zip", "-io", "nope=1", "-f", "image_zip",
                     "-o", tmp_path / "o")
    assert bad_reader.returncode == 2 and "unknown reader option 'nope'" in bad_reader.stderr
    assert "subset_from" in bad_reader.stderr
    missing_arg = run("convert", "-i", folder)
    assert missing_arg.returncode == 2 and "required" in missing_arg.stderr
    nothing = run("detect", tmp_path / "o")
    assert nothing.returncode == 1 and "no such file or directory" in nothing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    undetected = run("convert", "-i", empty, "-f", "image_zip", "-o", tmp_path / "o")
    assert undetected.returncode == 2 and "no known format detected" in undetected.stderr
    assert not (tmp_path / "o").exists()


def test_writer_help_is_rendered_from_the_format():
    result = run("convert", "-f", "image_zip", "-i", "x", "-o", "y", "--", "-h")
    assert result.returncode == 0
    assert "--compression {ZIP_STORED,ZIP_DEFLATED,ZIP_BZIP2,ZIP_LZMA}" in result.stdout
    assert "--name NAME" in result.stdout and "(default: default.zip)" in result.stdout


def test_conversion_errors_exit_1_and_keep_existing_output(tmp_path, zips):
    folder, _ = zips
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("precious")
    result = run("convert", "-i", folder, "-f", "image_zip", "-o", out)
    assert result.returncode == 1 and "output exists" in result.stderr and "--overwrite" in result.stderr
    assert (out / "old.txt").read_text() == "precious"
    assert run("convert", "-i", folder, "-f", "image_zip", "-o", out, "--overwrite").returncode == 0
    assert sorted(p.name for p in out.iterdir()) == ["default.zip"]


def test_third_party_and_broken_plugins_through_the_cli(tmp_path, zips):
    from .conftest import FakeSite

    site = FakeSite(tmp_path / "site")
    site.root.mkdir()
    site.add("dsformats-lines", "dsformats_lines", LINES_PLUGIN, entry_name="lines")
    site.add("broken-dist", "broken_plugin", "raise ImportError('needs libfoo')")
    folder, payload = zips

    listing = run("formats", env_path=site.root)
    assert listing.returncode == 0
    assert any(line.startswith("lines") and "dsformats-lines 0.1" in line for line in listing.stdout.splitlines())
    assert "1 plugin(s) failed to load" in listing.stderr
    verbose = run("formats", "-v", env_path=site.root).stdout
    assert "load error: plugin 'broken_plugin' (distribution broken-dist)" in verbose and "needs libfoo" in verbose

    converted = run("convert", "-i", folder, "-f", "lines", "-o", tmp_path / "l", env_path=site.root)
    assert converted.returncode == 0, converted.stderr
    assert "broken_plugin" in converted.stderr  # a warning, not a failure
    assert (tmp_path / "l" / "media" / "default" / "img" / "1.jpg").read_bytes() == payload["img/1.jpg"]

    strict = run("--strict-plugins", "formats", env_path=site.root)
    assert strict.returncode == 1 and "needs libfoo" in strict.stderr

    disabled = run("formats", "-v", env_path=site.root, DSFORMATS_DISABLE_PLUGINS="lines,broken_plugin")
    assert disabled.returncode == 0 and not any(line.startswith("lines") for line in disabled.stdout.splitlines())
    assert "disabled plugin: lines" in disabled.stdout and "load error" not in disabled.stdout

    traced = run("detect", folder, env_path=site.root, DSFORMATS_TRACE_PLUGINS="1")
    assert "[dsformats trace] dsformats_detect" in traced.stderr and traced.stdout.strip() == "image_zip"


def test_ambiguous_detection_exits_3(tmp_path):
    from .conftest import FakeSite

    site = FakeSite(tmp_path / "site")
    site.root.mkdir()
    always = spec_plugin("{name}") + (
        "\nfrom dsformats import Detection, Confidence\n@hookimpl\ndef dsformats_detect(probe):\n"
        "    return Detection('{name}', Confidence.LIKELY, 'always')\n"
    )
    site.add("dist-a", "plug_a", always.replace("{name}", "fmt_a"))
    site.add("dist-b", "plug_b", always.replace("{name}", "fmt_b"))
    result = run("detect", tmp_path, env_path=site.root)
    assert result.returncode == 3 and "ambiguous: fmt_a, fmt_b" in result.stderr
    explain = run("detect", "--explain", tmp_path, env_path=site.root)
    assert "fmt_a: likely, always" in explain.stdout and "image_zip: none, no .zip archive" in explain.stdout


def test_the_command_keeps_numpy_s_blas_to_one_thread_unless_told_otherwise(monkeypatch, capsys):
    """The ``dsformats`` process sets OPENBLAS_NUM_THREADS=1 (numpy's OpenBLAS otherwise starts a spinning thread
    per core on import); a user's own value is kept, and ``main(argv)`` called as a library leaves it alone."""
    probe = ("import os, sys\nfrom dsformats.cli import main\nsys.argv = ['dsformats', 'formats']\nmain()\n"
             "import numpy\nprint('PROBE', os.environ.get('OPENBLAS_NUM_THREADS'), len(os.listdir('/proc/self/task')))")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    told = {**env, "OPENBLAS_NUM_THREADS": "2"}
    results = [subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=e, check=True)
               for e in (env, told)]
    quiet, kept = (result.stdout.split("PROBE ")[1].split() for result in results)
    assert quiet == ["1", "1"]  # one thread: numpy's import started no BLAS thread
    assert kept[0] == "2"
    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    assert main(["formats"]) == 0
    assert "OPENBLAS_NUM_THREADS" not in os.environ
    assert "coco" in capsys.readouterr().out
