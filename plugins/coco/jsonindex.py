"""A lazy view of one COCO JSON file: top-level sections located by a byte scan, annotations parsed on demand.

``orjson.loads`` of a whole instances file turns 100 MB of JSON into about 600 MB of Python objects. The
file is instead memory-mapped and scanned once with a C-level regex that only stops at strings and
brackets (numbers and commas are skipped), which finds the byte span of every top-level value and of every
element of ``annotations``. Small sections (``info``, ``licenses``, ``categories``, ``images``) are parsed
with orjson; each annotation is parsed again only when its item is yielded. Memory is the mapped file plus
three integer arrays.
"""

from __future__ import annotations

import abc
import mmap
import re
import sys
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson

from dsformats import DatasetError
from dsformats.fileaccess import is_local, open_binary

_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[{}\[\]:]')
_WS = b" \t\r\n"
_BOM = b"\xef\xbb\xbf"
#: Elements parsed between two releases of the mapped pages read so far (see :func:`_drop_pages`).
_DROP_EVERY = 8192
#: Bytes scanned per numpy pass over the annotations list (the passes' temporary arrays are a few times this).
_CHUNK = 1 << 18
#: Files up to this size are also fully parsed once, so syntax errors are reported with orjson's position.
_VALIDATE_LIMIT = 4 << 20


def _element_pattern() -> re.Pattern[bytes] | None:
    """A regex matching one JSON object or array with brackets balanced up to 5 levels deep (cached).

    It skips a whole annotation in one C-level match, where the token loop would stop at every string and
    bracket. Possessive quantifiers keep failed matches linear; they need Python 3.11, so older Pythons
    use the token loop only.
    """
    global _ELEMENT
    if _ELEMENT is None and sys.version_info >= (3, 11):
        string = rb'"(?:[^"\\]++|\\.)*+"'
        inner = rb'(?:[^{}\[\]"]++|' + string + rb")*+"
        group = b""
        for _ in range(5):
            group = rb"(?:\{" + inner + rb"\}|\[" + inner + rb"\])"
            inner = rb'(?:[^{}\[\]"]++|' + string + b"|" + group + rb")*+"
        _ELEMENT = re.compile(group)
    return _ELEMENT


_ELEMENT: re.Pattern[bytes] | None = None


