"""Item ids numbered in order of arrival, with exact lookups and ~20 bytes per id in memory.

A VOC tree names its items several times (list lines, ``Annotations/``, ``JPEGImages/``, the mask folders);
the reader joins them by id. Kept in sets and dicts of strings, that costs hundreds of bytes per item. Here
each id gets a number (0, 1, ...) that indexes the reader's compact per-item arrays, and memory keeps only
a sorted array of 64-bit id hashes with their numbers (plus a small dict of the newest) and the offset of
each id's bytes in an unnamed temporary file (written 4 MB at a time: until then, and for the newest ids,
the bytes are read from memory). A hash found is checked against the spooled id (one read),
so a hash collision never makes two ids equal. :class:`dsformats.idset.KeyMap` answers a found key by
scanning its spool, which suits keys that are seldom found again; here almost every id is.
"""

from __future__ import annotations

import os
import tempfile
from array import array
from bisect import bisect_left, bisect_right
from typing import IO

_MASK = (1 << 64) - 1
_RECENT_MIN = 4096  # newest hashes kept in a dict before they are merged into the sorted array
_FLUSH = 4 << 20  # spooled bytes buffered (and read from memory) before they are written


class IdNumbers:
    """Numbers for ids (``str``), in order of arrival: :meth:`number` adds, :meth:`find` looks up, :meth:`id` reads."""

    def __init__(self) -> None:
        self._digests = array("Q")  # sorted hashes
        self._numbers = array("I")  # the number of each sorted hash's id
        self._recent: dict[int, int] = {}  # hash -> number, not merged yet
        self._recent_limit = _RECENT_MIN
        self._offsets = array("Q", [0])  # id n is bytes offsets[n]:offsets[n + 1] of the spool
        self._file: IO[bytes] | None = None
        self._buffer = bytearray()  # spool bytes from offset self._written on
        self._written = 0

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __del__(self) -> None:
        self.close()

    def __getstate__(self) -> dict[str, object]:
        """Picklable while every id is still in memory (nothing spooled yet)."""
        if self._file is not None:
            raise TypeError("an IdNumbers whose ids are spooled to a temporary file does not pickle")
        return self.__dict__.copy()

    def close(self) -> None:
        """Delete the spool (the numbers given stay valid only until then)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def id(self, number: int) -> str:
        """The id of ``number``."""
        return self._bytes(number).decode("utf-8", "surrogatepass")

    def find(self, item_id: str) -> int | None:
        """The number of ``item_id``, or None."""
        return self._lookup(hash(item_id) & _MASK, item_id.encode("utf-8", "surrogatepass"))[0]

    def number(self, item_id: str) -> int:
        """The number of ``item_id``, given now (the next number) when it is new."""
        digest = hash(item_id) & _MASK
        data = item_id.encode("utf-8", "surrogatepass")
        found, seen = self._lookup(digest, data)
        if found is not None:
            return found
        number = len(self._offsets) - 1
        self._buffer += data
        self._offsets.append(self._offsets[-1] + len(data))
        if len(self._buffer) >= _FLUSH:
            self._flush()
        if seen:  # another id has this hash: keep both in the sorted array
            self._merge()
            at = bisect_right(self._digests, digest)
            self._digests.insert(at, digest)
            self._numbers.insert(at, number)
        else:
            self._recent[digest] = number
            if len(self._recent) >= self._recent_limit:
                self._merge()
        return number

    # ------------------------------------------------------------------------------------ internals
    def _lookup(self, digest: int, data: bytes) -> tuple[int | None, bool]:
        """``(number of the id spelled data, or None; whether any id has this hash)``."""
        number = self._recent.get(digest)
        if number is not None:
            if self._bytes(number) == data:
                return number, True
            seen = True
        else:
            seen = False
        digests = self._digests
        at = bisect_left(digests, digest)
        while at < len(digests) and digests[at] == digest:
            number = self._numbers[at]
            if self._bytes(number) == data:
                return number, True
            seen = True
            at += 1
        return None, seen

    def _bytes(self, number: int) -> bytes | bytearray:
        start, end = self._offsets[number], self._offsets[number + 1]
        if start >= self._written:
            return self._buffer[start - self._written : end - self._written]
        assert self._file is not None
        return os.pread(self._file.fileno(), end - start, start)

    def _flush(self) -> None:
        if self._file is None:
            self._file = tempfile.TemporaryFile()
        self._file.write(self._buffer)
        self._file.flush()
        self._written += len(self._buffer)
        self._buffer = bytearray()

    def _merge(self) -> None:
        """Merge the recent hashes into the sorted arrays (slices are copied in C; only new hashes loop here)."""
        if not self._recent:
            return
        old_digests, old_numbers = self._digests, self._numbers
        digests, numbers = array("Q"), array("I")
        start = 0
        for digest, number in sorted(self._recent.items()):
            at = bisect_left(old_digests, digest, start)
            digests += old_digests[start:at]
            numbers += old_numbers[start:at]
            digests.append(digest)
            numbers.append(number)
            start = at
        digests += old_digests[start:]
        numbers += old_numbers[start:]
        self._digests, self._numbers = digests, numbers
        self._recent = {}
        self._recent_limit = max(_RECENT_MIN, len(digests) >> 5)
