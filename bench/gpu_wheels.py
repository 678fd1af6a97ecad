"""Download the wheels that `import diffbmp` and its test suite need on the GPU machines.

The GPU machines (Python 3.12, torch with CUDA, no package registry) lack a few of diffbmp's
dependencies. This fetches exactly those, at the versions installed here (where the suite
passes), as wheels for that Python into the git-ignored folder .whl/:

    python bench/gpu_wheels.py              # about 5 MiB into .whl/
    python bench/gpu_wheels.py --check      # what is there, without downloading

A device run takes the folder along (carry: [".whl"]) and bench/gpu_session.sh installs it
into a folder of its own, put first on PYTHONPATH (nothing of the machine's is changed):

    python3 -m pip install --no-index --no-deps --target /tmp/diffbmp-site .whl/*.whl

imageio-ffmpeg (68 MB, it bundles ffmpeg) is left out on purpose: without it the fits write
GIFs and no MP4, and the tests that need MP4 files skip.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What the GPU image lacks (KINDS.md of the device machines lists what it has), with the
#: dependencies of each that it lacks too. typing-extensions is there but may be older than
#: pydantic needs.
PACKAGES = [
    "pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions",  # config
    "psd-tools",  # PSD export
    "resvg-py",  # SVG textures
    "pytorch-msssim",  # SSIM losses
]
PYTHON = "3.12"
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"]


def wanted_versions() -> dict[str, str]:
    """Each package at the version installed here."""
    versions, missing = {}, []
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    if missing:
        sys.exit(f"gpu_wheels: {', '.join(missing)} not installed here; install the project first: pip install '.[test]'")
    return versions


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def wheels_in(folder: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for wheel in sorted(folder.glob("*.whl")):
        found.setdefault(normalise(wheel.name.split("-")[0]), []).append(wheel)
    return found


def download(name: str, version: str, dest: Path) -> None:
    platforms = [flag for p in PLATFORMS for flag in ("--platform", p)]
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--python-version", PYTHON, "--implementation", "cp", *platforms, "-d", str(dest), f"{name}=={version}"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"gpu_wheels: could not download {name}=={version} for Python {PYTHON}:\n{done.stderr.strip()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl", help="folder for the wheels (default .whl/)")
    parser.add_argument("--check", action="store_true", help="only report what the folder holds")
    args = parser.parse_args()
    versions = wanted_versions()
    args.dest.mkdir(parents=True, exist_ok=True)
    if not args.check:
        for name, version in versions.items():
            present = wheels_in(args.dest).get(normalise(name), [])
            if any(f"-{version}-" in wheel.name for wheel in present):
                continue
            for stale in present:  # one version of each: two would stop the whole install
                stale.unlink()
            download(name, version, args.dest)
    found = wheels_in(args.dest)
    total, problems = 0, []
    for name, version in versions.items():
        present = found.get(normalise(name), [])
        if len(present) != 1 or f"-{version}-" not in present[0].name:
            problems.append(f"{name}=={version}: found {[p.name for p in present] or 'nothing'}")
            continue
        size = present[0].stat().st_size
        total += size
        print(f"{present[0].name:<80} {size / 2**20:6.2f} MiB")
    print(f"{'total':<80} {total / 2**20:6.2f} MiB in {args.dest}")
    for problem in problems:
        print(f"gpu_wheels: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
