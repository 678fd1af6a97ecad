"""Tests of the built-in procedural primitives (diffbmp.primitives.procedural)."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from diffbmp.errors import InputError
from diffbmp.primitives.procedural import builtin_names, make_builtin, natural_aspect

REQUIRED = {
    "disc", "ring", "square", "triangle", "right_triangle", "star", "heart", "leaf", "soft_blob", "hexagon",
    "crescent", "drop", "brush_flat", "brush_round", "brush_dry", "pencil",
}
STROKES = ["brush_flat", "brush_round", "brush_dry", "brush_fan", "pencil"]
HARD_EDGED = ["disc", "ring", "square", "triangle", "right_triangle", "star", "heart", "hexagon", "crescent", "drop", "leaf"]
NAMES = builtin_names()


def test_names_sorted_and_complete():
    assert NAMES == sorted(NAMES)
    assert len(set(NAMES)) == len(NAMES)
    assert REQUIRED <= set(NAMES)
    assert {"brush_fan", "brush_splatter"} & set(NAMES)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [8, 64, 129])
def test_shape_dtype_range_and_margin(name, size):
    rgba = make_builtin(name, size)
    assert isinstance(rgba, np.ndarray) and rgba.dtype == np.float32
    assert rgba.ndim == 3 and rgba.shape[2] == 4
    h, w = rgba.shape[:2]
    assert max(h, w) == size
    assert np.isfinite(rgba).all() and rgba.min() >= 0.0 and rgba.max() <= 1.0
    # Stencils: white RGB everywhere, even under fully transparent texels.
    assert (rgba[..., :3] == 1.0).all()
    alpha = rgba[..., 3]
    assert alpha.max() > 0.3, "nothing drawn"
    # Transparent frame, one texel at least: content never touches the bitmap's border.
    assert alpha[0].max() == 0 and alpha[-1].max() == 0 and alpha[:, 0].max() == 0 and alpha[:, -1].max() == 0
    # Aspect matches natural_aspect (up to rounding of the short side).
    aspect = natural_aspect(name)
    if size >= 64:
        assert w / h == pytest.approx(aspect, rel=0.05)


@pytest.mark.parametrize("name", NAMES)
def test_content_fills_the_bitmap(name):
    alpha = make_builtin(name, 128)[..., 3]
    rows = np.flatnonzero((alpha > 0.02).any(axis=1))
    cols = np.flatnonzero((alpha > 0.02).any(axis=0))
    h, w = alpha.shape
    # No large empty border: at most ~6 % of each side transparent on either end.
    assert rows[0] <= max(2, 0.06 * h) and h - 1 - rows[-1] <= max(2, 0.06 * h)
    assert cols[0] <= max(2, 0.06 * w) and w - 1 - cols[-1] <= max(2, 0.06 * w)


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name):
    a = make_builtin(name, 96)
    b = make_builtin(name, 96)
    assert a.tobytes() == b.tobytes()


def test_global_random_state_is_not_used():
    np.random.seed(1)
    a = make_builtin("brush_dry", 64)
    np.random.seed(2)
    np.random.rand(10)
    b = make_builtin("brush_dry", 64)
    assert a.tobytes() == b.tobytes()


def _resized(name: str) -> np.ndarray:
    return cv2.resize(make_builtin(name, 64)[..., 3], (48, 48), interpolation=cv2.INTER_AREA)


def test_shapes_are_pairwise_distinct():
    alphas = {name: _resized(name) for name in NAMES}
    for a, b in itertools.combinations(NAMES, 2):
        diff = float(np.abs(alphas[a] - alphas[b]).mean())
        assert diff > 0.05, f"{a} and {b} look alike (mean alpha difference {diff:.3f})"


def _content_box(alpha: np.ndarray) -> tuple[int, int]:
    rows = np.flatnonzero((alpha > 0.5).any(axis=1))
    cols = np.flatnonzero((alpha > 0.5).any(axis=0))
    return rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]


def test_disc_coverage_is_pi_over_4_of_its_box():
    alpha = make_builtin("disc", 256)[..., 3].astype(np.float64)
    bh, bw = _content_box(alpha)
    assert abs(bh - bw) <= 1
    expected = math.pi / 4.0 * bh * bw
    assert alpha.sum() == pytest.approx(expected, rel=0.03)
    # And the box nearly fills the bitmap (small margin only).
    assert bh >= 0.9 * alpha.shape[0]


def test_coverage_fractions_are_plausible():
    mean = {name: float(make_builtin(name, 128)[..., 3].mean()) for name in NAMES}
    assert mean["ring"] < mean["disc"]
    assert mean["crescent"] < mean["disc"]
    assert mean["star"] < mean["hexagon"] < mean["square"]
    assert mean["square"] > 0.85
    assert mean["triangle"] == pytest.approx(0.5 * 0.92**2, abs=0.08)
    for name in NAMES:
        assert 0.05 < mean[name] < 0.95, name


def test_soft_blob_falls_off_smoothly():
    alpha = make_builtin("soft_blob", 128)[..., 3]
    h, w = alpha.shape
    assert alpha[h // 2, w // 2] > 0.95
    # Many intermediate values, not a hard edge.
    assert ((alpha > 0.1) & (alpha < 0.9)).mean() > 0.15


@pytest.mark.parametrize("name", HARD_EDGED)
def test_edges_are_antialiased(name):
    alpha = make_builtin(name, 128)[..., 3]
    fractional = (alpha > 0.05) & (alpha < 0.95)
    assert fractional.sum() > 0.5 * 128, "no partial coverage along the outline: aliased"
    # Along one row crossing the outline, alpha steps through intermediate values.
    inside = alpha > 0.5
    boundary = inside ^ np.roll(inside, 1, axis=1)
    assert (fractional & (boundary | np.roll(boundary, -1, axis=1))).any()


@pytest.mark.parametrize("name", ["disc", "star", "brush_flat"])
def test_edges_antialiased_at_small_size(name):
    alpha = make_builtin(name, 16)[..., 3]
    assert ((alpha > 0.05) & (alpha < 0.95)).any()


@pytest.mark.parametrize("name", STROKES)
def test_strokes_are_long_and_have_bristle_texture(name):
    alpha = make_builtin(name, 256)[..., 3].astype(np.float64)
    h, w = alpha.shape
    assert natural_aspect(name) >= 3.0 and w >= 3 * h
    # Across the stroke (a column in the middle third), alpha must vary: bristles / grain.
    middle = alpha[:, w // 3: 2 * w // 3]
    body = middle[h // 4: 3 * h // 4]
    across_std = body.std(axis=0).mean()
    assert across_std > 0.04, f"{name}: flat across its width (std {across_std:.3f})"
    assert body.mean() > 0.2


def test_brush_ends_and_tapers():
    flat = make_builtin("brush_flat", 256)[..., 3]
    h, w = flat.shape
    # Ragged end: bristles stop at different places, so the last inked column differs by row.
    rows = flat[h // 4: 3 * h // 4]
    last = np.array([np.flatnonzero(r > 0.1)[-1] for r in rows if (r > 0.1).any()])
    assert last.std() > 2.0
    round_ = make_builtin("brush_round", 256)[..., 3]
    middle_width = (round_[:, w // 3] > 0.1).sum()
    assert (round_[:, int(0.04 * w)] > 0.1).sum() < 0.6 * middle_width
    assert (round_[:, int(0.95 * w)] > 0.1).sum() < 0.6 * middle_width


def test_dry_brush_has_gaps():
    alpha = make_builtin("brush_dry", 256)[..., 3]
    h, w = alpha.shape
    body = alpha[h // 4: 3 * h // 4, w // 10: 9 * w // 10]
    assert (body < 0.05).mean() > 0.15, "dry brush needs broken streaks with gaps"
    assert (body > 0.6).mean() > 0.2


def test_leaf_has_veins_in_alpha():
    alpha = make_builtin("leaf", 256)[..., 3]
    h, w = alpha.shape
    # Along the leaf's middle, alpha dips below the full body at the midrib and veins.
    column = alpha[:, w // 2]
    body = column[column > 0.2]
    assert body.max() > 0.95 and body.min() < 0.7


def test_sizes_keep_the_look():
    small = make_builtin("star", 64)[..., 3]
    large = make_builtin("star", 256)[..., 3]
    down = cv2.resize(large, small.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(down - small).mean() < 0.03


def test_unknown_name_suggests_close_matches():
    with pytest.raises(InputError) as info:
        make_builtin("brush_flt")
    message = str(info.value)
    assert "brush_flt" in message and "brush_flat" in message
    for name in NAMES:
        assert name in message
    with pytest.raises(InputError, match="Did you mean"):
        natural_aspect("hexagn")


@pytest.mark.parametrize("size", [7, 0, -5, 4097])
def test_bad_size(size):
    with pytest.raises(InputError, match="between 8 and 4096"):
        make_builtin("disc", size)


def test_non_integer_size():
    with pytest.raises(InputError, match="integer"):
        make_builtin("disc", 12.5)


def test_natural_aspect():
    assert natural_aspect("disc") == pytest.approx(1.0, abs=0.01)
    assert natural_aspect("ring") == pytest.approx(1.0, abs=0.01)
    assert 3.0 <= natural_aspect("brush_flat") <= 5.0
    assert natural_aspect("pencil") >= 3.0
    assert natural_aspect("drop") < 1.0
    for name in NAMES:
        assert natural_aspect(name) > 0
