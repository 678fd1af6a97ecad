"""Schedules: the learning-rate factor and the blur width as functions of the step.

Every schedule is a pure function of ``(step, total_steps)``, so a resumed fit gets exactly
the values an uninterrupted one would have.
"""

from __future__ import annotations

import math

from ..errors import ConfigError

__all__ = ["SCHEDULES", "lr_factor", "blur_at", "BLUR_CURVES"]

SCHEDULES = ("constant", "cosine", "exponential", "linear")
BLUR_CURVES = ("linear", "cosine")


def lr_factor(step: int, total: int, kind: str = "cosine", *, warmup: int = 0, final: float = 0.1) -> float:
    """Multiplier of the base learning rates at ``step`` (0-based) of ``total`` steps.

    Args:
        kind: "constant" (1 throughout), "cosine" (half cosine from 1 to ``final``),
            "exponential" (geometric decay from 1 to ``final``) or "linear" (1 to ``final``).
        warmup: the first ``warmup`` steps ramp linearly from ``1 / (warmup + 1)`` up to the
            schedule's value; the decay runs over the remaining steps.
        final: the factor reached at the last step (ignored by "constant").
    """
    if kind not in SCHEDULES:
        raise ConfigError(f"unknown schedule {kind!r}; choose one of {', '.join(SCHEDULES)}")
    if total <= 0:
        return 1.0
    warmup = max(0, min(int(warmup), total - 1))
    if step < warmup:
        return (step + 1) / (warmup + 1)
    span = max(total - 1 - warmup, 1)
    t = min(max((step - warmup) / span, 0.0), 1.0)
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * t))
    if kind == "linear":
        return 1.0 + (final - 1.0) * t
    return math.exp(math.log(max(final, 1e-12)) * t)


def blur_at(step: int, total: int, start: float, end: float, until: float, curve: str = "linear") -> float:
    """Blur width (pixels) at ``step``: from ``start`` to ``end`` over the first ``until`` of the fit.

    ``until`` is a fraction of ``total`` steps; afterwards the blur stays at ``end``.
    """
    if curve not in BLUR_CURVES:
        raise ConfigError(f"unknown blur curve {curve!r}; choose one of {', '.join(BLUR_CURVES)}")
    span = until * max(total - 1, 1)
    if span <= 0 or step >= span:
        return float(end)
    t = step / span
    if curve == "cosine":
        t = 0.5 * (1.0 - math.cos(math.pi * t))
    return float(start + (end - start) * t)
