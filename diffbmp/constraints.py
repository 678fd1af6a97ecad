"""Per-shape constraints on rotation and aspect, enforced by the parametrisation.

A :class:`ShapeConstraints` holds one :class:`Constraint` per shape of a bank. A
:class:`~diffbmp.scene.Scene` that carries one maps its raw tensors so that the constraint
holds exactly, whatever the raw values (no penalty, nothing to tune):

| constraint | activated value |
| --- | --- |
| rotation free | ``raw`` |
| rotation upright | ``0`` |
| rotation in ``[low, high]`` | ``c + h tanh((raw - c) / h)``, ``c = (low + high) / 2``, ``h = (high - low) / 2`` |
| aspect free | ``log s = raw`` (each axis) |
| aspect keep (ratio ``a``) | ``log sx = m + log(a) / 2``, ``log sy = m - log(a) / 2``, ``m`` the mean of the two raw values |

Gradients flow through every map (a range's ``tanh`` has slope 1 at its centre, so a
primitive turns as freely as an unconstrained one until it nears a bound). The inverse maps
(:meth:`ShapeConstraints.raw_rotations`, :meth:`ShapeConstraints.raw_log_scales`) turn
activated values back into raw ones; :func:`constraints_for` builds the constraints of a
fit's ``constraints:`` section for a bank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from .errors import ConfigError, InputError

__all__ = ["Constraint", "ShapeConstraints", "constraints_for", "START_SHARE"]

#: New primitives start inside this share of their rotation range (the tanh is still steep there).
START_SHARE = 0.9
#: Raw rotations of a range are kept within this many half-widths of its centre (tanh(3) = 0.995).
RAW_REACH = 3.0
#: The inverse of a range's tanh stays this far inside the bounds (its slope is infinite at them).
_EDGE = 1e-6


@dataclass(frozen=True)
class Constraint:
    """What the primitives of one shape may do.

    Attributes:
        rotation: None (free), or the range ``(low, high)`` of the rotation in radians;
            ``low == high`` fixes it (``(0.0, 0.0)``: upright).
        aspect: None (free), or the width/height ratio ``sx / sy`` its primitives keep.
    """

    rotation: tuple[float, float] | None = None
    aspect: float | None = None

    def problem(self) -> str | None:
        """What is wrong with this constraint's values, or None."""
        if self.rotation is not None:
            if len(self.rotation) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in self.rotation):
                return f"its rotation range {self.rotation!r} is not two finite numbers"
            low, high = self.rotation
            if not -math.pi - 1e-9 <= low <= high <= math.pi + 1e-9:
                return f"its rotation range ({low:.6g}, {high:.6g}) is not low <= high within [-pi, pi] radians"
        if self.aspect is not None and not (isinstance(self.aspect, (int, float)) and math.isfinite(self.aspect) and self.aspect > 0):
            return f"its aspect {self.aspect!r} is not a number > 0"
        return None

    @property
    def free(self) -> bool:
        return self.rotation is None and self.aspect is None


@dataclass(frozen=True)
class _Tables:
    """Per-shape tensors of the maps: mode (0 free, 1 fixed at ``centre``, 2 range), centre
    and half-width of a range (half-width 1 elsewhere, so the unused branch stays finite),
    whether the aspect is kept, and half the log of the kept aspect."""

    mode: torch.Tensor
    centre: torch.Tensor
    half: torch.Tensor
    keep: torch.Tensor
    half_log_aspect: torch.Tensor


