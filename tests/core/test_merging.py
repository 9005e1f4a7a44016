"""dsformats.merging.merge_files: per-item files moved, list files concatenated in shard order."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dsformats import merging
from dsformats.errors import DatasetError
from dsformats.merging import merge_files


@pytest.fixture(autouse=True, params=["folder descriptors", "paths", "across file systems"])
def how_files_move(request, monkeypatch):
    """Each test runs as the OS allows: renames relative to open folders, by full paths, or copies across
    file systems (every rename fails with EXDEV)."""
    if request.param == "paths":
        monkeypatch.setattr(merging._Mover, "_FDS", False)
    elif request.param == "across file systems":
        def rename(*args, **kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(os, "rename", rename)
    return request.param


def _part(root: Path, files: dict[str, str], dirs: tuple[str, ...] = ()) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    for rel in dirs:
        (root / rel).mkdir(parents=True)
    return root


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def test_moves_items_and_concatenates_lists_in_shard_order(tmp_path):
    parts = [
        _part(tmp_path / "0", {"items/a.txt": "A", "sets/train.txt": "a\n", "meta.yaml": "0"}, dirs=("empty",)),
        _part(tmp_path / "1", {"items/sub/b.txt": "B", "sets/train.txt": "b\n", "sets/val.txt": "c\n",
                               "meta.yaml": "1"}),
        _part(tmp_path / "2", {"items/c.txt": "C", "sets/train.txt": "d\n", "meta.yaml": "2"}),
    ]
    out = tmp_path / "out"
    out.mkdir()
    merge_files(parts, out, is_list=lambda rel: rel.startswith("sets/"), exclude={"meta.yaml"})
    assert _files(out) == {
        "items/a.txt": "A", "items/c.txt": "C", "items/sub/b.txt": "B", "sets/train.txt": "a\nb\nd\n",
        "sets/val.txt": "c\n",
    }
    assert (out / "empty").is_dir()
    assert [_files(part) for part in parts] == [  # per-item files moved out; lists and excluded files stay
        {"meta.yaml": "0", "sets/train.txt": "a\n"},
        {"meta.yaml": "1", "sets/train.txt": "b\n", "sets/val.txt": "c\n"},
        {"meta.yaml": "2", "sets/train.txt": "d\n"},
    ]


@pytest.mark.parametrize("earlier", ["a file", "a dangling symlink"])
def test_a_file_written_by_two_shards_is_an_error_naming_it(tmp_path, earlier):
    parts = [_part(tmp_path / "0", {"items/a.txt": "A"}), _part(tmp_path / "1", {"items/b.txt": "B"}),
             _part(tmp_path / "2", {"items/a.txt": "other A"})]
    (tmp_path / "out").mkdir()
    if earlier == "a dangling symlink":
        (parts[0] / "items" / "a.txt").unlink()
        (parts[0] / "items" / "a.txt").symlink_to(tmp_path / "nowhere")
    with pytest.raises(DatasetError) as caught:
        merge_files(parts, tmp_path / "out")
    assert caught.value.location == "items/a.txt"
    assert str(caught.value) == (
        "items/a.txt: shard 2 and an earlier shard both wrote this file: an item id is repeated across shards"
    )
    kept = tmp_path / "out" / "items" / "a.txt"  # never overwritten
    assert kept.read_text() == "A" if earlier == "a file" else kept.readlink() == tmp_path / "nowhere"


def test_case_clashes_are_the_ones_a_single_writer_adds_across_shards():
    from dsformats.merging import case_clashes

    shards = [["a", "b", "c"], ["A", "d", "b"], ["e", "B", "Ä"], ["ä"]]
    asked: list[int] = []

    def names(index):
        asked.append(index)
        return iter(shards[index])

    # "b" again is the same name (not a clash); "B" and "A" clash with the first spellings, in shard order
    assert case_clashes(4, names) == [("a", "A"), ("b", "B"), ("Ä", "ä")]
    assert asked == [0, 1, 2, 3, 0, 1, 2, 3]  # asked again only because some folded name is in two shards
    asked.clear()
    assert case_clashes(2, lambda index: names([0, 3][index])) == []
    assert asked == [0, 3]  # nothing shared: one pass
    # a shard with two spellings of a name another shard holds: which it met first is unknown
    assert case_clashes(2, lambda index: [["x", "X"], ["x"]][index]) is None
    assert case_clashes(2, lambda index: [["x"], ["X", "x"]][index]) is None
    assert case_clashes(2, lambda index: [["x", "X"], ["y"]][index]) == []  # its own: the shard warned
