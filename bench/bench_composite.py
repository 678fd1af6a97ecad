"""Speed and memory of composite() per backend, against a dense baseline.

For each (primitives, resolution) point it prints the median forward time, the median
forward+backward time (one optimisation step's rendering work) and the peak memory of each
backend, plus a dense baseline that does what the simplest peers do: every circle evaluated
at every pixel, composited with cumulative products, differentiated by autograd.

Every measurement runs in its own process so that peak memory (resident set size on the
CPU, allocator peak on CUDA) belongs to that measurement alone.

    python bench/bench_composite.py                 # cpu backend + dense baseline
    python bench/bench_composite.py --device cuda   # cuda backend + dense baseline on the GPU
    python bench/bench_composite.py --quick         # fewer points and repeats
    python bench/bench_composite.py --no-baseline   # our backend only
    python bench/bench_composite.py --compare HEAD~3   # this checkout against another revision

--compare builds the extension of another revision (a temporary git worktree, its own build
in the extension cache) and times both in the same run, alternating their worker processes
point by point, so that both see the same machine; it prints the median step of each and the
ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's diffbmp, also in the worker processes

#: (name, primitives, resolution, shapes, radius range as a fraction of the canvas side)
POINTS = [
    ("circles", 256, 128, "circle", (0.01, 0.06)),
    ("circles", 2048, 256, "circle", (0.01, 0.06)),
    ("stamps", 1000, 512, "textures", (0.01, 0.06)),
    ("circles", 5000, 512, "circle", (0.005, 0.03)),
    ("stamps", 10000, 1024, "textures", (0.003, 0.02)),
]
QUICK_POINTS = POINTS[:3]
#: Time must follow the covered area: 2048 circles on 256x256 with growing radius.
AREA_SWEEP = [("circles", 2048, 256, "circle", (r, r)) for r in (0.005, 0.01, 0.02, 0.04, 0.08)]
#: Beyond this many floats in one [N, H, W] tensor the dense baseline is not attempted.
DENSE_LIMIT = 2048 * 256 * 256


def make_scene(n: int, size: int, shapes: str, radius: tuple[float, float], device: str, seed: int = 0):
    from diffbmp import PrimitiveParams, TextureBank

    g = torch.Generator().manual_seed(seed)
    if shapes == "circle":
        bank = TextureBank.from_names(["circle"])
    else:  # 128x128 textured stamps and strokes, as in a stamp painting
        bank = TextureBank.from_names(["disc", "star", "leaf", "heart", "brush_flat", "brush_round"], texture_size=128)
    low, high = radius
    r = (low + torch.rand(n, 1, generator=g) * (high - low)) * size
    aspect = torch.ones(n, 2) if shapes == "circle" else torch.cat([torch.ones(n, 1), 0.5 + torch.rand(n, 1, generator=g)], 1)
    params = PrimitiveParams(
        means=torch.rand(n, 2, generator=g) * size,
        rotations=torch.rand(n, generator=g) * 2 * math.pi,
        scales=r * aspect,
        colors=torch.rand(n, 3, generator=g),
        opacities=0.3 + 0.6 * torch.rand(n, generator=g),
        shape_ids=torch.randint(0, len(bank), (n,), generator=g),
        beta=torch.zeros(n),
    )
    return params.map(lambda t: t.to(device)), bank


def dense_baseline(params, size: int, background: torch.Tensor):
    """What the simplest circle painters do: all N x H x W at once, cumulative products."""
    coords = torch.arange(size, dtype=params.means.dtype, device=params.means.device) + 0.5
    dx = coords.view(1, 1, -1) - params.means[:, 0].view(-1, 1, 1)
    dy = coords.view(1, -1, 1) - params.means[:, 1].view(-1, 1, 1)
    distance = torch.sqrt(dx * dx + dy * dy)
    alpha = params.opacities.view(-1, 1, 1) * torch.sigmoid((params.scales[:, 0].view(-1, 1, 1) - distance) / 0.5)
    alpha = alpha.clamp(max=0.99)
    transmittance = torch.cumprod(torch.flip(1 - alpha, [0]), 0)
    transmittance = torch.flip(torch.cat([torch.ones_like(transmittance[:1]), transmittance[:-1]]), [0])
    weights = (alpha * transmittance).unsqueeze(-1)
    image = (weights * params.colors.view(-1, 1, 1, 3)).sum(0)
    return image + background * torch.prod(1 - alpha, 0).unsqueeze(-1)


def covered_area(params, bank) -> float:
    from diffbmp.bounds import screen_bounds

    box = screen_bounds(params, bank)
    return float(((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).sum())


def measure(backend: str, n: int, size: int, shapes: str, radius, device: str, repeats: int) -> dict:
    """Runs inside a worker process: times forward and forward+backward, reports peak memory."""
    from diffbmp import composite

    params, bank = make_scene(n, size, shapes, radius, device)
    background = torch.ones(3, device=device)
    leaves = params.map(lambda t: t.clone().requires_grad_(True) if t.is_floating_point() else t)
    target = torch.rand(size, size, 3, generator=torch.Generator().manual_seed(1)).to(device)

    def render(p):
        if backend == "dense":
            return dense_baseline(p, size, background)
        return composite(p, bank, background, size, size, backend=backend, validate=False)[0]

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def forward():
        with torch.no_grad():
            render(params)

    def step():
        image = render(leaves)
        ((image - target) ** 2).mean().backward()

    for fn in (forward, step):  # warm-up: builds, caches the bank pyramid
        fn()
    sync()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = {}
    for name, fn in (("forward", forward), ("step", step)):
        times = []
        for _ in range(repeats):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - start)
        result[name] = statistics.median(times)
    if device == "cuda":
        result["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    result["covered"] = covered_area(params.map(lambda t: t.cpu()), bank) / (size * size)
    return result


#: Measurements that failed, so that a run which measured nothing cannot pass for a result.
FAILURES: list[str] = []


def run_worker(args, script: str | None = None) -> dict:
    """One measurement in a worker process of this script, or of ``script`` (another checkout's
    bench_composite.py, which imports that checkout's diffbmp)."""
    command = [sys.executable, script or os.path.abspath(__file__), "--worker", json.dumps(args)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or ["failed"])[-1]
        if args["backend"] != "dense":  # the baseline may run out of memory; ours may not
            where = f"{script}: " if script else ""
            FAILURES.append(f"{where}{args['backend']} {args['n']} {args['shapes']} at {args['size']}px: {error}")
        return {"error": error}
    return json.loads(done.stdout.strip().splitlines()[-1])


#: The points --compare times: where the cpu backend's per-pixel work dominates.
COMPARE_POINTS = [POINTS[1], POINTS[2]]


def checkout_revision(revision: str) -> tuple[str, str]:
    """(short hash, path) of ``revision`` of this checkout, checked out in a temporary git worktree;
    :func:`remove_checkout` takes it away."""
    root = os.path.dirname(HERE)
    resolved = subprocess.run(["git", "-C", root, "rev-parse", "--short", revision], capture_output=True, text=True)
    if resolved.returncode != 0:
        sys.exit(f"--compare: {revision!r} is not a revision of {root}: {resolved.stderr.strip()}")
    short = resolved.stdout.strip()
    worktree = tempfile.mkdtemp(prefix="diffbmp-compare.")
    added = subprocess.run(["git", "-C", root, "worktree", "add", "--detach", worktree, short], capture_output=True, text=True)
    if added.returncode != 0:
        sys.exit(f"--compare: could not check out {short}: {added.stderr.strip()}")
    return short, worktree


def remove_checkout(worktree: str) -> None:
    subprocess.run(["git", "-C", os.path.dirname(HERE), "worktree", "remove", "--force", worktree], capture_output=True)
    shutil.rmtree(worktree, ignore_errors=True)


def compare(revision: str, device: str, repeats: int, rounds: int) -> None:
    """This checkout against ``revision``, alternating their workers ``rounds`` times per point."""
    short, worktree = checkout_revision(revision)
    try:
        theirs = os.path.join(worktree, "bench", "bench_composite.py")
        backend = "cuda" if device == "cuda" else "cpu"
        print(f"this checkout against {short} ({backend} backend, {rounds} rounds of a median of {repeats}, alternating)\n")
        print("| primitives | canvas | this checkout fwd ms | fwd+bwd ms | " + f"{short} fwd ms | fwd+bwd ms | fwd+bwd speed-up |")
        print("|---|---|---|---|---|---|---|")
        for kind, n, size, shapes, radius in COMPARE_POINTS:
            spec = {"n": n, "size": size, "shapes": shapes, "radius": list(radius), "device": device, "repeats": repeats, "backend": backend}
            ours, other = [], []
            for _ in range(rounds):
                ours.append(run_worker(spec))
                other.append(run_worker(spec, script=theirs))
            if any("error" in r for r in ours + other):
                print(f"| {n} {kind} | {size}x{size} | error | | | | |")
                continue
            med = lambda rows, key: statistics.median(r[key] for r in rows)  # noqa: E731
            print(f"| {n} {kind} | {size}x{size} | {format_ms(med(ours, 'forward'))} | {format_ms(med(ours, 'step'))} "
                  f"| {format_ms(med(other, 'forward'))} | {format_ms(med(other, 'step'))} | {med(other, 'step') / med(ours, 'step'):.2f}x |")
    finally:
        remove_checkout(worktree)


def baseline_rss_mb() -> float:
    """Resident memory of a worker that imported diffbmp and rendered nothing big."""
    result = run_worker({"backend": "cpu", "n": 1, "size": 16, "shapes": "circle", "radius": [0.1, 0.1], "device": "cpu", "repeats": 1})
    return result.get("peak_mb", 0.0)


def format_ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="three points, three repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--no-baseline", action="store_true", help="skip the dense baseline (it takes most of the time)")
    parser.add_argument("--compare", metavar="REV", help="time this checkout against git revision REV, alternating")
    parser.add_argument("--rounds", type=int, default=5, help="with --compare: worker pairs per point (default 5)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(measure(spec["backend"], spec["n"], spec["size"], spec["shapes"], tuple(spec["radius"]), spec["device"], spec["repeats"])))
        return

    device = args.device
    repeats = args.repeats or (3 if args.quick else 7)
    if args.compare:
        compare(args.compare, device, repeats, args.rounds)
        if FAILURES:
            print(f"\n{len(FAILURES)} measurement(s) failed:", *FAILURES, sep="\n  ", file=sys.stderr)
            sys.exit(1)
        return
    backend = "cuda" if device == "cuda" else "cpu"
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"diffbmp composite benchmark on {name}; torch {torch.__version__}; median of {repeats}")
    rss0 = baseline_rss_mb() if device == "cpu" else 0.0
    memory_note = f"peak resident memory above an idle worker ({rss0:.0f} MB)" if device == "cpu" else "peak CUDA allocator memory"

    rows = []
    points = QUICK_POINTS if args.quick else POINTS
    for kind, n, size, shapes, radius in points:
        spec = {"n": n, "size": size, "shapes": shapes, "radius": list(radius), "device": device, "repeats": repeats}
        ours = run_worker({**spec, "backend": backend})
        dense = None
        if shapes == "circle" and not args.no_baseline:
            if n * size * size <= DENSE_LIMIT:
                dense = run_worker({**spec, "backend": "dense", "repeats": min(repeats, 3)})
            else:
                dense = {"error": "too large"}
        rows.append((kind, n, size, ours, dense))

    print(f"\n| primitives | canvas | depth | {backend} forward ms | {backend} fwd+bwd ms | {backend} peak MB | dense fwd+bwd ms | dense peak MB | speed-up per step |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, n, size, ours, dense in rows:
        if "error" in ours:
            print(f"| {n} {kind} | {size}x{size} | - | error: {ours['error']} | | | | | |")
            continue
        dense_ms = dense_mb = ratio = "-"
        if dense and "error" not in dense:
            dense_ms = format_ms(dense["step"])
            dense_mb = f"{dense['peak_mb'] - rss0:.0f}"
            ratio = f"{dense['step'] / ours['step']:.0f}x"
        elif dense:
            dense_ms = f"n/a ({dense['error']})"
        print(
            f"| {n} {kind} | {size}x{size} | {ours['covered']:.1f} | {format_ms(ours['forward'])} | {format_ms(ours['step'])} "
            f"| {ours['peak_mb'] - rss0:.0f} | {dense_ms} | {dense_mb} | {ratio} |"
        )

    if not args.quick:
        print(f"\nTime follows the covered area (2048 circles, 256x256, {backend}):\n")
        print("| circle radius px | depth (covered area / canvas) | fwd+bwd ms | ms per unit depth |")
        print("|---|---|---|---|")
        for kind, n, size, shapes, radius in AREA_SWEEP:
            spec = {"n": n, "size": size, "shapes": shapes, "radius": list(radius), "device": device, "repeats": repeats, "backend": backend}
            result = run_worker(spec)
            if "error" in result:
                print(f"| {radius[0] * size:.1f} | error: {result['error']} | | |")
                continue
            print(f"| {radius[0] * size:.1f} | {result['covered']:.2f} | {format_ms(result['step'])} | {result['step'] * 1e3 / max(result['covered'], 1e-9):.1f} |")
    print(f"\nMemory: {memory_note}. Depth: summed bounding-box area of the primitives over the canvas area.")
    if FAILURES:
        print(f"\n{len(FAILURES)} measurement(s) failed:", *FAILURES, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
