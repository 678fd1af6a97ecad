"""Video targets: reading clips, the temporal machinery, the frame-by-frame fit and its run
folder, resuming an interrupted video fit, and ``diffbmp fit`` on a video."""

from __future__ import annotations

import csv
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import diffbmp
import diffbmp.video.sequence as sequence_module
from diffbmp.cli import main
from diffbmp.errors import ConfigError, InputError
from diffbmp.params import PrimitiveParams
from diffbmp.primitives import TextureBank
from diffbmp.scene import Scene
from diffbmp.video import (
    FrameSelection,
    TemporalCosts,
    VideoResult,
    demo_frames,
    flicker,
    footprint_sums,
    load_clip,
    make_demo_clip,
    mean_flicker,
    natural_key,
    optical_flow,
    penalty_weights,
    static_pixels,
    temporal_loss,
    video_kind,
    warp,
)
from diffbmp.video.carry import carry_over, flow_shift, moving_content
from diffbmp.video.flow import sample
from diffbmp.video.temporal import change_map, hold_loss, hold_map
from scenes import RAW, assert_same_scene
from ffmpeg_check import HAVE_FFMPEG, needs_ffmpeg


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def fail_on_call(function, call: int, error: BaseException):
    """A stand-in for ``function`` that raises ``error`` on its ``call``-th call (1-based)."""
    calls = {"n": 0}

    def stand_in(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == call:
            raise error
        return function(*args, **kwargs)

    return stand_in


PRIMITIVE_RAW = RAW[:-1]
#: The columns of frames.csv and log.csv as docs/video.md and diffbmp.video.outputs document them.
FRAME_COLUMNS = ["frame", "source_frame", "psnr", "ssim", "mse", "flicker", "steps", "loss", "moved", "optimised", "seconds"]
STEP_COLUMNS = ["frame", "step", "loss", "psnr", "n", "blur", "seconds"]
#: A fit small enough to be a formality (for errors and run-folder bookkeeping).
TINY = dict(n=12, steps=6, size=24, seed=0, quiet=True, video={"steps_per_frame": 3, "mp4": False, "gif": False})


def frames_of(clip) -> np.ndarray:
    """The clip's frames as float [T, H, W, 3]."""
    return torch.stack([frame.rgb for frame in clip.frames]).numpy()


def nearest_frames(decoded: np.ndarray, reference: np.ndarray) -> list[int]:
    """For each decoded frame, the index of the reference frame it is closest to."""
    return [int(np.argmin([np.abs(frame - other).mean() for other in reference])) for frame in decoded]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def csv_header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        return next(csv.reader(handle))


# ============================================================================= reading clips
def test_demo_spec_loads_the_generated_frames():
    clip = load_clip("demo:moving_disc:frames=6", size=32)
    assert (len(clip), clip.height, clip.width) == (6, 24, 32)
    assert clip.kind == "demo" and clip.indices == list(range(6)) and clip.total == 6 and clip.fps == 12.0
    expected = demo_frames("moving_disc", frames=6, size=32).astype(np.float64) / 255.0
    np.testing.assert_allclose(frames_of(clip), expected, atol=1e-6)
    # The disc moves from frame to frame: the order of the frames is meaningful.
    assert all(np.abs(expected[t] - expected[t + 1]).max() > 0.3 for t in range(5))
    assert not clip.has_alpha
    # Without a frame count, a demo clip has the documented default of 24 frames.
    assert len(load_clip("demo:moving_disc", size=16)) == 24


def test_demo_frames_are_static_except_for_the_disc():
    pixels = demo_frames(frames=3, size=40)
    assert pixels.dtype == np.uint8 and pixels.shape == (3, 30, 40, 3)
    changed = (pixels[1] != pixels[0]).any(axis=-1)
    assert 0.02 < changed.mean() < 0.3  # the disc (and where it was), nothing else
    assert not changed[:, :3].any() and not changed[:, -3:].any()  # the far left and right stay put


def test_animated_gif_loads_every_frame_in_order(tmp_path):
    path = make_demo_clip(tmp_path / "clip.gif", frames=5, size=32)
    assert video_kind(path) == "gif"
    clip = load_clip(path, size=None)
    assert (len(clip), clip.height, clip.width) == (5, 24, 32)
    assert clip.kind == "gif" and clip.indices == [0, 1, 2, 3, 4] and clip.total == 5 and clip.source_size == (24, 32)
    assert clip.fps == pytest.approx(12.0, rel=0.1)  # GIF durations are whole centiseconds
    expected = demo_frames(frames=5, size=32).astype(np.float64) / 255.0
    decoded = frames_of(clip)
    for t in range(5):
        assert np.abs(decoded[t] - expected[t]).mean() < 0.02, t  # a GIF's palette is close, not exact
    assert nearest_frames(decoded, expected) == [0, 1, 2, 3, 4]


@needs_ffmpeg
def test_mp4_loads_every_frame_in_order(tmp_path):
    path = make_demo_clip(tmp_path / "clip.mp4", frames=5, size=32)
    assert video_kind(path) == "video"
    clip = load_clip(path, size=None)
    assert (len(clip), clip.height, clip.width) == (5, 24, 32)
    assert clip.kind == "video" and clip.indices == [0, 1, 2, 3, 4] and clip.total == 5
    assert clip.fps == pytest.approx(12.0, rel=0.01)
    expected = demo_frames(frames=5, size=32).astype(np.float64) / 255.0
    decoded = frames_of(clip)
    for t in range(5):
        assert np.abs(decoded[t] - expected[t]).mean() < 0.03, t  # H.264 is lossy
    assert nearest_frames(decoded, expected) == [0, 1, 2, 3, 4]
    # Resized onto the fitting canvas like a still target (longer side = size).
    small = load_clip(path, size=16)
    assert (small.height, small.width) == (12, 16) and small.source_size == (24, 32)


def test_folder_of_frames_is_sorted_naturally(tmp_path):
    folder = tmp_path / "shots"
    folder.mkdir()
    numbers = [1, 2, 9, 10, 11, 100]
    # Written in shuffled order; lexically frame10 < frame100 < frame11 < frame2 < frame9.
    shuffled = numbers[:]
    random.Random(0).shuffle(shuffled)
    for number in shuffled:
        pixels = np.full((6, 8, 3), number, np.uint8)
        pixels[0, 0] = (255, 0, 0)
        Image.fromarray(pixels).save(folder / f"frame{number}.png")
    (folder / "notes.txt").write_text("not a frame")
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(folder / ".hidden.png")
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".png" and not p.name.startswith("."))[:3] == [
        "frame1.png", "frame10.png", "frame100.png"]  # the order a plain sort would give
    assert video_kind(folder) == "folder"
    clip = load_clip(folder, size=None)
    assert clip.kind == "folder" and clip.fps is None and clip.name == "shots"
    assert (len(clip), clip.height, clip.width) == (6, 6, 8)
    values = [round(float(frame.rgb[3, 3, 1]) * 255) for frame in clip.frames]
    assert values == numbers
    assert [frame.source.endswith(f"frame {i}") for i, frame in enumerate(clip.frames)] == [True] * 6


