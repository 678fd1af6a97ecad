"""Big canvases: coarse-to-fine levels, automatic crops, and the memory-bounded pieces under them
(float32 targets, banded SSIM, shrunk animation frames)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import diffbmp.fitting.loop as loop
from diffbmp.config import ConfigError
from diffbmp.fitting.image import build_config, fit
from diffbmp.fitting.levels import AUTO_CROP_ABOVE, Level, crop_side, level_index, plan_levels
from diffbmp.image_files import read_image
from diffbmp.losses import SSIM_BAND_ROWS, ssim_loss, ssim_value
from diffbmp.scene import Scene
from diffbmp.targets import Target, load_target, resize_map
from scenes import assert_same_scene

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- plans
def test_auto_levels_only_on_large_canvases_of_plain_fixed_count_fits():
    config = build_config(None, n=1000, steps=300)
    assert plan_levels(config, 2048, 1500, plain_fixed_count=True) == [Level(1.0, 0, 1000)]
    assert plan_levels(config, 4096, 4096, plain_fixed_count=False) == [Level(1.0, 0, 1000)]
    assert plan_levels(config, 3000, 4096, plain_fixed_count=True) == [
        Level(0.25, 0, 250), Level(0.5, 100, 500), Level(1.0, 200, 1000)]


def test_explicit_levels_follow_the_shares_and_are_checked():
    config = build_config(None, n=100, steps=10, levels={"scales": [0.5, 1], "steps": [3, 1], "counts": [0.3, 1]})
    plan = plan_levels(config, 64, 64, plain_fixed_count=True)
    assert plan == [Level(0.5, 0, 30), Level(1.0, 8, 100)]
    assert [level_index(plan, step) for step in (0, 7, 8, 9)] == [0, 0, 1, 1]
    with pytest.raises(ConfigError, match="plain strategy"):
        plan_levels(config, 64, 64, plain_fixed_count=False)
    with pytest.raises(ConfigError, match="one per level"):
        plan_levels(build_config(None, levels={"scales": [0.5, 1], "steps": [1, 1, 1]}), 64, 64, plain_fixed_count=True)
    with pytest.raises(ConfigError, match="must not decrease"):
        plan_levels(build_config(None, levels={"scales": [0.5, 1], "counts": [1, 0.5]}), 64, 64, plain_fixed_count=True)
    with pytest.raises(ConfigError, match="at least 3 steps"):
        plan_levels(build_config(None, steps=2, levels={"scales": [0.25, 0.5, 1]}), 64, 64, plain_fixed_count=True)
    with pytest.raises(ConfigError, match="ascending"):
        build_config(None, levels={"scales": [0.5, 0.75]})


def test_automatic_crops_above_the_threshold_only():
    auto = build_config(None)
    assert crop_side(auto, 2048, 1024) == 0
    assert crop_side(auto, 1024, 4096) == AUTO_CROP_ABOVE
    assert crop_side(build_config(None, minibatch={"crop": 0}), 8192, 8192) == 0
    assert crop_side(build_config(None, minibatch={"crop": 64}), 100, 50) == 64
    assert crop_side(build_config(None, minibatch={"crop": 128}), 100, 50) == 0  # larger than the canvas: whole


# ----------------------------------------------------------------------------- fits
LEVELS = dict(n=40, steps=24, size=48, seed=5, quiet=True, strategy="plain", background={"mode": "noise"},
              prune={"every": 5, "min_opacity": 0.3}, levels={"scales": [0.25, 0.5, 1]},
              minibatch={"crop": 16}, output={"frames": 6, "checkpoint_every": 7, "mp4": False})


def test_a_coarse_to_fine_fit_renders_each_level_and_splits_into_the_next(monkeypatch):
    seen: list[tuple[int, int]] = []
    real = loop.composite

    def recording(params, bank, background, height, width, **kwargs):
        if kwargs.get("validate") is not None:  # the training steps' renders
            seen.append((height, width))
        return real(params, bank, background, height, width, **kwargs)

    monkeypatch.setattr(loop, "composite", recording)
    options = dict(LEVELS, minibatch={"crop": 0})
    result = fit("skimage:chelsea", ["circle"], **options)
    # chelsea is 451x300: a 48x32 canvas, levels of 12x8, 24x16 and 48x32 pixels, 8 steps each.
    assert seen == [(8, 12)] * 8 + [(16, 24)] * 8 + [(32, 48)] * 8
    assert [row["n"] for row in result.history] == [10] * 8 + [20] * 8 + [40] * 8  # a row is logged before the split
    assert sorted(set(result.scene.stages.tolist())) == [0, 1, 2]
    assert result.psnr > 15


def test_a_coarse_to_fine_fit_resumes_exactly_across_levels(tmp_path):
    straight = fit("skimage:chelsea", ["circle"], out=tmp_path / "straight", **LEVELS)
    for stop in (8, 13):  # at a level's first step, and inside the second level
        def interrupt(info, stop=stop):
            if info.step == stop:
                raise KeyboardInterrupt

        folder = tmp_path / f"resumed{stop}"
        with pytest.raises(KeyboardInterrupt):
            fit("skimage:chelsea", ["circle"], out=folder, callback=interrupt, **LEVELS)
        assert torch.load(folder / "checkpoint.pt", weights_only=True)["step"] == stop
        resumed = fit("skimage:chelsea", ["circle"], out=folder, resume=True, **LEVELS)
        assert_same_scene(straight.scene, resumed.scene)
        assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]


def test_levels_refuse_fits_they_cannot_serve():
    with pytest.raises(ConfigError, match="plain strategy"):
        fit("skimage:chelsea", ["circle"], n=20, steps=6, size=32, quiet=True, levels={"scales": [0.5, 1]},
            strategy="search")


def test_animation_frames_are_shrunk_to_frame_size(tmp_path):
    fit("skimage:chelsea", ["circle"], n=20, steps=4, size=64, quiet=True, out=tmp_path,
        output={"frames": 4, "frame_size": 32, "mp4": False, "snapshot_every": 2})
    with Image.open(tmp_path / "fit.gif") as gif:
        assert gif.size == (32, 22)  # 64x43 at scale 0.5
        assert gif.n_frames >= 4
    with Image.open(sorted((tmp_path / "snapshots").glob("*.png"))[0]) as snapshot:
        assert snapshot.size == (64, 43)  # snapshots keep the whole canvas


# ----------------------------------------------------------------------------- memory-bounded pieces
def test_banded_ssim_equals_the_whole_image_ssim():
    generator = torch.Generator().manual_seed(0)
    height = 2 * SSIM_BAND_ROWS + 37
    image = torch.rand(height, 45, 3, generator=generator)
    target = (image + 0.2 * torch.rand(height, 45, 3, generator=generator)).clamp(0, 1)
    weight = (torch.rand(height, 45, generator=generator) > 0.3).float()
    for w in (None, weight):
        whole = 1.0 - float(ssim_loss(image.double(), target.double(), None if w is None else w.double()))
        assert math.isclose(ssim_value(image.double(), target.double(), None if w is None else w.double()), whole,
                            rel_tol=0, abs_tol=1e-12)


def test_targets_load_as_float32_with_the_float64_values_rounded(tmp_path):
    rng = np.random.default_rng(1)
    for name, pixels in (("eight.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)),
                         ("sixteen.png", rng.integers(0, 65536, (20, 30), dtype=np.uint16))):
        Image.fromarray(pixels).save(tmp_path / name)
        wide, _ = read_image(tmp_path / name)
        narrow, _ = read_image(tmp_path / name, dtype=np.float32)
        assert wide.dtype == np.float64 and narrow.dtype == np.float32
        np.testing.assert_array_equal(narrow, wide.astype(np.float32))
        target = load_target(tmp_path / name, size=None)
        np.testing.assert_array_equal(target.rgb.numpy(), wide[..., :3].astype(np.float32))


def test_a_resized_target_does_not_bleed_transparent_colour():
    rgb = torch.zeros(8, 8, 3)
    rgb[:, :4, 0] = 1.0  # opaque red on the left
    rgb[:, 4:, 1] = 1.0  # green under zero alpha on the right
    alpha = torch.zeros(8, 8)
    alpha[:, :4] = 1.0
    small = Target(rgb, alpha, "t", "t").resized(4, 3)
    assert small.rgb.shape == (4, 3, 3) and small.alpha.shape == (4, 3)
    assert float(small.rgb[..., 1].max()) == 0.0  # no green anywhere
    assert torch.allclose(small.alpha.mean(), torch.tensor(0.5), atol=1e-6)
    assert torch.equal(resize_map(torch.ones(8, 8), 2, 2), torch.ones(2, 2))
    opaque = Target(rgb, None, "t", "t")
    assert opaque.resized(8, 8) is opaque


def test_a_run_saved_before_automatic_crops_resumes_where_auto_means_the_same(tmp_path):
    options = dict(n=12, steps=6, size=32, seed=1, quiet=True, output={"frames": 0, "mp4": False, "gif": False})
    straight = fit("skimage:chelsea", ["circle"], **options)
    stopped = fit("skimage:chelsea", ["circle"], out=tmp_path, callback=lambda info: info.step == 3, **options)
    assert not stopped.completed
    # The folder as a version without minibatch.crop: auto wrote it: crop 0 stated outright.
    config = (tmp_path / "config.yaml").read_text()
    assert "crop: auto" in config
    (tmp_path / "config.yaml").write_text(config.replace("crop: auto", "crop: 0"))
    resumed = fit("skimage:chelsea", ["circle"], out=tmp_path, resume=True, **options)
    assert_same_scene(straight.scene, resumed.scene)
    # A crop that means something else on this canvas is still a changed setting.
    (tmp_path / "config.yaml").write_text(config.replace("crop: auto", "crop: 16"))
    with pytest.raises(ConfigError, match="minibatch.crop"):
        fit("skimage:chelsea", ["circle"], out=tmp_path, resume=True, **options)


@pytest.mark.parametrize("n", [1, 3])
def test_levels_on_a_tiny_canvas_with_few_primitives(n):
    result = fit("skimage:chelsea", ["circle"], n=n, steps=6, size=8, quiet=True, strategy="plain",
                 levels={"scales": [0.25, 0.5, 1]})
    assert len(result.scene) == n and len(result.history) == 6
    assert all(math.isfinite(row["loss"]) for row in result.history)


def test_wide_blurs_of_large_images_are_close_to_the_exact_ones(monkeypatch):
    import diffbmp.init as init

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:300, 0:400].astype(np.float32)
    smooth = np.stack([np.sin(x / 37.0) * np.cos(y / 23.0), x / 400.0, (y / 300.0) ** 2], axis=-1).astype(np.float32)
    image = smooth + 0.05 * rng.standard_normal(smooth.shape).astype(np.float32)  # texture over structure
    iy, ix = rng.integers(0, 300, 500), rng.integers(0, 400, 500)
    for array in (image, image[..., 0].copy()):
        for sigma in (0.5, 3.0, 8.0, 24.0, 64.0):
            exact = init._blur(array, sigma)[iy, ix]
            assert np.array_equal(init._blurred_at(array, sigma, iy, ix), exact)  # small images: exact
            monkeypatch.setattr(init, "SHRINK_ABOVE_PIXELS", 1000)
            shrunk = init._blurred_at(array, sigma, iy, ix)
            monkeypatch.setattr(init, "SHRINK_ABOVE_PIXELS", 2048 * 2048)
            assert shrunk.shape == exact.shape and shrunk.dtype == exact.dtype
            if sigma < 4:
                assert np.array_equal(shrunk, exact)
            else:
                # Within a few percent of the image's range (1 for the smooth structure).
                assert np.abs(shrunk - exact).max() < 0.04, (sigma, np.abs(shrunk - exact).max())
