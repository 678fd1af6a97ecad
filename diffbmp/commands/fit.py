"""``diffbmp fit config.yaml [--set key=value ...] [--resume] [--force] [--out DIR]``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..config import dump_config, load_config
from ..errors import ConfigError

EPILOG = """\
examples:
  diffbmp fit configs/default.yaml
  diffbmp fit configs/circles.yaml --set target=photo.jpg --set n=4096
  diffbmp fit configs/brush_strokes.yaml --set optim.lr.means=0.003 --out runs/strokes
  diffbmp fit configs/circles.yaml --resume           # continue an interrupted run
  diffbmp fit configs/video_gif.yaml                  # a video: GIF, MP4, folder of frames

Ctrl-C saves a checkpoint; run the same command with --resume to continue.
Every config key is listed in docs/fitting.md.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="paint a target image or video with primitives (reads a YAML config)",
        description="Fit primitives to a target image by gradient descent and write the result, the scene, "
        "an animation and a log into a run folder. A video target (MP4 and other video files, an animated GIF, "
        "a folder of frames) is fitted frame by frame; see docs/video.md.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", help="YAML config file (default: the built-in defaults)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set n=4096 --set optim.lr.means=0.003 (repeatable)")
    parser.add_argument("--out", metavar="DIR", help="run folder (default: output.dir of the config, runs/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the output folder from its checkpoint")
    parser.add_argument("--force", action="store_true", help="replace the run the output folder already holds")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no messages")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    parser.set_defaults(handler=handle)


def output_folder(config_path: str | None, out: str | None, template: str | None, target: str) -> Path:
    """The run folder: --out, else output.dir with {name} replaced by the config's (or target's) name."""
    if out:
        return Path(out)
    if not template:
        raise ConfigError("no output folder: pass --out DIR or set output.dir in the config")
    if config_path:
        name = Path(config_path).stem
    else:
        bare = target.removeprefix("skimage:").removeprefix("demo:").split(":")[0]  # demo:<clip>:frames=N
        name = Path(bare).stem or "fit"
    try:
        return Path(template.format(name=name))
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"output.dir {template!r} is not a valid folder template ({error}); only {{name}} may be used") from None


def handle(args: argparse.Namespace) -> int:
    from ..fit import run

    if args.resume and args.force:
        raise ConfigError("--resume and --force contradict each other; choose one")
    config = load_config(args.config, args.overrides)
    if args.print_config:
        sys.stdout.write(dump_config(config))
        return 0
    folder = output_folder(args.config, args.out, config.output.dir, config.target)
    command = ["diffbmp fit"] + ([args.config] if args.config else []) + [f"--set {shlex.quote(item)}" for item in args.overrides]
    hint = " ".join(command + ["--resume", "--out", shlex.quote(str(folder))])
    result = run(config, out=folder, resume=args.resume, force=args.force, quiet=args.quiet, resume_hint=hint)
    if not args.quiet:
        # An image fit's files, or a video fit's.
        for name in ("final", "scene", "gif", "mp4", "painted_mp4", "painted_gif", "scenes", "psd", "frames_csv", "plot", "log"):
            if name in result.paths:
                print(f"  {name:11s} {result.paths[name]}", file=sys.stderr)
    return 0
