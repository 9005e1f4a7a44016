"""VOC detection: Datumaro's trees and written trees are VOC with certainty; other formats are not."""

from __future__ import annotations

import pytest

import dsformats
from dsformats import Bbox, Confidence, Item

from .helpers import copy_fixture, write_file


def _voc(path):
    return next(d for d in dsformats.detect(path) if d.format == "voc")


@pytest.mark.parametrize("name", ["voc_dataset1", "voc_dataset2", "voc_dataset3"])
def test_datumaro_trees_are_voc(datumaro_fixtures, tmp_path, name):
    root = copy_fixture(datumaro_fixtures, name, tmp_path)
    assert _voc(root).confidence == Confidence.CERTAIN
    assert dsformats.detect_format(root) == "voc"


def test_written_tree_is_detected(tmp_path):
    items = [Item(id="a", annotations=[Bbox(x=0, y=0, w=1, h=1, label="cat")]), Item(id="empty")]
    dsformats.write(items, tmp_path / "out", "voc")
    assert dsformats.detect_format(tmp_path / "out") == "voc"


def test_image_zip_is_not_voc(datumaro_fixtures):
    assert _voc(datumaro_fixtures / "image_zip_dataset").confidence == Confidence.NONE
    assert dsformats.detect_format(datumaro_fixtures / "image_zip_dataset") == "image_zip"


def test_other_xml_is_not_voc(tmp_path):
    write_file(tmp_path, "Annotations/a.xml", "<?xml version='1.0'?>\n<dataset><image/></dataset>")
    verdict = _voc(tmp_path)
    assert verdict.confidence == Confidence.NONE and "<dataset>" in verdict.reason


def test_lists_beside_masks_are_likely(tmp_path):
    write_file(tmp_path, "ImageSets/Segmentation/train.txt", "a\n")
    (tmp_path / "SegmentationClass").mkdir()
    assert _voc(tmp_path).confidence == Confidence.LIKELY


def test_a_file_is_not_voc(tmp_path):
    path = write_file(tmp_path, "a.xml", "<annotation/>")
    assert _voc(path).confidence == Confidence.NONE
