"""The records CocoWriter spools for boxes and polygons, exact to the key order (its fast path and the general one)."""

from __future__ import annotations

import orjson
import pytest

import dsformats
from dsformats import Bbox, Caption, Categories, Header, Item, LabelDef, Mask, Points, Polygon, Rle

TRIANGLE = (0.0, 0.0, 4.0, 0.0, 0.0, 3.0)


def annotations(tmp_path, anns, header=None, item_attributes=None, **options):
    """(raw bytes of instances_default.json, report) for one 10x10 item holding ``anns``."""
    header = header or Header(categories=Categories(labels=[LabelDef(name="a", id=3), LabelDef(name="b", id=9)]))
    media = dsformats.Media(name="x.png", suffix=".png", opener=lambda: None, size=(10, 10))
    item = Item(id="x", media=media, annotations=anns, attributes=item_attributes or {"id": 5})
    out = tmp_path / "out"
    report = dsformats.write([item], out, "coco", header=header, options=options)
    return (out / "annotations" / "instances_default.json").read_bytes(), report


def elements(raw: bytes) -> list[bytes]:
    return raw.split(b'"annotations":[\n', 1)[1].rsplit(b"\n]", 1)[0].split(b",\n")


def test_box_attributes_area_crowd_score_and_nesting(tmp_path):
    box = Bbox(x=1, y=2, w=3.5, h=4, label="b", id=7, attributes={
        "area": 99, "is_crowd": True, "score": 0.5, "occluded": False, "coco_task": "instances"})
    raw, report = annotations(tmp_path, [box])
    assert elements(raw) == [b'{"id":7,"image_id":5,"category_id":9,"segmentation":[],"area":99,"bbox":[1,2,3.5,4],'
                             b'"iscrowd":1,"score":0.5,"attributes":{"occluded":false}}']
    assert report.annotations_written == {"bbox": 1}


def test_area_and_crowd_given_as_text_are_read_and_other_areas_computed(tmp_path):
    """VOC gives attributes back as text: "12.5" is an area, "False" is not crowd (it was iscrowd 1)."""
    anns = [Bbox(x=1, y=2, w=3, h=4, label="a", attributes={"area": "12.5", "is_crowd": "False"}),
            Bbox(x=1, y=2, w=3, h=4, label="a", attributes={"area": True, "is_crowd": "true"}),
            Bbox(x=1, y=2, w=3, h=4, label="a", attributes={"area": "large", "is_crowd": "0"}),
            Bbox(x=1, y=2, w=3, h=4, label="a", attributes={"area": " 7 ", "is_crowd": 1})]
    raw, _ = annotations(tmp_path, anns)
    assert elements(raw) == [
        b'{"id":1,"image_id":5,"category_id":3,"segmentation":[],"area":12.5,"bbox":[1,2,3,4],"iscrowd":0}',
        b'{"id":2,"image_id":5,"category_id":3,"segmentation":[],"area":12,"bbox":[1,2,3,4],"iscrowd":1}',
        b'{"id":3,"image_id":5,"category_id":3,"segmentation":[],"area":12,"bbox":[1,2,3,4],"iscrowd":0}',
        b'{"id":4,"image_id":5,"category_id":3,"segmentation":[],"area":7,"bbox":[1,2,3,4],"iscrowd":1}']


def test_group_merges_box_first_and_takes_the_polygon_id(tmp_path):
    polygon = Polygon(points=TRIANGLE, label="a", group=4, id=0, attributes={"b": 2, "a": 9, "area": 6.0})
    box = Bbox(x=0, y=0, w=4, h=3, label="a", group=4, id=8, attributes={"a": 1})
    second = Polygon(points=(5, 5, 6, 5, 5, 6), label="a", group=4, id=2)
    raw, report = annotations(tmp_path, [polygon, box, second])
    assert elements(raw) == [
        b'{"id":2,"image_id":5,"category_id":3,"segmentation":[[0.0,0.0,4.0,0.0,0.0,3.0],[5,5,6,5,5,6]],"area":6.0,'
        b'"bbox":[0,0,4,3],"iscrowd":0,"attributes":{"a":1,"b":2}}']
    assert list(report.annotations_written) == ["polygon", "bbox"]


