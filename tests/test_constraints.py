"""Per-shape rotation and aspect constraints: exact through the activations, differentiable,
kept by every way a fit adds or edits primitives, saved with the scene, and the config's errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from diffbmp import InputError, PrimitiveParams, TextureBank, fit
from diffbmp.config import load_config
from diffbmp.constraints import RAW_REACH, START_SHARE, Constraint, ShapeConstraints, constraints_for
from diffbmp.errors import ConfigError
from diffbmp.fitting.image import build_config
from diffbmp.fitting.loop import Fitter
from diffbmp.scene import SCENE_FORMAT_VERSION, Scene
from diffbmp.targets import load_target

from scenes import assert_same_scene, random_params, resumed_after_interrupt

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

DEG = math.pi / 180


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    return TextureBank.from_names(["circle", "gaussian", "text:Q", "brush_flat"], texture_size=32)


@pytest.fixture(scope="module")
def constraints(bank) -> ShapeConstraints:
    """Circles keep their aspect; Gaussians stay upright; glyphs turn at most 20 degrees and
    keep their proportions; brush strokes turn within [10, 70] degrees."""
    return ShapeConstraints([Constraint(None, 1.0), Constraint((0.0, 0.0), None),
                             Constraint((-20 * DEG, 20 * DEG), bank[2].aspect), Constraint((10 * DEG, 70 * DEG), None)])


def raw_scene(bank, constraints, n=24, seed=0, spread=6.0, dtype=torch.float32) -> Scene:
    """A scene with arbitrary (large) raw values under ``constraints``."""
    g = torch.Generator().manual_seed(seed)
    params = random_params(n, 40, 40, seed=seed, num_shapes=len(bank))
    scene = Scene.from_params(params, bank, 40, 40).to(dtype=dtype)
    scene.rotations = (torch.randn(n, generator=g) * spread).to(dtype)
    scene.log_scales = (torch.randn(n, 2, generator=g) * 1.5 + 1).to(dtype)
    scene.constraints = constraints
    return scene


# ----------------------------------------------------------------------------- the maps
def test_the_constraints_hold_for_any_raw_values(bank, constraints):
    scene = raw_scene(bank, constraints, n=200, spread=50.0)
    params = scene.params()
    ids = scene.shape_ids
    ratio = params.scales[:, 0] / params.scales[:, 1]
    assert torch.equal(params.scales[ids == 0, 0], params.scales[ids == 0, 1])  # circles: exactly round
    torch.testing.assert_close(ratio[ids == 2], torch.full_like(ratio[ids == 2], bank[2].aspect), rtol=1e-5, atol=0)
    assert bool((params.rotations[ids == 1] == 0).all())
    assert float(params.rotations[ids == 2].abs().max()) <= 20 * DEG
    brush = params.rotations[ids == 3]
    assert float(brush.min()) >= 10 * DEG - 1e-6 and float(brush.max()) <= 70 * DEG + 1e-6
    # Free parts are the plain activations.
    assert torch.equal(params.rotations[ids == 0], scene.rotations[ids == 0])
    assert torch.equal(params.scales[ids == 3], scene.log_scales[ids == 3].exp())
    assert len({0, 1, 2, 3} - set(ids.tolist())) == 0


@pytest.mark.parametrize("shape", [0, 1, 2, 3])
def test_the_activations_pass_a_float64_gradcheck(bank, constraints, shape):
    scene = raw_scene(bank, constraints, n=6, seed=shape, spread=0.5, dtype=torch.float64)
    scene.shape_ids = torch.tensor([shape, shape, shape, 0, 2, 3])

    def activations(log_scales, rotations):
        scene.log_scales, scene.rotations = log_scales, rotations
        params = scene.params()
        return params.scales, params.rotations

    inputs = (scene.log_scales.clone().requires_grad_(True), scene.rotations.clone().requires_grad_(True))
    assert torch.autograd.gradcheck(activations, inputs)
    scales, rotations = activations(*inputs)
    (scales.sum() + rotations.sum()).backward()
    grad_rotations = inputs[1].grad
    if shape == 1:  # upright: the raw rotation does not matter
        assert bool((grad_rotations[:3] == 0).all())
    else:
        assert bool((grad_rotations[:3] != 0).all())
    if shape in (0, 2):  # a kept aspect: one size drives both half-extents
        grad = inputs[0].grad[:3]
        torch.testing.assert_close(grad[:, 0], grad[:, 1])
        torch.testing.assert_close(grad[:, 0] + grad[:, 1], scales[:3].sum(dim=1).detach())
    else:
        torch.testing.assert_close(inputs[0].grad[:3], scales[:3].detach())


def test_a_scene_without_constraints_is_unchanged_bit_for_bit(bank):
    params = random_params(30, 40, 40, seed=3, num_shapes=len(bank))
    plain = Scene.from_params(params, bank, 40, 40)
    assert plain.constraints is None
    out = plain.params()
    assert out.rotations is plain.rotations and torch.equal(out.scales, torch.exp(plain.log_scales))
    # No constraints, or constraints that leave everything free, give the same numbers.
    assert Scene.from_params(params, bank, 40, 40, constraints=None).params().scales.equal(out.scales)
    free = plain.with_constraints(ShapeConstraints([Constraint()] * len(bank)))
    assert torch.equal(free.params().scales, out.scales) and torch.equal(free.params().rotations, out.rotations)
    assert plain.with_constraints(None) is plain


def test_from_params_reproduces_parameters_that_keep_the_constraints(bank, constraints):
    params = random_params(40, 40, 40, seed=4, num_shapes=len(bank))
    ids = params.shape_ids
    # Make the parameters keep the constraints.
    size = params.scales.prod(dim=1).sqrt()
    aspect = torch.tensor([1.0, 1.0, bank[2].aspect, 1.0])[ids]
    keep = (ids == 0) | (ids == 2)
    params.scales = torch.where(keep.unsqueeze(1), torch.stack([size * aspect.sqrt(), size / aspect.sqrt()], 1), params.scales)
    low = torch.tensor([-math.pi, 0.0, -20 * DEG, 10 * DEG])[ids]
    high = torch.tensor([math.pi, 0.0, 20 * DEG, 70 * DEG])[ids]
    params.rotations = low + (high - low) * torch.rand(40, generator=torch.Generator().manual_seed(1))
    scene = Scene.from_params(params, bank, 40, 40, constraints=constraints)
    assert scene.constraints == constraints
    back = scene.params()
    torch.testing.assert_close(back.scales, params.scales, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(back.rotations, params.rotations, rtol=1e-5, atol=2e-5)
    # Parameters that break them get the nearest that keeps them.
    params.rotations = torch.full((40,), 1.5)
    clipped = Scene.from_params(params, bank, 40, 40, constraints=constraints).params().rotations
    torch.testing.assert_close(clipped[ids == 2], torch.full_like(clipped[ids == 2], 20 * DEG), rtol=1e-4, atol=1e-5)


def test_new_primitives_start_inside_their_ranges(bank, constraints):
    params = random_params(40, 40, 40, seed=5, num_shapes=len(bank))
    params.rotations = torch.linspace(-3.0, 3.0, 40)
    scene = Scene.from_params(params, bank, 40, 40).with_constraints(constraints, start=True)
    rotations = scene.params().rotations
    glyph = scene.shape_ids == 2
    outside = glyph & (params.rotations.abs() > 20 * DEG)
    inside = glyph & ~outside
    assert bool(outside.any()) and bool((rotations[outside] == 0).all())  # outside a range: its centre
    assert float(rotations[inside].abs().max()) <= START_SHARE * 20 * DEG + 1e-6


def test_concat_needs_the_same_constraints(bank, constraints):
    params = random_params(5, 40, 40, seed=6, num_shapes=len(bank))
    a = Scene.from_params(params, bank, 40, 40, constraints=constraints)
    with pytest.raises(InputError, match="same constraints"):
        a.concat(Scene.from_params(params, bank, 40, 40))
    assert len(a.concat(a)) == 10 and a.concat(a).constraints == constraints
    with pytest.raises(InputError, match="constraints are for 2 shapes but its bank has 4"):
        Scene.from_params(params, bank, 40, 40, constraints=ShapeConstraints([Constraint(), Constraint()]))


def test_save_and_load_keep_the_constraints(bank, constraints, tmp_path):
    scene = raw_scene(bank, constraints)
    path = scene.save(tmp_path / "constrained.npz")
    with np.load(path) as data:
        header = json.loads(data["header"].tobytes())
    assert header["version"] == SCENE_FORMAT_VERSION == 2 and len(header["constraints"]) == len(bank)
    loaded = Scene.load(path)
    assert loaded.constraints == constraints
    assert torch.equal(loaded.params().scales, scene.params().scales)
    assert torch.equal(loaded.params().rotations, scene.params().rotations)
    assert torch.equal(loaded.render()[0], scene.render()[0])
    # A damaged constraints entry is named.
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    header["constraints"] = header["constraints"][:2]
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(InputError, match="damaged scene file: its constraints are not a list of 4"):
        Scene.load(path)


# ----------------------------------------------------------------------------- the config
def test_patterns_pick_shapes_and_later_patterns_win(bank):
    rules = {"text:*": {"rotation": 20, "aspect": "keep"}, "brush_*": {"rotation": [10, 70]}, "text:Q": {"rotation": "free"}}
    made = constraints_for(rules, bank, bank.names)
    assert made.entries[0] == made.entries[1] == Constraint()
    assert made.entries[2] == Constraint(None, bank[2].aspect)  # the later pattern frees its rotation, keeps the aspect
    assert made.entries[3].rotation == pytest.approx((10 * DEG, 70 * DEG))
    assert constraints_for({"circle": {"aspect": "free"}}, bank, bank.names) is None
    with pytest.raises(ConfigError, match=r"pattern 'star' matches none of the primitives \(circle, gaussian, text:Q, brush_flat\)"):
        constraints_for({"star": {"aspect": "keep"}}, bank, bank.names)


@pytest.mark.parametrize("constraints, message", [
    ({"square": {"aspect": "keep"}}, r"the shape pattern 'square' matches none of the primitives \(circle, text:a\)"),
    ({"circle": {"aspect": "kept"}}, r"`constraints.circle.aspect` = 'kept' is not one of 'free', 'keep'; did you mean 'keep'"),
    ({"circle": {"rotation": 180}}, r"`constraints.circle.rotation` = 180 .*from 0 \(upright\) to below 180"),
    ({"circle": {"rotation": [30, 10]}}, r"`constraints.circle.rotation` = \[30, 10\] .*-180 <= low < high <= 180"),
    ({"circle": {"rotation": "sideways"}}, r"rotation is free, upright, a number of degrees"),
    ({"circle": {"rotate": 10}}, r"unknown key `constraints.circle.rotate`; did you mean `rotation`"),
    ({"circle": "keep"}, r"the shape 'circle' maps to 'keep'; give \{rotation: ..., aspect: ...\}"),
    (["circle"], r"constraints maps shapes to \{rotation: ..., aspect: ...\}"),
])
def test_bad_constraints_are_named(constraints, message):
    with pytest.raises(ConfigError, match=message):
        build_config(None, primitives=["circle", "text:a"], constraints=constraints)


def test_overrides_reach_the_constraints():
    config = load_config(None, ["constraints.circle.aspect=keep", "constraints.circle.rotation=[-10, 10]"])
    assert config.constraints["circle"].aspect == "keep" and config.constraints["circle"].rotation == [-10, 10]


def test_the_text_glyphs_recipe_keeps_letters_upright():
    config = load_config("text_glyphs")
    rule = config.constraints["text:*"]
    assert rule.aspect == "keep" and 0 < rule.rotation <= 30


# ----------------------------------------------------------------------------- fits
TINY = dict(size=48, n=40, steps=60, quiet=True)


def test_a_fit_of_true_circles():
    result = fit("skimage:astronaut", ["circle"], constraints={"circle": {"aspect": "keep"}}, **TINY)
    scales = result.scene.params().scales
    assert len(result.scene) == 40
    torch.testing.assert_close(scales[:, 0], scales[:, 1], rtol=1e-6, atol=0)
    free = fit("skimage:astronaut", ["circle"], **TINY).scene.params().scales
    assert float((free[:, 0] / free[:, 1] - 1).abs().max()) > 0.05  # without the constraint they are ellipses


@pytest.mark.parametrize("strategy", ["search", "plain"])
def test_a_glyph_fit_keeps_letters_upright_and_in_proportion(strategy):
    options = dict(TINY, texture_size=32, strategy=strategy, prune={"every": 20},
                   constraints={"text:*": {"rotation": 20, "aspect": "keep"}})
    result = fit("skimage:astronaut", ["text:a", "text:b"], **options)
    params = result.scene.params()
    bank = result.scene.bank
    assert float(params.rotations.abs().max()) <= 20 * DEG
    natural = torch.tensor([entry.aspect for entry in bank])[params.shape_ids]
    torch.testing.assert_close(params.scales[:, 0] / params.scales[:, 1], natural, rtol=1e-5, atol=0)
    assert float(params.rotations.abs().max()) > 1 * DEG  # the letters do turn a little


def test_a_budget_fit_that_splits_keeps_the_constraints():
    result = fit("skimage:coffee", ["circle", "brush_flat"], target_psnr=21.0, seed=1, size=48, quiet=True, texture_size=32,
                 output={"progress": False}, budget={"start": 10, "round_steps": 30, "polish_steps": 10, "densify": "split"},
                 constraints={"circle": {"aspect": "keep"}, "brush_flat": {"rotation": [-30, 30]}})
    params = result.scene.params()
    assert len(result.rounds) >= 2 and len(result.scene) > 10
    circles = params.shape_ids == 0
    torch.testing.assert_close(params.scales[circles, 0], params.scales[circles, 1], rtol=1e-6, atol=0)
    assert float(params.rotations[~circles].abs().max()) <= 30 * DEG


def test_the_limits_keep_raw_values_where_the_maps_are_steep():
    config = build_config(None, strategy="plain", n=30, steps=10, size=48, constraints={"circle": {"rotation": 10, "aspect": "keep"}},
                          limits={"max_scale": 0.1})
    fitter = Fitter(config, load_target("skimage:astronaut", 48), TextureBank.from_names(["circle"]),
                    device=torch.device("cpu"), backend=None, progress=False)
    fitter.initialise()
    with torch.no_grad():
        fitter.scene.rotations.fill_(5.0)
        fitter.scene.log_scales[:, 0] = 9.0
    fitter._clamp()
    assert float(fitter.scene.rotations.detach().max()) == pytest.approx(RAW_REACH * 10 * DEG)
    scales = fitter.scene.params().scales.detach()
    assert float(scales.max()) <= 0.1 * 48 * (1 + 1e-5)
    torch.testing.assert_close(scales[:, 0], scales[:, 1], rtol=1e-6, atol=0)


def test_a_constrained_fit_resumes_exactly_and_saves_its_constraints(tmp_path):
    options = dict(TINY, seed=2, texture_size=32, strategy="plain", stages={"count": 2}, prune={"every": 15},
                   background={"mode": "noise"}, output={"frames": 0, "checkpoint_every": 0, "mp4": False, "gif": False},
                   constraints={"text:*": {"rotation": [-15, 25], "aspect": "keep"}})
    straight = fit("skimage:chelsea", ["text:a", "text:b"], **options)
    resumed = resumed_after_interrupt(tmp_path / "run", 33, "skimage:chelsea", ["text:a", "text:b"], **options)
    assert_same_scene(straight.scene, resumed.scene)
    assert resumed.scene.constraints == straight.scene.constraints is not None
    saved = Scene.load(tmp_path / "run" / "scene.npz")
    assert saved.constraints == straight.scene.constraints
    assert torch.equal(saved.params().rotations, straight.scene.params().rotations)
    rotations = saved.params().rotations
    assert float(rotations.min()) >= -15 * DEG - 1e-6 and float(rotations.max()) <= 25 * DEG + 1e-6
