"""``diffbmp fit [RECIPE | CONFIG.yaml | TARGET] [options]``: paint a target image or video.

The first argument is a recipe name (``diffbmp recipes``), a YAML config, or, for a first try,
the picture to paint (with the default recipe)::

    diffbmp fit photo.jpg -n 500 --shapes brush_flat,brush_round -o painting.psd
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .._resources import doc_reference
from ..errors import ConfigError
from .arguments import positive_float, positive_int

#: Endings of what ``-o`` can write, with their format.
OUTPUT_FORMATS = {".psd": "psd", ".svg": "svg", ".png": "png", ".json": "json"}
#: The budget options and their keys in the budget section.
BUDGET_FLAGS = {"target_psnr": "psnr", "target_ssim": "ssim", "max_seconds": "max_seconds", "max_primitives": "max_primitives"}
NO_BUDGET = ("--max-primitives limits a fit that chooses its own count: add --target-psnr, --target-ssim or "
             "--max-seconds, or give the count with -n")
#: Where a target (picture, video, frames) may come from besides a file.
TARGET_PREFIXES = ("skimage:", "demo:")


def epilog() -> str:
    return f"""\
examples:
  diffbmp fit photo.jpg                               # the default recipe, on your picture
  diffbmp fit photo.jpg -n 500 --shapes brush_flat,brush_round -o painting.psd
  diffbmp fit photo.jpg --target-psnr 30 -o painting.svg   # as many circles as 30 dB needs
  diffbmp fit default                                 # the astronaut in circles (no files needed)
  diffbmp fit brush_strokes --set target=photo.jpg --set n=3000
  diffbmp fit my_recipe.yaml --out runs/mine          # a config of your own (diffbmp config NAME > my_recipe.yaml)
  diffbmp fit circles --resume                        # continue an interrupted run
  diffbmp fit video_gif                               # a video: GIF, MP4, folder of frames

Ctrl-C (or SIGTERM) saves a checkpoint; run the same command with --resume to continue.
Recipes: `diffbmp recipes`. Every config key: `diffbmp config --reference`.
Guide: {doc_reference("fitting.md")}
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "fit",
        help="paint a target image or video with primitives",
        description="Fit primitives to a target by gradient descent and write the result, the scene, an animation "
        "and a log into a run folder. A video target (MP4 and other video files, an animated GIF, a folder of "
        "frames) is fitted frame by frame.",
        epilog=epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", nargs="?", metavar="RECIPE|CONFIG.yaml|TARGET",
                        help="a recipe name (see `diffbmp recipes`), a YAML config, or a picture or video to paint "
                        "with the default recipe (default: the built-in defaults)")
    parser.add_argument("-n", dest="n", type=positive_int, metavar="N", help="number of primitives (the key n)")
    parser.add_argument("--steps", type=positive_int, metavar="N", help="optimisation steps (the key steps)")
    parser.add_argument("--shapes", metavar="A,B,...", help="primitives, comma-separated: circle, gaussian, brush_flat, "
                        "text:A, a PNG, a folder of PNGs ... (the key primitives)")
    parser.add_argument("--size", type=positive_int, metavar="PX", help="the longer side of the fitting canvas (the key size)")
    budget = parser.add_argument_group("automatic budget", "ask for a quality instead of a count: primitives are "
                                       "added in rounds until the painting reaches it (-n and --steps are then not used)")
    budget.add_argument("--target-psnr", type=positive_float, metavar="DB", help="the PSNR to reach, e.g. 30 (the key budget.psnr)")
    budget.add_argument("--target-ssim", type=positive_float, metavar="S", help="the SSIM to reach, e.g. 0.9 (budget.ssim)")
    budget.add_argument("--max-seconds", type=positive_float, metavar="S", help="stop adding primitives after this long; "
                        "alone, the best painting in that time (budget.max_seconds)")
    budget.add_argument("--max-primitives", type=positive_int, metavar="N", help="never more primitives than this "
                        "(budget.max_primitives)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set n=4096 --set optim.lr.means=0.003 (repeatable)")
    parser.add_argument("-o", "--output", metavar="FILE", help="also write the painting to FILE: .psd (one layer per "
                        "primitive), .svg, .png or .json")
    parser.add_argument("--out", metavar="DIR", help="run folder (default: output.dir, runs/<recipe or target name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in the output folder from its checkpoint")
    parser.add_argument("--force", action="store_true", help="replace the run the output folder already holds")
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no messages")
    parser.add_argument("--print-config", action="store_true", help="print the resolved configuration and exit")
    parser.set_defaults(handler=handle)


def is_target(source: str) -> bool:
    """Whether the first argument is something to paint rather than a recipe or a config."""
    from ..config import YAML_SUFFIXES, looks_like_text
    from ..recipes import path as recipe_path

    from ..video.sources import FRAME_SUFFIXES, VIDEO_SUFFIXES

    if source.startswith(TARGET_PREFIXES):
        return True
    path = Path(source).expanduser()
    if path.suffix.lower() in YAML_SUFFIXES or recipe_path(source) is not None:
        return False
    # Named like a picture or a video (even when missing or damaged: loading it says what
    # is wrong), a folder of frames, or a file that is not text.
    if path.suffix.lower() in (*FRAME_SUFFIXES, *VIDEO_SUFFIXES, ".gif", ".tif"):
        return True
    return path.exists() and (path.is_dir() or not looks_like_text(path))


