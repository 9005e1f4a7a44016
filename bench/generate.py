"""Deterministic benchmark data: the same dataset as COCO, image_zip and (through dsformats) VOC.

    python bench/generate.py --images 10000 --objects 7 --image-size full --out /dev/shm/dsformats-bench

Images are JPEGs with smooth content and mild noise (about 37 KB at 640x480), so that they compress like
photographs. Each image has ``--objects`` objects: a polygon (with its box) for most, and a crowd RLE mask
for about 1%. The COCO JSON is written directly (not by dsformats), so the COCO source is independent of
the writer being measured.

``--formats image_zip`` writes only the zip (no COCO tree, JSON or VOC copy: the 1,000,000-image scale-out
data), and ``--archives K`` also writes the same images split into K consecutive archives under
``image_zip_parts/`` (a directory of zips, one Dask shard per archive). The images are the same for any
formats and archives.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import random
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

SIZES = {"tiny": (32, 24), "small": (160, 120), "full": (640, 480)}
FORMATS = ("coco", "voc", "image_zip")
LABELS = ["person", "car", "dog", "cat", "bicycle", "bus", "chair", "bottle", "horse", "sheep"]


def _image(rng: random.Random, width: int, height: int) -> bytes:
    """A JPEG of smooth random colour fields with mild noise (about 37 KB at 640x480)."""
    import numpy as np
    from PIL import Image

    gen = np.random.default_rng(rng.getrandbits(32))
    coarse = gen.integers(0, 256, size=(max(height // 16, 1), max(width // 16, 1), 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse, "RGB").resize((width, height), Image.BILINEAR), dtype=np.int16)
    noisy = np.clip(smooth + gen.integers(-2, 3, size=smooth.shape, dtype=np.int16), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(noisy, "RGB").save(out, "JPEG", quality=75)
    return out.getvalue()


def _object(rng: random.Random, width: int, height: int) -> tuple[list[float], list[float]]:
    """A polygon (flat xy, 10 vertices on a jittered ellipse) and its box (x, y, w, h)."""
    w = rng.uniform(0.1, 0.5) * width
    h = rng.uniform(0.1, 0.5) * height
    cx = rng.uniform(w / 2, width - w / 2)
    cy = rng.uniform(h / 2, height - h / 2)
    points = []
    for k in range(10):
        angle = 2 * math.pi * k / 10
        r = rng.uniform(0.7, 1.0)
        points += [round(cx + r * w / 2 * math.cos(angle), 2), round(cy + r * h / 2 * math.sin(angle), 2)]
    xs, ys = points[0::2], points[1::2]
    box = [min(xs), min(ys), round(max(xs) - min(xs), 2), round(max(ys) - min(ys), 2)]
    return points, box


def _crowd_rle(points: list[float], width: int, height: int) -> dict:
    """An uncompressed (counts list) RLE of the polygon, as crowd annotations usually have."""
    from pycocotools import mask as cocomask

    from dsformats.masks import bitmap_to_rle

    bitmap = cocomask.decode(cocomask.frPyObjects([points], height, width))[:, :, 0]
    return {"size": [height, width], "counts": list(bitmap_to_rle(bitmap).counts)}


def generate(out: Path, images: int, objects: int, image_size: str, seed: int = 0, *,
             formats: tuple[str, ...] = FORMATS, archives: int = 1) -> Path:
    """Write ``out/coco``, ``out/image_zip`` and ``out/voc`` (those of ``formats``; VOC needs COCO), and with
    ``archives`` > 1 ``out/image_zip_parts``; returns ``out``. Reuses a complete earlier run."""
    import orjson

    if "voc" in formats and "coco" not in formats:
        raise ValueError("the VOC copy is made from the COCO one: ask for coco too")
    marker = out / "COMPLETE"
    stamp = f"{images} {objects} {image_size} {seed}"
    if tuple(formats) != FORMATS or archives != 1:
        stamp += f" {','.join(formats)} {archives}"
    if marker.exists() and marker.read_text() == stamp:
        if "coco" in formats:
            _zip_export(out)
        return out
    shutil.rmtree(out, ignore_errors=True)
    width, height = SIZES[image_size]
    rng = random.Random(seed)
    coco = out / "coco"
    image_dir = coco / "images" / "default"
    out.mkdir(parents=True)
    if "coco" in formats:
        image_dir.mkdir(parents=True)
        (coco / "annotations").mkdir()
    records, annotations = [], []
    with contextlib.ExitStack() as stack:
        archive = parts = None
        if "image_zip" in formats:
            (out / "image_zip").mkdir()
            archive = stack.enter_context(zipfile.ZipFile(out / "image_zip" / "images.zip", "w"))
        if archives > 1:
            (out / "image_zip_parts").mkdir()
            parts = [stack.enter_context(zipfile.ZipFile(out / "image_zip_parts" / f"part-{k:03d}.zip", "w"))
                     for k in range(archives)]
        for n in range(1, images + 1):
            name = f"{n:06d}.jpg"
            data = _image(rng, width, height)
            if archive is not None:
                archive.writestr(name, data)
            if parts is not None:
                parts[(n - 1) * archives // images].writestr(name, data)
            if "coco" in formats:
                (image_dir / name).write_bytes(data)
                records.append({"id": n, "file_name": name, "width": width, "height": height})
            for _ in range(objects):  # drawn for any formats, so that the images do not depend on them
                points, box = _object(rng, width, height)
                crowd = rng.random() < 0.01
                category = rng.randrange(len(LABELS)) + 1
                if "coco" in formats:
                    annotations.append({
                        "id": len(annotations) + 1,
                        "image_id": n,
                        "category_id": category,
                        "bbox": box,
                        "area": round(box[2] * box[3] * 0.75, 2),
                        "iscrowd": int(crowd),
                        "segmentation": _crowd_rle(points, width, height) if crowd else [points],
                    })
    if "coco" not in formats:
        marker.write_text(stamp)
        return out
    doc = {
        "info": {"description": "dsformats benchmark", "version": "1"},
        "licenses": [],
        "images": records,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(LABELS)],
    }
    (coco / "annotations" / "instances_default.json").write_bytes(orjson.dumps(doc))
    if "voc" not in formats:
        _zip_export(out)
        marker.write_text(stamp)
        return out
    voc = subprocess.run(
        [sys.executable, "-m", "dsformats", "convert", "-q", "-if", "coco", "-i", str(coco), "-f", "voc",
         "-o", str(out / "voc"), "--", "--save-images", "--tasks", "detection"],
        capture_output=True, text=True,
    )
    if voc.returncode:
        raise SystemExit(f"making the VOC copy failed: {voc.stderr}")
    _zip_export(out)
    marker.write_text(stamp)
    return out


def _zip_export(out: Path) -> None:
    """``out/coco.zip``: the COCO tree under one top folder, deflated, as labelling tools export it; and
    ``out/coco-stored.zip``: the same with the JPEGs stored (not deflated), as most exporters write them."""
    for name, image_compression in (("coco.zip", zipfile.ZIP_DEFLATED), ("coco-stored.zip", zipfile.ZIP_STORED)):
        target = out / name
        if target.exists():
            continue
        partial = out / f"{name}.partial"
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted((out / "coco").rglob("*")):
                if path.is_file():
                    kind = image_compression if path.suffix.lower() == ".jpg" else zipfile.ZIP_DEFLATED
                    archive.write(path, "coco/" + path.relative_to(out / "coco").as_posix(), kind)
        partial.replace(target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--objects", type=int, default=7)
    parser.add_argument("--image-size", choices=sorted(SIZES), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="comma-separated subset of coco,voc,image_zip (default: all three; voc needs coco)")
    parser.add_argument("--archives", type=int, default=1,
                        help="also write the images split into this many zips under image_zip_parts/")
    parser.add_argument("--out", type=Path, default=Path("/dev/shm/dsformats-bench/data"))
    args = parser.parse_args()
    formats = tuple(f for f in FORMATS if f in args.formats.split(","))
    print(generate(args.out, args.images, args.objects, args.image_size, args.seed, formats=formats,
                   archives=args.archives))


if __name__ == "__main__":
    main()
