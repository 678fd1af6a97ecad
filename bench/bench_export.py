"""Time every export format on a large random scene, or check how other programs draw the files.

    python bench/bench_export.py                      # 5,000 primitives, 512x512, scales 1 and 4
    python bench/bench_export.py --primitives 20000 --scales 1 2 --formats psd svg
    python bench/bench_export.py --scales 4 --texture-size 0   # keep the 128-texel bitmaps
    python bench/bench_export.py --programs            # PSDs in GIMP and Krita, SVGs in five renderers
    python bench/bench_export.py --programs --scene runs/astronaut/scene.npz

``--programs`` exports one scene of each kind (circles, Gaussians, brush strokes, stamps with
colour blends 0, 0.5 and 1, glyphs, every kind blurred; and any ``--scene`` files) as PNG, PSD
and SVG, flattens the PSD in GIMP and Krita and renders the SVG with resvg, librsvg
(rsvg-convert), cairosvg, Inkscape and Chromium, and prints each one's PSNR against our PNG.
Programs not installed here are left out of the table (bench/viewers.py).

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

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from diffbmp import PrimitiveParams, TextureBank  # noqa: E402
from diffbmp.exports import export  # noqa: E402
from diffbmp.exports.textures import bank_for_scale  # noqa: E402
from diffbmp.scene import Scene  # noqa: E402
from diffbmp.targets import skimage_file  # noqa: E402
import viewers  # noqa: E402  (bench/viewers.py)

SHAPES = ["circle", "gaussian", "disc", "star", "brush_flat"]


def random_scene(count: int, size: int, seed: int = 0) -> Scene:
    """``count`` primitives of every kind scattered over a ``size`` x ``size`` canvas."""
    g = torch.Generator().manual_seed(seed)
    bank = TextureBank.from_names(SHAPES)
    ids, scales = _shapes_and_sizes(g, bank, count, 1.5, size / 20)
    beta = torch.where(torch.rand(count, generator=g) < 0.5, torch.zeros(count), torch.rand(count, generator=g))
    return _scattered(g, bank, ids, scales, size, opacity_low=0.3, beta=lambda: beta)


def kind_scene(kind: str, count: int, size: int, seed: int = 0) -> tuple[Scene, float]:
    """A random scene of one kind of shape (see ``PROGRAM_SCENES``) and the blur to export it at."""
    shapes, beta, blur = PROGRAM_SCENES[kind]
    g = torch.Generator().manual_seed(seed)
    bank = TextureBank.from_names([str(skimage_file(s[len("skimage:"):])) if s.startswith("skimage:") else s for s in shapes])
    ids, scales = _shapes_and_sizes(g, bank, count, 2.0, size / 10)
    blend = (lambda: torch.rand(count, generator=g)) if beta is None else (lambda: torch.full((count,), beta))
    return _scattered(g, bank, ids, scales, size, opacity_low=0.4, beta=blend), blur


def _shapes_and_sizes(g: torch.Generator, bank: TextureBank, count: int, smallest: float, largest: float
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Random shape ids and half-extents, log-uniform in [smallest, largest]; bitmaps keep their proportions."""
    ids = torch.randint(0, len(bank), (count,), generator=g)
    spread = torch.rand(count, 2, generator=g) * (math.log(largest) - math.log(smallest))
    scales = torch.exp(math.log(smallest) + spread)
    scales[:, 0] = scales[:, 1] * torch.tensor([bank[int(k)].aspect for k in ids])
    return ids, scales


def _scattered(g: torch.Generator, bank: TextureBank, ids: torch.Tensor, scales: torch.Tensor, size: int, *,
               opacity_low: float, beta) -> Scene:
    """The scene of these shapes at random places, turns, colours and opacities (``beta()``
    draws the colour blends, last)."""
    count = len(ids)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    params = PrimitiveParams(
        means=rand(count, 2) * size,
        rotations=(rand(count) * 2 - 1) * math.pi,
        scales=scales,
        colors=rand(count, 3),
        opacities=opacity_low + (1 - opacity_low) * rand(count),
        shape_ids=ids,
        beta=beta(),
    )
    return Scene.from_params(params, bank, size, size, background=(0.95, 0.93, 0.88))


