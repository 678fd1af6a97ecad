"""The fit configuration: one schema for ``diffbmp fit config.yaml`` and ``diffbmp.fit(...)``.

The YAML file, ``--set key=value`` overrides and the keyword arguments of
:func:`diffbmp.fitting.image.fit` all end up in a :class:`FitConfig` (pydantic models, unknown keys
forbidden). Every problem becomes a :class:`~diffbmp.errors.ConfigError` whose message names
the key by its dotted location (``optim.lr.means``), the value, and what is allowed, and
suggests the nearest valid key for a misspelt one.
"""

from __future__ import annotations

import difflib
import math
import os
import typing
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal, Optional, Sequence, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .errors import ConfigError

__all__ = [
    "FitConfig",
    "load_config",
    "config_path",
    "looks_like_text",
    "config_from_dict",
    "apply_overrides",
    "parse_color",
    "config_reference",
    "dump_config",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: ``strategy: auto`` runs the search strategy up to this many primitives (docs/quality.md).
SEARCH_UP_TO = 500


# ----------------------------------------------------------------------------- sections
class InitConfig(_Section):
    """How the primitives start (diffbmp/init.py)."""

    method: Literal["structure", "random", "error"] = Field(
        "structure", description="structure: positions from the target's detail, sizes from local density, angles along edges; "
        "random: uniform positions; error: where the empty canvas differs most from the target")
    detail_mix: float = Field(0.7, ge=0, le=1, description="structure: share of positions drawn from the detail map (rest uniform)")
    detail_power: float = Field(1.0, ge=0.1, le=4, description="structure: the detail map is raised to this power (>1 concentrates on edges)")
    coverage: float = Field(2.0, gt=0, le=50, description="about how many primitives cover each pixel at the start (sets their sizes)")
    opacity: float = Field(0.8, ge=0.01, le=0.99, description="initial opacity")
    colors: Literal["target", "random", "gray"] = Field("target", description="initial colours: the target's under each primitive, random, or gray")
    beta: float = Field(0.0, ge=0, le=1, description="initial blend towards the bitmaps' own colours (0: tinted stencil, 1: own colours)")
    shape_weights: Optional[list[float]] = Field(None, description="relative frequency of each primitive in `primitives` (default: uniform)")
    aspect: Optional[float] = Field(None, gt=0.01, le=100, description="width/height of every primitive (default: each bitmap's natural aspect)")
    min_size: float = Field(0.5, ge=0.1, le=1000, description="smallest initial half-size, pixels")
    max_size: float = Field(0.25, gt=0, le=2, description="largest initial half-size, fraction of the canvas's longer side")


class LearningRates(_Section):
    """Adam learning rate of each parameter group (0 freezes it)."""

    means: float = Field(0.002, ge=0, le=1, description="positions, in canvas lengths (longer side) per step")
    scales: float = Field(0.07, ge=0, le=10, description="log half-sizes per step")
    rotations: float = Field(0.02, ge=0, le=10, description="radians per step")
    colors: float = Field(0.05, ge=0, le=10, description="colour logits per step")
    opacities: float = Field(0.1, ge=0, le=10, description="opacity logits per step")
    beta: float = Field(0.0, ge=0, le=10, description="beta logits per step (0: beta stays at init.beta)")
    background: float = Field(0.02, ge=0, le=10, description="background colour logits per step (background.mode: learned)")


class OptimConfig(_Section):
    """The optimiser and its learning-rate schedule."""

    lr: LearningRates = Field(default_factory=LearningRates, description="learning rates per parameter group")
    schedule: Literal["constant", "cosine", "exponential", "linear"] = Field("cosine", description="how the learning rates decay over the fit")
    final_factor: float = Field(0.1, ge=0, le=1, description="learning-rate factor at the last step (cosine, exponential, linear)")
    warmup: float = Field(0.0, ge=0, lt=1, description="fraction of the steps over which learning rates ramp up linearly")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam's moment decay rates")

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in value):
            raise ValueError("both Adam betas must lie in [0, 1)")
        return value


class BlurConfig(_Section):
    """Screen-space blur, annealed from soft to sharp."""

    start: float = Field(1.0, ge=0, le=64, description="blur width (pixels) at the first step")
    end: float = Field(0.0, ge=0, le=64, description="blur width (pixels) at the end of the anneal")
    until: float = Field(0.7, ge=0, le=1, description="fraction of the steps over which the blur goes from start to end")
    curve: Literal["linear", "cosine"] = Field("linear", description="shape of the anneal")


class BackgroundConfig(_Section):
    """What the primitives are painted over."""

    mode: Literal["auto", "learned", "fixed", "noise"] = Field(
        "auto", description="learned: a colour optimised with the primitives; fixed: `color`; noise: a fresh random canvas "
        "every step, so primitives must cover the image themselves; auto: noise for targets with alpha, else learned")
    color: Any = Field("auto", description="background colour: 'auto' (target's mean colour; white for targets with alpha), "
                       "'white', 'black', '#rrggbb' or [r, g, b] in [0, 1]; also the final render's background in noise mode")
    noise: Literal["pixel", "color"] = Field("pixel", description="noise mode: independent random pixels, or one random colour per step")

    @field_validator("color")
    @classmethod
    def _valid_color(cls, value: Any) -> Any:
        if value == "auto":
            return value
        parse_color(value)
        return list(value) if isinstance(value, (list, tuple)) else value


