"""Core safety against hostile inputs and hostile conditions: path checks, symlinks, SIGKILL, a full disk."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dsformats
from dsformats import DatasetError, Item, Media
from dsformats.dispatch import staged_output
from dsformats.fileaccess import Joiner, join_within, safe_relative, walk_files

from ..conftest import random_image_bytes

ROOT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------------- path checks
@pytest.mark.parametrize(
    "name",
    ["../x", "a/../../x", "/etc/passwd", "C:/x", "c:x", "C:\\x", "..\\x", "a\\b", "\\\\host\\share", "", ".", "a\x00b"],
)
def test_safe_relative_refuses_escapes_naming_the_location(name):
    with pytest.raises(DatasetError, match="^where: "):
        safe_relative(name, location="where")


@pytest.mark.parametrize("name", ["a", "a/b", "./a", "a//b", "naïve/日本 1.jpg", "a..b", "...", "ab:c"])
def test_safe_relative_accepts_odd_but_safe_names(name):
    assert ".." not in safe_relative(name).split("/")


def _safe_relative_rules(name: str) -> str | None:
    """The rules safe_relative documents, spelled out plainly: the normal form, or None when refused."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match("[A-Za-z]:", name):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return None if ".." in parts or not parts else "/".join(parts)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="ab./\\:\x00C日", max_size=9))
def test_safe_relative_gives_what_its_rules_give_on_every_name(name):
    """Its fast path for names already normal must agree with the full checks, for names near every rule."""
    expected = _safe_relative_rules(name)
    if expected is None:
        with pytest.raises(DatasetError):
            safe_relative(name)
    else:
        assert safe_relative(name) == expected


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_symlinks_out_of_the_root_are_neither_listed_nor_joined(tmp_path):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(b"s")
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "in.jpg").write_bytes(b"i")
    os.symlink(outside / "secret.jpg", root / "file-link.jpg")
    os.symlink(outside / "dir", root / "dir-link")
    os.symlink(root / "in.jpg", root / "sub" / "inner-link.jpg")  # stays inside: allowed
    os.symlink(root, root / "sub" / "loop")  # a loop is not entered
    assert list(walk_files(root)) == ["in.jpg", "sub/inner-link.jpg"]
    assert sorted(walk_files(root, ordered=False)) == ["in.jpg", "sub/inner-link.jpg"]  # same rules, any order
    with pytest.raises(DatasetError, match="symlink that points outside"):
        join_within(root, "file-link.jpg", location="x")
    with pytest.raises(DatasetError, match="symlink that points outside"):
        join_within(root, "dir-link/a.jpg", location="x")
    assert join_within(root, "sub/inner-link.jpg").is_file()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
@pytest.mark.parametrize("method", ["__call__", "text"])
def test_joiner_refuses_what_join_within_refuses_and_gives_the_same_paths(tmp_path, method):
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.jpg").write_bytes(b"s")
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "in.jpg").write_bytes(b"i")
    os.symlink(outside / "secret.jpg", root / "file-link.jpg")
    os.symlink(outside / "dir", root / "sub" / "dir-link")
    os.symlink(root / "in.jpg", root / "sub" / "inner-link.jpg")
    join = getattr(Joiner(), method)
    for name in ["in.jpg", "./sub//inner-link.jpg", "sub/deeper/missing.png", "sub/inner-link.jpg"]:
        joined = join(root, name, location=name)
        assert str(joined) == str(join_within(root, name))
        assert isinstance(joined, str if method == "text" else Path)
    for name in ["file-link.jpg", "sub/dir-link/a.jpg", "sub/dir-link/a.jpg"]:  # the folder's answer is kept
        with pytest.raises(DatasetError, match="symlink that points outside") as caught:
            join(root, name, location=f"where/{name}")
        assert caught.value.location == f"where/{name}"
    with pytest.raises(DatasetError, match="escapes"):
        join(root, "sub/../../x.jpg", location="x")
    assert Joiner().text(Path("."), "a/b.jpg") == "a/b.jpg" and Joiner().text(Path("/"), "a.jpg") == "/a.jpg"
    bounded = Joiner(boundary=root / "sub")
    with pytest.raises(DatasetError, match="images folder .* points outside"):
        getattr(bounded, method)(root, "in.jpg")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")