def one_line_overrides(args: argparse.Namespace, target: str | None) -> list[str]:
    """The ``--set`` items that the one-line options stand for (JSON values are valid YAML)."""
    items = []
    if target is not None:
        items.append(f"target={json.dumps(target)}")
    if args.shapes is not None:
        shapes = [s.strip() for s in args.shapes.split(",") if s.strip()]
        if not shapes:
            raise ConfigError("--shapes needs at least one primitive, e.g. --shapes circle or --shapes brush_flat,brush_round")
        items.append(f"primitives={json.dumps(shapes)}")
    for key in ("n", "steps", "size"):
        if getattr(args, key) is not None:
            items.append(f"{key}={getattr(args, key)}")
    for flag, key in BUDGET_FLAGS.items():
        if getattr(args, flag) is not None:
            items.append(f"budget.{key}={getattr(args, flag)}")
    return items


def output_folder(config_path: str | None, out: str | None, template: str | None, target: str) -> Path:
    """The run folder: --out, else output.dir with {name} replaced by the config's (or target's) name."""
    if out:
        return Path(out).expanduser()
    if not template:
        raise ConfigError("no output folder: pass --out DIR or set output.dir in the config")
    if config_path:
        name = Path(config_path).stem
    else:
        bare = target.removeprefix("skimage:").removeprefix("demo:").split(":")[0]  # demo:<clip>:frames=N
        name = Path(bare).stem or "fit"
    try:
        return Path(template.format(name=name)).expanduser()
    except (KeyError, IndexError, ValueError) as error:
        raise ConfigError(f"output.dir {template!r} is not a valid folder template ({error}); only {{name}} may be used") from None


def output_file(output: str | None) -> tuple[Path, str] | None:
    """``-o FILE`` and its format, checked before any work is done."""
    if output is None:
        return None
    path = Path(output).expanduser()
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ConfigError(f"-o {output}: name the file with one of the endings {', '.join(OUTPUT_FORMATS)} "
                          "(the format follows the ending), e.g. -o painting.psd")
    return path, fmt


def resume_command(args: argparse.Namespace, folder: Path) -> str:
    """The command that continues this run."""
    parts = ["diffbmp", "fit"] + ([args.source] if args.source else [])
    for flag, value in (("-n", args.n), ("--steps", args.steps), ("--shapes", args.shapes), ("--size", args.size),
                        ("--target-psnr", args.target_psnr), ("--target-ssim", args.target_ssim),
                        ("--max-seconds", args.max_seconds), ("--max-primitives", args.max_primitives), ("-o", args.output)):
        if value is not None:
            parts += [flag, str(value)]
    for item in args.overrides:
        parts += ["--set", item]
    return shlex.join(parts + ["--resume", "--out", str(folder)])


def handle(args: argparse.Namespace) -> int:
    from ..config import dump_config, load_config
    from ..fitting.image import run
    from ..recipes import DEFAULT

    if args.resume and args.force:
        raise ConfigError("--resume and --force contradict each other; choose one")
    target = args.source if args.source is not None and is_target(args.source) else None
    config_source = DEFAULT if target is not None else args.source
    config = load_config(config_source, one_line_overrides(args, target) + list(args.overrides))
    if args.max_primitives is not None and not config.budget.active:
        raise ConfigError(NO_BUDGET)
    if args.print_config:
        sys.stdout.write(dump_config(config))
        return 0
    written = output_file(args.output)
    if written is not None and written[1] == "psd" and not config.budget.active:
        from ..exports.psd import MAX_PSD_RECORDS

        if config.n + 1 > MAX_PSD_RECORDS:  # said now, not after the fit
            raise ConfigError(f"-o {args.output}: {config.n} primitives are more layers than a PSD holds ({MAX_PSD_RECORDS}, "
                              "Photoshop opens 8000); write -o painting.svg or .png, and export parts of the scene as "
                              "PSDs afterwards with `diffbmp export SCENE.npz --select index=0-7999 ...`")
    if written is not None:
        from ..video.sources import video_kind

        if video_kind(config.target) is not None:
            raise ConfigError("-o writes one painting: a video fit writes painted.mp4, painted.gif and a scene per "
                              "frame into its run folder (--out)")
    # A target given on its own names the run folder; a recipe or config names it otherwise.
    folder = output_folder(None if target is not None else args.source, args.out, config.output.dir, config.target)
    result = run(config, out=folder, resume=args.resume, force=args.force, quiet=args.quiet,
                 resume_hint=resume_command(args, folder))
    paths = dict(result.paths)
    if written is not None:
        from ..exports import export

        paths["output"] = export(result.scene, written[0], written[1])
    if not args.quiet:
        # An image fit's files, or a video fit's.
        for name in ("output", "final", "scene", "rounds", "gif", "mp4", "painted_mp4", "painted_gif", "scenes", "psd",
                     "frames_csv", "plot", "log"):
            if name in paths:
                print(f"  {name:11s} {paths[name]}", file=sys.stderr)
    return 0
