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
