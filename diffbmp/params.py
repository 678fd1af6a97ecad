"""The per-primitive parameters ``composite()`` takes, already activated (docs/rendering.md, 2)."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import torch

from .errors import InputError


@dataclass
class PrimitiveParams:
    """Activated parameters of N primitives, in painting order (index 0 is the bottom).

    Attributes:
        means: [N, 2] centres (x, y) in pixels.
        rotations: [N] radians.
        scales: [N, 2] half-extents (sx, sy) in pixels, > 0.
        colors: [N, 3] tint in [0, 1].
        opacities: [N] in [0, 1].
        shape_ids: [N] integer index into the texture bank.
        beta: [N] in [0, 1]: 0 tints the bitmap with ``colors``, 1 keeps its own colours;
            None means 0 for every primitive.
    """

    means: torch.Tensor
    rotations: torch.Tensor
    scales: torch.Tensor
    colors: torch.Tensor
    opacities: torch.Tensor
    shape_ids: torch.Tensor
    beta: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def device(self) -> torch.device:
        return self.means.device

    def beta_or_zeros(self) -> torch.Tensor:
        return self.beta if self.beta is not None else self.opacities.new_zeros(len(self))

    def map(self, fn) -> "PrimitiveParams":
        """A copy with ``fn`` applied to every tensor (e.g. ``lambda t: t.to("cuda")``)."""
        return replace(self, **{f.name: None if getattr(self, f.name) is None else fn(getattr(self, f.name)) for f in fields(self)})

    def select(self, index: torch.Tensor) -> "PrimitiveParams":
        """The primitives at ``index`` (a boolean mask or indices), keeping painting order."""
        return self.map(lambda t: t[index])

    def validate(self, num_shapes: int) -> None:
        """Raise InputError naming the first problem with these parameters."""
        self.validate_structure()
        if len(self) > 0:
            self.check_values(num_shapes)

    def validate_structure(self) -> None:
        """Raise InputError for wrong types, shapes, dtypes or devices (no synchronisation)."""
        n = len(self)
        expected = {"means": (n, 2), "rotations": (n,), "scales": (n, 2), "colors": (n, 3), "opacities": (n,), "shape_ids": (n,)}
        if self.beta is not None:
            expected["beta"] = (n,)
        for name, shape in expected.items():
            tensor = getattr(self, name)
            if not isinstance(tensor, torch.Tensor):
                raise InputError(f"params.{name} must be a torch.Tensor, got {type(tensor).__name__}")
            if tuple(tensor.shape) != shape:
                raise InputError(f"params.{name} must have shape {list(shape)} for N={n} primitives, got {list(tensor.shape)}")
            if tensor.device != self.device:
                raise InputError(f"params.{name} is on {tensor.device} but params.means is on {self.device}; move all parameters to one device")
            if name == "shape_ids":
                if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
                    raise InputError(f"params.shape_ids must be an integer tensor, got {tensor.dtype}")
            elif tensor.dtype != self.dtype:
                raise InputError(f"params.{name} is {tensor.dtype} but params.means is {self.dtype}; use one floating dtype")
        if not self.dtype.is_floating_point:
            raise InputError(f"params.means must be floating point, got {self.dtype}")

    def value_flags(self, num_shapes: int) -> torch.Tensor:
        """[5] bool on the parameters' device, one flag per failed value check (computed without
        synchronising): non-finite values, scales <= 0, opacities or beta outside [0, 1], shape
        ids outside a bank of ``num_shapes``. The native backends read them back with their own
        first result, and :meth:`check_values` names the problem."""
        floats = [self.means, self.rotations, self.scales, self.colors, self.opacities, self.beta_or_zeros()]
        with torch.no_grad():
            return torch.stack(
                [
                    torch.stack([~torch.isfinite(t).all() for t in floats]).any(),
                    (self.scales <= 0).any(),
                    ((self.opacities < 0) | (self.opacities > 1)).any(),
                    ((self.beta_or_zeros() < 0) | (self.beta_or_zeros() > 1)).any(),
                    ((self.shape_ids < 0) | (self.shape_ids >= num_shapes)).any(),
                ]
            )

    def check_values(self, num_shapes: int) -> None:
        """Raise InputError naming the first value check that fails (one synchronisation)."""
        flags = self.value_flags(num_shapes).tolist()
        if not any(flags):
            return
        if flags[0]:
            names = ["means", "rotations", "scales", "colors", "opacities", "beta"]
            floats = [self.means, self.rotations, self.scales, self.colors, self.opacities, self.beta_or_zeros()]
            bad = [name for name, t in zip(names, floats) if not bool(torch.isfinite(t).all())]
            raise InputError(f"params.{bad[0]} contains NaN or infinite values (a diverged fit? lower the learning rate)")
        if flags[1]:
            raise InputError(f"params.scales must be > 0 (half-extents in pixels); the smallest is {float(self.scales.min()):.4g}")
        if flags[2]:
            raise InputError("params.opacities must lie in [0, 1]; apply torch.sigmoid to unconstrained values")
        if flags[3]:
            raise InputError("params.beta must lie in [0, 1]; apply torch.sigmoid to unconstrained values")
        raise InputError(
            f"params.shape_ids must index the texture bank (0..{num_shapes - 1}); got values in "
            f"[{int(self.shape_ids.min())}, {int(self.shape_ids.max())}]"
        )