class LossConfig(_Section):
    """Weights of the loss terms (0 switches a term off) and the per-pixel maps."""

    mse: float = Field(1.0, ge=0, le=1000, description="mean squared error")
    l1: float = Field(0.0, ge=0, le=1000, description="mean absolute error")
    ssim: float = Field(0.0, ge=0, le=1000, description="1 - SSIM")
    msssim: float = Field(0.0, ge=0, le=1000, description="1 - MS-SSIM (5 scales; smaller windows on small canvases)")
    alpha: float = Field(1.0, ge=0, le=1000, description="mean |alpha - target alpha| (targets with alpha only)")
    outside: float = Field(0.0, ge=0, le=1000, description="mean alpha painted outside `mask` (keeps the painting inside it)")
    overlap: float = Field(0.0, ge=0, le=1000, description="penalty on total opacity-weighted area beyond one layer")
    size: float = Field(0.0, ge=0, le=1000, description="penalty on half-sizes outside [size_min, size_max]")
    size_min: float = Field(0.5, gt=0, le=1000, description="size regulariser: smallest half-size without penalty, pixels")
    size_max: float = Field(0.25, gt=0, le=2, description="size regulariser: largest half-size without penalty, fraction of the canvas")
    weight_map: Optional[str] = Field(None, description="image saying how much each pixel matters (white 1, black 0), "
                                      "or 'ellipse[:cx,cy,rx,ry]' / 'rect:x0,y0,x1,y1' in canvas fractions")
    mask: Optional[str] = Field(None, description="region that may be painted (same forms as weight_map); the loss ignores "
                                "pixels outside it and primitives start inside it")


class PruneConfig(_Section):
    """Pruning of invisible primitives and re-seeding them where the error is."""

    every: int = Field(50, ge=0, le=10**7, description="prune every this many steps (0: never)")
    until: float = Field(0.8, ge=0, le=1, description="no pruning after this fraction of the steps")
    min_opacity: float = Field(0.02, ge=0, le=1, description="a primitive fainter than this is dead")
    min_size: float = Field(0.4, ge=0, le=100, description="a primitive whose larger half-size is below this many pixels is dead")
    min_visible: float = Field(0.5, ge=0, le=10**6, description="a primitive that shows less than this many pixels (sum of alpha x transmittance) is dead")
    reseed: bool = Field(True, description="move dead primitives to where the error is largest (else they stay where they are)")


class StagesConfig(_Section):
    """Adding primitives in stages, coarse to fine."""

    count: int = Field(1, ge=1, le=64, description="number of stages; the n primitives are split evenly between them")
    until: float = Field(0.5, ge=0, le=1, description="the last stage starts at this fraction of the steps")
    size_decay: float = Field(0.5, gt=0, le=1, description="each stage's largest new primitive is this times the previous stage's")


class SearchConfig(_Section):
    """The small-budget strategy: primitives found one by one by search against the residual."""

    rounds: int = Field(1, ge=1, le=16, description="rounds of adding primitives (1: all n at the start); the count doubles each round and reaches n in the last")
    until: float = Field(0.6, ge=0, le=1, description="the last round starts at this fraction of the steps (rounds > 1)")
    relocate: list[float] = Field(default_factory=lambda: [0.4, 0.55, 0.7], max_length=64,
                                  description="fractions of the steps at which the least useful primitives are searched for again")
    relocate_share: float = Field(0.2, ge=0, le=1, description="share of the primitives moved at each relocation (the least useful)")
    candidates: int = Field(128, ge=1, le=65536, description="random candidates tried for each new primitive")
    climbs: int = Field(8, ge=0, le=1000, description="rounds of random perturbation of the best candidate")
    perturbations: int = Field(24, ge=1, le=65536, description="perturbed copies tried per climbing round")
    opacity: float = Field(0.8, ge=0.01, le=0.99, description="opacity new primitives are scored with and start with")
    max_size: float = Field(0.5, gt=0, le=2, description="largest half-size of a new primitive, fraction of the canvas's longer side")
    max_aspect: float = Field(4.0, ge=1, le=100, description="largest width/height (and height/width) of a new primitive")

    @field_validator("relocate")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0 < f < 1 for f in value):
            raise ValueError("relocation points are fractions of the steps, each between 0 and 1")
        return sorted(value)


class BudgetConfig(_Section):
    """Automatic primitive budgets: primitives added in rounds until the painting reaches a quality."""

    psnr: Optional[float] = Field(None, gt=0, le=100, description="add primitives until the painting reaches this PSNR "
                                  "(dB); with `ssim`, both; null (and no `ssim` or `max_seconds`): a fixed count `n`")
    ssim: Optional[float] = Field(None, gt=0, lt=1, description="add primitives until the painting reaches this SSIM")
    max_seconds: Optional[float] = Field(None, gt=0, le=10**7, description="stop adding primitives when the fit has run "
                                         "this long (alone: the best painting in this time)")
    max_primitives: int = Field(100000, ge=1, le=10**7, description="never more primitives than this")
    start: int = Field(50, ge=1, le=10**6, description="primitives of the first round")
    round_steps: int = Field(100, ge=2, le=10**6, description="steps of each round (the learning rates fall within a round, "
                             "so its end measures a settled painting)")
    growth: float = Field(3.0, gt=1, le=100, description="a round multiplies the count by at most this")
    margin: float = Field(0.1, ge=0, le=1, description="a round adds this share beyond the count predicted to reach the target")
    densify: Literal["auto", "error", "split", "search"] = Field(
        "auto", description="how a round adds primitives: error: where the error is, sized by the error blob; split: the "
        "large primitives over the most error become two; search: each found by search against the residual "
        f"(strategy search); auto: search while the predicted count is at most {SEARCH_UP_TO}, else error")
    restart: float = Field(0.5, gt=0, le=1, description="learning-rate factor at the start of each round after the first")
    trim: bool = Field(True, description="once the target is reached, remove the primitives that are not needed to keep it "
                       "(the least useful first), then polish")
    polish_steps: int = Field(60, ge=0, le=10**6, description="steps of the last refinement, after trimming")

    @property
    def active(self) -> bool:
        """Whether a fit with this section chooses its own count (a target or a time limit is set)."""
        return self.psnr is not None or self.ssim is not None or self.max_seconds is not None