class ShapeConstraints:
    """One :class:`Constraint` per shape of a bank (in the bank's order)."""

    def __init__(self, entries: Sequence[Constraint]):
        self.entries = tuple(entries)
        for index, entry in enumerate(self.entries):
            if not isinstance(entry, Constraint):
                raise InputError(f"constraint {index} is a {type(entry).__name__}, not a diffbmp.constraints.Constraint")
            problem = entry.problem()
            if problem is not None:
                raise InputError(f"the constraint of shape {index}: {problem}")
        self._tables: dict[tuple[str, torch.dtype], _Tables] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ShapeConstraints) and other.entries == self.entries

    def __hash__(self) -> int:
        return hash(self.entries)

    def __repr__(self) -> str:
        return f"ShapeConstraints({list(self.entries)!r})"

    @property
    def active(self) -> bool:
        """Whether any shape is constrained."""
        return any(not entry.free for entry in self.entries)

    # ------------------------------------------------------------------ tables
    def _at(self, shape_ids: torch.Tensor, dtype: torch.dtype) -> _Tables:
        """The tables gathered at ``shape_ids`` (one row per primitive)."""
        key = (str(shape_ids.device), dtype)
        tables = self._tables.get(key)
        if tables is None:
            modes, centres, halves, keeps, aspects = [], [], [], [], []
            for entry in self.entries:
                low, high = entry.rotation if entry.rotation is not None else (0.0, 0.0)
                modes.append(0 if entry.rotation is None else 1 if high <= low else 2)
                centres.append((low + high) / 2)
                halves.append((high - low) / 2 if high > low else 1.0)
                keeps.append(entry.aspect is not None)
                aspects.append(0.5 * math.log(entry.aspect) if entry.aspect is not None else 0.0)
            device = shape_ids.device
            tables = _Tables(
                torch.tensor(modes, dtype=torch.long, device=device), torch.tensor(centres, dtype=dtype, device=device),
                torch.tensor(halves, dtype=dtype, device=device), torch.tensor(keeps, dtype=torch.bool, device=device),
                torch.tensor(aspects, dtype=dtype, device=device),
            )
            self._tables[key] = tables
        ids = shape_ids.long()
        return _Tables(tables.mode[ids], tables.centre[ids], tables.half[ids], tables.keep[ids], tables.half_log_aspect[ids])

    # ------------------------------------------------------------------ activations
    def rotations(self, raw: torch.Tensor, shape_ids: torch.Tensor) -> torch.Tensor:
        """Activated rotations [N] (radians) of raw rotations [N]."""
        t = self._at(shape_ids, raw.dtype)
        ranged = t.centre + t.half * torch.tanh((raw - t.centre) / t.half)
        out = torch.where(t.mode == 2, ranged, raw)
        return torch.where(t.mode == 1, t.centre, out)

    def log_scales(self, raw: torch.Tensor, shape_ids: torch.Tensor) -> torch.Tensor:
        """Activated log half-extents [N, 2] of raw log scales [N, 2]."""
        t = self._at(shape_ids, raw.dtype)
        size = raw.mean(dim=-1)
        kept = torch.stack([size + t.half_log_aspect, size - t.half_log_aspect], dim=-1)
        return torch.where(t.keep.unsqueeze(-1), kept, raw)

    # ------------------------------------------------------------------ inverses
    def _relative(self, rotations: torch.Tensor, t: _Tables) -> torch.Tensor:
        """``rotations`` as a share of each range's half-width from its centre (after turning
        them by whole turns to lie within half a turn of it)."""
        turned = torch.remainder(rotations - t.centre + math.pi, 2 * math.pi) - math.pi
        return turned / t.half

    def raw_rotations(self, rotations: torch.Tensor, shape_ids: torch.Tensor, *, start: bool = False) -> torch.Tensor:
        """Raw rotations whose activation is ``rotations`` [N] where they keep the constraints
        (a rotation outside a range gives its nearer bound).

        With ``start`` (primitives about to be optimised), a rotation outside its range starts
        at the range's centre and one inside it within :data:`START_SHARE` of it, where the
        map is still steep enough to turn them.
        """
        t = self._at(shape_ids, rotations.dtype)
        share = self._relative(rotations, t)
        if start:
            share = torch.where(share.abs() <= 1, share.clamp(-START_SHARE, START_SHARE), torch.zeros_like(share))
        else:
            share = share.clamp(-1 + _EDGE, 1 - _EDGE)
        ranged = t.centre + t.half * torch.atanh(share)
        out = torch.where(t.mode == 2, ranged, rotations)
        return torch.where(t.mode == 1, t.centre, out)

    def raw_log_scales(self, scales: torch.Tensor, shape_ids: torch.Tensor) -> torch.Tensor:
        """Raw log scales [N, 2] whose activation is ``scales`` [N, 2] where they keep the
        constraints (a kept aspect takes the geometric mean of the two as its size)."""
        return self.log_scales(scales.log(), shape_ids)

    # ------------------------------------------------------------------ candidates
    def fit_scales(self, scales: torch.Tensor, shape_ids: torch.Tensor) -> torch.Tensor:
        """``scales`` [N, 2] with each kept aspect restored (same geometric mean)."""
        return self.log_scales(scales.log(), shape_ids).exp()

    def fit_rotations(self, rotations: torch.Tensor, shape_ids: torch.Tensor) -> torch.Tensor:
        """``rotations`` [N] moved into the inner :data:`START_SHARE` of their ranges (0 where upright)."""
        t = self._at(shape_ids, rotations.dtype)
        inside = t.centre + t.half * self._relative(rotations, t).clamp(-START_SHARE, START_SHARE)
        out = torch.where(t.mode == 2, inside, rotations)
        return torch.where(t.mode == 1, t.centre, out)

    def spread_rotations(self, unit: torch.Tensor, shape_ids: torch.Tensor) -> torch.Tensor:
        """Rotations for draws ``unit`` [N] in [-1, 1]: ``unit * pi`` where free, spread over
        the inner :data:`START_SHARE` of a range, 0 where upright."""
        t = self._at(shape_ids, unit.dtype)
        out = torch.where(t.mode == 2, t.centre + START_SHARE * t.half * unit, unit * math.pi)
        return torch.where(t.mode == 1, t.centre, out)

    @torch.no_grad()
    def clamp_(self, log_scales: torch.Tensor, rotations: torch.Tensor, shape_ids: torch.Tensor, low: float, high: float) -> None:
        """Keep raw tensors in bounds, in place: every activated half-extent within
        ``[low, high]`` (log pixels), free rotations wrapped into [-pi, pi), a range's raw
        rotation within :data:`RAW_REACH` half-widths of its centre, upright ones at 0."""
        t = self._at(shape_ids, rotations.dtype)
        wrapped = torch.remainder(rotations + math.pi, 2 * math.pi) - math.pi
        reach = RAW_REACH * t.half
        ranged = torch.minimum(torch.maximum(rotations, t.centre - reach), t.centre + reach)
        rotations.copy_(torch.where(t.mode == 0, wrapped, torch.where(t.mode == 2, ranged, t.centre)))
        margin = t.half_log_aspect.abs()
        # Both half-extents of a kept aspect stay in bounds (the size clamped by the margin).
        size = torch.minimum(torch.maximum(log_scales.mean(dim=-1), low + margin), high - margin)
        kept = torch.stack([size + t.half_log_aspect, size - t.half_log_aspect], dim=-1)
        log_scales.copy_(torch.where(t.keep.unsqueeze(-1), kept, log_scales.clamp(low, high)))

    # ------------------------------------------------------------------ files
    def to_json(self) -> list[dict[str, Any]]:
        """One ``{"rotation": [low, high] | null, "aspect": ratio | null}`` per shape (radians)."""
        return [{"rotation": None if e.rotation is None else [float(v) for v in e.rotation], "aspect": e.aspect}
                for e in self.entries]

    @classmethod
    def from_json(cls, data: Any, count: int) -> "ShapeConstraints":
        """The constraints :meth:`to_json` wrote for a bank of ``count`` shapes (InputError
        naming the problem otherwise)."""
        if not isinstance(data, list) or len(data) != count:
            raise InputError(f"its constraints are not a list of {count} (one per shape of its bank)")
        entries = []
        for index, item in enumerate(data):
            if not isinstance(item, dict) or set(item) - {"rotation", "aspect"}:
                raise InputError(f"the constraint of shape {index} is {item!r}")
            rotation, aspect = item.get("rotation"), item.get("aspect")
            if rotation is not None and not (isinstance(rotation, list) and len(rotation) == 2
                                             and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rotation)):
                raise InputError(f"the constraint of shape {index} has the rotation {rotation!r}")
            if aspect is not None and (isinstance(aspect, bool) or not isinstance(aspect, (int, float))):
                raise InputError(f"the constraint of shape {index} has the aspect {aspect!r}")
            entries.append(Constraint(None if rotation is None else (float(rotation[0]), float(rotation[1])),
                                      None if aspect is None else float(aspect)))
        return cls(entries)


