"""Video fit quality: per-frame PSNR and flicker, with and without the temporal loss.

Fits each clip from its config twice, once with ``video.temporal.weight`` as the config
sets it and once with the temporal loss off (everything else the same), and prints a
Markdown table with the mean and lowest per-frame PSNR, the flicker (mean absolute change
of consecutive painted frames, in 8-bit grey levels, over the pixels where the target did
not change) and how the two runs compare:

    python bench/video_quality.py
    python bench/video_quality.py --clips gif --pictures docs/images/quality
    python bench/video_quality.py --seeds 0 1 2      # the spread over random starts

``gif`` is the ``video_gif`` recipe (the animated GIF bundled with scikit-image) and
``moving_shape`` is the ``video_moving_shape`` recipe (a generated clip: a disc gliding over
a still gradient). With ``--pictures`` it also writes, per clip, a plot of per-frame PSNR
and flicker of both runs and a strip of target and painted frames.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffbmp.config import load_config  # noqa: E402
from diffbmp.fitting.image import run  # noqa: E402

CLIPS = {"gif": "video_gif", "moving_shape": "video_moving_shape"}  # recipes, by name
HEADER = "| clip | seed | frames | canvas | temporal weight | mean PSNR (dB) | lowest PSNR (dB) | flicker | seconds |"


def fit_clip(recipe: str, weight: float | None, overrides: list[str]):
    """The VideoResult of one run (weight None keeps the config's temporal weight)."""
    extra = list(overrides) + ([] if weight is None else [f"video.temporal.weight={weight}"])
    config = load_config(recipe, extra + ["video.gif=false", "video.mp4=false", "video.psd_frames=[]"])
    return run(config, quiet=True)


def plot(path: Path, name: str, runs: dict[str, object]) -> None:
    """Per-frame PSNR (top) and flicker (bottom) of each run."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    top, bottom = figure.add_subplot(2, 1, 1), figure.add_subplot(2, 1, 2, sharex=None)
    for label, result in runs.items():
        frames = [row["frame"] for row in result.frames]
        top.plot(frames, [row["psnr"] for row in result.frames], marker="o", markersize=3, label=label)
        bottom.plot(frames[1:], [row["flicker"] for row in result.frames[1:]], marker=".", markersize=3, label=label)
    top.set_ylabel("PSNR (dB)")
    top.set_title(name, fontsize=10)
    top.grid(alpha=0.3)
    top.legend(fontsize=8)
    bottom.set_ylabel("flicker (grey levels)")
    bottom.set_xlabel("frame")
    bottom.set_ylim(bottom=0)
    bottom.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def strip(path: Path, runs: dict[str, object], frames: int = 6, side: int = 96) -> None:
    """Rows: the target, then each run's painting, at ``frames`` evenly spaced frames."""
    from PIL import Image

    first = next(iter(runs.values()))
    count = len(first.scenes)
    chosen = sorted({round(i * (count - 1) / max(frames - 1, 1)) for i in range(frames)})
    rows = [[frame.rgb.numpy() for frame in first.clip.frames]]
    rows += [[scene.render(blur=0.0)[0].numpy() for scene in result.scenes] for result in runs.values()]
    tiles = []
    for row in rows:
        images = []
        for index in chosen:
            image = Image.fromarray((np.clip(row[index], 0, 1) * 255 + 0.5).astype(np.uint8))
            scale = side / max(image.size)
            images.append(np.asarray(image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)))
        tiles.append(np.concatenate(images, axis=1))
    Image.fromarray(np.concatenate(tiles, axis=0)).save(path, quality=90)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", nargs="+", choices=sorted(CLIPS), default=sorted(CLIPS))
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key in every run (e.g. --set video.max_frames=12)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[], help="fit each clip with each of these seeds "
                        "(default: the config's seed)")
    parser.add_argument("--pictures", type=Path, help="folder for the per-clip plot and frame strip (of the first seed)")
    args = parser.parse_args(argv)

    rows = [HEADER, "|---" * (HEADER.count("|") - 1) + "|"]
    summary = []
    for name in args.clips:
        recipe = CLIPS[name]
        ratios, costs = [], []
        for seed in args.seeds or [None]:
            overrides = list(args.overrides) + ([] if seed is None else [f"seed={seed}"])
            runs = {}
            for label, weight in (("temporal loss", None), ("no temporal loss", 0.0)):
                began = time.perf_counter()
                result = fit_clip(recipe, weight, overrides)
                seconds = time.perf_counter() - began
                runs[label] = result
                psnrs = result.psnrs
                rows.append(f"| {name} | {result.config.seed} | {len(psnrs)} | {result.clip.width}x{result.clip.height} | "
                            f"{result.config.video.temporal.weight:g} | {sum(psnrs) / len(psnrs):.2f} | {min(psnrs):.2f} | "
                            f"{result.flicker:.3f} | {seconds:.0f} |")
                print(rows[-1], file=sys.stderr, flush=True)
            with_loss, without = runs["temporal loss"], runs["no temporal loss"]
            ratio = without.flicker / with_loss.flicker if with_loss.flicker > 0 else math.inf
            ratios.append(ratio)
            costs.append(without.psnr - with_loss.psnr)
            summary.append(f"{name}, seed {with_loss.config.seed}: the temporal loss cuts flicker {ratio:.2f}x "
                           f"({without.flicker:.3f} -> {with_loss.flicker:.3f} grey levels) "
                           f"at a PSNR cost of {costs[-1]:.2f} dB")
            if args.pictures is not None and len(ratios) == 1:
                args.pictures.mkdir(parents=True, exist_ok=True)
                plot(args.pictures / f"video_{name}_psnr.png", f"{recipe}.yaml", runs)
                strip(args.pictures / f"video_{name}_frames.jpg", runs)
        if len(ratios) > 1:
            summary.append(f"{name}, {len(ratios)} seeds: flicker cut {min(ratios):.2f}x to {max(ratios):.2f}x "
                           f"(mean {sum(ratios) / len(ratios):.2f}x), PSNR cost {min(costs):.2f} to {max(costs):.2f} dB "
                           f"(mean {sum(costs) / len(costs):.2f} dB)")
    print("\n".join(rows))
    print()
    print("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
