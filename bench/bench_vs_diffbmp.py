"""diffbmp's cuda backend against DiffBMP's own CUDA rasterizer, on the same GPU and scenes.

DiffBMP (CVPR 2026, MIT) ships a tile rasterizer in FP32 and FP16 (its default). This script
builds a temporary copy of it for the GPU at hand (its published setup files compile for
sm_80/86/89 only and carry no PTX), brings one scene to both renderers the same way, and prints
forward and forward+backward milliseconds (CUDA events, medians after warm-up) and peak memory:

    python bench/bench_vs_diffbmp.py --peer-src PATH/TO/diffbmp-03cdb10
    python bench/bench_vs_diffbmp.py --peer-src ... --build-only --peer-build DIR   # compile only
    python bench/bench_vs_diffbmp.py --peer-build DIR                              # reuse a build

The scene, in DiffBMP's terms: stamp centres (x, y) on the integer pixel grid, half-size r in
pixels, rotation phi, opacity and colour as logits (it applies a sigmoid), one shared 128x128
stamp (diffbmp's built-in disc with a noisy coverage), its first primitive on top. In diffbmp's
terms the same primitives are: centre (x + 0.5, y + 0.5) (pixel centres sit at +0.5), half-extents
r * 128 / 127 on both axes (DiffBMP samples with aligned corners, diffbmp without), the same
rotation, sigmoid(colour), sigmoid(opacity), the list reversed (index 0 paints at the bottom).
Where stamps are magnified the two images agree to 3e-7 (relative L2, checked on the CPU against a
float64 re-implementation of DiffBMP's forward). What still differs between the two models:
diffbmp prefilters minified stamps (mip levels) where DiffBMP samples the 128x128 texels
bilinearly at any size; DiffBMP clamps the stamp to its box while diffbmp fades out over the last
half texel; diffbmp stops a pixel once its transmittance is below 1e-4. The "image diff" column
is the relative L2 difference of the premultiplied colour against diffbmp's.

What is timed: one call of each renderer's forward, and forward then backward with the same
upstream gradient (premultiplied colour and alpha). diffbmp's times include its binning (sorting
primitives into tiles, on the GPU). DiffBMP's do not include its binning: it bins in Python, one
tile at a time, and here it is handed the finished tile lists, which favours it. Its per-pixel
caches are sized to the deepest pixel of the scene (it does not check them). Its colour maps
(colors_orig, one 128x128x3 map per primitive, always passed by its renderer) are allocated as
its renderer does and count towards its memory; c_blend is 0, so they are not read.

Each measurement runs in its own process so that peak memory belongs to it: the allocator peak
plus what the renderer allocated outside the allocator (DiffBMP's buffers use cudaMalloc).
"""

from __future__ import annotations

import argparse
import glob
import importlib.machinery
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # this checkout's diffbmp, also in the worker processes

#: (primitives, canvas side, half-size range in pixels as fractions of the side)
SCENES = [
    (1000, 512, (0.01, 0.06)),
    (2000, 1024, (0.01, 0.06)),
    (10000, 1024, (0.003, 0.02)),
]
STAMP_SIDE = 128
PEER_TILE = 32  # DiffBMP's renderer default (SimpleTileRenderer)
PEER_MODULES = {  # module name -> (sources, relative to cuda_tile_rasterizer/)
    "diffbmp_peer_fp32": ["ext.cpp", "tile_rasterize.cu", "cuda_kernels/tile_common.cu",
                          "cuda_kernels/tile_forward.cu", "cuda_kernels/tile_backward.cu"],
    "diffbmp_peer_fp16": ["ext_fp16.cpp", "tile_rasterize_fp16.cpp", "cuda_kernels/tile_common_fp16.cu",
                          "cuda_kernels/tile_forward_fp16.cu", "cuda_kernels/tile_backward_fp16.cu"],
}
RENDERERS = ["diffbmp", "diffbmp-atomic", "DiffBMP-fp32", "DiffBMP-fp16"]


# -- DiffBMP's extension: built in a temporary copy, or loaded from an earlier build ----------

def peer_sources(peer_src: str) -> str:
    folder = os.path.join(peer_src, "cuda_tile_rasterizer")
    if not os.path.isfile(os.path.join(folder, "tile_rasterize.cu")):
        raise SystemExit(f"{peer_src} does not hold DiffBMP's cuda_tile_rasterizer/ (give --peer-src the peer's folder)")
    return folder


