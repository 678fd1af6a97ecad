"""Throughput of ``diffbmp batch``: pictures per minute and the cost per job of each engine.

Twenty 256x256 pictures (four crops each of five scikit-image photographs, written to a
temporary folder) are painted with one small recipe budget by each engine in turn, each into a
fresh batch folder:

    local, 1 worker     the default engine, one worker process
    local, 2 workers    the default engine, two worker processes
    ray, 2 CPUs         the Ray engine on a Ray instance this script starts here with 2 CPUs
                        (the row is left out, with the reason, where Ray is not installed)

Every job fits on one thread (``--threads 1``), so N workers use N cores.

Columns:
    wall s          the time of the ``diffbmp.batch(...)`` call: starting the workers (the
                    local pool's processes; Ray's worker processes, though not Ray itself,
                    whose start is printed apart), every fit, the files each job writes, and
                    summary.csv and index.html.
    pictures/min    jobs / wall time.
    fit s (median)  the median of the jobs' own fit times (the ``seconds`` column of
                    summary.csv: the optimisation, from the first step to the final scene).
    overhead ms/job worker time not spent fitting, per job:
                        (wall x workers - sum of the jobs' fit seconds) / jobs
                    i.e. what a job costs beyond its fit: starting and importing workers,
                    loading its picture, writing its run folder, previews and result, and the
                    engine's scheduling, plus any time a worker sat idle (the last jobs).

    python bench/bench_batch.py                     # 20 pictures, 100 steps, 200 circles
    python bench/bench_batch.py --pictures 8 --steps 30 --engines local1 local2
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's diffbmp, also in the worker processes
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH")) if p)

#: Colour photographs that ship with scikit-image (no download).
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field")
ENGINES = ("local1", "local2", "ray")


def make_pictures(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` square pictures of ``size`` pixels: crops of the PHOTOS, each resized."""
    import skimage.data
    from PIL import Image

    paths = []
    crops = ((0.5, 0.5, 1.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0), (0.5, 0.5, 0.6))  # (x, y) position, side
    for index in range(count):
        name = PHOTOS[index % len(PHOTOS)]
        x, y, side = crops[(index // len(PHOTOS)) % len(crops)]
        image = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        width, height = image.size
        square = int(min(width, height) * side)
        left, top = int((width - square) * x), int((height - square) * y)
        crop = image.crop((left, top, left + square, top + square)).resize((size, size), Image.LANCZOS)
        path = folder / f"{index:02d}_{name}.png"
        crop.save(path)
        paths.append(path)
    return paths


def run_row(label: str, engine: str, workers: int, pictures: list[Path], out: Path, overrides: list[str]) -> dict:
    from diffbmp import batch

    started = time.perf_counter()
    result = batch(pictures, "default", out, engine=engine, workers=workers if engine == "local" else None,
                   threads=1, device="cpu", overrides=overrides, quiet=True)
    wall = time.perf_counter() - started
    failed = result.failed
    if failed:
        raise SystemExit(f"{label}: {len(failed)} jobs failed, e.g. {failed[0]['name']}: {failed[0]['error']}")
    fits = [float(row["seconds"]) for row in result.rows]
    jobs = len(result.rows)
    return {"label": label, "workers": workers, "jobs": jobs, "wall": wall, "rate": jobs / wall * 60,
            "fit": statistics.median(fits), "overhead": (wall * workers - sum(fits)) / jobs * 1e3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pictures", type=int, default=20, help="how many pictures (default 20)")
    parser.add_argument("--size", type=int, default=256, help="their side in pixels (default 256)")
    parser.add_argument("--steps", type=int, default=100, help="steps per fit (default 100)")
    parser.add_argument("--n", type=int, default=200, help="circles per painting (default 200)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    args = parser.parse_args()

    import torch

    overrides = [f"size={args.size}", f"n={args.n}", f"steps={args.steps}", "output.gif=false", "output.mp4=false",
                 "output.frames=0"]
    print(f"diffbmp batch benchmark on {platform.processor() or platform.machine()} ({os.cpu_count()} cores); "
          f"torch {torch.__version__}; {args.pictures} pictures of {args.size}x{args.size}, recipe default with "
          f"{' '.join('--set ' + o for o in overrides[:3])}, one thread per job", flush=True)
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench_batch") as temp:
        temp = Path(temp)
        (temp / "pictures").mkdir()
        pictures = make_pictures(temp / "pictures", args.pictures, args.size)
        for engine in args.engines:
            if engine.startswith("local"):
                workers = int(engine[-1])
                label = f"local, {workers} worker{'s' if workers > 1 else ''}"
                rows.append(run_row(label, "local", workers, pictures, temp / engine, overrides))
            else:
                try:
                    import ray
                except ImportError:
                    notes.append("ray, 2 CPUs: left out, Ray is not installed (pip install 'diffbmp[ray]')")
                    continue
                os.environ.pop("RAY_ADDRESS", None)  # a Ray of our own, on this machine's 2 cores
                started = time.perf_counter()
                ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False, configure_logging=False)
                notes.append(f"ray, 2 CPUs: starting the Ray instance took {time.perf_counter() - started:.1f} s "
                             "(not in the wall time)")
                try:
                    rows.append(run_row("ray, 2 CPUs", "ray", 2, pictures, temp / engine, overrides))
                finally:
                    ray.shutdown()
            row = rows[-1]
            print(f"  {row['label']}: {row['wall']:.1f} s", file=sys.stderr, flush=True)

    print("\n| engine | jobs | wall s | pictures/min | fit s (median) | overhead ms/job |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['label']} | {row['jobs']} | {row['wall']:.1f} | {row['rate']:.1f} | {row['fit']:.2f} | "
              f"{row['overhead']:.0f} |")
    for note in notes:
        print(f"\n{note}")


if __name__ == "__main__":
    main()
