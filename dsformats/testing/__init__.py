"""The conformance kit: the checks every format passes, for the built-ins and for third-party plugins.

Use it in two ways.

* Subclass :class:`FormatConformance` in a test module and set ``format_name``; pytest collects every
  ``test_*`` method (name your subclass ``Test...``)::

      from dsformats.testing import FormatConformance

      class TestYoloConformance(FormatConformance):
          format_name = "yolo"
          tolerance = 1e-6          # YOLO stores normalised floats

* Or call the ``assert_*`` functions from your own tests; each raises ``AssertionError`` with a message
  naming the format and what went wrong.

The checks: metadata (:func:`assert_metadata`), round trip of generated items (:func:`assert_round_trip`),
a lazy single-pass reader (:func:`assert_reader_is_lazy`), a writer fed by a one-shot iterator
(:func:`assert_writer_accepts_iterator`), detection (:func:`assert_detects_own_output`,
:func:`assert_does_not_claim_others`), options refused early (:func:`assert_unknown_options_refused`) and
atomic output (:func:`assert_failed_write_leaves_no_output`). A format with a ``dsformats_merge`` hook
checks it with :func:`assert_distributed_equals_single` (Dask's output equals one process's, file for file;
:func:`read_tree` and :func:`assert_trees_equal` compare outputs byte for byte).

This module is not imported by ``import dsformats``; pytest, Pillow, numpy and Dask are imported inside the
functions. Add ``pytest_plugins = ["dsformats.testing"]`` to a ``conftest.py`` for the fixtures
``dsformats_registry``, ``dsformats_items`` and ``dsformats_scheduler`` (a 2-worker Dask ``LocalCluster``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from dsformats.model import Header, Item
from dsformats.registry import Registry, build_registry
from dsformats.testing.checks import (
    HEAVY_MODULES,
    MediaAccessLog,
    assert_detects_own_output,
    assert_distributed_equals_single,
    assert_does_not_claim_others,
    assert_failed_write_leaves_no_output,
    assert_metadata,
    assert_reader_is_lazy,
    assert_round_trip,
    assert_unknown_options_refused,
    assert_writer_accepts_iterator,
)
from dsformats.testing.compare import assert_items_equal, assert_trees_equal, canonical_item, read_tree
from dsformats.testing.conformance import FormatConformance
from dsformats.testing.generate import DEFAULT_LABELS, KEYPOINT_LABEL, KEYPOINT_NAMES, generate_items, random_image

__all__ = [
    "DEFAULT_LABELS",
    "HEAVY_MODULES",
    "KEYPOINT_LABEL",
    "KEYPOINT_NAMES",
    "FormatConformance",
    "MediaAccessLog",
    "assert_detects_own_output",
    "assert_distributed_equals_single",
    "assert_does_not_claim_others",
    "assert_failed_write_leaves_no_output",
    "assert_items_equal",
    "assert_metadata",
    "assert_reader_is_lazy",
    "assert_round_trip",
    "assert_trees_equal",
    "assert_unknown_options_refused",
    "assert_writer_accepts_iterator",
    "canonical_item",
    "generate_items",
    "random_image",
    "read_tree",
]

# ------------------------------------------------------------------------------------------ pytest plugin

try:  # the fixtures exist only under pytest (``pytest_plugins = ["dsformats.testing"]``)
    import pytest as _pytest
except ImportError:  # pragma: no cover
    _pytest = None  # type: ignore[assignment]

if _pytest is not None:

    @_pytest.fixture
    def dsformats_registry() -> Registry:
        """A freshly built registry of the installed plugins."""
        return build_registry()

    @_pytest.fixture
    def dsformats_items() -> Callable[..., tuple[Header, list[Item]]]:
        """:func:`generate_items`, as a fixture: ``header, items = dsformats_items({"bbox"}, seed=3)``."""
        return generate_items

    @_pytest.fixture(scope="session")
    def dsformats_scheduler() -> Iterator[str]:
        """The address of a Dask ``LocalCluster`` of 2 single-threaded worker processes, for the session."""
        distributed = _pytest.importorskip("dask.distributed")
        with distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster:
            yield cluster.scheduler_address
