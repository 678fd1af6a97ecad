"""A small, representative run of the cuda backend for compute-sanitizer (memcheck, racecheck, synccheck).

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python bench/cuda_sanitize_scene.py

Forward and backward in float32 and float64 over textured and analytic primitives: partial edge
tiles, empty tiles, lists longer than one shared-memory batch with early termination, a
scene with no primitives and one entirely off the canvas. Prints OK when every output is
finite; the sanitizer reports its own findings. (Without PYTORCH_NO_CUDA_MEMORY_CACHING=1,
PyTorch's caching allocator hides out-of-bounds accesses that stay inside its blocks.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from diffbmp import composite  # noqa: E402
from scenes import BACKGROUND, FLOAT_FIELDS, make_bank, random_params  # noqa: E402

CASES = [
    # (N, height, width, blur, random_params keyword arguments)
    (150, 37, 53, 0.0, {}),  # partial edge tiles, all shape kinds
    (300, 20, 18, 0.5, {"scale_range": (5.0, 30.0), "opacity_range": (0.3, 1.0)}),  # long lists, early termination
    (0, 9, 9, 0.0, {}),  # no primitives
    (40, 16, 16, 1.0, {}),  # moved off the canvas below
]
OFF_CANVAS = 3


def main() -> int:
    if not torch.cuda.is_available():
        print("cuda_sanitize_scene: no CUDA device", file=sys.stderr)
        return 1
    bank = make_bank()
    for dtype in (torch.float32, torch.float64):
        for seed, (n, height, width, blur, kwargs) in enumerate(CASES):
            params = random_params(n, height, width, seed=seed, dtype=dtype, **kwargs)
            if seed == OFF_CANVAS:
                params.means = params.means + 1000.0
            params = params.map(lambda t: t.cuda().requires_grad_(True) if t.is_floating_point() else t.cuda())
            background = torch.tensor(BACKGROUND, dtype=dtype, device="cuda")
            image, alpha = composite(params, bank, background, height, width, blur=blur, backend="cuda")
            loss = (image * torch.linspace(-1, 1, image.numel(), device="cuda", dtype=dtype).view_as(image)).sum()
            loss = loss + alpha.sum()
            if loss.requires_grad:
                loss.backward()
            torch.cuda.synchronize()
            grads = [getattr(params, f).grad for f in FLOAT_FIELDS]
            finite = bool(torch.isfinite(image).all() and torch.isfinite(alpha).all())
            finite = finite and all(g is None or bool(torch.isfinite(g).all()) for g in grads)
            if not finite:
                print(f"cuda_sanitize_scene: non-finite output for case {seed} in {dtype}", file=sys.stderr)
                return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
