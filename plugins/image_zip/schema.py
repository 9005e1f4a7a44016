"""image_zip constants: option values, junk-member rules and defaults."""

from __future__ import annotations

import posixpath
import zipfile

FORMAT = "image_zip"
DEFAULT_NAME = "default.zip"
DEFAULT_IMAGE_EXT = ".jpg"
ARCHIVE_SUFFIX = ".zip"
#: Digits of the shard number in ``--shards-out`` archive names (their path order is their shard order).
SHARD_DIGITS = 5

#: ``--compression`` choices and the zipfile constants they select.
COMPRESSION = {
    "ZIP_STORED": zipfile.ZIP_STORED,
    "ZIP_DEFLATED": zipfile.ZIP_DEFLATED,
    "ZIP_BZIP2": zipfile.ZIP_BZIP2,
    "ZIP_LZMA": zipfile.ZIP_LZMA,
}
#: Short spellings accepted for ``--compression`` (matched case-insensitively).
COMPRESSION_ALIASES = {
    "stored": "ZIP_STORED",
    "store": "ZIP_STORED",
    "deflated": "ZIP_DEFLATED",
    "deflate": "ZIP_DEFLATED",
    "bzip2": "ZIP_BZIP2",
    "lzma": "ZIP_LZMA",
}

#: Fixed member timestamp, so that the same input always gives the same archive bytes.
MEMBER_DATE_TIME = (1980, 1, 1, 0, 0, 0)

#: File names that operating systems leave behind; never dataset content.
JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


def is_junk(name: str) -> bool:
    """Directory entries and OS metadata: ``__MACOSX/``, ``._*`` forks, ``.DS_Store``, ``Thumbs.db``."""
    if name.endswith("/"):
        return True
    parts = name.split("/")
    base = parts[-1]
    return "__MACOSX" in parts[:-1] or base.startswith("._") or base in JUNK_NAMES


def split_member(name: str) -> tuple[str, str]:
    """``("a/b/1", ".jpg")`` for member ``a/b/1.JPG``: the item id and the lower-case suffix.

    As ``posixpath.splitext`` splits (a name of leading dots only, such as ``a/.jpg``, has no suffix), faster.
    """
    dot = name.rfind(".")
    start = name.rfind("/") + 1
    if dot > start and name[start:dot].strip("."):
        return name[:dot], name[dot:].lower()
    return name, ""


def path_suffix(name: str) -> str:
    """``Path(name).suffix`` of a POSIX member name, without ``pathlib`` (which interns every path part)."""
    base = name.rpartition("/")[2]
    dot = base.rfind(".")
    return base[dot:] if 0 < dot < len(base) - 1 else ""


def member_path(subset: str, item_id: str, suffix: str, *, image_ext: str | None, subset_dirs: bool) -> str:
    """The member an item is stored as, before the name is checked: ``[<subset>/]<id><ext>``, where the
    extension is ``image_ext`` when given, else the media's ``suffix``, else :data:`DEFAULT_IMAGE_EXT`."""
    prefix = f"{subset}/" if subset_dirs else ""
    return prefix + item_id + (image_ext or suffix or DEFAULT_IMAGE_EXT)


def member_stem(name: str) -> tuple[str, str]:
    """``(stem, suffix)`` of a POSIX member name: the stem is what it reads back as (``1.jpg`` and ``1.png``
    are distinct members of one item id)."""
    suffix = path_suffix(name)
    return (name[: -len(suffix)] if suffix else name), suffix


#: A scale-out shard's ``<subset>/<id>`` of each member it wrote, each ended by a NUL, in member order, beside its
#: archive: the merge names the items of an id repeated across shards in the words of one writer.
SHARD_ITEMS = ".dsformats-image_zip-items"


def same_item(first: str, later: str, stem: str, first_name: str, name: str) -> str:
    """The error for items ``first`` and ``later`` (``<subset>/<id>``) stored as members of one item id ``stem``."""
    return (f"items {first!r} and {later!r} would both be stored as item {stem!r} (members {first_name!r} and "
            f"{name!r}); use --subset-dirs to keep subsets apart")


def case_clash(first: str, name: str) -> str:
    """The warning for members ``first`` and ``name`` that differ only in case."""
    return (f"members {first!r} and {name!r} differ only in case and collide when extracted on a case-insensitive "
            "file system")


def shard_archive_name(name: str, index: int) -> str:
    """The ``--shards-out`` archive of shard ``index``: ``a/data-00003.zip`` for ``--name a/data.zip``, shard 3."""
    stem, suffix = posixpath.splitext(name)
    return f"{stem}-{index:0{SHARD_DIGITS}d}{suffix}"
