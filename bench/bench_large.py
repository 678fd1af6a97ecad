"""Big canvases: how the compositor and a fit scale from 1024 to 4096 pixels a side.

Two measurements, each in its own process so that its peak resident memory belongs to it:

1. The compositor (`composite()`, forward and backward, cpu backend) with 100,000 primitives on
   canvases of 1024, 2048 and 4096 pixels a side, the primitives' sizes a fixed fraction of
   the side, so the covered area grows with the canvas: time per step should follow it.
2. A fit of a 4096x4096 target (scikit-image's astronaut upscaled) with 100,000 circles, as
   the defaults run it (coarse-to-fine levels at 1/4, 1/2 and the whole canvas, 2048-pixel
   crops where a level is larger): peak memory, seconds per step at each level, total time,
   the final PSNR and the run's outputs; then its exports in their own processes (a PNG at 2x,
   and a PSD of the first 30,000 primitives, near the 32,767 layers a PSD holds), with time, peak
   memory and size.

    python bench/bench_large.py                  # both; about 25 minutes on 2 cores
    python bench/bench_large.py --only composite
    python bench/bench_large.py --only fit --fit-steps 60
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)

#: Canvas sides of the compositor sweep, and the primitives' half-sizes as fractions of the side.
SIDES = (1024, 2048, 4096)
COUNT = 100_000
RADIUS = (0.0015, 0.008)


def composite_sweep(repeats: int) -> list[dict]:
    sys.path.insert(0, HERE)
    from bench_composite import run_worker  # noqa: E402 (bench/ is not a package)

    rows = []
    for shapes, kind in (("circle", "circles"), ("textures", "stamps")):
        for side in SIDES:
            spec = {"backend": "cpu", "n": COUNT, "size": side, "shapes": shapes, "radius": list(RADIUS),
                    "device": "cpu", "repeats": repeats}
            result = run_worker(spec)
            rows.append({"kind": kind, "side": side, **result})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def run_child(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """(result, seconds, peak resident MB) of a child started by :func:`measured`, which prints its own peak."""
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stdout, stderr = child.communicate()
    seconds = time.perf_counter() - start
    # RUSAGE_CHILDREN would give the largest peak of all children so far, not this one's.
    peak_mb = float("nan")
    for line in stderr.splitlines():
        if line.startswith("peak-rss-kb "):
            peak_mb = int(line.split()[1]) / 1024
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr), seconds, peak_mb


def measured(arguments: list[str]) -> list[str]:
    """``python -m diffbmp.cli ARGUMENTS`` in a wrapper that prints its peak resident memory."""
    wrapper = ("import resource, runpy, sys\n"
               "sys.argv = ['diffbmp'] + sys.argv[1:]\n"
               "try:\n    runpy.run_module('diffbmp.cli', run_name='__main__')\n"
               "finally:\n    print('peak-rss-kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")
    return [sys.executable, "-c", wrapper, *arguments]


def level_rows(log_path: str, side: int, count: int, steps: int) -> list[dict]:
    """Seconds per step at each resolution level, from the run's log (the first step of a
    level, which pays for the split into it, is reported apart)."""
    from diffbmp.fitting.image import build_config
    from diffbmp.fitting.levels import crop_side, plan_levels

    rows = list(csv.DictReader(open(log_path)))
    seconds = [float(r["seconds"]) for r in rows]
    steps_time = [b - a for a, b in zip([0.0] + seconds, seconds)]
    config = build_config(None, n=count, steps=steps, primitives=["circle"])
    plan = plan_levels(config, side, side, plain_fixed_count=True)
    out = []
    for k, level in enumerate(plan):
        last = plan[k + 1].first_step if k + 1 < len(plan) else len(steps_time)
        times = steps_time[level.first_step:last]
        canvas = max(1, round(side * level.scale))
        out.append({"scale": level.scale, "canvas": canvas, "crop": crop_side(config, canvas, canvas), "n": level.count,
                    "steps": len(times), "first_step_s": times[0] if times else float("nan"),
                    "median_step_s": statistics.median(times[1:]) if len(times) > 1 else float("nan")})
    return out


def fit_run(side: int, count: int, steps: int, folder: str) -> dict:
    """The fit in a child process (levels and crops as the defaults choose them), then its exports."""
    from PIL import Image
    from skimage import data

    target = os.path.join(folder, f"astronaut_{side}.png")
    Image.fromarray(data.astronaut()).resize((side, side), Image.BICUBIC).save(target)
    out = os.path.join(folder, "run")
    done, seconds, peak_mb = run_child(measured([
        "fit", target, "--out", out, "--force", "--set", f"size={side}", "--set", f"n={count}", "--set", f"steps={steps}",
        "--set", "primitives=[circle]", "--set", "backend=cpu"]))
    result = {"side": side, "n": count, "steps": steps, "seconds": seconds, "peak_mb": peak_mb, "returncode": done.returncode}
    if done.returncode != 0:
        result["error"] = (done.stderr.strip().splitlines() or ["failed"])[-2:]
        return result
    result["levels"] = level_rows(os.path.join(out, "log.csv"), side, count, steps)
    result["closing"] = next((line for line in done.stderr.splitlines() if "PSNR" in line and "wrote" in line), "")
    result["outputs"] = {name: os.path.getsize(os.path.join(out, name)) for name in sorted(os.listdir(out))
                         if os.path.isfile(os.path.join(out, name)) and not name.startswith(".")}
    scene = os.path.join(out, "scene.npz")
    part = 30000  # near the most a PSD holds as layers with index groups of 500 (32,767 records)
    exports = [("png at 2x", ["--scale", "2", "-o", os.path.join(folder, "x2.png")]),
               (f"psd, primitives 0-{part - 1}", ["--select", f"index=0-{part - 1}", "--group-by", "none",
                                                  "-o", os.path.join(folder, "part.psd")])]
    result["exports"] = []
    for label, arguments in exports:
        written, seconds, peak = run_child(measured(["export", scene, *arguments]))
        path = arguments[-1]
        result["exports"].append({"export": label, "seconds": seconds, "peak_mb": peak, "returncode": written.returncode,
                                  "bytes": os.path.getsize(path) if os.path.isfile(path) else 0,
                                  **({"error": written.stderr.strip().splitlines()[-2:]} if written.returncode else {})})
    return result


def print_fit(result: dict) -> None:
    print(f"\nFit of astronaut at {result['side']}x{result['side']}, {result['n']} circles, {result['steps']} steps "
          f"(cpu backend): {result['seconds']:.0f} s in all, peak resident memory {result['peak_mb']:.0f} MB")
    if "error" in result:
        print("error:", *result["error"])
        return
    print(result["closing"])
    print("\n| level | canvas | crop | primitives | steps | first step s | median step s |")
    print("|---|---|---|---|---|---|---|")
    for k, row in enumerate(result["levels"]):
        crop = f"{row['crop']}x{row['crop']}" if row["crop"] else "whole"
        print(f"| {k} (scale {row['scale']:g}) | {row['canvas']}x{row['canvas']} | {crop} | {row['n']} | {row['steps']} "
              f"| {row['first_step_s']:.2f} | {row['median_step_s']:.2f} |")
    print("\n| output | MB |")
    print("|---|---|")
    for name, size in result["outputs"].items():
        print(f"| {name} | {size / 1e6:.1f} |")
    print("\n| export | seconds | peak MB | file MB |")
    print("|---|---|---|---|")
    for row in result["exports"]:
        status = "" if not row["returncode"] else f" (error: {' '.join(row['error'])})"
        print(f"| {row['export']}{status} | {row['seconds']:.1f} | {row['peak_mb']:.0f} | {row['bytes'] / 1e6:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["composite", "fit"], default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-side", type=int, default=4096)
    parser.add_argument("--fit-count", type=int, default=COUNT)
    parser.add_argument("--fit-steps", type=int, default=300)
    args = parser.parse_args()

    failed = False
    if args.only in (None, "composite"):
        rows = composite_sweep(args.repeats)
        print(f"\n{COUNT} primitives, half-sizes {RADIUS[0]:g}-{RADIUS[1]:g} of the side (cpu backend, median of {args.repeats}):\n")
        print("| primitives | canvas | depth | forward s | fwd+bwd s | fwd+bwd ms per megapixel | peak MB |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            if "error" in r:
                failed = True
                print(f"| {COUNT} {r['kind']} | {r['side']}x{r['side']} | error: {r['error']} | | | | |")
                continue
            megapixels = r["side"] ** 2 / 1e6
            print(f"| {COUNT} {r['kind']} | {r['side']}x{r['side']} | {r['covered']:.1f} | {r['forward']:.2f} | {r['step']:.2f} "
                  f"| {1e3 * r['step'] / megapixels:.0f} | {r['peak_mb']:.0f} |")
    if args.only in (None, "fit"):
        with tempfile.TemporaryDirectory(prefix="diffbmp-large.") as folder:
            result = fit_run(args.fit_side, args.fit_count, args.fit_steps, folder)
        print(json.dumps(result, default=str), flush=True)
        print_fit(result)
        failed = failed or result.get("returncode") != 0 or any(row["returncode"] for row in result.get("exports", []))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
