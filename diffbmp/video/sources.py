"""Reading the frames of a video target: video files, animated GIFs, folders of frames,
generated demo clips and arrays.

Every kind becomes a :class:`Clip`: the selected frames as :class:`~diffbmp.targets.Target`
objects on the fitting canvas (resized exactly like a still target), their numbers in the
source, and the source's frame rate. The kind is told from the target itself:

* ``demo:<name>``: a generated clip (:mod:`diffbmp.video.demo`);
* ``skimage:no_time_for_that_tiny`` (``.gif`` optional): the animated GIF bundled with
  scikit-image;
* a folder: its image files, sorted naturally (``frame2`` before ``frame10``);
* a file ending in a video suffix (``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``, ...):
  read with imageio's ffmpeg plugin (the ffmpeg binary of imageio-ffmpeg);
* a ``.gif`` with more than one frame: read with imageio (Pillow);
* a numpy array or tensor ``[T, H, W, C]`` (C = 1, 3 or 4) or a list of images.

Anything else is a still image (:func:`video_kind` returns None).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..errors import ConfigError, InputError
from ..image_files import image_size
from ..targets import SKIMAGE_ANIMATIONS, SKIMAGE_PREFIX, Target, _existing_path, image_array, load_map, load_target, read_image_file, skimage_file

__all__ = [
    "Clip",
    "FrameSelection",
    "DEMO_PREFIX",
    "VIDEO_SUFFIXES",
    "FRAME_SUFFIXES",
    "video_kind",
    "natural_key",
    "frame_files",
    "load_clip",
    "load_frame_maps",
]

DEMO_PREFIX = "demo:"
#: File endings read as videos through imageio's ffmpeg plugin.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv", ".3gp", ".ts")
#: File endings of the frames in a folder.
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class FrameSelection:
    """Which frames of a source to fit: ``range(start, stop, step)``, at most ``max_frames``."""

    start: int = 0
    stop: int | None = None
    step: int = 1
    max_frames: int | None = None

    @classmethod
    def from_config(cls, video: Any) -> "FrameSelection":
        return cls(video.start, video.stop, video.step, video.max_frames)

    def wanted(self, index: int, taken: int) -> bool:
        """Whether frame ``index`` is selected, ``taken`` frames having been selected before it."""
        if index < self.start or (self.stop is not None and index >= self.stop):
            return False
        if self.max_frames is not None and taken >= self.max_frames:
            return False
        return (index - self.start) % self.step == 0

    def finished(self, index: int, taken: int) -> bool:
        """True when no frame from ``index`` on can be selected."""
        return (self.stop is not None and index >= self.stop) or (self.max_frames is not None and taken >= self.max_frames)


@dataclass
class Clip:
    """The frames of a video target on the fitting canvas.

    Attributes:
        frames: one :class:`Target` per selected frame (all the same size; all with alpha
            or all without).
        indices: each frame's number in the source (0-based).
        fps: the source's frame rate, or None when it has none (a folder).
        name: short name (file stem), used for run folders.
        source: where it came from.
        kind: "video", "gif", "folder", "demo" or "array".
        total: frames in the source, or None when reading stopped early.
        source_size: (height, width) of the source's frames before resizing.
    """

    frames: list[Target]
    indices: list[int]
    fps: float | None
    name: str
    source: str
    kind: str
    total: int | None = None
    source_size: tuple[int, int] = (0, 0)

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def height(self) -> int:
        return self.frames[0].height

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def has_alpha(self) -> bool:
        return self.frames[0].has_alpha


# ----------------------------------------------------------------------------- kinds
def natural_key(name: str) -> list[Any]:
    """Sort key that orders numbers by value: ``frame2`` before ``frame10``."""
    return [(0, int(part), part) if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name) if part]


def _animation_name(text: str) -> str | None:
    if not text.startswith(SKIMAGE_PREFIX):
        return None
    name = text[len(SKIMAGE_PREFIX):].removesuffix(".gif")
    return name if name in SKIMAGE_ANIMATIONS else None


def _gif_frame_count(path: Path) -> int:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return int(getattr(image, "n_frames", 1))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        return 1  # an unreadable GIF is reported by the still-image reader


def video_kind(spec: Any) -> str | None:
    """"video", "gif", "folder", "demo" or "array" for a video target; None for a still image."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text.startswith(DEMO_PREFIX):
            return "demo"
        if _animation_name(text) is not None:
            return "gif"
        if text.startswith(SKIMAGE_PREFIX):
            return None
        path = Path(text).expanduser()
        if path.is_dir():
            return "folder"
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES:
            return "video"
        if suffix == ".gif" and path.is_file() and _gif_frame_count(path) > 1:
            return "gif"
        return None
    if isinstance(spec, (list, tuple)) and len(spec) > 0:
        return "array"
    if isinstance(spec, (np.ndarray, torch.Tensor)) and spec.ndim == 4:
        return "array"
    return None