def test_natural_key_orders_numbers_by_value():
    names = ["f10.png", "F2.png", "f1.png", "f100.png", "f9b.png", "f9a.png"]
    assert sorted(names, key=natural_key) == ["f1.png", "F2.png", "f9a.png", "f9b.png", "f10.png", "f100.png"]


def test_folder_written_by_make_demo_clip_is_lossless(tmp_path):
    folder = make_demo_clip(tmp_path / "frames", frames=4, size=24)
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:05d}.png" for i in range(4)]
    clip = load_clip(folder, size=None)
    np.testing.assert_allclose(frames_of(clip), demo_frames(frames=4, size=24) / 255.0, atol=1e-6)


def test_array_and_list_targets():
    pixels = demo_frames(frames=4, size=24)
    expected = pixels.astype(np.float64) / 255.0
    from_array = load_clip(pixels, size=None)
    assert from_array.kind == "array" and len(from_array) == 4 and (from_array.height, from_array.width) == (18, 24)
    np.testing.assert_allclose(frames_of(from_array), expected, atol=1e-6)
    from_tensor = load_clip(torch.from_numpy(expected).float(), size=None)
    np.testing.assert_allclose(frames_of(from_tensor), expected, atol=1e-6)
    images = [Image.fromarray(frame) for frame in pixels]
    from_list = load_clip(images, size=None)
    assert from_list.kind == "array" and from_list.indices == [0, 1, 2, 3]
    np.testing.assert_allclose(frames_of(from_list), expected, atol=1e-6)
    # A list of greyscale frames becomes RGB frames.
    grey = load_clip([frame.mean(axis=-1).astype(np.uint8) for frame in pixels], size=None)
    assert frames_of(grey).shape == (4, 18, 24, 3)


def test_a_three_dimensional_array_is_refused_with_a_short_clear_message():
    # [T, H, W] cannot be told from an image [H, W, C]; greyscale clips are [T, H, W, 1].
    grey = demo_frames(frames=4, size=24).mean(axis=-1).astype(np.uint8)
    with pytest.raises(InputError, match=r"shape \(4, 18, 24\) is not a video target.*\[T, H, W, 1\]") as caught:
        load_clip(grey, size=None)
    assert len(str(caught.value)) < 400  # names the shape, does not print the array
    clip = load_clip(grey[..., None], size=None)
    assert len(clip) == 4 and (clip.height, clip.width) == (18, 24)


def test_skimage_animation_loads_as_a_gif():
    import imageio.v3 as iio
    import skimage.data

    clip = load_clip("skimage:no_time_for_that_tiny", size=None)
    assert clip.kind == "gif" and len(clip) == 24 and clip.total == 24
    assert (clip.height, clip.width) == (25, 14)
    reference = np.stack(list(iio.imiter(Path(skimage.data.data_dir) / "no_time_for_that_tiny.gif")))[..., :3] / 255.0
    np.testing.assert_allclose(frames_of(clip), reference, atol=1e-6)
    assert len(set(nearest_frames(frames_of(clip), reference))) > 12  # an animation, not one frame repeated
    resized = load_clip("skimage:no_time_for_that_tiny.gif", size=50)
    assert len(resized) == 24 and (resized.height, resized.width) == (50, 28)


def test_frame_selection_picks_the_right_source_frames():
    expected = demo_frames(frames=10, size=24) / 255.0
    spec = "demo:moving_disc:frames=10"
    clip = load_clip(spec, size=24, selection=FrameSelection(start=2, stop=9, step=3))
    assert clip.indices == [2, 5, 8] and clip.total is None  # reading stopped at video.stop
    np.testing.assert_allclose(frames_of(clip), expected[[2, 5, 8]], atol=1e-6)
    limited = load_clip(spec, size=24, selection=FrameSelection(start=1, step=2, max_frames=3))
    assert limited.indices == [1, 3, 5]
    assert limited.total is None  # reading stopped after the last selected frame
    np.testing.assert_allclose(frames_of(limited), expected[[1, 3, 5]], atol=1e-6)
    counted = load_clip(spec, size=24, selection=FrameSelection(start=1, step=2, max_frames=3), count_all=True)
    assert counted.indices == [1, 3, 5] and counted.total == 10
    assert load_clip(spec, size=24, selection=FrameSelection(stop=3)).indices == [0, 1, 2]
    assert load_clip(spec, size=24, selection=FrameSelection(start=7)).indices == [7, 8, 9]


def test_frame_selection_from_the_fit_options():
    result = diffbmp.fit_video("demo:moving_disc:frames=8", ["circle"], **{
        **TINY, "video": {**TINY["video"], "start": 1, "step": 3, "max_frames": 2}})
    assert result.clip.indices == [1, 4]
    assert [row["source_frame"] for row in result.frames] == [1, 4] and [row["frame"] for row in result.frames] == [0, 1]
    np.testing.assert_allclose(frames_of(result.clip), demo_frames(frames=8, size=24)[[1, 4]] / 255.0, atol=1e-6)


# ============================================================================= video_kind
def test_video_kind_tells_videos_from_still_images(tmp_path):
    still = tmp_path / "still.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(still)
    single = tmp_path / "single.gif"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(single)
    animated = make_demo_clip(tmp_path / "anim.gif", frames=3, size=16)
    frames = make_demo_clip(tmp_path / "frames", frames=2, size=16)
    assert video_kind(still) is None
    assert video_kind(str(still)) is None
    assert video_kind(single) is None
    assert video_kind("skimage:astronaut") is None
    assert video_kind(np.zeros((8, 8, 3))) is None  # one image
    assert video_kind(animated) == "gif" and video_kind(str(animated)) == "gif"
    assert video_kind(frames) == "folder"
    assert video_kind(tmp_path / "clip.mp4") == "video"  # by its suffix, even before it exists
    assert video_kind(tmp_path / "CLIP.MOV") == "video"
    assert video_kind("demo:moving_disc") == "demo"
    assert video_kind("skimage:no_time_for_that_tiny") == "gif"
    assert video_kind("skimage:no_time_for_that_tiny.gif") == "gif"
    assert video_kind(np.zeros((2, 8, 8, 3))) == "array"
    assert video_kind(torch.zeros(2, 8, 8, 3)) == "array"
    assert video_kind([np.zeros((8, 8, 3)), np.zeros((8, 8, 3))]) == "array"
    assert video_kind([]) is None


def test_fit_dispatches_video_targets_to_the_video_fit():
    result = diffbmp.fit("demo:moving_disc:frames=2", ["circle"], **TINY)
    assert isinstance(result, VideoResult) and len(result.scenes) == 2 and result.completed
    images = [Image.fromarray(frame) for frame in demo_frames(frames=2, size=24)]
    from_list = diffbmp.fit(images, ["circle"], **TINY)
    assert isinstance(from_list, VideoResult) and len(from_list.scenes) == 2
    # The same frames give the same fit whatever form they come in.
    for a, b in zip(result.scenes, from_list.scenes):
        assert_same_scene(a, b)


# ============================================================================= errors
@needs_ffmpeg
def test_corrupt_video_is_an_input_error(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="cannot read") as caught:
        load_clip(path)
    assert "x.mp4" in str(caught.value)
    with pytest.raises(InputError, match="x.mp4"):
        diffbmp.fit_video(path, ["circle"], **TINY)