# ----------------------------------------------------------------------------- from a config
def _produced_by(spec: str, entry: Any) -> bool:
    """Whether the bank entry ``entry`` was made from the primitive ``spec`` (a shape's name,
    an image or SVG file, or a folder of them)."""
    if entry.name == spec or entry.source == spec:
        return True
    if entry.source.startswith(("analytic:", "builtin:", "text:")) or not entry.source:
        return False
    path, source = Path(spec).expanduser(), Path(entry.source)
    return source == path or source.parent == path


def rotation_range(rotation: Any) -> tuple[float, float] | None:
    """The range in radians of a config's ``rotation`` value: ``free`` (None), ``upright``,
    a largest turn either way in degrees, or ``[low, high]`` in degrees."""
    if rotation is None or rotation == "free":
        return None
    if rotation == "upright":
        return (0.0, 0.0)
    if isinstance(rotation, (int, float)):
        limit = math.radians(float(rotation))
        return (-limit, limit)
    low, high = rotation
    return (math.radians(float(low)), math.radians(float(high)))


def constraints_for(rules: Mapping[str, Mapping[str, Any]], bank: Any, specs: Sequence[str],
                    built_from: Sequence[str] | None = None) -> ShapeConstraints | None:
    """The constraints of a config's ``constraints:`` section for ``bank`` (None when nothing
    is constrained).

    Args:
        rules: shape pattern (``fnmatch``, e.g. ``text:*``) -> ``{"rotation": ..., "aspect": ...}``
            (config values: ``rotation`` free, upright, degrees or ``[low, high]`` degrees;
            ``aspect`` free or keep; None or absent: as an earlier matching pattern says).
        bank: the fit's TextureBank.
        specs: the ``primitives`` the patterns are matched against.
        built_from: what each spec was turned into before the bank was built from it
            (default: the specs themselves).
    """
    built_from = list(specs) if built_from is None else list(built_from)
    rotation: list[Any] = [None] * len(bank)
    aspect: list[Any] = [None] * len(bank)
    for pattern, rule in rules.items():
        chosen = [spec for spec in specs if fnmatchcase(spec, pattern)]
        made = {built for spec, built in zip(specs, built_from) if spec in chosen}
        entries = [i for i, entry in enumerate(bank) if fnmatchcase(entry.name, pattern)
                   or any(_produced_by(spec, entry) for spec in made)]
        if not entries:
            raise ConfigError(f"constraints: the pattern {pattern!r} matches none of the primitives "
                              f"({', '.join(bank.names)}); name one of them, or a pattern such as 'text:*'")
        for index in entries:
            # Each pattern sets the keys it names; later patterns win.
            if rule.get("rotation") is not None:
                rotation[index] = rule["rotation"]
            if rule.get("aspect") is not None:
                aspect[index] = rule["aspect"]
    entries = [Constraint(rotation_range(r), bank[i].aspect if a == "keep" else None) for i, (r, a) in enumerate(zip(rotation, aspect))]
    constraints = ShapeConstraints(entries)
    return constraints if constraints.active else None
