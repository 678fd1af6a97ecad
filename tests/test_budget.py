"""Automatic primitive budgets: targets reached (or a message that says why not), limits kept,
trimming, splitting, the plan's predictions, and resume across rounds."""

from __future__ import annotations

import math

import pytest
import torch

from diffbmp import PrimitiveParams, TextureBank, fit
from diffbmp.cli import main as cli_main
from diffbmp.config import BlurConfig, BudgetConfig, FitConfig, OptimConfig, result_relevant
from diffbmp.errors import ConfigError
from diffbmp.fitting.budget import BudgetPlan, quality_db
from diffbmp.fitting.densify import split_choice, split_geometry
from diffbmp.fitting.rounds import removal_harm
from diffbmp.fitting.trim import estimated_removal_harm, largest_removal

from scenes import assert_same_scene, resumed_after_interrupt

#: A small, quick budget fit: 48 px, rounds of 30 steps, polish of 20.
SMALL = dict(size=48, quiet=True, output={"progress": False}, budget={"start": 10, "round_steps": 30, "polish_steps": 20})


def plan_for(**budget) -> BudgetPlan:
    return BudgetPlan(BudgetConfig(**budget), BlurConfig(), OptimConfig())


# ----------------------------------------------------------------------------- the plan
def test_the_first_prediction_assumes_a_slope_and_later_ones_measure_it():
    plan = plan_for(psnr=30, start=100, margin=0.0, growth=100)
    plan.begin("grow", 0, 100)
    plan.record(24.0, 0.5, 1.0)
    # 6 dB short at an assumed 3 dB per doubling: four times the count.
    assert plan.next_count() == 400
    assert plan.decide(24.0, 0.5, 1.0) == ("grow", 400)
    plan.begin("grow", 100, 400)
    plan.record(28.0, 0.6, 2.0)
    # Measured: 4 dB for two doublings, 2 dB per doubling; 2 dB short: one doubling.
    assert plan.next_count() == 800


def test_growth_is_bounded_by_the_growth_factor_the_smallest_step_and_the_limit():
    plan = plan_for(psnr=40, start=100, margin=0.0, growth=3.0, max_primitives=250)
    plan.begin("grow", 0, 100)
    plan.record(20.0, None, 1.0)
    assert plan.next_count() == 250  # 3x would be 300: the limit is 250
    plan = plan_for(psnr=20.1, start=100, margin=0.0)
    plan.begin("grow", 0, 100)
    plan.record(20.0, None, 1.0)
    assert plan.next_count() == 110  # a tenth more at least
    plan = plan_for(psnr=40, start=100, margin=0.0, growth=3.0)
    plan.begin("grow", 0, 100)
    plan.record(20.0, None, 1.0)
    assert plan.next_count() == 300


def test_an_ssim_target_is_predicted_in_decibels_of_one_minus_ssim():
    assert math.isclose(quality_db(ssim=0.9), 10.0)
    assert math.isclose(quality_db(psnr=31.5), 31.5)
    plan = plan_for(ssim=0.99, start=100, margin=0.0, growth=100)
    plan.begin("grow", 0, 100)
    plan.record(25.0, 0.9, 1.0)  # 10 dB short of 20 dB at 3 dB per doubling
    assert plan.next_count() == round(100 * 2 ** (10 / 3))
    assert not plan.reached(40.0, 0.95) and plan.reached(20.0, 0.99)


def test_decisions_reached_limits_and_polish():
    plan = plan_for(psnr=30, max_primitives=100, start=100)
    plan.begin("grow", 0, 100)
    plan.record(25.0, None, 1.0)
    assert plan.decide(25.0, None, 1.0) == ("finish", 0) and plan.outcome == "max_primitives" and plan.finished
    assert "not reached" in plan.summary() and "--max-primitives" in plan.summary() and "100 primitives" in plan.summary()

    plan = plan_for(psnr=30, max_seconds=10.0)
    plan.begin("grow", 0, 50)
    plan.record(25.0, None, 6.0)  # the next round (three times the primitives) would take 18 s more
    assert plan.decide(25.0, None, 6.0) == ("finish", 0) and plan.outcome == "max_seconds"
    assert "--max-seconds" in plan.summary()

    plan = plan_for(psnr=30)
    plan.begin("grow", 0, 50)
    plan.record(31.0, None, 1.0)
    assert plan.decide(31.0, None, 1.0) == ("trim", 0) and not plan.finished
    plan.begin("polish", 100, 40)
    plan.record(30.1, None, 2.0)  # within 0.25 dB of the target: done
    assert plan.decide(30.1, None, 2.0) == ("finish", 0) and plan.finished
    assert plan.summary().startswith("reached PSNR 30 dB with 40 primitives")


