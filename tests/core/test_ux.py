"""User experience: report accuracy against the output, --strict, --json outputs, previews, help and --version.

The report tests convert the shipped example datasets (examples/coco, examples/voc, built by
examples/make_examples.py) and count what is actually in the output.
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

import dsformats
from dsformats import Bbox, Caption, Categories, Header, Item, KeypointSchema, LabelDef, Mask, Media, Points, Polygon
from dsformats.preview import SHEET_CAPTION, SHEET_CELL, label_color, render_previews

from .conftest import spec_plugin
from .test_cli import run

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def source_counts(path: Path, fmt: str | None = None) -> tuple[Counter[str], Counter[str]]:
    """(items per subset, annotations per kind and item attributes) of a dataset, read through the model;
    the kinds also count the header's keypoint schemas and label definitions."""
    items: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    with dsformats.read(path, fmt) as reader:
        kinds["keypoint schema"] = sum(1 for schema in reader.header.categories.keypoints.values() if schema.names)
        kinds["label definition"] = len(reader.header.categories.labels)
        for item in reader.items():
            items[item.subset] += 1
            kinds.update(ann.kind for ann in item.annotations)
            kinds["item attribute"] += len(item.attributes)
    return items, kinds


def convert(tmp_path: Path, src: Path, fmt: str, *writer_args: str, name: str = "out") -> tuple[Path, dict]:
    out, report = tmp_path / name, tmp_path / f"{name}.json"
    result = run("convert", "-i", src, "-f", fmt, "-o", out, "--report", report, "--", *writer_args)
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert "DROPPED" in result.stdout if data["dropped"] else "DROPPED" not in result.stdout
    return out, data


def xml_objects(root: Path) -> tuple[int, int]:
    from defusedxml import ElementTree

    objects = parts = 0
    for xml in (root / "Annotations").rglob("*.xml"):
        tree = ElementTree.parse(xml).getroot()
        objects += len(tree.findall("object"))
        parts += len(tree.findall("object/part"))
    return objects, parts


def load(path: Path, mode: str | None = "RGB") -> Image.Image:
    """The image at ``path``, fully loaded, its file closed."""
    with Image.open(path) as image:
        image.load()
        return image.convert(mode) if mode else image.copy()


def list_lines(folder: Path) -> dict[str, int]:
    return {p.stem: len(p.read_text().split()) for p in folder.glob("*.txt") if "_" not in p.stem}


# ------------------------------------------------------------------------------------------ report accuracy


def test_report_coco_to_voc_detection_matches_the_output(tmp_path):
    src = EXAMPLES / "coco"
    items, kinds = source_counts(src)
    out, report = convert(tmp_path, src, "voc", "--tasks", "detection", "--save-images")
    assert report["source_format"] == "coco" and report["target_format"] == "voc"
    assert report["items_read"] == report["items_written"] == dict(items)
    assert list_lines(out / "ImageSets" / "Main") == dict(items)
    # every polygon, mask, keypoint set and caption of the source is reported as dropped, with a reason, and
    # so are the keypoint schemas (names, skeleton) of its categories
    dropped = {kind: entry["count"] for kind, entry in report["dropped"].items()}
    assert kinds["keypoint schema"] > 0
    assert dropped == {k: kinds[k] for k in ("polygon", "mask", "points", "caption", "keypoint schema")}
    # the COCO image ids (item attributes) become <id> elements of the XML, as text (with a warning)
    ids = {p.stem: re.search(r"<id>(\d+)</id>", p.read_text()).group(1) for p in (out / "Annotations").glob("*.xml")}
    assert sorted(ids.values()) == sorted(str(n) for n in (1, 2, 3, 1, 2)) and kinds["item attribute"] == 5
    assert any("non-text item attribute values" in w for w in report["warnings"])
    assert report["dropped"]["keypoint schema"]["reason"] == "voc stores no keypoints"
    assert all(entry["reason"] for entry in report["dropped"].values())
    assert "segmentation" in report["dropped"]["polygon"]["reason"]
    # annotations written = <object>s and <part>s in the XML files; media copied = files in JPEGImages
    objects, parts = xml_objects(out)
    assert report["annotations_written"] == {"bbox": objects + parts} and objects == kinds["bbox"]
    assert report["media_copied"] == len(list((out / "JPEGImages").iterdir())) == sum(items.values())
    assert report["media_reencoded"] == 0 and not (out / "SegmentationClass").exists()


