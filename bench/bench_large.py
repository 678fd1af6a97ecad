"""Big canvases: how the compositor and a fit scale from 1024 to 4096 pixels a side.

Two measurements, each in its own process so that its peak resident memory belongs to it:

1. The compositor (`composite()`, forward and backward, cpu backend) with 100,000 primitives on
   canvases of 1024, 2048 and 4096 pixels a side, the primitives' sizes a fixed fraction of
   the side, so the covered area grows with the canvas: time per step should follow it.
2. A fit of a 4096x4096 target (scikit-image's astronaut upscaled) with 100,000 circles and
   random 1024-pixel crops per step (`minibatch.crop`): seconds per step, peak memory, the
   final PSNR, and the run's own outputs.

    python bench/bench_large.py                  # both; about 15 minutes on 2 cores
    python bench/bench_large.py --only composite
    python bench/bench_large.py --only fit --fit-steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import resource
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


def fit_run(side: int, count: int, steps: int, crop: int, folder: str) -> dict:
    """The fit in a child process: its peak resident memory is the children's maximum."""
    from PIL import Image
    from skimage import data

    target = os.path.join(folder, f"astronaut_{side}.png")
    Image.fromarray(data.astronaut()).resize((side, side), Image.BICUBIC).save(target)
    out = os.path.join(folder, "run")
    command = [sys.executable, "-m", "diffbmp.cli", "fit", target, "--out", out, "--force",
               "--set", f"size={side}", "--set", f"n={count}", "--set", f"steps={steps}",
               "--set", f"minibatch.crop={crop}", "--set", "primitives=[circle]", "--set", "backend=cpu"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    result = {"side": side, "n": count, "steps": steps, "crop": crop, "seconds": seconds, "peak_mb": peak_mb,
              "returncode": done.returncode}
    if done.returncode != 0:
        result["error"] = (done.stderr.strip().splitlines() or ["failed"])[-1]
        return result
    log = os.path.join(out, "log.csv")
    if os.path.isfile(log):
        lines = open(log).read().strip().splitlines()
        header = lines[0].split(",")
        last = dict(zip(header, lines[-1].split(",")))
        result["last_step"] = last
    result["closing"] = (done.stdout.strip().splitlines() or [""])[-3:]  # the closing lines name the PSNR
    result["outputs"] = {name: os.path.getsize(os.path.join(out, name)) for name in sorted(os.listdir(out))
                         if os.path.isfile(os.path.join(out, name))}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["composite", "fit"], default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fit-side", type=int, default=4096)
    parser.add_argument("--fit-count", type=int, default=COUNT)
    parser.add_argument("--fit-steps", type=int, default=30)
    parser.add_argument("--fit-crop", type=int, default=1024)
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
            result = fit_run(args.fit_side, args.fit_count, args.fit_steps, args.fit_crop, folder)
        print(json.dumps(result, indent=1, default=str))
        failed = failed or result.get("returncode") != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
