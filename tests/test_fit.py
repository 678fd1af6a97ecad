"""The fitting loop: schedules, convergence, determinism, resume, pruning, stages, noisy canvas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp.config import ConfigError
from diffbmp.fitting.image import build_config, fit
from diffbmp.fitting.loop import Fitter
from diffbmp.fitting.optim import RowAdam
from diffbmp.fitting.schedules import blur_at, lr_factor
from diffbmp.primitives import TextureBank
from diffbmp.scene import Scene
from diffbmp.targets import Target, load_target
from scenes import assert_same_scene

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# ----------------------------------------------------------------------------- schedules
def test_constant_schedule():
    assert [lr_factor(s, 100, "constant") for s in (0, 50, 99)] == [1.0, 1.0, 1.0]


def test_cosine_schedule():
    assert lr_factor(0, 101, "cosine", final=0.1) == 1.0
    assert math.isclose(lr_factor(50, 101, "cosine", final=0.1), 0.55)
    assert math.isclose(lr_factor(100, 101, "cosine", final=0.1), 0.1)


def test_exponential_and_linear_schedules():
    assert math.isclose(lr_factor(50, 101, "exponential", final=0.01), 0.1)
    assert math.isclose(lr_factor(100, 101, "exponential", final=0.01), 0.01)
    assert math.isclose(lr_factor(25, 101, "linear", final=0.2), 0.8)


def test_warmup_ramps_up_then_decays():
    values = [lr_factor(s, 110, "cosine", warmup=10, final=0.0) for s in range(110)]
    assert math.isclose(values[0], 1 / 11)
    assert math.isclose(values[9], 10 / 11)
    assert values[10] == 1.0  # the decay starts after the warm-up
    assert math.isclose(values[-1], 0.0, abs_tol=1e-12)
    assert all(a < b for a, b in zip(values[:10], values[1:11]))


def test_blur_anneal():
    assert blur_at(0, 101, 4.0, 0.0, 0.8) == 4.0
    assert math.isclose(blur_at(40, 101, 4.0, 0.0, 0.8), 2.0)
    assert blur_at(80, 101, 4.0, 0.0, 0.8) == 0.0
    assert blur_at(100, 101, 4.0, 0.0, 0.8) == 0.0
    assert math.isclose(blur_at(40, 101, 4.0, 0.0, 0.8, "cosine"), 2.0)
    assert blur_at(20, 101, 4.0, 0.0, 0.8, "cosine") > blur_at(20, 101, 4.0, 0.0, 0.8, "linear")


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown schedule"):
        lr_factor(0, 10, "sawtooth")


# ----------------------------------------------------------------------------- optimiser
def test_row_adam_matches_torch_adam_and_resets_rows():
    torch.manual_seed(0)
    mine = torch.randn(5, 2, requires_grad=True)
    reference = mine.detach().clone().requires_grad_(True)
    ours = RowAdam({"x": 0.1})
    theirs = torch.optim.Adam([reference], lr=0.1)
    for _ in range(5):
        for p in (mine, reference):
            p.grad = None
            (p**2).sum().backward()
        ours.step({"x": mine})
        theirs.step()
    assert torch.allclose(mine, reference, atol=1e-5)  # float32 rounding of the bias corrections
    ours.reset(torch.tensor([1]))
    assert float(ours.state["x"]["t"][1]) == 0 and float(ours.state["x"]["t"][0]) == 5
    ours.select(torch.tensor([4, 0]))
    ours.append(3)
    assert ours.state["x"]["m"].shape == (5, 2) and ours.state["x"]["t"].tolist() == [5, 5, 0, 0, 0]


def test_row_adam_row_scale_scales_each_rows_step():
    start = torch.tensor([[1.0, -2.0], [3.0, 0.5], [-1.0, 2.0]])
    scale = torch.tensor([1.0, 0.3, 0.0])
    runs = {}
    for label, row_scale in (("full", None), ("scaled", scale)):
        rows = start.clone().requires_grad_(True)
        background = torch.zeros(3, requires_grad=True)
        adam = RowAdam({"x": 0.1, "bg": 0.1}, shared=("bg",))
        steps = []
        for _ in range(4):
            rows.grad = background.grad = None
            ((rows**2).sum() + (background - 1).pow(2).sum()).backward()
            before = rows.detach().clone()
            adam.step({"x": rows, "bg": background}, row_scale=row_scale)
            steps.append(rows.detach() - before)
        runs[label] = (rows.detach(), background.detach(), steps)
    full, scaled = runs["full"], runs["scaled"]
    # The first step of each row is its scale times the full-rate step (same moments).
    np.testing.assert_allclose(scaled[2][0].numpy(), (full[2][0] * scale[:, None]).numpy(), rtol=1e-5)
    assert torch.equal(scaled[0][0], full[0][0])  # scale 1: the same path
    assert torch.equal(scaled[0][2], start[2])  # scale 0: frozen
    assert float((scaled[0][1] - start[1]).abs().min()) > 0
    assert float((scaled[0][1] - start[1]).abs().max()) < float((full[0][1] - start[1]).abs().max())
    assert torch.equal(scaled[1], full[1])  # shared tensors keep their full rate


# ----------------------------------------------------------------------------- fits
SMALL = dict(size=48, quiet=True)


def test_a_short_fit_cuts_the_loss_to_a_third():
    # 100 circles, 150 steps, 64x64 canvas, random start with random colours.
    result = fit("skimage:astronaut", ["circle"], n=100, steps=150, size=64, quiet=True,
                 init={"method": "random", "colors": "random"})
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last <= first / 3, (first, last)
    assert result.psnr > 17.0
    assert len(result.scene) == 100


def test_same_seed_same_result_and_other_seed_differs():
    options = dict(n=40, steps=25, size=40, quiet=True, background={"mode": "noise"}, prune={"every": 10})
    a = fit("skimage:coffee", ["circle", "gaussian"], seed=7, **options)
    b = fit("skimage:coffee", ["circle", "gaussian"], seed=7, **options)
    c = fit("skimage:coffee", ["circle", "gaussian"], seed=8, **options)
    assert_same_scene(a.scene, b.scene)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    assert not torch.equal(a.scene.means, c.scene.means)


RESUMABLE = dict(
    n=48, steps=40, size=40, seed=3, quiet=True,
    background={"mode": "noise"},          # random canvases every step
    prune={"every": 10, "min_opacity": 0.3},  # pruning and re-seeding draw random numbers too
    stages={"count": 2, "until": 0.5},
    minibatch={"crop": 32},                # random crops as well
    output={"frames": 8, "checkpoint_every": 15, "mp4": False},
)


def test_resume_after_interruption_gives_the_same_final_scene(tmp_path):
    straight = fit("skimage:chelsea", ["circle"], out=tmp_path / "straight", **RESUMABLE)

    def interrupt(info):
        if info.step == 23:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit("skimage:chelsea", ["circle"], out=tmp_path / "resumed", callback=interrupt, **RESUMABLE)
    state = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 23  # the checkpoint of the interrupted step, not the periodic one (15)
    resumed = fit("skimage:chelsea", ["circle"], out=tmp_path / "resumed", resume=True, **RESUMABLE)
    assert resumed.completed
    assert_same_scene(straight.scene, resumed.scene)
    assert len(resumed.history) == 40
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    # The saved scene file holds the same numbers.
    assert_same_scene(Scene.load(tmp_path / "resumed" / "scene.npz"), straight.scene)
    assert (tmp_path / "resumed" / "fit.gif").exists()


def test_a_crash_mid_step_saves_the_last_finished_step(tmp_path, monkeypatch):
    import diffbmp.fitting.loop as loop

    options = dict(RESUMABLE, output={"frames": 0, "checkpoint_every": 0})
    straight = fit("skimage:chelsea", ["circle"], **options)
    real_loss = loop.total_loss
    calls = {"n": 0}

    def failing_loss(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 27:  # step 27 has drawn its noise and crop already
            raise RuntimeError("simulated crash")
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(loop, "total_loss", failing_loss)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit("skimage:chelsea", ["circle"], out=tmp_path, **options)
    monkeypatch.setattr(loop, "total_loss", real_loss)
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 26
    resumed = fit("skimage:chelsea", ["circle"], out=tmp_path, resume=True, **options)
    assert_same_scene(straight.scene, resumed.scene)


def test_callback_can_stop_a_fit_and_the_run_resumes(tmp_path):
    options = dict(RESUMABLE, output={"frames": 0, "checkpoint_every": 0})
    straight = fit("skimage:chelsea", ["circle"], **options)
    stopped = fit("skimage:chelsea", ["circle"], out=tmp_path, callback=lambda info: info.step == 31, **options)
    assert not stopped.completed and len(stopped.history) == 31
    resumed = fit("skimage:chelsea", ["circle"], out=tmp_path, resume=True, **options)
    assert_same_scene(straight.scene, resumed.scene)


def make_fitter(config_options: dict, target: Target, names=("circle",)) -> Fitter:
    """A fitter of the plain strategy (all n primitives from the initialisation)."""
    config = build_config(None, **{"strategy": "plain", **config_options})
    return Fitter(config, target, TextureBank.from_names(list(names)), device=torch.device("cpu"), backend=None, progress=False)


def test_pruning_keeps_n_and_moves_dead_primitives_to_the_error():
    target = load_target("skimage:astronaut", 48)
    fitter = make_fitter(dict(n=60, steps=10, size=48, init={"opacity": 0.8}), target)
    fitter.initialise()
    scene = fitter.scene
    with torch.no_grad():
        scene.opacity_logits[:10] = -6.0  # faint: dead
        scene.log_scales[10:15] = math.log(0.2)  # tiny: dead
    dead_means = scene.means[:15].detach().clone()
    pruned = fitter.prune()
    assert pruned == 15
    after = fitter.scene
    assert len(after) == 60
    # Survivors keep their order at the bottom; the re-seeded primitives go on top.
    assert torch.equal(after.means[:45].detach(), scene.means[15:].detach())
    fresh = after.params()
    assert bool((fresh.opacities[45:] > 0.5).all())
    assert bool((fresh.scales[45:].max(dim=1).values >= 0.5).all())
    assert not torch.equal(after.means[45:].detach(), dead_means)


def test_pruning_seeds_where_the_error_is():
    # A target that is white except for a black square; the scene paints everything white.
    rgb = torch.ones(48, 48, 3)
    rgb[30:42, 6:18] = 0.0
    target = Target(rgb, None, "square", "test")
    fitter = make_fitter(dict(n=30, steps=10, size=48, background={"mode": "fixed", "color": "white"}), target)
    fitter.initialise()
    with torch.no_grad():
        fitter.scene.opacity_logits[:] = -6.0  # everything invisible: the render is the white canvas
    assert fitter.prune() == 30
    means = fitter.scene.means.detach()
    inside = (means[:, 0] > 4) & (means[:, 0] < 20) & (means[:, 1] > 28) & (means[:, 1] < 44)
    assert bool(inside.all())
    # Mostly dark: each new primitive is sized so that the target is nearly even under it.
    colours = torch.sigmoid(fitter.scene.color_logits.detach()).mean(dim=1)
    deep = (means[:, 0] > 8) & (means[:, 0] < 16) & (means[:, 1] > 32) & (means[:, 1] < 40)
    assert int(deep.sum()) > 10 and bool((colours[deep] < 0.3).all())
    assert float(colours.mean()) < 0.4


def test_pruning_without_reseeding_drops_dead_primitives():
    target = load_target("skimage:astronaut", 48)
    fitter = make_fitter(dict(n=40, steps=10, size=48, prune={"reseed": False}), target)
    fitter.initialise()
    with torch.no_grad():
        fitter.scene.opacity_logits[:5] = -6.0
    assert fitter.prune() == 5
    assert len(fitter.scene) == 35


def test_stages_add_primitives_coarse_to_fine():
    result = fit("skimage:astronaut", ["circle"], n=60, steps=30, size=48, quiet=True, prune={"every": 0},
                 stages={"count": 3, "until": 0.5, "size_decay": 0.5})
    counts = [row["n"] for row in result.history]
    assert counts[0] == 20 and counts[-1] == 60
    assert sorted(set(counts)) == [20, 40, 60]
    assert counts.index(40) == 8 and counts.index(60) == 15  # stages begin at steps 8 and 15 (0.5 * 30 / 2)


def test_noisy_canvas_with_an_rgba_target(tmp_path):
    # An opaque orange disc on a transparent canvas.
    yy, xx = np.mgrid[0:40, 0:40]
    disc = ((xx - 19.5) ** 2 + (yy - 19.5) ** 2 <= 12**2).astype(np.float32)
    rgba = np.zeros((40, 40, 4), np.float32)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 1.0, 0.5, 0.1, disc
    result = fit(rgba, ["circle"], n=30, steps=120, size=40, quiet=True, out=tmp_path, output={"frames": 0})
    assert result.config.background.mode == "auto"
    alpha = result.scene.render(background=False)[1]
    target_alpha = torch.from_numpy(disc)
    assert float((alpha - target_alpha).abs().mean()) < 0.12
    assert float(alpha[:4, :4].max()) < 0.2  # the transparent corners stay transparent
    assert float(alpha[16:24, 16:24].min()) > 0.8  # the disc is covered
    final = np.asarray(Image.open(tmp_path / "final.png"))
    assert final.shape == (40, 40, 4) and final[0, 0, 3] < 60 and final[20, 20, 3] > 200


def test_learned_background_moves_and_fixed_does_not():
    rgb = torch.zeros(32, 32, 3)
    rgb[..., 2] = 1.0  # pure blue; few, faint primitives leave the background to do the work
    target = Target(rgb, None, "blue", "test")
    # The plain fit's faint start (a search would cover the canvas in blue at once).
    learned = fit(rgb.numpy(), ["circle"], n=4, steps=60, size=32, quiet=True, background={"mode": "learned", "color": "white"},
                  optim={"lr": {"background": 0.25}}, init={"coverage": 0.1}, prune={"every": 0}, strategy="plain")
    colour = learned.scene.background()
    assert float(colour[2]) > 0.9 and float(colour[0]) < 0.5
    fixed = fit(target.rgb.numpy(), ["circle"], n=4, steps=10, size=32, quiet=True, background={"mode": "fixed", "color": "white"})
    assert torch.allclose(fixed.scene.background(), torch.ones(3), atol=1e-3)


def test_minibatch_crops_still_fit():
    result = fit("skimage:astronaut", ["circle"], n=80, steps=60, size=64, quiet=True, minibatch={"crop": 32},
                 init={"method": "random", "colors": "random"})
    assert result.history[-1]["loss"] < 0.6 * result.history[0]["loss"]


def test_parameters_stay_within_limits():
    result = fit("skimage:astronaut", ["circle"], n=30, steps=30, size=32, quiet=True,
                 optim={"lr": {"means": 0.2, "scales": 1.0}}, limits={"min_scale": 0.5, "max_scale": 0.5, "margin": 0.1})
    scales = result.scene.log_scales.exp()
    assert float(scales.min()) >= 0.5 - 1e-5 and float(scales.max()) <= 16 + 1e-4
    means = result.scene.means
    assert float(means.min()) >= -3.2 - 1e-4 and float(means.max()) <= 35.2 + 1e-4


def test_mask_keeps_the_painting_inside(tmp_path):
    result = fit("skimage:astronaut", ["circle"], n=60, steps=60, size=48, quiet=True, mask="rect:0,0,0.5,1",
                 loss={"outside": 5.0}, background={"mode": "fixed", "color": "white"})
    alpha = result.scene.render()[1]
    assert float(alpha[:, 30:].mean()) < 0.05
    assert float(alpha[:, :20].mean()) > 0.9


def test_run_folder_refuses_another_run_unless_forced(tmp_path):
    options = dict(n=10, steps=3, size=24, quiet=True, output={"frames": 0})
    fit("skimage:camera", ["circle"], out=tmp_path, **options)
    with pytest.raises(ConfigError, match="already holds a run"):
        fit("skimage:camera", ["circle"], out=tmp_path, **options)
    with pytest.raises(ConfigError, match=r"differ in `n` \(10 -> 12\)"):
        fit("skimage:camera", ["circle"], out=tmp_path, resume=True, **dict(options, n=12))
    forced = fit("skimage:camera", ["circle"], out=tmp_path, force=True, **dict(options, n=12))
    assert len(forced.scene) == 12


def test_missing_ffmpeg_warns_and_still_writes_the_gif(tmp_path, monkeypatch):
    def no_ffmpeg():
        raise RuntimeError("No ffmpeg exe could be found")

    try:
        import imageio_ffmpeg
    except ImportError:
        pass  # not installed (as on the GPU machines): the very case under test
    else:
        monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_ffmpeg)
    result = fit("skimage:camera", ["circle"], n=10, steps=4, size=24, out=tmp_path, output={"frames": 4})
    assert (tmp_path / "fit.gif").exists() and not (tmp_path / "fit.mp4").exists()
    assert "gif" in result.paths and "mp4" not in result.paths


def test_fit_result_metrics_match_the_scene():
    result = fit("skimage:camera", ["circle"], n=30, steps=20, size=32, quiet=True)
    image = result.scene.render()[0]
    error = float(((image - result.target.rgb) ** 2).mean())
    assert math.isclose(result.mse, error, rel_tol=1e-5)
    assert math.isclose(result.psnr, 10 * math.log10(1 / error), rel_tol=1e-5)
    assert math.isclose(result.mse_pm1, 4 * error, rel_tol=1e-6)
    assert 0 < result.ssim < 1


def test_unknown_option_suggests_the_right_name():
    with pytest.raises(ConfigError, match="did you mean `steps`"):
        fit("skimage:camera", ["circle"], n=10, stpes=5)
    with pytest.raises(ConfigError, match=r"optim\.lr\.mean.*did you mean `means`"):
        fit("skimage:camera", ["circle"], n=10, steps=5, optim__lr__mean=0.1)


# ----------------------------------------------------------------------------- targets
def test_targets_from_arrays_files_and_scikit_image(tmp_path):
    from diffbmp.errors import InputError
    from diffbmp.targets import load_map

    rgb8 = (np.random.default_rng(0).random((30, 60, 3)) * 255).astype(np.uint8)
    from_numpy = load_target(rgb8, size=40)
    assert (from_numpy.height, from_numpy.width) == (20, 40) and from_numpy.alpha is None
    chw = torch.from_numpy(rgb8).permute(2, 0, 1).float() / 255
    assert torch.allclose(load_target(chw, size=40).rgb, from_numpy.rgb, atol=1e-5)
    grey = load_target(np.full((10, 10), 0.25), size=None)
    assert grey.rgb.shape == (10, 10, 3) and float(grey.rgb.mean()) == 0.25
    Image.fromarray(rgb8).save(tmp_path / "photo.png")
    from_file = load_target(tmp_path / "photo.png", size=40)
    assert torch.equal(from_file.rgb, from_numpy.rgb) and from_file.name == "photo"
    rgba = np.zeros((20, 20, 4), np.float32)
    rgba[5:15, 5:15] = [1.0, 0.0, 0.0, 1.0]
    transparent = load_target(rgba, size=40)
    assert transparent.alpha is not None and transparent.alpha.shape == (40, 40)
    assert float(transparent.alpha[0, 0]) == 0.0 and float(transparent.alpha[20, 20]) == 1.0
    assert torch.allclose(transparent.rgb[20, 20], torch.tensor([1.0, 0.0, 0.0]))  # no dark fringe from transparent pixels
    assert load_target(np.ones((8, 8, 4), np.float32)).alpha is None  # fully opaque RGBA is RGB
    with pytest.raises(InputError, match=r"does not exist\. Did you mean .*photo\.png"):
        load_target(tmp_path / "phot.png")
    with pytest.raises(InputError, match="skimage:astronaut"):
        load_target("skimage:astronot")
    with pytest.raises(InputError, match=r"float images must lie in \[0, 1\]"):
        load_target(np.full((4, 4, 3), 2.0))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read target image .*broken.png"):
        load_target(tmp_path / "broken.png")
    # Weight maps: an image file (luminance) resized to the canvas, or a generated shape.
    weights = np.zeros((30, 60), np.uint8)
    weights[:, 30:] = 255
    Image.fromarray(weights).save(tmp_path / "weights.png")
    loaded = load_map(tmp_path / "weights.png", 20, 40)
    assert loaded.shape == (20, 40) and float(loaded[:, :18].max()) == 0.0 and float(loaded[:, 22:].min()) == 1.0
    ellipse = load_map("ellipse:0.5,0.5,0.25,0.25", 40, 40, "mask")
    assert float(ellipse[20, 20]) == 1.0 and float(ellipse[2, 2]) == 0.0
    with pytest.raises(InputError, match="aspect ratio"):
        load_map(tmp_path / "weights.png", 40, 40)
    with pytest.raises(InputError, match="ellipse:cx,cy,rx,ry"):
        load_map("ellipse:1,2", 40, 40, "mask")


def test_resuming_with_a_different_target_is_refused(tmp_path):
    image = (np.random.default_rng(0).random((24, 24, 3)) * 255).astype(np.uint8)
    options = dict(n=10, steps=4, size=24, quiet=True, output={"frames": 0})
    fit(image, ["circle"], out=tmp_path, callback=lambda info: info.step == 2, **options)
    with pytest.raises(ConfigError, match="target image differs"):
        fit(255 - image, ["circle"], out=tmp_path, resume=True, **options)
    assert fit(image, ["circle"], out=tmp_path, resume=True, **options).completed


def test_a_base_config_keeps_its_primitives_unless_overridden():
    base = build_config(None, primitives=["brush_flat"], n=5, steps=2, size=24)
    kept = fit("skimage:camera", config=base, quiet=True)
    assert kept.config.primitives == ["brush_flat"] and kept.scene.bank.names == ["brush_flat"]
    replaced = fit("skimage:camera", ["gaussian"], config=base, quiet=True)
    assert replaced.scene.bank.names == ["gaussian"]
