"""The frame-by-frame fit of a video: ``diffbmp.fit_video(...)`` and ``diffbmp fit`` on a video target.

The first frame is an ordinary image fit with the config's settings. Every later frame
starts from the previous frame's painting, moved with the optical flow
(:mod:`diffbmp.video.carry`), and is refined for ``video.steps_per_frame`` steps with a low
starting blur and the temporal loss (:mod:`diffbmp.video.temporal`), which holds primitives
where the target did not change.

Interruption: each frame is a :class:`~diffbmp.fitting.Fitter` whose checkpoint (step,
scene, optimiser, random state, temporal anchors) is wrapped in the video checkpoint
together with the frame number and the previous frame's painting. Finished frames are
written (scene, painted PNG, PSD) before the checkpoint moves on to the next frame, so a
resumed run continues at the frame and step where it stopped and ends exactly where an
uninterrupted run would (on the deterministic cpu backend).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from ..colour import colour_notes_to
from ..config import FitConfig, config_from_dict, dump_config, result_relevant
from ..errors import ConfigError, InputError, OutputError
from ..fitting.checkpoints import damaged, reading
from ..fitting.levels import resolved_settings
from ..fitting.loop import Fitter, Regulariser, RegulariserInput, StepInfo
from ..fitting.recording import to_uint8, write_animation, write_png
from ..fitting.shapes import fit_constraints
from ..params import PrimitiveParams
from ..primitives import TextureBank
from ..scene import Scene
from .carry import FrameStart, carry_over
from .metrics import flicker as flicker_of
from .metrics import mean_flicker
from .outputs import VideoFolder, psd_indices, write_plot
from .sources import Clip, FrameSelection, _is_map_sequence, describe, load_clip, load_frame_maps, selected, video_kind
from .temporal import TemporalCosts, hold_loss, temporal_loss

__all__ = ["VideoResult", "run_video", "fit_video", "later_frame_config", "VIDEO_CHECKPOINT_FORMAT"]

VIDEO_CHECKPOINT_FORMAT = "diffbmp-video-checkpoint"
VIDEO_CHECKPOINT_VERSION = 1
#: Row-state names of the temporal anchors in a later frame's Fitter.
_ANCHOR_ROWS = ("anchor_means", "anchor_scales", "anchor_rotations", "anchor_colors", "anchor_opacities")


@dataclass
class VideoResult:
    """The outcome of a video fit.

    Attributes:
        scenes: the fitted :class:`Scene` of every frame fitted so far.
        frames: one dict per frame (the rows of frames.csv): frame, source_frame, psnr, ssim,
            mse, flicker (grey levels; NaN for the first frame), steps, loss, moved (mean
            flow shift, px), optimised (share of primitives optimised), seconds.
        history: every optimisation step (frame, step, loss, psnr, n, blur, seconds).
        paths: output files by name ("painted_mp4", "painted_gif", "frames_csv", "plot",
            "scenes", "painted", "psd", "log", "config", "checkpoint"); empty without a run folder.
        psnr, ssim: means over the frames (final renders at blur 0).
        flicker: mean flicker over the frames after the first (grey levels, 0..255).
        seconds: wall time (all sessions of a resumed run).
        completed: False when a callback stopped the fit early.
        config: the configuration.
        clip: the frames as fitted (on the canvas).
    """

    scenes: list[Scene]
    frames: list[dict[str, float]]
    history: list[dict[str, float]]
    paths: dict[str, Path]
    psnr: float
    ssim: float
    flicker: float
    seconds: float
    completed: bool
    config: FitConfig
    clip: Clip = field(repr=False)

    @property
    def scene(self) -> Scene:
        """The last fitted frame's scene."""
        return self.scenes[-1]

    @property
    def psnrs(self) -> list[float]:
        """PSNR of every fitted frame (dB)."""
        return [row["psnr"] for row in self.frames]


def first_frame_config(config: FitConfig) -> FitConfig:
    """The first frame's settings: ``strategy: auto`` is the plain fit for a clip (its later
    frames refine the first frame's primitives, and the temporal settings were measured
    with it); ``strategy: search`` is kept when asked for."""
    if config.strategy != "auto":
        return config
    return config.model_copy(update={"strategy": "plain"})