def build_peer(peer_src: str, build_root: str, arch: str) -> dict[str, float]:
    """Compiles both of DiffBMP's modules for ``arch`` (e.g. "9.0") into build_root; returns seconds."""
    from torch.utils import cpp_extension

    folder = peer_sources(peer_src)
    work = tempfile.mkdtemp(prefix="diffbmp-peer-src.")
    shutil.copytree(folder, os.path.join(work, "src"))
    src = os.path.join(work, "src")
    code = arch.replace(".", "")
    seconds = {}
    for name, sources in PEER_MODULES.items():
        out = os.path.join(build_root, name)
        os.makedirs(out, exist_ok=True)
        start = time.perf_counter()
        cpp_extension.load(
            name=name,
            sources=[os.path.join(src, s) for s in sources],
            extra_include_paths=[src, os.path.join(src, "cuda_kernels")],
            extra_cflags=["-O3"],
            extra_cuda_cflags=["-O3", "--use_fast_math", f"-gencode=arch=compute_{code},code=sm_{code}"],
            build_directory=out,
            verbose=False,
        )
        seconds[name] = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)
    return seconds


def require_source(peer_src: str | None) -> str:
    if not peer_src:
        raise SystemExit("no usable build of DiffBMP's modules: give --peer-src to build one")
    return peer_src


def loads(build_root: str) -> bool:
    """Whether both modules under build_root import in this process."""
    try:
        for name in PEER_MODULES:
            load_peer(build_root, name)
    except (ImportError, OSError) as error:
        if os.path.isdir(build_root):
            print(f"DiffBMP's build in {build_root} does not load here: {error}")
        return False
    return True


def load_peer(build_root: str, name: str):
    matches = glob.glob(os.path.join(build_root, name, f"{name}*.so"))
    if not matches:
        raise FileNotFoundError(f"no {name}*.so under {build_root}/{name}")
    loader = importlib.machinery.ExtensionFileLoader(name, matches[0])
    spec = importlib.util.spec_from_file_location(name, matches[0], loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


# -- the scene ---------------------------------------------------------------------------------

def stamp_alpha() -> torch.Tensor:
    """The shared 128x128 stamp: diffbmp's built-in disc, its coverage varied by a smooth noise."""
    from diffbmp import TextureBank

    disc = TextureBank.from_names(["disc"], texture_size=STAMP_SIDE)[0].rgba[..., 3].float()
    noise = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(3))
    noise = torch.nn.functional.interpolate(noise, size=disc.shape, mode="bilinear", align_corners=False)[0, 0]
    return (disc * (0.55 + 0.45 * noise)).contiguous()


def make_scene(n: int, side: int, radius: tuple[float, float], seed: int = 0) -> dict[str, torch.Tensor]:
    """DiffBMP's parameters (logits for colour and opacity), on the CPU, first primitive on top."""
    g = torch.Generator().manual_seed(seed)
    low, high = radius
    colours = 0.05 + 0.9 * torch.rand(n, 3, generator=g)
    opacities = 0.3 + 0.6 * torch.rand(n, generator=g)
    return {
        "means": torch.rand(n, 2, generator=g) * (side - 1),
        "radii": (low + torch.rand(n, generator=g) * (high - low)) * side,
        "rotations": torch.rand(n, generator=g) * 2 * math.pi,
        "opacity_logits": torch.logit(opacities),
        "colour_logits": torch.logit(colours),
    }


def max_depth(scene: dict[str, torch.Tensor], side: int) -> int:
    """Most primitives whose box holds one pixel: the size DiffBMP's per-pixel caches need."""
    mx, my, r = scene["means"][:, 0], scene["means"][:, 1], scene["radii"]
    x0 = torch.ceil(mx - r).clamp(0, side).long()
    x1 = (torch.floor(mx + r) + 1).clamp(0, side).long()
    y0 = torch.ceil(my - r).clamp(0, side).long()
    y1 = (torch.floor(my + r) + 1).clamp(0, side).long()
    diff = torch.zeros(side + 1, side + 1, dtype=torch.int64)
    diff.index_put_((y0, x0), torch.ones_like(x0), accumulate=True)
    diff.index_put_((y0, x1), -torch.ones_like(x0), accumulate=True)
    diff.index_put_((y1, x0), -torch.ones_like(x0), accumulate=True)
    diff.index_put_((y1, x1), torch.ones_like(x0), accumulate=True)
    return int(diff.cumsum(0).cumsum(1).max())