class ShapeConstraint(_Section):
    """What the primitives of the shapes a `constraints` pattern matches may do (enforced exactly, see docs/fitting.md)."""

    rotation: Optional[Union[Literal["free", "upright"], float, list[float]]] = Field(
        None, description="free; upright (never turned); a number of degrees: the largest turn either way (0: upright); "
        "[low, high]: a range in degrees within [-180, 180]; null: as an earlier matching pattern says (else free)")
    aspect: Optional[Literal["free", "keep"]] = Field(
        None, description="free; keep: the shape's own width/height (circles stay circles, a glyph keeps its "
        "proportions); null: as an earlier matching pattern says (else free)")

    @field_validator("rotation", mode="before")
    @classmethod
    def _rotation(cls, value: Any) -> Any:
        if value is None or value in ("free", "upright"):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not (math.isfinite(value) and 0 <= value < 180):
                raise ValueError("the largest turn either way is a number of degrees from 0 (upright) to below 180; "
                                 "write free for no limit")
            return value
        if isinstance(value, (list, tuple)) and len(value) == 2 \
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
            low, high = value
            if not -180 <= low < high <= 180:
                raise ValueError("a rotation range [low, high] needs -180 <= low < high <= 180 (degrees)")
            return [low, high]
        raise ValueError("rotation is free, upright, a number of degrees (the largest turn either way) or a range "
                         "[low, high] in degrees")


class MinibatchConfig(_Section):
    """Random crops of the canvas per step, for very large targets."""

    crop: Union[Literal["auto"], int] = Field(
        "auto", description="side in pixels of the random square crop rendered each step (0: whole canvas; auto: "
        "2048-pixel crops where the canvas, or the current level, is larger than 2048 pixels a side, else the whole canvas)")

    @field_validator("crop")
    @classmethod
    def _crop_range(cls, value: Any) -> Any:
        if value != "auto" and not 0 <= value <= 16384:
            raise ValueError("crop is auto, 0 (the whole canvas) or a side of 1 to 16384 pixels")
        return value


class LevelsConfig(_Section):
    """Coarse to fine in resolution: the fit starts on the target shrunk, then refines at larger sizes."""

    scales: Union[Literal["auto"], list[float]] = Field(
        "auto", description="canvas scale of each level, ascending and ending at 1, e.g. [0.25, 0.5, 1]; primitives "
        "carry over and are split where the error is when a level starts ([1]: one level; auto: [0.25, 0.5, 1] on "
        "canvases larger than 2048 pixels a side, for fixed-count plain fits, else [1])")
    steps: Optional[list[float]] = Field(None, description="share of the steps of each level (null: equal shares)")
    counts: Optional[list[float]] = Field(None, description="share of the n primitives present at each level, "
                                          "non-decreasing and ending at 1 (null: the levels' scales)")

    @field_validator("scales")
    @classmethod
    def _ascending_to_one(cls, value: Any) -> Any:
        if value == "auto":
            return value
        if not value or any(not 0 < s <= 1 for s in value) or any(b <= a for a, b in zip(value, value[1:])) or value[-1] != 1:
            raise ValueError("scales must be auto or ascending values in (0, 1] that end at 1, e.g. [0.25, 0.5, 1]")
        return value

    @field_validator("steps", "counts")
    @classmethod
    def _positive_shares(cls, value: Any) -> Any:
        if value is not None and (not value or any(not 0 < v <= 1e6 for v in value)):
            raise ValueError("give one positive share per level, e.g. [0.4, 0.3, 0.3]")
        return value


class LimitsConfig(_Section):
    """Bounds that keep primitives sensible."""

    min_scale: float = Field(0.3, gt=0, le=100, description="smallest half-size, pixels")
    max_scale: float = Field(1.0, gt=0, le=4, description="largest half-size, fraction of the canvas's longer side")
    margin: float = Field(0.05, ge=0, le=1, description="how far centres may leave the canvas, fraction of its longer side")


class OutputConfig(_Section):
    """What a run writes into its folder."""

    dir: Optional[str] = Field("runs/{name}", description="run folder ({name}: the config file's name, or the target's); "
                               "`diffbmp fit --out` overrides it")
    progress: bool = Field(True, description="show a progress bar with loss and PSNR")
    snapshot_every: int = Field(0, ge=0, le=10**7, description="write snapshots/step_NNNNNN.png every this many steps (0: never)")
    frames: int = Field(100, ge=0, le=100000, description="frames of the animation of the fit (0: no animation)")
    gif: bool = Field(True, description="write fit.gif")
    mp4: bool = Field(True, description="write fit.mp4 (needs ffmpeg, bundled with imageio-ffmpeg)")
    fps: int = Field(20, ge=1, le=120, description="frames per second of the animation")
    keep_frames: bool = Field(False, description="keep the PNG frames in frames/ after the animation is written")
    checkpoint_every: int = Field(250, ge=0, le=10**7, description="write checkpoint.pt every this many steps (0: only on interruption and at the end)")
    final_scale: float = Field(1.0, gt=0, le=32, description="final.png is rendered at this multiple of the canvas size")
    frame_size: int = Field(1024, ge=0, le=16384, description="longer side in pixels of the animation's frames: "
                            "larger canvases are shown shrunk (0: the canvas size)")


