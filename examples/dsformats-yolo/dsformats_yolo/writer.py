"""Write an Ultralytics YOLO dataset: images/<split>/, labels/<split>/*.txt and data.yaml, streaming."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from dsformats import Bbox, DatasetError, Header, Item, Polygon, Report
from dsformats.fileaccess import safe_relative
from dsformats.imaging import write_image

from .schema import DATA_YAML, IMAGES_DIR, LABEL_SUFFIX, LABELS_DIR, RESERVED_KEYS, dump_yaml, number


class YoloWriter:
    """Writes one label file per item (empty when it has no box or polygon) and, by default, its image.

    Class indices follow the header's label order; labels first met in items are appended. Coordinates are
    normalised by the image size, read from the image header (no decode).
    """

    def __init__(self, path: Path, *, save_images: bool = True, image_ext: str | None = None) -> None:
        self.path = Path(path)
        self.save_images = save_images
        self.image_ext = image_ext  # normalised and checked by the IMAGE_EXT option

    def __enter__(self) -> YoloWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def write(self, header: Header, items: Iterable[Item], report: Report) -> None:
        """Write every item, then data.yaml with the class names and the split folders."""
        names = list(header.categories.label_names)
        index = {name: n for n, name in enumerate(names)}
        splits: dict[str, str] = {}
        for item in items:
            if item.media is None:
                report.drop("item without image", "YOLO coordinates are relative to an image")
                for ann in item.annotations:
                    report.drop(ann.kind, "its item has no image")
                continue
            split = self._split(item.subset)
            splits.setdefault(split, f"{IMAGES_DIR}/{split}")
            if item.attributes:
                report.drop("item attribute", "YOLO stores no item attributes", len(item.attributes))
            lines = self._lines(item, index, names, report)
            label_path = self.path / LABELS_DIR / split / safe_relative(item.id + LABEL_SUFFIX)
            label_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            if self.save_images:
                suffix = self.image_ext or item.media.suffix or ".jpg"
                image_path = self.path / IMAGES_DIR / split / safe_relative(item.id + suffix)
                image_path.parent.mkdir(parents=True, exist_ok=True)
                with open(image_path, "wb") as stream:
                    report.wrote_media(write_image(item.media, stream, suffix))
            report.wrote_item(item.subset)
        (self.path / DATA_YAML).write_text(dump_yaml(splits, names), encoding="utf-8")

    @staticmethod
    def _split(subset: str) -> str:
        if "/" in subset or subset in RESERVED_KEYS:
            raise DatasetError(f"subset {subset!r} cannot be a YOLO split (a folder and a data.yaml key)")
        return safe_relative(subset, location=f"subset {subset!r}")

    @staticmethod
    def _lines(item: Item, index: dict[str, int], names: list[str], report: Report) -> list[str]:
        assert item.media is not None
        width, height = item.media.size
        lines = []
        for ann in item.annotations:
            if not isinstance(ann, (Bbox, Polygon)):
                report.drop(ann.kind, f"YOLO cannot store {ann.kind} annotations")
                continue
            if ann.label is None:
                report.drop(f"{ann.kind} without label", "a YOLO line starts with a class index")
                continue
            if ann.label not in index:
                index[ann.label] = len(names)
                names.append(ann.label)
            if ann.attributes:
                report.drop("annotation attribute", "YOLO stores no attributes", len(ann.attributes))
            if ann.group:
                report.drop("annotation group", "YOLO stores no groups")
            if isinstance(ann, Bbox):
                values = [(ann.x + ann.w / 2) / width, (ann.y + ann.h / 2) / height, ann.w / width, ann.h / height]
            else:
                values = [v / (width if n % 2 == 0 else height) for n, v in enumerate(ann.points)]
            lines.append(" ".join([str(index[ann.label]), *(number(v) for v in values)]))
            report.wrote_annotation(ann.kind)
        return lines