def later_frame_config(config: FitConfig, n: int, background: Sequence[float], noise: bool = False) -> FitConfig:
    """The settings of the frames after the first: ``video.steps_per_frame`` steps, the blur
    starting at ``video.blur_start``, learning rates times ``video.lr_scale``, one stage, the plain strategy,
    pruning every ``video.prune_every`` steps, and the first frame's final background colour,
    fixed (a background that kept learning would shift every uncovered pixel: flicker),
    unless the background is the noisy canvas (``noise``)."""
    video = config.video
    data = config.to_dict()
    data["n"] = n
    data["steps"] = video.steps_per_frame
    data["blur"]["start"] = video.blur_start
    data["stages"]["count"] = 1
    data["strategy"] = "plain"  # the previous frame's painting carries over; nothing is searched for again
    data["prune"]["every"] = video.prune_every
    data["optim"]["lr"] = {name: rate * video.lr_scale for name, rate in data["optim"]["lr"].items()}
    data["background"]["color"] = [float(v) for v in background]
    if not noise:
        data["background"]["mode"] = "fixed"
    return config_from_dict(data, origin="the settings of the later frames (video.steps_per_frame, video.blur_start, video.lr_scale)")


def _regulariser(costs: TemporalCosts, temporal: Any, start: Mapping[str, Any], device: torch.device) -> Regulariser:
    """The temporal loss of a later frame as a Fitter regulariser: the hold term (the painting
    stays where the target stayed) plus the anchor term (primitives stay near their anchors,
    which live in the fitter's row state)."""
    reference = start["reference"].to(device)
    hold = start["hold"].to(device)
    anchor_background = start["background"].to(device)
    background_weight = float(start["background_weight"])

    def regularise(inputs: RegulariserInput) -> tuple[torch.Tensor, dict[str, float]]:
        scene, rows = inputs.scene, inputs.rows
        loss = inputs.image.new_zeros(())
        terms: dict[str, float] = {}
        if temporal.weight > 0:
            held = temporal.weight * hold_loss(inputs.image, reference, hold, inputs.window)
            terms["hold"] = float(held.detach())
            loss = loss + held
        if temporal.anchor > 0:
            anchor = PrimitiveParams(
                means=rows["anchor_means"], rotations=rows["anchor_rotations"], scales=rows["anchor_scales"],
                colors=rows["anchor_colors"], opacities=rows["anchor_opacities"], shape_ids=scene.shape_ids,
            )
            anchored = temporal_loss(scene.params(), anchor, rows["temporal_weight"], costs)
            if background_weight > 0 and scene.background_logits.requires_grad:
                drift = torch.sigmoid(scene.background_logits) - anchor_background
                anchored = anchored + background_weight * costs.colors * drift.pow(2).sum()
            terms["anchor"] = float(anchored.detach())
            loss = loss + anchored
        return loss, terms

    return regularise


def _clip_checksum(clip: Clip) -> list[list[float]]:
    """Per-frame sums that tell whether a resumed run paints the same frames (files can change)."""
    sums = []
    for frame in clip.frames:
        rgb = frame.rgb.detach().double().cpu()
        ramp = torch.linspace(0, 1, rgb.shape[0], dtype=torch.float64).view(-1, 1, 1)
        row = [float(rgb.sum()), float((rgb * ramp).sum())]
        if frame.alpha is not None:
            row.append(float(frame.alpha.detach().double().sum()))
        sums.append(row)
    return sums


def _same_checksum(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]]) -> bool:
    return len(a) == len(b) and all(
        len(x) == len(y) and all(math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-6) for u, v in zip(x, y)) for x, y in zip(a, b)
    )


