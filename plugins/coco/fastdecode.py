"""Typed msgspec decoders of the commonest instances annotation (a box and polygons, or an RLE mask), and of
the commonest ``images`` list.

orjson builds a dict of every element, which Python code then checks key by key. These decoders check the
common element's types in C while parsing it, and fail (with one of :data:`NOT_PLAIN`) on anything else, which
then takes the orjson path as before. What they accept, orjson parses to the same values: every key is known
(an unknown key fails), ints are JSON integers within int64 (orjson turns bigger ones into floats), numbers are
numbers (not booleans) and values nest no deeper than an RLE object (so no depth limit is reached).
"""

from __future__ import annotations

import functools
from typing import Annotated, Any

import msgspec

#: The errors that mean "not the common element": take the orjson path (which names any real problem).
NOT_PLAIN = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)

_Int = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
_Scalar = _Int | float | str | bool | None


@functools.cache
def index_decoder() -> Any:
    """Decodes an element whose kinds code the index can take from its fields (see ``reader._decoded_code``).

    Its fields: ``id``, ``image_id``, ``category_id``, ``bbox`` (floats), ``segmentation`` (lists of floats,
    an RLE object with ``size`` and ``counts``, or null), ``iscrowd``, ``area``, ``score``, ``num_keypoints``
    and ``attributes`` (scalars). ``keypoints`` is not one: such an element takes the orjson path.
    """
    rle = msgspec.defstruct(
        "PlainRle", [("size", list[_Int]), ("counts", str | list[_Int])], forbid_unknown_fields=True
    )
    annotation = msgspec.defstruct(
        "PlainAnnotation",
        [
            ("id", _Int), ("image_id", _Int), ("category_id", _Int), ("bbox", list[float]),
            ("segmentation", list[list[float]] | rle | None, None), ("iscrowd", _Int, 0),
            ("area", float | None, None), ("score", float, 0.0), ("num_keypoints", _Int | None, None),
            ("attributes", dict[str, _Scalar] | None, None),
        ],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(annotation).decode


@functools.cache
def record_decoder() -> Any:
    """Decodes an element of the keys ``id``, ``image_id``, ``category_id``, ``segmentation``, ``area``,
    ``bbox`` and ``iscrowd`` only, keeping ``segmentation``, ``area`` and ``bbox`` as their JSON text
    (:class:`msgspec.Raw`), which a writer can copy."""
    record = msgspec.defstruct(
        "PlainRecord",
        [
            ("id", _Int), ("image_id", msgspec.Raw), ("category_id", _Int), ("area", msgspec.Raw),
            ("bbox", msgspec.Raw), ("segmentation", msgspec.Raw, msgspec.Raw(b"[]")), ("iscrowd", _Int, 0),
        ],
        forbid_unknown_fields=True,
        kw_only=True,
    )
    return msgspec.json.Decoder(record).decode


@functools.cache
def images_decoder() -> Any:
    """Decodes an ``images`` list whose every record has exactly the keys ``id``, ``file_name``, ``width`` and
    ``height`` (ints, a string): the common case, which the reader then takes record by record as typed."""
    image = msgspec.defstruct(
        "PlainImage", [("id", _Int), ("file_name", str), ("width", _Int), ("height", _Int)],
        forbid_unknown_fields=True,
    )
    return msgspec.json.Decoder(list[image]).decode  # type: ignore[valid-type]
