"""The search strategy for few primitives: search against the residual, rounds, relocation, determinism, resume."""

from __future__ import annotations

import math

import pytest
import torch

from diffbmp.config import SEARCH_UP_TO, ConfigError, SearchConfig, chosen_strategy, load_config
from diffbmp.fitting.image import build_config, fit
from diffbmp.fitting.rounds import plan_rounds, relocation_steps, removal_harm
from diffbmp.fitting.search import SearchSettings, ShapeSearch
from diffbmp.losses import psnr
from diffbmp.params import PrimitiveParams
from diffbmp.primitives import TextureBank
from diffbmp.render import composite
from diffbmp.video.sequence import first_frame_config, later_frame_config
from scenes import assert_same_scene, resumed_after_interrupt

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def one_shape_target(shape: str, height: int = 48, width: int = 64) -> tuple[torch.Tensor, PrimitiveParams, TextureBank]:
    """A grey canvas with one red ``shape`` (rotated, stretched) on it, drawn by the compositor."""
    bank = TextureBank.from_names([shape])
    params = PrimitiveParams(
        means=torch.tensor([[38.0, 20.0]]), rotations=torch.tensor([0.6]), scales=torch.tensor([[14.0, 7.0]]),
        colors=torch.tensor([[0.9, 0.1, 0.1]]), opacities=torch.tensor([0.8]), shape_ids=torch.tensor([0]),
    )
    image, _ = composite(params, bank, torch.tensor([0.5, 0.5, 0.5]), height, width, blur=0.0, backend="torch")
    return image, params, bank


# ----------------------------------------------------------------------------- choosing the strategy
def test_auto_searches_for_few_primitives_and_fits_plainly_otherwise():
    assert chosen_strategy(build_config(n=100)) == "search"
    assert chosen_strategy(build_config(n=SEARCH_UP_TO)) == "search"
    assert chosen_strategy(build_config(n=SEARCH_UP_TO + 1)) == "plain"
    # A plain fit's stages asked for keep the plain fit; an explicit choice is kept.
    assert chosen_strategy(build_config(n=100, stages={"count": 3})) == "plain"
    assert chosen_strategy(build_config(n=100, strategy="plain")) == "plain"
    assert chosen_strategy(build_config(n=5000, strategy="search")) == "search"
    assert chosen_strategy(load_config("low_count")) == "search"
    assert chosen_strategy(load_config("circles")) == "plain"  # its four stages


def test_stamps_in_their_own_colours_are_not_searched_for():
    assert chosen_strategy(build_config(n=100, init={"beta": 1.0})) == "plain"
    with pytest.raises(ConfigError, match="init.beta"):
        chosen_strategy(build_config(n=100, strategy="search", init={"beta": 0.5}))


def test_a_clip_is_painted_plainly_unless_search_is_asked_for():
    config = build_config(n=60)
    assert chosen_strategy(config) == "search"
    assert chosen_strategy(first_frame_config(config)) == "plain"
    assert chosen_strategy(later_frame_config(config, 60, [0.5, 0.5, 0.5])) == "plain"
    searching = build_config(n=60, strategy="search")
    assert chosen_strategy(first_frame_config(searching)) == "search"
    assert chosen_strategy(later_frame_config(searching, 60, [0.5, 0.5, 0.5])) == "plain"  # the painting carries over


def test_bad_relocation_points_are_named():
    with pytest.raises(Exception, match="fractions of the steps"):
        build_config(search={"relocate": [0.5, 1.5]})


# ----------------------------------------------------------------------------- the plan
@pytest.mark.parametrize("n,count", [(100, 3), (50, 1), (7, 5), (1, 3), (300, 4)])
def test_rounds_double_and_end_at_n(n, count):
    plan = plan_rounds(n, 300, SearchConfig(rounds=count, until=0.6), 64.0)
    assert sum(added for _, added, _ in plan) == n
    assert plan[0][0] == 0
    starts = [start for start, _, _ in plan]
    assert starts == sorted(set(starts)) and starts[-1] <= 180
    totals = [sum(added for _, added, _ in plan[: k + 1]) for k in range(len(plan))]
    for before, after in zip(totals, totals[1:]):
        assert after <= 2 * before + 1