#: Scenes of the program check: shapes, colour blend (None: random per primitive), export blur.
PROGRAM_SCENES: dict[str, tuple[list[str], float | None, float]] = {
    "circles": (["circle"], 0.0, 0.0),
    "Gaussians": (["gaussian"], 0.0, 0.0),
    "brush strokes": (["brush_flat", "brush_round"], 0.0, 0.0),
    "stamps, beta 0": (["skimage:logo"], 0.0, 0.0),
    "stamps, beta 0.5": (["skimage:logo"], 0.5, 0.0),
    "stamps, beta 1": (["skimage:logo"], 1.0, 0.0),
    "glyphs": (["text:a", "text:g", "text:&"], 0.0, 0.0),
    "every kind, blur 1": (["circle", "gaussian", "star", "brush_flat", "skimage:logo"], None, 1.0),
}


def check_programs(scenes: list[tuple[str, Scene, float]], scales: list[float], folder: Path) -> None:
    """Print each installed program's PSNR against our PNG for every scene and scale."""
    psd_programs = viewers.available(viewers.PSD_PROGRAMS)
    svg_programs = viewers.available(viewers.SVG_PROGRAMS)
    missing = sorted(set(viewers.PSD_PROGRAMS) - set(psd_programs)) + sorted(set(viewers.SVG_PROGRAMS) - set(svg_programs))
    print(f"PSNR (dB) of each program's drawing against our PNG; PSD: {', '.join(psd_programs) or 'none'}; "
          f"SVG: {', '.join(svg_programs) or 'none'}" + (f"; not installed: {', '.join(missing)}" if missing else "") + "\n")
    columns = [f"{name} (psd)" for name in psd_programs] + [f"{name} (svg)" for name in svg_programs]
    print("| scene | scale | " + " | ".join(columns) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in columns) + " |")
    for label, scene, blur in scenes:
        for scale in scales:
            stem = folder / f"{label.replace(' ', '_').replace(',', '')}_x{scale:g}"
            options = {"blur": blur} if blur else {}
            export(scene, stem.with_suffix(".png"), "png", scale, **options)
            export(scene, stem.with_suffix(".psd"), "psd", scale, **options)
            export(scene, stem.with_suffix(".svg"), "svg", scale, **options)
            ours = viewers.read_rgb(stem.with_suffix(".png"))
            height, width = ours.shape[:2]
            cells = []
            for name in psd_programs:
                cells.append(_drawn(lambda out, f=viewers.PSD_PROGRAMS[name][1]: f(stem.with_suffix(".psd"), out), ours, stem, name))
            for name in svg_programs:
                cells.append(_drawn(lambda out, f=viewers.SVG_PROGRAMS[name][1]: f(stem.with_suffix(".svg"), out, width, height), ours, stem, name))
            print(f"| {label} | {scale:g} | " + " | ".join(cells) + " |", flush=True)


def _drawn(draw, ours: np.ndarray, stem: Path, program: str) -> str:
    out = stem.parent / f"{stem.name}.{program}.png"
    try:
        draw(out)
        return f"{viewers.psnr(viewers.read_rgb(out), ours):.1f}"
    except Exception as error:  # a program that fails on a file is a result, not a crash of the table
        print(f"  {program} failed on {stem.name}: {error}", file=sys.stderr)
        return "failed"


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
    parser.add_argument("--programs", action="store_true", help="check the files in GIMP, Krita and five SVG renderers instead of timing")
    parser.add_argument("--scene", type=Path, action="append", default=[], help="--programs: also check this saved scene (.npz)")
    parser.add_argument("--kinds", nargs="+", default=list(PROGRAM_SCENES), choices=list(PROGRAM_SCENES), metavar="KIND",
                        help="--programs: the random scenes to check (default: all)")
    args = parser.parse_args(argv)
    if args.programs:
        folder = args.out or Path(tempfile.mkdtemp(prefix="diffbmp-programs-"))
        folder.mkdir(parents=True, exist_ok=True)
        count = 300 if args.primitives == parser.get_default("primitives") else args.primitives
        size = 256 if args.size == parser.get_default("size") else args.size
        scenes = [(kind, *kind_scene(kind, count, size)) for kind in args.kinds]
        scenes += [(path.stem if path.name != "scene.npz" else path.parent.name, Scene.load(path), 0.0) for path in args.scene]
        print(f"{count} primitives on {size}x{size} px per random scene; files in {folder}")
        check_programs(scenes, args.scales, folder)
        return 0

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
