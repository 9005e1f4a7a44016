"""Ordered parallel work: :func:`read_ahead` (media bytes read in threads, in order, bounded, lazy on failure)."""

from __future__ import annotations

import io
import threading
import time

import pytest

from dsformats import DatasetError, Item, Media
from dsformats.parallel import forked, read_ahead


class Source:
    """Items whose media count their opens; ``fail`` ids raise OSError on open, ``slow`` ids sleep first."""

    def __init__(self, count: int, *, fail=(), slow=(), ahead: bool = True, sizes=None, lazy=()):
        self.count, self.fail, self.slow, self.ahead, self.lazy = count, set(fail), set(slow), ahead, set(lazy)
        self.sizes = sizes or {}
        self.opens: dict[str, int] = {}
        self.pulled = 0
        self.lock = threading.Lock()

    def data(self, item_id: str) -> bytes:
        return item_id.encode() * self.sizes.get(item_id, 3)

    def opener(self, item_id: str):
        def open_() -> io.BytesIO:
            with self.lock:
                self.opens[item_id] = self.opens.get(item_id, 0) + 1
            if item_id in self.slow:
                time.sleep(0.05)  # finishes after later items: the order must still hold
            if item_id in self.fail:
                raise OSError("bad CRC")
            return io.BytesIO(self.data(item_id))

        return open_

    def items(self):
        for n in range(self.count):
            self.pulled += 1
            item_id = f"i{n}"
            media = Media(name=f"a.zip!{item_id}.jpg", suffix=".jpg", opener=self.opener(item_id), size=(4, 3),
                          read_ahead=self.ahead and item_id not in self.lazy)
            yield Item(id=item_id, media=media)


def test_items_come_in_order_with_their_bytes_each_read_once():
    source = Source(20, slow={"i0", "i5"})
    seen = [(item.id, item.media.read_bytes(), item.media.name, item.media.suffix, item.media.known_size)
            for item in read_ahead(source.items(), window=5, chunk=2)]
    assert seen == [(f"i{n}", source.data(f"i{n}"), f"a.zip!i{n}.jpg", ".jpg", (4, 3)) for n in range(20)]
    assert source.opens == {f"i{n}": 1 for n in range(20)}  # read ahead, then served from memory


def test_the_window_bounds_what_is_pulled_and_read():
    source = Source(50)
    stream = read_ahead(source.items(), window=4, chunk=3)
    first = next(stream)
    assert first.id == "i0"
    assert source.pulled == 4 and len(source.opens) <= 4
    stream.close()  # waits for the reads in flight
    assert source.pulled == 4


def test_media_not_marked_stay_lazy():
    source = Source(5, ahead=False)
    items = list(read_ahead(source.items()))
    assert source.opens == {}
    assert [item.media.read_bytes() for item in items] == [source.data(f"i{n}") for n in range(5)]


def test_media_over_the_limit_stay_lazy():
    source = Source(3, sizes={"i1": 100})
    items = list(read_ahead(source.items(), limit=50))
    assert [item.media.read_bytes() for item in items] == [source.data(f"i{n}") for n in range(3)]
    assert source.opens == {"i0": 1, "i1": 2, "i2": 1}  # i1: tried ahead (too big), then read by its user


def test_a_failed_read_raises_the_same_error_when_the_media_is_used():
    source = Source(4, fail={"i2"})
    items = list(read_ahead(source.items()))
    assert [item.media.read_bytes() for item in items[:2]] == [b"i0i0i0", b"i1i1i1"]
    with pytest.raises(DatasetError) as info:
        items[2].media.read_bytes()
    assert str(info.value) == "a.zip!i2.jpg: cannot read: bad CRC"
    assert source.opens["i2"] == 2  # once ahead, once when used
    assert items[3].media.read_bytes() == b"i3i3i3"


def test_an_error_of_the_source_comes_after_the_items_before_it():
    def failing():
        source = Source(3)
        yield from source.items()
        raise DatasetError("broken annotation file", "a.zip!annotations.json")

    received = []
    with pytest.raises(DatasetError, match="broken annotation file"):
        for item in read_ahead(failing(), window=8):
            received.append(item.id)
    assert received == ["i0", "i1", "i2"]


def test_chunks_mix_media_read_ahead_lazy_ones_failures_and_items_without_media():
    source = Source(11, fail={"i3"}, lazy={"i1", "i6"})

    def with_gaps():
        for item in source.items():
            yield item
            if item.id == "i4":
                yield Item(id="no-media")

    items = list(read_ahead(with_gaps(), window=6, chunk=3))
    assert [item.id for item in items] == ["i0", "i1", "i2", "i3", "i4", "no-media", "i5", "i6", "i7", "i8", "i9",
                                           "i10"]
    assert source.opens == {f"i{n}": 1 for n in range(11) if n not in (1, 6)}  # the lazy ones not yet
    assert [item.media.read_bytes() for item in items if item.media is not None and item.id != "i3"] == [
        source.data(f"i{n}") for n in range(11) if n != 3
    ]
    with pytest.raises(DatasetError, match="i3.jpg: cannot read: bad CRC"):
        items[3].media.read_bytes()
    assert source.opens == {f"i{n}": 2 if n == 3 else 1 for n in range(11)}


