"""What a first run on a GPU must learn about the cuda backend, one JSON line per check.

    python bench/cuda_probe.py                         # every check on the GPU
    python bench/cuda_probe.py --checks timing         # kernel timings only
    python bench/cuda_probe.py --emulated --quick      # the probe's own logic, on the host emulation

Checks (each line has "check" and "ok"; the last line sums them up):
- parity: forward and gradients against the cpu backend on random scenes, float32 and float64,
  with the tolerances of tests/test_cuda.py (N = 0, 1, hundreds; partial tiles; lists longer
  than a shared-memory batch with early termination).
- binning: random stroke paintings (10,000 strokes on 1024x1024) and tile-grazing scenes for a
  time budget: primitives whose counting and writing walks disagreed (must be 0), the
  invariants of the pair lists, and on the smaller scenes the float64 tile test.
- determinism: the forward pass and the default backward pass repeated must be bitwise equal;
  the atomic backward's run-to-run difference is reported.
- timing: forward and backward kernel milliseconds (CUDA events, medians after warm-up) of
  the benchmark's scenes, for the deterministic and the atomic backward.

Exit status 1 when a check failed. --emulated runs the checks on the cuda kernels compiled for
the host (tests/test_cuda_compiles.py), small sizes only: for trying the probe without a GPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from diffbmp import PrimitiveParams, composite  # noqa: E402
from diffbmp import _backend, render  # noqa: E402
from diffbmp._backend import native_module  # noqa: E402
from binning_checks import invariant_violations, reference_disagreements, run_binning  # noqa: E402
from scenes import BACKGROUND, FLOAT_FIELDS, grazing_params, make_bank, random_params, strokes_params  # noqa: E402

ALL_CHECKS = ("parity", "binning", "determinism", "timing")
FAILED = []
JSONL: list[Path] = []  # --jsonl: where the lines are appended too


def report(check: str, ok: bool, **details) -> None:
    line = json.dumps({"check": check, "ok": bool(ok), **details})
    print(line, flush=True)
    for path in JSONL:
        with path.open("a") as out:
            out.write(line + "\n")
    if not ok:
        FAILED.append(check)


class Target:
    """The backend under test: the real cuda one, or the host emulation of its kernels."""

    def __init__(self, emulated: bool):
        self.emulated = emulated
        if emulated:
            from test_cuda_compiles import EMULATED, build_emulated_module

            self.name, self.device = EMULATED, "cpu"
            _backend._modules[EMULATED] = build_emulated_module()
            resolve = render.resolve_backend
            render.resolve_backend = lambda requested, device: EMULATED if requested == EMULATED else resolve(requested, device)
        else:
            self.name, self.device = "cuda", "cuda"
        self.module = native_module(self.name)

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def render_with_grads(backend: str, device: str, params: PrimitiveParams, bank, height: int, width: int, blur: float, seed: int = 0):
    """image, alpha and the gradients of a fixed random linear loss, on the CPU (as tests/test_cuda.py)."""
    p = params.map(lambda t: t.detach().to(device)).map(lambda t: t.requires_grad_(True) if t.is_floating_point() else t)
    background = torch.tensor(BACKGROUND, dtype=p.dtype, device=device)
    image, alpha = composite(p, bank, background, height, width, blur=blur, backend=backend)
    g = torch.Generator().manual_seed(seed)
    w_image = torch.randn(height, width, 3, generator=g, dtype=torch.float64).to(device=device, dtype=p.dtype)
    w_alpha = torch.randn(height, width, generator=g, dtype=torch.float64).to(device=device, dtype=p.dtype)
    loss = (image * w_image).sum() + (alpha * w_alpha).sum()
    if loss.requires_grad:
        loss.backward()
    grads = {f: (torch.zeros_like(getattr(p, f)) if getattr(p, f).grad is None else getattr(p, f).grad).detach().cpu() for f in FLOAT_FIELDS}
    return image.detach().cpu(), alpha.detach().cpu(), grads


def worst_errors(got, want) -> dict:
    """Forward max abs error, and per gradient the max error over the gradient's scale."""
    out = {"forward": max(float((got[0].double() - want[0].double()).abs().max()), float((got[1].double() - want[1].double()).abs().max()))}
    for name in FLOAT_FIELDS:
        g, w = got[2][name].double(), want[2][name].double()
        scale = float(w.abs().max()) if w.numel() else 0.0
        out[name] = float((g - w).abs().max()) / max(scale, 1e-30) if w.numel() else 0.0
    return out


