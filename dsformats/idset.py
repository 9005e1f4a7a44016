"""Per-item bookkeeping whose memory does not grow with the number of items: a key map and a line spool.

A conversion checks every item id against all earlier ones (duplicates, ids that differ only in case) and
some writers collect one list line per item. Kept in dicts and lists, that costs hundreds of bytes per item.
Here the exact keys, values and lines go to an unnamed temporary file, and memory keeps only:

- :class:`KeyMap`: one 64-bit hash per key (8 bytes, in one of :data:`_KEY_BUCKETS` sorted ``array('Q')`` picked
  by its low bits, so that an insert moves about 1/1024 of the hashes). A hash found again is checked
  exactly against the spooled keys of that hash, so answers are exact: a hash collision between two
  different keys never makes them equal.
- :class:`LineSpool` (text lines) and :class:`RecordSpool` (``marshal``-able records): nothing but the file.

A check that can wait until a stream has gone by (the end of an index, of a merge) keeps only each key's hash
in an ``array("q")`` and asks :func:`repeated_values` which hashes repeat; it then compares exactly, in a
second pass over its source, only the keys of those.

Hashes are Python's own string hash (SipHash, keyed per process), which is fine because nothing is shared
between processes.
"""

from __future__ import annotations

import marshal
import struct
import tempfile
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from os import PathLike
from typing import IO, Any

__all__ = ["KeyMap", "LineSpool", "RecordSpool", "repeated_values"]

_MASK = (1 << 64) - 1
_INDEX = struct.Struct("<QQ")  # (hash, offset of the record in the data file)
_RECORD = struct.Struct("<II")  # (bytes of the key, bytes of the value), then both
_CHUNK = _INDEX.size * 8192
_PENDING = 1 << 16  # bytes of records a KeyMap keeps in memory before writing them to its files
#: Sorted hash arrays of a KeyMap, by the hash's low bits: an insert moves 1/1024 of the hashes (about 8 KB of
#: memory at 1,000,000 keys), and an empty map costs about 64 KB.
_KEY_BUCKETS = 1024
_BUCKET_MASK = _KEY_BUCKETS - 1
_BUCKETS = 256  # of repeated_values: its sets hold about 1/256 of the values each


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


class KeyMap:
    """A first-value-wins ``str -> str`` map (``dict.setdefault`` semantics) that keeps ~8 bytes per key in memory.

    ``dir`` is where the unnamed spool file is made (default: the system's temporary directory).
    """

    def __init__(self, dir: str | PathLike[str] | None = None) -> None:
        self._dir = dir
        self._buckets = [array("Q") for _ in range(_KEY_BUCKETS)]
        self._index: IO[bytes] | None = None
        self._data: IO[bytes] | None = None
        self._pending_index, self._pending_data = bytearray(), bytearray()  # records not yet in the files
        self._data_size = 0
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __enter__(self) -> KeyMap:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def close(self) -> None:
        """Delete the spool; the map is empty afterwards."""
        for stream in (self._index, self._data):
            if stream is not None:
                stream.close()
        self._index = self._data = None
        self._pending_index, self._pending_data = bytearray(), bytearray()
        self._buckets = [array("Q") for _ in range(_KEY_BUCKETS)]
        self._data_size = self._count = 0

    def setdefault(self, key: str, value: str = "") -> str:
        """The value stored for ``key``; ``value`` (stored now) when ``key`` is new."""
        found = self.insert(key, value)
        return value if found is None else found

    def insert(self, key: str, value: str = "") -> str | None:
        """Store ``value`` for a new ``key`` and return None; for a known key, return its value (unchanged)."""
        digest = hash(key) & _MASK
        bucket = self._buckets[digest & _BUCKET_MASK]
        at = bisect_left(bucket, digest)
        if at < len(bucket) and bucket[at] == digest:
            found = self._lookup(digest, key)
            if found is not None:
                return found
        else:
            bucket.insert(at, digest)
        self._store(digest, key, value)
        return None

    def add(self, key: str) -> bool:
        """Add ``key``; True when it was new."""
        return self.insert(key) is None

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        digest = hash(key) & _MASK
        return self._known(digest) and self._lookup(digest, key) is not None

    def get(self, key: str) -> str | None:
        """The value stored for ``key``, or None."""
        digest = hash(key) & _MASK
        return self._lookup(digest, key) if self._known(digest) else None

    # ------------------------------------------------------------------------------------ internals
    def _known(self, digest: int) -> bool:
        bucket = self._buckets[digest & _BUCKET_MASK]
        at = bisect_left(bucket, digest)
        return at < len(bucket) and bucket[at] == digest

    def _store(self, digest: int, key: str, value: str) -> None:
        key_bytes, value_bytes = key.encode("utf-8", "surrogatepass"), value.encode("utf-8", "surrogatepass")
        self._pending_index += _INDEX.pack(digest, self._data_size)
        data = self._pending_data
        data += _RECORD.pack(len(key_bytes), len(value_bytes))
        data += key_bytes
        data += value_bytes
        self._data_size += _RECORD.size + len(key_bytes) + len(value_bytes)
        self._count += 1
        if len(data) >= _PENDING:
            self._flush()

    def _flush(self) -> None:
        """Write the records kept in memory to the spool files (made on first use)."""
        if self._index is None:
            self._index = tempfile.TemporaryFile(dir=self._dir)
            self._data = tempfile.TemporaryFile(dir=self._dir)
        assert self._data is not None
        self._index.write(self._pending_index)
        self._data.write(self._pending_data)
        self._pending_index, self._pending_data = bytearray(), bytearray()

    def _lookup(self, digest: int, key: str) -> str | None:
        """The value of the first spooled record of ``key`` (scanning the index for ``digest``), or None."""
        if self._pending_data:
            self._flush()
        if self._index is None:
            return None
        assert self._data is not None
        wanted = _encode(key)
        needle = digest.to_bytes(8, "little")
        index, data = self._index, self._data
        index.seek(0)
        try:
            while chunk := index.read(_CHUNK):
                at = chunk.find(needle)
                while at >= 0:
                    if at % _INDEX.size == 0:
                        offset = _INDEX.unpack_from(chunk, at)[1]
                        data.seek(offset)
                        key_len, value_len = _RECORD.unpack(data.read(_RECORD.size))
                        if key_len == len(wanted) and data.read(key_len) == wanted:
                            return _decode(data.read(value_len))
                    at = chunk.find(needle, at + 1)
        finally:
            index.seek(0, 2)
            data.seek(0, 2)
        return None