def test_the_plan_round_trips_through_a_checkpoint():
    plan = plan_for(psnr=30)
    plan.begin("grow", 0, 50)
    plan.record(25.0, 0.7, 1.5)
    plan.begin("grow", 100, 150)
    copy = plan_for(psnr=30)
    copy.load_state_dict(plan.state_dict())
    assert copy.rows() == plan.rows() and copy.current.last_step == 200


def test_rounds_restart_lower_and_polish_is_sharp():
    plan = BudgetPlan(BudgetConfig(psnr=30, round_steps=100, restart=0.5), BlurConfig(start=1.0, end=0.0), OptimConfig(final_factor=0.1))
    plan.begin("grow", 0, 50)
    assert plan.schedule(0) == (1.0, 1.0)
    assert math.isclose(plan.schedule(99)[1], 0.1)
    plan.begin("grow", 100, 150)
    blur, factor = plan.schedule(100)
    assert blur == 0.5 and factor == 0.5 and math.isclose(plan.schedule(199)[1], 0.1)
    plan.begin("polish", 200, 120)
    blur, factor = plan.schedule(200)
    assert blur == 0.0 and factor <= 0.2 + 1e-9


# ----------------------------------------------------------------------------- trimming's measure
def three_discs() -> tuple[PrimitiveParams, TextureBank, torch.Tensor]:
    bank = TextureBank.from_names(["circle"])
    params = PrimitiveParams(
        means=torch.tensor([[10.0, 10.0], [12.0, 11.0], [4.0, 14.0]], dtype=torch.float64),
        rotations=torch.tensor([0.0, 0.785398, 0.3], dtype=torch.float64),
        scales=torch.tensor([[3.0, 3.0], [6.0, 4.0], [3.5, 2.5]], dtype=torch.float64),
        colors=torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.2, 0.0], [0.0, 1.0, 0.3]], dtype=torch.float64),
        opacities=torch.tensor([0.9, 0.6, 0.999], dtype=torch.float64), shape_ids=torch.zeros(3, dtype=torch.long),
    )
    return params, bank, torch.tensor([1.0, 1.0, 1.0], dtype=torch.float64)