class TemporalConfig(_Section):
    """The temporal loss of a video fit: later frames pay for changing what did not change."""

    weight: float = Field(2.0, ge=0, le=10**6, description="weight of the hold term (0: off): the painting's squared change "
                          "from the previous painting (moved along the optical flow), per pixel, times how still the target "
                          "is there; scaled like the image MSE, so 1 makes a still pixel cost as much to change as to be wrong")
    change_scale: float = Field(0.03, gt=0, le=1, description="target change (|difference|, 0..1, after following the flow) "
                                "at which a pixel (hold) or a primitive (anchor) is held half as firmly; no change holds fully")
    release: int = Field(6, ge=0, le=1024, description="hold: a change of the target also releases the pixels within "
                         "this many pixels of it (primitives that paint a moving object reach a little beyond its edge)")
    anchor: float = Field(0.0, ge=0, le=10**6, description="weight of the anchor term (0: off): each primitive's parameter "
                          "change from the previous frame (its centre moved by the flow), weighted by its visible share of "
                          "the canvas and by how little the target changed under it; costs below")
    means: float = Field(1.0, ge=0, le=10**6, description="anchor: cost of moving a centre one pixel away from its anchor")
    scales: float = Field(1.0, ge=0, le=10**6, description="anchor: cost of changing a half-size by one pixel")
    rotations: float = Field(1.0, ge=0, le=10**6, description="anchor: cost of turning a primitive so its tip moves one pixel "
                             "(radians x larger half-size)")
    colors: float = Field(100.0, ge=0, le=10**8, description="anchor: cost of a unit change of colour (per channel, 0..1; 100: a "
                          "change of 0.1 costs as much as moving one pixel); also the learned background's")
    opacities: float = Field(100.0, ge=0, le=10**8, description="anchor: cost of a unit change of opacity (0..1)")


class VideoConfig(_Section):
    """Video targets (video files, animated GIFs, folders of frames); see docs/video.md."""

    start: int = Field(0, ge=0, le=10**9, description="first frame of the clip to fit (0-based)")
    stop: Optional[int] = Field(None, ge=1, le=10**9, description="frame at which to stop (exclusive; null: the end of the clip)")
    step: int = Field(1, ge=1, le=10**6, description="fit every step-th frame")
    max_frames: Optional[int] = Field(None, ge=1, le=10**6, description="fit at most this many frames (null: no limit)")
    steps_per_frame: int = Field(100, ge=1, le=10**7, description="optimisation steps of each frame after the first "
                                 "(the first frame is a full fit of `steps`)")
    lr_scale: float = Field(1.0, gt=0, le=10, description="learning rates of the later frames are optim.lr times this")
    still_lr: float = Field(0.3, gt=0, le=1, description="in later frames, a primitive over content that did not change "
                            "learns at this fraction of the rates, rising to the full rates as the change under it grows "
                            "(half way at video.temporal.change_scale); 1: every primitive at full rates. Restarting an "
                            "already good painting at full rates would jolt it")
    blur_start: float = Field(0.25, ge=0, le=64, description="blur at the first step of a later frame (annealed to blur.end "
                              "like the first frame; low, since the frame starts from a good painting)")
    prune_every: int = Field(0, ge=0, le=10**7, description="prune and re-seed every this many steps of a later frame "
                             "(0: never; re-seeding makes primitives jump)")
    flow: Literal["farneback", "dis", "none"] = Field("farneback", description="optical flow (OpenCV) that carries "
                                                        "primitives with the motion before a frame is refined; none: they stay put")
    flow_at: Literal["footprint", "centre"] = Field("footprint", description="where a primitive reads the flow: the mean "
                                                    "over the pixels it shows (robust when it is partly hidden), or at its centre")
    only_changed: bool = Field(False, description="optimise only the primitives over regions where the target changed "
                               "(the others are frozen)")
    change_threshold: float = Field(0.02, ge=0, le=1, description="only_changed: a primitive is optimised when the mean "
                                    "target change under it exceeds this (0..1)")
    temporal: TemporalConfig = Field(default_factory=TemporalConfig, description="temporal loss")
    psd_frames: list[int] = Field(default_factory=list, description="frames (indices into the fitted frames; -1: the last) "
                                  "written as layered PSD files psd/frame_NNNNN.psd")
    fps: Optional[float] = Field(None, gt=0, le=240, description="frame rate of painted.mp4/gif (null: the clip's, divided by `step`)")
    gif: bool = Field(True, description="write painted.gif")
    mp4: bool = Field(True, description="write painted.mp4 (needs ffmpeg, bundled with imageio-ffmpeg)")

    @field_validator("flow", mode="before")
    @classmethod
    def _flow_off(cls, value: Any) -> Any:
        return "none" if value is False or value is None else value