def repeated_values(values: array[int]) -> set[int]:
    """The values that occur more than once in ``values`` (an ``array("q")``, such as string hashes).

    For checks that keep 8 bytes an entry while a stream goes by and compare the entries exactly afterwards,
    only where a hash repeats. The values are split into :data:`_BUCKETS` arrays by their low bits, and each
    is checked with a set: memory is a copy of ``values`` and one bucket's set (no numpy to load).
    """
    buckets = [array("q") for _ in range(_BUCKETS)]
    mask = _BUCKETS - 1
    for value in values:
        buckets[value & mask].append(value)
    repeated: set[int] = set()
    for bucket in buckets:
        if len(set(bucket)) < len(bucket):
            seen: set[int] = set()
            for value in bucket:
                if value in seen:
                    repeated.add(value)
                seen.add(value)
    return repeated


class _Spool:
    """An append-only sequence kept in an unnamed temporary file (``dir``: where it is made), made on first use."""

    def __init__(self, dir: str | PathLike[str] | None = None) -> None:
        self._dir = dir
        self._file: IO[bytes] | None = None
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def __del__(self) -> None:
        self.close()

    def _stream(self) -> IO[bytes]:
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self._dir)
        self._count += 1
        return self._file

    def close(self) -> None:
        """Delete the spool."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._count = 0


class LineSpool(_Spool):
    """An append-only list of text lines kept in an unnamed temporary file (``dir``: where it is made)."""

    def append(self, line: str) -> None:
        """Add one line (it must not contain a line break)."""
        self._stream().write(_encode(line) + b"\n")

    def __iter__(self) -> Iterator[str]:
        if self._file is None:
            return
        self._file.seek(0)
        try:
            for raw in self._file:
                yield _decode(raw[:-1])
        finally:
            self._file.seek(0, 2)

    def write_to(self, path: str | PathLike[str], encoding: str = "utf-8") -> None:
        """Write the lines, each ending in ``\\n``, exactly as ``open(path, "w", encoding=encoding)`` text would."""
        with open(path, "w", encoding=encoding) as out:
            for line in self:
                out.write(line + "\n")


class RecordSpool(_Spool):
    """An append-only list of ``marshal``-able records (tuples, dicts, str, int, ...) kept in a temporary file.

    Iterating gives the records back in order (equal, not identical, objects), as often as needed.
    """

    def append(self, record: object) -> None:
        """Add one record."""
        marshal.dump(record, self._stream())  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        if self._file is None:
            return
        stream = self._file
        stream.seek(0)
        try:
            for _ in range(self._count):
                yield marshal.load(stream)
        finally:
            stream.seek(0, 2)
