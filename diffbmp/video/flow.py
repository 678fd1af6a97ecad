"""Optical flow between frames (OpenCV) and the operations a video fit needs from it.

A flow field is a float32 tensor ``[H, W, 2]`` of ``(dx, dy)`` in canvas pixels. The flow
from ``previous`` to ``current`` says where the content at each pixel of ``previous`` went:
``current(p + flow(p)) ~ previous(p)``. Pixel ``(i, j)`` has its centre at
``(j + 0.5, i + 0.5)`` (``diffbmp.constants.PIXEL_CENTER``), the compositor's convention.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from ..constants import PIXEL_CENTER
from ..errors import ConfigError

__all__ = ["FLOW_METHODS", "optical_flow", "warp", "sample", "consistent"]

FLOW_METHODS = ("farneback", "dis")


def _grey(image: torch.Tensor) -> np.ndarray:
    """[H, W, 3] in [0, 1] -> uint8 luminance, what OpenCV's flow methods take."""
    rgb = image.detach().float().clamp(0, 1).cpu().numpy()
    luminance = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.ascontiguousarray(np.clip(luminance * 255.0 + 0.5, 0, 255).astype(np.uint8))


def optical_flow(previous: torch.Tensor, current: torch.Tensor, method: str = "farneback") -> torch.Tensor:
    """Dense flow ``[H, W, 2]`` from ``previous`` to ``current`` (both ``[H, W, 3]`` in [0, 1]).

    Args:
        method: "farneback" (``cv2.calcOpticalFlowFarneback``: smooth, good for small
            canvases) or "dis" (``cv2.DISOpticalFlow``, medium preset: faster on large ones).
    """
    a, b = _grey(previous), _grey(current)
    side = max(a.shape)
    if method == "farneback":
        # A window of about 1/8 of the canvas (at least 9 px) carries the motion of a shape's
        # edges into its flat inside without washing out small details on large canvases.
        window = max(9, int(round(side / 8)) | 1)
        levels = max(1, min(4, int(np.log2(max(side, 16) / 16))))
        flow = cv2.calcOpticalFlowFarneback(a, b, None, pyr_scale=0.5, levels=levels, winsize=window, iterations=4,
                                            poly_n=5, poly_sigma=1.1, flags=cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
    elif method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a, b, None)
    else:
        raise ConfigError(f"unknown optical flow method {method!r}; choose one of {', '.join(FLOW_METHODS)} (or none)")
    return torch.from_numpy(np.ascontiguousarray(flow, dtype=np.float32)).to(previous.device)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``image`` ``[H, W, C]`` sampled at ``p + flow(p)`` for every pixel ``p`` (bilinear, edges repeated).

    With the flow from frame t to frame t-1, this moves frame t-1's content to where it is in frame t.
    """
    height, width = flow.shape[:2]
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    field = flow.detach().cpu().numpy()
    source = image.detach().float().cpu().numpy()
    out = cv2.remap(source, grid_x + field[..., 0], grid_y + field[..., 1], interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    if out.ndim == 2 and image.ndim == 3:
        out = out[..., None]
    return torch.from_numpy(np.ascontiguousarray(out)).to(image.device, image.dtype)


def sample(field: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear samples ``[N, C]`` of ``field`` ``[H, W, C]`` at canvas points ``[N, 2]`` (x, y).

    Points outside the canvas take the nearest edge value.
    """
    height, width = field.shape[:2]
    x = (points[:, 0] - PIXEL_CENTER).clamp(0, width - 1)
    y = (points[:, 1] - PIXEL_CENTER).clamp(0, height - 1)
    x0, y0 = x.floor().long().clamp(max=width - 2 if width > 1 else 0), y.floor().long().clamp(max=height - 2 if height > 1 else 0)
    x1, y1 = (x0 + 1).clamp(max=width - 1), (y0 + 1).clamp(max=height - 1)
    fx, fy = (x - x0).unsqueeze(1), (y - y0).unsqueeze(1)
    top = field[y0, x0] * (1 - fx) + field[y0, x1] * fx
    bottom = field[y1, x0] * (1 - fx) + field[y1, x1] * fx
    return top * (1 - fy) + bottom * fy


def consistent(forward: torch.Tensor, backward: torch.Tensor, tolerance: float = 0.5) -> torch.Tensor:
    """Where the forward flow is trustworthy ``[H, W]`` (bool): following it and then the
    backward flow comes back to within ``tolerance`` px (plus 5 % of the motion).

    Pixels that are covered up in the next frame fail the check: their content went nowhere,
    whatever the flow method guessed there.
    """
    back = warp(backward, forward)  # the backward flow at p + forward(p)
    error = (forward + back).norm(dim=-1)
    return error <= tolerance + 0.05 * forward.norm(dim=-1)