class FitConfig(_Section):
    """Everything a fit needs. See docs/fitting.md for the full reference."""

    target: str = Field("skimage:astronaut", description="image to paint: a file path or 'skimage:<name>'; or a video "
                        "(video file, animated GIF, folder of frames, 'demo:moving_disc'), see docs/video.md")
    size: int = Field(256, ge=8, le=16384, description="longer side of the fitting canvas, pixels")
    primitives: list[str] = Field(default_factory=lambda: ["circle"], min_length=1, description="shapes: circle, gaussian, built-ins "
                                  "(brush_flat, leaf, star, ...), 'text:<characters>' or 'text:<characters>@<font>', image/SVG files or folders")
    texture_size: int = Field(128, ge=8, le=4096, description="longer side of bitmap primitives, texels")
    text_font: Optional[str] = Field(None, description="font of `text:` primitives: a family name ('DejaVu Serif'), "
                                     "a .ttf/.otf path or an installed font's file name; one shape can name its own "
                                     "with 'text:Aa@<font>' (null: Pillow's built-in font: Latin letters, digits, punctuation)")
    constraints: dict[str, ShapeConstraint] = Field(
        default_factory=dict, description="per-shape rotation and aspect constraints: a shape of `primitives` (or a "
        "pattern such as 'text:*') -> {rotation: ..., aspect: ...}, e.g. {circle: {aspect: keep}}; later patterns "
        "override earlier ones")
    n: int = Field(1000, ge=1, le=10**7, description="number of primitives")
    steps: int = Field(500, ge=1, le=10**8, description="optimisation steps")
    seed: int = Field(0, ge=0, le=2**63 - 1, description="random seed: the same seed, config, backend and machine give the same result")
    backend: Literal["auto", "cpu", "cuda", "torch"] = Field("auto", description="compositor backend (torch is a slow reference)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where tensors live (auto: cuda when available)")
    init: InitConfig = Field(default_factory=InitConfig, description="initialisation")
    optim: OptimConfig = Field(default_factory=OptimConfig, description="optimiser")
    blur: BlurConfig = Field(default_factory=BlurConfig, description="blur anneal")
    background: BackgroundConfig = Field(default_factory=BackgroundConfig, description="background")
    loss: LossConfig = Field(default_factory=LossConfig, description="loss terms")
    prune: PruneConfig = Field(default_factory=PruneConfig, description="pruning and re-seeding")
    strategy: Literal["auto", "plain", "search"] = Field(
        "auto", description="plain: all primitives from the initialisation (and `stages`), refined by gradient descent; "
        "search: found one by one by search against the residual, refined together, the least useful searched for "
        f"again (`search`); auto: search when n is at most {SEARCH_UP_TO}, `stages.count` is 1 and `init.beta` is 0, else plain")
    search: SearchConfig = Field(default_factory=SearchConfig, description="the search strategy (few primitives)")
    stages: StagesConfig = Field(default_factory=StagesConfig, description="coarse-to-fine stages")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="automatic primitive budgets: a quality "
                                 "(psnr, ssim) or a time to reach instead of a count (n and steps are then not used)")
    minibatch: MinibatchConfig = Field(default_factory=MinibatchConfig, description="random crops")
    levels: LevelsConfig = Field(default_factory=LevelsConfig, description="coarse-to-fine resolution levels")
    limits: LimitsConfig = Field(default_factory=LimitsConfig, description="parameter bounds")
    output: OutputConfig = Field(default_factory=OutputConfig, description="run folder contents")
    video: VideoConfig = Field(default_factory=VideoConfig, description="video targets")

    @field_validator("primitives", mode="before")
    @classmethod
    def _one_primitive(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraint_entries(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ValueError("constraints maps shapes to {rotation: ..., aspect: ...}, e.g. {circle: {aspect: keep}}")
        for pattern, rule in value.items():
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"the shape {pattern!r} is not a name or pattern of `primitives`")
            if not isinstance(rule, (dict, BaseModel)):
                raise ValueError(f"the shape {pattern!r} maps to {rule!r}; give {{rotation: ..., aspect: ...}}, "
                                 "e.g. {aspect: keep}")
        return value

    @field_validator("constraints")
    @classmethod
    def _patterns_match(cls, value: dict[str, "ShapeConstraint"], info: ValidationInfo) -> dict[str, "ShapeConstraint"]:
        primitives = info.data.get("primitives")
        if primitives is None:
            return value  # the primitives are wrong themselves: that error is reported
        for pattern in value:
            if not any(fnmatchcase(spec, pattern) for spec in primitives):
                raise ValueError(f"the shape pattern {pattern!r} matches none of the primitives ({', '.join(primitives)}); "
                                 "name one of them, or a pattern such as 'text:*'")
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON types only)."""
        return self.model_dump(mode="json")


def chosen_strategy(config: FitConfig) -> str:
    """``"plain"`` or ``"search"``: the strategy a fit with ``config`` runs (``auto`` resolved).

    Raises ConfigError for ``strategy: search`` with stamps that keep their own colours
    (``init.beta`` > 0): the search scores tinted shapes.
    """
    if config.strategy == "search" and config.init.beta > 0:
        raise ConfigError(f"strategy: search paints tinted shapes, but init.beta is {config.init.beta} (stamps that keep "
                          "their own colours); set strategy: plain (or auto), or init.beta: 0")
    if config.strategy != "auto":
        return config.strategy
    # Stages asked for are a plain fit's schedule; the search strategy has its own, and it
    # scores tinted shapes only.
    return "search" if config.n <= SEARCH_UP_TO and config.stages.count == 1 and config.init.beta == 0 else "plain"


#: Keys that do not change the result of a fit (a resumed run may change them).
RESULT_NEUTRAL_KEYS = ("output", "backend", "device")
#: Keys of the video section that only choose outputs.
VIDEO_OUTPUT_KEYS = ("psd_frames", "fps", "gif", "mp4")


# ----------------------------------------------------------------------------- colours
_NAMED_COLORS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0), "gray": (0.5, 0.5, 0.5), "grey": (0.5, 0.5, 0.5)}


def parse_color(value: Any) -> tuple[float, float, float]:
    """An RGB triple in [0, 1] from a name, '#rrggbb', or three numbers in [0, 1]."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _NAMED_COLORS:
            return _NAMED_COLORS[text]
        if text.startswith("#") and len(text) == 7:
            try:
                return tuple(int(text[i:i + 2], 16) / 255.0 for i in (1, 3, 5))  # type: ignore[return-value]
            except ValueError:
                pass
        raise ValueError(f"unknown colour {value!r}; use 'white', 'black', 'gray', '#rrggbb' or [r, g, b] in [0, 1]")
    if isinstance(value, (list, tuple)) and len(value) == 3 and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        if all(0 <= float(v) <= 1 for v in value):
            return tuple(float(v) for v in value)  # type: ignore[return-value]
        raise ValueError(f"colour components must lie in [0, 1], got {list(value)}")
    raise ValueError(f"a colour must be a name, '#rrggbb' or [r, g, b] in [0, 1], got {value!r}")