def _load(path: Path, name: str) -> Any:
    """The bytes of ``path``: memory-mapped when local, read whole otherwise."""
    stream = open_binary(path)
    try:
        if is_local(path):
            size = stream.seek(0, 2)
            return mmap.mmap(stream.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        return stream.read()  # inside an archive or on object storage: no file to map
    except OSError as exc:
        raise DatasetError(f"cannot read: {exc}", name) from None
    finally:
        stream.close()


def _escaped(data: Any, quote: int) -> bool:
    """Whether the quote at ``quote`` follows an odd number of backslashes."""
    run = 0
    while quote - run - 1 >= 0 and data[quote - run - 1] == 0x5C:
        run += 1
    return run % 2 == 1


def _drop_pages(data: Any) -> None:
    """Let the kernel take back the pages of a mapped file that were read so far (they stay in the page cache).

    The mapping stays valid: a page read again is mapped again from the cache. Resident memory then holds
    only what was read since the last call, not the whole file.
    """
    if isinstance(data, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED") and len(data):
        data.madvise(mmap.MADV_DONTNEED)


class _ListSection(abc.ABC):
    """What :class:`JsonFile` and :class:`JsonView` share: parsing elements of the list section by number."""

    name: str
    list_key: str

    @abc.abstractmethod
    def raw_elements(self, indexes: Sequence[int]) -> list[Any]:
        """The bytes of the elements ``indexes`` of the list section, unparsed."""

    def loads(self, raw: Any, index: int) -> Any:
        """Parse ``raw``, the bytes of element ``index``; DatasetError naming it when they are not JSON."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"invalid JSON: {exc}", f"{self.name}: {self.list_key}[{index}]") from None

    def elements(self, indexes: Sequence[int]) -> list[Any]:
        """Parse the elements ``indexes`` of the list section (as ``element`` each, with less overhead)."""
        loads = self.loads
        return [loads(raw, index) for index, raw in zip(indexes, self.raw_elements(indexes), strict=True)]

    def element(self, index: int) -> Any:
        """Parse element ``index`` of the list section (numbered as in the file)."""
        return self.loads(self.raw_elements([index])[0], index)


class JsonFile(_ListSection):
    """One JSON object file: ``section(key)`` parses a top-level value; ``element(i)`` one annotation."""

    def __init__(self, path: Path, name: str, list_key: str = "annotations") -> None:
        self.path = path
        self.name = name
        self.list_key = list_key
        self.spans: dict[str, tuple[int, int]] = {}
        self.starts = array("q")
        self.ends = array("q")
        self._data: Any = _load(path, name)
        try:
            if len(self._data) <= _VALIDATE_LIMIT:
                self._validate()
            self._scan()
            _drop_pages(self._data)
            self._parsed = 0
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Release the mapping."""
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        self._data = b""

    @property
    def keys(self) -> list[str]:
        """Top-level keys, in file order."""
        return list(self.spans)

    def _validate(self) -> None:
        data = bytes(self._data)
        if data.startswith(_BOM):
            data = data[3:]
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"invalid JSON: {exc}", self.name) from None
        if not isinstance(value, dict):
            raise DatasetError(f"expected a JSON object at the top level, got {type(value).__name__}", self.name)

    def _scan(self) -> None:
        data = self._data
        pos = 0
        if data[:3] == _BOM:
            pos = 3
        while pos < len(data) and data[pos : pos + 1] in (b" ", b"\t", b"\r", b"\n"):
            pos += 1
        if data[pos : pos + 1] != b"{":
            raise DatasetError("expected a JSON object at the top level", self.name)
        depth = 0
        key: str | None = None
        value_start = -1
        in_list = False
        elem_start = -1
        elem_end = -1  # end of the list's previous element (or its "["): a scalar element hides in between
        element = _element_pattern()
        search = _TOKEN.search
        while True:
            match = search(data, pos)
            if match is None:
                break
            pos = match.end()
            token = match.group()
            first = token[:1]
            if first == b'"':
                if depth == 2 and in_list:  # a string element: indexed, so that reading it names its place
                    self._gap(elem_end, match.start())
                    self.starts.append(match.start())
                    self.ends.append(match.end())
                    elem_end = match.end()
                    continue
                if depth == 1:
                    if key is None:
                        key = self._key(token)
                    elif value_start >= 0:
                        if data[value_start:match.start()].strip(_WS):
                            # the previous value was a scalar; this string is the next key
                            self._close_scalar(key, value_start, match.start())
                            key = self._key(token)
                            value_start = -1
                        else:
                            self.spans[key] = (match.start(), match.end())
                            key, value_start = None, -1
                continue
            if token == b":":
                if depth == 1:
                    value_start = match.end()
                continue
            if first in (b"{", b"["):
                depth += 1
                if depth == 2:
                    value_start = match.start()
                    in_list = key == self.list_key and first == b"["
                    elem_end = match.end()
                    close = self._scan_list(match.end()) if in_list and element is not None else None
                    if close is not None:  # the whole list at once, vectorised
                        assert key is not None
                        self.spans[key] = (value_start, close)
                        key, value_start, in_list, depth, pos = None, -1, False, 1, close
                        continue
                    whole = None if in_list or element is None or key is None else element.match(data, value_start)
                    if whole is not None and key is not None:  # another top-level value, skipped at once
                        self.spans[key] = (value_start, whole.end())
                        key, value_start, depth, pos = None, -1, 1, whole.end()
                elif depth == 3 and in_list:
                    self._gap(elem_end, match.start())
                    whole = element.match(data, match.start()) if element is not None else None
                    if whole is not None:  # the whole element at once, in C (nesting up to 5 levels)
                        self.starts.append(match.start())
                        self.ends.append(whole.end())
                        depth -= 1
                        elem_end = pos = whole.end()
                        continue
                    elem_start = match.start()
                continue
            # closing bracket
            depth -= 1
            if depth == 2 and in_list and elem_start >= 0:
                self.starts.append(elem_start)
                self.ends.append(match.end())
                elem_start = -1
                elem_end = match.end()
            elif depth == 1:
                if in_list:
                    self._gap(elem_end, match.start())
                assert key is not None
                self.spans[key] = (value_start, match.end())
                key, value_start, in_list = None, -1, False
            elif depth == 0:
                if key is not None and value_start >= 0:
                    self._close_scalar(key, value_start, match.start())
                return
        raise DatasetError("truncated or malformed JSON (the top-level object is not closed)", self.name)

    def _scan_list(self, start: int) -> int | None:
        """Index the elements of the list whose ``[`` ends at ``start``; return the end of its ``]``.

        Vectorised with numpy, chunk by chunk: quotes not escaped toggle "inside a string", and brackets
        outside strings give the depth, so element boundaries are where the depth enters and leaves the
        list's level. Returns None, indexing nothing, when the list holds anything but objects and arrays
        separated by commas (the token loop then reports or indexes it), or when the list is not closed.
        """
        import numpy as np

        data, size = self._data, len(self._data)
        starts: list[Any] = []
        ends: list[Any] = []
        depth, in_string, close = 0, 0, -1  # depth relative to the list's inside
        offset = start
        while offset < size and close < 0:
            count = min(_CHUNK, size - offset)
            chunk = np.frombuffer(data, dtype=np.uint8, count=count, offset=offset)
            quotes = np.flatnonzero(chunk == 0x22)
            # drop escaped quotes (an odd run of backslashes before them)
            if len(quotes) and ((chunk == 0x5C).any() or data[offset - 1] == 0x5C):
                escaped = [k for k, q in enumerate(quotes.tolist()) if _escaped(data, offset + q)]
                quotes = np.delete(quotes, escaped)
            # clearing bit 5 folds "{" onto "[" and "}" onto "]" (and nothing else onto either): two compares
            # of the whole chunk instead of a 256-entry table lookup per byte (four times slower)
            folded = chunk & 0xDF
            where = np.flatnonzero((folded == 0x5B) | (folded == 0x5D))  # nonzero of a bool array is fastest
            outside = (np.searchsorted(quotes, where) + in_string) % 2 == 0
            where = where[outside]
            steps = np.where(folded[where] == 0x5B, 1, -1)
            levels = depth + np.cumsum(steps)
            done = np.flatnonzero(levels < 0)
            if len(done):  # the list's own "]"
                cut = int(done[0])
                close = offset + int(where[cut]) + 1
                where, steps, levels = where[:cut], steps[:cut], levels[:cut]
            starts.append(where[(steps == 1) & (levels == 1)] + offset)
            ends.append(where[(steps == -1) & (levels == 0)] + offset + 1)
            depth = int(levels[-1]) if len(levels) else depth
            in_string = (in_string + len(quotes)) % 2
            offset += count
        if close < 0 or data[close - 1] != 0x5D:  # not closed, or closed by "}"
            return None
        first = np.concatenate(starts) if starts else np.empty(0, np.int64)
        last = np.concatenate(ends) if ends else np.empty(0, np.int64)
        if len(first) != len(last) or not self._only_commas(start, first, last, close - 1):
            return None
        self.starts.extend(first.tolist())
        self.ends.extend(last.tolist())
        return close

    def _only_commas(self, start: int, first: Any, last: Any, close: int) -> bool:
        """Whether the gaps around the elements hold only whitespace, and one comma between two elements."""
        import numpy as np

        gaps_from = np.concatenate(([start], last))
        gaps_to = np.concatenate((first, [close]))
        if len(first):
            view = np.frombuffer(self._data, dtype=np.uint8)
            plain = (gaps_to[1:-1] - gaps_from[1:-1] == 1) & (view[np.minimum(gaps_from[1:-1], len(view) - 1)] == 0x2C)
            odd = np.flatnonzero(~plain) + 1
        else:
            odd = np.empty(0, np.int64)
        for k in [0, *odd.tolist(), len(gaps_from) - 1]:
            gap = bytes(self._data[int(gaps_from[k]) : int(gaps_to[k])]).strip(_WS)
            if gap != (b"," if 0 < k < len(gaps_from) - 1 else b""):
                return False
        return True

    def _gap(self, start: int, end: int) -> None:
        """Between two elements of the list section there may only be a comma: anything else is a scalar."""
        gap = self._data[start:end].strip(b" \t\r\n,")
        if gap:
            text = bytes(gap[:40]).decode("utf-8", "replace")
            raise DatasetError(
                f"expected an object, got {text!r}", f"{self.name}: {self.list_key}[{len(self.starts)}]"
            )

    def is_list(self, key: str) -> bool:
        """Whether the top-level value ``key`` is a JSON array (checked without parsing it)."""
        span = self.spans.get(key)
        return span is not None and bytes(self._data[span[0] : span[0] + 1]) == b"["

    def _key(self, token: bytes) -> str:
        try:
            return orjson.loads(token)
        except orjson.JSONDecodeError:
            raise DatasetError(f"invalid top-level key {token[:40]!r}", self.name) from None

    def _close_scalar(self, key: str, start: int, end: int) -> None:
        self.spans[key] = (start, end)

    def section_bytes(self, key: str) -> bytes | None:
        """The JSON text of the top-level value ``key``, or None when absent."""
        span = self.spans.get(key)
        return None if span is None else bytes(self._data[span[0] : span[1]]).strip(_WS).rstrip(b",")

    def section(self, key: str, default: Any = None) -> Any:
        """The parsed top-level value ``key``, or ``default`` when absent."""
        raw = self.section_bytes(key)
        if raw is None:
            return default
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DatasetError(f"invalid JSON: {exc}", f"{self.name}: {key}") from None

    def __len__(self) -> int:
        return len(self.starts)

    def raw(self, start: int = 0, stop: int | None = None) -> Iterator[Any]:
        """The bytes of the elements ``start`` to ``stop`` (default: all) of the list section, in order, unparsed."""
        data, starts, ends = self._data, self.starts, self.ends
        stop = len(starts) if stop is None else stop
        for index in range(start, stop):
            if index > start and not index % _DROP_EVERY:
                _drop_pages(data)
            yield data[starts[index] : ends[index]]

    def raw_elements(self, indexes: Sequence[int]) -> list[Any]:
        """The bytes of the elements ``indexes`` of the list section, unparsed."""
        return _slices(self, self._data, [self.starts[i] for i in indexes], [self.ends[i] for i in indexes])


def _slices(owner: Any, data: Any, starts: list[int], ends: list[int]) -> list[Any]:
    """The bytes ``data[start:end]`` of each span, for ``owner`` (a JsonFile or JsonView, which counts them)."""
    parsed = owner._parsed
    out = []
    for start, end in zip(starts, ends, strict=True):
        parsed += 1
        if not parsed % _DROP_EVERY:
            _drop_pages(data)
        out.append(data[start:end])
    owner._parsed = parsed
    return out


class JsonView(_ListSection):
    """Some elements of a scanned :class:`JsonFile`, numbered as in the file; picklable (no open mapping).

    A scale-out worker gets this instead of scanning the file again. A local file is mapped on first use; a
    file inside an archive or on object storage, which would be read whole again for every shard, is not read
    at all: the view pickles the bytes of its own elements (taken from the file while it is still open).
    """

    def __init__(self, json: JsonFile, elements: Any) -> None:
        import numpy as np

        self.path, self.name, self.list_key = json.path, json.name, json.list_key
        self.indexes = np.sort(np.asarray(elements, dtype=np.int64))
        self.starts = np.frombuffer(json.starts, dtype=np.int64)[self.indexes] if len(json.starts) else self.indexes
        self.ends = np.frombuffer(json.ends, dtype=np.int64)[self.indexes] if len(json.ends) else self.indexes
        self._data: Any = None
        self._file: JsonFile | None = None if is_local(json.path) else json  # its elements' bytes, when pickled
        self._packed = False  # True when _data holds only this view's elements (then starts and ends point there)

    def __getstate__(self) -> dict[str, Any]:
        state = {**self.__dict__, "_file": None}
        if self._packed:  # pickled again (by a worker): the elements go along, as they came
            return state
        state["_data"] = None
        whole = self._file._data if self._file is not None else None
        if whole:  # the file is still open: this view's elements, back to back, and where each now is
            import numpy as np

            pieces = [whole[start:end] for start, end in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]
            ends = np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)))
            state.update(_data=b"".join(pieces), _packed=True, _parsed=0, starts=ends - (self.ends - self.starts),
                         ends=ends)
        return state

    def raw_elements(self, indexes: Sequence[int]) -> list[Any]:
        """The bytes of the elements ``indexes`` (which must be in this view), unparsed."""
        if self._data is None:
            self._data, self._parsed = _load(self.path, self.name), 0
        positions = self.indexes.searchsorted(indexes)
        return _slices(self, self._data, self.starts[positions].tolist(), self.ends[positions].tolist())

    def close(self) -> None:
        """Release the mapping (the view's own elements, which cannot be read again, are kept)."""
        if isinstance(self._data, mmap.mmap):
            self._data.close()
        if not self._packed:
            self._data = None
