"""Pictures of a fit: PNG files, and the animation (GIF and MP4) made from recorded frames.

Frames are written as PNG files into the run folder as the fit goes, so an interrupted and
resumed run still has every frame when the animation is encoded at the end.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

# mkstemp creates files readable by their owner only; outputs get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)


def publish_file(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the permissions of a normal new file and move it into place."""
    os.chmod(temporary, 0o666 & ~_UMASK)
    os.replace(temporary, path)


__all__ = ["to_uint8", "write_png", "write_animation", "frame_paths", "publish_file"]


def to_uint8(image: torch.Tensor, alpha: torch.Tensor | None = None) -> np.ndarray:
    """[H, W, 3] (and optional [H, W] alpha) in [0, 1] as uint8 [H, W, 3 or 4]."""
    array = image.detach().float().clamp(0, 1).cpu().numpy()
    if alpha is not None:
        array = np.concatenate([array, alpha.detach().float().clamp(0, 1).cpu().numpy()[..., None]], axis=2)
    return (array * 255.0 + 0.5).astype(np.uint8)


def _atomic_path(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> Path:
    """Write uint8 RGB or RGBA pixels to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    fd, temporary = _atomic_path(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            Image.fromarray(pixels).save(handle, format="PNG")
        publish_file(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def frame_paths(folder: str | os.PathLike) -> list[Path]:
    """The recorded frames in ``folder``, in step order."""
    folder = Path(folder)
    return sorted(folder.glob("frame_*.png")) if folder.is_dir() else []


def _load_frames(paths: list[Path]) -> list[np.ndarray]:
    frames = []
    for path in paths:
        with Image.open(path) as img:
            frames.append(np.asarray(img.convert("RGB")))
    return frames


def write_animation(frames_dir: str | os.PathLike, gif: Path | None, mp4: Path | None, fps: float = 20,
                    hold: float = 1.5) -> dict[str, Path]:
    """Encode the frames in ``frames_dir`` as a GIF and/or an MP4 (H.264).

    ``hold`` seconds of the last frame are added (an animation of a fit lingers on its
    result; a painted video uses 0). A missing ffmpeg does not stop the fit: the MP4 is
    skipped with a warning that says how to get it. Returns the paths written.
    """
    paths = frame_paths(frames_dir)
    written: dict[str, Path] = {}
    if not paths:
        return written
    frames = _load_frames(paths)
    if gif is not None:
        import imageio.v3 as iio

        fd, temporary = _atomic_path(gif)
        os.close(fd)
        try:
            # The last frame lingers so the result can be seen before the loop restarts.
            durations = [1000.0 / fps] * (len(frames) - 1) + [max(1000.0 * hold, 1000.0 / fps)]
            iio.imwrite(temporary, np.stack(frames), extension=".gif", duration=durations, loop=0)
            publish_file(temporary, gif)
            written["gif"] = gif
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    if mp4 is not None:
        try:
            import imageio.v2 as iio2
            import imageio_ffmpeg

            imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError) as error:
            warnings.warn(f"{mp4.name} was not written: ffmpeg is not available ({error}); "
                          "install it with `pip install imageio-ffmpeg` (or set output.mp4: false)", stacklevel=2)
            return written
        fd, temporary = _atomic_path(mp4)
        os.close(fd)
        try:
            writer = iio2.get_writer(temporary, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                     macro_block_size=1, pixelformat="yuv420p")
            try:
                for frame in frames + [frames[-1]] * int(fps * hold):
                    # yuv420p needs even sides: repeat the last row/column where one is odd.
                    pad = ((0, frame.shape[0] % 2), (0, frame.shape[1] % 2), (0, 0))
                    writer.append_data(np.pad(frame, pad, mode="edge"))
            finally:
                writer.close()
            publish_file(temporary, mp4)
            written["mp4"] = mp4
        except (OSError, RuntimeError) as error:
            Path(temporary).unlink(missing_ok=True)
            warnings.warn(f"{mp4.name} was not written: the encoder failed ({error})", stacklevel=2)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return written
