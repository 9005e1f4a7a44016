"""Image helpers for readers and writers: suffixes, header sizes, decode, and copy-or-re-encode.

The suffix list is static, so that detection and listing never import Pillow; Pillow is imported inside
the functions that need pixels or headers.
"""

from __future__ import annotations

import io
import warnings
from typing import IO, TYPE_CHECKING

from dsformats.errors import DatasetError
from dsformats.limits import max_image_pixels

if TYPE_CHECKING:  # pragma: no cover
    from PIL.Image import Image as PILImage

    from dsformats.model import Media

__all__ = [
    "IMAGE_SUFFIXES",
    "decode",
    "encode",
    "header_size",
    "is_image_name",
    "reencode",
    "reencode_task",
    "same_encoding",
    "write_image",
]

#: Raster suffixes that Pillow reads by itself (no Ghostscript, no stub handlers, no video), lower-case.
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    """
    .apng .avif .avifs .blp .bmp .bw .cur .dcx .dds .dib .fit .fits .flc .fli .ftc .ftu .gbr .gif .icb
    .icns .ico .iim .im .j2c .j2k .jfif .jp2 .jpc .jpe .jpeg .jpf .jpg .jpx .mpo .msp .pbm .pcd .pcx .pfm
    .pgm .png .pnm .ppm .psd .pxr .qoi .ras .rgb .rgba .sgi .tga .tif .tiff .vda .vst .webp .xbm .xpm
    """.split()
)

_JPEG_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif"})
# Suffixes that name the same encoding: converting between them is a byte copy, not a re-encode.
_SAME_ENCODING = {**{s: ".jpg" for s in _JPEG_SUFFIXES}, ".tif": ".tiff"}


def same_encoding(suffix_a: str, suffix_b: str) -> bool:
    """True when both suffixes name the same file format (``.jpg`` and ``.JPEG`` do)."""
    a, b = suffix_a.lower(), suffix_b.lower()
    return _SAME_ENCODING.get(a, a) == _SAME_ENCODING.get(b, b)


def is_image_name(name: str) -> bool:
    """True when ``name`` ends with an image suffix (case-insensitive)."""
    dot = name.rfind(".")
    return dot > name.rfind("/") and name[dot:].lower() in IMAGE_SUFFIXES


def _pil():
    from PIL import Image

    return Image


def _open(media: Media, *, decoding: bool) -> tuple[PILImage, IO[bytes]]:
    """Open with Pillow; return the image and its stream, which the caller closes (Pillow does not close
    streams it was given). When ``decoding``, images over the pixel limit are an error, not a warning."""
    Image = _pil()
    stream = media.open()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error" if decoding else "ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = max_image_pixels() if decoding else None
            return Image.open(stream), stream
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        stream.close()
        raise DatasetError(
            f"image is too large to decode safely ({exc}); raise DSFORMATS_MAX_IMAGE_PIXELS to allow it", media.name
        ) from None
    except DatasetError:
        stream.close()
        raise
    except Exception as exc:  # Pillow raises many types for broken data
        stream.close()
        raise DatasetError(f"cannot read image: {exc}", media.name) from None


def header_size(media: Media) -> tuple[int, int]:
    """``(width, height)`` read from the image header; pixels are not decoded."""
    image, stream = _open(media, decoding=False)
    try:
        return image.size
    finally:
        image.close()
        stream.close()


def decode(media: Media) -> PILImage:
    """Decode ``media`` fully with Pillow and return the image."""
    image, stream = _open(media, decoding=True)
    try:
        image.load()
    except Exception as exc:
        image.close()
        raise DatasetError(f"cannot decode image: {exc}", media.name) from None
    finally:
        stream.close()
    return image


def encode(image: PILImage, suffix: str) -> bytes:
    """Encode a Pillow image for ``suffix`` (``".png"``, ``".jpg"``, ...), converting the mode if needed."""
    Image = _pil()
    Image.init()
    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None or fmt not in Image.SAVE:
        raise DatasetError(f"Pillow cannot write images with suffix {suffix!r}")
    params = {}
    if suffix.lower() in _JPEG_SUFFIXES:
        params = {"quality": 95}
        if image.mode not in ("RGB", "L", "CMYK"):
            image = image.convert("RGB")
    out = io.BytesIO()
    try:
        image.save(out, format=fmt, **params)
    except (OSError, ValueError):
        image.convert("RGBA" if "A" in image.getbands() else "RGB").save(out, format=fmt, **params)
    return out.getvalue()


def reencode(media: Media, suffix: str) -> bytes:
    """Decode ``media`` and encode it for ``suffix``; raises :class:`DatasetError` naming the media."""
    image = decode(media)
    try:
        return encode(image, suffix)
    except DatasetError as exc:
        raise DatasetError(str(exc), media.name) from None
    finally:
        image.close()


def reencode_task(payload: tuple[bytes, str, str, str]) -> bytes:
    """``reencode`` for worker processes: ``(data, source suffix, name, target suffix)`` -> encoded bytes."""
    from dsformats.model import Media

    data, source_suffix, name, suffix = payload
    return reencode(Media.from_bytes(data, source_suffix, name=name), suffix)


def write_image(media: Media, dst: IO[bytes], suffix: str) -> bool:
    """Write ``media`` into ``dst`` as an image with ``suffix``.

    The bytes are copied unchanged when the suffix names the media's own encoding; otherwise the image is
    decoded and re-encoded (before anything is written), so that the content always matches the suffix.
    Returns True when it re-encoded.
    """
    if same_encoding(suffix, media.suffix):
        media.copy_to(dst)
        return False
    dst.write(reencode(media, suffix))
    return True
