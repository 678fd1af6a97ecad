"""Automatic primitive budgets: the plan of rounds that add primitives until the painting
reaches a quality (the fit loop does the scene edits and the measuring).

A budget fit (``budget.psnr``, ``budget.ssim`` or ``budget.max_seconds`` set) starts with
``budget.start`` primitives and runs rounds of ``budget.round_steps`` steps. Each round is a
short fit of its own: its learning rates fall to ``optim.final_factor`` by its end, so the
painting measured there (at blur 0) is a settled one. Quality in decibels (PSNR, and
``-10 log10(1 - SSIM)`` for SSIM) grows about linearly with the logarithm of the count, so the
count the target needs is predicted from the last two rounds (from an assumed slope after
the first), and the next round adds primitives where the error is up to that count plus
``budget.margin``, never more than ``budget.growth`` times the count. Once the target is
reached, the primitives not needed to keep it are removed and a polish round refines the rest.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..config import BlurConfig, BudgetConfig, OptimConfig
from ..errors import ConfigError
from .schedules import blur_at, lr_factor

__all__ = ["BudgetPlan", "BudgetRound", "quality_db", "ROUND_COLUMNS"]

#: Assumed gain per doubling of the count before two rounds have measured one (dB); on the
#: low side of what paintings show (3-5 dB), so that the first prediction rather undershoots.
_ASSUMED_DB_PER_DOUBLING = 3.0
#: Slopes measured below this (dB per doubling) are not trusted for a prediction.
_SMALLEST_SLOPE = 0.5
#: Rounds after the first start no blurrier than this (pixels): the painting is already settled.
_LATER_BLUR = 0.5
#: Each growing round adds at least this share of the count.
_SMALLEST_GROWTH = 1.1
#: Trimming and polishing repeat while the painting keeps this much more than the target (dB)...
_TRIM_AGAIN_ABOVE = 0.25
#: ... at most this many times.
_POLISH_ROUNDS = 3
#: Columns of rounds.csv.
ROUND_COLUMNS = ("round", "kind", "first_step", "steps", "n", "psnr", "ssim", "seconds")


def quality_db(psnr: float | None = None, ssim: float | None = None) -> float:
    """A quality in decibels: the PSNR itself, or ``-10 log10(1 - SSIM)``."""
    if psnr is not None:
        return float(psnr)
    if ssim is None:
        raise ValueError("quality_db needs a PSNR or an SSIM")
    return -10.0 * math.log10(max(1.0 - float(ssim), 1e-12))


@dataclass
class BudgetRound:
    """One round: ``steps`` steps from ``first_step`` with ``n`` primitives, and what its end measured."""

    kind: str  # "grow" or "polish"
    first_step: int
    steps: int
    n: int
    psnr: float | None = None
    ssim: float | None = None
    seconds: float | None = None  # wall time of the fit at the round's end

    @property
    def last_step(self) -> int:
        """The step count at which the round ends."""
        return self.first_step + self.steps


class BudgetPlan:
    """The rounds of a budget fit so far and the decisions between them.

    Every decision is a pure function of the measurements recorded, so a resumed fit makes
    the same ones (``max_seconds`` aside, which reads the clock).
    """

    def __init__(self, budget: BudgetConfig, blur: BlurConfig, optim: OptimConfig):
        if not budget.active:
            raise ConfigError("a budget plan needs budget.psnr, budget.ssim or budget.max_seconds")
        self.budget = budget
        self.blur = blur
        self.optim = optim
        self.rounds: list[BudgetRound] = []
        #: Why the fit stopped adding primitives (empty while it grows).
        self.outcome = ""
        self.finished = False

    # ------------------------------------------------------------------ rounds
    @property
    def first_count(self) -> int:
        return min(self.budget.start, self.budget.max_primitives)

    @property
    def current(self) -> BudgetRound:
        return self.rounds[-1]

    def begin(self, kind: str, first_step: int, n: int) -> BudgetRound:
        """Start a round of ``kind`` ("grow" or "polish") at ``first_step`` with ``n`` primitives."""
        steps = self.budget.round_steps if kind == "grow" else self.budget.polish_steps
        self.rounds.append(BudgetRound(kind, first_step, steps, n))
        return self.current

    def ends_at(self, done: int) -> bool:
        """Whether the current round ends once ``done`` steps are done."""
        return bool(self.rounds) and done >= self.current.last_step

    def schedule(self, step: int) -> tuple[float, float]:
        """(blur in pixels, learning-rate factor) at ``step`` of the current round."""
        current = self.current
        relative = step - current.first_step
        final = self.optim.final_factor
        if current.kind == "polish":
            # Refines a settled painting: sharp, at low rates.
            top = min(1.0, 2.0 * final) if final > 0 else 0.1
            return float(self.blur.end), top * lr_factor(relative, current.steps, "cosine", final=min(1.0, final / top))
        first = len(self.rounds) == 1
        blur_start = self.blur.start if first else min(self.blur.start, _LATER_BLUR)
        blur = blur_at(relative, current.steps, blur_start, self.blur.end, self.blur.until, self.blur.curve)
        # Later rounds start lower: most of their primitives are settled already.
        top = 1.0 if first else self.budget.restart
        factor = lr_factor(relative, current.steps, self.optim.schedule, warmup=int(round(self.optim.warmup * current.steps)),
                           final=min(1.0, final / top))
        return blur, top * factor

    def prune_due(self, done: int, every: int, until: float) -> bool:
        """Whether invisible primitives are pruned before step ``done`` (within a growing round,
        every ``every`` steps of it, up to ``until`` of it)."""
        current = self.current
        relative = done - current.first_step
        return (current.kind == "grow" and every > 0 and 0 < relative < until * current.steps
                and relative % every == 0)

    # ------------------------------------------------------------------ decisions
    def record(self, psnr: float, ssim: float | None, seconds: float) -> None:
        """What the current round's end measured."""
        current = self.current
        current.psnr, current.ssim, current.seconds = psnr, ssim, seconds

    def reached(self, psnr: float, ssim: float | None) -> bool:
        """Whether a painting of this PSNR and SSIM meets every quality target."""
        budget = self.budget
        if budget.psnr is None and budget.ssim is None:
            return False  # a time limit alone: grow until it
        return (budget.psnr is None or psnr >= budget.psnr) and (budget.ssim is None or (ssim is not None and ssim >= budget.ssim))

    def _gap_db(self, measured: BudgetRound) -> float:
        """How many decibels the round's painting is short of the targets (the larger gap)."""
        budget = self.budget
        gaps = []
        if budget.psnr is not None:
            gaps.append(budget.psnr - measured.psnr)
        if budget.ssim is not None:
            gaps.append(quality_db(ssim=budget.ssim) - quality_db(ssim=measured.ssim))
        return max(gaps) if gaps else _ASSUMED_DB_PER_DOUBLING  # a time limit alone: one doubling a round

    def _slope(self) -> float:
        """Measured decibels per doubling of the count between the last two growing rounds."""
        grown = [r for r in self.rounds if r.kind == "grow" and r.psnr is not None]
        if len(grown) < 2 or grown[-1].n <= grown[-2].n:
            return _ASSUMED_DB_PER_DOUBLING
        a, b = grown[-2], grown[-1]
        budget = self.budget
        gains = []
        if budget.psnr is not None or budget.ssim is None:
            gains.append(b.psnr - a.psnr)
        if budget.ssim is not None:
            gains.append(quality_db(ssim=b.ssim) - quality_db(ssim=a.ssim))
        slope = min(gains) / math.log2(b.n / a.n)
        return max(slope, _SMALLEST_SLOPE)

    def predicted_count(self) -> float:
        """The count predicted to reach the targets from the current round's (with the margin)."""
        current = self.current
        return current.n * 2.0 ** (self._gap_db(current) / self._slope()) * (1.0 + self.budget.margin)

    def next_count(self) -> int:
        """The count of the next growing round: the predicted one, within the growth limits."""
        current = self.current
        budget = self.budget
        predicted = self.predicted_count()
        low, high = current.n * _SMALLEST_GROWTH, current.n * budget.growth
        return int(min(budget.max_primitives, max(current.n + 1, round(min(max(predicted, low), high)))))

    def next_round_seconds(self, count: int) -> float:
        """Estimated wall time of a growing round with ``count`` primitives (time follows the count)."""
        current = self.current
        if current.seconds is None:
            return 0.0
        started = self.rounds[-2].seconds if len(self.rounds) > 1 and self.rounds[-2].seconds is not None else 0.0
        per_step = max(current.seconds - started, 0.0) / max(current.steps, 1)
        return per_step * self.budget.round_steps * count / max(current.n, 1)

    def decide(self, psnr: float, ssim: float | None, seconds: float) -> tuple[str, int]:
        """After the current round's end was recorded: ("grow", total count), ("trim", 0)
        (the targets are met: trim and polish) or ("finish", 0), with :attr:`outcome` saying why."""
        budget = self.budget
        current = self.current
        if current.kind == "polish":
            polished = sum(r.kind == "polish" for r in self.rounds)
            if budget.trim and self.reached(psnr, ssim) and polished < _POLISH_ROUNDS and -self._gap_db(current) > _TRIM_AGAIN_ABOVE:
                return "trim", 0  # the polish gained enough for more primitives to go
            self.finished = True
            return "finish", 0
        if self.reached(psnr, ssim):
            self.outcome = "reached"
            if budget.trim or budget.polish_steps:
                return "trim", 0
            self.finished = True
            return "finish", 0
        if current.n >= budget.max_primitives:
            self.outcome = "max_primitives"
            self.finished = True
            return "finish", 0
        count = self.next_count()
        if budget.max_seconds is not None and seconds + self.next_round_seconds(count) > budget.max_seconds:
            self.outcome = "max_seconds"
            self.finished = True
            return "finish", 0
        return "grow", count

    def stop_for_time(self) -> None:
        """The time limit passed within a round: the fit ends with the painting it has."""
        if not self.outcome:
            self.outcome = "max_seconds"
        self.finished = True

    # ------------------------------------------------------------------ reports and checkpoints
    def rows(self) -> list[dict[str, Any]]:
        """One row per round (rounds.csv)."""
        return [{"round": k + 1, **asdict(r)} for k, r in enumerate(self.rounds)]

    def state_dict(self) -> dict[str, Any]:
        return {"rounds": [asdict(r) for r in self.rounds], "outcome": self.outcome, "finished": self.finished}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        rounds = state["rounds"]
        if not isinstance(rounds, list) or not rounds or not all(isinstance(r, dict) for r in rounds):
            raise ValueError("the budget rounds are not a list of rounds")
        self.rounds = [BudgetRound(**r) for r in rounds]
        self.outcome = str(state["outcome"])
        self.finished = bool(state["finished"])

    def summary(self) -> str:
        """One line saying what the budget fit reached and why it stopped."""
        grown = [r for r in self.rounds if r.psnr is not None]
        if not grown:
            return "no round finished"
        last = grown[-1]
        quality = f"PSNR {last.psnr:.2f} dB" + (f", SSIM {last.ssim:.4f}" if last.ssim is not None else "")
        targets = self._targets()
        if self.outcome == "reached" and self.reached(last.psnr, last.ssim):
            return f"reached {targets} with {last.n} primitives ({quality}) in {len(self.rounds)} rounds"
        if self.outcome == "reached":  # the last polish lost a little of it
            first = next(r for r in self.rounds if r.psnr is not None and self.reached(r.psnr, r.ssim))
            return (f"reached {targets} with {first.n} primitives in round {self.rounds.index(first) + 1}; the final painting "
                    f"({last.n} primitives after trimming and polishing) holds {quality}")
        best = max(grown, key=lambda r: r.psnr)
        if self.outcome == "max_primitives":
            why = f"the limit of {self.budget.max_primitives} primitives (budget.max_primitives, --max-primitives)"
        elif self.outcome == "max_seconds":
            why = f"the time limit of {self.budget.max_seconds:g} s (budget.max_seconds, --max-seconds)"
        else:
            why = "the end of the fit"
        if not targets:
            return f"{quality} with {last.n} primitives when it reached {why}"
        return (f"{targets} not reached: stopped at {why}; best {best.psnr:.2f} dB with {best.n} primitives "
                f"(raise the limit, or lower the target)")

    def _targets(self) -> str:
        budget = self.budget
        parts = []
        if budget.psnr is not None:
            parts.append(f"PSNR {budget.psnr:g} dB")
        if budget.ssim is not None:
            parts.append(f"SSIM {budget.ssim:g}")
        return " and ".join(parts)
