"""The hooks a format plugin implements (pluggy project name ``dsformats``).

A plugin is any module or object with functions decorated by :data:`hookimpl`, registered through an entry
point in the group ``dsformats``::

    [project.entry-points.dsformats]
    kitti = "dsformats_kitti"

Hooks are called with keyword arguments only; an implementation may accept a subset of the arguments.
Keep the plugin module light: import Pillow, numpy or JSON libraries inside ``dsformats_open_reader`` and
``dsformats_open_writer``, not at module level.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from dsformats.detect import Detection, Probe
    from dsformats.formats import FormatSpec, Reader, Writer
    from dsformats.model import Header
    from dsformats.placement import PlannedMedia

PROJECT = "dsformats"

hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate a plugin's hook implementations with this marker.
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def dsformats_formats() -> Sequence[FormatSpec]:
    """Declare the formats this plugin provides.

    Return a list of :class:`~dsformats.FormatSpec`: name, description, extensions, whether it reads and
    writes, the annotation kinds it stores, and its reader and writer options as data. Called once when the
    registry is built; must be cheap and must not import heavy libraries.
    """


@hookspec
def dsformats_detect(path: Path, probe: Probe) -> Sequence[Detection] | Detection | None:
    """Say whether ``path`` (a file or a directory) holds one of this plugin's formats.

    Use only ``probe``'s bounded, read-only helpers to look at the data. Return a
    :class:`~dsformats.Detection` (or a list of them, one per format) with a confidence and a reason;
    ``Confidence.NONE`` with a reason explains a rejection to ``detect --explain``. Return None to stay
    silent. Detections for formats the plugin did not declare are ignored.
    """


@hookspec(firstresult=True)
def dsformats_open_reader(format: str, path: Path, options: Mapping[str, Any]) -> Reader | None:
    """Return a :class:`~dsformats.Reader` for ``path`` if ``format`` is yours, else None.

    ``options`` has already been validated against the format's ``reader_options``, with every declared
    option present (defaults filled in). The first non-None result wins. Do not read anything yet: the
    reader does its work in ``__enter__`` and ``items()``.
    """


@hookspec(firstresult=True)
def dsformats_open_writer(format: str, path: Path, options: Mapping[str, Any]) -> Writer | None:
    """Return a :class:`~dsformats.Writer` that writes into the directory ``path`` if ``format`` is yours.

    ``path`` is a fresh staging directory; the dispatcher publishes it at the real destination only after
    the writer exits without error. ``options`` is validated like the reader's. The first non-None
    result wins.
    """


@hookspec(firstresult=True)
def dsformats_merge(format: str, parts: Sequence[Path], path: Path, options: Mapping[str, Any], report: Any) -> Any:
    """Optional: merge partial outputs of ``format`` into the directory ``path``; return True, or None.

    Scale-out engines (``dsformats.scaleout``) write each shard of a dataset with your ordinary writer into
    its own directory; ``parts`` lists them in shard order (the items of part 0 come first), each given once its
    shard is done, while later shards may still run (take them in order, as needed). ``path`` is
    the fresh staging directory of the real output and ``options`` the validated writer options. Build in
    ``path`` exactly the bytes that one writer given every item in order would have written; parts may be
    consumed (files moved out of them). Return None when ``format`` is not yours or when these parts cannot
    give that exact output: the engine then converts in a single process instead. ``report`` (the merged
    :class:`~dsformats.Report`) takes warnings.
    """


@hookspec(firstresult=True)
def dsformats_placed_size(format: str, media: Iterable[PlannedMedia], options: Mapping[str, Any]) -> int | None:
    """Optional: the exact bytes that a part holding items with these ``media`` (in order) takes in the merged
    output of ``format``; None when it is not yours or you cannot tell.

    Only for a format whose merge keeps parts where the scale-out engine placed them (see
    :mod:`dsformats.placement`): its writer then writes a shard's part into its byte range of the merged output
    (:func:`dsformats.policy.placement`), and its merge adopts it without copying when the part fits the range
    exactly. ``options`` are the validated writer options.
    """


@hookspec
def dsformats_header_losses(
    format: str, header: Header, options: Mapping[str, Any]
) -> Sequence[tuple[str, str, int]] | None:
    """Optional: what of ``header`` a ``format`` writer with these ``options`` cannot keep, as
    ``(kind, reason, count)`` tuples; None when ``format`` is not yours.

    Called once per conversion, before the items are written (on the client of a scale-out run, never in its
    shards); the report counts each as dropped and ``--strict`` refuses. The core already counts the label
    list (for a target that stores no annotations), keypoint schemas (no ``points``) and another format's
    :attr:`~dsformats.Header.metadata`: report only what your format's own rules lose.
    """