def peer_tile_mapping(scene: dict[str, torch.Tensor], side: int, device) -> torch.Tensor:
    """DiffBMP's tile lists, [offsets size, indices size, offsets..., indices...] (int32),
    each tile's primitives in list order, from the same boxes its kernels test."""
    tiles = (side + PEER_TILE - 1) // PEER_TILE
    mx, my, r = scene["means"][:, 0], scene["means"][:, 1], scene["radii"]
    tx0 = (torch.ceil(mx - r).clamp(0, side - 1) // PEER_TILE).long()
    tx1 = (torch.floor(mx + r).clamp(0, side - 1) // PEER_TILE).long()
    ty0 = (torch.ceil(my - r).clamp(0, side - 1) // PEER_TILE).long()
    ty1 = (torch.floor(my + r).clamp(0, side - 1) // PEER_TILE).long()
    ty = torch.arange(tiles).view(-1, 1, 1)
    tx = torch.arange(tiles).view(1, -1, 1)
    inside = (ty >= ty0) & (ty <= ty1) & (tx >= tx0) & (tx <= tx1)  # [tiles, tiles, N]
    inside = inside.reshape(tiles * tiles, -1)
    counts = inside.sum(1)
    offsets = torch.zeros(tiles * tiles + 1, dtype=torch.int64)
    offsets[1:] = counts.cumsum(0)
    indices = inside.nonzero()[:, 1]  # row-major: by tile, then by primitive index
    head = torch.tensor([offsets.numel(), indices.numel()])
    return torch.cat([head, offsets, indices]).to(torch.int32).to(device)


def diffbmp_params(scene: dict[str, torch.Tensor], device):
    from diffbmp import PrimitiveParams

    n = scene["radii"].numel()
    flip = torch.arange(n - 1, -1, -1)  # DiffBMP paints its first primitive on top
    scale = scene["radii"] * STAMP_SIDE / (STAMP_SIDE - 1)
    params = PrimitiveParams(
        means=scene["means"][flip] + 0.5,
        rotations=scene["rotations"][flip],
        scales=torch.stack([scale, scale], 1)[flip],
        colors=torch.sigmoid(scene["colour_logits"])[flip],
        opacities=torch.sigmoid(scene["opacity_logits"])[flip],
        shape_ids=torch.zeros(n, dtype=torch.long),
        beta=torch.zeros(n),
    )
    return params.map(lambda t: t.to(device))


# -- one measurement, in its own process -------------------------------------------------------

def cuda_timer(fn, warmup: int, repeats: int) -> float:
    """Median milliseconds of fn() between CUDA events, after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def device_used_bytes() -> int:
    free, total = torch.cuda.mem_get_info()
    return total - free


def measure(renderer: str, n: int, side: int, radius, build_root: str, warmup: int, repeats: int,
            image_path: str, profile_path: str | None = None) -> dict:
    device = torch.device("cuda")
    torch.zeros(1, device=device)  # the context, before the baseline of device memory
    used0 = device_used_bytes()
    scene = make_scene(n, side, radius)
    g = torch.Generator().manual_seed(7)
    grad_colour = (torch.rand(side, side, 3, generator=g) - 0.5).to(device)
    grad_alpha = (torch.rand(side, side, generator=g) - 0.5).to(device)
    result: dict = {"renderer": renderer, "n": n, "side": side}

    if renderer.startswith("diffbmp"):
        from diffbmp import TextureBank
        from diffbmp.render import composite_premultiplied

        bank = TextureBank()
        rgba = torch.ones(STAMP_SIDE, STAMP_SIDE, 4)
        rgba[..., 3] = stamp_alpha()
        bank.add_texture("stamp", rgba)
        prepared = bank.prepare(device)
        params = diffbmp_params(scene, device)
        leaves = params.map(lambda t: t.clone().requires_grad_(True) if t.is_floating_point() else t)

        def forward():
            with torch.no_grad():
                return composite_premultiplied(params, prepared, side, side, backend="cuda", validate=False)

        def step():
            colour, alpha = composite_premultiplied(leaves, prepared, side, side, backend="cuda", validate=False)
            torch.autograd.backward((colour, alpha), (grad_colour, grad_alpha))

        image = forward()[0]
        fixed = forward()[0]
        result["forward_repeatable"] = bool(torch.equal(image, fixed))
    else:
        fp16 = renderer.endswith("fp16")
        module = load_peer(build_root, "diffbmp_peer_fp16" if fp16 else "diffbmp_peer_fp32")
        dtype = torch.float16 if fp16 else torch.float32
        depth = max(1, max_depth(scene, side))
        result["cache_depth"] = depth
        init = module.init_tile_rasterizer_fp16 if fp16 else module.init_tile_rasterizer
        init(side, side, PEER_TILE, 0.0, 1.0, depth, n)
        cast = lambda t: t.to(device=device, dtype=dtype).contiguous()  # noqa: E731
        means, radii, rotations = cast(scene["means"]), cast(scene["radii"]), cast(scene["rotations"])
        opacities, colours = cast(scene["opacity_logits"]), cast(scene["colour_logits"])
        colour_maps = cast(torch.rand(n, STAMP_SIDE, STAMP_SIDE, 3, generator=g))
        templates = cast(stamp_alpha().unsqueeze(0))
        selection = torch.zeros(n, dtype=torch.int32, device=device)
        mapping = peer_tile_mapping(scene, side, device)
        gains = torch.ones(7, dtype=dtype, device=device)
        gains[0] = 0.1
        g_colour, g_alpha = grad_colour.to(dtype), grad_alpha.to(dtype)
        forward_fn = module.rasterize_tiles_class_fp16 if fp16 else module.rasterize_tiles_class
        backward_fn = module.rasterize_tiles_backward_class_fp16 if fp16 else module.rasterize_tiles_backward_class

        def forward():
            return forward_fn(means, radii, rotations, opacities, colours, colour_maps, templates, selection, 0.0, mapping)

        def step():
            forward()
            backward_fn(g_colour, g_alpha, means, radii, rotations, opacities, colours, colour_maps, templates,
                        selection, 0.0, gains)

        image = forward()[0]

    torch.cuda.synchronize()
    torch.save(image.float().cpu(), image_path)
    torch.cuda.reset_peak_memory_stats()
    result["forward_ms"] = cuda_timer(forward, warmup, repeats)
    result["step_ms"] = cuda_timer(step, warmup, repeats)
    torch.cuda.synchronize()
    if profile_path and renderer == "diffbmp":
        # Where one forward+backward spends its time, kernel by kernel (and the gaps between).
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(10):
                step()
            torch.cuda.synchronize()
        with open(profile_path, "w") as file:
            file.write(prof.key_averages().table(sort_by="cuda_time_total", row_limit=14, max_name_column_width=48))
    outside_allocator = max(0, device_used_bytes() - used0 - torch.cuda.memory_reserved())
    result["peak_mb"] = (torch.cuda.max_memory_allocated() + outside_allocator) / 2**20
    result["finite"] = bool(torch.isfinite(image).all())
    return result


# -- the table ---------------------------------------------------------------------------------

def run_worker(spec: dict, env: dict) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0 or not os.path.isfile(spec["result_path"]):
        tail = (done.stderr.strip() or done.stdout.strip() or "failed").splitlines()
        return {"error": tail[-1][:160], "renderer": spec["renderer"]}
    with open(spec["result_path"]) as file:  # not stdout: DiffBMP's module prints there
        return json.load(file)


def relative_l2(image: torch.Tensor, reference: torch.Tensor) -> float:
    return float((image - reference).norm() / reference.norm().clamp_min(1e-12))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peer-src", help="DiffBMP's published code (the folder holding cuda_tile_rasterizer/)")
    parser.add_argument("--peer-build", default=None, help="folder of a build of DiffBMP's modules (made if missing)")
    parser.add_argument("--arch", default=None, help='GPU architecture to build for, e.g. "9.0" (default: this GPU)')
    parser.add_argument("--build-only", action="store_true", help="compile DiffBMP's modules into --peer-build and stop")
    parser.add_argument("--prepare-only", action="store_true", help="make sure a build loads here (building one if not) and stop")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--profile", action="store_true", help="also print where diffbmp's forward+backward spends its time")
    parser.add_argument("--jsonl", default=None, help="also write every measurement to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        result = measure(spec["renderer"], spec["n"], spec["side"], tuple(spec["radius"]), spec["build_root"],
                         spec["warmup"], spec["repeats"], spec["image_path"], spec.get("profile_path"))
        with open(spec["result_path"], "w") as file:
            json.dump(result, file)
        return 0

    build_root = os.path.abspath(args.peer_build or tempfile.mkdtemp(prefix="diffbmp-peer-build."))
    arch = args.arch
    if arch is None:
        if not torch.cuda.is_available():
            raise SystemExit("no GPU is visible: give --arch (e.g. 9.0) to build, or run this on a GPU")
        arch = "%d.%d" % torch.cuda.get_device_capability()
    if args.build_only:
        seconds = build_peer(require_source(args.peer_src), build_root, arch)
        print(f"built DiffBMP's modules for sm_{arch.replace('.', '')} in {build_root}: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
        return 0
    # A build made on another machine may not load here (other system libraries): then build
    # beside it, once, and use that build from then on.
    usable = next((root for root in (build_root, build_root + "-here") if loads(root)), None)
    if usable is None:
        usable = build_root + "-here"
        seconds = build_peer(require_source(args.peer_src), usable, arch)
        print(f"built DiffBMP's modules for sm_{arch.replace('.', '')} in {usable}: "
              + ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items()))
    build_root = usable
    if args.prepare_only:
        print(f"DiffBMP's modules load from {build_root}")
        return 0

    print(f"diffbmp vs DiffBMP on {torch.cuda.get_device_name()}; torch {torch.__version__}, CUDA {torch.version.cuda}; "
          f"median of {args.repeats} after {args.warmup} warm-up calls")
    images = tempfile.mkdtemp(prefix="diffbmp-peer-images.")
    rows, failures = [], []
    jsonl = open(args.jsonl, "a") if args.jsonl else None
    for n, side, radius in SCENES:
        reference = None
        for renderer in RENDERERS:
            env = dict(os.environ)
            env["DIFFBMP_CUDA_BACKWARD"] = "atomic" if renderer == "diffbmp-atomic" else "deterministic"
            image_path = os.path.join(images, f"{renderer}-{n}-{side}.pt")
            spec = {"renderer": renderer, "n": n, "side": side, "radius": list(radius), "build_root": build_root,
                    "warmup": args.warmup, "repeats": args.repeats, "image_path": image_path,
                    "result_path": image_path[:-3] + ".json",
                    "profile_path": image_path[:-3] + ".profile.txt" if args.profile else None}
            result = run_worker(spec, env)
            if "error" not in result:
                image = torch.load(image_path)
                if renderer == "diffbmp":
                    reference = image
                result["image_diff"] = relative_l2(image, reference) if reference is not None else None
            else:
                failures.append(f"{renderer} {n} stamps at {side}px: {result['error']}")
            rows.append(result | {"n": n, "side": side})
            if jsonl:
                jsonl.write(json.dumps(rows[-1]) + "\n")
                jsonl.flush()

    print()
    print("| scene | renderer | forward ms | forward+backward ms | peak MB | image diff | ours faster (fwd+bwd) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    ours = {(r["n"], r["side"]): r for r in rows if r.get("renderer") == "diffbmp" and "error" not in r}
    for r in rows:
        scene = f"{r['n']} stamps, {r['side']}x{r['side']}"
        if "error" in r:
            print(f"| {scene} | {r['renderer']} | failed: {r['error']} | | | | |")
            continue
        base = ours.get((r["n"], r["side"]))
        ratio = f"{r['step_ms'] / base['step_ms']:.1f}x" if base and not r["renderer"].startswith("diffbmp") else ""
        diff = "-" if r.get("image_diff") is None else f"{r['image_diff']:.1e}"
        print(f"| {scene} | {r['renderer']} | {r['forward_ms']:.3f} | {r['step_ms']:.3f} | {r['peak_mb']:.0f} | {diff} | {ratio} |")
    print()
    for (n, side), r in sorted(ours.items()):
        if not r.get("forward_repeatable", True):
            failures.append(f"diffbmp {n} stamps at {side}px: two forwards differ")
    if args.profile:
        for n, side, _ in SCENES:
            path = os.path.join(images, f"diffbmp-{n}-{side}.profile.txt")
            if os.path.isfile(path):
                print(f"diffbmp, {n} stamps at {side}x{side}: ten forward+backward steps, by CUDA time")
                print(open(path).read())
    for message in failures:
        print("FAILED:", message)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
