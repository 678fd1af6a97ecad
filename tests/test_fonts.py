"""Fonts of text primitives: the ``text:<characters>@<font>`` syntax, font look-up, and the
font kept in the entry's source through rebuilt banks and scene files."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from diffbmp.errors import InputError
from diffbmp.primitives import BankEntry, TextureBank, fonts
from diffbmp.primitives.fonts import parse_text_spec, resolve_font, text_source
from diffbmp.primitives.loaders import render_text_rgba
from diffbmp.scene import Scene
from scenes import random_params

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
SERIF = DEJAVU / "DejaVuSerif.ttf"
SANS = DEJAVU / "DejaVuSans.ttf"
pytestmark = pytest.mark.skipif(not (SERIF.is_file() and SANS.is_file()), reason="DejaVu fonts are not installed")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


# ----------------------------------------------------------------------------- the @ rule
@pytest.mark.parametrize("body, text, font", [
    ("Aa", "Aa", None),
    ("Aa@DejaVu Serif", "Aa", "DejaVu Serif"),
    ("Aa@ DejaVu Serif ", "Aa", "DejaVu Serif"),
    ("Aa@/fonts/My Font.ttf", "Aa", "/fonts/My Font.ttf"),
    ("me@@home", "me@home", None),
    ("me@@home@DejaVu Sans", "me@home", "DejaVu Sans"),
    ("@", "@", None),
    ("@@", "@", None),
    ("@@@serif", "@", "serif"),
    ("a\nb@DejaVu Sans", "a\nb", "DejaVu Sans"),
])
def test_the_at_rule(body, text, font):
    assert parse_text_spec(body) == fonts.TextSpec(text, font)


@pytest.mark.parametrize("body", ["a@", "a@  "])
def test_an_at_with_no_font_after_it_is_refused(body):
    with pytest.raises(InputError, match="'@@' for an at-sign"):
        parse_text_spec(body)


@pytest.mark.parametrize("text", ["A", "@", "me@home", "@@x", "a\nb"])
def test_the_stored_source_parses_back_to_the_same_text_and_font(text):
    ref = resolve_font("DejaVu Serif")
    source = text_source(text, ref)
    parsed = parse_text_spec(source[len("text:"):])
    assert parsed.text == text
    assert resolve_font(parsed.font).path == str(SERIF.resolve())
    assert text_source(text, resolve_font(None)) == "text:" + fonts.format_text(text)
    assert parse_text_spec(fonts.format_text(text)).text == text


# ----------------------------------------------------------------------------- look-up
@pytest.mark.parametrize("name, file", [
    ("DejaVu Serif", "DejaVuSerif.ttf"),
    ("dejavu serif", "DejaVuSerif.ttf"),
    ("DejaVu Serif Bold", "DejaVuSerif-Bold.ttf"),
    ("DejaVuSans.ttf", "DejaVuSans.ttf"),
    ("DejaVuSans-Bold", "DejaVuSans-Bold.ttf"),
    (str(SANS), "DejaVuSans.ttf"),
])
def test_fonts_are_found_by_family_full_name_file_name_and_path(name, file):
    ref = resolve_font(name)
    assert Path(ref.path).name == file and ref.asked == name and ref.index == 0


def test_without_fontconfig_the_font_folders_are_searched(monkeypatch):
    monkeypatch.setattr(fonts.shutil, "which", lambda exe: None)
    assert Path(resolve_font("DejaVu Serif").path).name == "DejaVuSerif.ttf"
    assert Path(resolve_font("DejaVu Sans Mono").path).name == "DejaVuSansMono.ttf"


def test_a_hanging_fontconfig_times_out_and_the_folders_are_searched(monkeypatch):
    seen = {}

    def hang(*args, **kwargs):
        seen["timeout"] = kwargs.get("timeout")
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(fonts.shutil, "which", lambda exe: "/usr/bin/fc-match")
    monkeypatch.setattr(fonts.subprocess, "run", hang)
    assert Path(resolve_font("DejaVu Serif").path).name == "DejaVuSerif.ttf"
    assert seen["timeout"] == fonts.FC_MATCH_TIMEOUT


@pytest.mark.skipif(shutil.which("fc-match") is None, reason="fontconfig is not installed")
def test_fontconfig_answers_generic_families_but_its_substitutes_are_refused():
    assert Path(resolve_font("serif").path).suffix in (".ttf", ".otf", ".ttc")
    # fc-match answers every name with some font; a family it does not have is not accepted.
    with pytest.raises(InputError, match="no installed font is called 'Zzyzx Grotesque'"):
        resolve_font("Zzyzx Grotesque")


def test_unknown_fonts_name_close_installed_matches():
    with pytest.raises(InputError) as info:
        resolve_font("DejaVu Sarif")
    assert "'DejaVu Serif'" in str(info.value) and ".ttf" in str(info.value)
    with pytest.raises(InputError, match="does not exist"):
        resolve_font("/no/such/folder/Font.ttf")
    with pytest.raises(InputError) as info:
        TextureBank.from_names(["text:Q@DejaVu Sarif"])
    assert "'DejaVu Serif'" in str(info.value) and "'@@'" in str(info.value)
    with pytest.raises(InputError, match="write '@@' for an at-sign"):
        TextureBank.from_names(["text:me@home"])


# ----------------------------------------------------------------------------- banks
def test_a_font_per_shape_by_family_and_by_path():
    bank = TextureBank.from_names(["text:Q", "text:Q@DejaVu Serif", f"text:Q@{SANS}"], texture_size=64)
    assert bank.names == ["text:Q", "text:Q@DejaVu Serif", f"text:Q@{SANS}"]
    default, serif, sans = (bank[i].rgba.numpy() for i in range(3))
    assert np.array_equal(serif, render_text_rgba("Q", font=str(SERIF), size=64))
    assert np.array_equal(sans, render_text_rgba("Q", font=str(SANS), size=64))
    assert serif.shape != sans.shape or _psnr(serif[..., 3], sans[..., 3]) < 25
    assert default.shape != serif.shape or _psnr(default[..., 3], serif[..., 3]) < 25
    assert bank[0].source == "text:Q"
    assert bank[1].source == f"text:Q@DejaVu Serif|{SERIF.resolve()}"
    assert bank[2].source == f"text:Q@{SANS.resolve()}"


def test_the_bank_wide_font_draws_text_without_its_own():
    bank = TextureBank.from_names(["text:Q", "text:R@DejaVu Sans"], texture_size=64, font="DejaVu Serif")
    assert bank.names == ["text:Q", "text:R@DejaVu Sans"]
    assert np.array_equal(bank[0].rgba.numpy(), render_text_rgba("Q", font=str(SERIF), size=64))
    assert np.array_equal(bank[1].rgba.numpy(), render_text_rgba("R", font=str(SANS), size=64))
    assert bank[0].source == f"text:Q@DejaVu Serif|{SERIF.resolve()}"


def test_at_signs_in_text():
    bank = TextureBank.from_names(["text:@", "text:me@@home@DejaVu Sans"], texture_size=64)
    assert np.array_equal(bank[0].rgba.numpy(), render_text_rgba("@", size=64))
    assert np.array_equal(bank[1].rgba.numpy(), render_text_rgba("me@home", font=str(SANS), size=64))
    assert bank[1].source.startswith("text:me@@home@DejaVu Sans|")


def test_multiline_text_is_taller_than_one_line():
    one = render_text_rgba("abcd", font=str(SANS), size=64)
    two = render_text_rgba("ab\ncd", font=str(SANS), size=64)
    assert one.shape[0] < one.shape[1] and two.shape[0] > two.shape[1]


def test_kerning_pulls_pairs_together():
    # DejaVu Sans kerns "AV" (GPOS): the pair is narrower than its letters side by side.
    kerned = render_text_rgba("AV", font=str(SANS), size=128)
    spaced = render_text_rgba("A\u2009V", font=str(SANS), size=128)  # a thin space breaks the pair
    assert kerned.shape[1] == spaced.shape[1] == 128
    assert kerned.shape[0] > spaced.shape[0]  # same width, so the kerned pair is relatively taller


# ----------------------------------------------------------------------------- rebuilt banks and scene files
def test_rebuilt_bitmaps_keep_the_font():
    bank = TextureBank.from_names(["text:Q@DejaVu Serif", "text:R"], texture_size=64, font=str(SANS))
    sharper = bank.rebuilt(512)
    assert sharper.names == bank.names
    assert np.array_equal(sharper[0].rgba.numpy(), render_text_rgba("Q", font=str(SERIF), size=512))
    assert np.array_equal(sharper[1].rgba.numpy(), render_text_rgba("R", font=str(SANS), size=512))
    pillows = render_text_rgba("Q", size=512)
    assert pillows.shape != sharper[0].rgba.shape or _psnr(pillows[..., 3], sharper[0].rgba.numpy()[..., 3]) < 25


def test_the_font_survives_a_scene_file(tmp_path):
    bank = TextureBank.from_names(["circle", "text:Q@DejaVu Serif"], texture_size=48)
    scene = Scene.from_params(random_params(6, 32, 32, seed=1, num_shapes=2), bank, 32, 32)
    loaded = Scene.load(scene.save(tmp_path / "scene.npz"))
    assert loaded.bank[1].source == bank[1].source
    remade = loaded.bank.rebuilt(256)[1].rgba.numpy()
    assert np.array_equal(remade, render_text_rgba("Q", font=str(SERIF), size=256))


def test_a_font_this_machine_lacks_keeps_the_stored_bitmap(tmp_path):
    private = tmp_path / "MyFont.ttf"
    shutil.copy(SERIF, private)
    bank = TextureBank.from_names([f"text:Q@{private}"], texture_size=48)
    stored = bank[0].rgba.clone()
    private.unlink()
    kept = bank.rebuilt(256)
    assert torch.equal(kept[0].rgba, stored) and kept[0].source == bank[0].source
    lost = TextureBank([BankEntry("text:Q@Zzyzx", 0, stored, "text:Q@Zzyzx Grotesque|/gone/Zzyzx.ttf")])
    assert torch.equal(lost.rebuilt(256)[0].rgba, stored)


def test_a_moved_font_file_is_found_again_by_its_family():
    stored = torch.from_numpy(render_text_rgba("Q", font=str(SERIF), size=48))
    moved = TextureBank([BankEntry("text:Q@DejaVu Serif", 0, stored, "text:Q@DejaVu Serif|/old/machine/DejaVuSerif.ttf")])
    assert np.array_equal(moved.rebuilt(128)[0].rgba.numpy(), render_text_rgba("Q", font=str(SERIF), size=128))


def test_old_sources_without_a_font_use_the_built_in_font():
    old = TextureBank([BankEntry("text:Q", 0, torch.ones(8, 8, 4), "text:Q")])
    assert np.array_equal(old.rebuilt(64)[0].rgba.numpy(), render_text_rgba("Q", size=64))
