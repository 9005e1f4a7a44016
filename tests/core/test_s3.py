"""``s3://`` input and output against a real S3 API: moto's standalone server on 127.0.0.1 (loopback only).

s3fs finds the server through fsspec's configuration (``fsspec.config.conf["s3"]``, the same settings that
``FSSPEC_S3_*`` environment variables give), so the tests exercise the URLs exactly as users pass them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

pytest.importorskip("fsspec")
pytest.importorskip("upath")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")
pytest.importorskip("flask")

import dsformats  # noqa: E402
from dsformats import DatasetError  # noqa: E402
from dsformats.archives import COMPLETE_MARKER, LEASE  # noqa: E402
from tests.core.test_archives import _files, snapshot  # noqa: E402

_WAIT = 15.0  # seconds: every wait on the server is bounded by this


def _bounded(action, what: str) -> None:
    """Run ``action`` in a daemon thread and fail (rather than hang) when it takes longer than ``_WAIT``."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(_WAIT)
    if thread.is_alive():
        pytest.fail(f"{what} did not finish within {_WAIT:.0f} s")
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server bound to 127.0.0.1 on a free port, for this module."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    _bounded(server.start, "starting the moto server")
    host, port = server.get_host_and_port()
    assert host == "127.0.0.1"
    yield f"http://127.0.0.1:{port}"
    _bounded(server.stop, "stopping the moto server")


@pytest.fixture
def s3(s3_endpoint, monkeypatch, tmp_path):
    """A fresh bucket URL (``s3://test-xxxx``); s3fs talks only to the local server, with short timeouts."""
    import fsspec.config
    import s3fs

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy",
                 "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254 for credentials
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setitem(fsspec.config.conf, "s3", {
        "key": "testing", "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_endpoint},  # region: AWS_DEFAULT_REGION
        "config_kwargs": {"connect_timeout": 5, "read_timeout": 30, "retries": {"max_attempts": 2}},
    })
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    assert fs.client_kwargs["endpoint_url"].startswith("http://127.0.0.1:")
    bucket = f"test-{uuid.uuid4().hex[:8]}"
    fs.mkdir(bucket)
    yield f"s3://{bucket}"
    fs.invalidate_cache()
    fs.rm(bucket, recursive=True)
    s3fs.S3FileSystem.clear_instance_cache()


def _s3_files(url: str) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    root = url.removeprefix("s3://").rstrip("/")
    return {path[len(root) + 1 :]: fs.cat_file(path) for path in fs.find(root)}


def test_read_coco_tree_from_s3(datumaro_fixtures, s3):
    import s3fs

    tree = datumaro_fixtures / "coco_dataset/coco_instances"
    fs = s3fs.S3FileSystem()
    for rel, path in _files(tree):
        fs.pipe_file(f"{s3}/coco/{rel}".removeprefix("s3://"), path.read_bytes())
    assert dsformats.detect_format(f"{s3}/coco") == "coco"
    remote = snapshot(f"{s3}/coco")
    assert remote == snapshot(tree)
    assert any(media is not None and media[2] != b"<missing>" for _, _, media in remote[3])  # image bytes read


def test_write_voc_to_s3_is_marked_complete_and_equals_a_local_conversion(datumaro_fixtures, s3, tmp_path):
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    report = dsformats.convert(src, f"{s3}/out/", "voc", writer_options={"save_images": True})
    assert report.items_written
    local = tmp_path / "local"
    dsformats.convert(src, local, "voc", writer_options={"save_images": True})
    files = _s3_files(s3)
    assert not [name for name in files if ".dsformats-" in name]  # the temporary prefix is gone
    marker = json.loads(files.pop(f"out/{COMPLETE_MARKER}"))
    assert marker["complete"] is True and marker["files"] == len(files)
    expected = {f"out/{rel}": path.read_bytes() for rel, path in _files(local)}
    assert files == expected


def test_failed_write_to_s3_publishes_nothing(datumaro_fixtures, s3, monkeypatch):
    src = datumaro_fixtures / "coco_dataset/coco_instances"

    def items():
        with dsformats.read(src) as reader:
            yield from reader.items()
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        dsformats.write(items(), f"{s3}/out/", "voc")
    assert _s3_files(s3) == {}

    import s3fs

    calls: list[str] = []
    original = s3fs.S3FileSystem._cp_file

    async def failing_copy(self, path1, path2, **kwargs):
        calls.append(path2)
        if len(calls) > 1:
            raise OSError("connection reset")
        return await original(self, path1, path2, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_cp_file", failing_copy)
    with pytest.raises(DatasetError, match="nothing was published"):
        dsformats.convert(src, f"{s3}/out/", "voc", writer_options={"save_images": True})
    assert len(calls) == 2
    assert _s3_files(s3) == {}  # neither a partial output nor the temporary prefix



def test_failed_upload_to_s3_publishes_nothing(datumaro_fixtures, s3, monkeypatch):
    import s3fs

    calls: list[str] = []
    original = s3fs.S3FileSystem._put_file

    async def failing_put(self, lpath, rpath, **kwargs):
        calls.append(rpath)
        if len(calls) > 2:
            raise OSError("connection reset")
        return await original(self, lpath, rpath, **kwargs)

    monkeypatch.setattr(s3fs.S3FileSystem, "_put_file", failing_put)
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    with pytest.raises(DatasetError, match="nothing was published"):
        dsformats.convert(src, f"{s3}/out/", "coco", writer_options={"save_images": True})
    assert len(calls) == 3 and all(".out.dsformats-" in path for path in calls)  # the lease, then two files
    assert _s3_files(s3) == {}


# A conversion to S3 in a child process that SIGKILLs itself while uploading its third file.
_KILLED_WRITER = """
import os, signal, sys
import s3fs
from dsformats.cli import main

calls = []
original = s3fs.S3FileSystem._put_file

async def put_then_die(self, lpath, rpath, **kwargs):
    calls.append(rpath)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return await original(self, lpath, rpath, **kwargs)

if __name__ == "__main__":  # the VOC writer's worker processes import this module
    s3fs.S3FileSystem._put_file = put_then_die
    sys.exit(main(sys.argv[1:]))
"""


def _killed_write(src, dst: str, tmp_path) -> int:
    """Run ``convert -i src -f voc -o dst -- --save-images`` in a child that is killed mid-upload; its PID."""
    import fsspec.config

    env = {k: v for k, v in os.environ.items() if not k.startswith("FSSPEC_")}
    env["FSSPEC_S3"] = json.dumps(fsspec.config.conf["s3"])  # the documented way to point s3fs at a server
    script = tmp_path / "killed_writer.py"
    script.write_text(_KILLED_WRITER)
    errors = tmp_path / "killed_writer.err"
    with errors.open("wb") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), "convert", "-q", "-i", str(src), "-f", "voc", "-o", dst, "--",
             "--save-images"],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )
        assert proc.wait(timeout=120) == -signal.SIGKILL, errors.read_text()
    return proc.pid