# ----------------------------------------------------------------------------- errors
def _mapped_model(annotation: Any) -> type[BaseModel] | None:
    """The value model of a ``dict[str, Model]`` field (a section keyed by names), else None."""
    if typing.get_origin(annotation) is dict:
        args = typing.get_args(annotation)
        if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], BaseModel):
            return args[1]
    return None


def _model_at(location: Sequence[Any]) -> type[BaseModel] | None:
    """The section model found by following ``location`` (field names, and the keys of a
    section keyed by names such as ``constraints``) from FitConfig."""
    model: type[BaseModel] = FitConfig
    keyed: type[BaseModel] | None = None  # set after a keyed section: the next part is a key
    for part in location:
        if keyed is not None:
            model, keyed = keyed, None
            continue
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif _mapped_model(annotation) is not None:
            keyed = _mapped_model(annotation)
        else:
            return None
    return None if keyed is not None else model


def _dotted(location: Sequence[Any]) -> str:
    out = ""
    for part in location:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _range_of(location: Sequence[Any]) -> str:
    """'between 0 and 10' (or '>= 0', ...) from the field's constraints, or ''."""
    if not location or not isinstance(location[-1], str):
        return ""
    model = _model_at(location[:-1])
    field = model.model_fields.get(location[-1]) if model else None
    if field is None:
        return ""
    low = high = None
    low_strict = high_strict = False
    for item in field.metadata:
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low, low_strict = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
        if getattr(item, "lt", None) is not None:
            high, high_strict = item.lt, True
    if low is not None and high is not None:
        return f"allowed: {'>' if low_strict else '>='} {low} and {'<' if high_strict else '<='} {high}"
    if low is not None:
        return f"allowed: {'>' if low_strict else '>='} {low}"
    if high is not None:
        return f"allowed: {'<' if high_strict else '<='} {high}"
    return ""


def _literal_choices(location: Sequence[Any]) -> list[str]:
    model = _model_at(location[:-1]) if location else None
    field = model.model_fields.get(location[-1]) if model and isinstance(location[-1], str) else None
    if field is None:
        return []
    annotation = field.annotation
    if typing.get_origin(annotation) is Union:  # Optional[Literal[...]] and the like
        literals = [a for a in typing.get_args(annotation) if typing.get_origin(a) is Literal]
        annotation = literals[0] if len(literals) == 1 else annotation
    if typing.get_origin(annotation) is Literal:
        return [str(v) for v in typing.get_args(annotation)]
    return []


def _clean_location(loc: Sequence[Any]) -> list[Any]:
    """The location without the tags pydantic adds for union members (e.g. 'str', 'list[float]')."""
    out: list[Any] = []
    model: type[BaseModel] | None = FitConfig
    keyed: type[BaseModel] | None = None  # after a keyed section (constraints): the next part is a key
    for part in loc:
        if keyed is not None:
            out.append(part)
            model, keyed = keyed, None
            continue
        if isinstance(part, int):
            out.append(part)
            continue
        if model is None:
            continue  # a union tag below a plain field
        out.append(part)
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        keyed = _mapped_model(annotation)
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return out