def test_estimated_removal_harm_matches_the_error_each_removal_adds():
    params, bank, background = three_discs()
    wanted = torch.rand(20, 20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = removal_harm(params, bank.prepare(torch.device("cpu"), torch.float64), background, wanted, None, "torch")
    estimate = estimated_removal_harm(params, bank.prepare(torch.device("cpu"), torch.float64), background, wanted, None,
                                      "torch", torch.Generator().manual_seed(1), probes=3000)
    # The first-order part is exact; the probes' part converges like 1/sqrt(probes).
    assert torch.allclose(estimate, exact, rtol=0.1, atol=0.02 * float(exact.abs().max()))


def test_estimated_removal_harm_respects_the_pixel_weights():
    params, bank, background = three_discs()
    prepared = bank.prepare(torch.device("cpu"), torch.float64)
    wanted = torch.rand(20, 20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    weight = torch.zeros(20, 20, dtype=torch.float64)
    weight[:, :8] = 1.0  # only the left of the canvas counts: the disc at x = 4 matters most
    estimate = estimated_removal_harm(params, prepared, background, wanted, weight, "torch", torch.Generator().manual_seed(1), probes=3000)
    exact = removal_harm(params, prepared, background, wanted, weight, "torch")
    assert torch.allclose(estimate, exact, rtol=0.1, atol=0.02 * float(exact.abs().max()))


def test_largest_removal_finds_the_last_count_that_keeps_the_quality():
    for limit in (0, 1, 7, 98, 99):
        calls = []
        found = largest_removal(100, lambda m: calls.append(m) or m <= limit)
        assert found == min(limit, 99) and len(calls) <= 8
    assert largest_removal(1, lambda m: False) == 0


# ----------------------------------------------------------------------------- splitting
def test_split_children_sit_along_the_longer_axis_at_any_rotation():
    means = torch.tensor([[10.0, 10.0], [10.0, 10.0]])
    scales = torch.tensor([[4.0, 2.0], [1.0, 3.0]])
    rotations = torch.tensor([math.pi / 4, 0.0])
    first, second, child = split_geometry(means, scales, rotations)
    step = 2.0 / math.sqrt(2.0)  # half of the half-size 4, along 45 degrees
    assert torch.allclose(first[0], torch.tensor([10 - step, 10 - step])) and torch.allclose(second[0], torch.tensor([10 + step, 10 + step]))
    # The second's longer axis is its local y, which is the canvas's y at rotation 0.
    assert torch.allclose(first[1], torch.tensor([10.0, 8.5])) and torch.allclose(second[1], torch.tensor([10.0, 11.5]))
    assert torch.allclose(child, torch.tensor([[2.2, 1.7], [0.85, 1.65]]))


def test_split_choice_picks_large_primitives_over_the_error():
    params = PrimitiveParams(
        means=torch.tensor([[8.0, 8.0], [30.0, 30.0], [30.0, 30.0], [8.0, 30.0]]), rotations=torch.zeros(4),
        scales=torch.tensor([[6.0, 6.0], [6.0, 6.0], [1.0, 1.0], [8.0, 8.0]]),
        colors=torch.zeros(4, 3), opacities=torch.ones(4) * 0.5, shape_ids=torch.zeros(4, dtype=torch.long),
    )
    error = torch.zeros(40, 40)
    error[25:35, 25:35] = 1.0  # under the second (and the tiny third, too small to split)
    error[0:4, 0:4] = 0.1
    assert split_choice(params, error, 1).tolist() == [1]
    assert split_choice(params, error, 2).tolist() == [1, 0]
    assert set(split_choice(params, error, 10).tolist()) == {0, 1, 3}


# ----------------------------------------------------------------------------- whole fits
def test_a_psnr_target_is_reached_with_a_count_the_rounds_chose():
    result = fit("skimage:coffee", ["circle"], target_psnr=24.0, seed=1, **SMALL)
    assert result.psnr >= 24.0 and result.reached is True
    grown = [r for r in result.rounds if r["kind"] == "grow"]
    assert grown[0]["n"] == 10 and all(b["n"] > a["n"] for a, b in zip(grown, grown[1:]))
    assert grown[-1]["psnr"] >= 24.0 > grown[-2]["psnr"]
    # Trimmed to what keeps the target, then polished: never below it.
    assert len(result.scene) == result.rounds[-1]["n"] <= grown[-1]["n"]
    assert all(r["psnr"] >= 24.0 for r in result.rounds if r["kind"] == "polish")
    assert result.budget_summary.startswith(f"reached PSNR 24 dB with {len(result.scene)} primitives")
    assert [row["n"] for row in result.history][-1] == len(result.scene)


def test_an_ssim_target_is_reached():
    result = fit("skimage:camera", ["circle"], target_ssim=0.6, seed=0, **SMALL)
    assert result.ssim >= 0.6 and result.reached is True


def test_an_unreachable_target_stops_at_the_limit_and_says_why(capsys):
    result = fit("skimage:astronaut", ["circle"], target_psnr=60.0, max_primitives=40, **dict(SMALL, quiet=False))
    assert len(result.scene) <= 40 and result.reached is False
    assert max(r["n"] for r in result.rounds) == 40
    message = capsys.readouterr().err
    assert "PSNR 60 dB not reached" in message and "40 primitives" in message and "--max-primitives" in message
    assert f"best {max(r['psnr'] for r in result.rounds):.2f} dB" in message


def test_a_time_limit_alone_grows_until_it_passes():
    result = fit("skimage:astronaut", ["circle"], max_seconds=3.0, **SMALL)
    assert result.reached is None and "time limit of 3 s" in result.budget_summary
    assert len(result.rounds) >= 2 and result.rounds[-1]["n"] > result.rounds[0]["n"]
    # Stops at the first step boundary past the limit (a step here takes milliseconds).
    assert result.seconds < 3.0 + 2.0


def test_splitting_adds_primitives_without_disturbing_the_painting():
    result = fit("skimage:coffee", ["circle"], target_psnr=23.0, seed=3, **dict(SMALL, budget={**SMALL["budget"], "densify": "split"}))
    assert result.psnr >= 23.0 and len(result.rounds) >= 3


def test_a_budget_fit_is_deterministic_for_a_seed():
    a = fit("skimage:chelsea", ["circle"], target_psnr=22.0, seed=4, **SMALL)
    b = fit("skimage:chelsea", ["circle"], target_psnr=22.0, seed=4, **SMALL)
    assert_same_scene(a.scene, b.scene)
    assert [(r["n"], r["psnr"]) for r in a.rounds] == [(r["n"], r["psnr"]) for r in b.rounds]


def test_a_budget_fit_resumes_exactly_mid_round_and_at_a_round_boundary(tmp_path):
    options = dict(SMALL, seed=2, target_psnr=25.0, background={"mode": "noise"}, prune={"every": 10},
                   output={"frames": 4, "checkpoint_every": 20, "mp4": False, "progress": False})
    straight = fit("skimage:chelsea", ["circle", "square"], out=tmp_path / "straight", **options)
    assert len(straight.rounds) >= 3 and (tmp_path / "straight" / "rounds.csv").exists()
    for stop in (45, 60):  # inside the second round; where the second ends and the third begins
        resumed = resumed_after_interrupt(tmp_path / f"resumed{stop}", stop, "skimage:chelsea", ["circle", "square"], **options)
        assert_same_scene(straight.scene, resumed.scene)
        assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
        assert [r["n"] for r in resumed.rounds] == [r["n"] for r in straight.rounds]


def test_a_fixed_count_run_is_not_resumed_as_a_budget_fit(tmp_path):
    options = dict(size=32, steps=20, n=10, quiet=True, output={"progress": False, "mp4": False, "gif": False})

    def interrupt(info):
        if info.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit("skimage:coffee", ["circle"], out=tmp_path, callback=interrupt, **options)
    with pytest.raises(ConfigError, match="budget"):
        fit("skimage:coffee", ["circle"], out=tmp_path, resume=True, target_psnr=30, **options)


# ----------------------------------------------------------------------------- options and errors
def test_the_command_line_options_set_the_budget(capsys):
    assert cli_main(["fit", "skimage:coffee", "--target-psnr", "31", "--target-ssim", "0.9", "--max-seconds", "60",
                     "--max-primitives", "5000", "--print-config"]) == 0
    printed = capsys.readouterr().out
    assert "psnr: 31.0" in printed and "ssim: 0.9" in printed and "max_seconds: 60.0" in printed and "max_primitives: 5000" in printed


def test_a_limit_without_a_target_is_refused_with_the_fix(capsys):
    assert cli_main(["fit", "skimage:coffee", "--max-primitives", "500", "--print-config"]) != 0
    assert "--target-psnr" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="target_psnr"):
        fit("skimage:coffee", ["circle"], max_primitives=500, size=32, quiet=True)


def test_a_video_with_a_budget_is_refused():
    with pytest.raises(ConfigError, match="video fit paints every frame"):
        fit("demo:moving_disc", ["circle"], target_psnr=30, size=32, quiet=True)


def test_a_fixed_count_fit_does_not_depend_on_the_budget_section():
    plain = FitConfig()
    tuned = FitConfig(budget={"start": 7, "growth": 4.0})
    assert result_relevant(plain) == result_relevant(tuned) and "budget" not in result_relevant(plain)
    assert "budget" in result_relevant(FitConfig(budget={"psnr": 30}))


def test_bad_budget_values_are_named():
    with pytest.raises(ConfigError, match="budget.ssim"):
        fit("skimage:coffee", target_ssim=1.5, size=32, quiet=True)
    with pytest.raises(ConfigError, match="budget.densify"):
        fit("skimage:coffee", target_psnr=20, size=32, quiet=True, budget={"densify": "grow"})


def test_search_densification_with_own_colour_stamps_is_refused():
    with pytest.raises(ConfigError, match="budget.densify: search"):
        fit("skimage:coffee", ["circle"], target_psnr=40, size=32, quiet=True, init={"beta": 0.5}, budget={"densify": "search", "start": 4, "round_steps": 2})
