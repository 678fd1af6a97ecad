"""The optimisation loop of a fit: one ``Fitter`` owns the scene, the optimiser, the random
generator and the history, and can write all of them to a checkpoint and read them back.

One step: draw the background (noise canvas) and the crop, render at the scheduled blur,
compute the loss, back-propagate, take an Adam step with the scheduled learning rates, and
clamp the parameters into sensible bounds. Between steps, invisible primitives are pruned
and re-seeded where the error is, and new stages of primitives are added; the search
strategy for few primitives (:mod:`.rounds`) finds them by search instead and moves the
least useful at a few points. A budget fit (:mod:`.budget`) runs rounds instead of a fixed
number of steps, adding primitives until the painting reaches a quality.

Determinism: every random draw (initialisation, noise, crops, re-seeding) comes from one
``torch.Generator`` whose state is checkpointed at step boundaries, schedules are pure
functions of the step, and the compositor's backward pass is deterministic on every backend
(cuDNN's convolutions, which the SSIM terms use, are made so while a fit runs on a GPU), so a
resumed fit ends with the same scene, bit for bit, as an uninterrupted one on the same backend.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Tuple

import torch

from ..config import SEARCH_UP_TO, FitConfig, chosen_strategy, parse_color, result_relevant
from ..errors import ConfigError, DiffBMPError, OutputError
from ..init import analyse_target, error_init, initialise, sample_shape_ids
from ..interrupts import Interrupted, handling
from ..losses import LossWeights, mse, ssim_value, total_loss
from ..losses import psnr as psnr_of
from ..params import PrimitiveParams
from ..primitives import TextureBank
from ..render import composite, composite_premultiplied
from ..scene import Scene
from ..targets import Target
from .budget import BudgetPlan
from .checkpoints import check_fitter_state, reading
from .optim import RowAdam
from .rounds import plan_rounds, relocation_steps, removal_harm, search_settings
from .schedules import blur_at, lr_factor
from .search import ShapeSearch
from .shapes import fit_constraints
from .densify import split_choice, split_geometry
from .levels import LevelView, crop_side, level_index, plan_levels
from .trim import estimated_removal_harm, largest_removal

__all__ = ["Fitter", "StepInfo", "FitDivergedError", "CHECKPOINT_FORMAT", "Regulariser", "RegulariserInput"]

CHECKPOINT_FORMAT = "diffbmp-checkpoint"
CHECKPOINT_VERSION = 1
#: Raw tensors optimised per primitive (beta_logits joins them when its rate is > 0).
_ROW_TENSORS = ("means", "log_scales", "rotations", "color_logits", "opacity_logits")
#: Logits are kept inside these bounds so the sigmoid never saturates into a zero gradient.
_COLOR_LOGIT_BOUND = 6.0
_OPACITY_LOGIT_BOUND = 8.0


class FitDivergedError(DiffBMPError, RuntimeError):
    """The loss became NaN or infinite (learning rates too high)."""


@dataclass
class StepInfo:
    """What a progress callback sees after each step.

    Attributes:
        step: steps done so far.
        loss, psnr: of this step's training render (at the scheduled blur, over the
            step's background).
        n: number of primitives.
        blur: blur width used in this step.
        seconds: wall time of the fit so far (over all sessions of a resumed run).
        terms: value of each loss term.
        scene: the live scene (call ``.detached()`` to keep a copy).
        frame: index of the frame being fitted in a video fit (None for an image fit).
    """

    step: int
    loss: float
    psnr: float
    n: int
    blur: float
    seconds: float
    terms: dict[str, float]
    scene: Scene
    frame: int | None = None


@dataclass
class RegulariserInput:
    """What an extra loss term sees at a step.

    Attributes:
        scene: the live scene (its gradient reaches the raw tensors).
        rows: the fitter's per-primitive row state (see :attr:`Fitter.row_state`).
        image: this step's render [h, w, 3] of the crop ``window`` (differentiable).
        window: the crop as (y0, x0, h, w) on the canvas (the whole canvas without minibatching).
    """

    scene: Scene
    rows: Dict[str, torch.Tensor]
    image: torch.Tensor
    window: Tuple[int, int, int, int]


#: An extra loss term: ``RegulariserInput -> (loss tensor, {term name: value})``.
Regulariser = Callable[[RegulariserInput], Tuple[torch.Tensor, Dict[str, float]]]


class _InterruptFlag:
    """First Ctrl-C (or SIGTERM, SIGHUP): finish the current step, save, stop. A second: stop at
    once, unless the parameters are being updated (``critical``), which is always finished first
    so that the checkpoint holds one consistent step."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.critical = False
        self._handling = handling(self._handle)

    @property
    def raised(self) -> bool:
        return self.signum is not None

    def exception(self) -> Interrupted:
        return Interrupted(self.signum if self.signum is not None else signal.SIGINT)

    def __enter__(self) -> "_InterruptFlag":
        self._handling.__enter__()
        return self

    def _handle(self, signum, frame) -> None:
        if self.raised and not self.critical:
            raise Interrupted(signum)
        self.signum = signum

    def __exit__(self, *exc) -> None:
        self._handling.__exit__(*exc)


