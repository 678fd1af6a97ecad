"""No silent wrong results: values given on the command line are read as written, hostile YAML
fails fast, and no output is reported that is not whole (failed encoders, full disks, scenes
that cannot be drawn, writes killed half-way, Ctrl-C while encoding)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp import ConfigError, InputError
from diffbmp.cli import main
from diffbmp.config import MAX_YAML_ALIASES, load_config
from diffbmp.fitting import recording
from diffbmp.scene import Scene
from ffmpeg_check import needs_ffmpeg

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

TINY = ["--set", "steps=2", "--set", "n=6", "--set", "size=24", "--set", "output.frames=2", "-q"]


# -- values read as written -------------------------------------------------------------------


@pytest.mark.parametrize("item,key,expected", [
    ("background.color=#ff0000", "background.color", "#ff0000"),  # not a YAML comment
    ("output.dir={name}-runs", "output.dir", "{name}-runs"),  # not a YAML mapping
    ("target=skimage:", "target", "skimage:"),  # not a mapping either: an error names it later
    ("target='odd #name.png'", "target", "odd #name.png"),  # quotes go, as in YAML
    ("output.dir=null", "output.dir", None),
    ("n=12", "n", 12),
    ("primitives=[circle, brush_flat]", "primitives", ["circle", "brush_flat"]),
    ("primitives=circle", "primitives", ["circle"]),
    ("video.psd_frames=[]", "video.psd_frames", []),
])
def test_set_values_are_read_as_written(item, key, expected):
    config = load_config("default", [item])
    value = config
    for part in key.split("."):
        value = getattr(value, part)
    assert value == expected


def test_a_colour_given_on_the_command_line_paints_the_background(tmp_path):
    out = tmp_path / "run"
    assert main(["fit", "default", *TINY, "--set", "background.mode=fixed", "--set", "background.color=#ff0000",
                 "--set", "output.mp4=false", "--out", str(out)]) == 0
    assert torch.allclose(Scene.load(out / "scene.npz").background(), torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)


def test_home_folders_are_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "default", *TINY, "--set", "output.dir=~/paintings/{name}", "--set", "output.mp4=false"]) == 0
    assert (tmp_path / "paintings" / "default" / "scene.npz").is_file()
    assert not (tmp_path / "~").exists()


def test_hostile_yaml_fails_fast(tmp_path):
    # "Billion laughs": nine levels of nine aliases stand for 9^9 values in 400 bytes.
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    with pytest.raises(ConfigError, match=f"more than {MAX_YAML_ALIASES} aliases") as caught:
        load_config(bomb)
    assert time.perf_counter() - started < 1.0 and len(str(caught.value)) < 500
    huge = tmp_path / "huge.yaml"
    huge.write_text("n: 5\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="is it really one"):
        load_config(huge)
    # A few aliases, as a hand-written config might use, still work.
    fine = tmp_path / "fine.yaml"
    fine.write_text("n: &count 50\nsteps: *count\n")
    assert (load_config(fine).n, load_config(fine).steps) == (50, 50)


# -- exports of scenes that cannot be drawn ---------------------------------------------------


@pytest.mark.parametrize("suffix", [".psd", ".svg", ".png", ".json"])
@pytest.mark.parametrize("field,named", [("means", "means"), ("color_logits", "colors"), ("log_scales", "scales")])
def test_a_scene_with_nan_is_refused_by_every_format_before_any_file_is_written(tmp_path, field, named, suffix):
    import diffbmp

    scene = diffbmp.fit("skimage:camera", ["circle"], n=5, steps=1, size=24, quiet=True).scene
    getattr(scene, field).data[2] = float("nan")
    scene.save(tmp_path / "broken.npz")
    with pytest.raises(InputError, match=f"cannot be drawn: params.{named} contains NaN"):
        diffbmp.export(scene, tmp_path / f"painting{suffix}")
    assert main(["export", str(tmp_path / "broken.npz"), "-o", str(tmp_path / f"cli{suffix}")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.npz"]


# -- encoders -----------------------------------------------------------------------------------


@pytest.fixture
def frames(tmp_path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(6):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(folder / f"frame_{index:07d}.png")
    return folder


def fake_ffmpeg(tmp_path: Path, message: str, status: int) -> str:
    script = tmp_path / "ffmpeg"
    script.write_text(f"#!/bin/sh\ncat > /dev/null\necho '{message}' >&2\nexit {status}\n")
    script.chmod(0o755)
    return str(script)


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for ffmpeg")
def test_a_failing_encoder_is_reported_and_its_file_is_not(frames, tmp_path, monkeypatch):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: fake_ffmpeg(tmp_path, "No space left on device", 1))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.warns(UserWarning, match=r"fit\.mp4 was not written: ffmpeg failed \(exit status 1\): No space left"):
        written = recording.write_animation(frames, None, out / "fit.mp4", fps=10, hold=0)
    assert written == {} and list(out.iterdir()) == []


@needs_ffmpeg
def test_a_video_missing_frames_is_not_reported(frames, tmp_path, monkeypatch):
    # The encoder says it succeeded, but the file holds fewer frames than were sent.
    real = recording.encode_mp4
    monkeypatch.setattr(recording, "encode_mp4", lambda ffmpeg, frames, path, fps: real(ffmpeg, frames[:2], path, fps) + len(frames) - 2)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.warns(UserWarning, match="holds 2 of its 6 frames"):
        assert recording.write_animation(frames, None, out / "fit.mp4", fps=10, hold=0) == {}
    assert list(out.iterdir()) == []


@pytest.fixture
def full_disk(tmp_path):
    """A 192 KB filesystem (tmpfs), or a skip where this process may not mount one."""
    if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root on Linux")
    folder = tmp_path / "small"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=192k", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("this machine does not let the tests mount a small filesystem")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True)


@needs_ffmpeg
def test_a_full_disk_leaves_no_file_reported_and_nothing_behind(tmp_path, full_disk):
    rng = np.random.default_rng(1)
    folder = tmp_path / "noise"
    folder.mkdir()
    for index in range(40):  # noise compresses badly: several MB of video
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(folder / f"frame_{index:07d}.png")
    with pytest.warns(UserWarning, match="fit.mp4 was not written"):
        assert recording.write_animation(folder, None, full_disk / "fit.mp4", fps=10, hold=0) == {}
    with pytest.raises(OSError):
        recording.write_animation(folder, full_disk / "fit.gif", None, fps=10, hold=0)
    assert list(full_disk.iterdir()) == []


@needs_ffmpeg
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the encoder's process")
def test_ctrl_c_while_encoding_stops_the_encoder(frames, tmp_path):
    import imageio_ffmpeg

    pixels = [np.asarray(Image.open(p)) for p in sorted(frames.iterdir())]

    class Interrupted(list):
        def __iter__(self):
            yield from pixels[:3]
            raise KeyboardInterrupt

    def children() -> set[Path]:
        return {p for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == os.getpid()}

    before = children()  # e.g. multiprocessing's resource tracker, which lives as long as this process
    with pytest.raises(KeyboardInterrupt):
        recording.encode_mp4(imageio_ffmpeg.get_ffmpeg_exe(), Interrupted(pixels), tmp_path / "x.mp4", 10)
    assert not children() - before, "the encoder outlived the interrupt"


def _parent(process: Path) -> int:
    try:
        return int((process / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


# -- writes killed half-way ---------------------------------------------------------------------


def test_leftovers_of_killed_writes_are_removed_by_the_next_run(tmp_path):
    out = tmp_path / "run"
    assert main(["fit", "default", *TINY, "--set", "output.mp4=false", "--out", str(out)]) == 0
    leftovers = [out / ".fit.gif.x1y2z3.tmp", out / ".checkpoint.pt.a1b2.tmp", out / "frames" / ".frame_0000001.png.q9.tmp"]
    (out / "frames").mkdir(exist_ok=True)
    for path in leftovers:
        path.write_bytes(b"")
    assert main(["fit", "default", *TINY, "--set", "output.mp4=false", "--out", str(out), "--resume"]) == 0
    assert not any(path.exists() for path in leftovers)
    # An export to the same file clears what a killed export of it left.
    import diffbmp

    stale = tmp_path / ".painting.png.k7.tmp"
    stale.write_bytes(b"")
    diffbmp.export(Scene.load(out / "scene.npz"), tmp_path / "painting.png")
    assert not stale.exists() and (tmp_path / "painting.png").is_file()
