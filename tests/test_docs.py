"""The documentation's examples work as written: every Python block of README.md and docs/*.md
runs (on tiny sizes: counts, steps and canvases are shrunk before it runs), and every
``diffbmp`` command line in their shell blocks is one the command accepts, with recipes and
config keys that exist."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffbmp.cli import build_parser, main
from ffmpeg_check import HAVE_FFMPEG

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)

#: How the examples are made tiny: (pattern, replacement) on the code's text.
SHRINK = [
    (re.compile(r"\b(n)=\d+"), r"\1=6"),
    (re.compile(r"\b(steps)=\d+"), r"\1=2"),
    (re.compile(r"\b(size)=\d+"), r"\1=24"),
    (re.compile(r'("steps_per_frame"): \d+'), r"\1: 1"),
]


def blocks(page: Path, languages: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line number, code) of the page's fenced blocks in ``languages``."""
    text = page.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in BLOCK.finditer(text) if m.group(1) in languages]


def python_pages() -> list[Path]:
    return [page for page in PAGES if blocks(page, ("python",))]


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """A folder holding the files the examples name, as a user's would."""
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    gradient = np.linspace(0, 255, 48)[None, :, None] * np.ones((32, 48, 3))
    Image.fromarray((gradient * rng.uniform(0.4, 1.0, 3)).astype(np.uint8)).save(tmp_path / "photo.jpg")
    stamp = np.zeros((16, 16, 4), np.uint8)
    stamp[4:12, 4:12] = (200, 40, 40, 255)
    Image.fromarray(stamp, "RGBA").save(tmp_path / "my_stamp.png")
    import diffbmp

    diffbmp.fit("photo.jpg", ["circle"], n=5, steps=1, size=24, quiet=True).scene.save(tmp_path / "painting.npz")
    if HAVE_FFMPEG:
        from diffbmp.video import make_demo_clip

        make_demo_clip(tmp_path / "clip.mp4", frames=12, size=32)
    return tmp_path


@pytest.mark.parametrize("page", python_pages(), ids=lambda p: p.name)
def test_python_examples_run(page, workdir):
    namespace: dict = {"__name__": "__doc_example__"}  # one page is one session, as a reader runs it
    for line, code in blocks(page, ("python",)):
        if "clip.mp4" in code and not HAVE_FFMPEG:
            pytest.skip("the example reads an MP4 file and this machine has no ffmpeg")
        for pattern, replacement in SHRINK:
            code = pattern.sub(replacement, code)
        try:
            exec(compile(code, f"{page.name}:{line}", "exec"), namespace)
        except Exception as error:
            raise AssertionError(f"the example at {page.name} line {line} fails: {error!r}\n{code}") from error


def command_lines() -> list[tuple[str, list[str]]]:
    """(where, arguments) of every ``diffbmp`` command in the shell blocks."""
    found = []
    for page in PAGES:
        for line, code in blocks(page, ("bash", "sh", "shell", "")):
            for offset, text in enumerate(code.splitlines()):
                text = text.split("  #")[0].split(">")[0].strip()
                if not text.startswith("diffbmp ") or "[" in text or "|" in text or text.split()[1].endswith(":"):
                    continue  # prose, the command's own output, or a synopsis with placeholders
                found.append((f"{page.name}:{line + 1 + offset}", shlex.split(text)[1:]))
    return found


@pytest.mark.parametrize("where,args", command_lines(), ids=[where for where, _ in command_lines()])
def test_command_lines_are_accepted(where, args, workdir, capsys):
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as stop:
        pytest.fail(f"{where}: `diffbmp {' '.join(args)}` is refused by the parser (exit {stop.code})")
    if parsed.command == "fit":
        # The recipe, config keys and values resolve (without fitting).
        assert main([*args, "--print-config"]) == 0, f"{where}: {capsys.readouterr().err}"
    elif parsed.command in ("recipes", "config"):
        assert main(args) == 0, f"{where}: {capsys.readouterr().err}"
