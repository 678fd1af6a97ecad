"""Independent SVG renderers for the SVG export tests: resvg (resvg_py), librsvg (the
``rsvg-convert`` program) and cairosvg, each giving RGB floats in [0, 1]."""

from __future__ import annotations

import io
import math
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

RSVG_CONVERT = shutil.which("rsvg-convert")
RENDERERS = ("resvg", "rsvg", "cairosvg")


def require(renderer: str) -> None:
    """Skip the calling test, with the reason, when ``renderer`` is not installed here."""
    if renderer == "rsvg" and RSVG_CONVERT is None:
        pytest.skip("rsvg-convert (librsvg) is not installed: apt-get install librsvg2-bin")
    if renderer == "resvg":
        pytest.importorskip("resvg_py", reason="resvg_py is not installed (a dependency of diffbmp)")
    if renderer == "cairosvg":
        pytest.importorskip("cairosvg", reason="cairosvg is not installed: pip install cairosvg (a test extra)")


def rasterize(svg: str, renderer: str) -> np.ndarray:
    """``svg`` drawn by ``renderer`` at its own width and height, as RGB floats [H, W, 3]."""
    if renderer == "resvg":
        import resvg_py

        png = bytes(resvg_py.svg_to_bytes(svg_string=svg))
    elif renderer == "rsvg":
        png = subprocess.run([RSVG_CONVERT, "--format=png"], input=svg.encode("utf-8"), capture_output=True, check=True).stdout
    elif renderer == "cairosvg":
        import cairosvg

        png = cairosvg.svg2png(bytestring=svg.encode("utf-8"))
    else:
        raise ValueError(f"unknown renderer {renderer!r}")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255.0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1]."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)
