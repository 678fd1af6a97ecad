"""The run folder of a video fit and the files written into it.

| path | content |
| --- | --- |
| ``painted.mp4``, ``painted.gif`` | the painted video |
| ``painted/frame_NNNNN.png`` | each painted frame (what the video is encoded from) |
| ``frames/scene_NNNNN.npz`` | the fitted scene of each frame (``Scene.load``) |
| ``psd/frame_NNNNN.psd`` | layered PSD files of the frames in ``video.psd_frames`` |
| ``frames.csv`` | per-frame PSNR, SSIM, flicker, ... |
| ``psnr.png`` | per-frame PSNR and flicker, plotted |
| ``log.csv`` | every optimisation step of every frame |
| ``config.yaml``, ``checkpoint.pt`` | the resolved configuration; where to resume |
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

from .._tempfiles import publish_file, temporary_for, writing
from ..errors import ConfigError
from ..fitting.runfolder import RunFolder, write_csv

__all__ = ["VideoFolder", "FRAME_COLUMNS", "STEP_COLUMNS", "write_plot", "psd_indices"]

#: Columns of frames.csv.
FRAME_COLUMNS = ("frame", "source_frame", "psnr", "ssim", "mse", "flicker", "steps", "loss", "moved", "optimised", "seconds")
#: Columns of a video fit's log.csv.
STEP_COLUMNS = ("frame", "step", "loss", "psnr", "n", "blur", "seconds")


class VideoFolder(RunFolder):
    """Paths of a video fit's outputs inside ``root`` (the rules of :class:`RunFolder` apply)."""

    FILES = RunFolder.FILES + ("painted.mp4", "painted.gif", "frames.csv", "psnr.png")
    FOLDERS = RunFolder.FOLDERS + ("painted", "psd")

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        self.scenes = self.root / "frames"
        self.painted = self.root / "painted"
        self.psd = self.root / "psd"
        self.painted_mp4 = self.root / "painted.mp4"
        self.painted_gif = self.root / "painted.gif"
        self.frames_csv = self.root / "frames.csv"
        self.plot = self.root / "psnr.png"

    def scene_file(self, frame: int) -> Path:
        return self.scenes / f"scene_{frame:05d}.npz"

    def painted_file(self, frame: int) -> Path:
        return self.painted / f"frame_{frame:05d}.png"

    def psd_file(self, frame: int) -> Path:
        return self.psd / f"frame_{frame:05d}.psd"

    def write_frames(self, rows: Sequence[dict[str, Any]]) -> None:
        write_csv(self.frames_csv, list(rows), FRAME_COLUMNS)

    def write_steps(self, history: Sequence[dict[str, Any]]) -> None:
        write_csv(self.log, list(history), STEP_COLUMNS)


def psd_indices(frames: Sequence[int], count: int) -> set[int]:
    """``video.psd_frames`` as indices into the ``count`` fitted frames (-1 is the last)."""
    out = set()
    for frame in frames:
        index = frame + count if frame < 0 else frame
        if not 0 <= index < count:
            raise ConfigError(f"video.psd_frames has frame {frame}, but the fit has {count} frames "
                              f"(0..{count - 1}, or -1 for the last)")
        out.add(index)
    return out


def write_plot(path: Path, rows: Sequence[dict[str, Any]], title: str = "") -> Path:
    """PSNR per frame (left axis) and flicker per frame (right axis) as a PNG, atomically."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    frames = [row["frame"] for row in rows]
    figure = Figure(figsize=(6.4, 3.2), dpi=100)
    axis = figure.add_subplot(1, 1, 1)
    axis.plot(frames, [row["psnr"] for row in rows], color="tab:blue", marker="o", markersize=3, label="PSNR")
    axis.set_xlabel("frame")
    axis.set_ylabel("PSNR (dB)", color="tab:blue")
    axis.grid(alpha=0.3)
    flicker = [(row["frame"], row["flicker"]) for row in rows if row.get("flicker") is not None and not math.isnan(row["flicker"])]
    if flicker:
        right = axis.twinx()
        right.plot([f for f, _ in flicker], [v for _, v in flicker], color="tab:red", marker=".", markersize=3, linewidth=1)
        right.set_ylabel("flicker (grey levels)", color="tab:red")
        right.set_ylim(bottom=0)
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = temporary_for(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                figure.savefig(handle, format="png")
            publish_file(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return path