def test_missing_video_file_is_an_input_error(tmp_path):
    (tmp_path / "holiday.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="does not exist") as caught:
        load_clip(tmp_path / "holliday.mp4")
    message = str(caught.value)
    assert "holliday.mp4" in message and "holiday.mp4" in message.replace("holliday.mp4", "")  # suggests the near name
    with pytest.raises(InputError, match="does not exist"):
        diffbmp.fit_video(tmp_path / "holliday.mp4", ["circle"], **TINY)


def test_empty_folder_is_an_input_error(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(InputError, match="no image files") as caught:
        load_clip(folder)
    assert "empty" in str(caught.value)
    (folder / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="1 other files"):
        diffbmp.fit_video(folder, ["circle"], **TINY)


def test_frames_of_different_sizes_name_the_offending_file(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name, height in (("f1.png", 10), ("f2.png", 10), ("f10.png", 11), ("f3.png", 10)):
        Image.fromarray(np.zeros((height, 12, 3), np.uint8)).save(folder / name)
    with pytest.raises(InputError, match="different sizes") as caught:
        load_clip(folder)
    message = str(caught.value)
    assert "'f10.png' is 12x11" in message and "'f1.png' is 12x10" in message
    assert "f2.png" not in message and "f3.png" not in message


def test_unknown_demo_clip_suggests_the_right_name():
    with pytest.raises(InputError, match="Did you mean 'demo:moving_disc'"):
        load_clip("demo:moving_dsic")
    with pytest.raises(InputError, match="frames=<count>"):
        load_clip("demo:moving_disc:frames=zero")
    with pytest.raises(InputError, match="moving_disk"):
        diffbmp.fit_video("demo:moving_disk", ["circle"], **TINY)


def test_a_selection_that_picks_no_frame_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"it has 4 frames but video.start = 10; choose a start below 4"):
        diffbmp.fit_video("demo:moving_disc:frames=4", ["circle"], out=tmp_path / "run", **{
            **TINY, "video": {**TINY["video"], "start": 10}})
    assert not (tmp_path / "run").exists()
    gif = make_demo_clip(tmp_path / "clip.gif", frames=3, size=16)
    with pytest.raises(ConfigError, match="has 3 frames"):
        load_clip(gif, selection=FrameSelection(start=3))


def test_per_frame_maps_must_match_the_frames(tmp_path):
    clip = "demo:moving_disc:frames=3"  # 24x18 canvas at size 24
    with pytest.raises(InputError, match="has 4 frames but the target demo:moving_disc:frames=3 has 3"):
        diffbmp.fit_video(clip, ["circle"], weight_map=np.ones((4, 18, 24), np.float32), **TINY)
    with pytest.raises(InputError, match="has 2 frames but the target .* has 3"):
        diffbmp.fit_video(clip, ["circle"], mask=np.ones((2, 18, 24, 1), np.float32), **TINY)
    # A folder of maps counts its files.
    maps = make_demo_clip(tmp_path / "maps", frames=2, size=24)
    with pytest.raises(InputError, match="has 2 frames but the target .* has 3"):
        diffbmp.fit_video(clip, ["circle"], weight_map=maps, **TINY)
    # Maps of different sizes within the sequence: the frame that differs is named.
    uneven = [np.ones((18, 24)), np.ones((18, 24)), np.ones((20, 24))]
    with pytest.raises(InputError, match="frame 2 of the mask .* is 24x20 but frame 0 is 24x18"):
        diffbmp.fit_video(clip, ["circle"], mask=uneven, **TINY)
    # Maps whose shape does not fit the target's.
    with pytest.raises(InputError, match="is 24x24 pixels but the target is 24x18"):
        diffbmp.fit_video(clip, ["circle"], weight_map=np.ones((3, 24, 24, 1), np.float32), **TINY)


def test_per_frame_maps_follow_the_frame_selection():
    options = {**TINY, "video": {**TINY["video"], "max_frames": 2}}
    maps = np.ones((5, 18, 24), np.float32)
    maps[:, :, :12] = 0.5
    # One map per source frame: the selection picks the same frames from the maps.
    result = diffbmp.fit_video("demo:moving_disc:frames=5", ["circle"], weight_map=maps, **options)
    assert len(result.scenes) == 2
    # One map per *selected* frame is not enough: the maps are selected like the frames.
    with pytest.raises(InputError, match="has 2 frames but the target .* has 5"):
        diffbmp.fit_video("demo:moving_disc:frames=5", ["circle"], weight_map=maps[:2], **options)
    # A single map applies to every frame.
    single = diffbmp.fit_video("demo:moving_disc:frames=5", ["circle"], weight_map=maps[0], **options)
    assert len(single.scenes) == 2


def test_psd_frames_out_of_range_is_a_config_error(tmp_path):
    for frames in ([3], [-4], [0, 5]):
        with pytest.raises(ConfigError, match=r"video.psd_frames has frame -?\d, but the fit has 3 frames"):
            diffbmp.fit_video("demo:moving_disc:frames=3", ["circle"], out=tmp_path / "run",
                              **{**TINY, "video": {**TINY["video"], "psd_frames": frames}})
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_unknown_video_key_suggests_the_right_one():
    with pytest.raises(ConfigError, match="`video.step_per_frame`; did you mean `steps_per_frame`"):
        diffbmp.fit_video("demo:moving_disc:frames=2", ["circle"], n=8, steps=2, size=24, quiet=True,
                          video={"step_per_frame": 5})
    with pytest.raises(ConfigError, match="temporal.wieght"):
        diffbmp.fit_video("demo:moving_disc:frames=2", ["circle"], n=8, steps=2, size=24, quiet=True,
                          video={"temporal": {"wieght": 1}})


def test_a_still_image_is_not_a_video():
    with pytest.raises(InputError, match="not a video"):
        diffbmp.fit_video("skimage:astronaut", ["circle"], **TINY)
    with pytest.raises(InputError, match="not a video target"):
        load_clip("skimage:astronaut")


# ============================================================================= a whole video fit
def test_video_fit_writes_its_run_folder(tmp_path):
    out = tmp_path / "run"
    result = diffbmp.fit_video("demo:moving_disc:frames=4", ["circle"], n=32, steps=30, size=32, seed=0, quiet=True, out=out,
                               video={"steps_per_frame": 8, "psd_frames": [0, -1]})
    assert isinstance(result, VideoResult) and result.completed
    assert len(result.scenes) == 4 and all(len(scene) == 32 for scene in result.scenes)
    assert (result.clip.height, result.clip.width) == (24, 32)

    # Per-frame metrics.
    rows = result.frames
    assert [row["frame"] for row in rows] == [0, 1, 2, 3] and [row["source_frame"] for row in rows] == [0, 1, 2, 3]
    assert [row["steps"] for row in rows] == [30, 8, 8, 8]
    for row in rows:
        assert math.isfinite(row["psnr"]) and row["psnr"] > 15.0, row
        assert 0 < row["ssim"] <= 1 and row["mse"] > 0
    assert result.psnrs == [row["psnr"] for row in rows]
    assert math.isnan(rows[0]["flicker"])
    assert all(math.isfinite(row["flicker"]) and row["flicker"] >= 0 for row in rows[1:])
    assert result.flicker == pytest.approx(sum(row["flicker"] for row in rows[1:]) / 3)
    assert result.psnr == pytest.approx(sum(row["psnr"] for row in rows) / 4)
    assert len(result.history) == 30 + 3 * 8
    assert [(h["frame"], h["step"]) for h in result.history] == (
        [(0, s) for s in range(1, 31)] + [(f, s) for f in (1, 2, 3) for s in range(1, 9)])

    # The files.
    for name in ("painted.gif", "frames.csv", "psnr.png", "log.csv", "config.yaml", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert result.paths["painted_gif"] == out / "painted.gif" and result.paths["frames_csv"] == out / "frames.csv"
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"scene_{i:05d}.npz" for i in range(4)]
    assert sorted(p.name for p in (out / "painted").iterdir()) == [f"frame_{i:05d}.png" for i in range(4)]
    assert sorted(p.name for p in (out / "psd").iterdir()) == ["frame_00000.psd", "frame_00003.psd"]
    for index, scene in enumerate(result.scenes):
        saved = Scene.load(out / "frames" / f"scene_{index:05d}.npz")
        assert_same_scene(saved, scene)
        assert saved.metadata["frame"] == index
        # The painted PNG is the scene's render.
        painted = np.asarray(Image.open(out / "painted" / f"frame_{index:05d}.png"), dtype=np.float64) / 255.0
        render = scene.render()[0].numpy()
        assert painted.shape == (24, 32, 3) and np.abs(painted - render).max() <= 1.0 / 255.0 + 1e-6
    with Image.open(out / "painted.gif") as gif:
        assert gif.n_frames == 4 and gif.size == (32, 24)
        assert abs(gif.info["duration"] - 1000 / 12) <= 10  # the demo clip's 12 fps
    if HAVE_FFMPEG:
        import imageio.v3 as iio

        assert result.paths["painted_mp4"] == out / "painted.mp4"
        assert iio.imread(out / "painted.mp4", plugin="FFMPEG").shape == (4, 24, 32, 3)
    with Image.open(out / "psnr.png") as plot:
        assert plot.format == "PNG" and plot.size[0] > 100

    from psd_tools import PSDImage

    psd = PSDImage.open(out / "psd" / "frame_00003.psd")
    assert psd.size == (32, 24)
    layers = [layer for layer in psd.descendants() if not layer.is_group()]
    assert len(layers) == len(result.scenes[3]) + 1  # one per primitive and the background

    table = read_csv(out / "frames.csv")
    assert csv_header(out / "frames.csv") == FRAME_COLUMNS
    assert [int(row["frame"]) for row in table] == [0, 1, 2, 3]
    assert table[0]["flicker"] == "nan" and all(math.isfinite(float(row["flicker"])) for row in table[1:])
    assert [float(row["psnr"]) for row in table] == pytest.approx(result.psnrs, abs=1e-3)
    log = read_csv(out / "log.csv")
    assert csv_header(out / "log.csv") == STEP_COLUMNS
    assert [(int(r["frame"]), int(r["step"])) for r in log] == [(h["frame"], h["step"]) for h in result.history]


def test_an_existing_video_run_is_refused_then_forced(tmp_path):
    out = tmp_path / "run"
    spec = "demo:moving_disc:frames=3"
    diffbmp.fit_video(spec, ["circle"], out=out, **{**TINY, "video": {**TINY["video"], "psd_frames": [1]}})
    assert (out / "psd" / "frame_00001.psd").is_file()
    with pytest.raises(ConfigError, match="already holds a run"):
        diffbmp.fit_video(spec, ["circle"], out=out, **TINY)
    forced = diffbmp.fit_video(spec, ["circle"], out=out, force=True, **{**TINY, "video": {**TINY["video"], "max_frames": 2}})
    assert len(forced.scenes) == 2
    # Nothing of the replaced run is left behind.
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["scene_00000.npz", "scene_00001.npz"]
    assert sorted(p.name for p in (out / "painted").iterdir()) == ["frame_00000.png", "frame_00001.png"]
    assert not (out / "psd").exists()
    assert len(read_csv(out / "frames.csv")) == 2


# ============================================================================= resume
RESUMABLE = dict(
    n=24, steps=20, size=32, seed=3, quiet=True,
    minibatch={"crop": 24},                      # random crops every step
    prune={"every": 5, "min_opacity": 0.3},      # pruning and re-seeding in the first frame
    video={"steps_per_frame": 8, "prune_every": 3, "temporal": {"anchor": 0.5}, "mp4": False},  # and in later frames
)
RESUME_CLIP = "demo:moving_disc:frames=4"


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    torch.set_num_threads(1)
    return diffbmp.fit_video(RESUME_CLIP, ["circle"], out=tmp_path_factory.mktemp("straight") / "run", **RESUMABLE)


def check_resumed(resumed: VideoResult, straight: VideoResult, out: Path) -> None:
    assert resumed.completed
    assert len(resumed.scenes) == len(straight.scenes) == 4
    for a, b in zip(straight.scenes, resumed.scenes):
        assert_same_scene(a, b)
    for index, scene in enumerate(straight.scenes):
        assert_same_scene(Scene.load(out / "frames" / f"scene_{index:05d}.npz"), scene)
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in straight.history]
    assert [row["psnr"] for row in resumed.frames] == [row["psnr"] for row in straight.frames]
    assert [int(row["frame"]) for row in read_csv(out / "frames.csv")] == [0, 1, 2, 3]
    log = [(int(r["frame"]), int(r["step"])) for r in read_csv(out / "log.csv")]
    assert log == [(h["frame"], h["step"]) for h in straight.history]
    assert (out / "painted.gif").is_file()


@pytest.mark.parametrize("frame, step", [
    (2, 3),    # in the middle of a later frame
    (1, 1),    # right after a later frame began
    (1, 8),    # on the last step of a later frame, before it was written
    (0, 20),   # on the last step of the first frame
])
def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path, straight_run, frame, step):
    out = tmp_path / "run"

    def interrupt(info):
        assert info.frame is not None
        if info.frame == frame and info.step == step:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, callback=interrupt, **RESUMABLE)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["frame"] == frame and state["fitter"]["step"] == step
    if frame > 0:
        assert [int(row["frame"]) for row in read_csv(out / "frames.csv")] == list(range(frame))
    assert not (out / "painted.gif").exists()
    resumed = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **RESUMABLE)
    check_resumed(resumed, straight_run, out)