def test_a_joiner_tests_no_name_of_a_folder_listed_without_symlinks(tmp_path, monkeypatch):
    """``unlinked`` roots (:func:`holds_no_symlink`, one listing) skip the per-name symlink test for names
    directly inside them; a folder that holds a symlink is not one of them, and is tested name by name."""
    from dsformats.fileaccess import holds_no_symlink

    plain, linked = tmp_path / "plain", tmp_path / "linked"
    (plain / "sub").mkdir(parents=True)
    linked.mkdir()
    (plain / "a.jpg").write_bytes(b"a")
    (tmp_path / "secret.jpg").write_bytes(b"s")
    os.symlink(tmp_path / "secret.jpg", linked / "b.jpg")
    assert holds_no_symlink(plain) and not holds_no_symlink(linked) and not holds_no_symlink(tmp_path / "none")
    tested: list[str] = []
    islink = os.path.islink
    monkeypatch.setattr(os.path, "islink", lambda path: tested.append(str(path)) or islink(path))
    join = Joiner(unlinked=[plain])
    assert join.text(plain, "a.jpg") == f"{plain}/a.jpg" and tested == []
    assert join.text(plain, "sub/c.jpg") == f"{plain}/sub/c.jpg" and f"{plain}/sub/c.jpg" in tested
    with pytest.raises(DatasetError, match="symlink that points outside"):
        Joiner(unlinked=[plain]).text(linked, "b.jpg")


# ------------------------------------------------------------------------------------------------- verify
def test_verify_reports_a_dataset_that_cannot_be_opened(tmp_path):
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really")
    ((location, error),) = dsformats.verify(tmp_path / "bad.zip", "image_zip")
    assert location.endswith("bad.zip") and "zip" in str(error)


def test_verify_of_a_sound_dataset_is_empty(tmp_path):
    items = [Item(id=str(i), media=Media.from_bytes(random_image_bytes(4, 4, seed=i), ".png")) for i in range(3)]
    dsformats.write(items, tmp_path / "out", "coco", options={"save_images": True})
    assert dsformats.verify(tmp_path / "out") == []


def test_verify_lists_every_bad_file_not_just_the_first(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "in.zip", "w") as archive:
        archive.writestr("ok.png", random_image_bytes(4, 4))
        archive.writestr("cut.png", random_image_bytes(16, 16)[:40])
        archive.writestr("text.jpg", b"hello")
        archive.writestr("../evil.png", random_image_bytes(4, 4))
    locations = sorted(loc.split("!")[1] for loc, _ in dsformats.verify(tmp_path / "in.zip"))
    assert locations == ["../evil.png", "cut.png", "text.jpg"]


# ------------------------------------------------------------------------------------------ atomic output
def _run(script: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs,
    )


SLOW_WRITE = """
    import sys, time, io
    from pathlib import Path
    from PIL import Image
    import dsformats
    from dsformats import Item, Media, Bbox

    out, fmt, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])

    def png(i):
        buffer = io.BytesIO()
        Image.new("RGB", (8, 6), (i, 2 * i % 256, 3)).save(buffer, format="PNG")
        return buffer.getvalue()

    def items():
        for i in range(1000):
            if i == 20:
                marker.write_text("mid-write")
                time.sleep(60)  # killed here
            yield Item(id=f"new{i}", media=Media.from_bytes(png(i), ".png"),
                       annotations=[Bbox(x=1, y=1, w=2, h=2, label="cat")])

    dsformats.write(items(), out, fmt, overwrite=True, options={"save_images": True} if fmt != "image_zip" else {})
"""


