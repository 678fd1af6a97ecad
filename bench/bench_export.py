"""Time every export format on a large random scene and print a table.

    python bench/bench_export.py                      # 5,000 primitives, 512x512, scales 1 and 4
    python bench/bench_export.py --primitives 20000 --scales 1 2 --formats psd svg
    python bench/bench_export.py --scales 4 --texture-size 0   # keep the 128-texel bitmaps

The scene mixes every kind of shape (analytic circles and Gaussians, stamps, brush strokes)
and colour blends. Preparing a bank (its texture pyramid) is timed apart from the exports:
it happens once per bank, and the first export at a scale that re-makes the bitmaps at a
higher resolution pays for it again (shown in the `textures` column).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffbmp import PrimitiveParams, TextureBank  # noqa: E402
from diffbmp.exports import export  # noqa: E402
from diffbmp.exports.textures import bank_for_scale  # noqa: E402
from diffbmp.scene import Scene  # noqa: E402

SHAPES = ["circle", "gaussian", "disc", "star", "brush_flat"]


def random_scene(count: int, size: int, seed: int = 0) -> Scene:
    """``count`` primitives of every kind scattered over a ``size`` x ``size`` canvas."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    bank = TextureBank.from_names(SHAPES)
    ids = torch.randint(0, len(SHAPES), (count,), generator=g)
    scales = torch.exp(math.log(1.5) + rand(count, 2) * (math.log(size / 20) - math.log(1.5)))
    aspect = torch.tensor([bank[int(k)].aspect for k in ids])
    scales[:, 0] = scales[:, 1] * aspect  # bitmaps keep their natural proportions
    beta = torch.where(rand(count) < 0.5, torch.zeros(count), rand(count))
    params = PrimitiveParams(
        means=rand(count, 2) * size,
        rotations=(rand(count) * 2 - 1) * math.pi,
        scales=scales,
        colors=rand(count, 3),
        opacities=0.3 + 0.7 * rand(count),
        shape_ids=ids,
        beta=beta,
    )
    return Scene.from_params(params, bank, size, size, background=(0.95, 0.93, 0.88))


def human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--primitives", type=int, default=5000)
    parser.add_argument("--size", type=int, default=512, help="canvas side in pixels")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--formats", nargs="+", default=["psd", "svg", "png", "json"])
    parser.add_argument("--texture-size", type=int, default=None, help="bitmap resolution (default: automatic; 0 keeps the scene's)")
    parser.add_argument("--out", type=Path, default=None, help="keep the files in this folder")
    args = parser.parse_args(argv)

    scene = random_scene(args.primitives, args.size)
    start = time.perf_counter()
    scene.bank.prepare()
    print(f"scene: {args.primitives} primitives, {args.size}x{args.size} px, shapes {', '.join(SHAPES)}")
    print(f"bank pyramid at the scene's texture size: {time.perf_counter() - start:.2f} s (once per bank)\n")

    folder = args.out or Path(tempfile.mkdtemp(prefix="diffbmp-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"| format | primitives | scale | canvas | textures | seconds | file size |")
    print(f"| --- | ---: | ---: | --- | --- | ---: | ---: |")
    for scale in args.scales:
        # Re-make (and prepare) the bitmaps for this scale once, outside the export timings,
        # exactly as the exports do; then every export at this scale reuses that bank.
        start = time.perf_counter()
        bank = bank_for_scale(scene, scale, args.texture_size)
        bank.prepare()
        texture_seconds = time.perf_counter() - start
        side = max((max(e.rgba.shape[:2]) for e in bank if e.rgba is not None), default=0)
        textures = f"{side} texels" + (f" (+{texture_seconds:.1f} s)" if bank is not scene.bank else "")
        scaled = Scene(**{**{k: getattr(scene, k) for k in scene.__dataclass_fields__}, "bank": bank})
        height, width = scene.canvas_size(scale)
        for fmt in args.formats:
            path = folder / f"bench_{args.primitives}_x{scale:g}.{fmt}"
            start = time.perf_counter()
            export(scaled, path, fmt, scale, **({"texture_size": 0} if fmt != "json" else {}))
            seconds = time.perf_counter() - start
            print(f"| {fmt} | {args.primitives} | {scale:g} | {width}x{height} | {textures} | {seconds:.2f} | {human(path.stat().st_size)} |", flush=True)
    if args.out is None:
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