def test_report_coco_to_voc_segmentation_counts_painted_instances(tmp_path):
    import numpy as np

    src = EXAMPLES / "coco"
    _, kinds = source_counts(src)
    out, report = convert(tmp_path, src, "voc")
    written = report["annotations_written"]
    assert written["polygon"] == kinds["polygon"] and written["mask"] == kinds["mask"]
    instances = 0
    for png in (out / "SegmentationObject").glob("*.png"):
        values = set(np.unique(np.asarray(load(png, None))).tolist()) - {0, 255}
        instances += len(values)
    assert instances == written["polygon"] + written["mask"]
    assert report["media_copied"] == 0 and not (out / "JPEGImages").exists()  # no --save-images
    assert set(report["dropped"]) == {"points", "caption", "keypoint schema"}


def test_report_voc_to_coco_matches_the_json(tmp_path):
    src = EXAMPLES / "voc"
    items, kinds = source_counts(src)
    out, report = convert(tmp_path, src, "coco", "--save-images")
    assert report["dropped"] == {} and report["items_written"] == dict(items)
    annotations = []
    for path in (out / "annotations").glob("instances_*.json"):
        annotations += json.loads(path.read_text())["annotations"]
    rles = [a for a in annotations if isinstance(a.get("segmentation"), dict)]
    assert report["annotations_written"] == {"bbox": kinds["bbox"], "mask": kinds["mask"]}
    assert len(rles) == kinds["mask"]
    images = [p for p in (out / "images").rglob("*") if p.is_file()]
    assert report["media_copied"] == len(images) == sum(items.values())


def test_report_coco_to_image_zip_drops_every_annotation(tmp_path):
    src = EXAMPLES / "coco"
    items, kinds = source_counts(src)
    out, report = convert(tmp_path, src, "image_zip", "--name", "data.zip", "--compression", "ZIP_DEFLATED")
    assert {k: v["count"] for k, v in report["dropped"].items()} == dict(kinds)  # the label list too
    assert kinds["label definition"] == len(json.loads(next((src / "annotations").glob("instances_*")).read_text())[
        "categories"])
    with zipfile.ZipFile(out / "data.zip") as archive:
        members = archive.infolist()
        assert {m.compress_type for m in members} == {zipfile.ZIP_DEFLATED}
        originals = {p.name: p.read_bytes() for p in (src / "images").rglob("*.jpg")}
        assert {m.filename.rsplit("/", 1)[-1]: archive.read(m) for m in members} == originals
    assert report["media_copied"] == len(members) == sum(items.values())
    assert report["annotations_written"] == {}


def test_strict_exits_1_and_writes_nothing(tmp_path):
    out = tmp_path / "voc"
    result = run("convert", "-i", EXAMPLES / "coco", "-f", "voc", "-o", out, "--strict", "--report", tmp_path / "r")
    assert result.returncode == 1
    assert "strict mode" in result.stderr and "points: 5" in result.stderr and "caption: 1" in result.stderr
    assert not out.exists() and not (tmp_path / "r").exists()
    assert [p.name for p in tmp_path.iterdir()] == []  # no staging directory left behind
    lossless = run("convert", "-i", EXAMPLES / "voc", "-f", "coco", "-o", tmp_path / "c", "--strict", "-q")
    assert lossless.returncode == 0 and lossless.stdout == "" and (tmp_path / "c" / "annotations").is_dir()


def test_no_progress_bar_without_a_terminal(tmp_path):
    result = run("convert", "-i", EXAMPLES / "zips", "-f", "image_zip", "-o", tmp_path / "o")
    assert result.returncode == 0 and result.stderr == ""
    assert "items read:    5 (default: 5)" in result.stdout


# ------------------------------------------------------------------------------------------- json outputs