def test_zip_members_are_read_ahead_a_chunk_at_a_time(tmp_path, monkeypatch):
    """Deflated members of a local zip: each chunk is read and inflated by one call; the bytes are in order."""
    import zipfile

    pytest.importorskip("fsspec")
    from dsformats import _archivefs
    from dsformats.archives import opened_archive

    members = {f"{n:02}.jpg": bytes([n]) * (100 + 37 * n) for n in range(10)}
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in members.items():
            out.writestr(name, data)
    calls = []
    real = _archivefs._gzip_reader()
    monkeypatch.setattr(_archivefs, "_gzip_reader", lambda: lambda data: calls.append(len(data)) or real(data))
    with opened_archive(archive) as root:
        items = [Item(id=name[:2], media=Media.from_file(root / name)) for name in members]
        assert all(item.media.read_ahead for item in items)
        got = list(read_ahead(iter(items), window=8, chunk=4))
        assert [item.id for item in got] == [item.id for item in items]
        assert [item.media.data for item in got] == list(members.values())
        assert [item.media.read_bytes() for item in got] == list(members.values())
        assert [item.media.name for item in got] == [item.media.name for item in items]
    assert len(calls) == 3  # chunks of 4, 4 and 2 members


def test_a_task_reads_at_most_its_share_of_the_budget():
    """budget * chunk / window bytes per task (at least one media): the media beyond it stay lazy."""
    source = Source(8, sizes={f"i{n}": 15 for n in range(8)})  # 30 bytes each
    items = list(read_ahead(source.items(), window=8, chunk=4, budget=140))  # 70 bytes a task: two media
    assert [item.media.data is not None for item in items] == [True, True, False, False] * 2
    assert [item.media.read_bytes() for item in items] == [source.data(f"i{n}") for n in range(8)]
    big = Source(4, sizes={"i0": 100})  # 200 bytes: over its share, but the first of its task
    items = list(read_ahead(big.items(), window=4, chunk=4, budget=40))
    assert [item.media.data is not None for item in items] == [True, False, False, False]


def test_zip_members_read_together_within_a_budget(tmp_path):
    import zipfile

    pytest.importorskip("fsspec")
    from dsformats.archives import opened_archive

    members = {f"{n}.jpg": bytes([n]) * 100 for n in range(6)}
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
        for name, data in members.items():
            out.writestr(name, data)
    with opened_archive(archive) as root:
        names = list(members)
        assert root.fs.read_members(names, 1000, budget=250) == [members["0.jpg"], members["1.jpg"]] + [None] * 4
        assert root.fs.read_members(names, 1000, budget=50) == [members["0.jpg"]] + [None] * 5
        assert root.fs.read_members(names, 1000, budget=50, first=False) == [None] * 6
        loaded = Media.load_all([Media.from_file(root / name) for name in names], 1000, budget=350)
        assert [m.data if m else None for m in loaded] == [members[f"{n}.jpg"] for n in range(3)] + [None] * 3


def _two_cpus(monkeypatch, *, alone: bool = True):
    """Two usable CPUs, and (``alone``) no other thread as far as forked() can tell (the suite may run some)."""
    import dsformats.parallel

    monkeypatch.setattr(dsformats.parallel, "resolve_jobs", lambda jobs: 2)
    if alone:
        monkeypatch.setattr(threading, "active_count", lambda: 1)


def test_forked_returns_the_child_result_computed_on_a_snapshot(monkeypatch):
    _two_cpus(monkeypatch)
    import os

    state = {"values": list(range(1000))}
    wait = forked(lambda: (os.getpid(), sum(state["values"])))
    assert wait is not None
    state["values"].append(10**6)  # after the fork: the child does not see it
    pid, total = wait()
    assert pid != os.getpid() and total == sum(range(1000))


def test_forked_gives_none_when_the_child_fails(monkeypatch):
    _two_cpus(monkeypatch)

    def boom():
        raise ValueError("in the child")

    wait = forked(boom)
    assert wait is not None and wait() is None
    wait = forked(lambda: threading.Lock())  # a result that does not pickle
    assert wait is not None and wait() is None


def test_forked_declines_with_other_threads_or_one_cpu(monkeypatch):
    import dsformats.parallel

    monkeypatch.setattr(dsformats.parallel, "resolve_jobs", lambda jobs: 1)
    assert forked(lambda: 1) is None
    _two_cpus(monkeypatch, alone=False)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert forked(lambda: 1) is None
    finally:
        stop.set()
        thread.join()
    _two_cpus(monkeypatch)
    wait = forked(lambda: 1)
    assert wait is not None and wait() == 1


def test_forked_declines_off_linux(monkeypatch):
    import sys

    _two_cpus(monkeypatch)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert forked(lambda: 1) is None
