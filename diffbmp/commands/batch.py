"""``diffbmp batch RECIPE INPUTS... --out DIR``: paint many pictures and clips, each in a run folder."""

from __future__ import annotations

import argparse

from .._resources import doc_reference
from .arguments import non_negative_int, positive_int

EPILOG = """\
examples:
  diffbmp batch default shots/ --out runs/shots                       # every picture and video in the folder
  diffbmp batch brush_strokes 'photos/*.jpg' clip.mp4 --out runs/mixed --export psd,svg
  diffbmp batch circles jobs.csv --out runs/jobs                       # a manifest: input, name, n, size, ...
  diffbmp batch default shots/ --out runs/shots --engine ray --address head:6379

Run the same command again to finish a batch: done jobs are skipped, interrupted ones resume.
Guide: {guide}
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch", help="paint many pictures and clips, locally or on a Ray cluster",
        description="Paint every input with one recipe, each in a run folder of its own under --out, on a local "
        "process pool or a Ray cluster. Writes summary.csv and index.html (a contact sheet) into --out.",
        epilog=EPILOG.format(guide=doc_reference("batch.md")), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipe", metavar="RECIPE", help="a recipe name (see `diffbmp recipes`) or a YAML config")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="pictures, videos, folders, patterns, or CSV/JSON manifests")
    parser.add_argument("--out", required=True, metavar="DIR", help="the batch folder")
    parser.add_argument("--export", default="", metavar="FORMATS", help="also export each painting: psd,svg,png,json")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key for every job (repeatable)")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="where jobs run (default local)")
    parser.add_argument("--workers", type=positive_int, default=None, metavar="N",
                        help="local worker processes (default: one per core, or per GPU)")
    parser.add_argument("--threads", type=positive_int, default=1, metavar="N", help="CPU threads per job (default 1)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where each fit runs (default auto: on the GPUs where there are any)")
    parser.add_argument("--address", metavar="HOST:PORT", help="the Ray cluster (default: RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--retries", type=non_negative_int, default=2, metavar="N",
                        help="times a job whose worker died is run again (default 2)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress lines")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ..batching import batch

    exports = [fmt.strip().lower().lstrip(".") for fmt in args.export.split(",") if fmt.strip()]
    result = batch(args.inputs, args.recipe, args.out, exports=exports, engine=args.engine, workers=args.workers,
                   threads=args.threads, device=args.device, address=args.address, retries=args.retries,
                   overrides=args.overrides, quiet=args.quiet)
    if not args.quiet:
        print(f"  summary    {result.summary}\n  index      {result.index}")
    return 1 if result.failed else 0