def test_info_json_counts_subsets_labels_kinds_and_sizes():
    result = run("info", EXAMPLES / "coco", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["format"] == "coco" and info["items"] == 5 and info["subsets"] == {"train": 3, "val": 2}
    assert info["annotation_kinds"] == ["bbox", "caption", "mask", "points", "polygon"]
    assert info["annotations"] == {"bbox": 15, "caption": 1, "mask": 5, "points": 5, "polygon": 5}
    assert info["labels"] == {
        "person": {"bbox": 5, "points": 5},
        "car": {"bbox": 5, "polygon": 5},
        "tree": {"bbox": 5, "mask": 5},
    }
    assert info["images"] == {
        "with_annotations": 5,
        "without_annotations": 0,
        "without_media": 0,
        "unreadable": 0,
        "size": {"width": {"min": 96, "median": 96, "max": 96}, "height": {"min": 64, "median": 64, "max": 64}},
    }
    assert info["metadata"] == {}  # the example's info and licenses are empty placeholders
    text = run("info", EXAMPLES / "coco").stdout
    assert "dataset metadata" not in text
    assert "5 items" in text and "width: 96 / 96 / 96" in text and "car     bbox: 5, polygon: 5" in text


def test_info_sizes_median_unannotated_and_no_sizes(tmp_path, make_image):
    folder = tmp_path / "zips"
    folder.mkdir()
    with zipfile.ZipFile(folder / "a.zip", "w") as archive:
        for n, (w, h) in enumerate([(10, 40), (30, 20), (20, 30), (40, 10)]):
            archive.writestr(f"{n}.png", make_image(w, h, ".png", seed=n))
    info = json.loads(run("info", folder, "--json").stdout)
    assert info["images"]["size"] == {
        "width": {"min": 10, "median": 25, "max": 40},
        "height": {"min": 10, "median": 25, "max": 40},
    }
    assert info["images"]["without_annotations"] == 4 and info["annotation_kinds"] == [] and info["labels"] == {}
    skipped = json.loads(run("info", folder, "--json", "--no-sizes").stdout)
    assert skipped["images"]["size"] is None and skipped["items"] == 4


def test_detect_explain_lists_every_format_with_a_reason():
    result = run("detect", EXAMPLES / "voc", "--explain")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("voc: certain, Annotations/*.xml")
    assert any(line.startswith("coco: none, no annotations/") for line in lines)
    assert any(line.startswith("image_zip: none, ") for line in lines)
    assert lines[-1] == "=> voc"
    data = json.loads(run("detect", EXAMPLES / "coco", "--explain", "--json").stdout)
    assert data["formats"] == ["coco"]
    verdicts = {d["format"]: d for d in data["detections"]}
    assert {"coco", "voc", "image_zip"} <= set(verdicts)
    assert verdicts["coco"]["confidence"] == "certain" and verdicts["voc"]["confidence"] == "none"
    assert all(d["reason"] for d in data["detections"])
    assert json.loads(run("detect", EXAMPLES / "coco", "--json").stdout)["detections"] == [verdicts["coco"]]


def test_formats_json_lists_builtins_and_their_capabilities():
    data = json.loads(run("formats", "--json").stdout)
    formats = {f["name"]: f for f in data["formats"]}
    assert {"coco", "voc", "image_zip"} <= set(formats)
    assert formats["voc"]["read"] and formats["voc"]["write"]
    assert formats["voc"]["annotation_kinds"] == ["bbox", "label", "mask", "polygon"]
    assert "save_images" in formats["coco"]["writer_options"] and data["load_errors"] == []


# ------------------------------------------------------------------------------------------------ previews

BOXES = {"a": [(10, 10, 40, 30), (70, 40, 30, 25)], "b": [(5, 50, 20, 20)]}


@pytest.fixture
def drawn(tmp_path):
    """A COCO dataset of black 120x80 PNGs with known boxes, a polygon, a mask, keypoints and a caption."""
    import numpy as np

    black = io.BytesIO()
    Image.new("RGB", (120, 80)).save(black, format="PNG")
    bitmap = np.zeros((80, 120), dtype=bool)
    bitmap[60:75, 90:115] = True
    items = [
        Item(
            id="a",
            subset="train",
            media=Media.from_bytes(black.getvalue(), ".png", name="a.png"),
            annotations=[
                *(Bbox(x=x, y=y, w=w, h=h, label="car", id=n + 1) for n, (x, y, w, h) in enumerate(BOXES["a"])),
                Polygon(points=(60, 5, 110, 5, 110, 30), label="tree", id=3),
                Mask(loader=lambda: bitmap, label="tree", id=4),
                Caption(caption="two cars", id=5),
            ],
        ),
        Item(
            id="b",
            subset="val",
            media=Media.from_bytes(black.getvalue(), ".png", name="b.png"),
            annotations=[
                Bbox(x=5, y=50, w=20, h=20, label="person", id=6, group=1),
                Points(points=(40, 10, 80, 10, 60, 40), visibility=(2, 2, 1), label="person", id=6, group=1),
            ],
        ),
    ]
    categories = Categories(
        labels=[LabelDef(name="car"), LabelDef(name="tree"), LabelDef(name="person")],
        keypoints={"person": KeypointSchema(names=("l", "r", "c"), skeleton=((0, 1), (1, 2)))},
    )
    dsformats.write(items, tmp_path / "coco", "coco", header=Header(categories=categories),
                    options={"save_images": True})
    return tmp_path / "coco"


def non_black(image: Image.Image, box: tuple[int, int, int, int]) -> int:
    import numpy as np

    x, y, w, h = box
    return int(np.asarray(image.crop((x, y, x + w, y + h))).any(axis=2).sum())


def test_preview_draws_every_box_mask_keypoints_and_a_contact_sheet(tmp_path, drawn):
    out = tmp_path / "previews"
    result = render_previews(drawn, out)
    assert sorted(p.relative_to(out).as_posix() for p in result.images) == ["train/a.png", "val/b.png"]
    assert result.notes == []
    a = load(out / "train" / "a.png")
    assert a.size == (120, 80)
    for x, y, w, h in BOXES["a"]:
        assert non_black(a, (x, y, w, h)) > 0
        assert a.getpixel((x, y + h // 2)) == label_color("car")  # the box's left edge, in the label colour
    assert a.getpixel((95, 70)) != (0, 0, 0)  # inside the mask: tinted, translucent
    tint = a.getpixel((95, 70))
    assert all(c < full for c, full in zip(tint, label_color("tree"), strict=True) if full)
    assert a.getpixel((105, 10)) != (0, 0, 0)  # inside the polygon
    assert a.getpixel((60, 70)) == (0, 0, 0)  # nothing drawn there
    assert non_black(a, (0, 0, 50, 8)) > 0  # the caption banner
    b = load(out / "val" / "b.png")
    assert b.size == (120, 80) and non_black(b, BOXES["b"][0]) > 0
    assert b.getpixel((60, 10)) == label_color("person")  # the skeleton between keypoints 0 and 1
    sheet = load(result.contact_sheet)
    assert result.contact_sheet == out / "contact_sheet.png"
    assert sheet.size == (2 * SHEET_CELL, SHEET_CELL + SHEET_CAPTION)


def test_preview_cli_limits_filters_and_notes(tmp_path, drawn):
    out = tmp_path / "p"
    result = run("preview", drawn, "-o", out, "-n", "1")
    assert result.returncode == 0, result.stderr
    assert "wrote 1 preview(s)" in result.stdout and f"contact sheet: {out / 'contact_sheet.png'}" in result.stdout
    assert [p.relative_to(out).as_posix() for p in sorted(out.rglob("*.png"))] == ["contact_sheet.png", "train/a.png"]
    assert load(out / "contact_sheet.png").size == (SHEET_CELL, SHEET_CELL + SHEET_CAPTION)
    only = run("preview", drawn, "-if", "coco", "-o", tmp_path / "q", "--subset", "val")
    assert only.returncode == 0 and [p.name for p in (tmp_path / "q").rglob("*.png") if p.parent.name == "val"]
    assert not (tmp_path / "q" / "train").exists()
    ids = run("preview", drawn, "-o", tmp_path / "r", "--ids", "b", "nope")
    assert ids.returncode == 0 and (tmp_path / "r" / "val" / "b.png").is_file()
    assert "note: nope: no such item id" in ids.stderr
    none = run("preview", drawn, "-o", tmp_path / "s", "--ids", "nope")
    assert none.returncode == 1 and "no item was rendered" in none.stderr
    typo = run("preview", drawn, "-if", "cocoo", "-o", tmp_path / "t")
    assert typo.returncode == 2 and "did you mean coco" in typo.stderr


def test_preview_without_images_uses_a_blank_canvas_of_the_known_size(tmp_path, drawn):
    bare = tmp_path / "bare"
    dsformats.convert(drawn, bare, "coco")  # image records keep their size, the files are not copied
    calls = []
    result = render_previews(bare, tmp_path / "p", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 16), (2, 16)]
    assert len(result.images) == 2 and all("blank 120x80 canvas" in note for note in result.notes)
    a = load(result.images[0])
    assert a.size == (120, 80) and a.getpixel((10, 10 + 15)) == label_color("car")


def test_preview_uses_the_voc_label_colours(tmp_path):
    categories = Categories(labels=[LabelDef(name="car", color=(10, 200, 30))])
    image = io.BytesIO()
    Image.new("RGB", (64, 48)).save(image, format="PNG")
    item = Item(id="x", media=Media.from_bytes(image.getvalue(), ".png"),
                annotations=[Bbox(x=8, y=8, w=20, h=20, label="car")])
    dsformats.write([item], tmp_path / "voc", "voc", header=Header(categories=categories),
                    options={"save_images": True})
    result = render_previews(tmp_path / "voc", tmp_path / "p")
    assert load(result.images[0]).getpixel((8, 18)) == (10, 200, 30)
    assert label_color("car") == label_color("car") != label_color("cat")  # stable without label colours


def test_preview_of_the_shipped_examples(tmp_path):
    for fmt in ("coco", "voc"):
        result = render_previews(EXAMPLES / fmt, tmp_path / fmt, limit=0)
        assert len(result.images) == 5 and result.notes == []
        columns = math.ceil(math.sqrt(5))
        assert load(result.contact_sheet).size == (columns * SHEET_CELL, 2 * (SHEET_CELL + SHEET_CAPTION))


# ------------------------------------------------------------------------------------------ help and errors


def test_version_and_help_with_examples():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"dsformats {dsformats.__version__}"
    main = run("--help")
    assert main.returncode == 0 and "examples:" in main.stdout and "dsformats preview" in main.stdout
    for command in ("convert", "detect", "formats", "info", "preview"):
        helped = run(command, "--help")
        assert helped.returncode == 0 and "examples:" in helped.stdout, command
        assert f"  dsformats {command} " in helped.stdout, command


def test_missing_input_format_on_ambiguous_input_lists_candidates_and_the_flag(tmp_path):
    from .conftest import FakeSite

    site = FakeSite(tmp_path / "site")
    site.root.mkdir()
    always = spec_plugin("{name}") + (
        "\nfrom dsformats import Detection, Confidence\n@hookimpl\ndef dsformats_detect(probe):\n"
        "    return Detection('{name}', Confidence.LIKELY, 'always')\n"
    )
    site.add("dist-a", "plug_a", always.replace("{name}", "fmt_a"))
    site.add("dist-b", "plug_b", always.replace("{name}", "fmt_b"))
    data = tmp_path / "data"
    data.mkdir()
    for args in (("info", data), ("preview", data, "-o", tmp_path / "p"),
                 ("convert", "-i", data, "-f", "image_zip", "-o", tmp_path / "o")):
        result = run(*args, env_path=site.root)
        assert result.returncode == 3, (args, result.stderr)
        assert "equally likely: fmt_a, fmt_b" in result.stderr and "-if" in result.stderr


def test_skipped_items_are_counted_and_named(tmp_path, make_image):
    folder = tmp_path / "zips"
    folder.mkdir()
    with zipfile.ZipFile(folder / "a.zip", "w") as archive:
        archive.writestr("good.jpg", make_image(8, 8, ".jpg"))
        archive.writestr("bad.jpg", b"\xff\xd8 not a jpeg")
    out, report = tmp_path / "o", tmp_path / "r.json"
    result = run("convert", "-i", folder, "-f", "image_zip", "-o", out, "--skip-bad-items", "--report", report,
                 "--", "--image-ext", ".png")
    assert result.returncode == 0, result.stderr
    data = json.loads(report.read_text())
    assert len(data["skipped"]) == 1 and "bad.jpg" in data["skipped"][0]
    assert data["items_written"] == {"default": 1} and data["media_reencoded"] == 1
    assert "SKIPPED items: 1" in result.stdout and "bad.jpg" in result.stdout
    with zipfile.ZipFile(out / "default.zip") as archive:
        assert archive.namelist() == ["good.png"]


def test_coco_keypoint_objects_with_per_image_ids_read_back_once(tmp_path):
    image = io.BytesIO()
    Image.new("RGB", (32, 32)).save(image, format="PNG")
    categories = Categories(labels=[LabelDef(name="person")],
                            keypoints={"person": KeypointSchema(names=("a", "b"))})
    items = [
        Item(id=f"i{n}", media=Media.from_bytes(image.getvalue(), ".png"), annotations=[
            Bbox(x=1, y=1, w=9, h=9, label="person", id=1, group=1),  # ids restart in every image (VOC, CVAT)
            Bbox(x=20, y=20, w=5, h=5, label="person", id=2, group=2),
            Points(points=(2, 2, 8, 8), visibility=(2, 2), label="person", id=1, group=1),
        ]) for n in range(2)
    ]
    report = dsformats.write(items, tmp_path / "c", "coco", header=Header(categories=categories))
    assert report.annotations_written["bbox"] == 4
    _, kinds = source_counts(tmp_path / "c")
    assert kinds["bbox"] == 4
