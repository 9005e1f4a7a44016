"""yolo-specific behaviour: data.yaml parsing, the reader, the writer, detection and errors."""

from __future__ import annotations

from pathlib import Path

import dsformats
import pytest
from dsformats import Bbox, DatasetError, Item, Label, Media, Polygon
from yolo_helpers import make_dataset, png

from dsformats_yolo.detect import looks_like_label_line
from dsformats_yolo.schema import class_names, dump_yaml, parse_yaml, quote


def read_all(path: Path) -> tuple[dsformats.Header, list[Item]]:
    with dsformats.read(path, "yolo") as reader:
        return reader.header, list(reader.items())


# ---------------------------------------------------------------------------------------------- YAML


@pytest.mark.parametrize(
    "names",
    [
        "names:\n  0: a\n  1: b c\n",
        "names:\n- a\n- b c\n",
        "names:\n  - a\n  - 'b c'\n",
        "names: [a, \"b c\"]\n",
        "names: {0: a, 1: b c}\n",
    ],
)
def test_names_in_every_ultralytics_spelling(names):
    data = parse_yaml("train: images/train  # comment\nnc: 2\n" + names)
    assert data["train"] == "images/train"
    assert class_names(data, "data.yaml") == {0: "a", 1: "b c"}


def test_dump_then_parse_round_trips_awkward_names():
    names = ["person", "traffic light", "42", "yes", "a: b", "#hash", "it's", 'say "hi"', "ünï"]
    text = dump_yaml({"train": "images/train"}, names)
    data = parse_yaml(text)
    assert list(class_names(data, "data.yaml").values()) == names
    assert data["nc"] == len(names) and data["train"] == "images/train"
    assert quote("person") == "person" and quote("1") == '"1"'


def test_yaml_errors_name_the_line():
    with pytest.raises(DatasetError, match=r"data.yaml:2"):
        parse_yaml("train: x\n  oops: 1\n")
    with pytest.raises(DatasetError, match="nc"):
        class_names(parse_yaml("nc: 3\nnames: [a, b]\n"), "data.yaml")
    with pytest.raises(DatasetError, match="names"):
        class_names(parse_yaml("train: x\n"), "data.yaml")


# ---------------------------------------------------------------------------------------------- reader


def test_reads_ultralytics_layout_in_pixels(ultralytics_dataset):
    header, items = read_all(ultralytics_dataset)
    assert header.categories.label_names == ["person", "traffic light", "it's"]
    assert header.subsets == ("train", "val")
    assert [(i.subset, i.id) for i in items] == [("train", "a"), ("train", "sub/b"), ("val", "c")]
    a = items[0]
    assert a.media.size == (40, 20)
    box, poly = a.annotations
    assert box == Bbox(x=10.0, y=5.0, w=20.0, h=10.0, label="person")
    assert isinstance(poly, Polygon) and poly.label == "traffic light"
    assert poly.points == pytest.approx((4, 2, 36, 2, 20, 18))
    assert items[1].annotations == () and items[2].annotations == ()


def test_reads_roboflow_layout(tmp_path):
    root = make_dataset(
        tmp_path / "rf",
        "train: ../train/images\nval: ../valid/images\nnc: 1\nnames: ['cell']\n",
        {
            "train/images/x.png": png(10, 10),
            "train/labels/x.txt": "0 0.5 0.5 0.2 0.4\n",
            "valid/images/y.png": png(10, 10, 1),
        },
    )
    header, items = read_all(root)
    assert header.subsets == ("train", "val")
    assert items[0].annotations == (Bbox(x=4.0, y=3.0, w=2.0, h=4.0, label="cell"),)
    assert (items[1].subset, items[1].id) == ("val", "y")


def test_reader_accepts_the_yaml_file_itself(ultralytics_dataset):
    _, items = read_all(ultralytics_dataset / "data.yaml")
    assert len(items) == 3


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("7 0.5 0.5 0.1 0.1\n", "class 7 is not in data.yaml"),
        ("0 0.5 0.5 0.1\n", "expected 4 box values"),
        ("0 0.5 x 0.1 0.1\n", "expected 'class x y"),
    ],
)
def test_bad_label_lines_name_file_and_line(tmp_path, label, message):
    root = make_dataset(
        tmp_path / "bad", "train: images/train\nnames: [a]\n",
        {"images/train/i.png": png(4, 4), "labels/train/i.txt": "0 0.5 0.5 0.2 0.2\n" + label},
    )
    with pytest.raises(DatasetError, match=message) as info:
        read_all(root)
    assert "i.txt:2" in str(info.value)