def _describe(error: dict[str, Any], sources: dict[str, str]) -> str:
    location = _clean_location(error["loc"])
    key = _dotted(location) or "(top level)"
    origin = sources.get(key)
    where = f" (from {origin})" if origin else ""
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = _model_at([p for p in location[:-1] if isinstance(p, str)])
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(location[-1]), known, n=1, cutoff=0.5)
        hint = f"; did you mean `{close[0]}`?" if close else ""
        section = _dotted(location[:-1])
        allowed = f" Keys{' of `' + section + '`' if section else ''}: {', '.join(known)}." if known else ""
        return f"unknown key `{key}`{where}{hint}{allowed}"
    if kind == "literal_error":
        choices = _literal_choices(location)
        close = difflib.get_close_matches(str(value), choices, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"`{key}` = {value!r}{where} is not one of {', '.join(repr(c) for c in choices)}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        allowed = _range_of(location)
        return f"`{key}` = {value!r}{where} is out of range ({allowed or error['msg']})"
    if kind in ("too_short", "too_long"):
        return f"`{key}`{where}: {error['msg'].lower()}"
    if kind == "missing":
        return f"`{key}` is required"
    allowed = _range_of(location)
    extra = f"; {allowed}" if allowed else ""
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    return f"`{key}` = {value!r}{where} has the wrong type or value: {message}{extra}"


def _validation_error(error: ValidationError, origin: str, sources: dict[str, str]) -> ConfigError:
    problems = [_describe(e, sources) for e in error.errors()]
    head = f"invalid configuration{' in ' + origin if origin else ''}: "
    if len(problems) == 1:
        return ConfigError(head + problems[0])
    return ConfigError(head + f"{len(problems)} problems:\n  - " + "\n  - ".join(problems))


# ----------------------------------------------------------------------------- loading
def config_from_dict(data: dict[str, Any], *, origin: str = "", sources: dict[str, str] | None = None) -> FitConfig:
    """Validate a nested dict into a :class:`FitConfig` (ConfigError on any problem)."""
    if not isinstance(data, dict):
        raise ConfigError(f"the configuration{' in ' + origin if origin else ''} must be a mapping of keys to values, got {type(data).__name__}")
    try:
        return FitConfig.model_validate(data)
    except ValidationError as error:
        raise _validation_error(error, origin, sources or {}) from None


#: Limits that make a hostile YAML file fail fast: its size, and how many aliases (``*name``)
#: it may use (nested aliases can make a few hundred bytes stand for billions of values).
MAX_CONFIG_BYTES = 1_000_000
MAX_YAML_ALIASES = 32


class _BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses more than MAX_YAML_ALIASES aliases."""

    def compose_node(self, parent, index):  # noqa: ANN001 (PyYAML's signature)
        if self.check_event(yaml.AliasEvent):
            self.aliases_seen = getattr(self, "aliases_seen", 0) + 1
            if self.aliases_seen > MAX_YAML_ALIASES:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(f"more than {MAX_YAML_ALIASES} aliases (at line {mark.line + 1}); a fit config "
                                     "needs none, and nested ones can stand for billions of values")
        return super().compose_node(parent, index)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_BoundedLoader)  # noqa: S506 (a SafeLoader with limits)


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The mapping in a YAML file (ConfigError naming the file and line on any problem)."""
    path = Path(path)
    if not path.is_file():
        hint = ""
        folder = path.parent if str(path.parent) else Path(".")
        if folder.is_dir():
            names = sorted(p.name for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))
            close = difflib.get_close_matches(path.name, names, n=3, cutoff=0.5)
            if close:
                hint = f" Did you mean {', '.join(repr(str(folder / c)) for c in close)}?"
        raise ConfigError(f"config file {str(path)!r} does not exist.{hint}")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{str(path)!r} is {path.stat().st_size} bytes; a fit config is at most {MAX_CONFIG_BYTES} "
                          "(is it really one?)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read config file {str(path)!r}: {error}") from None
    try:
        data = _load_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{str(path)!r}{where} is not valid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{str(path)!r} must hold a mapping of keys to values (like `target: photo.jpg`), got {type(data).__name__}")
    return data


#: How a YAML null is written; any other text that YAML would read as null (a comment after
#: ``#``, say) is kept as the text it is.
_NULL_WORDS = {"", "~", "null", "Null", "NULL"}


def _field_at(parts: Sequence[str]) -> Any:
    """The schema field at a dotted key, or None where the key is unknown (an error later)."""
    model = _model_at(parts[:-1])
    return model.model_fields.get(parts[-1]) if model is not None else None


def _override_value(raw: str, field: Any) -> Any:
    """The value of ``--set key=raw``: a value, never a YAML document. For a key whose type is
    text (a path, a colour, a template) the text is taken as it is, so `#ff0000`, `{name}` and
    `skimage:` survive; other values (numbers, booleans, lists) are read as YAML, keeping the
    text wherever YAML would turn it into something else (a comment, a mapping)."""
    text = raw.strip()
    annotation = getattr(field, "annotation", None)
    text_only = annotation in (str, Optional[str])
    if text_only:
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
            return _load_yaml(text)  # quoted: the quotes go, as in YAML
        return None if annotation is Optional[str] and text in _NULL_WORDS - {""} else text
    if text in _NULL_WORDS:
        return None
    try:
        value = _load_yaml(text)
    except yaml.YAMLError:
        return text
    if value is None or (isinstance(value, dict) and not text.startswith("{")):
        return text  # `#...` read as a comment, `a: b` or `skimage:` read as a mapping
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, str]:
    """Apply ``key.sub=value`` strings to ``data`` in place; values are parsed as YAML.

    Returns ``{dotted key: "--set key=value"}`` so that errors can say where a value came from.
    """
    sources: dict[str, str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value (e.g. --set optim.lr.means=0.003), got {item!r}")
        parts = key.split(".")
        value = _override_value(raw, _field_at(parts))
        node = data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part)
            known = _model_at(parts[:depth])
            field = known.model_fields.get(part) if known is not None else None
            is_section = field is not None and (isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
                                                or _mapped_model(field.annotation) is not None)
            if child is None and field is not None and not is_section:
                child = ""  # a plain value in the schema: it has no keys to set
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item}: `{'.'.join(parts[:depth + 1])}` is a value, not a section with keys")
            node = child
        node[parts[-1]] = value
        sources[key] = f"--set {item}"
    return sources


#: Endings of YAML configs.
YAML_SUFFIXES = (".yaml", ".yml")