def test_a_fit_of_one_step_places_every_primitive_at_once():
    assert plan_rounds(5, 1, SearchConfig(rounds=3), 64.0) == [(0, 5, 64.0)]
    result = fit("skimage:camera", ["circle"], n=5, steps=1, size=24, strategy="search", quiet=True)
    assert len(result.scene) == 5


def test_relocation_steps_fall_inside_the_fit():
    assert relocation_steps(300, SearchConfig(relocate=[0.4, 0.55, 0.7])) == [120, 165, 210]
    assert relocation_steps(2, SearchConfig(relocate=[0.1, 0.4])) == [1]  # step 0 and the end are dropped


# ----------------------------------------------------------------------------- the search
@pytest.mark.parametrize("shape,removed", [("circle", 0.98), ("square", 0.97), ("triangle", 0.75)])
def test_search_finds_a_single_shape(shape, removed):
    target, truth, bank = one_shape_target(shape)
    search = ShapeSearch(target, bank)
    canvas = torch.full_like(target, 0.5)
    generator = torch.Generator().manual_seed(0)
    settings = SearchSettings(candidates=256, climbs=16, min_size=2.0, max_size=24.0)
    found, painted = search.find(canvas, 1, generator, settings, torch.tensor([0]))
    params = found.params()
    before = float((canvas - target).pow(2).sum())
    assert float((painted - target).pow(2).sum()) < (1 - removed) * before
    assert float((params.colors[0] - torch.tensor([0.9, 0.1, 0.1])).abs().max()) < 0.2
    if shape != "triangle":  # a triangle may settle on a neighbouring pose (a local optimum)
        assert torch.dist(params.means[0], truth.means[0]) < 1.0
        assert abs(float(params.scales[0].prod()) / float(truth.scales[0].prod()) - 1) < 0.1
    # The working canvas is what the compositor draws for the found primitive.
    rendered, _ = composite(params, bank, torch.tensor([0.5, 0.5, 0.5]), *target.shape[:2], blur=0.0, backend="torch")
    assert psnr(painted, rendered) > 30


def test_search_ignores_pixels_of_zero_weight():
    target, truth, bank = one_shape_target("circle")
    weight = torch.ones(target.shape[:2])
    weight[:, 24:] = 0  # the shape sits at x = 38: nothing there counts
    target[:, :24] = torch.tensor([0.1, 0.3, 0.9])
    search = ShapeSearch(target, bank, weight)
    found, _ = search.find(torch.full_like(target, 0.5), 1, torch.Generator().manual_seed(1),
                           SearchSettings(candidates=128, climbs=8, max_size=24.0), torch.tensor([0]))
    params = found.params()
    assert float(params.means[0, 0]) < 30
    assert float((params.colors[0] - torch.tensor([0.1, 0.3, 0.9])).abs().max()) < 0.15


def test_search_keeps_out_of_a_costly_region():
    target, truth, bank = one_shape_target("circle")
    target[:] = torch.tensor([0.9, 0.1, 0.1])  # all red: one huge disc would do ...
    cost = torch.zeros(target.shape[:2])
    cost[:, 32:] = 50.0  # ... but painting the right half costs more than any error it removes
    weight = (cost == 0).float()
    search = ShapeSearch(target, bank, weight, cost)
    found, painted = search.find(torch.full_like(target, 0.5), 3, torch.Generator().manual_seed(2),
                                 SearchSettings(candidates=128, climbs=8, max_size=64.0), torch.tensor([0]))
    assert float((painted[:, 34:] - 0.5).abs().max()) < 0.05
    assert float((painted[:, :30] - target[:, :30]).abs().mean()) < 0.2


