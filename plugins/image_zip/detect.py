"""image_zip detection: open the archives' central directories and look at the member names."""

from __future__ import annotations

from dsformats import Confidence, Detection, Probe
from dsformats.imaging import is_image_name

from .schema import ARCHIVE_SUFFIX, FORMAT, is_junk


def _zip_verdict(probe: Probe, rel: str) -> tuple[int, list[str]] | None:
    """``(image members, other members)`` of a zip, or None when ``rel`` is not a readable zip."""
    names = probe.zip_names(rel)
    if names is None:
        return None
    payload = [n for n in names if not is_junk(n)]
    images = [n for n in payload if is_image_name(n)]
    return len(images), [n for n in payload if not is_image_name(n)]


def detect(probe: Probe) -> Detection:
    """CERTAIN for zips that hold only images, WEAK when other files sit beside them, NONE otherwise."""
    if probe.is_file():
        verdict = _zip_verdict(probe, "")
        if verdict is None:
            return Detection(FORMAT, Confidence.NONE, "not a zip archive")
        images, others = verdict
        if not images:
            return Detection(FORMAT, Confidence.NONE, "zip archive without image members")
        if others:
            return Detection(
                FORMAT, Confidence.WEAK, f"zip with {images} images but also other files (e.g. {others[0]})"
            )
        return Detection(FORMAT, Confidence.CERTAIN, f"zip archive whose {images} members are all images")

    files = [f for f in probe.files("*") if not is_junk(f)]
    archives = [f for f in files if f.lower().endswith(ARCHIVE_SUFFIX)]
    if not archives:
        return Detection(FORMAT, Confidence.NONE, "no .zip archive in the directory")
    good: list[str] = []
    mixed: list[str] = []
    for rel in archives:
        verdict = _zip_verdict(probe, rel)
        if verdict and verdict[0]:
            (mixed if verdict[1] else good).append(rel)
    if not good and not mixed:
        return Detection(FORMAT, Confidence.NONE, f"none of the {len(archives)} .zip files holds images")
    if good and not mixed and len(files) == len(archives):
        return Detection(FORMAT, Confidence.CERTAIN, f"{len(good)} zip archive(s) holding only images")
    return Detection(
        FORMAT,
        Confidence.WEAK,
        f"{len(good) + len(mixed)} zip archive(s) with images, among {len(files)} files",
    )