def check_parity(target: Target, bank, quick: bool) -> None:
    from test_cuda import FORWARD_ATOL, GRAD_RTOL, SCENES

    scenes = SCENES[:5] if quick else SCENES
    for dtype in (torch.float32, torch.float64):
        for name, n, height, width, blur, kwargs in scenes:
            params = random_params(n, height, width, seed=n, dtype=dtype, **kwargs)
            got = render_with_grads(target.name, target.device, params, bank, height, width, blur)
            want = render_with_grads("cpu", "cpu", params, bank, height, width, blur)
            errors = worst_errors(got, want)
            if dtype == torch.float64:
                ok = errors["forward"] <= 1e-12 and all(errors[f] <= 1e-9 for f in FLOAT_FIELDS)
            else:
                # The tests allow 1% of the primitives up to 10% of the scale (texel kinks);
                # the probe reports the worst and flags only what no tolerance covers.
                ok = errors["forward"] <= FORWARD_ATOL and all(errors[f] <= max(GRAD_RTOL[f], 0.1) for f in FLOAT_FIELDS)
            report("parity", ok, scene=name, dtype=str(dtype).replace("torch.", ""), n=n, **{k: float(f"{v:.3g}") for k, v in errors.items()})


def check_binning(target: Target, bank, quick: bool, budget_s: float) -> None:
    shape_ids = tuple(range(len(bank)))
    start, scenes, mismatches, pairs, problems = time.perf_counter(), 0, 0, 0, []
    size, count = (256, 1500) if target.emulated or quick else (1024, 10_000)
    seed = 0
    while time.perf_counter() - start < budget_s:
        if seed % 2 == 0:
            params, height, width, blur = strokes_params(count, size, seed=seed, bank_size=len(bank)), size, size, 0.5
        else:
            height, width, blur = 97 + seed % 50, 140 + seed % 70, (0.0, 0.7, 3.0)[seed % 3]
            params = grazing_params(600, height, width, seed=seed, shape_ids=shape_ids, blur=blur, bank=bank)
        b = run_binning(target.module, params, bank, height, width, blur, target.device)
        scenes += 1
        mismatches += b.mismatches
        pairs += b.sorted_prim.numel()
        for problem in invariant_violations(b, len(params)):
            problems.append(f"seed {seed}: {problem}")
        if seed % 2 == 1:
            missing, extra = reference_disagreements(b, params, bank, height, width, blur)
            if missing or extra:
                problems.append(f"seed {seed}: {missing} pairs missing, {extra} extra against the float64 tile test")
        seed += 1
        if quick and seed >= 4:
            break
    report("binning", mismatches == 0 and not problems, scenes=scenes, pairs=pairs, mismatches=mismatches,
           problems=problems[:5], seconds=round(time.perf_counter() - start, 1))


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[f].double() - b[f].double()).abs().max()) if a[f].numel() else 0.0 for f in FLOAT_FIELDS)


def check_determinism(target: Target, bank, quick: bool) -> None:
    import os

    n, size = (300, 64) if target.emulated or quick else (5000, 512)
    params = random_params(n, size, size, seed=31, scale_range=(1.0, size / 8))
    first = render_with_grads(target.name, target.device, params, bank, size, size, 0.5)
    again = render_with_grads(target.name, target.device, params, bank, size, size, 0.5)
    report("forward_repeats_bitwise", torch.equal(first[0], again[0]) and torch.equal(first[1], again[1]), n=n, size=size)
    report("backward_run_to_run", max_difference(first[2], again[2]) == 0.0, mode="deterministic",
           max_difference=max_difference(first[2], again[2]))
    os.environ["DIFFBMP_CUDA_BACKWARD"] = "atomic"
    try:
        atomic = [render_with_grads(target.name, target.device, params, bank, size, size, 0.5)[2] for _ in range(2)]
    finally:
        del os.environ["DIFFBMP_CUDA_BACKWARD"]
    # Informational: how far apart two atomic runs land, and how far from the deterministic pass.
    report("backward_run_to_run", True, mode="atomic", max_difference=max_difference(atomic[0], atomic[1]),
           vs_deterministic=max_difference(atomic[0], first[2]))


