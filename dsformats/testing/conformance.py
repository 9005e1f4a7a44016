"""``FormatConformance``: the checks as a test class to subclass."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from dsformats.model import (
    Header,
    Item,
)
from dsformats.registry import Registry, build_registry
from dsformats.testing.checks import (
    assert_detects_own_output,
    assert_does_not_claim_others,
    assert_failed_write_leaves_no_output,
    assert_metadata,
    assert_reader_is_lazy,
    assert_round_trip,
    assert_unknown_options_refused,
    assert_writer_accepts_iterator,
    write_sample,
)
from dsformats.testing.generate import DEFAULT_LABELS, generate_items


class FormatConformance:
    """Subclass as ``class TestMyFormat(FormatConformance): format_name = "myformat"``.

    Class attributes customise the generated data and the comparison:

    * ``format_name``: the format under test.
    * ``plugins``: plugin objects to register in code (with ``entrypoints`` to also load the installed ones).
    * ``kinds``: annotation kinds to generate; default: every kind the format declares.
    * ``subsets``, ``labels``, ``image_suffixes``, ``item_count``, ``seed``: the generated items.
    * ``writer_options``, ``reader_options``: used for every write and read; ``save_images=True`` is added
      when the format declares that option.
    * ``tolerance``: absolute coordinate difference allowed, in pixels (0 = exact). For formats that store
      normalised or rounded coordinates (YOLO).
    * ``passthrough``: image bytes and suffix must be kept exactly (turn off only for formats that
      re-encode by design).
    * ``lossless``: the report must record no drop for the generated items.
    * ``other_formats``: formats whose outputs must not be claimed; default: the other built-ins.

    Override :meth:`make_items` to generate your own data and :meth:`normalize` to map items (expected and
    read back) before the comparison, for what the format changes by design.
    """

    format_name: ClassVar[str] = ""
    plugins: ClassVar[Sequence[object]] = ()
    entrypoints: ClassVar[bool] = True
    kinds: ClassVar[Iterable[str] | None] = None
    subsets: ClassVar[Sequence[str]] = ("train", "val")
    labels: ClassVar[Sequence[str]] = DEFAULT_LABELS
    image_suffixes: ClassVar[Sequence[str]] = (".png", ".jpg")
    item_count: ClassVar[int] = 6
    seed: ClassVar[int] = 0
    writer_options: ClassVar[Mapping[str, Any]] = {}
    reader_options: ClassVar[Mapping[str, Any]] = {}
    tolerance: ClassVar[float] = 0.0
    passthrough: ClassVar[bool] = True
    lossless: ClassVar[bool] = True
    other_formats: ClassVar[Sequence[str] | None] = None

    # -- customisation points
    def make_registry(self) -> Registry:
        """The registry under test: installed plugins plus ``plugins``."""
        return build_registry(entrypoints=self.entrypoints, plugins=self.plugins)

    def make_items(self, registry: Registry) -> tuple[Header, list[Item]]:
        """The header and items to write; by default :func:`generate_items` for the declared kinds."""
        spec = registry.get(self.format_name).spec
        kinds = spec.annotation_kinds if self.kinds is None else frozenset(self.kinds)
        return generate_items(
            kinds,
            seed=self.seed,
            count=self.item_count,
            subsets=self.subsets,
            labels=self.labels,
            image_suffixes=self.image_suffixes,
        )

    def normalize(self, item: Item) -> Item:
        """Map an item before comparison (applied to expected and read-back items); identity by default."""
        return item

    def options_for_writing(self, registry: Registry) -> dict[str, Any]:
        """``writer_options``, plus ``save_images=True`` when the format has that option."""
        spec = registry.get(self.format_name).spec
        options = dict(self.writer_options)
        if any(o.name == "save_images" for o in spec.writer_options):
            options.setdefault("save_images", True)
        return options

    # -- plumbing
    def _setup(self) -> tuple[Registry, Header, list[Item]]:
        assert self.format_name, f"{type(self).__name__} must set format_name"
        registry = self.make_registry()
        assert self.format_name in registry.formats, (
            f"format {self.format_name!r} is not installed (formats: {', '.join(registry.formats)}; "
            f"load errors: {[str(e) for e in registry.load_errors] or 'none'})"
        )
        header, items = self.make_items(registry)
        return registry, header, items

    def _written(self, tmp_path: Path) -> tuple[Registry, Header, list[Item], Path]:
        registry, header, items = self._setup()
        out = tmp_path / "written"
        write_sample(self.format_name, items, out, header, self.options_for_writing(registry), registry)
        return registry, header, items, out

    def _require(self, registry: Registry, read: bool = True, write: bool = True) -> None:
        import pytest

        spec = registry.get(self.format_name).spec
        if (read and not spec.can_read) or (write and not spec.can_write):
            pytest.skip(f"{self.format_name} does not {'read' if read and not spec.can_read else 'write'}")

    # -- the checks
    def test_metadata(self) -> None:
        assert_metadata(self.format_name, registry=self._setup()[0])

    def test_round_trip(self, tmp_path: Path) -> None:
        registry, header, items = self._setup()
        self._require(registry)
        assert_round_trip(
            self.format_name,
            tmp_path / "out",
            header,
            items,
            writer_options=self.options_for_writing(registry),
            reader_options=self.reader_options,
            tolerance=self.tolerance,
            normalize=self.normalize,
            passthrough=self.passthrough,
            lossless=self.lossless,
            registry=registry,
        )

    def test_reader_is_lazy(self, tmp_path: Path) -> None:
        registry, _header, _items, out = self._written(tmp_path)
        self._require(registry)
        assert_reader_is_lazy(self.format_name, out, reader_options=self.reader_options, registry=registry)

    def test_writer_accepts_iterator(self, tmp_path: Path) -> None:
        registry, header, items = self._setup()
        self._require(registry, read=False)
        assert_writer_accepts_iterator(
            self.format_name,
            tmp_path / "out",
            header,
            items,
            writer_options=self.options_for_writing(registry),
            registry=registry,
        )

    def test_detects_own_output(self, tmp_path: Path) -> None:
        registry, _header, _items, out = self._written(tmp_path)
        self._require(registry)
        assert_detects_own_output(self.format_name, out, registry=registry)

    def test_does_not_claim_others(self, tmp_path: Path) -> None:
        import pytest

        registry = self._setup()[0]
        _checked, unavailable = assert_does_not_claim_others(
            self.format_name, tmp_path, others=self.other_formats, registry=registry
        )
        if unavailable:  # shown by pytest -ra: the other formats' own conformance tests fail on this
            pytest.skip(f"checked the others, but these formats could not write a sample: {unavailable}")

    def test_unknown_options_refused(self, tmp_path: Path) -> None:
        registry, _header, _items, out = self._written(tmp_path) if self._can_write() else (*self._setup(), None)
        assert_unknown_options_refused(self.format_name, tmp_path, out, registry=registry)

    def _can_write(self) -> bool:
        return self.make_registry().get(self.format_name).spec.can_write

    def test_failed_write_leaves_no_output(self, tmp_path: Path) -> None:
        registry, header, items = self._setup()
        self._require(registry, read=False)
        workdir = tmp_path / "work"
        workdir.mkdir()
        assert_failed_write_leaves_no_output(
            self.format_name,
            workdir,
            header,
            items,
            writer_options=self.options_for_writing(registry),
            registry=registry,
        )