def test_polygons_alone_get_box_and_pixel_area(tmp_path):
    raw, _ = annotations(tmp_path, [Polygon(points=TRIANGLE, label="a", id=3)])
    assert elements(raw) == [b'{"id":3,"image_id":5,"category_id":3,"segmentation":[[0.0,0.0,4.0,0.0,0.0,3.0]],'
                             b'"area":6.0,"bbox":[0.0,0.0,4.0,3.0],"iscrowd":0}']


def test_second_box_of_a_group_is_an_object_and_ids_repeat_fresh(tmp_path):
    anns = [Bbox(x=0, y=0, w=1, h=1, label="a", group=1, id=1), Bbox(x=0, y=0, w=2, h=2, label="a", group=1, id=1),
            Bbox(x=0, y=0, w=3, h=3, label="b", group=1, id=-4)]
    raw, _ = annotations(tmp_path, anns)
    assert [e[:40] for e in elements(raw)] == [b'{"id":1,"image_id":5,"category_id":3,"se',
                                               b'{"id":2,"image_id":5,"category_id":3,"se',
                                               b'{"id":3,"image_id":5,"category_id":9,"se']


def test_top_level_keys_and_non_json_attributes(tmp_path):
    header = Header(categories=Categories(labels=[LabelDef(name="a", id=3)]),
                    infos={"coco": {"annotation_keys": ["extra", "attributes"]}})
    anns = [Bbox(x=0, y=0, w=1, h=1, label="a", attributes={"extra": [1], "attributes": "top", "x": 1}),
            Bbox(x=0, y=0, w=1, h=1, label="a", attributes={"extra": object(), "y": 2})]
    raw, report = annotations(tmp_path, anns, header=header)
    assert elements(raw) == [
        b'{"id":1,"image_id":5,"category_id":3,"segmentation":[],"area":1,"bbox":[0,0,1,1],"iscrowd":0,'
        b'"extra":[1],"attributes":{"x":1}}',
        b'{"id":2,"image_id":5,"category_id":3,"segmentation":[],"area":1,"bbox":[0,0,1,1],"iscrowd":0,'
        b'"attributes":{"y":2}}']
    assert report.dropped == {"attribute": [1, "not JSON-serialisable"]}


@pytest.mark.parametrize(("tag", "task"), [("stuff", "stuff"), ("person_keypoints", "person_keypoints")])
def test_tagged_objects_go_to_their_task(tmp_path, tag, task):
    box = Bbox(x=0, y=0, w=2, h=2, label="a", attributes={"coco_task": tag})
    _, _ = annotations(tmp_path, [box, Bbox(x=0, y=0, w=1, h=1, label="a")])
    assert (tmp_path / "out" / "annotations" / f"{task}_default.json").is_file()


def test_records_keep_their_order_across_both_paths(tmp_path):
    rle = Rle(size=(10, 10), counts=(0, 3, 97))
    anns = [Bbox(x=0, y=0, w=1, h=1, label="a", id=4), Mask(label="b", id=4, rle=rle),
            Caption(caption="c"), Bbox(x=0, y=0, w=2, h=2, label="b", group=2),
            Points(points=(1, 1), visibility=(2,), label="b", group=2), Polygon(points=TRIANGLE, label="a")]
    raw, report = annotations(tmp_path, anns)
    records = [orjson.loads(e) for e in elements(raw)]
    assert [(r["id"], r["category_id"]) for r in records] == [(4, 3), (1, 9), (2, 9), (3, 3)]
    assert b'"iscrowd":1' in elements(raw)[1] and b'"segmentation":[[0.0' in elements(raw)[3]
    assert list(report.annotations_written) == ["caption", "bbox", "mask", "points", "polygon"]
