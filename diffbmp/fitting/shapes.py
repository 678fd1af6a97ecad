"""The shapes of a fit: the texture bank its ``primitives`` name, and the constraints its
``constraints:`` section puts on them."""

from __future__ import annotations

from typing import Sequence

from ..config import FitConfig
from ..constraints import ShapeConstraints, constraints_for
from ..primitives import TextureBank
from ..targets import SKIMAGE_PREFIX, skimage_file

__all__ = ["build_bank", "primitive_specs", "fit_constraints"]


def primitive_specs(specs: Sequence[str]) -> list[str]:
    """Primitive names with ``skimage:<name>`` turned into the bundled image's file."""
    return [str(skimage_file(spec[len(SKIMAGE_PREFIX):])) if spec.startswith(SKIMAGE_PREFIX) else spec for spec in specs]


def build_bank(config: FitConfig) -> TextureBank:
    """The texture bank of ``config.primitives``."""
    return TextureBank.from_names(primitive_specs(config.primitives), texture_size=config.texture_size, font=config.text_font)


def fit_constraints(config: FitConfig, bank: TextureBank) -> ShapeConstraints | None:
    """The constraints of ``config.constraints`` on the shapes of ``bank`` (None when none);
    ConfigError for a pattern that matches none of them."""
    if not config.constraints:
        return None
    rules = {pattern: rule.model_dump() for pattern, rule in config.constraints.items()}
    return constraints_for(rules, bank, config.primitives, primitive_specs(config.primitives))
