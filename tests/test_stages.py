"""Scene.stages: which stage of a fit added each primitive, carried through edits, files,
checkpoints and resumes."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch

from diffbmp import InputError, TextureBank, fit
from diffbmp.fitting.image import build_config
from diffbmp.fitting.loop import Fitter
from diffbmp.scene import Scene
from diffbmp.targets import load_target

from scenes import assert_same_scene, random_params, resumed_after_interrupt

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture
def bank() -> TextureBank:
    return TextureBank.from_names(["circle", "gaussian", "star"])


@pytest.fixture
def scene(bank) -> Scene:
    params = random_params(12, 30, 40, seed=5, num_shapes=len(bank))
    return Scene.from_params(params, bank, 30, 40, stages=torch.tensor([0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 3]))


# ----------------------------------------------------------------------------- the Scene
def test_scenes_start_at_stage_zero_and_edits_carry_the_stages(bank, scene):
    plain = Scene.from_params(random_params(5, 30, 40, seed=1, num_shapes=len(bank)), bank, 30, 40)
    assert plain.stages.dtype == torch.int64 and plain.stages.tolist() == [0] * 5
    assert Scene.empty(bank, 10, 10).stages.shape == (0,)
    assert scene.stages.dtype == torch.int64
    assert scene.select(torch.tensor([11, 3, 0])).stages.tolist() == [3, 1, 0]
    assert scene.select(scene.stages == 2).stages.tolist() == [2, 2, 2]
    assert scene.concat(plain).stages.tolist() == scene.stages.tolist() + [0] * 5
    assert torch.equal(scene.to(dtype=torch.float64).stages, scene.stages)
    copy = scene.detached()
    copy.stages[0] = 7  # a copy, not a view
    assert int(scene.stages[0]) == 0


def test_from_params_refuses_bad_stages(bank):
    params = random_params(4, 30, 40, seed=1, num_shapes=len(bank))
    for bad in (torch.tensor([0, 1, 2]), torch.tensor([0.0, 1.0, 1.0, 2.0]), torch.tensor([0, -1, 0, 0])):
        with pytest.raises(InputError, match="stages must be 4 whole numbers >= 0"):
            Scene.from_params(params, bank, 30, 40, stages=bad)


def test_stages_are_saved_and_loaded(scene, tmp_path):
    loaded = Scene.load(scene.save(tmp_path / "staged.npz"))
    assert loaded.stages.dtype == torch.int64
    assert torch.equal(loaded.stages, scene.stages)


def rewrite(path, change) -> None:
    """Rewrite the scene file at ``path`` with ``change(arrays)`` applied to its arrays."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    change(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def test_a_file_written_before_stages_loads_them_as_zeros(scene, tmp_path):
    path = scene.save(tmp_path / "old.npz")
    rewrite(path, lambda arrays: arrays.pop("stages"))
    with zipfile.ZipFile(path) as archive:
        assert "stages.npy" not in archive.namelist()
    loaded = Scene.load(path)
    assert loaded.stages.tolist() == [0] * len(scene)
    assert torch.equal(loaded.means, scene.means)


@pytest.mark.parametrize("bad", [np.zeros(5, dtype=np.int64), np.zeros(12, dtype=np.float32), np.full(12, -1)])
def test_a_damaged_stages_array_is_named(scene, tmp_path, bad):
    path = scene.save(tmp_path / "damaged.npz")
    rewrite(path, lambda arrays: arrays.update(stages=bad))
    with pytest.raises(InputError, match="damaged scene file: its 'stages' array"):
        Scene.load(path)


# ----------------------------------------------------------------------------- fits
STAGED = dict(n=60, steps=30, size=48, quiet=True, prune={"every": 0}, stages={"count": 3, "until": 0.5})


def test_a_staged_fit_records_the_stage_of_every_primitive():
    result = fit("skimage:astronaut", ["circle"], **STAGED)
    stages = result.scene.stages
    assert torch.bincount(stages).tolist() == [20, 20, 20]
    # Each stage is painted on top of the earlier ones.
    assert stages.tolist() == [0] * 20 + [1] * 20 + [2] * 20


