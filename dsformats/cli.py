"""The command line: ``python -m dsformats convert|detect|formats|info|preview``.

Exit codes: 0 success; 1 conversion error; 2 usage error, unknown format or nothing detected; 3 ambiguous
detection. Help texts and format lists are rendered from the registry.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dsformats import dispatch
from dsformats.detect import Confidence, Detection, best_detections
from dsformats.errors import DsformatsError, OptionError
from dsformats.options import build_parser, parse_cli_options
from dsformats.registry import Registry, build_registry

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AMBIGUOUS = 0, 1, 2, 3


class _UsageParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise OptionError(f"{self.prog}: {message}")


_MAIN_EXAMPLES = """\
examples:
  dsformats formats                                     # the installed formats
  dsformats detect data/ --explain                      # every format's verdict and reason
  dsformats info data/coco                              # items, labels, annotation kinds, image sizes
  dsformats convert -i examples/zips -f coco -o out/coco -- --save-images
  dsformats convert -i data/voc -f image_zip -o out -- --name data.zip --compression ZIP_DEFLATED
  dsformats preview data/voc -o previews/ -n 16         # annotated PNGs + previews/contact_sheet.png

Run 'dsformats COMMAND -h' for a command's options and 'dsformats convert -f FMT -i . -o . -- -h' for a
format's writer options.
exit codes: 0 ok, 1 conversion error, 2 usage error or nothing detected, 3 ambiguous format (use -if)
"""

_CONVERT_EXAMPLES = """\
examples:
  dsformats convert -i examples/zips -f coco -o out/coco -- --save-images
  dsformats convert -i examples/coco -f voc -o out/voc --report report.json -- --tasks detection --save-images
  dsformats convert -i examples/voc -if voc -f coco -o out/coco --strict
  dsformats convert -i examples/zips -f image_zip -o out/zip -- --name data.zip --compression ZIP_DEFLATED
  dsformats convert -f voc -i . -o . -- -h              # the writer options of voc

Writer options come after '--'; reader options are given as -io KEY=VALUE. A report of what was read,
written and dropped is printed afterwards; --strict makes any loss exit 1 without publishing the output.
"""

_DETECT_EXAMPLES = """\
examples:
  dsformats detect examples/coco                        # prints: coco
  dsformats detect examples/voc --explain               # every format's verdict and reason
  dsformats detect data/ --explain --json
"""

_FORMATS_EXAMPLES = """\
examples:
  dsformats formats
  dsformats formats --verbose                           # options, annotation kinds, plugin load errors
  dsformats formats --json
"""

_INFO_EXAMPLES = """\
examples:
  dsformats info examples/coco
  dsformats info examples/zips -io subset_from=archive --json
  dsformats info big_dataset/ --no-sizes                # skip reading image headers

Image sizes are read from image headers only (no decoding), or taken from the annotation files.
"""

_PREVIEW_EXAMPLES = """\
examples:
  dsformats preview examples/voc -o previews/           # first 16 items + previews/contact_sheet.png
  dsformats preview examples/coco -o previews/ -n 4 --subset train
  dsformats preview examples/coco -o previews/ --ids img_000 img_002

