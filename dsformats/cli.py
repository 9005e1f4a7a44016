"""The command line: ``python -m dsformats convert|detect|formats|info``.

Exit codes: 0 success; 1 conversion error; 2 usage error, unknown format or nothing detected; 3 ambiguous
detection. Help texts and format lists are rendered from the registry.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from dsformats import dispatch
from dsformats.detect import best_detections
from dsformats.errors import DsformatsError, OptionError
from dsformats.options import build_parser, parse_cli_options
from dsformats.registry import Registry, build_registry

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_AMBIGUOUS = 0, 1, 2, 3


class _UsageParser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise OptionError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    parser = _UsageParser(
        prog="dsformats",
        description="Read, write and convert computer-vision dataset formats.",
        epilog="Run 'dsformats formats' for the installed formats and 'dsformats convert -f FMT -- -h' "
        "for a format's writer options.",
    )
    parser.add_argument("--strict-plugins", action="store_true", help="fail if any plugin fails to load")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_UsageParser)

    conv = commands.add_parser("convert", help="convert a dataset to another format (streaming)")
    conv.add_argument("-i", "--input", required=True, metavar="SRC", help="input file or directory")
    conv.add_argument("-if", "--input-format", metavar="FMT", help="input format (detected when omitted)")
    conv.add_argument("-f", "--format", required=True, metavar="FMT", help="output format")
    conv.add_argument("-o", "--output", required=True, metavar="DST", help="output directory")
    conv.add_argument("--overwrite", action="store_true", help="replace an existing output")
    conv.add_argument("-io", "--input-option", action="append", default=[], metavar="KEY=VALUE", help="a reader option")
    conv.add_argument("--strict", action="store_true", help="fail (exit 1, no output) if anything is dropped")
    conv.add_argument(
        "--skip-bad-items", action="store_true", help="skip items that cannot be read or written, and list them"
    )
    conv.add_argument("--report", metavar="FILE.json", help="also save the conversion report as JSON")
    conv.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no report on stdout")

    det = commands.add_parser("detect", help="detect the format of a dataset")
    det.add_argument("path", metavar="PATH")
    det.add_argument("--explain", action="store_true", help="show every format's verdict and reason")
    det.add_argument("--json", action="store_true", help="machine-readable output")

    fmts = commands.add_parser("formats", help="list the installed formats")
    fmts.add_argument("-v", "--verbose", action="store_true", help="options, sources and plugin load errors")
    fmts.add_argument("--json", action="store_true", help="machine-readable output")

    info = commands.add_parser("info", help="summarise a dataset: items, labels, annotations")
    info.add_argument("path", metavar="PATH")
    info.add_argument("-if", "--input-format", metavar="FMT", help="input format (detected when omitted)")
    info.add_argument("-io", "--input-option", action="append", default=[], metavar="KEY=VALUE")
    info.add_argument("--json", action="store_true", help="machine-readable output")
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
    info, preset = registry.writer_format(args.format)
    spec = info.spec
    prog = f"dsformats convert -f {info.name} --"
    if any(word in ("-h", "--help") for word in extra):
        build_parser(spec.writer_options, prog=prog, description=f"{info.name}: {spec.description}").print_help()
        return EXIT_OK
    writer_options = {**preset, **parse_cli_options(spec.writer_options, extra, prog=prog)}
    writer_options = {k: v for k, v in writer_options.items() if v is not None}
    reader_options = _key_values(args.input_option)

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
    if args.json:
        shown = verdicts if args.explain else best
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
        reported = {d.format for d in verdicts}
        for d in verdicts:
            print(f"{d.format}: {d.confidence.name.lower()}, {d.reason}")
        for name in registry.readers():
            if name not in reported:
                print(f"{name}: none, no verdict from its plugin")
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


def _cmd_info(args: argparse.Namespace, registry: Registry) -> int:
    subsets: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    per_label: dict[str, Counter[str]] = {}
    with dispatch.read(
        args.path, args.input_format, options=_key_values(args.input_option), registry=registry
    ) as reader:
        labels = reader.header.categories.label_names
        for item in reader.items():
            subsets[item.subset] += 1
            for ann in item.annotations:
                kinds[ann.kind] += 1
                label = getattr(ann, "label", None)
                if label is not None:
                    per_label.setdefault(label, Counter())[ann.kind] += 1
    for name in per_label:
        if name not in labels:
            labels.append(name)
    summary: dict[str, Any] = {
        "path": str(args.path),
        "items": sum(subsets.values()),
        "subsets": dict(sorted(subsets.items())),
        "annotations": dict(sorted(kinds.items())),
        "labels": {name: dict(sorted(per_label.get(name, Counter()).items())) for name in labels},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return EXIT_OK
    print(f"{summary['path']}: {summary['items']:,} items")
    for subset, count in summary["subsets"].items():
        print(f"  subset {subset}: {count:,}")
    print("annotations: " + (", ".join(f"{k}: {v:,}" for k, v in summary["annotations"].items()) or "none"))
    print(f"labels ({len(labels)}):")
    for name, counts in summary["labels"].items():
        print(f"  {name}: " + (", ".join(f"{k}: {v:,}" for k, v in counts.items()) or "unused"))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
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
        return _cmd_info(args, registry)
    except DsformatsError as exc:
        print(f"dsformats: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dsformats: interrupted; no output was published", file=sys.stderr)
        return 130
    except Exception as exc:
        if debug:
            raise
        print(f"dsformats: internal error: {exc!r} (rerun with --debug for the traceback)", file=sys.stderr)
        return EXIT_ERROR