class _Sequence:
    """The state of a video fit between frames, and the loop over them."""

    def __init__(self, config: FitConfig, clip: Clip, bank: TextureBank, weight_maps: Any, masks: Any, *,
                 device: torch.device, backend: str | None, folder: VideoFolder | None, psd_frames: set[int],
                 say: Callable[[str], None], progress: bool, callback: Callable[[StepInfo], bool | None] | None):
        self.config = config
        self.clip = clip
        self.bank = bank
        self.weight_maps = weight_maps
        self.masks = masks
        self.device = device
        self.backend = backend
        self.folder = folder
        self.psd_frames = psd_frames
        self.say = say
        self.progress = progress
        self.callback = callback
        self.costs = TemporalCosts.from_config(config.video.temporal)
        # Carried from frame to frame (and through checkpoints):
        self.frame = 0
        self.previous: Scene | None = None  # the last finished frame's scene, raw
        self.previous_painted: torch.Tensor | None = None
        self.background: torch.Tensor | None = None  # the first frame's final background colour
        self.rows: list[dict[str, float]] = []
        self.history: list[dict[str, float]] = []
        self.scenes: list[Scene] = []
        self.optimizer_state: dict[str, torch.Tensor] | None = None  # the previous frame's Adam moments
        self.pending: dict[str, Any] | None = None  # a frame's fitter state from a checkpoint

    # ------------------------------------------------------------------ checkpoints
    def _state(self, fitter: dict[str, Any] | None = None, start: dict[str, Any] | None = None) -> dict[str, Any]:
        previous = None
        if self.previous is not None:
            previous = {name: t.detach().cpu().clone() for name, t in self.previous.raw_tensors().items()}
            previous["shape_ids"] = self.previous.shape_ids.detach().cpu().clone()
            previous["stages"] = self.previous.stages.detach().cpu().clone()
        return {
            "format": VIDEO_CHECKPOINT_FORMAT,
            "version": VIDEO_CHECKPOINT_VERSION,
            "frame": self.frame,
            "count": len(self.clip),
            "indices": list(self.clip.indices),
            "checksum": _clip_checksum(self.clip),
            "previous": previous,
            "painted": None if self.previous_painted is None else self.previous_painted.detach().cpu().clone(),
            "background": None if self.background is None else self.background.detach().cpu().clone(),
            "optimizer": self.optimizer_state,
            "rows": [dict(row) for row in self.rows],
            "history": [dict(row) for row in self.history],
            "fitter": fitter,
            "start": start,
        }

    def _save(self, fitter: dict[str, Any] | None = None, start: dict[str, Any] | None = None, steps: Sequence[dict] = ()) -> None:
        if self.folder is None:
            return
        self.folder.save_checkpoint(self._state(fitter, start))
        self.folder.write_steps(self.history + list(steps))

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from a video checkpoint (the folder's settings were checked already); a
        damaged one is a ConfigError that says so."""
        if not isinstance(state, dict):
            raise damaged(f"it holds a {type(state).__name__}, not a checkpoint")
        with reading():
            self._restore(state)

    def _restore(self, state: dict[str, Any]) -> None:
        if state.get("format") != VIDEO_CHECKPOINT_FORMAT:
            raise ConfigError("the run folder's checkpoint is not a video fit's (it holds an image fit); "
                              "choose another --out, or pass --force to replace that run")
        if list(state["indices"]) != list(self.clip.indices):
            raise ConfigError(f"the run was started on frames {state['indices'][:3]}... ({state['count']} frames) but the "
                              f"clip now gives {len(self.clip)} frames; resume with the same clip, or pass --force")
        saved = state.get("checksum")
        if saved is not None and not _same_checksum(saved, _clip_checksum(self.clip)):
            raise ConfigError("the frames differ from those the run was started on (same count, other pixels); resume "
                              "with the same clip, or pass --force to start over")
        self.frame = int(state["frame"])
        if state["previous"] is not None:
            raw = dict(state["previous"])
            shape_ids = raw.pop("shape_ids")
            stages = raw.pop("stages", None)  # checkpoints written before stage ids: all 0
            # The raw tensors were saved under the fit's constraints, so they are read under them.
            self.previous = Scene(height=self.clip.height, width=self.clip.width, bank=self.bank,
                                  shape_ids=shape_ids.to(self.device), **{k: v.to(self.device) for k, v in raw.items()},
                                  stages=None if stages is None else stages.to(self.device),
                                  constraints=fit_constraints(self.config, self.bank))
        self.previous_painted = None if state["painted"] is None else state["painted"].to(self.device)
        self.background = None if state["background"] is None else state["background"].to(self.device)
        self.optimizer_state = state.get("optimizer")
        self.rows = [dict(row) for row in state["rows"]]
        self.history = [dict(row) for row in state["history"]]
        if state.get("fitter") is not None:
            self.pending = {"fitter": state["fitter"], "start": state.get("start")}
        assert self.folder is not None
        for index in range(self.frame):
            path = self.folder.scene_file(index)
            if not path.is_file():
                raise InputError(f"cannot resume: {str(path)!r} of a finished frame is missing; pass --force to start over")
            self.scenes.append(Scene.load(path, device="cpu"))

    # ------------------------------------------------------------------ one frame
    def _fitter(self, index: int) -> tuple[Fitter, dict[str, Any] | None]:
        """The fitter of frame ``index``, restored from a checkpoint or at its first step."""
        count = len(self.clip)
        target = self.clip.frames[index]
        pending, self.pending = self.pending, None
        start_info = pending["start"] if pending else None
        callback = self.callback
        wrapped = None if callback is None else (lambda info: callback(replace(info, frame=index)))
        options = dict(device=self.device, backend=self.backend, weight_map=selected(self.weight_maps, index),
                       mask=selected(self.masks, index), progress=self.progress, log=self.say, callback=wrapped,
                       label=f"frame {index + 1}/{count}")
        start: FrameStart | None = None
        if index == 0:
            fitter = Fitter(first_frame_config(self.config), target, self.bank, **options)
        else:
            assert self.previous is not None and self.background is not None
            config = later_frame_config(self.config, len(self.previous), self.background.tolist(), noise=self._noise_background())
            if pending is None:
                previous_target = self.clip.frames[index - 1].over(self.background.cpu()).to(self.device)
                current = target.over(self.background.cpu()).to(self.device)
                margin = self.config.limits.margin * max(self.clip.height, self.clip.width)
                assert self.previous_painted is not None
                start = carry_over(self.previous, previous_target, current, self.previous_painted, self.config.video,
                                   margin=margin, backend=self.backend)
                start_info = {
                    "background": start.background.cpu(), "background_weight": start.background_weight,
                    "reference": start.reference.cpu(), "hold": start.hold.cpu(),
                    "moved": float(start.shift.norm(dim=1).mean()) if len(start.shift) else 0.0,
                    "optimised": float(start.trainable.float().mean()) if len(start.trainable) else 1.0,
                }
            temporal = config.video.temporal
            regulariser = _regulariser(self.costs, temporal, start_info, self.device) if temporal.weight > 0 or temporal.anchor > 0 else None
            fitter = Fitter(config, target, self.bank, regulariser=regulariser, **options)
        fitter.leave_progress = False
        fitter.on_checkpoint = lambda state: self._save(state, start_info, [dict(row, frame=index) for row in state["history"]])
        if pending is not None:
            fitter.restore(pending["fitter"])
        elif index == 0:
            fitter.initialise()
        else:
            assert start is not None
            fitter.start_from(start.scene)
            # Adam goes on where the previous frame left it: a fresh Adam would take a full
            # learning-rate step on every primitive, however small its gradient (flicker).
            if self.optimizer_state is not None:
                fitter.optimizer.load_state_dict({k: v.to(self.device) for k, v in self.optimizer_state.items()})
            anchor = start.anchor
            for name, tensor in zip(_ANCHOR_ROWS, (anchor.means, anchor.scales, anchor.rotations, anchor.colors, anchor.opacities)):
                fitter.set_row_state(name, tensor, 0.0)
            # Re-seeded primitives (video.prune_every) have no anchor: weight 0, trainable.
            fitter.set_row_state("temporal_weight", start.weights, 0.0)
            fitter.set_row_state("trainable", start.trainable, True)
            fitter.set_row_state("lr_scale", start.lr_scale, 1.0)
        return fitter, start_info

    def _noise_background(self) -> bool:
        """Whether the frames are fitted over the noisy canvas (the background mode resolved as the Fitter does)."""
        mode = self.config.background.mode
        return mode == "noise" or (mode == "auto" and self.clip.has_alpha)

    def _finish_frame(self, index: int, fitter: Fitter, start_info: dict[str, Any] | None, seconds: float) -> None:
        from ..fitting.image import final_render

        if index == 0:
            self.background = fitter.current_background().detach().clone()  # every later frame keeps it

        target = self.clip.frames[index]
        final = final_render(fitter, target)
        scene = final.scene
        scene.metadata.update({"frame": index, "source_frame": self.clip.indices[index]})
        wanted = target.to(final.image.device).over(self.background.to(final.image.device))
        flicker = float("nan")
        if index > 0 and self.previous_painted is not None:
            previous_wanted = self.clip.frames[index - 1].to(final.image.device).over(self.background.to(final.image.device))
            flicker = flicker_of(self.previous_painted, final.image, previous_wanted, wanted)
        last = fitter.history[-1] if fitter.history else {}
        row = {
            "frame": index, "source_frame": self.clip.indices[index], "psnr": final.psnr, "ssim": final.ssim, "mse": final.mse,
            "flicker": flicker, "steps": fitter.step, "loss": last.get("loss", float("nan")),
            "moved": (start_info or {}).get("moved", 0.0), "optimised": (start_info or {}).get("optimised", 1.0), "seconds": seconds,
        }
        steps = [dict(step, frame=index) for step in fitter.history]
        if self.folder is not None:
            folder = self.folder
            scene.save(folder.scene_file(index))
            write_png(folder.painted_file(index), to_uint8(final.image))
            if index in self.psd_frames:
                from ..exports import export

                folder.psd.mkdir(parents=True, exist_ok=True)
                export(scene.to(self.device), folder.psd_file(index), backend=self.backend)
            folder.write_frames(self.rows + [row])
        self.rows.append(row)
        self.history.extend(steps)
        self.scenes.append(scene)
        self.previous = fitter.scene.detached()
        self.optimizer_state = {k: v.detach().cpu().clone() for k, v in fitter.optimizer.state_dict().items()}
        self.previous_painted = final.image.detach()
        self.frame = index + 1
        self._save()  # from here on, a resumed run starts at the next frame
        flicker_text = "" if math.isnan(flicker) else f", flicker {flicker:.2f}"
        self.say(f"frame {index + 1}/{len(self.clip)}: PSNR {final.psnr:.2f} dB{flicker_text} ({fitter.step} steps, {seconds:.1f} s)")

    def run(self) -> bool:
        """Fit the frames from ``self.frame`` on; False when a callback stopped the fit."""
        for index in range(self.frame, len(self.clip)):
            began = time.perf_counter()
            fitter, start_info = self._fitter(index)
            setup = time.perf_counter() - began
            if not fitter.run():
                return False
            self._finish_frame(index, fitter, start_info, fitter.seconds_before + setup)
        return True

    # ------------------------------------------------------------------ the end
    def outputs(self, completed: bool) -> dict[str, Path]:
        """Write the painted video, the plot and the tables; the paths by name."""
        folder = self.folder
        if folder is None:
            return {}
        paths: dict[str, Path] = {"config": folder.config, "checkpoint": folder.checkpoint}
        if self.rows:
            folder.write_frames(self.rows)
            folder.write_steps(self.history)
            paths.update(frames_csv=folder.frames_csv, log=folder.log, scenes=folder.scenes, painted=folder.painted)
            paths["plot"] = write_plot(folder.plot, self.rows, title=f"{self.clip.name}: {len(self.rows)} of {len(self.clip)} frames")
        if self.psd_frames and folder.psd.is_dir():
            paths["psd"] = folder.psd
        video = self.config.video
        if completed and (video.gif or video.mp4):
            fps = video.fps or (self.clip.fps / video.step if self.clip.fps else 12.0)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                written = write_animation(folder.painted, folder.painted_gif if video.gif else None,
                                          folder.painted_mp4 if video.mp4 else None, fps, hold=0.0)
            for warning in caught:
                self.say(f"warning: {warning.message}")
            paths.update({f"painted_{name}": path for name, path in written.items()})
        return paths


def run_video(
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
) -> VideoResult:
    """Fit a video target frame by frame; what :func:`diffbmp.fitting.image.run` does for videos.

    The arguments are those of :func:`diffbmp.fitting.image.run`; ``weight_map`` and ``mask`` may also
    be sequences (a video, GIF, folder, or array ``[T, H, W]``) with one map per frame.
    """
    folder = VideoFolder(out) if out is not None else None
    with folder.claimed() if folder is not None else contextlib.nullcontext():
        return _run_video(config, folder, target=target, bank=bank, weight_map=weight_map, mask=mask, resume=resume,
                          force=force, quiet=quiet, callback=callback, resume_hint=resume_hint)


def _run_video(config: FitConfig, folder: "VideoFolder | None", *, target: Any, bank: TextureBank | None,
               weight_map: Any, mask: Any, resume: bool, force: bool, quiet: bool,
               callback: Callable[[StepInfo], bool | None] | None, resume_hint: str | None) -> VideoResult:
    """:func:`run_video` in a run folder this process holds (or none)."""
    from ..fitting.image import _device_and_backend, _messages, build_bank, check_shape_weights

    if config.budget.active:
        raise ConfigError("a budget (budget.psnr, budget.ssim, budget.max_seconds; --target-psnr, --target-ssim, "
                          "--max-seconds) chooses the count of a still image's painting; a video fit paints every frame "
                          "with n primitives: remove the budget and set n")
    say = _messages(quiet)
    spec = config.target if target is None else target
    selection = FrameSelection.from_config(config.video)
    weight_spec = weight_map if weight_map is not None else config.loss.weight_map
    mask_spec = mask if mask is not None else config.loss.mask
    per_frame = any(spec is not None and _is_map_sequence(spec) for spec in (weight_spec, mask_spec))
    with colour_notes_to(say):  # frames with an embedded profile are converted to sRGB: say so once
        clip = load_clip(spec, config.size, selection, count_all=per_frame)
        weight_maps = load_frame_maps(weight_spec, clip, selection, "weight map")
        masks = load_frame_maps(mask_spec, clip, selection, "mask")
        if bank is None:
            bank = build_bank(config)
    check_shape_weights(config, bank)
    device, backend = _device_and_backend(config)
    psd_frames = psd_indices(config.video.psd_frames, len(clip))

    resuming = False
    if folder is not None:
        resuming = folder.prepare(result_relevant(config), resume=resume, force=force,
                                  resolve=lambda relevant: resolved_settings(relevant, clip.height, clip.width))
        folder.write_config(dump_config(config))
    sequence = _Sequence(config, clip, bank, weight_maps, masks, device=device, backend=backend, folder=folder,
                         psd_frames=psd_frames, say=say, progress=config.output.progress and not quiet, callback=callback)
    if resuming:
        assert folder is not None
        sequence.restore(folder.load_checkpoint())
        step = f", step {sequence.pending['fitter']['step']}" if sequence.pending else ""
        say(f"resuming {folder.root} at frame {min(sequence.frame + 1, len(clip))} of {len(clip)}{step}")
    else:
        say(f"fitting {len(clip)} frames of {clip.source} on a {clip.width}x{clip.height} canvas")
    began = time.perf_counter()
    try:
        completed = sequence.run()
    except (KeyboardInterrupt, OutputError):
        if folder is not None:
            hint = resume_hint or f"diffbmp.fit_video(..., out={str(folder.root)!r}, resume=True)"
            say(f"checkpoint saved in {folder.checkpoint}; continue with: {hint}")
        raise
    paths = sequence.outputs(completed)
    rows = sequence.rows
    if folder is not None and rows:
        say(f"{len(rows)} of {len(clip)} frames: mean PSNR {sum(r['psnr'] for r in rows) / len(rows):.2f} dB, "
            f"flicker {mean_flicker(r['flicker'] for r in rows):.2f}; wrote {folder.root}")
    seconds = sum(row["seconds"] for row in rows) if rows else time.perf_counter() - began
    return VideoResult(
        scenes=list(sequence.scenes), frames=[dict(row) for row in rows], history=list(sequence.history), paths=paths,
        psnr=sum(r["psnr"] for r in rows) / len(rows) if rows else float("nan"),
        ssim=sum(r["ssim"] for r in rows) / len(rows) if rows else float("nan"),
        flicker=mean_flicker(r["flicker"] for r in rows), seconds=seconds, completed=completed, config=config, clip=clip,
    )


def fit_video(
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
    **options: Any,
) -> VideoResult:
    """Paint every frame of a video with primitives, keeping them steady from frame to frame.

    The same as :func:`diffbmp.fitting.image.fit` (every argument means the same; ``steps`` are the
    first frame's), for a video target only.

    Args:
        target: a video file (``.mp4``, ``.mov``, ``.avi``, ``.mkv``, ``.webm``, ...), an
            animated GIF, a folder of frames (sorted naturally), ``"demo:moving_disc"``,
            ``"skimage:no_time_for_that_tiny"``, an array ``[T, H, W, C]`` or a list of images.
        weight_map, mask: one map for every frame, or a sequence with one per frame.
        **options: config keys, e.g. ``video={"steps_per_frame": 40, "psd_frames": [0, -1]}``
            or ``video__temporal__weight=0``.

    Returns:
        A :class:`VideoResult`: a scene per frame, per-frame metrics (PSNR, SSIM, flicker),
        the step history and the output paths.

    Raises:
        InputError: the target is not a video, or it (or a per-frame map) cannot be read,
            or the maps do not match the frames.
        ConfigError: a bad option.
    """
    from ..fitting.image import fit

    if video_kind(target) is None:
        raise InputError(f"{describe(target)} is not a video: give a video file, an animated GIF, a folder of frames, "
                         "'demo:moving_disc', or an array [T, H, W, C] (a greyscale clip as [T, H, W, 1]); "
                         "for a still image use diffbmp.fit")
    result = fit(target, primitives, n, steps, config=config, out=out, resume=resume, force=force, quiet=quiet,
                 callback=callback, weight_map=weight_map, mask=mask, **options)
    assert isinstance(result, VideoResult)
    return result