def config_path(spec: str | os.PathLike) -> Path:
    """The YAML file ``spec`` names: a path, or the name of a recipe that ships with diffbmp
    (``diffbmp recipes`` lists them). ConfigError, saying what to type instead, for anything
    else: a picture or video given where a config belongs, a folder, or a name nothing has."""
    from . import recipes

    text = os.fspath(spec)
    path = Path(text).expanduser()
    if path.is_file() and (path.suffix.lower() in YAML_SUFFIXES or looks_like_text(path)):
        return path
    if path.exists():  # a picture, a video or a folder of frames: a target, not a config
        raise ConfigError(
            f"{text!r} is not a YAML config; it looks like something to paint. Type `diffbmp fit {text}` "
            f"(the default recipe) or `diffbmp fit RECIPE --set target={text}`; in Python, diffbmp.fit({text!r}, ...)"
        )
    recipe = recipes.path(text)
    if recipe is not None:
        return recipe
    close = []
    folder = path.parent if str(path.parent) else Path(".")
    if folder.is_dir():
        yamls = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in YAML_SUFFIXES)
        close += [repr(str(folder / name)) for name in difflib.get_close_matches(path.name, yamls, n=3, cutoff=0.5)]
    close += [f"recipe {name!r}" for name in recipes.close_names(text)]
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    if path.suffix or len(path.parts) > 1:  # meant as a file
        raise ConfigError(f"config file {text!r} does not exist.{hint}")
    raise ConfigError(f"there is no recipe or config file {text!r}.{hint} Recipes: {', '.join(recipes.names())}")


def looks_like_text(path: Path) -> bool:
    """True when the start of the file decodes as UTF-8 text (YAML under another ending)."""
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError:
        return True  # let reading it report the problem
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        return error.start > len(head) - 4  # a character cut off at the end of the sample
    return b"\0" not in head


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = ()) -> FitConfig:
    """Read a YAML config, named by its path or as a recipe (or start from the defaults when
    ``path`` is None), and apply ``--set`` overrides."""
    data = read_yaml(config_path(path)) if path is not None else {}
    sources = apply_overrides(data, overrides)
    return config_from_dict(data, origin=str(path) if path is not None else "", sources=sources)


def dump_config(config: FitConfig) -> str:
    """The resolved configuration as YAML text (sections in schema order)."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True)


def result_relevant(config: FitConfig) -> dict[str, Any]:
    """The part of a config that determines the fitted scene (everything but output/backend)."""
    data = config.to_dict()
    for key in RESULT_NEUTRAL_KEYS:
        data.pop(key, None)
    for key in VIDEO_OUTPUT_KEYS:
        data.get("video", {}).pop(key, None)
    if not config.budget.active:
        data.pop("budget", None)  # a fixed-count fit does not read it
    return data


# ----------------------------------------------------------------------------- reference
def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return " \\| ".join(str(v) for v in typing.get_args(annotation))
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        every = typing.get_args(annotation)
        args = [a for a in every if a is not type(None)]
        named = _type_name(args[0]) if len(args) == 1 else " or ".join(_type_name(a) for a in args)
        return named + (" or null" if len(args) < len(every) else "")
    if origin in (list, tuple):
        args = typing.get_args(annotation)
        return f"list of {_type_name(args[0])}" if args else "list"
    if annotation is Any:
        return "any"
    if _mapped_model(annotation) is not None:
        return "mapping of shape to section"
    return getattr(annotation, "__name__", str(annotation))


def config_reference() -> str:
    """Markdown tables of every key: type, default, allowed range and meaning (for docs/fitting.md)."""
    lines: list[str] = []

    def section(model: type[BaseModel], prefix: str) -> None:
        rows = []
        nested = []
        for name, field in model.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                nested.append((name, annotation))
                continue
            keyed = _mapped_model(annotation)
            if keyed is not None:
                nested.append((f"{name}.<shape>", keyed))
            default = field.get_default(call_default_factory=True)
            low_high = []
            for item in field.metadata:
                for attr, sign in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                    if getattr(item, attr, None) is not None:
                        low_high.append(f"{sign} {getattr(item, attr)}")
            allowed = ", ".join(low_high)
            rows.append(f"| `{prefix}{name}` | {_type_name(annotation)} | `{default if not isinstance(default, tuple) else list(default)}` | {allowed} | {field.description or ''} |")
        title = prefix.rstrip(".") or "top level"
        lines.append(f"### `{title}`\n")
        if model.__doc__:
            lines.append(model.__doc__.strip().splitlines()[0] + "\n")
        lines.append("| key | type | default | range | meaning |")
        lines.append("| --- | --- | --- | --- | --- |")
        lines.extend(rows)
        lines.append("")
        for name, sub in nested:
            section(sub, f"{prefix}{name}.")

    section(FitConfig, "")
    return "\n".join(lines)


REFERENCE_START = "<!-- config-reference:start -->"
REFERENCE_END = "<!-- config-reference:end -->"


def write_reference(markdown: str | os.PathLike) -> None:
    """Replace the text between the reference markers of a Markdown file with :func:`config_reference`."""
    path = Path(markdown)
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(REFERENCE_START)
    _, end, tail = rest.partition(REFERENCE_END)
    if not start or not end:
        raise ConfigError(f"{str(path)!r} has no {REFERENCE_START} ... {REFERENCE_END} block")
    path.write_text(f"{head}{REFERENCE_START}\n{config_reference().strip()}\n{REFERENCE_END}{tail}", encoding="utf-8")


if __name__ == "__main__":  # python -m diffbmp.config docs/fitting.md
    import sys

    for argument in sys.argv[1:]:
        write_reference(argument)
