"""diffbmp as a hostile user meets it: a corpus of bad inputs and faults against ``diffbmp fit``,
``render`` and ``export``. Each case must end with exit status 2 (or the signal's), a message of
a few lines that names the problem, no traceback, and no lost or half-written file; and a fit
killed outright (SIGKILL) at random moments resumes to the very scene of an unkilled run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp.cli import main
from diffbmp.scene import Scene

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parent.parent
QUICK = ["--steps", "2", "-n", "6", "--size", "24", "--set", "output.frames=2", "--set", "output.mp4=false", "-q"]


# -- files the cases are made of ----------------------------------------------------------------


def bomb_png(width: int = 60_000, height: int = 60_000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def photo(path: Path, size: tuple[int, int] = (32, 24)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format="PNG")
    return path


def float_tiff(path: Path, values: np.ndarray) -> Path:
    cv2.imwrite(str(path), values.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """A tiny fitted run (its scene and checkpoint), made once."""
    folder = tmp_path_factory.mktemp("made")
    run = folder / "run"
    assert main(["fit", "default", *QUICK, "--set", "output.checkpoint_every=1", "--out", str(run)]) == 0
    return {"run": run, "scene": run / "scene.npz", "checkpoint": run / "checkpoint.pt"}


def scene_arrays(made) -> dict[str, np.ndarray]:
    with np.load(made["scene"]) as data:
        return {key: data[key] for key in data.files}


def tampered_scene(tmp: Path, made, change: Callable[[dict, dict], None]) -> Path:
    """A copy of the scene file with its header and arrays changed by ``change(header, arrays)``."""
    arrays = scene_arrays(made)
    header = json.loads(arrays["header"].tobytes())
    change(header, arrays)
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    path = tmp / "tampered.npz"
    np.savez(path, **arrays)
    return path


def tampered_checkpoint(tmp: Path, made, change: Callable[[dict], object]) -> list[str]:
    """A copy of the run whose checkpoint ``change`` rewrote; the arguments that resume it."""
    run = tmp / "run"
    shutil.copytree(made["run"], run)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save(change(state), run / "checkpoint.pt")
    return ["fit", "default", *QUICK, "--set", "output.checkpoint_every=1", "--out", str(run), "--resume"]


def with_key(state: dict, key: str, value) -> dict:
    state[key] = value
    return state


def without(state: dict, key: str) -> dict:
    del state[key]
    return state


def fit_target(target: str | Path, *more: str) -> list[str]:
    return ["fit", str(target), *QUICK, *more]


# -- the corpus ----------------------------------------------------------------------------------
# Each case: (name, make(tmp, made) -> arguments, expected message (regex)).

def case_frames_folder_with_bomb(tmp, made):
    folder = tmp / "frames"
    folder.mkdir()
    photo(folder / "f0.png")
    (folder / "f1.png").write_bytes(bomb_png())
    return fit_target(folder)


def case_mixed_frames(tmp, made):
    folder = tmp / "frames"
    folder.mkdir()
    photo(folder / "a.png", (32, 24))
    photo(folder / "b.png", (30, 24))
    return fit_target(folder)


def config_file(text: str | bytes, name: str = "bad.yaml"):
    def make(tmp, made):
        path = tmp / name
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
        return ["fit", str(path), "--print-config"]  # a config that loaded would only be printed
    return make


def alias_bomb() -> str:
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for previous, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9)}]")
    return "\n".join(lines) + "\n"


def image_case(write: Callable[[Path], object], name: str, *more: str):
    def make(tmp, made):
        write(tmp / name)
        return fit_target(tmp / name, *more) if not more else ["fit", "default", *QUICK, *more]
    return make


CASES: list[tuple[str, Callable, str]] = [
    # images
    ("target bomb", image_case(lambda p: p.write_bytes(bomb_png()), "bomb.png"), r"60000x60000.*DIFFBMP_MAX_IMAGE_PIXELS"),
    ("bomb in a frames folder", case_frames_folder_with_bomb, r"f1\.png.*DIFFBMP_MAX_IMAGE_PIXELS"),
    ("NaN float TIFF", image_case(lambda p: float_tiff(p, np.full((8, 8), np.nan)), "nan.tif"), r"nan\.tif.*NaN"),
    ("HDR float TIFF", image_case(lambda p: float_tiff(p, np.full((8, 8), 4.0)), "hdr.tif"), r"float values in \[4, 4\]"),
    ("32-bit integer TIFF", image_case(lambda p: Image.fromarray(np.full((8, 8), 7, np.int32), "I").save(p), "wide.tif"), "ambiguous"),
    ("truncated PNG", image_case(lambda p: p.write_bytes(photo(p).read_bytes()[:60]), "cut.png"), r"cut\.png"),
    ("text as JPEG", image_case(lambda p: p.write_text("hello"), "notes.jpg"), r"notes\.jpg.*not an image"),
    ("empty PNG file", image_case(lambda p: p.write_bytes(b""), "empty.png"), r"empty\.png"),
    ("missing target", lambda tmp, made: fit_target(tmp / "holiday.jpg"), r"holiday\.jpg.*does not exist"),
    ("frames of two sizes", case_mixed_frames, "different sizes"),
    ("empty frames folder", lambda tmp, made: (tmp / "none").mkdir() or fit_target(tmp / "none"), "none"),
    ("weight map bomb", image_case(lambda p: p.write_bytes(bomb_png()), "w.png", "--set", "loss.weight_map=w.png"), "DIFFBMP_MAX_IMAGE_PIXELS"),
    ("weight map of another shape", image_case(lambda p: photo(p, (64, 8)), "w.png", "--set", "loss.weight_map=w.png"), "aspect ratio"),
    ("black mask", image_case(lambda p: Image.new("L", (256, 256)).save(p), "m.png", "--set", "loss.mask=m.png"), "zero everywhere"),
    ("missing mask", lambda tmp, made: ["fit", "default", *QUICK, "--set", f"loss.mask={tmp / 'mask.png'}"], r"mask\.png.*does not exist"),
    ("stamp bomb", image_case(lambda p: p.write_bytes(bomb_png()), "s.png", "--shapes", "s.png"), "DIFFBMP_MAX_IMAGE_PIXELS"),
    ("missing stamp", lambda tmp, made: ["fit", "default", *QUICK, "--shapes", str(tmp / "stamp.png")], r"stamp\.png"),
    ("glyph the font lacks", lambda tmp, made: ["fit", "default", *QUICK, "--shapes", "text:中"], r"no glyph for '中' \(U\+4E2D\)"),
    ("unknown primitive", lambda tmp, made: ["fit", "default", *QUICK, "--shapes", "cirlce"], "Did you mean 'circle'"),
    ("empty stamp folder", lambda tmp, made: (tmp / "stamps").mkdir() or ["fit", "default", *QUICK, "--shapes", str(tmp / "stamps")], "no image or SVG"),
    ("missing font", lambda tmp, made: ["fit", "default", *QUICK, "--shapes", "text:A", "--set", "text_font=/no/such.ttf"], r"such\.ttf.*does not exist"),
    # configs
    ("unknown key", config_file("optim:\n  lr:\n    mean: 0.5\n"), "did you mean `means`"),
    ("wrong type", config_file("steps: many\n"), "`steps` = 'many'"),
    ("out of range", config_file("size: 2\n"), "out of range"),
    ("YAML syntax", config_file("n: 10\ninit: [unclosed\n"), r"line \d+, column \d+ is not valid YAML"),
    ("alias bomb", config_file(alias_bomb()), "more than 32 aliases"),
    ("huge config", config_file("n: 5\n" + "#" * 1_100_000 + "\n"), "is it really one"),
    ("binary config", config_file(bytes(range(256)) * 4, "blob.yaml"), "blob.yaml"),
    ("config not a mapping", config_file("- a\n- b\n"), "must hold a mapping"),
    ("missing config", lambda tmp, made: ["fit", str(tmp / "mine.yaml")], "does not exist"),
    ("recipe typo", lambda tmp, made: ["fit", "circels"], "Did you mean recipe 'circles'"),
    ("--set without =", lambda tmp, made: ["fit", "default", "--set", "n"], "--set expects key=value"),
    ("--set unknown nested", lambda tmp, made: ["fit", "default", "--set", "optim.lr.mean=1"], "did you mean `means`"),
    ("--set out of range", lambda tmp, made: ["fit", "default", "--set", "n=0"], r"`n` = 0"),
    ("bad -o format", lambda tmp, made: ["fit", "default", "-o", "x.tiff"], r"-o x\.tiff"),
    ("--resume with --force", lambda tmp, made: ["fit", "default", "--resume", "--force"], "contradict"),
    ("output folder is a file", lambda tmp, made: (tmp / "f").write_text("x") and ["fit", "default", *QUICK, "--out", str(tmp / "f")], "is a file"),
    ("run folder taken", lambda tmp, made: shutil.copytree(made["run"], tmp / "run") and ["fit", "default", *QUICK, "--out", str(tmp / "run")], "already holds a run"),
    ("resume with other settings", lambda tmp, made: shutil.copytree(made["run"], tmp / "run") and
     ["fit", "default", *QUICK, "--set", "output.checkpoint_every=1", "--set", "n=7", "--out", str(tmp / "run"), "--resume"], r"`n` \(6 -> 7\)"),
    # scene files
    ("scene is text", lambda tmp, made: (tmp / "s.npz").write_text("hi") and ["render", str(tmp / "s.npz")], "it is a text file"),
    ("scene is a PNG", lambda tmp, made: photo(tmp / "s.npz") and ["render", str(tmp / "s.npz")], "it is a PNG image"),
    ("scene of objects", lambda tmp, made: np.savez(tmp / "s.npz", a=np.array([{}], dtype=object)) or ["render", str(tmp / "s.npz")], "Python objects"),
    ("scene without header", lambda tmp, made: np.savez(tmp / "s.npz", a=np.zeros(3)) or ["render", str(tmp / "s.npz")], "no header"),
    ("scene header not JSON", lambda tmp, made: np.savez(tmp / "s.npz", header=np.frombuffer(b"{oops", np.uint8)) or ["render", str(tmp / "s.npz")], "corrupt header"),
    ("scene of another format", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: h.update(format="x")))], "format 'x'"),
    ("scene version as text", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: h.update(version="1")))], "format version is '1'"),
    ("scene from the future", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: h.update(version=99)))], "newer diffbmp"),
    ("scene of a huge canvas", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: h.update(height=10**9)))], "canvas height is 1000000000"),
    ("scene ids outside its bank", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: a.update(shape_ids=a["shape_ids"] + 9)))], "outside the 1 primitives"),
    ("scene without means", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: a.pop("means")))], "'means' array is missing"),
    ("scene means of the wrong shape", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: a.update(means=a["means"][:, :1])))], r"'means' array is of shape \[6, 1\]"),
    ("scene bank entry garbled", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: h.update(bank=[{"kind": 7}])))], "primitive 0 of its bank"),
    ("NaN scene to JSON", lambda tmp, made: ["export", str(tampered_scene(tmp, made, lambda h, a: a["means"].__setitem__(0, np.nan))), "-o", str(tmp / "x.json")], "cannot be drawn: params.means contains NaN"),
    ("NaN scene to PNG", lambda tmp, made: ["render", str(tampered_scene(tmp, made, lambda h, a: a["color_logits"].__setitem__(1, np.nan)))], "params.colors contains NaN"),
    ("render far too large", lambda tmp, made: ["render", str(made["scene"]), "--scale", "5000", "-o", str(tmp / "big.png")], "more than the 268 megapixels"),
    ("PSD too large", lambda tmp, made: ["export", str(made["scene"]), "--scale", "2000", "-o", str(tmp / "big.psd")], "larger than the PSD format allows"),
    ("unknown export format", lambda tmp, made: ["export", str(made["scene"]), "-o", str(tmp / "x.bmp")], "unknown export format 'bmp'"),
    ("option for another format", lambda tmp, made: ["export", str(made["scene"]), "--group-size", "3", "-o", str(tmp / "x.png")], "does not apply to png"),
    ("export into a missing folder", lambda tmp, made: ["export", str(made["scene"]), "-o", str(tmp / "no" / "x.png")], "does not exist; create it first"),
    ("scene path is a folder", lambda tmp, made: ["render", str(tmp)], "is a folder"),
    ("missing scene", lambda tmp, made: ["render", str(tmp / "gone.npz")], "does not exist"),
    # checkpoints
    ("checkpoint of garbage", lambda tmp, made: shutil.copytree(made["run"], tmp / "run") and (tmp / "run" / "checkpoint.pt").write_bytes(b"\x00" * 64)
     and ["fit", "default", *QUICK, "--set", "output.checkpoint_every=1", "--out", str(tmp / "run"), "--resume"], "cannot read the checkpoint"),
    ("checkpoint of a list", lambda tmp, made: tampered_checkpoint(tmp, made, lambda s: [1, 2]), "holds a list"),
    ("checkpoint without its scene", lambda tmp, made: tampered_checkpoint(tmp, made, lambda s: without(s, "scene")), "has no 'scene'"),
    ("checkpoint with a bad generator", lambda tmp, made: tampered_checkpoint(tmp, made, lambda s: with_key(s, "generator", torch.zeros(3))), "random generator state"),
    ("checkpoint ids outside its bank", lambda tmp, made: tampered_checkpoint(tmp, made, lambda s: with_key(s, "shape_ids", s["shape_ids"] + 5)), "outside the 1 primitives"),
    ("checkpoint from the future", lambda tmp, made: tampered_checkpoint(tmp, made, lambda s: with_key(s, "version", 99)), "newer diffbmp"),
    ("checkpoint scene of the wrong shape", lambda tmp, made: tampered_checkpoint(
        tmp, made, lambda s: s["scene"].update(means=s["scene"]["means"][:3]) or s), r"'means' has shape \[3, 2\]"),
    ("checkpoint step as text", lambda tmp, made: tampered_checkpoint(tmp, made, lambda s: with_key(s, "step", "3")), "'step' is a str"),
]


def no_half_written_files(folder: Path) -> list[str]:
    """Temporary files of writes that did not finish (there must be none)."""
    return [str(p) for p in folder.rglob("*.tmp")]


@pytest.mark.parametrize("name,make,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_message(name, make, expected, tmp_path, made, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = make(tmp_path, made)
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    err = capsys.readouterr().err
    assert code == 2, f"{name}: exit status {code}\n{err}"
    assert "Traceback" not in err
    message = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(message) <= 4, f"{name}: {len(message)} lines of message:\n{err}"
    import re

    assert re.search(expected, err), f"{name}: the message does not say {expected!r}:\n{err}"
    assert not no_half_written_files(tmp_path), f"{name}: half-written files left: {no_half_written_files(tmp_path)}"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60


# -- folders that cannot be written -----------------------------------------------------------


@pytest.fixture
def small_filesystem(tmp_path):
    """Mounts a tmpfs: ``make(size, read_only)`` gives its folder (skips where not allowed)."""
    mounted = []

    def make(size: str = "128k", read_only: bool = False) -> Path:
        if sys.platform != "linux" or os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a filesystem needs root on Linux")
        folder = tmp_path / f"fs{len(mounted)}"
        folder.mkdir()
        options = f"size={size}" + (",ro" if read_only else "")
        if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True).returncode:
            pytest.skip("this machine does not let the tests mount a filesystem")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_a_read_only_folder(small_filesystem, made, capsys):
    folder = small_filesystem(read_only=True)
    code, err = run_cli(["fit", "default", *QUICK, "--out", folder / "run"], capsys)
    assert code == 2 and "read-only" in err and "Traceback" not in err
    code, err = run_cli(["export", made["scene"], "-o", folder / "x.png"], capsys)
    assert code == 2 and "read-only" in err and "Traceback" not in err


def test_a_full_disk_during_a_fit_keeps_the_last_checkpoint(small_filesystem, capsys):
    folder = small_filesystem("96k")
    run = folder / "run"
    args = ["fit", "default", "--steps", "400", "-n", "6", "--size", "64", "--set", "output.frames=400",
            "--set", "output.checkpoint_every=1", "--set", "output.mp4=false", "-q", "--out", run]
    code, err = run_cli(args, capsys)
    assert code == 2 and "no space is left" in err and "Traceback" not in err
    # The frames filled the disk; what is there is whole: the last checkpoint resumes.
    assert not no_half_written_files(folder)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    assert 0 < state["step"] < 400
    for frame in (run / "frames").iterdir():
        Image.open(frame).load()


def test_a_full_disk_during_an_export(small_filesystem, made, capsys):
    folder = small_filesystem("16k")
    code, err = run_cli(["render", made["scene"], "--scale", "40", "-o", folder / "big.png"], capsys)
    assert code == 2 and "no space is left" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []


def test_a_run_folder_in_use_is_refused(made, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from diffbmp.fitting.runfolder import RunFolder\n"
        f"folder = RunFolder({str(run)!r})\n"
        "with folder.claimed():\n    folder.prepare({}, resume=False, force=False)\n    print('held', flush=True)\n    time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert holder.stdout.readline().strip() == "held"
        code, err = run_cli(["fit", "default", *QUICK, "--out", run], capsys)
        assert code == 2 and f"in use by process {holder.pid} on " in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait()
    code, err = run_cli(["fit", "default", *QUICK, "--out", run, "--force"], capsys)
    assert code == 0, err  # the holder is gone: its lock went with it


# -- killed outright ------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigkill_at_random_moments_then_resume_ends_where_an_unkilled_run_does(tmp_path):
    args = ["fit", "default", "--steps", "300", "-n", "12", "--size", "32", "--set", "output.frames=5",
            "--set", "output.checkpoint_every=7", "--set", "output.mp4=false", "-q"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "diffbmp.cli", *args]
    reference = tmp_path / "reference"
    subprocess.run([*command, "--out", str(reference)], env=env, check=True, capture_output=True, timeout=300)
    run = tmp_path / "killed"
    rng = random.Random(4)
    kills = 0
    for attempt in range(40):
        process = subprocess.Popen([*command, "--out", str(run), "--resume"], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.4, 2.5))
        if process.poll() is not None:
            _, err = process.communicate()
            assert process.returncode == 0, err
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 10, f"only {kills} kills landed before the run ended"
    done = subprocess.run([*command, "--out", str(run), "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ended, expected = Scene.load(run / "scene.npz"), Scene.load(reference / "scene.npz")
    for name, tensor in ended.raw_tensors().items():
        assert torch.equal(tensor, expected.raw_tensors()[name]), f"{name} differs after {kills} kills"
    assert not no_half_written_files(run)