def test_stop_crash_and_interrupt_then_resume(tmp_path, straight_run, monkeypatch):
    out = tmp_path / "run"
    # 1. A callback stops the fit on the last step of frame 2: not completed, two frames done.
    stopped = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, callback=lambda info: info.frame == 2 and info.step == 8,
                                **RESUMABLE)
    assert not stopped.completed and len(stopped.scenes) == 2 and "painted_gif" not in stopped.paths
    for a, b in zip(stopped.scenes, straight_run.scenes):
        assert_same_scene(a, b)
    # 2. The resumed run crashes while writing frame 2's painting (after its last step).
    real = sequence_module.write_png
    monkeypatch.setattr(sequence_module, "write_png", fail_on_call(real, 1, RuntimeError("disk full")))
    with pytest.raises(RuntimeError, match="disk full"):
        diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **RESUMABLE)
    monkeypatch.setattr(sequence_module, "write_png", real)
    # 3. Interrupted again in frame 3.

    def interrupt(info):
        if info.frame == 3 and info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, callback=interrupt, **RESUMABLE)
    # 4. The last session finishes: the same result as without any of it.
    resumed = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **RESUMABLE)
    check_resumed(resumed, straight_run, out)
    # Resuming a finished run changes nothing.
    again = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **RESUMABLE)
    assert again.completed
    for a, b in zip(again.scenes, straight_run.scenes):
        assert_same_scene(a, b)


