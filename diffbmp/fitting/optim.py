"""Adam whose rows (primitives) can be added, removed, reordered and reset during a fit.

``torch.optim.Adam`` keeps one step count per tensor, so a primitive re-seeded late in a
fit would get a bias correction meant for an old one, and growing or permuting its state
means reaching into private dictionaries. Here every row has its own step count, and the
whole state is a flat dictionary of tensors (checkpointed as such).
"""

from __future__ import annotations

import torch

__all__ = ["RowAdam"]


class RowAdam:
    """Adam (Kingma & Ba) with a learning rate per named tensor and a step count per row.

    Tensors named in ``shared`` (e.g. the background colour) are one "row" as a whole;
    the others have one row per primitive along dimension 0.
    """

    def __init__(self, lrs: dict[str, float], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, shared: tuple[str, ...] = ()):
        self.lrs = dict(lrs)
        self.betas = betas
        self.eps = eps
        self.shared = tuple(shared)
        self.state: dict[str, dict[str, torch.Tensor]] = {}

    def _ensure(self, name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state.get(name)
        if state is None or state["m"].shape != tensor.shape:
            rows = () if name in self.shared else (tensor.shape[0],)
            state = {"m": torch.zeros_like(tensor), "v": torch.zeros_like(tensor), "t": torch.zeros(rows, dtype=tensor.dtype, device=tensor.device)}
            self.state[name] = state
        return state

    @torch.no_grad()
    def step(self, tensors: dict[str, torch.Tensor], factor: float = 1.0, row_scale: torch.Tensor | None = None) -> None:
        """Update every tensor with a positive learning rate and a gradient, in place.

        ``row_scale`` [N], when given, multiplies the learning rates of each row of the
        per-row tensors (not the shared ones).
        """
        beta1, beta2 = self.betas
        for name, tensor in tensors.items():
            lr = self.lrs.get(name, 0.0) * factor
            if lr <= 0 or tensor.grad is None or tensor.numel() == 0:
                continue
            grad = tensor.grad
            state = self._ensure(name, tensor)
            m, v, t = state["m"], state["v"], state["t"]
            m.mul_(beta1).add_(grad, alpha=1 - beta1)
            v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            t.add_(1)
            shape = t.shape + (1,) * (tensor.ndim - t.ndim)
            correction1 = (1 - torch.pow(beta1, t)).reshape(shape)
            correction2 = (1 - torch.pow(beta2, t)).reshape(shape)
            denominator = (v / correction2).sqrt_().add_(self.eps)
            if row_scale is not None and name not in self.shared:
                denominator.div_(row_scale.to(tensor.dtype).reshape(shape))
            tensor.addcdiv_(m / correction1, denominator, value=-lr)

    # ------------------------------------------------------------------ row edits
    def select(self, index: torch.Tensor) -> None:
        """Keep the rows at ``index`` (indices or mask) of every per-row state, in that order."""
        for name, state in self.state.items():
            if name in self.shared:
                continue
            for key in state:
                state[key] = state[key][index]

    def append(self, rows: int) -> None:
        """Add ``rows`` fresh rows (zero moments, step 0) at the end of every per-row state."""
        for name, state in self.state.items():
            if name in self.shared:
                continue
            for key, value in state.items():
                state[key] = torch.cat([value, value.new_zeros((rows, *value.shape[1:]))])

    def reset(self, index: torch.Tensor) -> None:
        """Forget the history of the rows at ``index``: they restart like new parameters."""
        for name, state in self.state.items():
            if name in self.shared:
                continue
            for value in state.values():
                value[index] = 0

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Flat ``{"<tensor>.<m|v|t>": tensor}`` (plain tensors only)."""
        return {f"{name}.{key}": value.clone() for name, state in self.state.items() for key, value in state.items()}

    def load_state_dict(self, flat: dict[str, torch.Tensor]) -> None:
        self.state = {}
        for key, value in flat.items():
            name, _, part = key.rpartition(".")
            self.state.setdefault(name, {})[part] = value.clone()
