"""Few primitives: diffbmp against the hill climber (fogleman/primitive) at 50-300 shapes.

Paints each picture at 256 px with ``--counts`` shapes and prints one Markdown row per
picture, count, system and mode: PSNR and SSIM of the painting against the same 256 px
target, and CPU seconds (user + system time of every thread; wall seconds beside them).

    python bench/low_count.py                                   # astronaut, coffee, chelsea
    python bench/low_count.py --images camera photo.jpg --counts 100 200
    python bench/low_count.py --systems diffbmp --set strategy=plain   # the plain fit

``primitive`` runs where its program is on PATH (or named with ``--primitive``). It adds
one shape at a time, each the best of a random search and hill climbing, so one run to the
largest count gives every smaller count on the way: frames are saved at each count, and its
time at a count is the elapsed time its ``-v`` log reports when that shape was added. It
runs with one worker (``-j 1``) so that this time is its CPU time, and it seeds itself from
the clock (so its numbers vary a little run to run). Its modes: 1 triangles, 3 ellipses,
4 circles, 5 rotated rectangles, 7 rotated ellipses, 0 a combination; alpha 128 (its default).

diffbmp fits with the ``low_count`` recipe (``strategy: search``) with ``n`` set to the
count; ``--recipe`` and ``--set`` change that. The hill climber's runs take about half an
hour on one core for the three pictures; ``--json rows.json`` records every row, and
``--primitive-rows rows.json`` takes the hill climber's rows from such a file instead of
running it again (diffbmp's settings change, the hill climber's numbers do not).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from diffbmp.config import chosen_strategy, load_config  # noqa: E402
from diffbmp.fitting.image import fit  # noqa: E402
from diffbmp.losses import psnr, ssim_value  # noqa: E402
from diffbmp.targets import load_target  # noqa: E402

import torch  # noqa: E402

MODE_NAMES = {0: "combo", 1: "triangle", 2: "rect", 3: "ellipse", 4: "circle", 5: "rotated rect", 6: "beziers",
              7: "rotated ellipse", 8: "polygon"}
HEADER = "| image | shapes | system | mode | PSNR (dB) | SSIM | CPU s | wall s |"
_LOG_LINE = re.compile(r"^(\d+): t=([0-9.]+), score=")


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    return (image.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def _scores(image: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    a = torch.from_numpy(image.astype(np.float32) / 255)
    b = torch.from_numpy(target.astype(np.float32) / 255)
    return psnr(a, b), ssim_value(a, b)


def run_primitive(program: str, target: np.ndarray, counts: list[int], mode: int) -> list[dict]:
    """One hill-climbing run to max(counts); a row per count from its saved frames and log."""
    height, width = target.shape[:2]
    with tempfile.TemporaryDirectory(prefix="low_count_") as folder:
        source = Path(folder) / "target.png"
        Image.fromarray(target).save(source)
        largest = max(counts)
        # Frames every `step` shapes; gcd so that every asked count is one of them.
        step = int(np.gcd.reduce(counts))
        command = [program, "-i", str(source), "-o", str(Path(folder) / "frame%d.png"), "-n", str(largest),
                   "-m", str(mode), "-r", str(max(height, width)), "-s", str(max(height, width)),
                   "-nth", str(step), "-j", "1", "-v"]
        started = time.perf_counter()
        before = os.times()
        done = subprocess.run(command, capture_output=True, text=True)
        after = os.times()
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"primitive failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        elapsed = {int(m.group(1)): float(m.group(2)) for m in map(_LOG_LINE.match, done.stdout.splitlines()) if m}
        cpu_total = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        rows = []
        for count in counts:
            image = np.asarray(Image.open(Path(folder) / f"frame{count}.png").convert("RGB"))
            if image.shape[:2] != (height, width):  # its output size is of the longer side
                image = np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS))
            value, similarity = _scores(image, target)
            # Its log's elapsed time at this count, scaled by the run's CPU/wall ratio (about 1 with -j 1).
            seconds = elapsed[count]
            rows.append({"system": "primitive", "mode": MODE_NAMES.get(mode, str(mode)), "n": count, "psnr": value,
                         "ssim": similarity, "cpu": seconds * cpu_total / max(wall, 1e-9), "wall": seconds,
                         "render": image})
        return rows


def run_diffbmp(spec: str, recipe: str, overrides: list[str], count: int, size: int, seed: int) -> dict:
    config = load_config(recipe, overrides)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = fit(spec, n=count, size=size, seed=seed, config=config, quiet=True, output={"progress": False})
    cpu, wall = time.process_time() - cpu_started, time.perf_counter() - started
    image = _to_uint8(result.scene.render()[0])
    target = _to_uint8(result.target.rgb)
    value, similarity = _scores(image, target)
    return {"system": "diffbmp", "mode": f"{recipe} ({chosen_strategy(result.config)}, {'+'.join(config.primitives)})", "n": count, "psnr": value, "ssim": similarity,
            "cpu": cpu, "wall": wall, "render": image}


def side_by_side(images: list[np.ndarray], gap: int = 2) -> Image.Image:
    height = images[0].shape[0]
    canvas = Image.new("RGB", (sum(i.shape[1] for i in images) + gap * (len(images) - 1), height), "white")
    x = 0
    for image in images:
        canvas.paste(Image.fromarray(image), (x, 0))
        x += image.shape[1] + gap
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="+", default=["astronaut", "coffee", "chelsea"],
                        help="scikit-image names or image files")
    parser.add_argument("--counts", nargs="+", type=int, default=[50, 100, 200, 300])
    parser.add_argument("--systems", nargs="+", choices=["diffbmp", "primitive"], default=["diffbmp", "primitive"])
    parser.add_argument("--modes", nargs="+", type=int, default=[1, 5, 7, 0],
                        help="primitive's modes (1 triangles, 5 rotated rectangles, 7 rotated ellipses, 0 combo ...)")
    parser.add_argument("--primitive", default=shutil.which("primitive"), help="the primitive program (default: on PATH)")
    parser.add_argument("--recipe", default="low_count")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pictures", type=Path, help="folder for target | diffbmp | primitive's best JPEGs")
    parser.add_argument("--json", type=Path, help="write the rows to this JSON file")
    parser.add_argument("--primitive-rows", type=Path, help="take the hill climber's rows from this --json file instead of running it")
    args = parser.parse_args(argv)

    recorded = json.loads(args.primitive_rows.read_text()) if args.primitive_rows else None
    if "primitive" in args.systems and not args.primitive and recorded is None:
        print("primitive is not on PATH: only diffbmp runs (see docs/quality.md to build it)", file=sys.stderr)
        args.systems = [s for s in args.systems if s != "primitive"]
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch threads {torch.get_num_threads()}; settings: recipe {args.recipe} " + " ".join(f"--set {o}" for o in args.overrides))
    print(HEADER)
    print("| --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    rows: list[dict] = []
    for spec_name in args.images:
        spec = spec_name if Path(spec_name).exists() else f"skimage:{spec_name}"
        label = Path(spec_name).stem if Path(spec_name).exists() else spec_name
        target = _to_uint8(load_target(spec, args.size).rgb)
        found: list[dict] = []
        if "diffbmp" in args.systems:
            for count in args.counts:
                row = run_diffbmp(spec, args.recipe, args.overrides, count, args.size, args.seed)
                found.append(row)
                _print(label, row)
        if "primitive" in args.systems and recorded is not None:
            for row in recorded:
                if row["system"] == "primitive" and row["image"] == label and row["n"] in args.counts:
                    found.append(dict(row))
                    _print(label, row)
        elif "primitive" in args.systems:
            for mode in args.modes:
                for row in run_primitive(args.primitive, target, args.counts, mode):
                    found.append(row)
                    _print(label, row)
        for row in found:
            row["image"] = label
        rows.extend(found)
        if args.pictures is not None:
            args.pictures.mkdir(parents=True, exist_ok=True)
            for count in args.counts:
                at_count = [r for r in found if r["n"] == count]
                ours = [r for r in at_count if r["system"] == "diffbmp"]
                theirs = sorted((r for r in at_count if r["system"] == "primitive"), key=lambda r: -r["psnr"])
                chosen = [target] + [r["render"] for r in ours[:1] + theirs[:1] if "render" in r]
                side_by_side(chosen).save(args.pictures / f"{label}_{count}.jpg", quality=90)
    _print_summary(rows, args.counts)
    if args.json is not None:
        args.json.write_text(json.dumps([{k: v for k, v in r.items() if k != "render"} for r in rows], indent=1))
    return 0


def _print(label: str, row: dict) -> None:
    print(f"| {label} | {row['n']} | {row['system']} | {row['mode']} | {row['psnr']:.2f} | {row['ssim']:.3f} | "
          f"{row['cpu']:.1f} | {row['wall']:.1f} |", flush=True)


def _print_summary(rows: list[dict], counts: list[int]) -> None:
    """diffbmp against the hill climber's best mode, per picture and count."""
    ours = {(r["image"], r["n"]): r for r in rows if r["system"] == "diffbmp"}
    theirs: dict[tuple[str, int], dict] = {}
    for r in rows:
        if r["system"] == "primitive":
            key = (r["image"], r["n"])
            if key not in theirs or r["psnr"] > theirs[key]["psnr"]:
                theirs[key] = r
    keys = [k for k in ours if k in theirs]
    if not keys:
        return
    print()
    print("| image | shapes | diffbmp PSNR | best hill-climber PSNR (mode) | margin dB | CPU s diffbmp / hill climber |")
    print("| --- | --- | --- | --- | --- | --- |")
    for key in keys:
        a, b = ours[key], theirs[key]
        print(f"| {key[0]} | {key[1]} | {a['psnr']:.2f} | {b['psnr']:.2f} ({b['mode']}) | {a['psnr'] - b['psnr']:+.2f} | "
              f"{a['cpu']:.1f} / {b['cpu']:.1f} |")


if __name__ == "__main__":
    sys.exit(main())
