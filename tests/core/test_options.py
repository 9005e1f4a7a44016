"""Options declared as data: validation, CLI parsing and help."""

from __future__ import annotations

import pytest

from dsformats import IMAGE_EXT, SAVE_IMAGES, Option, OptionError
from dsformats.options import build_parser, parse_cli_options, validate_options

DECLARED = (
    SAVE_IMAGES,
    IMAGE_EXT,
    Option(name="count", type="int", default=3),
    Option(name="ratio", type="float", default=0.5),
    Option(name="mode", type="choice", choices=("ZIP_STORED", "ZIP_LZMA"), value_aliases={"lzma": "ZIP_LZMA"},
           default="ZIP_STORED"),
    Option(name="tasks", type="list", choices=("detection", "segmentation"), default=()),
)


def test_defaults_are_filled_in():
    assert validate_options(DECLARED, {}) == {
        "save_images": False, "image_ext": None, "count": 3, "ratio": 0.5, "mode": "ZIP_STORED", "tasks": ()
    }


def test_values_are_converted_from_strings_and_python():
    got = validate_options(DECLARED, {"save-images": "yes", "count": "7", "ratio": 2, "mode": "LZMA",
                                      "tasks": "segmentation, detection"})
    assert got["save_images"] is True and got["count"] == 7 and got["ratio"] == 2.0
    assert got["mode"] == "ZIP_LZMA"
    assert got["tasks"] == ("segmentation", "detection")
    assert validate_options(DECLARED, {"mode": "zip_lzma", "tasks": ["detection"]})["tasks"] == ("detection",)


def test_alias_names_are_accepted():
    assert validate_options(DECLARED, {"save_media": True})["save_images"] is True


def test_unknown_option_lists_valid_ones_and_suggests():
    with pytest.raises(OptionError) as info:
        validate_options(DECLARED, {"cuont": 1}, what="writer option")
    message = str(info.value)
    assert "unknown writer option 'cuont'" in message
    assert "did you mean 'count'" in message
    assert "save_images, image_ext, count, ratio, mode, tasks" in message


@pytest.mark.parametrize(
    "given, fragment",
    [({"count": "x"}, "'count'"), ({"mode": "bogus"}, "choose from ZIP_STORED, ZIP_LZMA"),
     ({"tasks": "detection,nope"}, "'nope'"), ({"save_images": "maybe"}, "true or false"),
     ({"image_ext": 5}, "expected a string")],
)
def test_invalid_values_are_refused_with_text(given, fragment):
    with pytest.raises(OptionError, match=fragment):
        validate_options(DECLARED, given)


def test_cli_words_parse_into_validated_options():
    got = parse_cli_options(DECLARED, ["--", "--save-media", "--count", "9", "--mode", "lzma", "--image-ext", ".png"],
                            prog="fmt")
    assert got["save_images"] is True and got["count"] == 9 and got["mode"] == "ZIP_LZMA"
    assert got["image_ext"] == ".png"
    assert parse_cli_options(DECLARED, ["--no-save-images"], prog="fmt")["save_images"] is False


def test_cli_errors_carry_text():
    expected = r"unknown option\(s\) --bogus; valid options: --save-images --image-ext --count"
    with pytest.raises(OptionError, match=expected):
        parse_cli_options(DECLARED, ["--bogus"], prog="fmt")
    with pytest.raises(OptionError, match="invalid choice 'x'"):
        parse_cli_options(DECLARED, ["--mode", "x"], prog="fmt")


def test_help_is_rendered_from_the_declarations():
    text = build_parser(DECLARED, prog="fmt").format_help()
    assert "--save-images" in text and "--image-ext EXT" in text and "(default: 3)" in text
    assert "{ZIP_STORED,ZIP_LZMA}" in text


def test_option_names_must_be_identifiers():
    with pytest.raises(ValueError):
        Option(name="Bad-Name")
    with pytest.raises(ValueError):
        Option(name="x", type="complex")


def test_image_ext_is_normalised_and_checked_before_anything_is_read():
    assert validate_options(DECLARED, {"image_ext": "PNG"})["image_ext"] == ".png"
    assert validate_options(DECLARED, {"image_ext": ".JPG"})["image_ext"] == ".jpg"
    assert validate_options(DECLARED, {"image_ext": ""})["image_ext"] is None
    with pytest.raises(OptionError, match=r"'\.txt' is not an image suffix"):
        validate_options(DECLARED, {"image_ext": ".txt"})