def make_fitter(**options) -> Fitter:
    config = build_config(None, **{"strategy": "plain", **options})
    return Fitter(config, load_target("skimage:astronaut", 48), TextureBank.from_names(["circle"]),
                  device=torch.device("cpu"), backend=None, progress=False)


def test_re_seeded_primitives_take_the_stage_they_were_re_seeded_in():
    fitter = make_fitter(n=30, steps=20, size=48, stages={"count": 3, "until": 0.5})
    fitter.initialise()
    assert fitter.current_stage() == 0
    fitter.add_stage(10, 4.0, stage=1)
    fitter.step = 5  # the first later stage (planned at step 5) has begun
    assert fitter.current_stage() == 1
    with torch.no_grad():
        fitter.scene.opacity_logits[:4] = -8.0  # four primitives of stage 0 become invisible
    pruned = fitter.prune()
    assert pruned >= 4
    stages = fitter.scene.stages
    assert len(stages) == 20 and stages[-pruned:].tolist() == [1] * pruned
    # The survivors keep their stages (and order); the four invisible ones were of stage 0.
    kept = stages[:-pruned].tolist()
    assert kept == sorted(kept) and kept.count(0) <= 6


def test_a_split_gives_the_second_child_the_rounds_stage():
    fitter = make_fitter(n=12, steps=10, size=48, init={"max_size": 0.3})
    fitter.initialise()
    before = fitter.scene.stages.clone()
    split = fitter.split(3, stage=4)
    assert split == 3 and len(fitter.scene) == 15
    stages = fitter.scene.stages
    assert int((stages == 4).sum()) == 3 and int((stages == 0).sum()) == len(before)


def test_a_budget_fit_records_its_rounds():
    result = fit("skimage:coffee", ["circle"], target_psnr=22.0, seed=1, size=48, quiet=True, prune={"every": 0},
                 output={"progress": False}, budget={"start": 10, "round_steps": 30, "polish_steps": 0, "trim": False})
    grown = [r for r in result.rounds if r["kind"] == "grow"]
    assert len(grown) >= 2
    counts = torch.bincount(result.scene.stages, minlength=len(grown)).tolist()
    # Round k's primitives are those it added: its count less the previous round's.
    assert counts == [grown[0]["n"]] + [b["n"] - a["n"] for a, b in zip(grown, grown[1:])]


def test_a_resumed_fit_keeps_the_stages(tmp_path):
    options = dict(STAGED, seed=3, background={"mode": "noise"}, prune={"every": 10, "min_opacity": 0.3},
                   output={"frames": 0, "checkpoint_every": 0, "mp4": False, "gif": False})
    straight = fit("skimage:chelsea", ["circle"], **options)
    resumed = resumed_after_interrupt(tmp_path / "run", 17, "skimage:chelsea", ["circle"], **options)
    assert_same_scene(straight.scene, resumed.scene)
    assert torch.equal(straight.scene.stages, resumed.scene.stages)
    assert set(straight.scene.stages.tolist()) == {0, 1, 2}
    assert torch.equal(Scene.load(tmp_path / "run" / "scene.npz").stages, straight.scene.stages)
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert torch.equal(state["stages"], straight.scene.stages)


def test_a_checkpoint_with_damaged_stages_is_refused():
    from diffbmp.errors import ConfigError
    from diffbmp.fitting.checkpoints import check_fitter_state
    from diffbmp.fitting.loop import CHECKPOINT_FORMAT, CHECKPOINT_VERSION

    fitter = make_fitter(n=10, steps=5, size=32)
    fitter.initialise()
    state = fitter.state_dict()
    check_fitter_state(state, fmt=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
    older = {key: value for key, value in state.items() if key != "stages"}  # before stages were recorded
    check_fitter_state(older, fmt=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
    fitter.restore(older)
    assert fitter.scene.stages.tolist() == [0] * 10
    for bad in (torch.zeros(3, dtype=torch.long), torch.zeros(10), torch.full((10,), -1)):
        with pytest.raises(ConfigError, match="its stages are .* expected 10 whole numbers >= 0"):
            check_fitter_state({**state, "stages": bad}, fmt=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