def interrupt_before_frame_two(monkeypatch, clip, out, options: dict) -> None:
    """A video fit of ``clip`` into ``out`` interrupted (Ctrl-C) while frame 2's start is being
    worked out, after frames 0 and 1 were finished."""
    real = sequence_module.carry_over
    monkeypatch.setattr(sequence_module, "carry_over", fail_on_call(real, 2, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        diffbmp.fit_video(clip, ["circle"], out=out, **options)
    monkeypatch.setattr(sequence_module, "carry_over", real)


def test_interrupt_between_frames_resumes_exactly(tmp_path, straight_run, monkeypatch):
    out = tmp_path / "run"
    # Interrupted while frame 2's start is being worked out: frames 0 and 1 are finished.
    interrupt_before_frame_two(monkeypatch, RESUME_CLIP, out, RESUMABLE)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["frame"] == 2 and state["fitter"] is None  # the checkpoint written when frame 1 was finished
    resumed = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **RESUMABLE)
    check_resumed(resumed, straight_run, out)


def test_a_crash_with_periodic_checkpoints_resumes_exactly(tmp_path, monkeypatch):
    options = {**RESUMABLE, "output": {"checkpoint_every": 5}}
    straight = diffbmp.fit_video(RESUME_CLIP, ["circle"], **options)
    out = tmp_path / "run"
    real = sequence_module.write_png
    # Interrupted while writing frame 1's painting, after its last step.
    monkeypatch.setattr(sequence_module, "write_png", fail_on_call(real, 2, KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, **options)
    monkeypatch.setattr(sequence_module, "write_png", real)
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert state["frame"] == 1 and state["fitter"]["step"] == 5  # the periodic checkpoint of frame 1
    resumed = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **options)
    assert resumed.completed
    for a, b in zip(straight.scenes, resumed.scenes):
        assert_same_scene(a, b)
    assert [int(row["frame"]) for row in read_csv(out / "frames.csv")] == [0, 1, 2, 3]


def test_a_constrained_fit_interrupted_between_frames_resumes_exactly(tmp_path, monkeypatch):
    # The previous frame's scene comes back from the checkpoint under the fit's constraints.
    options = {**RESUMABLE, "constraints": {"circle": {"aspect": "keep", "rotation": 30}}}
    straight = diffbmp.fit_video(RESUME_CLIP, ["circle"], **options)
    for scene in straight.scenes:
        scales = scene.params().scales
        assert torch.allclose(scales[:, 0], scales[:, 1], rtol=1e-5)
    out = tmp_path / "run"
    interrupt_before_frame_two(monkeypatch, RESUME_CLIP, out, options)
    resumed = diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **options)
    assert resumed.completed
    for a, b in zip(straight.scenes, resumed.scenes):
        assert_same_scene(a, b)


def test_resuming_with_another_clip_is_refused(tmp_path):
    out = tmp_path / "run"

    def interrupt(info):
        if info.frame == 1 and info.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, callback=interrupt, **TINY)
    with pytest.raises(ConfigError, match="video.max_frames"):
        diffbmp.fit_video(RESUME_CLIP, ["circle"], out=out, resume=True, **{**TINY, "video": {**TINY["video"], "max_frames": 3}})
    with pytest.raises(ConfigError, match="frames=5"):
        diffbmp.fit_video("demo:moving_disc:frames=5", ["circle"], out=out, resume=True, **TINY)
    # Arrays all have the target "<array>": the frames themselves are compared.
    pixels = demo_frames(frames=4, size=24)
    array_out = tmp_path / "array"
    diffbmp.fit_video(pixels, ["circle"], out=array_out, **TINY)
    with pytest.raises(ConfigError, match="4 frames.*3 frames"):
        diffbmp.fit_video(pixels[:3], ["circle"], out=array_out, resume=True, **TINY)


def test_resuming_between_frames_with_other_frames_is_refused(tmp_path, monkeypatch):
    pixels = demo_frames(frames=4, size=24)
    out = tmp_path / "run"
    interrupt_before_frame_two(monkeypatch, pixels, out, TINY)
    with pytest.raises(ConfigError, match="frames differ"):
        diffbmp.fit_video(255 - pixels, ["circle"], out=out, resume=True, **TINY)
    resumed = diffbmp.fit_video(pixels, ["circle"], out=out, resume=True, **TINY)  # the same frames go on
    assert resumed.completed and len(resumed.scenes) == 4


def test_an_image_fits_folder_cannot_be_resumed_as_a_video(tmp_path):
    pixels = demo_frames(frames=3, size=24)
    out = tmp_path / "run"
    stopped = diffbmp.fit(pixels[0], ["circle"], out=out, callback=lambda info: info.step == 3, **TINY)
    assert not stopped.completed and not isinstance(stopped, VideoResult)
    with pytest.raises(ConfigError, match="not a video fit"):
        diffbmp.fit_video(pixels, ["circle"], out=out, resume=True, **TINY)
    # And a video's folder cannot be resumed as an image fit.
    video_out = tmp_path / "video"
    diffbmp.fit_video(pixels, ["circle"], out=video_out, callback=lambda info: info.frame == 1 and info.step == 1, **TINY)
    with pytest.raises(ConfigError):
        diffbmp.fit(pixels[0], ["circle"], out=video_out, resume=True, **TINY)


