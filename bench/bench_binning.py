"""Binning and the native passes of the cpu backend, on one thread and on all, against another revision.

Binning gives every (tile, primitive) pair its place in its tile's list: each primitive walks
the tiles its bounding box covers, then the pairs are sorted by tile. This times the cpu
backend's three native calls on their own (no autograd, no loss), each in a worker process:

- binning alone (`bin_pairs`), on one thread and on all of them: how it shares out;
- the forward pass (binning included) and the backward pass, on all threads.

The scenes are those where binning is large: 100,000 small circles on a 4096x4096 canvas, the
same with 16 primitives larger than the canvas among them (a canvas-sized primitive touches
65,536 tiles), and the two --compare points of bench_composite.py for scale.

    python bench/bench_binning.py                  # this checkout
    python bench/bench_binning.py --compare HEAD~1 # this checkout against another revision, alternating

--compare checks the other revision out in a temporary git worktree; its workers import that
revision's diffbmp (built once into its own extension cache) and are timed by this script.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: (name, primitives, canvas side, shapes, radius range as a fraction of the side, huge primitives)
POINTS = [
    ("circles", 100_000, 4096, "circle", (0.0015, 0.008), 0),
    ("circles + 16 huge", 100_000, 4096, "circle", (0.0015, 0.008), 16),
    ("circles", 2048, 256, "circle", (0.01, 0.06), 0),
    ("stamps", 1000, 512, "textures", (0.01, 0.06), 0),
]


def measure(spec: dict) -> dict:
    """Runs inside a worker: times the checkout at spec["root"]."""
    import torch

    sys.path.insert(0, HERE)
    from bench_composite import make_scene  # noqa: E402 (bench/ is not a package; it puts this checkout first)

    sys.path.insert(0, spec["root"])  # the checkout to time, before this one
    import diffbmp
    from diffbmp._backend import native_module

    assert os.path.dirname(os.path.dirname(os.path.abspath(diffbmp.__file__))) == spec["root"], diffbmp.__file__
    module = native_module("cpu")
    side, repeats = spec["size"], spec["repeats"]
    params, bank = make_scene(spec["n"], side, spec["shapes"], tuple(spec["radius"]), "cpu")
    huge = spec["huge"]
    if huge:  # larger than the canvas, spread around its centre
        params.scales[:huge] = side * torch.linspace(0.6, 1.2, huge)[:, None]
        params.means[:huge] = side * (0.3 + 0.4 * torch.rand(huge, 2, generator=torch.Generator().manual_seed(2)))
    prepared = bank.prepare(torch.device("cpu"), params.dtype)
    inputs = [params.means.contiguous(), params.rotations.contiguous(), params.scales.contiguous(),
              params.colors.contiguous(), params.opacities.contiguous(), params.beta_or_zeros().contiguous(),
              params.shape_ids.to(torch.int32).contiguous(), prepared.texels, prepared.level_table, prepared.entries]
    grad_colour = torch.rand(side, side, 3, generator=torch.Generator().manual_seed(0))
    grad_alpha = torch.rand(side, side, generator=torch.Generator().manual_seed(1))

    def timed(fn) -> float:
        fn()  # warm-up (and, the first time, the build)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    bin_call = lambda: module.bin_pairs(inputs, side, side, 0.0, None)  # noqa: E731
    result = {"threads": torch.get_num_threads()}
    result["bin"] = timed(bin_call)
    saved = module.composite_forward(inputs, side, side, 0.0)
    result["pairs"] = int(saved[5].numel())
    result["forward"] = timed(lambda: module.composite_forward(inputs, side, side, 0.0))
    result["backward"] = timed(lambda: module.composite_backward(inputs, side, side, 0.0, grad_colour, grad_alpha, saved))
    torch.set_num_threads(1)
    result["bin_1"] = timed(bin_call)
    return result


def run_worker(spec: dict) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=spec["root"])
    if done.returncode != 0:
        sys.exit(f"worker for {spec['root']} failed:\n{done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", metavar="REV", help="time this checkout against git revision REV, alternating")
    parser.add_argument("--rounds", type=int, default=3, help="workers per point and revision (default 3)")
    parser.add_argument("--repeats", type=int, default=5, help="calls timed per worker, median (default 5)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(json.loads(args.worker))))
        return

    roots = [("this checkout", ROOT)]
    worktree = None
    if args.compare:
        sys.path.insert(0, HERE)
        from bench_composite import checkout_revision, remove_checkout  # noqa: E402 (bench/ is not a package)

        short, worktree = checkout_revision(args.compare)
        roots.append((short, worktree))
    try:
        rows = []
        for name, n, side, shapes, radius, huge in POINTS:
            spec = {"n": n, "size": side, "shapes": shapes, "radius": list(radius), "huge": huge, "repeats": args.repeats}
            results = {label: [] for label, _ in roots}
            for _ in range(args.rounds):
                for label, root in roots:
                    results[label].append(run_worker({**spec, "root": root}))
            med = {label: {key: statistics.median(r[key] for r in rs) for key in ("bin", "bin_1", "forward", "backward", "pairs")}
                   for label, rs in results.items()}
            rows.append((f"{n} {name}", f"{side}x{side}", med))
            print(json.dumps({"point": rows[-1][0], "canvas": rows[-1][1], **med}), flush=True)
    finally:
        if worktree:
            remove_checkout(worktree)

    threads = run_worker({"n": 1, "size": 16, "shapes": "circle", "radius": [0.1, 0.1], "huge": 0, "repeats": 1, "root": ROOT})["threads"]
    print(f"\ncpu backend, {threads} threads; medians of {args.rounds} workers x median of {args.repeats} calls\n")
    for label, _ in roots:
        print(f"{label}:\n")
        print(f"| primitives | canvas | pairs | binning ms, 1 thread | binning ms, {threads} threads | binning speed-up on {threads} threads "
              "| forward ms | backward ms |")
        print("|---|---|---|---|---|---|---|---|")
        for point, canvas, med in rows:
            m = med[label]
            print(f"| {point} | {canvas} | {m['pairs']:.0f} | {ms(m['bin_1'])} | {ms(m['bin'])} | {m['bin_1'] / m['bin']:.2f}x "
                  f"| {ms(m['forward'])} | {ms(m['backward'])} |")
        print()
    if args.compare:
        other = roots[1][0]
        print(f"this checkout against {other} (ratio of {other}'s time to this checkout's):\n")
        print(f"| primitives | canvas | binning, 1 thread | binning, {threads} threads | forward | backward |")
        print("|---|---|---|---|---|---|")
        for point, canvas, med in rows:
            ours, theirs = med["this checkout"], med[other]
            ratio = lambda key: f"{theirs[key] / ours[key]:.2f}x"  # noqa: E731
            print(f"| {point} | {canvas} | {ratio('bin_1')} | {ratio('bin')} | {ratio('forward')} | {ratio('backward')} |")


if __name__ == "__main__":
    main()
