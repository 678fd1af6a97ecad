"""The programs artists open our files with, driven from the command line.

Each function turns one exported file into a PNG the way a program draws it: PSDs flattened
by GIMP and Krita, SVGs rendered by resvg, librsvg (rsvg-convert), cairosvg, Inkscape and
Chromium. `available()` names the ones installed on this machine; a missing one is skipped
by the benchmarks, never faked.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

#: Seconds one program may take for one file.
TIMEOUT = 300


def _run(command: list[str]) -> None:
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT, check=False)
    if result.returncode != 0:
        tail = result.stdout.decode("utf-8", "replace")[-800:]
        raise RuntimeError(f"{command[0]} exited with {result.returncode}: {tail}")


def _scheme_string(path: Path) -> str:
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def gimp_flatten(psd: Path, png: Path) -> None:
    """GIMP (batch mode): open the PSD, flatten it, save the PNG."""
    script = (
        f"(let* ((image (car (gimp-file-load RUN-NONINTERACTIVE {_scheme_string(psd)} {_scheme_string(psd)})))"
        f" (layer (car (gimp-image-flatten image))))"
        f" (gimp-file-save RUN-NONINTERACTIVE image layer {_scheme_string(png)} {_scheme_string(png)}))"
    )
    _run(["gimp", "-i", "-d", "-f", "-b", script, "-b", "(gimp-quit 0)"])


def krita_flatten(psd: Path, png: Path) -> None:
    """Krita's command-line export (it needs a display: run under xvfb-run when there is none)."""
    command = ["krita", "--export", "--export-filename", str(png), str(psd)]
    if shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", *command]
    _run(command)


def resvg_render(svg: Path, png: Path, width: int, height: int) -> None:
    import resvg_py

    data = resvg_py.svg_to_bytes(svg_path=str(svg), width=width, height=height)
    png.write_bytes(bytes(data))


def rsvg_render(svg: Path, png: Path, width: int, height: int) -> None:
    _run(["rsvg-convert", "--width", str(width), "--height", str(height), "-o", str(png), str(svg)])


def cairosvg_render(svg: Path, png: Path, width: int, height: int) -> None:
    import cairosvg

    cairosvg.svg2png(url=str(svg), write_to=str(png), output_width=width, output_height=height)


def inkscape_render(svg: Path, png: Path, width: int, height: int) -> None:
    _run(["inkscape", "--export-type=png", f"--export-filename={png}", f"--export-width={width}",
          f"--export-height={height}", str(svg)])


def chromium_render(svg: Path, png: Path, width: int, height: int) -> None:
    """Chromium (headless) screenshots the SVG opened as a page of exactly its size."""
    _run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
          "--force-device-scale-factor=1", f"--window-size={width},{height}", f"--screenshot={png}", svg.resolve().as_uri()])


PSD_PROGRAMS: dict[str, tuple[str, Callable[[Path, Path], None]]] = {
    "GIMP": ("gimp", gimp_flatten),
    "Krita": ("krita", krita_flatten),
}
SVG_PROGRAMS: dict[str, tuple[str, Callable[[Path, Path, int, int], None]]] = {
    "resvg": ("module:resvg_py", resvg_render),
    "librsvg": ("rsvg-convert", rsvg_render),
    "cairosvg": ("module:cairosvg", cairosvg_render),
    "Inkscape": ("inkscape", inkscape_render),
    "Chromium": ("chromium", chromium_render),
}


def _installed(requirement: str) -> bool:
    if requirement.startswith("module:"):
        return importlib.util.find_spec(requirement[len("module:"):]) is not None
    return shutil.which(requirement) is not None


def available(programs: dict) -> list[str]:
    """Names of the programs in ``programs`` installed here."""
    return [name for name, (requirement, _) in programs.items() if _installed(requirement)]


def read_rgb(png: Path) -> np.ndarray:
    """8-bit RGB of a PNG, composited over white where it has transparency."""
    image = Image.open(png)
    if image.mode in ("RGBA", "LA", "P"):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two 8-bit images of one size (inf when identical)."""
    if a.shape != b.shape:
        raise ValueError(f"images differ in size: {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)