Boxes, polygons, polylines, masks (translucent), keypoints with skeletons, labels and captions are drawn
in the dataset's label colours when it has them, else in stable colours hashed from the label names.
"""


def _parser() -> argparse.ArgumentParser:
    from dsformats import __version__

    raw = argparse.RawDescriptionHelpFormatter
    parser = _UsageParser(
        prog="dsformats",
        description="Read, write and convert computer-vision dataset formats.",
        epilog=_MAIN_EXAMPLES,
        formatter_class=raw,
    )
    parser.add_argument("--version", action="version", version=f"dsformats {__version__}")
    parser.add_argument("--strict-plugins", action="store_true", help="fail if any plugin fails to load")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_UsageParser)

    def command(name: str, help: str, epilog: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=raw)

    def input_format(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-if", "--input-format", metavar="FMT", help="input format (detected when omitted)")
        sub.add_argument(
            "-io", "--input-option", action="append", default=[], metavar="KEY=VALUE", help="a reader option"
        )

    conv = command("convert", "convert a dataset to another format (streaming)", _CONVERT_EXAMPLES)
    conv.add_argument("-i", "--input", required=True, metavar="SRC", help="input file or directory")
    conv.add_argument("-f", "--format", required=True, metavar="FMT", help="output format")
    conv.add_argument("-o", "--output", required=True, metavar="DST", help="output directory")
    input_format(conv)
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output")
    conv.add_argument("--strict", action="store_true", help="fail (exit 1, no output) if anything is dropped")
    conv.add_argument(
        "--skip-bad-items", action="store_true", help="skip items that cannot be read or written, and list them"
    )
    conv.add_argument("--report", metavar="FILE.json", help="also save the conversion report as JSON")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report on stdout")
    conv.add_argument(
        "--engine", choices=("auto", "local", "processes", "dask"), default="auto",
        help="'local': one process; 'processes': convert shards in --workers local processes and merge them; "
        "'dask': on Dask workers (needs dsformats[dask]); 'auto' (default): 'processes' for local folders of "
        "2,000 items or more when the target has a merge, else 'local'. The output is the same with every "
        "engine; see docs/scale-out.md",
    )
    conv.add_argument("--scheduler", metavar="tcp://HOST:8786", help="with --engine dask: an existing Dask cluster")
    conv.add_argument(
        "--workers", type=int, default=None, metavar="N",
        help="worker processes of --engine processes/auto (default: the number of usable CPUs) or of a local "
        "Dask cluster (default 2)",
    )
    conv.add_argument(
        "--parts-dir", metavar="DIR|URL",
        help="with --engine processes/dask: where shards write their partial outputs, visible to every worker "
        "(default: next to the output)",
    )

    det = command("detect", "detect the format of a dataset", _DETECT_EXAMPLES)
    det.add_argument("path", metavar="PATH")
    det.add_argument("--explain", action="store_true", help="show every format's verdict and reason")
    det.add_argument("--json", action="store_true", help="machine-readable output")

    fmts = command("formats", "list the installed formats", _FORMATS_EXAMPLES)
    fmts.add_argument("-v", "--verbose", action="store_true", help="options, sources and plugin load errors")
    fmts.add_argument("--json", action="store_true", help="machine-readable output")

    info = command("info", "summarise a dataset: items, labels, annotations, image sizes", _INFO_EXAMPLES)
    info.add_argument("path", metavar="PATH")
    input_format(info)
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.add_argument("--no-sizes", action="store_true", help="do not read image headers for sizes")
    info.add_argument(
        "--verify", action="store_true", help="also decode every image and mask; list the broken ones (exit 1 if any)"
    )
    info.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    prev = command("preview", "draw annotations on images: one PNG per item and a contact sheet", _PREVIEW_EXAMPLES)
    prev.add_argument("path", metavar="PATH")
    prev.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (created)")
    input_format(prev)
    prev.add_argument(
        "-n", type=int, default=16, metavar="N", help="render the first N selected items, 0 for all (default: 16)"
    )
    prev.add_argument("--subset", metavar="S", help="only items of this subset")
    prev.add_argument("--ids", nargs="+", metavar="ID", help="only these item ids")
    prev.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no summary")
    return parser


def _key_values(pairs: Sequence[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise OptionError(f"reader option {pair!r} must look like key=value")
        result[key.strip()] = value
    return result


def _report_errors(registry: Registry) -> None:
    for error in registry.load_errors:
        print(f"dsformats: warning: {error} (see 'dsformats formats --verbose')", file=sys.stderr)


# ---------------------------------------------------------------------------------------------- commands


def _cmd_convert(args: argparse.Namespace, extra: list[str], registry: Registry) -> int:
    if args.scheduler and args.engine == "processes":
        raise OptionError("dsformats convert: --scheduler (a Dask cluster) cannot go with --engine processes")
    if args.engine == "local" and not args.scheduler and (args.workers is not None or args.parts_dir):
        raise OptionError("dsformats convert: --workers and --parts-dir need --engine processes or --engine dask")
    info, preset = registry.writer_format(args.format)
    spec = info.spec
    prog = f"dsformats convert -f {info.name} --"
    if any(word in ("-h", "--help") for word in extra):
        build_parser(spec.writer_options, prog=prog, description=f"{info.name}: {spec.description}").print_help()
        return EXIT_OK
    writer_options = {**preset, **parse_cli_options(spec.writer_options, extra, prog=prog)}
    writer_options = {k: v for k, v in writer_options.items() if v is not None}
    reader_options = _key_values(args.input_option)

    if args.engine != "local" or args.scheduler:
        return _convert_sharded(args, info.name, reader_options, writer_options, registry)
    progress, close = _progress_bar(args.quiet)
    try:
        report = dispatch.convert(
            args.input,
            args.output,
            info.name,
            source_format=args.input_format,
            reader_options=reader_options,
            writer_options=writer_options,
            overwrite=args.overwrite,
            strict=args.strict,
            skip_bad_items=args.skip_bad_items,
            registry=registry,
            progress=progress,
        )
    finally:
        close()
    if args.report:
        with open(args.report, "w", encoding="utf-8") as stream:
            json.dump(report.to_dict(), stream, indent=2)
    if not args.quiet:
        print(f"converted {args.input} ({report.source_format}) -> {args.output} ({report.target_format})")
        print(report.summary())
    return EXIT_OK


def _convert_sharded(
    args: argparse.Namespace, format: str, reader_options: dict[str, Any], writer_options: dict[str, Any],
    registry: Registry,
) -> int:
    from dsformats.scaleout import convert_distributed, usable_cpus

    engine = "dask" if args.scheduler else args.engine
    bar = None
    if not args.quiet and sys.stderr.isatty():
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: the processes engine forks only a single-threaded process
        bar = tqdm(file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int, items: int) -> None:
        if bar is not None:
            bar.unit, bar.total = " shards", total
            bar.set_postfix_str(f"{items:,} items")
            bar.update(done - bar.n)

    def item_progress(done: int, total: int | None) -> None:  # engine "auto" converting in this process
        if bar is not None:
            bar.unit, bar.total = " items", total
            bar.update(done - bar.n)

    try:
        report = convert_distributed(
            args.input, args.output, format, source_format=args.input_format, reader_options=reader_options,
            writer_options=writer_options, overwrite=args.overwrite, scheduler=args.scheduler,
            workers=args.workers or (usable_cpus() if engine in ("processes", "auto") else 2),
            parts_dir=args.parts_dir, registry=registry, progress=progress, item_progress=item_progress,
            strict=args.strict, skip_bad_items=args.skip_bad_items, engine=engine,
        )
    finally:
        if bar is not None:
            bar.close()
    if args.report:
        with open(args.report, "w", encoding="utf-8") as stream:
            json.dump(report.to_dict(), stream, indent=2)
    if not args.quiet:
        where = {"dask": " on Dask", "processes": " in worker processes"}.get(engine, "")
        print(f"converted {args.input} ({report.source_format}) -> {args.output} ({report.target_format}){where}")
        print(report.summary())
    return EXIT_OK


def _progress_bar(quiet: bool) -> tuple[Any, Any]:
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(unit=" items", file=sys.stderr, dynamic_ncols=True)

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update, bar.close


def _cmd_detect(args: argparse.Namespace, registry: Registry) -> int:
    verdicts = dispatch.detect(args.path, registry=registry)
    best = best_detections(verdicts)
    code = EXIT_OK if len(best) == 1 else EXIT_USAGE if not best else EXIT_AMBIGUOUS
    reported = {d.format for d in verdicts}
    silent = [Detection(name, Confidence.NONE, "no verdict from its plugin") for name in registry.readers()]
    silent = [d for d in silent if d.format not in reported]
    if args.json:
        shown = [*verdicts, *silent] if args.explain else best
        print(
            json.dumps(
                {
                    "path": str(args.path),
                    "formats": [d.format for d in best],
                    "detections": [
                        {"format": d.format, "confidence": d.confidence.name.lower(), "reason": d.reason} for d in shown
                    ],
                },
                indent=2,
            )
        )
        return code
    if args.explain:
        for d in [*verdicts, *silent]:
            print(f"{d.format}: {d.confidence.name.lower()}, {d.reason}")
    if not best:
        print(f"dsformats: no known format detected at {args.path}", file=sys.stderr)
    elif len(best) > 1:
        print(f"dsformats: ambiguous: {', '.join(d.format for d in best)}", file=sys.stderr)
    elif not args.explain:
        print(best[0].format)
    else:
        print(f"=> {best[0].format}")
    return code


def _cmd_formats(args: argparse.Namespace, registry: Registry) -> int:
    rows: list[dict[str, Any]] = []
    for info in registry.formats.values():
        spec = info.spec
        rows.append(
            {
                "name": info.name,
                "read": spec.can_read,
                "write": spec.can_write,
                "description": spec.description,
                "distribution": info.distribution,
                "version": info.version,
                "plugin": info.plugin,
                "extensions": list(spec.extensions),
                "annotation_kinds": sorted(spec.annotation_kinds),
                "aliases": sorted(spec.aliases),
                "reader_options": [o.name for o in spec.reader_options],
                "writer_options": [o.name for o in spec.writer_options],
            }
        )
    errors = [str(e) for e in registry.load_errors]
    if args.json:
        print(json.dumps({"formats": rows, "load_errors": errors, "disabled": list(registry.disabled)}, indent=2))
        return EXIT_OK
    width = max((len(r["name"]) for r in rows), default=4)
    for r in rows:
        mode = ("r" if r["read"] else "-") + ("w" if r["write"] else "-")
        source = f"{r['distribution']} {r['version']}" if r["distribution"] else f"plugin {r['plugin']}"
        print(f"{r['name']:<{width}}  {mode}  {source:<22}  {r['description']}")
        if args.verbose:
            for label in ("extensions", "annotation_kinds", "aliases", "reader_options", "writer_options"):
                if r[label]:
                    print(f"{'':<{width}}      {label.replace('_', ' ')}: {', '.join(r[label])}")
    if args.verbose:
        for name in registry.disabled:
            print(f"disabled plugin: {name}")
        for error in errors:
            print(f"load error: {error}")
    elif errors:
        print(f"({len(errors)} plugin(s) failed to load; see 'dsformats formats --verbose')", file=sys.stderr)
    return EXIT_OK


class _SizeStats:
    """Exact min, median and max of image widths and heights in memory bounded by the number of *distinct*
    values (a Counter per dimension), not by the number of items: fine for millions of images."""

    def __init__(self) -> None:
        self.widths: Counter[int] = Counter()
        self.heights: Counter[int] = Counter()

    def add(self, size: tuple[int, int]) -> None:
        self.widths[int(size[0])] += 1
        self.heights[int(size[1])] += 1

    @staticmethod
    def _median(counts: Counter[int]) -> float:
        total = sum(counts.values())
        lower, upper = (total - 1) // 2, total // 2
        seen, low = 0, None
        for value in sorted(counts):
            seen += counts[value]
            if low is None and seen > lower:
                low = value
            if seen > upper:
                return (low + value) / 2 if low != value else value  # type: ignore[operator]
        raise AssertionError("unreachable")

    def summary(self) -> dict[str, Any] | None:
        if not self.widths:
            return None
        return {
            name: {"min": min(counts), "median": self._median(counts), "max": max(counts)}
            for name, counts in (("width", self.widths), ("height", self.heights))
        }


def _info_summary(args: argparse.Namespace, registry: Registry) -> dict[str, Any]:
    subsets: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    per_label: dict[str, Counter[str]] = {}
    unlabeled: Counter[str] = Counter()
    annotated = without_media = unreadable = 0
    sizes = _SizeStats()
    options = _key_values(args.input_option)
    if args.input_format:
        format_name = registry.reader_format(args.input_format).name
    else:
        format_name = dispatch.detect_format(args.path, registry=registry)
    progress, close = _progress_bar(args.quiet or args.json)
    try:
        with dispatch.read(args.path, format_name, options=options, registry=registry) as reader:
            header = reader.header
            labels = header.categories.label_names
            for count, item in enumerate(reader.items(), 1):
                subsets[item.subset] += 1
                annotated += bool(item.annotations)
                for ann in item.annotations:
                    kinds[ann.kind] += 1
                    label = getattr(ann, "label", None)
                    if label is not None:
                        per_label.setdefault(label, Counter())[ann.kind] += 1
                    elif ann.kind != "caption":
                        unlabeled[ann.kind] += 1
                if item.media is None:
                    without_media += 1
                elif not args.no_sizes or item.media.known_size is not None:
                    try:
                        sizes.add(item.media.size)
                    except DsformatsError:
                        unreadable += 1
                if progress is not None:
                    progress(count, header.size_hint)
    finally:
        close()
    for name in per_label:
        if name not in labels:
            labels.append(name)
    items = sum(subsets.values())
    return {
        "path": str(args.path),
        "format": format_name,
        "items": items,
        "subsets": dict(sorted(subsets.items())),
        "images": {
            "with_annotations": annotated,
            "without_annotations": items - annotated,
            "without_media": without_media,
            "unreadable": unreadable,
            "size": sizes.summary(),
        },
        "annotation_kinds": sorted(kinds),
        "annotations": dict(sorted(kinds.items())),
        "unlabeled": dict(sorted(unlabeled.items())),
        "labels": {name: dict(sorted(per_label.get(name, Counter()).items())) for name in labels},
        "metadata": dict(header.metadata),
    }


def _cmd_info(args: argparse.Namespace, registry: Registry) -> int:
    summary = _info_summary(args, registry)
    problems: Sequence[tuple[str, DsformatsError]] = []
    if args.verify:
        from dsformats.verify import verify

        problems = verify(args.path, summary["format"], registry=registry)
        summary["verify"] = [{"location": where, "error": str(error)} for where, error in problems]
    code = EXIT_ERROR if problems else EXIT_OK
    if args.json:
        print(json.dumps(summary, indent=2))
        return code
    _print_info(summary, args)
    if args.verify:
        print(f"verify: {len(problems):,} broken" + (":" if problems else " (every image and mask decodes)"))
        for _, error in problems:
            print(f"  {error}")
    return code


def _print_info(summary: dict[str, Any], args: argparse.Namespace) -> None:
    images = summary["images"]
    print(f"{summary['path']} ({summary['format']}): {summary['items']:,} items")
    for subset, count in summary["subsets"].items():
        print(f"  {subset}: {count:,}")
    print(f"with annotations: {images['with_annotations']:,}; without: {images['without_annotations']:,}")
    if images["without_media"]:
        print(f"items without an image: {images['without_media']:,}")
    if images["unreadable"]:
        print(f"unreadable image headers: {images['unreadable']:,}")
    size = images["size"]
    if size:
        print("image size (min / median / max, from headers):")
        for dim in ("width", "height"):
            print(f"  {dim}: {size[dim]['min']:,} / {size[dim]['median']:,} / {size[dim]['max']:,}")
    elif args.no_sizes:
        print("image size: not read (--no-sizes)")
    print("annotation kinds: " + (", ".join(summary["annotation_kinds"]) or "none"))
    print("annotations: " + (", ".join(f"{k}: {v:,}" for k, v in summary["annotations"].items()) or "none"))
    if summary["unlabeled"]:
        print("without a label: " + ", ".join(f"{k}: {v:,}" for k, v in summary["unlabeled"].items()))
    if summary["metadata"]:  # what only a writer of this format keeps
        print("dataset metadata: " + ", ".join(f"{k}: {v:,}" for k, v in summary["metadata"].items()))
    print(f"labels ({len(summary['labels'])}):")
    width = max((len(name) for name in summary["labels"]), default=0)
    for name, counts in summary["labels"].items():
        print(f"  {name:<{width}}  " + (", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "unused"))


def _cmd_preview(args: argparse.Namespace, registry: Registry) -> int:
    from dsformats.preview import render_previews

    if args.n < 0:
        raise OptionError("dsformats preview: -n must be 0 (all) or more")
    progress, close = _progress_bar(args.quiet)
    try:
        result = render_previews(
            args.path,
            args.output,
            format=args.input_format,
            options=_key_values(args.input_option),
            limit=args.n,
            subset=args.subset,
            ids=args.ids,
            registry=registry,
            progress=progress,
        )
    finally:
        close()
    for note in result.notes:
        print(f"dsformats: note: {note}", file=sys.stderr)
    if not args.quiet:
        print(f"wrote {len(result.images):,} preview(s) to {args.output}")
        if result.contact_sheet is not None:
            print(f"contact sheet: {result.contact_sheet}")
    if not result.images:
        print("dsformats: no item was rendered", file=sys.stderr)
        return EXIT_ERROR
    return EXIT_OK


#: Set for the CLI's process unless already set: dsformats does no linear algebra, and numpy's OpenBLAS would
#: otherwise start a thread per core on import that spins for about 0.1 s of CPU, taken from the workers.
QUIET_BLAS = {"OPENBLAS_NUM_THREADS": "1"}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code. Without ``argv`` (the ``dsformats`` command itself), the process's
    environment also gets :data:`QUIET_BLAS` (a user's own settings are kept)."""
    if argv is None:
        for name, value in QUIET_BLAS.items():
            os.environ.setdefault(name, value)
    words = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in words:
        cut = words.index("--")
        words, extra = words[:cut], words[cut + 1 :]
    debug = "--debug" in words
    try:
        args = _parser().parse_args(words)
        registry = build_registry(strict=True if args.strict_plugins else None)
        _report_errors(registry) if args.command != "formats" else None
        if args.command == "convert":
            return _cmd_convert(args, extra, registry)
        if extra:
            raise OptionError(f"'--' options are only accepted by convert, got {' '.join(extra)}")
        if args.command == "detect":
            return _cmd_detect(args, registry)
        if args.command == "formats":
            return _cmd_formats(args, registry)
        if args.command == "preview":
            return _cmd_preview(args, registry)
        return _cmd_info(args, registry)
    except DsformatsError as exc:
        print(f"dsformats: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # the output was piped into head, less, ...: stop quietly
        sys.stderr.close()
        return EXIT_OK
    except KeyboardInterrupt:
        print("dsformats: interrupted; no output was published", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"dsformats: internal error: {exc!r} (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR
