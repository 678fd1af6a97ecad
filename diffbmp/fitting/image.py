"""Fitting a painting to a target image: ``diffbmp.fit(...)`` and the engine behind ``diffbmp fit``.

Both the Python function and the command line build a :class:`~diffbmp.config.FitConfig`
and hand it to :func:`run`, so they behave identically::

    import diffbmp
    result = diffbmp.fit("skimage:astronaut", ["circle"], n=2048, steps=4096, out="runs/astronaut")
    result.scene.render(scale=4)       # resolution-independent
    print(result.psnr, result.paths["final"])
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import torch

from ..config import FitConfig, config_from_dict, config_path, dump_config, read_yaml, result_relevant
from ..errors import ConfigError, OutputError
from ..losses import mse, ssim_value
from ..primitives import TextureBank
from ..scene import Scene
from ..colour import colour_notes_to
from ..targets import Target, load_map, load_target
from .budget import ROUND_COLUMNS
from .levels import resolved_settings
from .loop import Fitter, StepInfo
from .shapes import build_bank
from .recording import frame_paths, shrunk, to_uint8, write_animation, write_png
from .runfolder import RunFolder, write_csv

if TYPE_CHECKING:
    from ..video.sequence import VideoResult

__all__ = ["fit", "run", "FitResult", "StepInfo", "build_config", "final_render", "FinalRender"]


@dataclass
class FitResult:
    """The outcome of a fit.

    Attributes:
        scene: the fitted :class:`Scene` (its background is the final background colour), on
            the CPU wherever the fit ran; ``scene.to("cuda")`` renders it on the GPU.
        history: one dict per step: step, loss, psnr, n, blur, seconds.
        paths: output files by name ("final", "scene", "gif", "mp4", "log", "config",
            "checkpoint"); empty when the fit wrote no files.
        psnr, ssim: of the final render at blur 0 against the target (dB; [0, 1]), weighted
            by the weight map and restricted to the mask when the fit has them.
        mse: mean squared error of the final render, images in [0, 1]
            (``4 * mse`` is the MSE of images scaled to [-1, 1]).
        seconds: wall time of the fit (all sessions of a resumed run).
        completed: False when a callback stopped the fit early.
        config: the configuration the fit ran with.
        target: the target as fitted (on the canvas).
        rounds: a budget fit's rounds (kind, first_step, steps, n, and the psnr, ssim and
            seconds measured at each round's end); empty for a fixed-count fit.
        budget_summary: a budget fit's outcome in words (the count it needed, or why it
            stopped short of the target); empty for a fixed-count fit.
    """

    scene: Scene
    history: list[dict[str, float]]
    paths: dict[str, Path]
    psnr: float
    ssim: float
    mse: float
    seconds: float
    completed: bool
    config: FitConfig
    target: Target = field(repr=False)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    budget_summary: str = ""

    @property
    def reached(self) -> bool | None:
        """Whether a budget fit reached its quality targets (None for a fixed-count fit or a time limit alone)."""
        budget = self.config.budget
        if not self.rounds or (budget.psnr is None and budget.ssim is None):
            return None
        return (budget.psnr is None or self.psnr >= budget.psnr) and (budget.ssim is None or self.ssim >= budget.ssim)

    @property
    def mse_pm1(self) -> float:
        """MSE of the final render with images scaled to [-1, 1] (the circle painters' measure)."""
        return 4.0 * self.mse


# ----------------------------------------------------------------------------- configs
def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value


def build_config(config: FitConfig | Mapping[str, Any] | str | os.PathLike | None = None, **options: Any) -> FitConfig:
    """A validated :class:`FitConfig` from a base (config object, dict, YAML path or recipe name) and options.

    Options are top-level keys (``n=512``), sections as dicts (``optim={"lr": {"means": 0.003}}``),
    or nested keys joined by double underscores (``optim__lr__means=0.003``).
    """
    if config is None:
        data: dict[str, Any] = {}
    elif isinstance(config, FitConfig):
        data = config.to_dict()
    elif isinstance(config, Mapping):
        data = {}
        _merge(data, config)
    elif isinstance(config, (str, os.PathLike)):
        data = read_yaml(config_path(config))  # a YAML file, or a recipe by name
    else:
        raise ConfigError(f"config must be a FitConfig, a dict, a YAML path or a recipe name, got {type(config).__name__}")
    for key, value in options.items():
        parts = key.split("__")
        nested: dict[str, Any] = {}
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
        _merge(data, nested)
    return config_from_dict(data, origin="the fit options" if options else "")


# ----------------------------------------------------------------------------- devices
def _device_and_backend(config: FitConfig) -> tuple[torch.device, str | None]:
    device = config.device
    if device == "auto":
        device = "cuda" if config.backend in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda was asked for but PyTorch sees no CUDA GPU; use device: cpu")
    backend = None if config.backend == "auto" else config.backend
    if backend == "cuda" and device != "cuda":
        raise ConfigError("backend: cuda needs device: cuda")
    if backend == "cpu" and device != "cpu":
        raise ConfigError("backend: cpu needs device: cpu")
    return torch.device(device), backend


# ----------------------------------------------------------------------------- the run
def run(
    config: FitConfig,
    *,
    target: Any = None,
    bank: TextureBank | None = None,
    weight_map: Any = None,
    mask: Any = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    callback: Callable[[StepInfo], bool | None] | None = None,
    resume_hint: str | None = None,
) -> "FitResult | VideoResult":
    """Run the fit described by ``config``; the engine of :func:`fit` and of ``diffbmp fit``.

    A video target (a video file, an animated GIF, a folder of frames, ``demo:<name>``, an
    array ``[T, H, W, C]``) is fitted frame by frame by :func:`diffbmp.video.run_video`,
    which returns a :class:`~diffbmp.video.VideoResult` (docs/video.md).

    Args:
        config: the validated configuration.
        target: an image (or video) object used instead of ``config.target`` (arrays cannot go in YAML).
        bank: a texture bank used instead of building one from ``config.primitives``.
        weight_map, mask: arrays used instead of ``config.loss.weight_map`` / ``config.loss.mask``.
        out: run folder; None writes no files.
        resume: continue the run in ``out`` from its checkpoint.
        force: replace the run ``out`` holds.
        quiet: no progress bar and no messages.
        callback: called after every step with a :class:`StepInfo`; returning True stops
            the fit (a checkpoint is written when there is a run folder).
        resume_hint: the command that continues this run, shown after an interruption.
    """
    from ..video.sources import video_kind

    if video_kind(config.target if target is None else target) is not None:
        from ..video.sequence import run_video

        return run_video(config, target=target, bank=bank, weight_map=weight_map, mask=mask, out=out, resume=resume,
                         force=force, quiet=quiet, callback=callback, resume_hint=resume_hint)
    folder = RunFolder(out) if out is not None else None
    with folder.claimed() if folder is not None else contextlib.nullcontext():
        return _run_image(config, folder, target=target, bank=bank, weight_map=weight_map, mask=mask, resume=resume,
                          force=force, quiet=quiet, callback=callback, resume_hint=resume_hint)


def _run_image(config: FitConfig, folder: RunFolder | None, *, target: Any, bank: TextureBank | None, weight_map: Any,
               mask: Any, resume: bool, force: bool, quiet: bool, callback: Callable[[StepInfo], bool | None] | None,
               resume_hint: str | None) -> "FitResult":
    """:func:`run` for a still image, in a run folder this process holds (or none)."""
    say = _messages(quiet)
    with colour_notes_to(say):  # images with an embedded profile are converted to sRGB: say so once
        loaded = load_target(config.target if target is None else target, config.size)
        if bank is None:
            bank = build_bank(config)
        height, width = loaded.height, loaded.width
        weight_tensor = _map(weight_map if weight_map is not None else config.loss.weight_map, height, width, "weight map")
        mask_tensor = _map(mask if mask is not None else config.loss.mask, height, width, "mask")
    check_shape_weights(config, bank)
    device, backend = _device_and_backend(config)

    resuming = False
    if folder is not None:
        resuming = folder.prepare(result_relevant(config), resume=resume, force=force,
                                  resolve=lambda relevant: resolved_settings(relevant, height, width))
        folder.write_config(dump_config(config))

    def save_checkpoint(state: dict[str, Any]) -> None:
        if folder is not None:
            folder.save_checkpoint(state)
            folder.write_log(state["history"])
            if fitter.budget is not None:
                write_csv(folder.rounds, fitter.budget.rows(), ROUND_COLUMNS)

    def save_frame(done: int, image: torch.Tensor, alpha: torch.Tensor) -> None:
        if folder is None:
            return
        if fitter._frame_due(done):
            write_png(folder.frames / f"frame_{done:07d}.png", shrunk(to_uint8(image), fitter.frame_shape))
        every = config.output.snapshot_every
        if every and done % every == 0:
            write_png(folder.snapshots / f"step_{done:07d}.png", to_uint8(image, alpha if loaded.has_alpha else None))

    fitter = Fitter(
        config, loaded, bank, device=device, backend=backend, weight_map=weight_tensor, mask=mask_tensor,
        progress=config.output.progress and not quiet, log=say, callback=callback,
        on_checkpoint=save_checkpoint, on_frame=save_frame if folder is not None else None,
    )
    if resuming:
        fitter.restore(folder.load_checkpoint())
        if fitter.budget is not None:
            say(f"resuming {folder.root} at step {fitter.step} (round {len(fitter.budget.rounds)})")
        else:
            say(f"resuming {folder.root} at step {fitter.step} of {config.steps}")
    else:
        fitter.initialise()
    try:
        completed = fitter.run()
    except (KeyboardInterrupt, OutputError):
        if folder is not None:
            hint = resume_hint or f"diffbmp.fit(..., out={str(folder.root)!r}, resume=True)"
            say(f"{_checkpoint_state(folder.checkpoint, fitter.checkpoint_failed)}; continue with: {hint}")
        raise
    return _finish(fitter, loaded, folder, completed, say)


def _checkpoint_state(path: Path, failed: bool) -> str:
    """What an interrupted run left to resume from."""
    if not failed:
        return f"checkpoint saved in {path}"
    return f"the last checkpoint written is kept in {path}" if path.exists() else "no checkpoint could be written"


def _messages(quiet: bool) -> Callable[[str], None]:
    """Where a run's messages go: stderr with a ``diffbmp:`` prefix, or nowhere."""
    if quiet:
        return lambda message: None
    return lambda message: print(f"diffbmp: {message}", file=sys.stderr, flush=True)


def check_shape_weights(config: FitConfig, bank: TextureBank) -> None:
    """ConfigError unless ``init.shape_weights`` has one weight per primitive of the bank."""
    if config.init.shape_weights is not None and len(config.init.shape_weights) != len(bank):
        raise ConfigError(f"init.shape_weights has {len(config.init.shape_weights)} values but there are {len(bank)} "
                          f"primitives ({', '.join(bank.names)}); give one weight per primitive")


def _map(spec: Any, height: int, width: int, what: str) -> torch.Tensor | None:
    if spec is None:
        return None
    return load_map(spec, height, width, what)


@dataclass
class FinalRender:
    """A fitter's scene at the end of a fit, its render at blur 0 and how close that is to the target."""

    scene: Scene
    image: torch.Tensor
    alpha: torch.Tensor
    psnr: float
    ssim: float
    mse: float


def final_render(fitter: Fitter, target: Target) -> FinalRender:
    """The fitted scene (its background set to the final colour, metrics in its metadata) and
    its render at blur 0, scored against ``target`` (weighted and masked like the fit)."""
    config = fitter.config
    # Handed out on the CPU wherever the fit ran, like a target or a loaded scene, so that results
    # compare and convert alike; scene.to("cuda") renders one on the GPU.
    scene = fitter.scene.detached().to("cpu")
    for name, tensor in scene.raw_tensors().items():
        setattr(scene, name, tensor.requires_grad_(False))
    background = fitter.current_background()
    scene.background_logits = torch.logit(background.cpu().clamp(1e-4, 1 - 1e-4))
    scene.metadata.update({"target": target.source, "steps": fitter.step, "config": config.to_dict()})
    image, alpha = fitter.render_final()
    wanted = target.to(image.device).over(background)
    # With a weight map or mask, the metrics measure what the fit was asked to paint.
    weight = fitter._pixel_weight()
    error = float(mse(image, wanted, weight))
    psnr = 10.0 * math.log10(1.0 / max(error, 1e-12))
    similarity = ssim_value(image, wanted, weight) if min(image.shape[:2]) >= 3 else float("nan")
    scene.metadata.update({"psnr": psnr, "ssim": similarity, "mse": error})
    return FinalRender(scene, image, alpha, psnr, similarity, error)


def _finish(fitter: Fitter, target: Target, folder: RunFolder | None, completed: bool, say: Callable[[str], None]) -> FitResult:
    """Final metrics at blur 0 and the run folder's outputs."""
    config = fitter.config
    final = final_render(fitter, target)
    scene, image, alpha = final.scene, final.image, final.alpha
    psnr, similarity, error = final.psnr, final.ssim, final.mse
    paths: dict[str, Path] = {}
    if folder is not None:
        if completed:
            fitter.checkpoint()
        paths["config"] = folder.config
        paths["checkpoint"] = folder.checkpoint
        folder.write_log(fitter.history)
        paths["log"] = folder.log
        if fitter.budget is not None:
            write_csv(folder.rounds, fitter.budget.rows(), ROUND_COLUMNS)
            paths["rounds"] = folder.rounds
        paths["scene"] = scene.save(folder.scene)
        scale = config.output.final_scale
        big_image, big_alpha = fitter.render_final(scale) if scale != 1.0 else (image, alpha)
        if target.has_alpha:
            # Straight alpha for a transparent PNG: un-premultiply the render without a background.
            premultiplied, coverage = scene.to(fitter.device).render(scale, background=False, backend=fitter.backend)
            straight = premultiplied / coverage.clamp_min(1e-6).unsqueeze(-1)
            pixels = to_uint8(torch.where(coverage.unsqueeze(-1) > 0, straight, torch.zeros_like(straight)), coverage)
        else:
            pixels = to_uint8(big_image)
        paths["final"] = write_png(folder.final, pixels)
        output = config.output
        if completed and output.frames > 0 and (output.gif or output.mp4):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                written = write_animation(folder.frames, folder.gif if output.gif else None, folder.mp4 if output.mp4 else None, output.fps)
            for warning in caught:
                say(f"warning: {warning.message}")
            paths.update(written)
            if output.keep_frames:
                paths["frames"] = folder.frames
            elif written:
                for frame in frame_paths(folder.frames):
                    frame.unlink(missing_ok=True)
                try:
                    folder.frames.rmdir()
                except OSError:
                    pass
        for name, path in (("gif", folder.gif), ("mp4", folder.mp4)):
            if name not in paths and path.exists():
                paths[name] = path  # written by an earlier session of this run
        if output.snapshot_every:
            paths["snapshots"] = folder.snapshots
    summary = fitter.budget.summary() if fitter.budget is not None else ""
    if summary:
        say(summary)
    if folder is not None:
        steps = f"{fitter.step}" if fitter.budget is not None else f"{fitter.step}/{config.steps}"
        say(f"step {steps}: {len(scene)} primitives, PSNR {psnr:.2f} dB, SSIM {similarity:.4f}; wrote {folder.root}")
    return FitResult(scene=scene, history=list(fitter.history), paths=paths, psnr=psnr, ssim=similarity, mse=error,
                     seconds=fitter.seconds_before, completed=completed, config=config, target=target,
                     rounds=fitter.budget.rows() if fitter.budget is not None else [], budget_summary=summary)


# ----------------------------------------------------------------------------- the Python API
def fit(
    target: Any,
    primitives: Sequence[str] | str | TextureBank | None = None,
    n: int | None = None,
    steps: int | None = None,
    *,
    config: FitConfig | Mapping[str, Any] | str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    callback: Callable[[StepInfo], bool | None] | None = None,
    weight_map: Any = None,
    mask: Any = None,
    target_psnr: float | None = None,
    target_ssim: float | None = None,
    max_seconds: float | None = None,
    max_primitives: int | None = None,
    **options: Any,
) -> "FitResult | VideoResult":
    """Paint ``target`` with ``n`` primitives by gradient descent, or with as many as a
    quality needs (``target_psnr``, ``target_ssim``).

    Args:
        target: an image path, ``"skimage:<name>"``, or a numpy/torch/Pillow image
            (RGBA keeps its alpha for the alpha loss). A video target (see
            :func:`diffbmp.video.fit_video`) is fitted frame by frame and gives a
            :class:`~diffbmp.video.VideoResult`.
        primitives: shape names (``"circle"``, ``"gaussian"``, built-ins such as
            ``"brush_flat"``, ``"text:A"``, image/SVG paths or folders) or a TextureBank
            (default: the config's, else ``["circle"]``).
        n: number of primitives (default from ``config``, else 1000).
        steps: optimisation steps (default from ``config``, else 500).
        config: a base configuration (FitConfig, dict, YAML path or recipe name) the other arguments
            override.
        out: run folder for final.png, scene.npz, fit.gif/mp4, log.csv, config.yaml and the
            checkpoint; None (default) writes nothing.
        resume: continue the run in ``out`` from its checkpoint.
        force: replace a run that ``out`` already holds.
        quiet: no progress bar or messages.
        callback: called after each step with a :class:`StepInfo`; return True to stop.
        weight_map, mask: per-pixel maps (paths, arrays, or "ellipse:..."), see docs/fitting.md.
        target_psnr, target_ssim: add primitives in rounds until the painting reaches this
            PSNR (dB) and/or SSIM, then remove those it does not need (``n`` and ``steps`` are
            not used; the ``budget`` config section); ``result.rounds`` shows the count and
            quality after each round.
        max_seconds, max_primitives: limits of such a fit (``max_seconds`` alone: the best
            painting in that time).
        **options: any other config key: ``size=128``, ``seed=1``, ``optim={"lr": {"means": 0.003}}``,
            ``blur__start=2`` (double underscores reach into sections).

    Returns:
        A :class:`FitResult` with the scene, the history, the output paths and final metrics
        (a :class:`~diffbmp.video.VideoResult` for a video target).

    Raises:
        ConfigError: an unknown option (with the nearest valid name) or a bad value.
        InputError: an unreadable target or primitive.
    """
    values: dict[str, Any] = dict(options)
    bank = primitives if isinstance(primitives, TextureBank) else None
    if bank is not None:
        values["primitives"] = list(bank.names)
    elif primitives is not None:
        values["primitives"] = [primitives] if isinstance(primitives, str) else list(primitives)
    image = None
    if isinstance(target, (str, os.PathLike)):
        values["target"] = os.fspath(target)
    else:
        image = target
        values["target"] = "<array>"
    if n is not None:
        values["n"] = n
    budget = {key: value for key, value in (("psnr", target_psnr), ("ssim", target_ssim), ("max_seconds", max_seconds),
                                            ("max_primitives", max_primitives)) if value is not None}
    if budget:
        values["budget"] = {**dict(values.get("budget", {})), **budget}
    if steps is not None:
        values["steps"] = steps
    for key, spec in (("weight_map", weight_map), ("mask", mask)):
        if isinstance(spec, (str, os.PathLike)):
            values.setdefault("loss", {})
            values["loss"] = {**dict(values["loss"]), key: os.fspath(spec)}
    arrays = {key: spec for key, spec in (("weight_map", weight_map), ("mask", mask)) if spec is not None and not isinstance(spec, (str, os.PathLike))}
    resolved = build_config(config, **values)
    if max_primitives is not None and not resolved.budget.active:
        raise ConfigError("max_primitives limits a fit that chooses its own count: add target_psnr, target_ssim or "
                          "max_seconds, or give the count with n")
    return run(resolved, target=image, bank=bank, out=out, resume=resume, force=force, quiet=quiet, callback=callback, **arrays)