def describe(spec: Any) -> str:
    """A short name for a target in messages: the text itself, or an array's type and shape."""
    if isinstance(spec, (str, os.PathLike)):
        return repr(os.fspath(spec))
    shape = getattr(spec, "shape", None)
    if shape is not None:
        return f"a {type(spec).__name__} of shape {tuple(shape)}"
    if isinstance(spec, (list, tuple)):
        return f"a {type(spec).__name__} of {len(spec)} items"
    return f"a {type(spec).__name__}"


# ----------------------------------------------------------------------------- readers
def frame_files(folder: str | os.PathLike, what: str = "target") -> list[Path]:
    """The image files of a frames folder in natural order (InputError when there are none)."""
    folder = Path(folder)
    try:
        files = [child for child in folder.iterdir() if child.is_file() and not child.name.startswith(".")]
    except OSError as error:
        raise InputError(f"cannot list the {what} frames folder {str(folder)!r}: {error}") from None
    frames = sorted((f for f in files if f.suffix.lower() in FRAME_SUFFIXES), key=lambda p: natural_key(p.name))
    if not frames:
        others = f" (it holds {len(files)} other files)" if files else ""
        raise InputError(f"the {what} frames folder {str(folder)!r} has no image files{others}; put the frames there as "
                         f"{', '.join(FRAME_SUFFIXES)} files named in order (frame1.png, frame2.png, ...)")
    return frames


def _check_folder_sizes(files: list[Path], what: str) -> tuple[int, int]:
    """(height, width) shared by every file; InputError naming the first file that differs."""
    first: tuple[int, int] | None = None
    for path in files:
        size = image_size(path, f"{what} frame")
        if first is None:
            first = size
        elif size != first:
            raise InputError(
                f"the {what} frames in {str(path.parent)!r} have different sizes: {files[0].name!r} is {first[0]}x{first[1]} "
                f"but {path.name!r} is {size[0]}x{size[1]}; give every frame the same size (resize or crop them first)"
            )
    assert first is not None
    return first[1], first[0]