def test_search_of_zero_primitives_is_empty():
    target, _, bank = one_shape_target("circle")
    found, painted = ShapeSearch(target, bank).find(target, 0, torch.Generator(), SearchSettings(), torch.tensor([0]))
    assert len(found) == 0 and torch.equal(painted, target)


# ----------------------------------------------------------------------------- relocation's measure
def test_removal_harm_is_the_error_a_removal_adds():
    bank = TextureBank.from_names(["circle"])
    background = torch.tensor([1.0, 1.0, 1.0])
    params = PrimitiveParams(
        means=torch.tensor([[20.0, 20.0], [20.0, 20.0], [8.0, 30.0]]), rotations=torch.zeros(3),
        scales=torch.tensor([[3.0, 3.0], [9.0, 9.0], [5.0, 5.0]]),
        colors=torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        opacities=torch.tensor([0.99, 0.99, 0.99]), shape_ids=torch.zeros(3, dtype=torch.long),
    )
    target, _ = composite(params, bank, background, 40, 40, blur=0.0, backend="torch")
    harm = removal_harm(params, bank.prepare(), background, target, None, "torch")
    # The small blue disc lies under the large opaque red one: removing it costs (almost) nothing.
    assert float(harm[0]) < 1e-2 * float(harm[1])
    for i in (1, 2):
        keep = torch.ones(3, dtype=torch.bool)
        keep[i] = False
        image, _ = composite(params.select(keep), bank, background, 40, 40, blur=0.0, backend="torch")
        assert math.isclose(float(harm[i]), float((image - target).pow(2).sum()), rel_tol=1e-4)


# ----------------------------------------------------------------------------- whole fits
SMALL = dict(n=24, steps=60, size=48, quiet=True, output={"progress": False}, search={"rounds": 3})


def test_a_search_fit_in_rounds_is_deterministic_for_a_seed_and_follows_its_plan():
    seen = []
    a = fit("skimage:astronaut", ["circle"], strategy="search", seed=5, callback=lambda info: seen.append(info.n), **SMALL)
    b = fit("skimage:astronaut", ["circle"], strategy="search", seed=5, **SMALL)
    c = fit("skimage:astronaut", ["circle"], strategy="search", seed=6, **SMALL)
    assert_same_scene(a.scene, b.scene)
    assert not torch.equal(a.scene.means, c.scene.means)
    # Rounds of 6, 12 and 24 primitives (the last at 0.6 x 60 = step 36).
    assert seen[0] == 6 and seen.index(12) == 17 and seen.index(24) == 35 and seen[-1] == 24


def test_a_search_fit_resumes_exactly_across_rounds_and_relocations(tmp_path):
    options = dict(SMALL, seed=2, strategy="search", background={"mode": "noise"}, prune={"every": 10},
                   output={"frames": 4, "checkpoint_every": 20, "mp4": False, "progress": False})
    straight = fit("skimage:chelsea", ["circle", "square"], out=tmp_path / "straight", **options)
    for stop in (19, 41):  # after the second round; after two relocations (steps 24 and 33)
        resumed = resumed_after_interrupt(tmp_path / f"resumed{stop}", stop, "skimage:chelsea", ["circle", "square"], **options)
        assert_same_scene(straight.scene, resumed.scene)
        assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]


@pytest.mark.parametrize("image", ["astronaut", "coffee", "chelsea"])
def test_the_search_strategy_is_never_worse_than_the_plain_fit(image):
    options = dict(n=40, steps=150, size=64, seed=0, quiet=True, output={"progress": False})
    plain = fit(f"skimage:{image}", ["circle"], strategy="plain", **options)
    searched = fit(f"skimage:{image}", ["circle"], strategy="search", **options)
    assert searched.psnr > plain.psnr - 0.1, (searched.psnr, plain.psnr)
