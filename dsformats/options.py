"""Reader and writer options, declared as data.

A format lists :class:`Option` records; the CLI builds its argparse parser from them and the library
validates option dicts with the same records, so both refuse the same inputs before anything is read.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from dsformats.errors import OptionError

__all__ = ["IMAGE_EXT", "JOBS", "SAVE_IMAGES", "Option", "build_parser", "parse_cli_options", "validate_options"]

_TYPES = ("str", "int", "float", "bool", "choice", "list", "suffix")


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _str_dict(values: Mapping[str, str]) -> dict[str, str]:
    return dict(values)


@attrs.frozen(kw_only=True)
class Option:
    """One option of a reader or writer.

    ``name`` is a Python identifier (``image_ext``); the CLI spells it ``--image-ext``. ``type`` is one of
    ``str``, ``int``, ``float``, ``bool`` (a flag), ``choice`` (one of ``choices``, matched
    case-insensitively, with ``value_aliases`` mapping extra spellings to a choice), ``list``
    (comma-separated, each element in ``choices`` when given) or ``suffix`` (an image suffix, normalised:
    ``"PNG"`` and ``".png"`` both give ``".png"``). ``aliases`` are other option names accepted
    for compatibility (e.g. Datumaro's ``save_media``).
    """

    name: str = attrs.field()
    type: str = attrs.field(default="str", validator=attrs.validators.in_(_TYPES))
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    value_aliases: dict[str, str] = attrs.field(factory=dict, converter=_str_dict, hash=False)
    aliases: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    metavar: str | None = None

    @name.validator
    def _identifier(self, _attr: object, value: str) -> None:
        if not value.isidentifier() or value != value.lower():
            raise ValueError(f"option name {value!r} must be a lower-case Python identifier")

    @property
    def flag(self) -> str:
        """The CLI spelling, ``--image-ext``."""
        return "--" + self.name.replace("_", "-")

    def convert(self, value: Any) -> Any:
        """Validate and convert ``value`` (a Python value or a CLI string); raise ValueError if invalid."""
        if value is None:
            return None
        if self.type == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"expected true or false, got {value!r}")
        if self.type == "int":
            if isinstance(value, bool):
                raise ValueError(f"expected an integer, got {value!r}")
            return int(value)
        if self.type == "float":
            return float(value)
        if self.type == "choice":
            return self._choose(value)
        if self.type == "suffix":
            return _image_suffix(value)
        if self.type == "list":
            parts = value.split(",") if isinstance(value, str) else list(value)
            parts = [str(p).strip() for p in parts if str(p).strip()]
            return tuple(self._choose(p) for p in parts) if self.choices else tuple(parts)
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value

    def _choose(self, value: Any) -> str:
        text = str(value)
        lowered = {c.lower(): c for c in self.choices}
        lowered.update({k.lower(): v for k, v in self.value_aliases.items()})
        if text.lower() in lowered:
            return lowered[text.lower()]
        raise ValueError(f"invalid choice {text!r}; choose from {', '.join(self.choices)}")


#: The common writer option: also save the images next to the annotations.
SAVE_IMAGES = Option(
    name="save_images",
    type="bool",
    default=False,
    aliases=("save_media",),
    help="also write the images (copied byte for byte when their suffix is kept)",
)

def _image_suffix(value: Any) -> str | None:
    from dsformats.imaging import IMAGE_SUFFIXES

    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    text = value.strip().lower()
    if not text:
        return None
    text = text if text.startswith(".") else "." + text
    if text not in IMAGE_SUFFIXES:
        raise ValueError(f"{value!r} is not an image suffix (e.g. .png, .jpg)")
    return text


#: The common writer option: the suffix images are written with; re-encodes when it differs.
IMAGE_EXT = Option(
    name="image_ext",
    type="suffix",
    default=None,
    metavar="EXT",
    help="write images with this suffix (e.g. .png), re-encoding those that differ; default: each image's own suffix",
)


#: The common writer option: worker processes for re-encoding images and rendering masks.
JOBS = Option(
    name="jobs",
    type="int",
    default=None,
    metavar="N",
    help="worker processes for image re-encoding and mask rendering (default: the number of CPUs); "
    "the output is the same for any N",
)


def _normalize_key(key: str) -> str:
    return key.strip().lstrip("-").replace("-", "_").lower()


def validate_options(
    declared: Sequence[Option], given: Mapping[str, Any] | None, *, what: str = "options"
) -> dict[str, Any]:
    """Check ``given`` against ``declared``; return every declared option, defaults filled in.

    Unknown names and invalid values raise :class:`OptionError` naming the valid options.
    """
    by_name: dict[str, Option] = {}
    for option in declared:
        for name in (option.name, *option.aliases):
            by_name[name] = option
    result = {option.name: option.default for option in declared}
    for key, value in (given or {}).items():
        found = by_name.get(_normalize_key(key))
        if found is None:
            valid = ", ".join(o.name for o in declared) or "none"
            close = difflib.get_close_matches(_normalize_key(key), list(by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise OptionError(f"unknown {what} {key!r}{hint}; valid {what}: {valid}")
        try:
            result[found.name] = found.convert(value)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{what} {found.name!r}: {exc}") from None
    return result


def build_parser(declared: Sequence[Option], *, prog: str, description: str = "") -> argparse.ArgumentParser:
    """An argparse parser for ``declared`` (used for ``-- <writer options>`` and ``-- -h``)."""
    parser = _Parser(prog=prog, description=description, allow_abbrev=False)
    for option in declared:
        flags = [option.flag, *("--" + a.replace("_", "-") for a in option.aliases)]
        if option.type == "bool":
            parser.add_argument(*flags, dest=option.name, action="store_true", default=None, help=option.help)
            parser.add_argument(
                "--no-" + option.flag[2:], dest=option.name, action="store_false", help=argparse.SUPPRESS
            )
            continue
        metavar = option.metavar or ("{" + ",".join(option.choices) + "}" if option.choices else None)
        default = f" (default: {option.default})" if option.default not in (None, (), "") else ""
        parser.add_argument(*flags, dest=option.name, default=None, metavar=metavar, help=option.help + default)
    return parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise OptionError(f"{self.prog}: {message}")


def parse_cli_options(declared: Sequence[Option], args: Sequence[str], *, prog: str) -> dict[str, Any]:
    """Parse CLI words such as ``["--name", "x.zip"]`` into a validated option dict."""
    words = list(args)
    if words[:1] == ["--"]:
        words = words[1:]
    namespace, unknown = build_parser(declared, prog=prog).parse_known_args(words)
    if unknown:
        valid = " ".join(option.flag for option in declared) or "none"
        raise OptionError(f"{prog}: unknown option(s) {' '.join(unknown)}; valid options: {valid}")
    given = {k: v for k, v in vars(namespace).items() if v is not None}
    return validate_options(declared, given, what=f"{prog} option")
