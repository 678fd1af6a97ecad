"""``diffbmp fit`` end to end: outputs, refusing to clobber a run, errors, Ctrl-C and --resume."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp.cli import main
from diffbmp.scene import Scene
from ffmpeg_check import HAVE_FFMPEG

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


ROOT = Path(__file__).resolve().parent.parent
DEFAULT = "default"  # the recipe, by name
SMALL = ["--set", "steps=12", "--set", "size=48", "--set", "n=60", "--set", "output.frames=6"]


def test_default_config_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    extra = ["--set", "output.snapshot_every=6", "--set", "output.final_scale=2"]
    assert main(["fit", DEFAULT, *SMALL, *extra, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "PSNR" in err and "fit.gif" in err
    for name in ("final.png", "scene.npz", "fit.gif", "config.yaml", "log.csv", "checkpoint.pt"):
        assert (out / name).is_file(), name
    assert (out / "fit.mp4").is_file() == HAVE_FFMPEG  # without ffmpeg: a warning, and the GIF alone
    assert not (out / "frames").exists()  # frames are removed once the animation is written
    with Image.open(out / "final.png") as final:
        assert final.size == (96, 96)  # output.final_scale: 2
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["step_0000000.png", "step_0000006.png", "step_0000012.png"]
    with Image.open(out / "fit.gif") as gif:
        assert gif.n_frames == 7  # steps 0, 2, 4, ..., 12
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == list(range(1, 13))
    assert set(rows[0]) == {"step", "loss", "psnr", "n", "blur", "seconds"}
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    scene = Scene.load(out / "scene.npz")
    assert len(scene) == 60 and (scene.height, scene.width) == (48, 48)
    saved = (out / "config.yaml").read_text()
    assert "steps: 12" in saved and "target: skimage:astronaut" in saved


def test_existing_run_is_refused_then_forced_or_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["fit", DEFAULT, *SMALL, "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["fit", DEFAULT, *SMALL, "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diffbmp fit: error:") and str(out) in err and "--resume" in err and "--force" in err
    # Resuming a finished run just writes its outputs again.
    assert main(["fit", DEFAULT, *SMALL, "--out", str(out), "-q", "--resume"]) == 0
    assert main(["fit", DEFAULT, *SMALL, "--set", "n=30", "--out", str(out), "-q", "--resume"]) == 2
    assert "`n` (60 -> 30)" in capsys.readouterr().err
    assert main(["fit", DEFAULT, *SMALL, "--set", "n=30", "--out", str(out), "-q", "--force"]) == 0
    assert len(Scene.load(out / "scene.npz")) == 30


def test_config_errors_exit_2_with_a_readable_message(tmp_path, capsys):
    assert main(["fit", DEFAULT, "--set", "optim.lr.mean=0.5", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "diffbmp fit: error:" in err and "`optim.lr.mean`" in err and "did you mean `means`?" in err
    assert "Traceback" not in err
    assert main(["fit", DEFAULT, "--set", "steps=zero", "--out", str(tmp_path)]) == 2
    assert "`steps` = 'zero'" in capsys.readouterr().err


def test_missing_target_suggests_similar_files(tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "portrait.png")
    code = main(["fit", DEFAULT, *SMALL, "--set", f"target={tmp_path / 'portait.png'}", "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "portrait.png" in err
    assert main(["fit", DEFAULT, *SMALL, "--set", "target=skimage:astronot", "--out", str(tmp_path / "run2")]) == 2
    assert "skimage:astronaut" in capsys.readouterr().err


def test_print_config(capsys):
    assert main(["fit", DEFAULT, "--set", "n=77", "--print-config"]) == 0
    assert "n: 77" in capsys.readouterr().out


INTERRUPTIBLE = ["fit", DEFAULT, "--set", "steps=2000", "--set", "size=32", "--set", "n=20", "--set", "output.frames=3",
                 "--set", "output.checkpoint_every=0", "--set", "output.mp4=false"]


def cli(args: list[str], cwd: Path, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "diffbmp.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=cwd, **kwargs)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The run folder of the interruptible fit, run to the end in one go."""
    folder = tmp_path_factory.mktemp("uninterrupted")
    process = cli([*INTERRUPTIBLE, "-q", "--out", str(folder / "run")], folder)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return folder / "run"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)],
                         ids=lambda s: signal.Signals(s).name)
def test_a_signal_saves_a_checkpoint_and_resume_ends_where_an_uninterrupted_run_does(tmp_path, signum, uninterrupted):
    # Ctrl-C, and what `timeout`, schedulers and `docker stop` (SIGTERM) or a closed terminal
    # (SIGHUP) send: the same checkpoint, the resume command, and the shell's 128 + signal.
    out = tmp_path / "run"
    process = cli([*INTERRUPTIBLE, "--out", str(out)], tmp_path)
    deadline = time.time() + 90
    while not (out / "frames").is_dir() and time.time() < deadline and process.poll() is None:
        time.sleep(0.2)  # the first frame is written when the loop starts
    time.sleep(0.3)
    process.send_signal(signum)
    _, err = process.communicate(timeout=90)
    assert process.returncode == 128 + signum, err
    assert "--resume" in err and "checkpoint saved" in err and f"interrupted ({signal.Signals(signum).name})" in err
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert 0 < step < 2000
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == step
    resumed = cli([*INTERRUPTIBLE, "--out", str(out), "--resume", "-q"], tmp_path)
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    rows = list(csv.DictReader((out / "log.csv").open()))
    assert len(rows) == 2000 and (out / "final.png").is_file() and (out / "fit.gif").is_file()
    ended, expected = Scene.load(out / "scene.npz"), Scene.load(uninterrupted / "scene.npz")
    assert torch.equal(ended.shape_ids, expected.shape_ids)
    for name, tensor in ended.raw_tensors().items():
        assert torch.equal(tensor, expected.raw_tensors()[name]), f"{name} differs from the uninterrupted run"