def test_killed_upload_publishes_nothing_and_the_next_write_removes_its_temporary_prefix(
    datumaro_fixtures, s3, tmp_path
):
    src = datumaro_fixtures / "coco_dataset/coco_instances"
    pid = _killed_write(src, f"{s3}/data/out/", tmp_path)
    left = _s3_files(s3)
    temporary = {name.split("/")[1] for name in left}
    assert len(temporary) == 1 and temporary.pop().startswith(f".out.dsformats-{pid}-")
    assert not [name for name in left if name.startswith("data/out/")]  # nothing published, no marker
    lease = json.loads(next(data for name, data in left.items() if name.endswith(f"/{LEASE}")))
    assert lease["pid"] == pid and lease["by"] == "dsformats"
    assert len(left) == 3  # the lease and the two files uploaded before the kill

    dsformats.convert(src, f"{s3}/data/out/", "voc", writer_options={"save_images": True})
    local = tmp_path / "local"
    dsformats.convert(src, local, "voc", writer_options={"save_images": True})
    files = _s3_files(s3)
    marker = json.loads(files.pop(f"data/out/{COMPLETE_MARKER}"))
    assert marker["files"] == len(files)
    assert files == {f"data/out/{rel}": path.read_bytes() for rel, path in _files(local)}  # no temporary left


def test_only_abandoned_temporary_prefixes_are_removed(datumaro_fixtures, s3):
    """Kept: a live process's, a fresh foreign lease, one without a lease but recent, other outputs'."""
    import s3fs

    from dsformats import archives

    fs = s3fs.S3FileSystem()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a PID of this machine that no longer runs
    here = archives._process_space()
    now = time.time()
    leases = {
        "live": {"by": "dsformats", "pid": os.getpid(), "space": here, "time": now},
        "dead": {"by": "dsformats", "pid": dead.pid, "space": here, "time": now},
        "foreign": {"by": "dsformats", "pid": 1, "space": "another-machine/1", "time": now},
        "foreign-old": {"by": "dsformats", "pid": 1, "space": "another-machine/1", "time": now - 2 * 86400},
    }
    bucket = s3.removeprefix("s3://")
    for key, lease in leases.items():
        fs.pipe_file(f"{bucket}/.out.dsformats-{key}.tmp/{LEASE}", json.dumps(lease).encode())
        fs.pipe_file(f"{bucket}/.out.dsformats-{key}.tmp/annotations/a.json", b"{}")
    fs.pipe_file(f"{bucket}/.out.dsformats-nolease.tmp/annotations/a.json", b"{}")
    fs.pipe_file(f"{bucket}/.other.dsformats-dead.tmp/{LEASE}", json.dumps(leases["dead"]).encode())

    src = datumaro_fixtures / "coco_dataset/coco_instances"
    dsformats.convert(src, f"{s3}/out", "coco")
    left = sorted({name.split("/")[0] for name in _s3_files(s3)})
    assert left == [
        ".other.dsformats-dead.tmp", ".out.dsformats-foreign.tmp", ".out.dsformats-live.tmp",
        ".out.dsformats-nolease.tmp", "out",
    ]


@pytest.mark.parametrize("packing", ["tree", "zip"])
def test_convert_with_images_from_s3_equals_a_local_conversion(datumaro_fixtures, s3, tmp_path, packing):
    """Images read from S3 objects, or from members of a zip on S3, by the read-ahead threads."""
    import s3fs

    from tests.core.test_archives import pack

    tree = datumaro_fixtures / "coco_dataset/coco_instances"
    fs = s3fs.S3FileSystem()
    bucket = s3.removeprefix("s3://")
    if packing == "zip":
        archive = pack(tree, tmp_path / "coco.zip", wrap="export")
        fs.put_file(str(archive), f"{bucket}/coco.zip")
        src = f"{s3}/coco.zip"
    else:
        for rel, path in _files(tree):
            fs.pipe_file(f"{bucket}/coco/{rel}", path.read_bytes())
        src = f"{s3}/coco"
    report = dsformats.convert(src, tmp_path / "remote", "voc", writer_options={"save_images": True})
    assert report.media_copied == 2
    dsformats.convert(tree, tmp_path / "local", "voc", writer_options={"save_images": True})
    expected = {rel: path.read_bytes() for rel, path in _files(tmp_path / "local")}
    assert {rel: path.read_bytes() for rel, path in _files(tmp_path / "remote")} == expected
