"""Ways of adding primitives, at equal counts: PSNR of fits that end with the same number of
primitives, added by each densification of a budget fit's rounds, against fixed-count fits
(all at the start, and in the coarse-to-fine stages of the brush recipe).

Variants (circles, the default recipe otherwise):

* ``fixed``: all n primitives from the initialisation, strategy plain, 500 steps;
* ``stages``: the same in three stages (stages.count 3, each stage's primitives half the size);
* ``rounds:error``, ``rounds:split``, ``rounds:search``: a budget fit's rounds (an unreachable
  target and budget.max_primitives n, so they end at n, untrimmed), adding where the error is,
  by splitting the large primitives over the most error, or by search (counts up to 500);
* ``rounds:error, no re-seeding``: as ``rounds:error`` with prune.reseed off (dead primitives
  stay where they are).

    python bench/densify.py --counts 300 1500 --pictures astronaut chelsea
"""

from __future__ import annotations

import argparse
import time

import diffbmp
from diffbmp.config import SEARCH_UP_TO

VARIANTS = {
    "fixed": {"strategy": "plain"},
    "stages": {"strategy": "plain", "stages": {"count": 3}},
    "rounds:error": {"budget": {"densify": "error"}},
    "rounds:split": {"budget": {"densify": "split"}},
    "rounds:search": {"budget": {"densify": "search"}},
    "rounds:error, no re-seeding": {"budget": {"densify": "error"}, "prune": {"reseed": False}},
}

def options_for(variant: str, count: int) -> dict:
    options = {key: dict(value) if isinstance(value, dict) else value for key, value in VARIANTS[variant].items()}
    if "budget" in options:
        options["budget"].update({"psnr": 99.0, "max_primitives": count, "trim": False})
    else:
        options["n"] = count
    return options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pictures", nargs="+", default=["astronaut", "chelsea"])
    parser.add_argument("--counts", nargs="+", type=int, default=[300, 1500])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    args = parser.parse_args()
    rows = []
    for picture in args.pictures:
        for count in args.counts:
            for variant in args.variants:
                if variant == "rounds:search" and count > SEARCH_UP_TO:
                    continue
                started = time.perf_counter()
                result = diffbmp.fit(f"skimage:{picture}", "circle", size=args.size, quiet=True, **options_for(variant, count))
                seconds = time.perf_counter() - started
                rows.append((picture, count, variant, len(result.scene), result.psnr, result.history[-1]["step"], seconds))
                print(f"{picture} {count} {variant}: {len(result.scene)} primitives, {result.psnr:.2f} dB, {seconds:.1f} s", flush=True)
    print(f"\nPSNR at equal primitive counts, circles at {args.size} px\n")
    print("| picture | n | variant | primitives | PSNR (dB) | steps | s |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for picture, count, variant, n, psnr, steps, seconds in rows:
        print(f"| {picture} | {count} | {variant} | {n} | {psnr:.2f} | {steps} | {seconds:.1f} |")


if __name__ == "__main__":
    main()
