"""Each constant of the rendering model is defined in Python and in C++; they must agree."""

import re
from pathlib import Path

import pytest

from diffbmp import constants

HEADER = Path(__file__).resolve().parent.parent / "csrc" / "include" / "diffbmp" / "constants.h"


def header_values() -> dict[str, float]:
    pattern = re.compile(r"constexpr\s+(?:int|double)\s+(\w+)\s*=\s*([-+0-9.eE]+)\s*;")
    return {name: float(value) for name, value in pattern.findall(HEADER.read_text())}


def python_values() -> dict[str, float]:
    return {name: float(value) for name, value in vars(constants).items() if name.isupper()}


def test_every_constant_exists_on_both_sides():
    assert set(header_values()) == set(python_values())


@pytest.mark.parametrize("name", sorted(python_values()))
def test_constant_agrees(name):
    # 17 significant digits in the header: equal to double precision.
    assert header_values()[name] == pytest.approx(python_values()[name], rel=1e-15, abs=0)