def check_timing(target: Target, quick: bool, repeats: int) -> list[dict]:
    import os

    from bench_composite import make_scene

    points = [("stamps", 1000, 512, "textures", (0.01, 0.06)), ("stamps", 10000, 1024, "textures", (0.003, 0.02)),
              ("circles", 5000, 512, "circle", (0.005, 0.03))]
    if target.emulated or quick:
        points = [("stamps", 200, 64, "textures", (0.02, 0.1))]
    rows = []
    for kind, n, size, shapes, radius in points:
        params, bank = make_scene(n, size, shapes, radius, target.device)
        leaves = params.map(lambda t: t.clone().requires_grad_(True) if t.is_floating_point() else t)
        background = torch.ones(3, device=target.device)
        prepared = bank.prepare(torch.device(target.device), torch.float32)
        row = {"scene": f"{n} {kind} {size}x{size}"}
        for mode in ("deterministic", "atomic"):
            os.environ["DIFFBMP_CUDA_BACKWARD"] = mode
            forward_ms, backward_ms = [], []
            for index in range(repeats + 2):  # two warm-up calls
                forward_ms_now, backward_ms_now = time_step(target, leaves, prepared, background, size)
                if index >= 2:
                    forward_ms.append(forward_ms_now)
                    backward_ms.append(backward_ms_now)
            row[f"forward_ms_{mode}"] = round(statistics.median(forward_ms), 3)
            row[f"backward_ms_{mode}"] = round(statistics.median(backward_ms), 3)
        del os.environ["DIFFBMP_CUDA_BACKWARD"]
        if target.device == "cuda":
            row["peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        report("timing", True, **row)
        rows.append(row)
    return rows


def print_timing_table(rows: list[dict], device_name: str) -> None:
    print(f"\nKernel time per call on {device_name} (median ms; the backward pass includes its reduction):\n")
    print("| scene | forward | backward, deterministic | backward, atomic | deterministic / atomic |")
    print("|---|---|---|---|---|")
    for row in rows:
        ratio = row["backward_ms_deterministic"] / max(row["backward_ms_atomic"], 1e-9)
        print(f"| {row['scene']} | {row['forward_ms_deterministic']:.3f} | {row['backward_ms_deterministic']:.3f} "
              f"| {row['backward_ms_atomic']:.3f} | {ratio:.2f} |")


def time_step(target: Target, leaves, prepared, background, size: int) -> tuple[float, float]:
    """Milliseconds of one forward and one backward pass (CUDA events; wall clock when emulated)."""
    if target.device == "cuda":
        marks = [torch.cuda.Event(enable_timing=True) for _ in range(3)]
        marks[0].record()
        image, _ = composite(leaves, prepared, background, size, size, backend=target.name, validate=False)
        marks[1].record()
        image.sum().backward()
        marks[2].record()
        torch.cuda.synchronize()
        return marks[0].elapsed_time(marks[1]), marks[1].elapsed_time(marks[2])
    t0 = time.perf_counter()
    image, _ = composite(leaves, prepared, background, size, size, backend=target.name, validate=False)
    t1 = time.perf_counter()
    image.sum().backward()
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checks", default=",".join(ALL_CHECKS), help=f"comma-separated, from {', '.join(ALL_CHECKS)}")
    parser.add_argument("--emulated", action="store_true", help="the host emulation of the kernels (no GPU)")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller scenes")
    parser.add_argument("--binning-seconds", type=float, default=90.0, help="time budget of the binning stress test")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats per scene")
    parser.add_argument("--jsonl", type=Path, help="also append the check lines to this file")
    args = parser.parse_args()
    if args.jsonl:
        JSONL.append(args.jsonl)
    checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    unknown = sorted(set(checks) - set(ALL_CHECKS))
    if unknown:
        parser.error(f"unknown checks {unknown}; choose from {', '.join(ALL_CHECKS)}")
    if not args.emulated and not torch.cuda.is_available():
        report("environment", False, reason="no CUDA device (torch.cuda.is_available() is False); --emulated tries the probe on the host")
        return 1
    target = Target(args.emulated)
    device_name = torch.cuda.get_device_name() if target.device == "cuda" else "host emulation"
    report("environment", True, device=device_name, torch=torch.__version__, cuda=torch.version.cuda)
    bank = make_bank()
    if "parity" in checks:
        check_parity(target, bank, args.quick)
    if "binning" in checks:
        check_binning(target, bank, args.quick, args.binning_seconds)
    if "determinism" in checks:
        check_determinism(target, bank, args.quick)
    rows = check_timing(target, args.quick, 3 if args.quick else args.repeats) if "timing" in checks else []
    report("summary", not FAILED, failed=sorted(set(FAILED)))
    if rows:
        print_timing_table(rows, device_name)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