@contextlib.contextmanager
def _deterministic_convolutions(device: torch.device):
    """cuDNN picks deterministic convolution algorithms while a fit runs on a GPU (the SSIM
    terms convolve); the settings it had are restored afterwards."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    before = cudnn.deterministic, cudnn.benchmark
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        cudnn.deterministic, cudnn.benchmark = before


class Fitter:
    """Runs one fit. Create it, call :meth:`initialise` or :meth:`restore`, then :meth:`run`."""

    def __init__(
        self,
        config: FitConfig,
        target: Target,
        bank: TextureBank,
        *,
        device: torch.device,
        backend: str | None,
        weight_map: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        progress: bool = True,
        log: Callable[[str], None] | None = None,
        callback: Callable[[StepInfo], bool | None] | None = None,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        on_frame: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
        regulariser: Regulariser | None = None,
        label: str = "fit",
    ):
        """
        Args:
            regulariser: an extra loss term added to the image loss every step (the video
                fit's temporal loss); see :data:`Regulariser`.
            label: the progress bar's label.
        """
        self.config = config
        self.device = device
        self.backend = backend
        self.target = target.to(device)
        self.bank = bank
        #: The rotation and aspect constraints of ``config.constraints`` (None: none); every
        #: scene of the fit carries them, so they hold exactly through its activations.
        self.constraints = fit_constraints(config, bank)
        self.prepared = bank.prepare(device, torch.float32)
        self.height, self.width = target.height, target.width
        self.side = float(max(self.height, self.width))
        self.weight_map = None if weight_map is None else weight_map.to(device)
        self.mask = None if mask is None else mask.to(device)
        self.progress = progress
        self.log = log or (lambda message: None)
        self.checkpoint_failed = False  # the last attempt to write a checkpoint failed (a full disk, say)
        self.callback = callback
        self.on_checkpoint = on_checkpoint
        self.on_frame = on_frame
        self.regulariser = regulariser
        self.label = label
        self.leave_progress = True  # a video fit clears each frame's bar and prints a line instead
        #: Per-primitive tensors that follow the rows through pruning and stages (row i
        #: belongs to primitive i); rows added later get ``row_fill[name]``. The boolean
        #: row state "trainable", when present, freezes the primitives where it is False;
        #: "lr_scale", when present, multiplies each primitive's learning rates.
        self.row_state: dict[str, torch.Tensor] = {}
        self.row_fill: dict[str, float | bool] = {}
        self.analysis = analyse_target(target.rgb, target.alpha, mask)
        self.mode = self._background_mode()
        self.background_color = self._background_color()
        loss = config.loss
        self.loss_weights = LossWeights(
            mse=loss.mse, l1=loss.l1, ssim=loss.ssim, msssim=loss.msssim, alpha=loss.alpha if target.has_alpha else 0.0,
            outside=loss.outside, overlap=loss.overlap, size=loss.size, size_min=loss.size_min, size_max=loss.size_max * self.side,
        )
        lr = config.optim.lr
        self.learn_beta = lr.beta > 0
        self.learn_background = self.mode == "learned" and lr.background > 0
        lrs = {
            "means": lr.means * self.side,  # canvas lengths per step -> pixels per step
            "log_scales": lr.scales,
            "rotations": lr.rotations,
            "color_logits": lr.colors,
            "opacity_logits": lr.opacities,
            "beta_logits": lr.beta,
            "background_logits": lr.background if self.learn_background else 0.0,
        }
        self.optimizer = RowAdam(lrs, betas=tuple(config.optim.betas), shared=("background_logits",))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.scene: Scene | None = None
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.seconds_before = 0.0
        #: "plain" or "search" (primitives found by search, see diffbmp/fitting/rounds.py). A
        #: budget fit with "search" searches while its count is at most SEARCH_UP_TO.
        self.strategy = chosen_strategy(config)
        #: The rounds of a budget fit (None: a fixed count of ``config.n`` for ``config.steps``).
        self.budget = BudgetPlan(config.budget, config.blur, config.optim) if config.budget.active else None
        if self.budget is not None:
            self.strategy = "plain" if config.strategy == "plain" or config.init.beta > 0 else "search"
            if config.budget.densify == "search" and self.strategy != "search":
                raise ConfigError("budget.densify: search paints tinted shapes, but init.beta is above 0 or strategy is "
                                  "plain; choose budget.densify: error or split")
        self._search: ShapeSearch | None = None
        #: Resolution levels, coarse to fine (:mod:`.levels`); one level at scale 1 when off.
        self.levels = plan_levels(config, self.height, self.width, plain_fixed_count=self.budget is None
                                  and self.strategy == "plain" and config.stages.count == 1)
        self._level_view: tuple[int, LevelView] | None = None
        self.stage_plan = self._plan_stages()
        frame_size = config.output.frame_size
        #: The animation's frames are rendered at this scale (large canvases shrunk to frame_size).
        self.frame_scale = min(1.0, frame_size / self.side) if frame_size else 1.0
        self.relocations = (relocation_steps(config.steps, config.search)
                            if self.strategy == "search" and self.budget is None else [])
        self._boundary_generator = self.generator.get_state()

    # ------------------------------------------------------------------ set-up
    def _background_mode(self) -> str:
        mode = self.config.background.mode
        if mode == "auto":
            return "noise" if self.target.has_alpha else "learned"
        return mode

    def _background_color(self) -> torch.Tensor:
        colour = self.config.background.color
        if colour == "auto":
            rgb = (1.0, 1.0, 1.0) if self.target.has_alpha else tuple(self.target.mean_color().tolist())
        else:
            rgb = parse_color(colour)
        return torch.tensor(rgb, dtype=torch.float32, device=self.device)

    def _plan_stages(self) -> list[tuple[int, int, float]]:
        """(first step, primitives added, largest initial half-size in px) of each stage."""
        stages = self.config.stages
        n, steps = self.config.n, self.config.steps
        if self.budget is not None:
            return [(0, self.budget.first_count, self.config.init.max_size * self.side)]
        if self.strategy == "search":
            return plan_rounds(n, steps, self.config.search, self.config.search.max_size * self.side)
        largest = self.config.init.max_size * self.side
        if len(self.levels) > 1:
            # Each later level is a stage whose primitives are split from those over the error.
            counts = [level.count for level in self.levels]
            return [(self.levels[0].first_step, counts[0], largest)] + [
                (level.first_step, count - before, largest) for level, before, count in zip(self.levels[1:], counts, counts[1:])]
        count = min(stages.count, n)
        per_stage = n // count
        first = n - per_stage * (count - 1)
        plan = [(0, first, largest)]
        for k in range(1, count):
            start = int(round(k * stages.until * steps / max(count - 1, 1))) if count > 1 else 0
            plan.append((max(1, min(start, steps - 1)), per_stage, largest * stages.size_decay**k))
        return plan

    def _init_options(self, max_size_px: float) -> dict[str, Any]:
        init = self.config.init
        return dict(
            opacity=init.opacity, colors=init.colors, beta=init.beta, shape_weights=init.shape_weights,
            aspect=init.aspect, min_size=init.min_size, max_size=max_size_px, constraints=self.constraints,
        )

    def initialise(self) -> None:
        """The scene at step 0, drawn from the seeded generator."""
        init = self.config.init
        _, count, largest = self.stage_plan[0]
        if self._searches(count):
            canvas = self.background_color.expand(self.height, self.width, 3)
            scene = self._search_primitives(count, canvas).to("cpu")
        else:
            options = self._init_options(largest)
            if init.method == "structure":
                options.update(detail_mix=init.detail_mix, detail_power=init.detail_power, coverage=init.coverage)
            elif init.method == "random":
                options.update(coverage=init.coverage)
            scene = initialise(init.method, self.analysis, self.bank, count, generator=self.generator,
                               background=self.background_color.cpu(), **options)
        # A learned colour starts inside (0.01, 0.99) so its logit is not saturated.
        scene.background_logits = _logit(self.background_color.cpu().clamp(0.01, 0.99))
        self.scene = self._on_device(scene)
        self.step = 0
        self.history = []
        self.seconds_before = 0.0
        self._prepare_tensors()
        if self.budget is not None:
            self.budget.begin("grow", 0, len(self.scene))
        self._boundary_generator = self.generator.get_state()

    def _searches(self, total: int) -> bool:
        """Whether primitives are found by search when the scene will hold ``total`` of them."""
        if self.strategy != "search":
            return False
        return self.budget is None or total <= SEARCH_UP_TO

    def start_from(self, scene: Scene) -> None:
        """Step 0 from a given scene (a video frame starts from the previous frame's painting)."""
        if (scene.height, scene.width) != (self.height, self.width):
            raise ConfigError(f"the starting scene's canvas is {scene.width}x{scene.height} but the target's is {self.width}x{self.height}")
        if len(self.levels) > 1:
            # A painting that exists already is refined at full resolution.
            if self.config.levels.scales != "auto":
                raise ConfigError("levels.scales applies to fits that start from nothing (not to video frames or "
                                  "scenes continued); set levels.scales: [1]")
            self.levels = self.levels[-1:]
            self.stage_plan = self._plan_stages()
        self.scene = self._on_device(scene.detached())
        self.step = 0
        self.history = []
        self.seconds_before = 0.0
        self._prepare_tensors()
        self._boundary_generator = self.generator.get_state()

    def set_row_state(self, name: str, tensor: torch.Tensor, fill: float | bool) -> None:
        """Attach a per-primitive tensor (first dimension N) that follows the rows; new rows get ``fill``."""
        if self.scene is None or tensor.shape[0] != len(self.scene):
            raise ConfigError(f"row state {name!r} needs one row per primitive ({0 if self.scene is None else len(self.scene)}), got {tensor.shape[0]}")
        self.row_state[name] = tensor.detach().to(self.device)
        self.row_fill[name] = fill

    def _edit_row_state(self, order: torch.Tensor | None = None, fresh_from: int | None = None, append: int = 0) -> None:
        """Apply a row edit of the scene to the row state: reorder/select by ``order``, reset
        rows from ``fresh_from`` on (re-seeded), append ``append`` new rows."""
        for name, tensor in list(self.row_state.items()):
            fill = self.row_fill.get(name, 0)
            if order is not None:
                tensor = tensor[order]
            if fresh_from is not None:
                tensor = tensor.clone()
                tensor[fresh_from:] = fill
            if append:
                tensor = torch.cat([tensor, torch.full((append, *tensor.shape[1:]), fill, dtype=tensor.dtype, device=tensor.device)])
            self.row_state[name] = tensor

    def _on_device(self, scene: Scene) -> Scene:
        """``scene`` on the fit's device, under the fit's constraints (new primitives start
        inside their rotation ranges, see Scene.with_constraints)."""
        return scene.to(self.device, torch.float32).with_constraints(self.constraints, start=True)

    def _prepare_tensors(self) -> None:
        """Make the optimised raw tensors leaves that require grad (after any row edit)."""
        scene = self.scene
        assert scene is not None
        if self.learn_beta:
            # An exact 0 or 1 (infinite logit) could never move; start it just inside.
            scene.beta_logits = scene.beta_logits.detach().clamp(-_OPACITY_LOGIT_BOUND, _OPACITY_LOGIT_BOUND)
        for name in self._trainable_names():
            tensor = getattr(scene, name).detach().contiguous()
            setattr(scene, name, tensor.requires_grad_(True))

    def _trainable_names(self) -> list[str]:
        names = list(_ROW_TENSORS)
        if self.learn_beta:
            names.append("beta_logits")
        if self.learn_background:
            names.append("background_logits")
        return names

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue from the last step boundary (plain tensors and values)."""
        scene = self.scene
        assert scene is not None
        return {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": self.step,
            "height": self.height,
            "width": self.width,
            "bank": list(self.bank.names),
            "scene": {name: tensor.detach().cpu().clone() for name, tensor in scene.raw_tensors().items()},
            "shape_ids": scene.shape_ids.detach().cpu().clone(),
            "stages": scene.stages.detach().cpu().clone(),
            "optimizer": {k: v.cpu() for k, v in self.optimizer.state_dict().items()},
            "generator": self._boundary_generator.clone(),
            "history": [dict(row) for row in self.history],
            "seconds": self._elapsed(),
            "config": result_relevant(self.config),
            "target_checksum": self._target_checksum(),
            "rows": {name: tensor.detach().cpu().clone() for name, tensor in self.row_state.items()},
            "row_fill": dict(self.row_fill),
            **({"budget": self.budget.state_dict()} if self.budget is not None else {}),
        }

    def _target_checksum(self) -> list[float]:
        """Sums that tell whether a resumed run paints the same target (files can change),
        accumulated in float64 a band of rows at a time (no float64 copy of a large target)."""
        rgb = self.target.rgb.detach()
        ramp = torch.linspace(0, 1, rgb.shape[0], dtype=torch.float64)
        plain = ramped = 0.0
        for first in range(0, rgb.shape[0], 256):
            band = rgb[first:first + 256].cpu().double()
            plain += float(band.sum())
            ramped += float((band.sum(dim=(1, 2)) * ramp[first:first + 256]).sum())
        sums = [plain, ramped]
        if self.target.alpha is not None:
            sums.append(float(self.target.alpha.detach().double().sum()))
        return sums

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a checkpoint written by :meth:`state_dict` (checked field by field
        first: a damaged one is a ConfigError that says so)."""
        check_fitter_state(state, fmt=CHECKPOINT_FORMAT, version=CHECKPOINT_VERSION)
        with reading():
            self._restore(state)

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            if state.get("format") == "diffbmp-video-checkpoint":
                raise ConfigError("the run folder's checkpoint is a video fit's, but the target is a still image; resume "
                                  "with the video target, choose another --out, or pass --force to replace that run")
            raise ConfigError("the checkpoint is not a diffbmp checkpoint; start a new run with --force")
        if list(state["bank"]) != list(self.bank.names):
            raise ConfigError(f"the checkpoint was made with primitives {state['bank']} but this run has {self.bank.names}")
        if (state["height"], state["width"]) != (self.height, self.width):
            raise ConfigError(f"the checkpoint's canvas is {state['width']}x{state['height']} but the target's is {self.width}x{self.height}")
        saved = state.get("target_checksum")
        if saved is not None and not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-6) for a, b in zip(saved, self._target_checksum())) \
                or saved is not None and len(saved) != len(self._target_checksum()):
            raise ConfigError("the target image differs from the one this run was started with; "
                               "resume with the same image, or start a new run with --force")
        raw = state["scene"]
        # Checkpoints written before stages were recorded have none: stage 0 everywhere.
        stages = state.get("stages")
        self.scene = Scene(
            height=self.height, width=self.width, bank=self.bank, shape_ids=state["shape_ids"].to(self.device),
            **{name: tensor.to(self.device) for name, tensor in raw.items()},
            stages=None if stages is None else stages.long().to(self.device),
            constraints=self.constraints,  # the raw tensors were saved under them
        )
        self.optimizer.load_state_dict({k: v.to(self.device) for k, v in state["optimizer"].items()})
        self.generator.set_state(state["generator"])
        self._boundary_generator = self.generator.get_state()
        self.step = int(state["step"])
        self.history = [dict(row) for row in state["history"]]
        self.seconds_before = float(state.get("seconds", 0.0))
        self.row_state = {name: tensor.to(self.device) for name, tensor in state.get("rows", {}).items()}
        self.row_fill = dict(state.get("row_fill", {}))
        if self.budget is not None:
            if "budget" not in state:
                raise ConfigError("the run folder's checkpoint is a fixed-count fit's, but this run has a budget "
                                  "(budget.psnr, budget.ssim or budget.max_seconds); resume without it, or pass --force")
            self.budget.load_state_dict(state["budget"])
        self._prepare_tensors()

    def _elapsed(self) -> float:
        started = getattr(self, "_session_start", None)
        return self.seconds_before + (time.perf_counter() - started if started is not None else 0.0)

    # ------------------------------------------------------------------ rendering helpers
    def _params(self, scene: Scene | None = None) -> PrimitiveParams:
        return (scene or self.scene).params()

    def current_background(self) -> torch.Tensor:
        """The background colour of the final render (learned, fixed or the noise mode's colour)."""
        if self.mode == "learned":
            return torch.sigmoid(self.scene.background_logits.detach())
        return self.background_color

    @torch.no_grad()
    def render_final(self, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and alpha at blur 0 over the final background colour."""
        scene = self.scene.detached()
        scene.background_logits = _logit(self.current_background())
        return scene.render(scale, background=True, backend=self.backend)

    def _pixel_weight(self, rows: slice | None = None, cols: slice | None = None, level: LevelView | None = None
                      ) -> torch.Tensor | None:
        """The weight map times the mask (None: every pixel counts alike), on the canvas or
        ``level``, cut to ``rows`` and ``cols``."""
        weight, mask = (self.weight_map, self.mask) if level is None else (level.weight_map, level.mask)
        if mask is not None:
            weight = mask if weight is None else weight * mask
        if weight is not None and rows is not None:
            weight = weight[rows, cols]
        return weight

    def level_at(self, step: int) -> LevelView:
        """The resolution level step ``step`` (0-based) runs in: its target and maps, made when
        the level is first needed (only the current level's are kept)."""
        index = level_index(self.levels, step)
        if self._level_view is None or self._level_view[0] != index:
            scale = self.levels[index].scale
            height, width = (self.height, self.width) if scale == 1.0 else self.scene.canvas_size(scale)
            self._level_view = None  # the previous level's copies go before the next ones are made
            self._level_view = (index, LevelView(scale, height, width, self.target, self.weight_map, self.mask))
        return self._level_view[1]

    # ------------------------------------------------------------------ one step
    def _draw_crop(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(y0, x0, h, w) of this step's crop of a ``height`` x ``width`` canvas."""
        crop = crop_side(self.config, height, width)
        if crop == 0:
            return 0, 0, height, width
        ch, cw = min(crop, height), min(crop, width)
        y0 = int(torch.randint(0, height - ch + 1, (1,), generator=self.generator))
        x0 = int(torch.randint(0, width - cw + 1, (1,), generator=self.generator))
        return y0, x0, ch, cw

    def _draw_background(self, height: int, width: int) -> torch.Tensor:
        if self.mode == "noise":
            if self.config.background.noise == "pixel":
                noise = torch.rand(height, width, 3, generator=self.generator)
            else:
                noise = torch.rand(3, generator=self.generator).expand(height, width, 3)
            return noise.to(self.device)
        if self.mode == "learned":
            return torch.sigmoid(self.scene.background_logits)
        return self.background_color

    def _schedule(self, step: int) -> tuple[float, float]:
        """(blur in pixels, learning-rate factor) at ``step``."""
        if self.budget is not None:
            return self.budget.schedule(step)
        config = self.config
        steps = config.steps
        blur = blur_at(step, steps, config.blur.start, config.blur.end, config.blur.until, config.blur.curve)
        factor = lr_factor(step, steps, config.optim.schedule, warmup=int(round(config.optim.warmup * steps)),
                           final=config.optim.final_factor)
        return blur, factor

    def _train_step(self, step: int, interrupt: "_InterruptFlag | None" = None) -> tuple[float, float, float, dict[str, float]]:
        blur, factor = self._schedule(step)
        scene = self.scene
        for name in self._trainable_names():
            getattr(scene, name).grad = None
        level = self.level_at(step)
        y0, x0, height, width = self._draw_crop(level.height, level.width)
        background = self._draw_background(height, width)
        params = self._params()
        drawn = level.scaled(params)
        target_rgb, target_alpha = level.target.rgb, level.target.alpha
        rows = cols = None
        if (height, width) != (level.height, level.width):
            rows, cols = slice(y0, y0 + height), slice(x0, x0 + width)
            drawn = replace(drawn, means=drawn.means - torch.tensor([x0, y0], dtype=drawn.means.dtype, device=self.device))
            target_rgb = target_rgb[rows, cols]
            target_alpha = None if target_alpha is None else target_alpha[rows, cols]
        image, alpha = composite(drawn, self.prepared, background, height, width, blur=blur * level.scale,
                                 backend=self.backend, validate=step == self.step_started)
        if target_alpha is None:
            wanted = target_rgb
        else:
            a = target_alpha.unsqueeze(-1)
            wanted = target_rgb * a + background.detach() * (1 - a)
        weight_map = level.weight_map if level.weight_map is None or rows is None else level.weight_map[rows, cols]
        mask = level.mask if level.mask is None or rows is None else level.mask[rows, cols]
        loss, terms = total_loss(
            self.loss_weights, image, wanted, alpha=alpha, target_alpha=target_alpha, weight=weight_map, mask=mask,
            opacities=params.opacities, scales=params.scales,
        )
        if self.regulariser is not None:
            extra, extra_terms = self.regulariser(RegulariserInput(scene, self.row_state, image, (y0, x0, height, width)))
            loss = loss + extra
            terms = {**terms, **extra_terms}
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FitDivergedError(
                f"the loss became {value} at step {step}; lower the learning rates (optim.lr.*) or the blur"
            )
        loss.backward()
        if interrupt is not None:
            interrupt.critical = True  # from here to the step boundary, Ctrl-C waits
        tensors = {name: getattr(scene, name) for name in self._trainable_names()}
        frozen = self._frozen_rows()
        if frozen is not None:
            # Frozen primitives get no gradient, and their values are put back after the
            # update so that neither Adam's momentum nor the clamp can move them.
            kept = {}
            for name, tensor in tensors.items():
                if name not in self.optimizer.shared and tensor.grad is not None:
                    tensor.grad[frozen] = 0
                    kept[name] = tensor.detach()[frozen].clone()
        self.optimizer.step(tensors, factor, row_scale=self.row_state.get("lr_scale"))
        self._clamp()
        if frozen is not None:
            with torch.no_grad():
                for name, values in kept.items():
                    tensors[name][frozen] = values
        if "mse" in terms:
            quality = terms["mse"]  # the same (weighted, masked) mean: no need to compute it twice
        else:
            quality = float(mse(image.detach(), wanted.detach(), self._pixel_weight(rows, cols, level)))
        psnr = 10.0 * math.log10(1.0 / max(quality, 1e-12))
        return value, psnr, blur, terms

    def _frozen_rows(self) -> torch.Tensor | None:
        """Boolean mask of the primitives that must not move (None when all may)."""
        trainable = self.row_state.get("trainable")
        if trainable is None or bool(trainable.all()):
            return None
        return ~trainable.bool()

    @torch.no_grad()
    def _clamp(self) -> None:
        scene = self.scene
        limits = self.config.limits
        low, high = math.log(limits.min_scale), math.log(limits.max_scale * self.side)
        if self.constraints is None:
            scene.log_scales.clamp_(low, high)
            scene.rotations.copy_(torch.remainder(scene.rotations + math.pi, 2 * math.pi) - math.pi)
        else:
            # The activated half-extents keep the bounds and the raw rotations stay where the maps are steep.
            self.constraints.clamp_(scene.log_scales, scene.rotations, scene.shape_ids, low, high)
        margin = limits.margin * self.side
        scene.means[:, 0].clamp_(-margin, self.width + margin)
        scene.means[:, 1].clamp_(-margin, self.height + margin)
        scene.color_logits.clamp_(-_COLOR_LOGIT_BOUND, _COLOR_LOGIT_BOUND)
        scene.opacity_logits.clamp_(-_OPACITY_LOGIT_BOUND, _OPACITY_LOGIT_BOUND)
        if self.learn_beta:
            scene.beta_logits.clamp_(-_OPACITY_LOGIT_BOUND, _OPACITY_LOGIT_BOUND)

    # ------------------------------------------------------------------ pruning and stages
    def _render_for_maintenance(self, want_visibility: bool, level: LevelView
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Premultiplied colour and alpha at blur 0 on ``level``'s canvas, and each primitive's
        visible area in canvas pixels."""
        params = level.scaled(self._params().map(lambda t: t.detach()))
        height, width = level.height, level.width
        visible = None
        if want_visibility:
            # d(sum of C)/d(colour_n) = sum over pixels of alpha_n * T_n: how much of n is seen.
            probe = torch.zeros_like(params.colors, requires_grad=True)
            probe_params = replace(params, colors=probe, beta=torch.zeros_like(params.opacities))
            with torch.enable_grad():
                colour, alpha = composite_premultiplied(probe_params, self.prepared, height, width, blur=0.0, backend=self.backend)
                colour.sum().backward()
            visible = probe.grad[:, 0].detach() / level.scale**2
        colour, alpha = composite_premultiplied(params, self.prepared, height, width, blur=0.0, backend=self.backend)
        return colour.detach(), alpha.detach(), visible

    def _seeding_error(self, colour: torch.Tensor, alpha: torch.Tensor, level: LevelView) -> torch.Tensor:
        """Per-pixel squared error [h, w] of the current render on ``level``'s canvas, as the fit's loss sees it."""
        target = level.target
        target_alpha = target.alpha if target.alpha is not None else torch.ones_like(alpha)
        if self.mode == "noise":
            # Expected error over a uniform random canvas: mean part plus the noise's variance.
            premultiplied = target.rgb * target_alpha.unsqueeze(-1)
            delta = (target_alpha - alpha).unsqueeze(-1)
            error = ((colour - premultiplied + 0.5 * delta) ** 2 + delta**2 / 12.0).sum(-1)
        else:
            background = self.current_background()
            render = colour + background * (1 - alpha).unsqueeze(-1)
            error = ((render - target.over(background)) ** 2).sum(-1)
        weight = self._pixel_weight(level=level)
        return error if weight is None else error * weight

    def _canvas_error(self, level: LevelView) -> torch.Tensor:
        """The seeding error of the current render at ``level``, on the canvas [H, W]."""
        colour, alpha, _ = self._render_for_maintenance(False, level)
        return level.to_canvas(self._seeding_error(colour, alpha, level), self.height, self.width)

    def current_stage(self) -> int:
        """The stage the fit is in (see :class:`~diffbmp.scene.Scene`'s ``stages``): the number
        of later stages added so far, or in a budget fit the index of the current round."""
        if self.budget is not None:
            return max(len(self.budget.rounds) - 1, 0)
        return sum(1 for start, _, _ in self.stage_plan[1:] if start <= self.step)

    def _current_max_size(self) -> float:
        largest = self.stage_plan[0][2]
        for start, _, size in self.stage_plan:
            if start <= self.step:
                largest = size
        return largest

    @torch.no_grad()
    def prune(self, level: LevelView | None = None) -> int:
        """Find invisible primitives and re-seed them where the error is (or drop them), seen
        at ``level`` (default: the current step's).

        Returns the number of primitives pruned.
        """
        rules = self.config.prune
        level = self.level_at(self.step) if level is None else level
        colour, alpha, visible = self._render_for_maintenance(True, level)
        params = self._params().map(lambda t: t.detach())
        dead = (params.opacities < rules.min_opacity) | (params.scales.max(dim=1).values < rules.min_size) | (visible < rules.min_visible)
        count = int(dead.sum())
        if count == 0:
            return 0
        alive = torch.nonzero(~dead).flatten()
        if not rules.reseed:
            self._select_rows(alive)
            return count
        error = level.to_canvas(self._seeding_error(colour, alpha, level), self.height, self.width)
        del colour, alpha
        fresh = error_init(self.analysis, self.bank, count, error, generator=self.generator,
                           **self._init_options(self._current_max_size()))
        # The re-seeded primitives go on top, where nothing hides them.
        self._replace_rows(alive, torch.nonzero(dead).flatten(), self._on_device(fresh), self.current_stage())
        return count

    def _select_rows(self, order: torch.Tensor) -> None:
        """Keep the primitives at ``order`` (indices, in that order; an index may repeat), with
        their optimiser and row state."""
        self.scene = self.scene.select(order).detached()
        self.optimizer.select(order)
        self._edit_row_state(order)
        self._prepare_tensors()

    def _replace_rows(self, alive: torch.Tensor, replaced: torch.Tensor, fresh: Scene, stage: int) -> None:
        """Keep the primitives ``alive`` (in order) and paint ``fresh`` over them in place of
        the rows ``replaced``, whose optimiser and row state start anew (at stage ``stage``)."""
        scene = self.scene
        order = torch.cat([alive, replaced])
        fresh.stages = torch.full_like(fresh.stages, stage)
        self.optimizer.select(order)
        joined = scene.select(alive).detached().concat(fresh)
        joined.background_logits = scene.background_logits.detach()
        self.scene = joined
        self.optimizer.reset(torch.arange(len(alive), len(order), device=self.device))
        self._edit_row_state(order, fresh_from=len(alive))
        self._prepare_tensors()

    @torch.no_grad()
    def add_stage(self, count: int, max_size_px: float, search: bool = True, stage: int | None = None,
                  level: LevelView | None = None) -> None:
        """Add ``count`` primitives on top, where the current render is most wrong (found by
        search when the strategy searches, unless ``search`` is False; the error seen at
        ``level``, default the current step's); their ``stages`` entry is ``stage`` (default:
        the stage after the current one)."""
        stage = self.current_stage() + 1 if stage is None else stage
        level = self.level_at(self.step) if level is None else level
        if search and self._searches(len(self.scene) + count):
            colour, alpha, _ = self._render_for_maintenance(False, level)  # searching fits have one level
            fresh = self._search_primitives(count, colour + self.current_background() * (1 - alpha).unsqueeze(-1))
        else:
            error = self._canvas_error(level)
            fresh = self._on_device(error_init(self.analysis, self.bank, count, error, generator=self.generator,
                                               **self._init_options(max_size_px)))
        background = self.scene.background_logits.detach()
        fresh.stages = torch.full_like(fresh.stages, stage)
        self.scene = self.scene.detached().concat(fresh)
        self.scene.background_logits = background
        self.optimizer.append(count)
        self._edit_row_state(append=count)
        self._prepare_tensors()

    def _maintain(self, done: int) -> None:
        """Pruning and stage additions due before step ``done`` (0-based) runs."""
        if self.budget is not None:
            self._maintain_budget(done)
            return
        steps = self.config.steps
        rules = self.config.prune
        level = self.level_at(done)  # the level of the step about to run: a new one sees finer detail
        if rules.every and done % rules.every == 0 and done < rules.until * steps and done < steps:
            self.prune(level)
        for stage, (start, count, size) in enumerate(self.stage_plan[1:], start=1):
            if start != done or count <= 0:
                continue
            if len(self.levels) > 1:
                # A finer level: split the primitives over its error; any the split cannot
                # make (too few large enough) are added where the error is.
                count -= self.split(count, stage=stage, level=level)
                if count <= 0:
                    continue
            self.add_stage(count, size, stage=stage, level=level)
        if done in self.relocations:
            self.relocate()

    # ------------------------------------------------------------------ budget fits
    @torch.no_grad()
    def measure(self, params: PrimitiveParams | None = None) -> tuple[float, float | None]:
        """PSNR and SSIM (None on canvases under 3 pixels) of the render at blur 0 over the
        final background, weighted and masked like the fit's metrics; of ``params`` when given."""
        params = self._params().map(lambda t: t.detach()) if params is None else params
        background = self.current_background()
        image, _ = composite(params, self.prepared, background, self.height, self.width, blur=0.0, backend=self.backend,
                             validate=False)
        wanted = self.target.over(background)
        weight = self._pixel_weight()
        similarity = ssim_value(image, wanted, weight) if min(self.height, self.width) >= 3 else None
        return psnr_of(image, wanted, weight), similarity

    def _maintain_budget(self, done: int) -> None:
        """A budget fit's pruning, and at a round's end its measurement and the next round."""
        plan = self.budget
        rules = self.config.prune
        if plan.prune_due(done, rules.every, rules.until):
            self.prune()
        if not plan.ends_at(done):
            return
        psnr, similarity = self.measure()
        plan.record(psnr, similarity, self._elapsed())
        action, total = plan.decide(psnr, similarity, self._elapsed())
        current = plan.current
        quality = f"PSNR {psnr:.2f} dB" + (f", SSIM {similarity:.4f}" if similarity is not None and self.config.budget.ssim else "")
        self._say(f"round {len(plan.rounds)} ({current.kind}): {current.n} primitives, {quality}")
        if action == "grow":
            # The primitives added now are those of the next round.
            self._densify(total - len(self.scene), plan.predicted_count(), stage=len(plan.rounds))
            plan.begin("grow", done, len(self.scene))
        elif action == "trim":
            removed = self.trim() if self.config.budget.trim else 0
            if removed:
                self._say(f"removed {removed} primitives the painting does not need to keep the target")
            if self.config.budget.polish_steps and (removed or current.kind == "grow"):
                plan.begin("polish", done, len(self.scene))
            else:
                plan.finished = True

    def _say(self, message: str) -> None:
        """A message while the progress bar runs (printed above it, not into it)."""
        from tqdm.auto import tqdm

        with tqdm.external_write_mode(file=sys.stderr):
            self.log(message)

    def _densify(self, count: int, predicted: float, stage: int) -> None:
        """Add ``count`` primitives (of stage ``stage``) the way ``budget.densify`` says."""
        how = self.config.budget.densify
        if how == "split":
            self.split(count, stage=stage)
            return
        # The search pays for itself when the whole painting stays small.
        search = how == "search" or (how == "auto" and predicted <= SEARCH_UP_TO)
        self.add_stage(count, self._current_max_size(), search=search, stage=stage)

    @torch.no_grad()
    def split(self, count: int, stage: int | None = None, level: LevelView | None = None) -> int:
        """Split the (up to) ``count`` large primitives over the most error in two (:mod:`.densify`),
        the error and sizes seen at ``level`` (default: the current step's); each second child
        is drawn just above its sibling and has stage ``stage`` (default: the stage after the
        current one; the first child keeps the parent's). Returns how many were split."""
        stage = self.current_stage() + 1 if stage is None else stage
        level = self.level_at(self.step) if level is None else level
        colour, alpha, _ = self._render_for_maintenance(False, level)
        params = level.scaled(self._params().map(lambda t: t.detach()))
        chosen = split_choice(params, self._seeding_error(colour, alpha, level), count)
        del colour, alpha
        if len(chosen) == 0:
            return 0
        total = len(self.scene)
        sources = torch.cat([torch.arange(total, device=self.device), chosen])
        # A stable sort keeps each parent just before its copy.
        placed = torch.sort(sources, stable=True).indices
        order = sources[placed]
        copies = torch.nonzero(placed >= total).flatten()
        parents = copies - 1
        self._select_rows(order)
        scene = self.scene
        activated = scene.params()  # the children are placed by the painted geometry, whatever the constraints
        first, second, scales = split_geometry(scene.means[parents], activated.scales[parents], activated.rotations[parents])
        scene.means[parents], scene.means[copies] = first, second
        scene.log_scales[parents] = scene.log_scales[copies] = scene.raw_geometry(scales, activated.rotations[parents],
                                                                                   scene.shape_ids[parents])[0]
        scene.stages[copies] = stage
        self.optimizer.reset(torch.cat([parents, copies]))
        return len(chosen)

    def trim(self) -> int:
        """Remove the least useful primitives, as many as keep the budget's targets. Returns how many."""
        params = self._params().map(lambda t: t.detach())
        count = params.means.shape[0]
        if count < 2:
            return 0
        background = self.current_background()
        harm = estimated_removal_harm(params, self.prepared, background, self.target.over(background), self._pixel_weight(),
                                      self.backend, self.generator)
        order = torch.sort(harm, stable=True).indices.to(self.device)

        def kept(removed: int) -> torch.Tensor:
            keep = torch.ones(count, dtype=torch.bool, device=self.device)
            keep[order[:removed]] = False
            return keep

        removed = largest_removal(count, lambda m: self.budget.reached(*self.measure(params.select(kept(m)))))
        if removed:
            self._select_rows(torch.nonzero(kept(removed)).flatten())
        return removed

    def _finished(self) -> bool:
        if self.budget is not None:
            return self.budget.finished
        return self.step >= self.config.steps

    # ------------------------------------------------------------------ the search strategy
    def _search_primitives(self, count: int, canvas: torch.Tensor) -> Scene:
        """``count`` primitives found by search against ``canvas`` [H, W, 3], on the fit's device."""
        if self._search is None:
            wanted = self.target.over(self.background_color)
            self._search = ShapeSearch(wanted, self.bank, self._pixel_weight(), self._outside_cost(), self.constraints)
        settings = search_settings(self.config.search, self.side, self.config.init.min_size)
        pool = torch.arange(len(self.bank))
        if self.config.init.shape_weights is not None:
            # Candidates draw their shapes from this pool, whose frequencies follow the weights.
            pool = sample_shape_ids(self.bank, 64 * len(self.bank), torch.Generator().manual_seed(0), self.config.init.shape_weights)
        from tqdm.auto import tqdm

        # A search of many primitives takes seconds before the first step: it shows progress.
        with tqdm(total=count, disable=not self.progress or count < 32, unit="primitive", dynamic_ncols=True,
                  file=sys.stderr, leave=False, desc=f"{self.label}: search", mininterval=0.5) as bar:
            scene, _ = self._search.find(canvas, count, self.generator, settings, pool, on_found=lambda: bar.update(1))
        return self._on_device(scene)

    def _outside_cost(self) -> torch.Tensor | None:
        """The loss's ``outside`` term per unit of alpha at each pixel, [H, W], in the search's
        units (squared error summed over channels and weighted pixels); None without it."""
        weights = self.loss_weights
        if self.mask is None or not weights.outside:
            return None
        outside = (1 - self.mask).clamp_min(0)
        pixel_weight = self._pixel_weight()
        # mse = error / (3 sum(weight)); outside = sum(alpha outside) / sum(outside).
        scale = 3.0 * float(pixel_weight.sum()) / max(weights.mse, 1e-3) / max(float(outside.sum()), 1.0)
        return weights.outside * scale * outside

    @torch.no_grad()
    def relocate(self) -> int:
        """Move the primitives whose removal would cost least to where the search finds the
        most error without them (on top). Returns how many moved."""
        scene = self.scene
        count = int(round(self.config.search.relocate_share * len(scene)))
        if count == 0:
            return 0
        background = self.current_background()
        wanted = self.target.over(background)
        harm = removal_harm(self._params(), self.prepared, background, wanted, self._pixel_weight(), self.backend)
        # Stable ranking, so that equal harms (say, two hidden primitives) move in index order.
        moved = torch.sort(harm, stable=True).indices[:count].to(self.device)
        keep = torch.ones(len(scene), dtype=torch.bool, device=self.device)
        keep[moved] = False
        alive = torch.nonzero(keep).flatten()
        image, _ = composite(scene.select(alive).params(), self.prepared, background, self.height, self.width, blur=0.0,
                             backend=self.backend, validate=False)
        self._replace_rows(alive, moved, self._search_primitives(count, image), self.current_stage())
        return count

    # ------------------------------------------------------------------ the loop
    def _frame_due(self, done: int) -> bool:
        frames = self.config.output.frames
        if frames <= 0 or self.on_frame is None:
            return False
        if self.budget is not None:
            # The length of a budget fit is not known ahead: a frame every tenth of a round.
            return done % max(1, self.config.budget.round_steps // 10) == 0 or self.budget.finished
        every = max(1, self.config.steps // frames)
        return done % every == 0 or done == self.config.steps

    def _emit_frame(self, done: int) -> None:
        every = self.config.output.snapshot_every
        snapshot = bool(every) and done % every == 0
        if snapshot or self._frame_due(done):
            # A frame alone is rendered at the animation's size; a snapshot is the whole canvas.
            image, alpha = self.render_final(1.0 if snapshot else self.frame_scale)
            self.on_frame(done, image, alpha)

    @property
    def frame_shape(self) -> tuple[int, int]:
        """(h, w) of the animation's frames."""
        return self.scene.canvas_size(self.frame_scale)

    def checkpoint(self) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(self.state_dict())

    def run(self) -> bool:
        """Optimise until ``config.steps`` (a budget fit: until its rounds end); True when
        finished, False when a callback stopped it.

        Ctrl-C (SIGTERM, SIGHUP) finishes the current step, writes a checkpoint and raises
        :class:`~diffbmp.interrupts.Interrupted` (a KeyboardInterrupt);
        any other exception writes the checkpoint of the last finished step and propagates.
        """
        from tqdm.auto import tqdm

        steps = self.config.steps
        self.step_started = self.step
        self._session_start = time.perf_counter()
        if self.step == 0 and self.on_frame is not None:
            self._emit_frame(0)
        bar = tqdm(total=None if self.budget is not None else steps, initial=self.step, disable=not self.progress, unit="step", dynamic_ncols=True,
                   file=sys.stderr, leave=self.leave_progress, desc=self.label, mininterval=0.5)
        completed = True
        try:
            with _InterruptFlag() as interrupt, _deterministic_convolutions(torch.device(self.device)):
                while not self._finished():
                    if interrupt.raised:
                        raise interrupt.exception()
                    step = self.step
                    loss, psnr, blur, terms = self._train_step(step, interrupt)
                    done = step + 1
                    row = {"step": done, "loss": loss, "psnr": psnr, "n": len(self.scene), "blur": blur,
                           "seconds": self._elapsed()}
                    self.history.append(row)
                    if self.budget is not None:
                        if not self._over_time_limit():
                            self._maintain(done)
                    elif done < steps:
                        self._maintain(done)
                    # A step boundary: everything below sees a state a checkpoint can restore.
                    self.step = done
                    self._boundary_generator = self.generator.get_state()
                    interrupt.critical = False
                    if self.on_frame is not None:
                        self._emit_frame(done)
                    every = self.config.output.checkpoint_every
                    if every and done % every == 0 and not self._finished():
                        self.checkpoint()
                    bar.update(1)
                    if done % 10 == 0 or self._finished():
                        bar.set_postfix(loss=f"{loss:.4g}", psnr=f"{psnr:.2f}", n=len(self.scene), refresh=False)
                    if self.callback is not None:
                        info = StepInfo(done, loss, psnr, len(self.scene), blur, row["seconds"], terms, self.scene)
                        if self.callback(info):
                            completed = False
                            break
        except BaseException as error:
            bar.close()
            self._restore_boundary()
            self.seconds_before = self._elapsed()
            self._session_start = time.perf_counter()
            try:
                self.checkpoint()
            except OutputError as failed:  # a full disk, say: the last checkpoint that was written stays
                self.checkpoint_failed = True
                self.log(f"{failed}; the previous checkpoint is kept")
            if isinstance(error, KeyboardInterrupt):
                self.log(f"interrupted after step {self.step} of {steps}")
            raise
        bar.close()
        self.seconds_before = self._elapsed()
        self._session_start = time.perf_counter()
        if not completed:
            self.checkpoint()
        return completed

    def _over_time_limit(self) -> bool:
        """Whether a budget fit is past ``budget.max_seconds``; it then ends at this step boundary."""
        limit = self.config.budget.max_seconds
        if self.budget.finished or limit is None or self._elapsed() < limit:
            return False
        psnr, similarity = self.measure()
        self.budget.record(psnr, similarity, self._elapsed())
        self.budget.stop_for_time()
        return True

    def _restore_boundary(self) -> None:
        """After an exception mid-step: back to the state at the last step boundary."""
        self.generator.set_state(self._boundary_generator)
        self.history = self.history[: self.step]
        for name in self._trainable_names():
            getattr(self.scene, name).grad = None


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p) - torch.log1p(-p)