# ============================================================================= temporal machinery
def smooth_pattern(height: int, width: int, dx: float = 0.0, dy: float = 0.0) -> torch.Tensor:
    """A smooth RGB texture, moved by (dx, dy) pixels."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    x, y = x - dx, y - dy
    value = 0.5 + 0.2 * np.sin(x / 4.0) * np.cos(y / 5.0) + 0.15 * np.sin((x + y) / 7.0) + 0.1 * np.cos(x / 3.1 - y / 6.3)
    return torch.from_numpy(np.stack([value, 0.8 * value + 0.1, 1.0 - value], axis=-1).astype(np.float32))


@pytest.mark.parametrize("method", ["farneback", "dis"])
@pytest.mark.parametrize("shift", [(3.0, 2.0), (-2.0, 1.0), (1.5, -2.5)])
def test_optical_flow_recovers_a_translation(method, shift):
    dx, dy = shift
    previous, current = smooth_pattern(64, 64), smooth_pattern(64, 64, dx, dy)
    flow = optical_flow(previous, current, method)
    assert flow.shape == (64, 64, 2) and flow.dtype == torch.float32
    interior = flow[12:-12, 12:-12].reshape(-1, 2)
    error = (interior - torch.tensor([dx, dy])).norm(dim=1)
    assert float(error.median()) < 0.25
    assert float(error.quantile(0.9)) < 0.6
    assert (interior.mean(dim=0) - torch.tensor([dx, dy])).abs().max() < 0.2
    # No motion: no flow (Farneback makes up some at the canvas's edge).
    assert float(optical_flow(previous, previous, method)[12:-12, 12:-12].abs().max()) < 1e-3


def test_optical_flow_rejects_an_unknown_method():
    image = smooth_pattern(16, 16)
    with pytest.raises(ConfigError, match="farneback"):
        optical_flow(image, image, "lucas")


def test_warp_with_an_integer_flow_shifts_exactly():
    image = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(20, 24, 2)
    flow[..., 0], flow[..., 1] = 2.0, -3.0
    moved = warp(image, flow)  # moved(p) = image(p + flow)
    assert moved.shape == image.shape and moved.dtype == image.dtype
    assert torch.equal(moved[3:, :-2], image[:-3, 2:])
    half = torch.zeros(20, 24, 2)
    half[..., 0] = 0.5
    np.testing.assert_allclose(warp(image, half)[:, :-1].numpy(), ((image[:, :-1] + image[:, 1:]) / 2).numpy(), atol=1e-5)
    assert torch.equal(warp(image, torch.zeros(20, 24, 2)), image)


def test_change_map_follows_the_flow():
    previous = smooth_pattern(24, 32)
    backward = torch.zeros(24, 32, 2)
    backward[..., 0], backward[..., 1] = -2.0, -1.0
    current = warp(previous, backward)  # the content moved right by 2 and down by 1
    assert float(change_map(previous, current).max()) > 0.05
    assert float(change_map(previous, current, backward).abs().max()) < 1e-6
    assert change_map(previous, current).shape == (24, 32)


def test_hold_loss():
    generator = torch.Generator().manual_seed(1)
    reference = torch.rand(8, 10, 3, generator=generator)
    hold = torch.ones(8, 10)
    assert float(hold_loss(reference.clone(), reference, hold)) == 0.0
    image = reference + 0.1
    assert float(hold_loss(image, reference, hold)) == pytest.approx(0.01, rel=1e-4)
    assert float(hold_loss(image, reference, 0.5 * hold)) == pytest.approx(0.005, rel=1e-4)
    left = hold.clone()
    left[:, 5:] = 0
    assert float(hold_loss(image, reference, left)) == pytest.approx(0.005, rel=1e-4)
    # A crop window (y0, x0, h, w) of the canvas.
    varying = torch.rand(8, 10, generator=generator)
    window = (2, 3, 4, 5)
    crop = reference[2:6, 3:8]
    assert float(hold_loss(crop.clone(), reference, varying, window)) == 0.0
    assert float(hold_loss(crop.clone(), reference, varying, (0, 0, 4, 5))) > 0  # another window differs
    expected = float((varying[2:6, 3:8] * 0.04).mean())
    assert float(hold_loss(crop + 0.2, reference, varying, window)) == pytest.approx(expected, rel=1e-4)
    # The gradient reaches the image, where the hold is not zero.
    painted = (reference + 0.1).requires_grad_(True)
    hold_loss(painted, reference, left).backward()
    grad = painted.grad
    assert float(grad[:, 5:].abs().max()) == 0.0
    np.testing.assert_allclose(grad[:, :5].numpy(), np.full((8, 5, 3), 2 * 0.1 / 3 / 80), rtol=1e-4)


def test_hold_map():
    values = hold_map(torch.tensor([0.0, 0.03, 0.3, 1.0]), 0.03)
    np.testing.assert_allclose(values.numpy(), [1.0, 0.5, 1 / 101, 1 / (1 + (1 / 0.03) ** 2)], rtol=1e-5)
    assert float(hold_map(torch.tensor(0.1), 0.1)) == pytest.approx(0.5)


def test_flicker_metric():
    target_a = torch.full((10, 12, 3), 0.5)
    target_b = target_a.clone()
    target_b[2:5, 3:7] = 0.9  # something moved there
    painted = torch.rand(10, 12, 3, generator=torch.Generator().manual_seed(2)) * 0.5 + 0.25
    assert flicker(painted, painted.clone(), target_a, target_b) == 0.0
    moving_only = painted.clone()
    moving_only[2:5, 3:7] = 1.0
    assert flicker(painted, moving_only, target_a, target_b) == 0.0
    everywhere = painted + 10.0 / 255.0
    assert flicker(painted, everywhere, target_a, target_b) == pytest.approx(10.0, rel=1e-4)
    # Only the static pixels count: a change at half of them is half the flicker.
    half = painted.clone()
    half[:, :6] += 10.0 / 255.0
    half[2:5, 3:7] = painted[2:5, 3:7]
    static = static_pixels(target_a, target_b)
    assert int(static.sum()) == 120 - 12
    assert flicker(painted, half, target_a, target_b) == pytest.approx(10.0 * int(static[:, :6].sum()) / 108, rel=1e-4)
    # A change below one grey level is static; one above is not.
    assert bool(static_pixels(target_a, target_a + 0.5 / 255).all())
    assert not bool(static_pixels(target_a, target_a + 2 / 255).any())
    assert math.isnan(flicker(painted, everywhere, target_a, target_a + 0.2))
    assert mean_flicker([float("nan"), 2.0, 4.0]) == 3.0
    assert math.isnan(mean_flicker([float("nan")]))


def _params(count: int, seed: int = 0) -> PrimitiveParams:
    generator = torch.Generator().manual_seed(seed)
    return PrimitiveParams(
        means=torch.rand(count, 2, generator=generator) * 20,
        rotations=torch.rand(count, generator=generator) * 3,
        scales=torch.rand(count, 2, generator=generator) * 3 + 1,
        colors=torch.rand(count, 3, generator=generator),
        opacities=torch.rand(count, generator=generator),
        shape_ids=torch.zeros(count, dtype=torch.long),
    )


def test_temporal_loss_anchors_each_parameter():
    anchor = _params(4)
    weights = torch.tensor([1.0, 2.0, 0.5, 0.0])
    costs = TemporalCosts()
    clone = lambda: anchor.map(lambda t: t.clone())  # noqa: E731

    def loss_of(params, costs=costs):
        return float(temporal_loss(params, anchor, weights, costs))

    assert loss_of(clone()) == 0.0
    moved = clone()
    moved.means[1] += torch.tensor([3.0, 4.0])
    assert loss_of(moved) == pytest.approx(2.0 * 25.0, rel=1e-5)
    assert loss_of(moved, TemporalCosts(means=3.0)) == pytest.approx(3 * 2.0 * 25.0, rel=1e-5)
    grown = clone()
    grown.scales[0, 0] += 1.0
    assert loss_of(grown) == pytest.approx(1.0, rel=1e-5)
    tinted = clone()
    tinted.colors[2, 1] += 0.1
    assert loss_of(tinted) == pytest.approx(0.5 * 100 * 0.01, rel=1e-4)
    faded = clone()
    faded.opacities[0] -= 0.2
    assert loss_of(faded) == pytest.approx(100 * 0.04, rel=1e-4)
    # A primitive with weight 0 is free to change.
    free = clone()
    free.means[3] += 10.0
    free.colors[3] = 1 - free.colors[3]
    assert loss_of(free) == 0.0
    # Rotations: the change wraps (a full turn costs nothing), measured as arc length at the larger half-size.
    reach = float(anchor.scales[1].max())
    turned = clone()
    turned.rotations[1] += 0.1
    assert loss_of(turned) == pytest.approx(2.0 * (0.1 * reach) ** 2, rel=1e-3)
    full = clone()
    full.rotations[1] += 2 * math.pi
    assert loss_of(full) < 1e-8
    back = clone()
    back.rotations[1] += 2 * math.pi - 0.1  # the same as turning back by 0.1
    assert loss_of(back) == pytest.approx(loss_of(turned), rel=1e-3)
    # The gradient reaches the parameters, never the anchor.
    live = moved.map(lambda t: t.clone().requires_grad_(t.is_floating_point()))
    anchor_means = anchor.means.clone().requires_grad_(True)
    held = PrimitiveParams(anchor_means, anchor.rotations, anchor.scales, anchor.colors, anchor.opacities, anchor.shape_ids)
    temporal_loss(live, held, weights, costs).backward()
    np.testing.assert_allclose(live.means.grad[1].numpy(), [2 * 2.0 * 3.0, 2 * 2.0 * 4.0], rtol=1e-5)
    assert float(live.means.grad[[0, 2, 3]].abs().max()) == 0.0
    assert anchor_means.grad is None


def test_penalty_weights():
    weights = penalty_weights(torch.tensor([0.0, 10.0, 10.0]), torch.tensor([0.0, 0.0, 0.03]), 10, 10, 2.0, 0.03)
    np.testing.assert_allclose(weights.numpy(), [0.02, 0.2, 0.1], rtol=1e-5)


def test_footprint_sums_count_visible_pixels():
    bank = TextureBank.from_names(["circle"])
    params = PrimitiveParams(
        means=torch.tensor([[8.0, 10.0], [9.0, 10.0], [24.0, 10.0]]),
        rotations=torch.zeros(3),
        scales=torch.tensor([[3.0, 3.0], [5.0, 5.0], [3.0, 3.0]]),
        colors=torch.rand(3, 3),
        opacities=torch.tensor([1.0, 1.0, 0.5]),
        shape_ids=torch.zeros(3, dtype=torch.long),
    )
    scene = Scene.from_params(params, bank, 20, 32)
    left = torch.zeros(20, 32, 1)
    left[:, :16] = 1.0
    visible, sums = footprint_sums(scene, left)
    _, alpha = scene.render(background=False)
    assert float(visible.sum()) == pytest.approx(float(alpha.sum()), rel=1e-3)  # the visible shares add up to the coverage
    assert float(visible[0]) < 0.05 * float(visible[1])  # the bottom circle is hidden under the larger one on top
    _, alone = scene.select(torch.tensor([2])).render(background=False)
    assert float(visible[2]) == pytest.approx(float(alone.sum()), rel=1e-3)
    assert float(sums[1, 0]) == pytest.approx(float(visible[1]), rel=1e-3)  # wholly in the left half
    assert float(sums[2, 0]) == pytest.approx(0.0, abs=1e-4)  # wholly in the right half


def _disc_frames(index: int) -> tuple[torch.Tensor, torch.Tensor, tuple[float, float, float], tuple[float, float]]:
    """Frames ``index`` and ``index + 1`` of demo:moving_disc (128x96) as floats, the disc
    (cx, cy, radius) in the first of them, and the disc's motion (dx, dy) between them."""
    frames = torch.from_numpy(demo_frames("moving_disc", 24, 128)).float() / 255.0
    height, width = frames.shape[1:3]

    def centre(t: int) -> tuple[float, float]:
        phase = t / 23
        return (0.2 + 0.6 * phase) * width, (0.5 - 0.18 * math.sin(2 * math.pi * phase)) * height

    (cx, cy), (nx, ny) = centre(index), centre(index + 1)
    return frames[index], frames[index + 1], (cx, cy, 0.16 * height), (nx - cx, ny - cy)


