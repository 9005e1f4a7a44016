"""Placed shards: a scale-out shard writes its part straight into the merged output file, at a byte range
the engine reserved for it, so that the merge has nothing to copy.

This pays for a target whose merged output is its parts' bytes end to end plus an index written last (an
image_zip archive: the members' local headers and data, then the central directory). The local processes
engine (:mod:`dsformats.scaleout`), for each shard in order:

1. asks the shard's reader for its :class:`PlannedMedia` (``reader.planned_media()``, optional: the items'
   media predicted from the reader's index, without reading annotations);
2. asks the target (hook ``dsformats_placed_size``) how many bytes a part of those items takes in the merged
   output; None (or a reader without ``planned_media``) ends placement, for this shard and the later ones, and
   a shard whose files average under ``scaleout.PLACED_MIN_BYTES`` ends it for the later ones (predicting
   costs a ``stat`` a file, about what copying 10 KB costs);
3. gives the shard's writer a :class:`Placement` (:func:`dsformats.policy.placement`): the shared output file
   and the range ``[offset, offset + size)`` that the earlier shards' sizes leave it.

The writer writes its part through :class:`PlacedFile`: the first ``size`` bytes into its range of the
shared file, anything after (its index, or data beyond a wrong prediction) into its ordinary part file. The
prediction is never trusted: the merge adopts a part in place only when its index starts exactly at the end
of its range, and otherwise reads it back with :func:`placed_part` (the range, then the part file) as an
ordinary part. So a wrong prediction costs a copy, never a byte of output.
"""

from __future__ import annotations

import abc
import io
import os
from pathlib import Path
from typing import IO, Any, NamedTuple

__all__ = ["PlacedFile", "PlannedMedia", "Placement", "placed_part", "read_marker", "write_marker"]


class PlannedMedia(NamedTuple):
    """One item a reader predicts it will yield: its subset, id, media suffix (lower case, with its dot) and
    media size in bytes as copied. ``suffix`` is None for an item without media; ``size`` is None when the
    media's size is unknown."""

    subset: str
    id: str
    suffix: str | None
    size: int | None


class Placement(NamedTuple):
    """Where a shard's part goes in the merged output: bytes ``offset`` to ``offset + size`` of ``path``."""

    path: str
    offset: int
    size: int


class _Seekable(io.RawIOBase):
    """A raw file that keeps its own position (``_position``) and end (``_end()``), for the classes below."""

    _position = 0

    @abc.abstractmethod
    def _end(self) -> int:
        """The position of the end of the file."""

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._end()}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position


class PlacedFile(_Seekable):
    """A new, seekable, write-only file whose first ``placement.size`` bytes go to ``placement``'s range of its
    shared file and whose further bytes go to the file ``rest`` (created, or emptied)."""

    def __init__(self, placement: Placement, rest: str | os.PathLike[str]) -> None:
        super().__init__()
        self.placement = placement
        self._shared = os.open(placement.path, os.O_WRONLY)
        try:
            self._rest = os.open(rest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except BaseException:
            os.close(self._shared)
            raise
        self._position = 0
        self.length = 0  # the bytes written, up to the furthest one

    def writable(self) -> bool:
        return True

    def _end(self) -> int:
        return self.length

    def write(self, data: Any) -> int:
        start, total = self._position, memoryview(data).nbytes
        if not total:  # as for a file: no bytes, no growth
            return 0
        end = start + total
        if end <= self.placement.size and os.pwrite(self._shared, data, self.placement.offset + start) == total:
            self._position = end  # the usual write: all of it inside the range, at once
            if end > self.length:
                self.length = end
            return total
        view = memoryview(data).cast("B")
        size = self.placement.size
        if start < size:  # the part of it inside the range (again from its start, when a write was short)
            inside = view[: size - start]
            _pwrite_all(self._shared, inside, self.placement.offset + start)
            view = view[len(inside) :]
            start += len(inside)
        if len(view):
            _pwrite_all(self._rest, view, start - size)
        self._position += total
        self.length = max(self.length, self._position)
        return total

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self._shared)
            finally:
                os.close(self._rest)
        super().close()


def _pwrite_all(fd: int, data: memoryview, offset: int) -> None:
    while len(data):
        written = os.pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


#: The file in a placed part's folder that says where its first bytes are (JSON: path, offset, size, length).
MARKER = ".dsformats-placed"


def write_marker(folder: str | os.PathLike[str], placement: Placement, length: int) -> None:
    """Record in ``folder`` (a part) that its writer wrote ``length`` bytes through ``placement``."""
    import json

    record = {"path": placement.path, "offset": placement.offset, "size": placement.size, "length": length}
    Path(folder, MARKER).write_text(json.dumps(record), encoding="utf-8")


def read_marker(folder: str | os.PathLike[str]) -> tuple[Placement, int] | None:
    """``(placement, length)`` of a part written through a :class:`PlacedFile`; None for an ordinary part."""
    import json

    try:
        record = json.loads(Path(folder, MARKER).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    return Placement(record["path"], record["offset"], record["size"]), record["length"]


class _Joined(_Seekable):
    """Read-only, seekable: bytes ``[offset, offset + first)`` of one file, then the first ``second`` bytes of
    another."""

    def __init__(self, shared: IO[bytes], offset: int, first: int, rest: IO[bytes], second: int) -> None:
        super().__init__()
        self._files = (shared, rest)
        self._offset, self._first, self._length = offset, first, first + second
        self._position = 0

    def readable(self) -> bool:
        return True

    def _end(self) -> int:
        return self._length

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        position = self._position
        if position >= self._length:
            return 0
        if position < self._first:
            wanted = min(len(view), self._first - position)
            data = os.pread(self._files[0].fileno(), wanted, self._offset + position)
        else:
            wanted = min(len(view), self._length - position)
            data = os.pread(self._files[1].fileno(), wanted, position - self._first)
        if not data:
            raise EOFError(f"a placed part ends early, at byte {position:,}")
        view[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            try:
                self._files[0].close()
            finally:
                self._files[1].close()
        super().close()


def placed_part(placement: Placement, length: int, rest: str | os.PathLike[str]) -> IO[bytes]:
    """The ``length`` bytes a writer wrote through a :class:`PlacedFile`, read back as one file: its range of the
    shared file, then the file ``rest``."""
    first = min(length, placement.size)
    shared = open(placement.path, "rb")  # noqa: SIM115 - closed with the joined file
    try:
        rest_file = open(rest, "rb")  # noqa: SIM115
    except BaseException:
        shared.close()
        raise
    return io.BufferedReader(_Joined(shared, placement.offset, first, rest_file, length - first), 1 << 16)