def _ffmpeg_reason(error: Exception) -> str:
    """The line of an ffmpeg error message that says what went wrong."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    for line in reversed(lines):
        if "Invalid data" in line or "moov atom" in line or "does not contain any stream" in line or "No such file" in line:
            return line
    return lines[-1] if lines else type(error).__name__


def _iter_video(path: Path, what: str) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    index = 0
    try:
        for frame in iio.imiter(path, plugin="FFMPEG"):
            yield frame
            index += 1
    except (OSError, RuntimeError, ValueError, IndexError, StopIteration) as error:
        reason = _ffmpeg_reason(error)
        if "does not contain any stream" in reason:
            raise InputError(f"the {what} video {str(path)!r} has no video frames (no video stream: {reason}); "
                             "give a file with a video track") from None
        where = f" after frame {index - 1}" if index else ""
        raise InputError(f"cannot read the {what} video {str(path)!r}{where}: {reason}; check that the file plays, "
                         "or convert it (e.g. ffmpeg -i in.mov out.mp4) or export it as a folder of PNG frames") from None


def _iter_gif(path: Path, what: str) -> Iterator[np.ndarray]:
    import imageio.v3 as iio

    try:
        for frame in iio.imiter(path):
            yield frame
    except (OSError, RuntimeError, ValueError, EOFError, SyntaxError) as error:
        raise InputError(f"cannot read the {what} GIF {str(path)!r}: {error}") from None


def _iter_folder(files: list[Path], what: str) -> Iterator[np.ndarray]:
    for path in files:
        yield read_image_file(path, f"{what} frame")


def _gif_fps(path: Path) -> float | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            duration = float(image.info.get("duration") or 0)
    except Exception:  # the frames reader reports unreadable files
        return None
    return 1000.0 / duration if duration > 0 else None


def _video_fps(path: Path) -> float | None:
    import imageio.v3 as iio

    try:
        fps = float(iio.immeta(path, plugin="FFMPEG").get("fps") or 0)
    except Exception:  # the frames reader reports unreadable files
        return None
    return fps if fps > 0 and np.isfinite(fps) else None


def _open(spec: Any, kind: str, what: str, size: int | None) -> tuple[Iterator[Any], float | None, str, str]:
    """(frames iterator, fps, name, source) of a video target of the given kind."""
    if kind == "demo":
        from .demo import demo_frames, parse_demo

        name, options = parse_demo(os.fspath(spec))
        frames = demo_frames(name, size=size or 128, **options)
        return iter(frames), 12.0, name, os.fspath(spec)
    if kind == "array":
        items = list(spec) if isinstance(spec, (list, tuple)) else [spec[i] for i in range(spec.shape[0])]
        if not items:
            raise InputError(f"the {what} is an empty list of frames")
        return iter(items), None, "array", f"<{type(spec).__name__} of {len(items)} frames>"
    text = os.fspath(spec)
    animation = _animation_name(text)
    path = skimage_file(animation) if animation is not None else Path(text).expanduser()
    if kind == "folder":
        files = frame_files(path, what)
        _check_folder_sizes(files, what)
        return _iter_folder(files, what), None, path.name, str(path)
    path = _existing_path(path, f"{what} video")
    if kind == "gif":
        return _iter_gif(path, what), _gif_fps(path), path.stem, text if animation else str(path)
    return _iter_video(path, what), _video_fps(path), path.stem, str(path)


def _read(spec: Any, kind: str, selection: FrameSelection, what: str, size: int | None, count_all: bool
          ) -> tuple[list[tuple[int, np.ndarray]], int | None, float | None, str, str]:
    """The selected frames as float arrays with their numbers, the source's frame count
    (None when reading stopped early), fps, name and source."""
    frames, fps, name, source = _open(spec, kind, what, size)
    chosen: list[tuple[int, np.ndarray]] = []
    index = -1
    shape: tuple[int, int] | None = None
    stopped = False
    for index, frame in enumerate(frames):
        if selection.finished(index, len(chosen)) and not count_all:
            stopped = True
            break
        if not selection.wanted(index, len(chosen)):
            continue
        array = image_array(frame, f"{what} frame {index} of {source}")
        if shape is None:
            shape = array.shape[:2]
        elif array.shape[:2] != shape:
            raise InputError(f"frame {index} of the {what} {source} is {array.shape[1]}x{array.shape[0]} but frame "
                             f"{chosen[0][0]} is {shape[1]}x{shape[0]}; every frame must have the same size")
        chosen.append((index, array))
    total = None if stopped else index + 1
    if total == 0:
        raise InputError(f"the {what} {source} has no frames; give a video, GIF or folder with at least one frame")
    if not chosen and selection.stop is not None and selection.stop <= selection.start:
        raise ConfigError(f"video.stop = {selection.stop} is not after video.start = {selection.start}: no frame is selected; "
                          "choose a stop above the start (or null for the end of the clip)")
    if not chosen:
        count = f"has {total} frames" if total is not None else "has fewer frames"
        raise ConfigError(f"no frame of the {what} {source} is selected: it {count} but video.start = {selection.start}"
                          f"{'' if selection.stop is None else f', video.stop = {selection.stop}'}; choose a start below "
                          f"{total if total is not None else 'the frame count'}")
    return chosen, total, fps, name, source


def load_clip(spec: Any, size: int | None = 256, selection: FrameSelection | None = None, *, count_all: bool = False,
              what: str = "target") -> Clip:
    """Read the selected frames of a video target and put them on the fitting canvas.

    Args:
        spec: a video file, an animated GIF, a folder of frames, ``demo:<name>``,
            ``skimage:no_time_for_that_tiny``, an array ``[T, H, W, C]`` or a list of images.
        size: longer side of the fitting canvas (None keeps the frames' size).
        selection: which frames (default: all).
        count_all: read to the end even after the last selected frame, so that
            ``Clip.total`` is known.
        what: what the clip is for, used in error messages.

    Raises:
        InputError: a missing, empty, corrupt or unreadable source, or frames of different sizes.
        ConfigError: a selection that picks no frame.
    """
    kind = video_kind(spec)
    if kind is None:
        raise InputError(f"{describe(spec)} is not a video target: give a video file ({', '.join(VIDEO_SUFFIXES[:6])}, ...), "
                         "an animated GIF, a folder of frames, 'demo:moving_disc', or an array [T, H, W, C] "
                         "(a greyscale clip as [T, H, W, 1])")
    selection = selection or FrameSelection()
    chosen, total, fps, name, source = _read(spec, kind, selection, what, size, count_all)
    targets = [load_target(array, size) for _, array in chosen]
    if any(t.has_alpha for t in targets) and not all(t.has_alpha for t in targets):
        # Some frames are fully opaque: give them an alpha of one so every frame has one.
        targets = [t if t.has_alpha else Target(t.rgb, torch.ones(t.rgb.shape[:2]), t.name, t.source) for t in targets]
    for target, (index, _) in zip(targets, chosen):
        target.name, target.source = name, f"{source} frame {index}"
    height, width = chosen[0][1].shape[:2]
    return Clip(targets, [index for index, _ in chosen], fps, name, source, kind, total, (height, width))


# ----------------------------------------------------------------------------- maps
def _is_map_sequence(spec: Any) -> bool:
    if isinstance(spec, (np.ndarray, torch.Tensor)):
        # [T, H, W, C], or [T, H, W] whose last side cannot be a channel count.
        return spec.ndim == 4 or (spec.ndim == 3 and spec.shape[-1] not in (1, 3, 4))
    if isinstance(spec, str) and spec.partition(":")[0] in ("ellipse", "rect"):
        return False
    return video_kind(spec) is not None


def load_frame_maps(spec: Any, clip: Clip, selection: FrameSelection, what: str) -> list[torch.Tensor] | torch.Tensor | None:
    """A weight map or mask for a video fit: one map for every frame, or one per frame.

    A still image or ``ellipse:``/``rect:`` shape applies to every frame; a video, GIF,
    folder or array must have one frame per frame of the target (the same selection is
    applied to it).

    Raises:
        InputError: the map sequence's frame count differs from the target's, or a map's
            aspect ratio differs from the target's.
    """
    if spec is None:
        return None
    height, width = clip.height, clip.width
    if not _is_map_sequence(spec):
        return load_map(spec, height, width, what)
    if isinstance(spec, (np.ndarray, torch.Tensor)) and spec.ndim == 3:
        spec = [spec[i] for i in range(spec.shape[0])]
    kind = video_kind(spec)
    assert kind is not None
    chosen, total, _, _, source = _read(spec, kind, selection, what, None, count_all=True)
    if clip.total is not None and total != clip.total:
        raise InputError(f"the {what} {source} has {total} frames but the target {clip.source} has {clip.total}; give one "
                         f"{what} frame per target frame (or a single image for every frame)")
    if [index for index, _ in chosen] != clip.indices:
        raise InputError(f"the {what} {source} does not have the target's frames {clip.indices[0]}..{clip.indices[-1]}; "
                         f"give one {what} frame per target frame")
    maps = []
    for index, array in chosen:
        maps.append(load_map(array, height, width, f"{what} frame {index} of {source}"))
    return maps


def selected(items: Sequence[Any] | Any, index: int) -> Any:
    """The per-frame item ``index`` of a list, or the single item shared by every frame."""
    return items[index] if isinstance(items, list) else items