def _distance_to(cx: float, cy: float, height: int, width: int) -> torch.Tensor:
    y, x = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return ((x - cx) ** 2 + (y - cy) ** 2).sqrt()


@pytest.mark.parametrize("index", [0, 10, 20])
@pytest.mark.parametrize("method, leak", [("farneback", 0.01), ("dis", 0.1)])
def test_moving_content_is_the_object_not_the_background_around_it(method, leak, index):
    previous, current, (cx, cy, radius), _ = _disc_frames(index)
    forward, backward = optical_flow(previous, current, method), optical_flow(current, previous, method)
    moving = moving_content(previous, current, forward, backward)
    assert moving.shape == (96, 128) and set(torch.unique(moving).tolist()) <= {0.0, 1.0}
    distance = _distance_to(cx, cy, 96, 128)
    # Most of the flat-coloured disc moves, flat inside included ...
    assert float(moving[distance < radius - 2].mean()) > 0.7
    # ... and (almost) none of the gradient around it does, though the flow bleeds into it.
    # (DIS's flow bleeds further, and a sub-level gradient cannot tell a small flow apart.)
    ring = (distance > radius + 1.5) & (distance < radius + 12)
    assert float(forward[ring].norm(dim=-1).max()) > 1.0  # the bleeding this guards against
    assert float(moving[ring].mean()) <= leak
    # Nothing moves between two equal frames.
    still_flow = optical_flow(previous, previous, method)
    assert float(moving_content(previous, previous, still_flow, still_flow).max()) == 0.0


@pytest.mark.parametrize("method", ["farneback", "dis"])
def test_flow_shift_carries_the_object_and_leaves_the_background(method):
    previous, current, (cx, cy, radius), (dx, dy) = _disc_frames(3)
    forward, backward = optical_flow(previous, current, method), optical_flow(current, previous, method)
    moving = moving_content(previous, current, forward, backward)
    colours = torch.tensor([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0.98, 0.92, 0.55], [0.98, 0.92, 0.55]])
    params = PrimitiveParams(
        # A large background circle under the disc, a small one beside it, and two circles
        # painting the disc (drawn last: on top).
        means=torch.tensor([[cx + 10.0, cy], [cx + radius + 8.0, cy + 4.0], [cx - 4.0, cy], [cx + 5.0, cy - 3.0]]),
        rotations=torch.zeros(4),
        scales=torch.tensor([[30.0, 30.0], [5.0, 5.0], [9.0, 9.0], [8.0, 8.0]]),
        colors=colours,
        opacities=torch.ones(4),
        shape_ids=torch.zeros(4, dtype=torch.long),
    )
    scene = Scene.from_params(params, TextureBank.from_names(["circle"]), 96, 128)
    shift = flow_shift(scene, forward, moving)
    assert torch.equal(shift[:2], torch.zeros(2, 2))  # the background stays exactly where it was
    for row in (2, 3):
        assert float((shift[row] - torch.tensor([dx, dy])).norm()) < 0.75, (row, shift[row].tolist(), (dx, dy))
    with pytest.raises(ValueError, match="moving content"):
        flow_shift(scene, forward)
    np.testing.assert_allclose(flow_shift(scene, forward, at="centre").numpy(),
                               sample(forward, params.means).numpy(), rtol=1e-6)


