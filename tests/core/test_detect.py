"""The bounded probe and the ranking of detections."""

from __future__ import annotations

import os
import zipfile

import pytest

from dsformats import Confidence, Detection, Probe
from dsformats.detect import best_detections, scan_json_keys


def test_ranking_keeps_the_top_confidence():
    verdicts = [Detection("a", Confidence.WEAK), Detection("b", Confidence.CERTAIN), Detection("c", 30),
                Detection("d", Confidence.NONE)]
    assert [d.format for d in best_detections(verdicts)] == ["b", "c"]
    assert best_detections([Detection("d", Confidence.NONE)]) == []


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "a" / "b" / "c").mkdir(parents=True)
    (tmp_path / "top.xml").write_text('<?xml version="1.0"?>\n<!-- c -->\n<!DOCTYPE x>\n<annotation><a/></annotation>')
    (tmp_path / "a" / "one.XML").write_text("<root/>")
    (tmp_path / "a" / "b" / "deep.xml").write_text("<deep/>")
    (tmp_path / "a" / "b" / "c" / "deeper.xml").write_text("<deeper/>")
    (tmp_path / "data.json").write_bytes(b'\xef\xbb\xbf {"images": [{"a": {"b": "}"}}], "x\\"y": 1, "annotations": [')
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.writestr("i/1.jpg", b"x")
        z.writestr("2.png", b"y")
    (tmp_path / "fake.zip").write_text("not a zip")
    return tmp_path


def test_files_of_a_huge_folder_are_its_first_names_without_holding_the_folder(tmp_path, monkeypatch):
    import random

    names = [f"{i:04d}.jpg" for i in range(60)]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    real_scandir = os.scandir

    class Entry:  # a DirEntry that counts how many of its kind are alive at once
        alive = most = 0

        def __init__(self, entry):
            self._entry, self.name, self.path = entry, entry.name, entry.path
            Entry.alive += 1
            Entry.most = max(Entry.most, Entry.alive)

        def __del__(self):
            Entry.alive -= 1

        def __getattr__(self, attr):
            return getattr(self._entry, attr)

    class Shuffled:  # os.scandir in a random order, one entry at a time
        def __init__(self, folder):
            with real_scandir(folder) as inner:
                self._entries = list(inner)
            random.Random(7).shuffle(self._entries)

        def __iter__(self):
            return (Entry(entry) for entry in self._entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(os, "scandir", Shuffled)
    assert Probe(tmp_path, max_entries=7).files("*") == names[:7]
    assert Entry.most <= 9  # the 7 first names (and the ones being compared), not the 60 of the folder
    assert Probe(tmp_path).files("*.jpg", limit=3) == names[:3]


def test_zip_names_reads_only_the_first_entries(tmp_path, monkeypatch):
    from dsformats import zipstream

    with zipfile.ZipFile(tmp_path / "big.zip", "w") as z:
        for i in range(50):
            z.writestr(f"{i:03d}.png", b"p")
    parsed = []
    real = zipstream.StreamingZipReader.iter_infos

    def counting(self):
        for info in real(self):
            parsed.append(info.filename)
            yield info

    monkeypatch.setattr(zipstream.StreamingZipReader, "iter_infos", counting)
    assert Probe(tmp_path).zip_names("big.zip", limit=4) == ["000.png", "001.png", "002.png", "003.png"]
    assert parsed[:4] == ["000.png", "001.png", "002.png", "003.png"]
    assert len(parsed) <= 5  # entry by entry (one ahead at most), never the whole directory


def test_files_is_bounded_by_depth_and_matches_case_insensitively(tree):
    probe = Probe(tree)
    assert probe.files("*.xml") == ["a/b/deep.xml", "a/one.XML", "top.xml"]
    assert probe.files("*.xml", max_depth=1) == ["top.xml"]
    assert probe.files("a/*.xml") == ["a/one.XML"]
    assert len(probe.files("*", limit=2)) == 2
    assert Probe(tree, max_entries=3).files("*.xml", max_depth=9) != probe.files("*.xml", max_depth=9)


def test_content_helpers(tree):
    probe = Probe(tree)
    assert probe.xml_root("top.xml") == "annotation"
    assert probe.xml_root("data.json") is None
    assert probe.json_keys("data.json") == ["images", 'x\\"y', "annotations"]
    assert probe.json_keys("top.xml") is None
    assert probe.zip_names("z.zip") == ["i/1.jpg", "2.png"]
    assert probe.zip_names("fake.zip") is None
    assert probe.head("top.xml", 5) == b"<?xml"
    assert probe.is_dir("a") and probe.is_file("top.xml") and not probe.is_file("nope")


def test_probe_refuses_paths_outside_the_root(tree, tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.xml").write_text("<secret/>")
    os.symlink(outside / "secret.xml", tree / "link.xml")
    probe = Probe(tree)
    with pytest.raises(ValueError):
        probe.path("../x")
    assert probe.head("../" + outside.name + "/secret.xml") == b""
    assert probe.xml_root("link.xml") is None
    assert "link.xml" not in probe.files("*.xml")


def test_probe_on_a_file_root(tree):
    probe = Probe(tree / "z.zip")
    assert probe.is_file() and probe.files() == []
    assert probe.zip_names() == ["i/1.jpg", "2.png"]


def test_json_key_scan_stops_at_the_top_level():
    assert scan_json_keys(b'{"a": {"b": 1, "c": [1, {"d": 2}]}, "e": "}", "f": null}') == ["a", "e", "f"]
    assert scan_json_keys(b"[1, 2]") is None
    assert scan_json_keys(b'{"a": [1, 2, ') == ["a"]