def _snapshot(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def _staging(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if ".dsformats-" in p.name)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")
@pytest.mark.parametrize("fmt", ["image_zip", "voc", "coco"])
def test_sigkill_mid_write_keeps_the_previous_output_and_the_next_run_cleans_up(tmp_path, fmt):
    out = tmp_path / "out"
    old = [Item(id="old", media=Media.from_bytes(random_image_bytes(4, 4), ".png"))]
    options = {"save_images": True} if fmt != "image_zip" else {}
    dsformats.write(old, out, fmt, options=options)
    before = _snapshot(out)
    marker = tmp_path / "marker"
    process = _run(SLOW_WRITE, str(out), fmt, str(marker))
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the writer never got going"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert _snapshot(out) == before  # the previous output is intact
    (stale,) = _staging(tmp_path)
    assert stale.startswith(".out.dsformats-") and stale.endswith(".tmp") and any((tmp_path / stale).rglob("*"))

    new = [Item(id="new", media=Media.from_bytes(random_image_bytes(4, 4, seed=1), ".png"))]
    dsformats.write(new, out, fmt, options=options, overwrite=True)
    assert _staging(tmp_path) == []  # the killed run's staging directory is gone
    with dsformats.read(out, fmt) as reader:
        assert [i.id for i in reader.items()] == ["new"]


def test_a_running_conversions_staging_directory_is_left_alone(tmp_path):
    live = tmp_path / f".out.dsformats-{os.getppid()}-abcdef12.tmp"  # our parent is alive
    live.mkdir()
    dead = tmp_path / ".out.dsformats-999999999-abcdef12.tmp"
    dead.mkdir()
    with staged_output(tmp_path / "out") as staging:
        (staging / "f").write_text("x")
    assert _staging(tmp_path) == [live.name]


def test_a_rename_interrupted_between_old_and_new_restores_the_previous_output(tmp_path):
    previous = tmp_path / ".out.dsformats-999999999-abcdef12.old"
    previous.mkdir()
    (previous / "keep.txt").write_text("previous output")
    leftover = tmp_path / ".out.dsformats-999999999-abcdef12.tmp"
    leftover.mkdir()
    with pytest.raises(dsformats.OutputExistsError):  # the previous output is back in place, so refused
        with staged_output(tmp_path / "out"):
            pass
    assert (tmp_path / "out" / "keep.txt").read_text() == "previous output"
    assert _staging(tmp_path) == []


FULL_DISK = """
    import builtins, errno, io, os, sys

    limit = int(sys.argv[1])
    real_open = builtins.open

    class Full:
        written = 0

        def __init__(self, stream, name):
            self._stream, self._name = stream, name

        def write(self, data):
            Full.written += len(data)
            if Full.written > limit:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._name)
            return self._stream.write(data)

        def __getattr__(self, name):
            return getattr(self._stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self._stream.__exit__(*exc)

        def __iter__(self):
            return iter(self._stream)

    def full_open(file, mode="r", *args, **kwargs):
        stream = real_open(file, mode, *args, **kwargs)
        if any(m in mode for m in "wax") and ".dsformats-" in str(file):
            return Full(stream, str(file))
        return stream

    real_os_open, real_os_write, staged = os.open, os.write, {}

    def full_os_open(path, flags, *args, **kwargs):  # files written with plain system calls
        fd = real_os_open(path, flags, *args, **kwargs)
        if flags & (os.O_WRONLY | os.O_RDWR) and ".dsformats-" in str(path):
            staged[fd] = str(path)
        return fd

    def full_os_write(fd, data):
        if fd in staged:
            Full.written += len(data)
            if Full.written > limit:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), staged[fd])
        return real_os_write(fd, data)

    builtins.open = io.open = full_open
    os.open, os.write = full_os_open, full_os_write
    from dsformats.cli import main

    sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("fmt", ["image_zip", "voc", "coco"])
def test_a_full_disk_is_a_clear_error_and_removes_the_temporary_output(tmp_path, fmt):
    import zipfile

    with zipfile.ZipFile(tmp_path / "in.zip", "w") as archive:
        for i in range(30):
            archive.writestr(f"{i}.png", random_image_bytes(32, 32, seed=i))
    args = ["convert", "-i", str(tmp_path / "in.zip"), "-if", "image_zip", "-f", fmt, "-o", str(tmp_path / "out")]
    if fmt != "image_zip":
        args += ["--", "--save-images"]
    process = _run(FULL_DISK, "20000", *args)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, (stdout, stderr)
    assert "dsformats: error:" in stderr and "No space left on device" in stderr and "Traceback" not in stderr
    assert "nothing was published" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zip"]


def test_info_verify_lists_broken_images_and_exits_1(tmp_path, make_image):
    import json
    import subprocess
    import sys
    import zipfile

    good = make_image(6, 4, ".png", seed=2)
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("ok.png", good)
        archive.writestr("cut.png", good[:40])
    run = [sys.executable, "-m", "dsformats", "info", str(tmp_path / "a.zip"), "--verify"]
    text = subprocess.run(run, capture_output=True, text=True)
    assert text.returncode == 1
    assert "verify: 1 broken:" in text.stdout and "a.zip!cut.png: cannot read image" in text.stdout
    data = json.loads(subprocess.run([*run, "--json"], capture_output=True, text=True).stdout)
    assert [entry["location"] for entry in data["verify"]] == [f"{tmp_path / 'a.zip'}!cut.png"]
    with zipfile.ZipFile(tmp_path / "b.zip", "w") as archive:
        archive.writestr("ok.png", good)
    clean = subprocess.run(run[:4] + [str(tmp_path / "b.zip"), "--verify"], capture_output=True, text=True)
    assert clean.returncode == 0 and "verify: 0 broken (every image and mask decodes)" in clean.stdout