# ============================================================================= temporal coherence
def test_the_temporal_loss_reduces_flicker():
    def far_from_motion_flicker(result: VideoResult) -> float:
        """Flicker over the static pixels more than 6 px from any change of the target."""
        images = [scene.render()[0] for scene in result.scenes]
        targets = [frame.rgb for frame in result.clip.frames]
        changes = []
        for t in range(1, len(images)):
            moving = ((targets[t] - targets[t - 1]).abs().amax(dim=-1) > 0).float()
            near = torch.nn.functional.max_pool2d(moving[None, None], 13, stride=1, padding=6)[0, 0] > 0
            changes.append((images[t] - images[t - 1]).abs().mean(dim=-1)[~near] * 255.0)
        return float(torch.cat(changes).mean())

    free, held = [], []
    for seed in (0, 1):
        options = dict(n=48, steps=120, size=48, seed=seed, quiet=True)
        video = {"steps_per_frame": 30, "mp4": False, "gif": False}
        clip = "demo:moving_disc:frames=6"
        free.append(diffbmp.fit_video(clip, ["circle"], video={**video, "temporal": {"weight": 0}}, **options))
        held.append(diffbmp.fit_video(clip, ["circle"], video=video, **options))
    # Over 16 seeds the default settings cut the mean flicker by 11-33 % (mean 25 %) and the
    # flicker away from the moving disc by 33-56 % (mean 46 %); PSNR changed by -0.6 to +1.0 dB.
    mean_free = sum(r.flicker for r in free) / 2
    mean_held = sum(r.flicker for r in held) / 2
    assert mean_held < 0.88 * mean_free, (mean_held, mean_free)
    far_free = sum(far_from_motion_flicker(r) for r in free) / 2
    far_held = sum(far_from_motion_flicker(r) for r in held) / 2
    assert far_held < 0.8 * far_free, (far_held, far_free)
    for a, b in zip(free, held):
        assert b.psnr > a.psnr - 2.0


def test_a_still_clip_is_refined_gently():
    # Refining an already good painting of an unchanged frame must not jolt it: primitives
    # over still content learn at video.still_lr of the rates (1: the full rates).
    still = np.repeat(demo_frames("moving_disc", 1, 48), 4, axis=0)
    runs = {}
    for still_lr in (0.3, 1.0):
        runs[still_lr] = diffbmp.fit_video(still, ["circle"], n=48, steps=150, seed=0, quiet=True,
                                           video={"steps_per_frame": 30, "mp4": False, "gif": False, "still_lr": still_lr})
    gentle, full = ([row["flicker"] for row in runs[lr].frames[1:]] for lr in (0.3, 1.0))
    assert max(gentle) < 0.5 * max(full), (gentle, full)
    assert sum(gentle) < 0.6 * sum(full), (gentle, full)
    psnrs = runs[0.3].psnrs
    assert min(psnrs[1:]) > psnrs[0] - 0.1, psnrs


def test_carry_over_slows_primitives_over_still_content():
    previous, current, (cx, cy, radius), _ = _disc_frames(3)
    params = PrimitiveParams(
        means=torch.tensor([[cx, cy], [12.0, 80.0]]),  # on the disc; far from it, on still content
        rotations=torch.zeros(2),
        scales=torch.tensor([[radius - 2, radius - 2], [6.0, 6.0]]),
        colors=torch.tensor([[0.98, 0.92, 0.55], [0.2, 0.3, 0.5]]),
        opacities=torch.ones(2),
        shape_ids=torch.zeros(2, dtype=torch.long),
    )
    scene = Scene.from_params(params, TextureBank.from_names(["circle"]), 96, 128)
    painted = scene.render(blur=0.0)[0]
    for still_lr, flow in ((0.3, "none"), (0.5, "none"), (0.3, "farneback")):
        video = diffbmp.config.VideoConfig(still_lr=still_lr, flow=flow)
        start = carry_over(scene, previous, current, painted, video, margin=10.0)
        assert float(start.lr_scale[1]) == pytest.approx(still_lr, abs=1e-3)  # nothing changed under it
        if flow == "none":
            assert float(start.lr_scale[0]) > 0.7  # the disc moved out from under part of it
        else:
            assert float(start.shift[0].norm()) > 2.0 and float(start.shift[1].norm()) == 0.0


def test_only_changed_freezes_primitives_over_static_regions():
    def run(only_changed: bool) -> VideoResult:
        return diffbmp.fit_video("demo:moving_disc:frames=4", ["circle"], n=48, steps=40, size=48, seed=1, quiet=True,
                                 video={"steps_per_frame": 10, "only_changed": only_changed, "flow": "none",
                                        "mp4": False, "gif": False})

    def split(result: VideoResult, t: int) -> tuple[list[bool], list[bool]]:
        """Whether each primitive kept its parameters from frame t-1 to t, for those whose
        footprint avoids every pixel the target changed at (far) and the others (near)."""
        previous, current = result.scenes[t - 1], result.scenes[t]
        targets = [frame.rgb for frame in result.clip.frames]
        changed = ((targets[t] - targets[t - 1]).abs().amax(dim=-1) > 0).float()
        changed = torch.nn.functional.max_pool2d(changed[None, None], 3, stride=1, padding=1)[0, 0] > 0
        far, near = [], []
        for i in range(len(previous)):
            _, alpha = previous.select(torch.tensor([i])).render(background=False)
            kept = all(torch.equal(getattr(previous, name)[i], getattr(current, name)[i]) for name in PRIMITIVE_RAW)
            (near if bool((changed & (alpha > 1e-4)).any()) else far).append(kept)
        return far, near

    frozen = run(True)
    for t in (1, 2, 3):
        far, near = split(frozen, t)
        assert len(far) >= 5, t  # enough primitives away from the disc for the test to mean something
        assert all(far), t
        assert not all(near), t  # the primitives painting the disc were optimised
        assert frozen.frames[t]["optimised"] < 1.0
    free = run(False)
    far, _ = split(free, 2)
    assert len(far) >= 5 and not any(far)  # without only_changed the same kind of primitives all move a little
    assert free.frames[2]["optimised"] == 1.0


# ============================================================================= the CLI
def test_cli_fits_a_video_config(tmp_path, capsys):
    config = tmp_path / "clip.yaml"
    config.write_text(
        "target: demo:moving_disc:frames=3\n"
        "size: 24\n"
        "n: 12\n"
        "steps: 8\n"
        "primitives: [circle]\n"
        "video:\n"
        "  steps_per_frame: 3\n"
        "  mp4: false\n"
    )
    out = tmp_path / "run"
    assert main(["fit", str(config), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "painted_gif" in err and "frame 3/3" in err
    assert (out / "painted.gif").is_file() and not (out / "painted.mp4").exists()
    with Image.open(out / "painted.gif") as gif:
        assert gif.n_frames == 3
    assert len(read_csv(out / "frames.csv")) == 3
    assert "steps_per_frame: 3" in (out / "config.yaml").read_text()
    # An existing run is refused; --resume of a finished run succeeds; a misspelt key is explained.
    assert main(["fit", str(config), "--out", str(out), "-q"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["fit", str(config), "--out", str(out), "-q", "--resume"]) == 0
    assert main(["fit", str(config), "--set", "video.step_per_frame=2", "--out", str(tmp_path / "other"), "-q"]) == 2
    assert "steps_per_frame" in capsys.readouterr().err
