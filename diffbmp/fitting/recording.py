"""Pictures of a fit: PNG files, and the animation (GIF and MP4) made from recorded frames.

Frames are written as PNG files into the run folder as the fit goes, so an interrupted and
resumed run still has every frame when the animation is encoded at the end.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .._tempfiles import publish_file, temporary_for, writing
from ..colour import png_save_options
from ..errors import output_error

__all__ = ["to_uint8", "shrunk", "write_png", "write_animation", "frame_paths"]


def to_uint8(image: torch.Tensor, alpha: torch.Tensor | None = None) -> np.ndarray:
    """[H, W, 3] (and optional [H, W] alpha) in [0, 1] as uint8 [H, W, 3 or 4]."""
    array = image.detach().float().clamp(0, 1).cpu().numpy()
    if alpha is not None:
        array = np.concatenate([array, alpha.detach().float().clamp(0, 1).cpu().numpy()[..., None]], axis=2)
    return (array * 255.0 + 0.5).astype(np.uint8)


def shrunk(pixels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """uint8 pixels [H, W, C] averaged down to ``shape`` (h, w); unchanged when they have it."""
    if pixels.shape[:2] == tuple(shape):
        return pixels
    import cv2

    return cv2.resize(pixels, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).reshape(shape[0], shape[1], -1)


def _atomic_path(path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    return temporary_for(path)


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> Path:
    """Write uint8 RGB or RGBA pixels to ``path`` atomically (temp file + rename); OutputError
    naming the path when it cannot be written."""
    path = Path(path)
    with writing(path):
        fd, temporary = _atomic_path(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                Image.fromarray(pixels).save(handle, format="PNG", **png_save_options())
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
    result; a painted video uses 0). Each file is checked before it is reported: the encoder
    must succeed and the file must hold every frame. A missing ffmpeg or a failed MP4 does not
    stop the fit: the MP4 is left out with a warning that says why. Returns the paths written.
    """
    paths = frame_paths(frames_dir)
    written: dict[str, Path] = {}
    if not paths:
        return written
    frames = _load_frames(paths)
    if gif is not None:
        with writing(gif):
            fd, temporary = _atomic_path(gif)
        try:
            # The last frame lingers so the result can be seen before the loop restarts.
            durations = [1000.0 / fps] * (len(frames) - 1) + [max(1000.0 * hold, 1000.0 / fps)]
            images = [Image.fromarray(frame) for frame in frames]
            with os.fdopen(fd, "wb") as handle:
                images[0].save(handle, format="GIF", save_all=True, append_images=images[1:], duration=durations,
                               loop=0, disposal=1)
            _check_whole_gif(temporary)
            publish_file(temporary, gif)
            written["gif"] = gif
        except OSError as error:
            Path(temporary).unlink(missing_ok=True)
            raise output_error(error, gif) from error
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    if mp4 is not None:
        try:
            import imageio_ffmpeg

            ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        except (ImportError, RuntimeError) as error:
            warnings.warn(f"{mp4.name} was not written: ffmpeg is not available ({error}); "
                          "install it with `pip install imageio-ffmpeg` (or set output.mp4: false)", stacklevel=2)
            return written
        with writing(mp4):
            fd, temporary = _atomic_path(mp4)
        os.close(fd)
        try:
            count = encode_mp4(ffmpeg, frames + [frames[-1]] * int(fps * hold), temporary, fps)
            found = imageio_ffmpeg.count_frames_and_secs(temporary)[0]
            if found != count:
                raise EncoderError(f"the file holds {found} of its {count} frames")
            publish_file(temporary, mp4)
            written["mp4"] = mp4
        except (OSError, RuntimeError) as error:
            Path(temporary).unlink(missing_ok=True)
            warnings.warn(f"{mp4.name} was not written: {error}", stacklevel=2)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return written


def _check_whole_gif(path: str | os.PathLike) -> None:
    """OSError unless every frame of the GIF decodes (a cut-off file does not). Pillow joins
    identical neighbouring frames, so the count may be lower than the frames given."""
    from PIL import ImageSequence

    with Image.open(path) as gif:
        for frame in ImageSequence.Iterator(gif):
            frame.load()


class EncoderError(RuntimeError):
    """ffmpeg failed, or its file is not whole."""


def encode_mp4(ffmpeg: str, frames: list[np.ndarray], path: str | os.PathLike, fps: float) -> int:
    """Encode uint8 RGB frames as H.264 into ``path`` with ffmpeg; returns the frame count.

    ffmpeg runs in a process group of its own, so Ctrl-C reaches Python alone, which stops it
    and re-raises (the caller removes the file); a non-zero exit status is an EncoderError
    carrying ffmpeg's own last words.
    """
    height, width = frames[0].shape[:2]
    even = (height + height % 2, width + width % 2)  # yuv420p needs even sides
    command = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{even[1]}x{even[0]}",
               "-r", f"{fps:g}", "-i", "-", "-an", "-c:v", "libx264", "-preset", "medium", "-crf", "18",
               "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", str(path)]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors,
                                   start_new_session=True)
        try:
            for frame in frames:
                pad = ((0, even[0] - height), (0, even[1] - width), (0, 0))
                process.stdin.write(np.ascontiguousarray(np.pad(frame, pad, mode="edge")).tobytes())
            process.stdin.close()
            status = process.wait()
        except BrokenPipeError:
            status = process.wait()  # ffmpeg stopped reading: its message says why
        except BaseException:
            process.kill()
            process.wait()
            raise
        if status != 0:
            errors.seek(0)
            words = errors.read().decode(errors="replace").strip().splitlines()
            raise EncoderError(f"ffmpeg failed (exit status {status}): {words[-1] if words else 'no message'}")
    return len(frames)
