"""Scale-out with object storage: shards write their partials to S3 (moto), the client merges and publishes there."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("dask.distributed")
pytest.importorskip("s3fs")
pytest.importorskip("moto.server")

import dsformats  # noqa: E402
from dsformats.archives import COMPLETE_MARKER  # noqa: E402
from dsformats.testing import generate_items  # noqa: E402
from tests.core.test_archives import _files  # noqa: E402
from tests.core.test_s3 import _s3_files, s3, s3_endpoint  # noqa: E402, F401 - fixtures


def test_remote_cluster_writes_partials_to_object_storage(s3, monkeypatch, tmp_path):  # noqa: F811 - fixture
    """A cluster whose workers share no disk with the client: partials go next to the s3:// output."""
    import fsspec.config
    from dask.distributed import LocalCluster

    from dsformats import scaleout

    # Worker processes read fsspec's configuration from the environment, as on a real cluster.
    monkeypatch.setenv("FSSPEC_S3", json.dumps(fsspec.config.conf["s3"]))
    header, items = generate_items(("bbox", "polygon", "label", "caption"), seed=5, count=24)
    src = tmp_path / "src"
    dsformats.write(items, src, "coco", header=header, options={"save_images": True})
    single = tmp_path / "single"
    dsformats.convert(src, single, "coco", writer_options={"save_images": True})

    locations: list[str] = []
    original = scaleout._Parts.part

    def spy(self: scaleout._Parts, index: int) -> str:
        locations.append(original(self, index))
        return locations[-1]

    monkeypatch.setattr(scaleout._Parts, "part", spy)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        report = scaleout.convert_distributed(
            src, f"{s3}/out/", "coco", writer_options={"save_images": True}, scheduler=cluster.scheduler_address,
            shards=3, retries=0,
        )
    assert not [w for w in report.warnings if "single process" in w]
    assert len(locations) == 3 and all(loc.startswith(f"{s3}/.out.dsformats-") for loc in locations)
    files = _s3_files(s3)
    assert not [name for name in files if ".dsformats-" in name]  # partials and temporary prefixes removed
    marker = json.loads(files.pop(f"out/{COMPLETE_MARKER}"))
    assert marker["complete"] is True
    assert files == {f"out/{rel}": path.read_bytes() for rel, path in _files(single)}
