"""Read an Ultralytics YOLO dataset lazily: data.yaml first, then one image and its label file at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from dsformats import Bbox, Categories, DatasetError, Header, Item, LabelDef, Media, Polygon
from dsformats.fileaccess import as_path, join_within, walk_files
from dsformats.imaging import is_image_name

from .schema import (
    IMAGES_DIR,
    LABEL_SUFFIX,
    LABELS_DIR,
    RESERVED_KEYS,
    SPLIT_KEYS,
    YAML_NAMES,
    class_names,
    parse_yaml,
)


def find_yaml(path: Path) -> Path:
    """The dataset's YAML file: ``path`` itself, or ``data.yaml`` (or ``data.yml``) inside it."""
    if path.is_file():
        return path
    for name in YAML_NAMES:
        if (path / name).is_file():
            return path / name
    raise DatasetError(f"no {' or '.join(YAML_NAMES)} with the class names", str(path))


def labels_dir_for(images_dir: str) -> str:
    """Ultralytics' rule: the label folder is the image folder with its last ``images`` part -> ``labels``."""
    parts = images_dir.split("/")
    for index in range(len(parts) - 1, -1, -1):
        if parts[index] == IMAGES_DIR:
            return "/".join([*parts[:index], LABELS_DIR, *parts[index + 1 :]])
    return images_dir


class _Split:
    def __init__(self, name: str, images: Path, labels: Path) -> None:
        self.name = name
        self.images = images
        self.labels = labels
        self.entries: list[tuple[str, str | None, str | None]] = []  # (id, image rel path, label rel path)


class YoloReader:
    """Items of every split listed in ``data.yaml``; item id = image path under the split folder, no suffix.

    Opening reads ``data.yaml`` and lists the folders; ``items()`` then reads one label file per item and
    the image's header (its size, to turn normalised coordinates into pixels) only when that item is reached.
    """

    def __init__(self, path: Path) -> None:
        self.path = as_path(path)
        self.header = Header()
        self._splits: list[_Split] = []
        self._names: dict[int, str] = {}

    def __enter__(self) -> YoloReader:
        yaml_path = find_yaml(self.path)
        root = yaml_path.parent
        try:
            text = yaml_path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read: {exc}", str(yaml_path)) from None
        data = parse_yaml(text, str(yaml_path))
        if data.get("kpt_shape") is not None:
            raise DatasetError("YOLO pose datasets (kpt_shape) are not supported", str(yaml_path))
        self._names = class_names(data, str(yaml_path))
        for key, value in data.items():
            if key in RESERVED_KEYS or value is None:
                continue
            if not isinstance(value, str):
                if key in SPLIT_KEYS:
                    raise DatasetError(f"split {key!r}: lists of folders are not supported", str(yaml_path))
                continue
            folder = self._resolve(root, value, f"{yaml_path}: {key}")
            if folder is None:
                if key in SPLIT_KEYS:
                    raise DatasetError(f"split {key!r}: folder {value!r} not found", str(yaml_path))
                continue
            rel = folder.relative_to(root).as_posix()
            self._splits.append(_Split(key, folder, root / labels_dir_for(rel)))
        for split in self._splits:
            self._index(split)
        labels = tuple(LabelDef(name=name) for name in self._names.values())
        self.header = Header(
            categories=Categories(labels=labels),
            subsets=[s.name for s in self._splits],
            size_hint=sum(len(s.entries) for s in self._splits),
        )
        return self

    @staticmethod
    def _resolve(root: Path, value: str, where: str) -> Path | None:
        """A split folder relative to the YAML file; Roboflow's ``../train/images`` is tried without ``../``."""
        candidates = [value]
        stripped = value
        while stripped.startswith("../"):
            stripped = stripped[3:]
            candidates.append(stripped)
        for candidate in candidates:
            if candidate.endswith(".txt"):
                raise DatasetError(f"image list files ({candidate}) are not supported", where)
            try:
                folder = join_within(root, candidate, location=where)
            except DatasetError:
                continue
            if folder.is_dir():
                return folder
        return None

    def _index(self, split: _Split) -> None:
        images: dict[str, str] = {}
        for rel in walk_files(split.images):
            if not is_image_name(rel):
                continue
            item_id = rel.rsplit(".", 1)[0]
            if item_id in images:
                raise DatasetError(
                    f"images {images[item_id]} and {rel} have the same item id {item_id!r}", str(split.images)
                )
            images[item_id] = rel
        labels: dict[str, str] = {}
        if split.labels != split.images and split.labels.is_dir():
            for rel in walk_files(split.labels):
                if rel.endswith(LABEL_SUFFIX):
                    labels[rel[: -len(LABEL_SUFFIX)]] = rel
        elif split.labels == split.images:
            labels = {i: i + LABEL_SUFFIX for i in images if (split.labels / (i + LABEL_SUFFIX)).is_file()}
        for item_id in sorted(set(images) | set(labels)):
            split.entries.append((item_id, images.get(item_id), labels.get(item_id)))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    def items(self) -> Iterator[Item]:
        """One item per image (and per label file without an image, which must then be empty)."""
        for split in self._splits:
            for item_id, image, label in split.entries:
                media = Media.from_file(split.images / image) if image else None
                annotations = self._annotations(split.labels / label, media) if label else []
                yield Item(id=item_id, subset=split.name, media=media, annotations=annotations)

    def _annotations(self, path: Path, media: Media | None) -> list[Bbox | Polygon]:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read label file: {exc}", str(path)) from None
        result: list[Bbox | Polygon] = []
        for lineno, line in enumerate(lines, 1):
            words = line.split()
            if not words:
                continue
            where = f"{path}:{lineno}"
            if media is None:
                raise DatasetError("label file without an image: coordinates are relative to the image size", where)
            try:
                cls, values = int(words[0]), [float(w) for w in words[1:]]
            except ValueError:
                raise DatasetError(f"expected 'class x y ...' numbers, got {line.strip()!r}", where) from None
            if cls not in self._names:
                raise DatasetError(f"class {cls} is not in data.yaml's names (0..{len(self._names) - 1})", where)
            width, height = media.size
            if len(values) == 4:
                cx, cy, w, h = values
                result.append(
                    Bbox(x=(cx - w / 2) * width, y=(cy - h / 2) * height, w=w * width, h=h * height,
                         label=self._names[cls])
                )
            elif len(values) >= 6 and len(values) % 2 == 0:
                points = [v * (width if n % 2 == 0 else height) for n, v in enumerate(values)]
                result.append(Polygon(points=points, label=self._names[cls]))
            else:
                raise DatasetError(
                    f"expected 4 box values or an even number (>= 6) of polygon values, got {len(values)}", where
                )
        return result