def test_label_file_without_image_is_an_error_unless_empty(tmp_path):
    root = make_dataset(
        tmp_path / "orphan", "train: images/train\nnames: [a]\n",
        {"images/train/i.png": png(4, 4), "labels/train/empty.txt": "", "labels/train/lost.txt": "0 .5 .5 .1 .1\n"},
    )
    with pytest.raises(DatasetError, match="lost.txt:1: label file without an image"):
        read_all(root)
    (root / "labels/train/lost.txt").unlink()
    _, items = read_all(root)
    assert [(i.id, i.media is None) for i in items] == [("empty", True), ("i", False)]


def test_missing_yaml_and_pose_datasets_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="data.yaml"):
        read_all(tmp_path / "empty")
    root = make_dataset(tmp_path / "pose", "train: images/train\nkpt_shape: [17, 3]\nnames: [person]\n", {})
    with pytest.raises(DatasetError, match="pose"):
        read_all(root)


# ---------------------------------------------------------------------------------------------- writer


def test_writer_lines_yaml_and_drops(tmp_path):
    media = Media.from_bytes(png(20, 10), ".png")
    item = Item(
        id="n/one",
        subset="train",
        media=media,
        annotations=[
            Bbox(x=0, y=0, w=10, h=5, label="b"),
            Polygon(points=[0, 0, 20, 0, 20, 10], label="a"),
            Bbox(x=1, y=1, w=1, h=1),
            Label(label="a"),
        ],
        attributes={"source": 1},
    )
    header = dsformats.Header(categories=dsformats.Categories(labels=[dsformats.LabelDef(name="a")]))
    report = dsformats.write([item], tmp_path / "out", "yolo", header=header)
    out = tmp_path / "out"
    assert (out / "labels/train/n/one.txt").read_text() == "1 0.25 0.25 0.5 0.5\n0 0 0 1 0 1 1\n"
    assert (out / "images/train/n/one.png").read_bytes() == media.read_bytes()
    assert parse_yaml((out / "data.yaml").read_text()) == {"train": "images/train", "nc": 2, "names": {0: "a", 1: "b"}}
    assert report.media_copied == 1
    assert report.annotations_written == {"bbox": 1, "polygon": 1}
    assert set(report.dropped) == {"label", "bbox without label", "item attribute"}


def test_image_ext_reencodes_and_no_save_images_writes_labels_only(tmp_path):
    item = Item(id="x", media=Media.from_bytes(png(8, 8), ".png"), annotations=[Bbox(x=0, y=0, w=4, h=4, label="a")])
    report = dsformats.write([item], tmp_path / "jpg", "yolo", options={"image_ext": "jpg"})
    assert report.media_reencoded == 1 and (tmp_path / "jpg/images/default/x.jpg").is_file()
    dsformats.write([item], tmp_path / "lbl", "yolo", options={"save_images": False})
    assert not (tmp_path / "lbl/images").exists()
    assert (tmp_path / "lbl/labels/default/x.txt").read_text() == "0 0.25 0.25 0.5 0.5\n"
    with pytest.raises(dsformats.OptionError, match="image suffix"):
        dsformats.write([item], tmp_path / "bad", "yolo", options={"image_ext": ".txt"})


def test_subsets_that_cannot_be_splits_are_refused(tmp_path):
    item = Item(id="x", subset="names", media=Media.from_bytes(png(4, 4), ".png"))
    with pytest.raises(DatasetError, match="cannot be a YOLO split"):
        dsformats.write([item], tmp_path / "out", "yolo")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- detection


def test_detection_levels(ultralytics_dataset, tmp_path):
    verdict = {d.format: d for d in dsformats.detect(ultralytics_dataset)}["yolo"]
    assert verdict.confidence == dsformats.Confidence.CERTAIN
    assert dsformats.detect_format(ultralytics_dataset / "data.yaml") == "yolo"
    (tmp_path / "other").mkdir()
    (tmp_path / "other/data.yaml").write_text("foo: 1\n")
    verdict = {d.format: d for d in dsformats.detect(tmp_path / "other")}["yolo"]
    assert verdict.confidence == dsformats.Confidence.NONE and "names" in verdict.reason


@pytest.mark.parametrize(
    ("line", "ok"),
    [("0 0.5 0.5 0.1 0.1", True), ("3 0.1 0.1 0.2 0.1 0.2 0.3", True), ("0 5 5 10 10", False), ("a b c d e", False)],
)
def test_label_line_shape(line, ok):
    assert looks_like_label_line(line) is ok
