"""Checking a checkpoint before a run resumes from it.

Checkpoints are read with ``torch.load(weights_only=True)``, so a file can hold nothing but
tensors and plain values; but it can still hold the wrong ones (a damaged file, another
program's, an older diffbmp's). Every field a resume reads is checked here first (presence,
type, shape and range), and anything missed still ends as a ConfigError that says the file is
damaged and how to start over, never as a traceback from deep inside.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from ..errors import ConfigError, DiffBMPError

__all__ = ["check_fitter_state", "damaged", "reading"]

#: The scene tensors a checkpoint holds, with the width of each row (None: one value per primitive).
SCENE_TENSORS = {"means": 2, "log_scales": 2, "rotations": None, "color_logits": 3, "opacity_logits": None,
                 "beta_logits": None, "background_logits": "background"}


def damaged(problem: str) -> ConfigError:
    return ConfigError(f"the run folder's checkpoint is damaged or was not written by this version of diffbmp "
                       f"({problem}); pass --force to start the run over")


@contextlib.contextmanager
def reading() -> Iterator[None]:
    """Whatever a resume trips over in a checkpoint's contents becomes :func:`damaged`."""
    try:
        yield
    except DiffBMPError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
        raise damaged(f"{type(error).__name__}: {error}") from None


def _need(state: dict, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in state:
        raise damaged(f"{what} has no {key!r}")
    value = state[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        raise damaged(f"{what}'s {key!r} is a {type(value).__name__}")
    return value


def check_fitter_state(state: Any, *, fmt: str, version: int) -> None:
    """ConfigError naming the first field of a Fitter checkpoint that is missing or wrong."""
    if not isinstance(state, dict):
        raise damaged(f"it holds a {type(state).__name__}, not a checkpoint")
    if state.get("format") != fmt:
        return  # another kind of checkpoint: the caller says which
    saved_version = _need(state, "version", int, "it")
    if saved_version > version:
        raise ConfigError(f"the run folder's checkpoint was written by a newer diffbmp (checkpoint version "
                          f"{saved_version}, this one reads up to {version}); upgrade diffbmp, or pass --force")
    for key in ("step", "height", "width"):
        if _need(state, key, int, "it") < (0 if key == "step" else 1):
            raise damaged(f"{key} is {state[key]}")
    bank = _need(state, "bank", list, "it")
    if not all(isinstance(name, str) for name in bank):
        raise damaged("its bank names are not text")
    scene = _need(state, "scene", dict, "it")
    shape_ids = _need(state, "shape_ids", torch.Tensor, "it")
    if shape_ids.dim() != 1 or shape_ids.is_floating_point():
        raise damaged(f"shape_ids has shape {list(shape_ids.shape)} and type {shape_ids.dtype}")
    n = shape_ids.shape[0]
    if n and (int(shape_ids.min()) < 0 or int(shape_ids.max()) >= len(bank)):
        raise damaged(f"shape_ids reach outside the {len(bank)} primitives of its bank")
    for name, width in SCENE_TENSORS.items():
        tensor = _need(scene, name, torch.Tensor, "its scene")
        expected = [3] if width == "background" else [n] if width is None else [n, width]
        if list(tensor.shape) != expected or not tensor.is_floating_point():
            raise damaged(f"scene tensor {name!r} has shape {list(tensor.shape)} and type {tensor.dtype}, "
                          f"expected {expected} floats")
    stages = state.get("stages")  # absent in checkpoints written before stages were recorded
    if stages is not None and (not isinstance(stages, torch.Tensor) or list(stages.shape) != [n]
                               or stages.is_floating_point() or (n and int(stages.min()) < 0)):
        raise damaged(f"its stages are {type(stages).__name__ if not isinstance(stages, torch.Tensor) else f'{stages.dtype} of shape {list(stages.shape)}'}, "
                      f"expected {n} whole numbers >= 0")
    optimizer = _need(state, "optimizer", dict, "it")
    if not all(isinstance(v, torch.Tensor) for v in optimizer.values()):
        raise damaged("its optimizer state holds something other than tensors")
    generator = _need(state, "generator", torch.Tensor, "it")
    if generator.dtype != torch.uint8 or generator.dim() != 1:
        raise damaged(f"its random generator state is {generator.dtype} of shape {list(generator.shape)}")
    history = _need(state, "history", list, "it")
    if not all(isinstance(row, dict) for row in history):
        raise damaged("its history is not a list of rows")
    rows = state.get("rows", {})
    if not isinstance(rows, dict) or not all(isinstance(t, torch.Tensor) and t.dim() >= 1 and t.shape[0] == n
                                             for t in rows.values()):
        raise damaged("its per-primitive state does not match its primitives")
