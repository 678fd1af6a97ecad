"""Quality against primitive count, and what an automatic budget needs to reach a PSNR.

For each picture and kind of primitive, fits a fixed count (the recipe with ``-n N``) at every
count of ``--counts`` and a budget fit (``target_psnr``) for every target of ``--targets``,
all in this process, one after another. Prints:

* the PSNR curve against primitive count (seconds in brackets);
* per target: the primitives and seconds the budget fit needed, against the best fixed-count
  fit that reaches the target (the smallest count of the sweep whose PSNR is at least the
  target), the count the sweep's curve needs (interpolated in log count), and the ratios;
* a summary of the ratios.

    python bench/rate_distortion.py --json bench/rate_distortion.json --plot docs/images/rate_distortion.png

Rows are written to ``--json`` after every fit; rerunning with the same file skips the fits
it already holds (``--fresh`` starts over), so an interrupted run continues.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path

import diffbmp

#: Recipe and primitives of each kind.
KINDS = {"circles": ("default", ["circle"]), "brushes": ("brush_strokes", None)}
DEFAULT_COUNTS = (50, 70, 100, 150, 200, 300, 500, 700, 1000, 1400, 2000, 2800, 4000)
#: The automatic budget's bars: at most these multiples of the best fixed-count fit's primitives and seconds.
COUNT_BAR, TIME_BAR = 1.2, 1.5


def run_fit(picture: str, kind: str, size: int, **options) -> dict:
    recipe, primitives = KINDS[kind]
    extra = {"primitives": primitives} if primitives else {}
    started, cpu = time.perf_counter(), time.process_time()
    result = diffbmp.fit(f"skimage:{picture}", config=recipe, size=size, quiet=True, **extra, **options)
    return {"psnr": result.psnr, "ssim": result.ssim, "n": len(result.scene), "seconds": time.perf_counter() - started,
            "cpu": time.process_time() - cpu, "rounds": result.rounds, "summary": result.budget_summary}


def key_of(row: dict) -> tuple:
    return (row["picture"], row["kind"], row["mode"], row.get("count"), row.get("target"))


def load_rows(path: Path | None, fresh: bool) -> list[dict]:
    if path is None or fresh or not path.exists():
        return []
    return json.loads(path.read_text())["rows"]


def save_rows(path: Path | None, rows: list[dict], args: argparse.Namespace) -> None:
    if path is None:
        return
    meta = {"size": args.size, "torch_threads": __import__("torch").get_num_threads(), "cpus": os.cpu_count()}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    temporary.replace(path)


def needed_count(curve: list[tuple[int, float]], target: float) -> float | None:
    """The count at which the fixed-count curve crosses ``target`` (interpolated in log count)."""
    for (n0, p0), (n1, p1) in zip(curve, curve[1:]):
        if p0 < target <= p1:
            return math.exp(math.log(n0) + (target - p0) / (p1 - p0) * (math.log(n1) - math.log(n0)))
    if curve and curve[0][1] >= target:
        return float(curve[0][0])
    return None


def comparisons(rows: list[dict]) -> list[dict]:
    """One comparison per budget row: against the best fixed-count fit that reaches its target."""
    out = []
    for row in rows:
        if row["mode"] != "budget":
            continue
        fixed = sorted((r for r in rows if r["mode"] == "fixed" and r["picture"] == row["picture"] and r["kind"] == row["kind"]),
                       key=lambda r: r["count"])
        curve = [(r["count"], r["psnr"]) for r in fixed]
        reaching = [r for r in fixed if r["psnr"] >= row["target"]]
        best = reaching[0] if reaching else None
        out.append({
            "picture": row["picture"], "kind": row["kind"], "target": row["target"], "n": row["n"], "psnr": row["psnr"],
            "seconds": row["seconds"], "reached": row["psnr"] >= row["target"],
            "fixed_n": best["count"] if best else None, "fixed_psnr": best["psnr"] if best else None,
            "fixed_seconds": best["seconds"] if best else None, "curve_n": needed_count(curve, row["target"]),
            "count_ratio": row["n"] / best["count"] if best else None,
            "time_ratio": row["seconds"] / best["seconds"] if best else None,
        })
    return out


def print_tables(rows: list[dict], args: argparse.Namespace) -> None:
    pairs = sorted({(r["picture"], r["kind"]) for r in rows}, key=lambda p: (args.kinds.index(p[1]) if p[1] in args.kinds else 9, p[0]))
    counts = sorted({r["count"] for r in rows if r["mode"] == "fixed"})
    print(f"\nPSNR (dB) of fixed-count fits at {args.size} px against the primitive count (wall seconds)\n")
    print("| picture | kind | " + " | ".join(str(c) for c in counts) + " |")
    print("|---|---|" + "---:|" * len(counts))
    for picture, kind in pairs:
        cells = []
        for count in counts:
            found = [r for r in rows if r["mode"] == "fixed" and (r["picture"], r["kind"], r["count"]) == (picture, kind, count)]
            cells.append(f"{found[0]['psnr']:.2f} ({found[0]['seconds']:.0f})" if found else "")
        print(f"| {picture} | {kind} | " + " | ".join(cells) + " |")
    table = comparisons(rows)
    print("\nAutomatic budget (target_psnr) against the best fixed-count fit that reaches the target\n")
    print("| picture | kind | target | budget n | PSNR | s | fixed n | fixed PSNR | fixed s | curve n | n ratio | time ratio |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for c in table:
        fmt = lambda v, spec: "-" if v is None else format(v, spec)  # noqa: E731
        print(f"| {c['picture']} | {c['kind']} | {c['target']:g} | {c['n']} | {c['psnr']:.2f}{'' if c['reached'] else ' (not reached)'} | "
              f"{c['seconds']:.1f} | {fmt(c['fixed_n'], 'd')} | {fmt(c['fixed_psnr'], '.2f')} | {fmt(c['fixed_seconds'], '.1f')} | "
              f"{fmt(c['curve_n'], '.0f')} | {fmt(c['count_ratio'], '.2f')} | {fmt(c['time_ratio'], '.2f')} |")
    compared = [c for c in table if c["count_ratio"] is not None]
    if compared:
        print(f"\n{len(compared)} targets that a fixed-count fit of the sweep reaches: budget reached "
              f"{sum(c['reached'] for c in compared)}; primitives ratio median {statistics.median(c['count_ratio'] for c in compared):.2f}, "
              f"max {max(c['count_ratio'] for c in compared):.2f} (bar {COUNT_BAR}); time ratio median "
              f"{statistics.median(c['time_ratio'] for c in compared):.2f}, max {max(c['time_ratio'] for c in compared):.2f} (bar {TIME_BAR}); "
              f"within both bars: {sum(c['reached'] and c['count_ratio'] <= COUNT_BAR and c['time_ratio'] <= TIME_BAR for c in compared)}")
    beyond = [c for c in table if c["count_ratio"] is None]
    for c in beyond:
        print(f"- {c['picture']} {c['kind']} {c['target']:g} dB: no fixed count of the sweep reaches it; the budget fit: "
              f"{c['n']} primitives, {c['psnr']:.2f} dB, {c['seconds']:.1f} s")


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pictures = sorted({r["picture"] for r in rows})
    figure, axes = plt.subplots(1, len(pictures), figsize=(4 * len(pictures), 3.4), sharey=True, squeeze=False)
    for axis, picture in zip(axes[0], pictures):
        for kind, style in (("circles", "C0"), ("brushes", "C1")):
            fixed = sorted((r["count"], r["psnr"]) for r in rows if r["mode"] == "fixed" and r["picture"] == picture and r["kind"] == kind)
            budget = [(r["n"], r["psnr"]) for r in rows if r["mode"] == "budget" and r["picture"] == picture and r["kind"] == kind]
            if fixed:
                axis.plot(*zip(*fixed), "-o", color=style, markersize=3, label=f"{kind}, fixed count")
            if budget:
                axis.plot(*zip(*budget), "*", color=style, markersize=10, markeredgecolor="black", label=f"{kind}, target_psnr")
        for target in sorted({r["target"] for r in rows if r["mode"] == "budget"}):
            axis.axhline(target, linestyle=":", color="gray", linewidth=0.8)
        axis.set_xscale("log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set_title(picture)
        axis.set_xlabel("primitives")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("PSNR (dB)")
    axes[0][0].legend(fontsize=7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", nargs="+", default=["astronaut", "coffee", "chelsea", "camera"])
    parser.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=["circles", "brushes"])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--counts", nargs="+", type=int, default=list(DEFAULT_COUNTS))
    parser.add_argument("--targets", nargs="+", type=float, default=[26.0, 30.0, 34.0])
    parser.add_argument("--json", type=Path, help="rows are kept here; a rerun skips the fits it holds")
    parser.add_argument("--fresh", action="store_true", help="ignore the rows --json holds")
    parser.add_argument("--plot", type=Path, help="write the curves (PNG)")
    parser.add_argument("--report-only", action="store_true", help="print the tables of --json without fitting")
    args = parser.parse_args()
    rows = load_rows(args.json, args.fresh)
    done = {key_of(r) for r in rows}
    if not args.report_only:
        for kind in args.kinds:
            for picture in args.pictures:
                jobs = [("fixed", {"count": c}) for c in args.counts] + [("budget", {"target": t}) for t in args.targets]
                for mode, what in jobs:
                    row = {"picture": picture, "kind": kind, "mode": mode, **what}
                    if key_of(row) in done:
                        continue
                    options = {"n": what["count"]} if mode == "fixed" else {"target_psnr": what["target"]}
                    row.update(run_fit(picture, kind, args.size, **options))
                    if mode == "fixed":
                        row.pop("rounds"), row.pop("summary")
                    print(f"{picture} {kind} {mode} {what}: n={row['n']} {row['psnr']:.2f} dB {row['seconds']:.1f} s", flush=True)
                    rows.append(row)
                    save_rows(args.json, rows, args)
    print_tables(rows, args)
    if args.plot:
        plot(rows, args.plot)
        print(f"\nwrote {args.plot}")


if __name__ == "__main__":
    main()
