"""The ``diffbmp`` command as a newcomer meets it: fast help, recipes by name, the one-line form,
and a message that says what to type when something else is given where a config belongs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbmp import recipes
from diffbmp.cli import main
from diffbmp.scene import Scene

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--set", "output.frames=2", "--set", "output.mp4=false", "-q"]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "diffbmp.cli", *args], capture_output=True, text=True, env=env, cwd=cwd)


@pytest.fixture
def photo(tmp_path) -> Path:
    """A small JPEG, as a newcomer's photo would be."""
    rng = np.random.default_rng(0)
    pixels = (np.linspace(0, 255, 40)[None, :, None] * np.ones((30, 40, 3)) * rng.uniform(0.5, 1, 3)).astype(np.uint8)
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path)
    return path


# -- help, version, and no PyTorch for them ----------------------------------------------------


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["fit", "--help"], ["recipes"], ["config", "--help"]])
def test_help_and_version_answer_without_importing_torch(args):
    code = ("import sys, time; t = time.perf_counter(); from diffbmp.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(f'\\n{time.perf_counter() - t:.3f} {\"torch\" in sys.modules}\\n')")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)
    seconds, torch_imported = done.stderr.strip().splitlines()[-1].split()
    assert torch_imported == "False", f"diffbmp {' '.join(args)} imported torch"
    assert float(seconds) < 0.5, f"diffbmp {' '.join(args)} took {seconds} s"
    assert done.stdout.strip(), "nothing was printed"


def test_fit_help_names_the_installed_guide_and_the_reference():
    done = run_cli("fit", "--help")
    assert done.returncode == 0
    assert "diffbmp recipes" in done.stdout and "diffbmp config --reference" in done.stdout
    guide = done.stdout.split("Guide: ")[1].split()[0]
    assert Path(guide).is_file() and guide.endswith("fitting.md")


# -- recipes ----------------------------------------------------------------------------------


def test_recipes_are_listed_with_one_line_each(capsys):
    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    for name in recipes.names():
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert len(line.split(maxsplit=1)[1]) > 20, f"{name} has no description"
    assert {"default", "circles", "brush_strokes", "video_gif"} <= set(recipes.names())


def test_a_recipe_runs_by_name_and_a_path_still_works(tmp_path, capsys):
    assert main(["fit", "circles", "--set", "n=10", "--set", "steps=3", "--set", "size=24", *TINY, "--out", str(tmp_path / "a")]) == 0
    assert len(Scene.load(tmp_path / "a" / "scene.npz")) == 10
    copy = tmp_path / "mine.yaml"
    assert main(["config", "circles", "--set", "n=12"]) == 0
    copy.write_text(capsys.readouterr().out)
    assert main(["fit", str(copy), "--set", "steps=2", "--set", "size=24", *TINY, "--out", str(tmp_path / "b")]) == 0
    assert len(Scene.load(tmp_path / "b" / "scene.npz")) == 12


def test_config_reference_lists_every_key(capsys):
    assert main(["config", "--reference"]) == 0
    out = capsys.readouterr().out
    for key in ("`n`", "`steps`", "`optim.lr.means`", "`video.steps_per_frame`"):
        assert key in out


@pytest.mark.parametrize("given,expected", [
    ("defualt", "Did you mean recipe 'default'?"),
    ("configs/circles.yaml", "Did you mean recipe 'circles'?"),  # the path of earlier versions
])
def test_a_wrong_recipe_name_suggests_the_right_one(given, expected, capsys):
    assert main(["fit", given]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


# -- the one-line form ------------------------------------------------------------------------


def test_one_line_form_paints_the_photo_and_writes_the_file_asked_for(photo, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["fit", str(photo), "-n", "8", "--steps", "3", "--size", "32", "--shapes", "circle,brush_flat", "-o", "painting.psd"]
    assert main([*args, *TINY]) == 0
    from psd_tools import PSDImage

    psd = PSDImage.open(tmp_path / "painting.psd")
    assert (psd.width, psd.height) == (32, 24)
    assert len(list(psd.descendants())) >= 8
    # The usual run folder, named after the photo, painted with the default recipe.
    scene = Scene.load(tmp_path / "runs" / "photo" / "scene.npz")
    assert len(scene) == 8 and scene.bank.names == ["circle", "brush_flat"]
    saved = (tmp_path / "runs" / "photo" / "config.yaml").read_text()
    assert f"target: {photo}" in saved and "steps: 3" in saved


def test_one_line_form_refuses_an_output_it_cannot_write_before_fitting(photo, capsys):
    assert main(["fit", str(photo), "-n", "40000", "-o", "painting.psd"]) == 2  # before any work
    assert "40000 primitives are more layers than a PSD holds" in capsys.readouterr().err
    assert main(["fit", str(photo), "-o", "painting.tiff"]) == 2
    err = capsys.readouterr().err
    assert "-o painting.tiff" in err and ".psd" in err and ".svg" in err


def test_a_picture_where_a_config_belongs_says_what_to_type(photo, tmp_path, capsys):
    from diffbmp import ConfigError, config

    with pytest.raises(ConfigError, match=r"not a YAML config.*diffbmp fit .*photo\.jpg"):
        config.load_config(photo)
    # Binary files of other kinds get the same message, never a decoding error.
    blob = tmp_path / "scan.raw"
    blob.write_bytes(bytes(range(256)) * 8)
    assert main(["config", str(blob)]) == 2
    err = capsys.readouterr().err
    assert "not a YAML config" in err and "codec" not in err


def test_the_help_example_with_a_missing_photo_names_it(tmp_path, capsys):
    assert main(["fit", str(tmp_path / "holiday.jpg"), *TINY]) == 2
    assert "holiday.jpg" in capsys.readouterr().err
