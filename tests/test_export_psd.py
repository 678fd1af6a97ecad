"""Layered PSD export: read back with psd-tools, layer by layer and composited."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from psd_tools import PSDImage

from diffbmp import InputError, PrimitiveParams, TextureBank
from diffbmp.bounds import screen_bounds
from diffbmp.exports import export
from diffbmp.exports.psd import build_psd, write_psd
from diffbmp.scene import Scene

SHAPES = ["circle", "gaussian", "disc", "star", "brush_flat"]
BACKGROUND = (0.15, 0.35, 0.55)


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    # One bank for the module: its texture pyramid is built once.
    return TextureBank.from_names(SHAPES, texture_size=48)


def make_scene(bank: TextureBank, n: int, seed: int = 0, height: int = 72, width: int = 96) -> Scene:
    """Random primitives of every kind, some partly and some wholly off the canvas."""
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    means = rand(n, 2) * torch.tensor([width + 30.0, height + 30.0]) - 15.0
    means[-1] = torch.tensor([-200.0, 50.0])  # entirely outside: an empty layer
    params = PrimitiveParams(
        means=means,
        rotations=(rand(n) * 2 - 1) * math.pi,
        scales=rand(n, 2) * 9 + 1.5,
        colors=rand(n, 3),
        opacities=0.2 + 0.8 * rand(n),
        shape_ids=torch.randint(0, len(SHAPES), (n,), generator=g),
        beta=torch.where(rand(n) < 0.5, torch.zeros(n), rand(n)),
    )
    return Scene.from_params(params, bank, height, width, background=BACKGROUND)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def composited(psd: PSDImage) -> np.ndarray:
    # ignore_preview: psd-tools composites the pixel layers itself instead of returning the
    # merged image stored in the file.
    return np.asarray(psd.composite(ignore_preview=True).convert("RGB"), dtype=np.float64) / 255.0


def expected_boxes(scene: Scene, scale: float) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) per primitive: its screen box rounded out and clipped."""
    height, width = scene.canvas_size(scale)
    boxes = screen_bounds(scene.scaled_params(scale), scene.bank).double().numpy()
    out = []
    for x0, y0, x1, y1 in boxes:
        left, top = max(0, math.floor(x0)), max(0, math.floor(y0))
        right, bottom = min(width, math.ceil(x1)), min(height, math.ceil(y1))
        out.append((left, top, right, bottom) if right > left and bottom > top else (0, 0, 0, 0))
    return out


def test_one_layer_per_primitive_in_painting_order(bank, tmp_path):
    scene = make_scene(bank, 40)
    path = write_psd(scene, tmp_path / "scene.psd")
    psd = PSDImage.open(path)
    layers = list(psd)
    assert psd.size == (scene.width, scene.height) and psd.depth == 8 and psd.channels == 3
    assert len(layers) == len(scene) + 1
    assert layers[0].name == "background" and layers[0].bbox == (0, 0, scene.width, scene.height)
    names = [bank[int(k)].name for k in scene.shape_ids]
    opacities = torch.sigmoid(scene.opacity_logits).double().numpy()
    for n, (layer, box) in enumerate(zip(layers[1:], expected_boxes(scene, 1.0))):
        assert layer.kind == "pixel" and layer.name == f"{n:04d} {names[n]}"  # bottom to top = painting order
        assert layer.blend_mode.name == "NORMAL"
        assert layer.opacity == round(opacities[n] * 255)
        if box == (0, 0, 0, 0):
            assert layer.width == 0 and layer.height == 0
        else:
            assert (layer.left, layer.top, layer.right, layer.bottom) == box
    assert layers[-1].width == 0  # the primitive placed off the canvas


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_psd_tools_composite_matches_render(bank, tmp_path, scale):
    scene = make_scene(bank, 60, seed=1)
    path = export(scene, tmp_path / "scene.psd", scale=scale)
    psd = PSDImage.open(path)
    reference = scene.render(scale)[0].numpy()
    assert psd.size == (int(round(scene.width * scale)), int(round(scene.height * scale)))
    # Differences: 8-bit colour, alpha and opacity per layer, and the 0.99 alpha clamp where
    # a layer's rounded opacity times its alpha differs slightly from min(o * cov, 0.99).
    assert psnr(composited(psd), reference) >= 35.0
    merged = np.asarray(psd.topil().convert("RGB"), dtype=np.float64) / 255.0  # the stored merged image
    assert psnr(merged, reference) >= 45.0


def test_groups_split_many_layers(bank, tmp_path):
    scene = make_scene(bank, 25, seed=2)
    psd = PSDImage.open(write_psd(scene, tmp_path / "grouped.psd", group_size=10))
    top = list(psd)
    assert [layer.name for layer in top] == ["background", "primitives 0000-0009", "primitives 0010-0019", "primitives 0020-0024"]
    assert all(layer.kind == "group" for layer in top[1:])
    inner = [layer.name for group in top[1:] for layer in group]
    assert inner == [f"{n:04d} {bank[int(k)].name}" for n, k in enumerate(scene.shape_ids)]
    assert psnr(composited(psd), scene.render()[0].numpy()) >= 35.0


def test_no_groups_when_few_primitives_or_disabled(bank):
    scene = make_scene(bank, 12, seed=3)
    for group_size in (0, 12, 500):
        document = build_psd(scene, group_size=group_size)
        assert document.layer_and_mask_information.layer_info.layer_count == 13


def test_upscaled_export_uses_sharper_bitmaps(bank, tmp_path):
    scene = make_scene(bank, 15, seed=4)
    path = export(scene, tmp_path / "big.psd", scale=3, texture_size=96)
    psd = PSDImage.open(path)
    assert psd.size == (scene.width * 3, scene.height * 3)
    sharper = scene.bank.rebuilt(96)
    assert max(e.rgba.shape[1] for e in sharper if e.rgba is not None) == 96
    reference = scene.render(3, bank=sharper)[0].numpy()
    assert psnr(composited(psd), reference) >= 35.0


def test_empty_scene_is_just_the_background(bank, tmp_path):
    scene = Scene.empty(bank, 20, 30, background=BACKGROUND)
    psd = PSDImage.open(write_psd(scene, tmp_path / "empty.psd"))
    assert [layer.name for layer in psd] == ["background"]
    assert np.allclose(composited(psd)[5, 5], BACKGROUND, atol=1 / 255)


def test_bad_options_and_oversized_documents(bank, tmp_path):
    scene = make_scene(bank, 3, seed=5)
    with pytest.raises(InputError, match="group_size"):
        build_psd(scene, group_size=-1)
    with pytest.raises(InputError, match="at most"):
        build_psd(scene, scale=400)  # 38400 px: beyond what a PSD holds
    assert not list(tmp_path.iterdir())
