"""Layered PSD export: read back with psd-tools, layer by layer and composited: whole layers
beyond the canvas, names, groups by stage, shape and index, transparency, colour profile and
resolution, subsets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from psd_tools import PSDImage

from psd_tools.constants import Resource

from diffbmp import InputError, PrimitiveParams, TextureBank
from diffbmp.bounds import screen_bounds
from diffbmp.colour import srgb_icc_profile
from diffbmp.exports import export
from diffbmp.exports.groups import merge_by_key
from diffbmp.exports.layers import LAYER_MARGIN, footprint_boxes, layer_boxes, render_layers
from diffbmp.exports.psd import build_psd, write_psd
from diffbmp.exports.textures import hex_color
from diffbmp.scene import Scene

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SHAPES = ["circle", "gaussian", "disc", "star", "brush_flat"]
BACKGROUND = (0.15, 0.35, 0.55)


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    # One bank for the module: its texture pyramid is built once.
    return TextureBank.from_names(SHAPES, texture_size=48)


def make_scene(bank: TextureBank, n: int, seed: int = 0, height: int = 72, width: int = 96, stages=None) -> Scene:
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
    return Scene.from_params(params, bank, height, width, background=BACKGROUND, stages=stages)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return 10 * math.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def composited(psd: PSDImage) -> np.ndarray:
    # ignore_preview: psd-tools composites the pixel layers itself instead of returning the
    # merged image stored in the file.
    return np.asarray(psd.composite(ignore_preview=True).convert("RGB"), dtype=np.float64) / 255.0


def expected_boxes(scene: Scene, scale: float) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) per primitive: its screen box rounded out, not clipped to
    the canvas, only to the canvas widened by LAYER_MARGIN on each side."""
    height, width = scene.canvas_size(scale)
    mx, my = math.ceil(LAYER_MARGIN * width), math.ceil(LAYER_MARGIN * height)
    boxes = screen_bounds(scene.scaled_params(scale), scene.bank).double().numpy()
    out = []
    for x0, y0, x1, y1 in boxes:
        left, top = max(-mx, math.floor(x0)), max(-my, math.floor(y0))
        right, bottom = min(width + mx, math.ceil(x1)), min(height + my, math.ceil(y1))
        out.append((left, top, right, bottom) if right > left and bottom > top else (0, 0, 0, 0))
    return out


def painted_hex(scene: Scene, n: int) -> str:
    """The colour a layer name shows, for a primitive with beta = 0 (its tint) or an analytic
    shape (the tint blended towards white)."""
    params = scene.params()
    beta = float(params.beta[n])
    assert beta == 0 or scene.bank[int(scene.shape_ids[n])].rgba is None
    return hex_color((1 - beta) * params.colors[n].double() + beta)


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
    beyond = 0
    for n, (layer, box) in enumerate(zip(layers[1:], expected_boxes(scene, 1.0))):
        assert layer.kind == "pixel" and layer.name.startswith(f"{n:04d} {names[n]} #")  # bottom to top = painting order
        if float(scene.params().beta[n]) == 0 or bank[int(scene.shape_ids[n])].rgba is None:
            assert layer.name == f"{n:04d} {names[n]} {painted_hex(scene, n)}"
        beyond += box != (0, 0, 0, 0) and (box[0] < 0 or box[1] < 0 or box[2] > scene.width or box[3] > scene.height)
        assert layer.blend_mode.name == "NORMAL"
        assert layer.opacity == round(opacities[n] * 255)
        if box == (0, 0, 0, 0):
            assert layer.width == 0 and layer.height == 0
        else:
            assert (layer.left, layer.top, layer.right, layer.bottom) == box
    assert layers[-1].width == 0  # the primitive placed far off the canvas
    assert beyond >= 5  # the scene has layers that reach beyond the canvas


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
    inner = [layer.name.rsplit(" ", 1)[0] for group in top[1:] for layer in group]
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


# ---------------------------------------------------------------- whole layers beyond the canvas
def one_primitive(bank: TextureBank, shape: str, centre, half, height=48, width=64, rotation=0.3, opacity=0.8) -> Scene:
    params = PrimitiveParams(
        means=torch.tensor([centre], dtype=torch.float32), rotations=torch.tensor([rotation]),
        scales=torch.tensor([half], dtype=torch.float32), colors=torch.tensor([[0.8, 0.3, 0.1]]),
        opacities=torch.tensor([opacity]), shape_ids=torch.tensor([SHAPES.index(shape)]), beta=torch.zeros(1),
    )
    return Scene.from_params(params, bank, height, width, background=BACKGROUND)


@pytest.mark.parametrize("shape", ["disc", "brush_flat"])
def test_layer_crossing_the_edge_keeps_its_whole_footprint(bank, tmp_path, shape):
    # Centred on the top-left corner: three quarters of the mark lie outside the canvas.
    scene = one_primitive(bank, shape, (2.0, 3.0), (14.0, 9.0))
    psd = PSDImage.open(write_psd(scene, tmp_path / "edge.psd"))
    layer = list(psd)[1]
    (box,) = expected_boxes(scene, 1.0)
    assert layer.bbox == box and box[0] < -8 and box[1] < -5  # negative offsets, read back
    rgba = layer.numpy()
    outside = rgba[: -box[1], :, 3]  # the rows above the canvas
    assert outside.max() > 0.5 and np.count_nonzero(outside) > 20
    # The layer is the primitive drawn alone on a canvas the size of its box, moved there.
    params = scene.params()
    params.means = params.means - torch.tensor([box[0], box[1]], dtype=torch.float32)
    params.opacities = torch.tensor([round(0.8 * 255) / 255])
    alone = Scene.from_params(params, bank, box[3] - box[1], box[2] - box[0])
    _, alpha = alone.render(background=False)
    assert np.abs(rgba[..., 3] - alpha.numpy() / params.opacities.item()).max() <= 1.5 / 255
    # Its canvas part still composites to our render.
    assert psnr(composited(psd), scene.render()[0].numpy()) >= 40.0


def test_giant_primitive_is_cut_at_the_margin(bank, tmp_path):
    height, width = 40, 60
    scene = one_primitive(bank, "circle", (30.0, 20.0), (600.0, 600.0), height, width)  # 20x the canvas
    psd = PSDImage.open(write_psd(scene, tmp_path / "giant.psd"))
    layer = list(psd)[1]
    mx, my = math.ceil(LAYER_MARGIN * width), math.ceil(LAYER_MARGIN * height)
    assert layer.bbox == (-mx, -my, width + mx, height + my)
    assert layer.numpy()[..., 3].min() > 0.5  # covered everywhere, margin included
    assert psnr(composited(psd), scene.render()[0].numpy()) >= 40.0


def test_layers_larger_than_a_page_are_drawn_in_bands(bank, monkeypatch):
    # Tiny atlas pages: most layers, and the giant one, are drawn alone in bands of rows.
    import diffbmp.exports.layers as layers_module

    scene = make_scene(bank, 30, seed=8).concat(one_primitive(bank, "star", (30.0, 20.0), (500.0, 400.0), 72, 96))
    params = scene.params()
    whole = render_layers(params, scene.bank, scene.height, scene.width)
    canvases, original = [], layers_module.composite

    def recording(params, bank, background, height, width, **options):
        canvases.append(height * width)
        return original(params, bank, background, height, width, **options)

    monkeypatch.setattr(layers_module, "composite", recording)
    banded = render_layers(params, scene.bank, scene.height, scene.width, page_pixels=300)
    assert max(canvases) < 192 * 144 and len(canvases) > 144  # the giant layer (192x144) went in bands
    assert whole[-1].box == (-48, -36, 144, 108)  # the margin: half the canvas on each side
    assert sum(layer.rgba.shape[0] * layer.rgba.shape[1] > 300 for layer in whole) >= 5
    for a, b in zip(whole, banded):
        assert a.box == b.box and a.opacity == b.opacity
        difference = np.abs(a.rgba.astype(int) - b.rgba.astype(int))
        assert difference[..., 3].max(initial=0) <= 1
        # Colour where it shows (nearly transparent pixels divide by a tiny alpha).
        assert difference[..., :3][a.rgba[..., 3] >= 32].max(initial=0) <= 1


def test_the_margin_is_capped_in_pixels(bank):
    full, _ = layer_boxes(one_primitive(bank, "circle", (0.0, 0.0), (1e5, 1e5)).params(), bank, 48, 64)
    assert footprint_boxes(full, 48, 64).tolist() == [[-32, -24, 96, 72]]
    assert footprint_boxes(full, 48, 64, max_margin=10).tolist() == [[-10, -10, 74, 58]]
    assert footprint_boxes(full, 20000, 30000).tolist() == [[-4096, -4096, 34096, 24096]]


# ---------------------------------------------------------------- names
def test_names_show_the_painted_colour(tmp_path):
    red = torch.zeros(8, 8, 4)
    red[..., 0], red[..., 3] = 1.0, 1.0
    red[:2, :, 3] = 0.0  # transparent texels do not count
    red[:2, :, 1] = 1.0
    bank = TextureBank()
    bank.add_analytic("circle")
    bank.add_texture("red_stamp", red)
    params = PrimitiveParams(
        means=torch.tensor([[10.0, 10.0], [20.0, 10.0], [30.0, 10.0], [10.0, 20.0]]),
        rotations=torch.zeros(4), scales=torch.full((4, 2), 4.0),
        colors=torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.2, 0.4, 0.6]]),
        opacities=torch.full((4,), 0.9), shape_ids=torch.tensor([1, 0, 1, 1]), beta=torch.tensor([0.0, 0.5, 1.0, 0.5]),
    )
    scene = Scene.from_params(params, bank, 32, 40)
    names = [layer.name for layer in PSDImage.open(write_psd(scene, tmp_path / "names.psd"))][1:]
    # A tinted stencil: its tint. A circle half-way to its own (white) colour: grey. A stamp
    # with its own colours: their average over its opaque texels. Half-way: the blend.
    assert names == ["0000 red_stamp #0000ff", "0001 circle #808080", "0002 red_stamp #ff0000", "0003 red_stamp #99334d"]


# ---------------------------------------------------------------- groups
def staged_scene(bank: TextureBank) -> Scene:
    stages = torch.tensor([0] * 10 + [1] * 8 + [2] * 7)
    return make_scene(bank, 25, seed=6, stages=stages)


def test_groups_by_stage(bank, tmp_path):
    scene = staged_scene(bank)
    psd = PSDImage.open(write_psd(scene, tmp_path / "stages.psd", group_size=6))
    top = list(psd)
    assert [layer.name for layer in top] == ["background", "stage 0 (0000-0009)", "stage 1 (0010-0017)", "stage 2 (0018-0024)"]
    # More layers than group_size: sub-groups inside the stage's group.
    assert [g.name for g in top[1]] == ["primitives 0000-0005", "primitives 0006-0009"]
    assert [g.name for g in top[2]] == ["primitives 0010-0015", "primitives 0016-0017"]
    assert [g.name for g in top[3]] == ["primitives 0018-0023", "primitives 0024-0024"]
    order = [layer.name[:4] for layer in psd.descendants() if layer.kind == "pixel"][1:]
    assert order == [f"{n:04d}" for n in range(25)]
    # group_size 0: the stage groups hold their layers directly.
    top = list(PSDImage.open(write_psd(scene, tmp_path / "flat.psd", group_size=0)))
    assert [len(list(group)) for group in top[1:]] == [10, 8, 7]


def test_groups_by_shape_keep_the_painting_order_where_marks_overlap(tmp_path):
    bank = TextureBank.from_names(["circle", "star"], texture_size=32)
    # Marks 0-5 alternate shapes on separate spots (free to regroup); 6 (circle) then covers
    # star 5, so it cannot move below it and opens a second circle group.
    centres = [[8.0, 8.0], [24.0, 8.0], [40.0, 8.0], [8.0, 26.0], [24.0, 26.0], [40.0, 26.0], [42.0, 28.0]]
    params = PrimitiveParams(
        means=torch.tensor(centres), rotations=torch.zeros(7), scales=torch.full((7, 2), 5.0),
        colors=torch.rand(7, 3, generator=torch.Generator().manual_seed(0)), opacities=torch.full((7,), 0.9),
        shape_ids=torch.tensor([0, 1, 0, 1, 0, 1, 0]), beta=torch.zeros(7),
    )
    scene = Scene.from_params(params, bank, 36, 52, background=BACKGROUND)
    psd = PSDImage.open(write_psd(scene, tmp_path / "shapes.psd", group_by="shape"))
    top = list(psd)
    assert [layer.name for layer in top] == ["background", "circle (3 layers)", "star (3 layers)", "circle (1 layer)"]
    assert [[layer.name[:4] for layer in group] for group in top[1:]] == [["0000", "0002", "0004"], ["0001", "0003", "0005"], ["0006"]]
    assert psnr(composited(psd), scene.render()[0].numpy()) >= 40.0


def test_merge_by_key_only_moves_layers_past_layers_they_do_not_overlap():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10], [5, 5, 15, 15], [25, 5, 35, 15], [0, 0, 0, 0]])
    # 2 (key a) overlaps 0 only, which is below it: it joins a's group. 3 (key b) overlaps 1
    # only: joins b's. The empty box 4 joins a's group across b's.
    assert merge_by_key(["a", "b", "a", "b", "a"], boxes) == [("a", [0, 2, 4]), ("b", [1, 3])]
    boxes[2] = [5, 5, 25, 15]  # now 2 also overlaps 1 (key b), painted before it
    assert merge_by_key(["a", "b", "a", "b", "a"], boxes) == [("a", [0]), ("b", [1, 3]), ("a", [2, 4])]


@pytest.mark.parametrize("group_by", ["stage", "shape", "none"])
@pytest.mark.parametrize("transparent", [False, True])
def test_psd_tools_composite_matches_render_for_every_grouping(bank, tmp_path, group_by, transparent):
    scene = staged_scene(bank)
    psd = PSDImage.open(write_psd(scene, tmp_path / "g.psd", group_by=group_by, group_size=4, transparent=transparent))
    assert sum(layer.kind == "group" for layer in psd.descendants()) >= 3
    assert sorted(layer.name[:4] for layer in psd.descendants() if layer.kind == "pixel" and layer.name != "background") == \
        [f"{n:04d}" for n in range(len(scene))]
    if not transparent:
        assert psnr(composited(psd), scene.render()[0].numpy()) >= 35.0
        # Grouping (and the reordering it needs) leaves the picture as the plain layer list has it.
        flat = PSDImage.open(write_psd(scene, tmp_path / "flat.psd", group_by="none", group_size=0))
        assert len(list(flat)) == len(scene) + 1
        assert np.abs(composited(psd) - composited(flat)).max() <= 1.01 / 255
        return
    # No background layer: the layers composite to our render over nothing (premultiplied).
    assert [layer.name for layer in psd][0] != "background" and psd.channels == 4
    colour, alpha = scene.render(background=False)
    image = np.asarray(psd.composite(ignore_preview=True).convert("RGBA"), dtype=np.float64) / 255.0
    assert psnr(image[..., 3], alpha.numpy()) >= 35.0
    assert psnr(image[..., :3] * image[..., 3:], colour.numpy()) >= 35.0
    # The stored merged image has the alpha too (psd-tools removes the white matte).
    merged = np.asarray(psd.topil(), dtype=np.float64) / 255.0
    assert merged.shape[2] == 4 and psnr(merged[..., 3], alpha.numpy()) >= 45.0
    assert psnr(merged[..., :3] * merged[..., 3:], colour.numpy()) >= 40.0


# ---------------------------------------------------------------- colour, resolution, subsets
@pytest.mark.parametrize("dpi", [72, 300.5])
def test_icc_profile_and_resolution(bank, tmp_path, dpi):
    scene = make_scene(bank, 3, seed=7)
    options = {} if dpi == 72 else {"dpi": dpi}
    psd = PSDImage.open(write_psd(scene, tmp_path / "res.psd", **options))
    assert psd.image_resources.get_data(Resource.ICC_PROFILE) == srgb_icc_profile()
    info = psd.image_resources.get_data(Resource.RESOLUTION_INFO)
    assert info.horizontal / 65536 == pytest.approx(dpi, abs=1e-4) and info.vertical == info.horizontal
    assert info.horizontal_unit == 1 and info.vertical_unit == 1  # pixels per inch
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(__import__("io").BytesIO(psd.image_resources.get_data(Resource.ICC_PROFILE)))
    assert "sRGB" in ImageCms.getProfileDescription(profile)


def test_subset_keeps_the_original_indices(bank, tmp_path):
    scene = staged_scene(bank)
    path = export(scene, tmp_path / "part.psd", select=["stage=1,2", "index=12-20"], group_by="stage")
    top = list(PSDImage.open(path))
    assert [layer.name for layer in top] == ["background", "stage 1 (0012-0017)", "stage 2 (0018-0020)"]
    inner = [layer.name.split(" ")[0] for group in top[1:] for layer in group]
    assert inner == [f"{n:04d}" for n in range(12, 21)]


def test_bad_grouping_transparency_and_dpi(bank):
    scene = make_scene(bank, 3, seed=5)
    with pytest.raises(InputError, match="group_by must be one of 'stage', 'shape', 'none'"):
        build_psd(scene, group_by="colour")
    with pytest.raises(InputError, match="dpi"):
        build_psd(scene, dpi=0)
    with pytest.raises(InputError, match="dpi"):
        build_psd(scene, dpi=70000)
    with pytest.raises(InputError, match="transparent"):
        build_psd(scene, transparent="yes")


def test_a_staged_fit_exports_a_group_per_stage(tmp_path):
    from diffbmp import fit

    result = fit("skimage:astronaut", ["circle", "star"], n=30, steps=6, size=32, quiet=True, prune={"every": 0},
                 stages={"count": 3, "until": 0.5})
    scene = result.scene
    assert scene.stages.tolist() == [0] * 10 + [1] * 10 + [2] * 10
    psd = PSDImage.open(write_psd(scene, tmp_path / "fit.psd"))
    assert [layer.name for layer in psd] == ["background", "stage 0 (0000-0009)", "stage 1 (0010-0019)", "stage 2 (0020-0029)"]
    assert psnr(composited(psd), scene.render()[0].numpy()) >= 35.0


# ----------------------------------------------------------------------------- large documents
def test_more_layers_than_a_psd_holds_is_refused_before_drawing(bank, tmp_path, monkeypatch):
    import diffbmp.exports.psd as psd

    scene = make_scene(bank, 40)
    monkeypatch.setattr(psd, "MAX_PSD_RECORDS", 40)  # 40 layers and the background are 41 records

    def never(*args, **kwargs):
        raise AssertionError("a layer was drawn")

    drawing = psd.iter_layers
    monkeypatch.setattr(psd, "iter_layers", never)
    with pytest.raises(InputError, match=r"40 primitives.*41 layers.*--select"):
        write_psd(scene, tmp_path / "big.psd", group_by="none", group_size=0)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(psd, "iter_layers", drawing)
    write_psd(scene, tmp_path / "fits.psd", group_by="none", group_size=0, transparent=True)  # 40 records: fits


def test_a_streamed_psd_leaves_nothing_beside_it_and_reads_back_whole(bank, tmp_path, monkeypatch):
    import diffbmp.exports.raster as raster

    scene = make_scene(bank, 60, seed=4)
    whole = write_psd(scene, tmp_path / "whole.psd", transparent=True)
    monkeypatch.setattr(raster, "BAND_PIXELS", scene.width * 5)  # the merged image in bands of 5 rows
    banded = write_psd(scene, tmp_path / "banded.psd", transparent=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["banded.psd", "whole.psd"]  # no spilled layer data left
    a, b = PSDImage.open(whole), PSDImage.open(banded)
    assert [layer.name for layer in a.descendants()] == [layer.name for layer in b.descendants()]
    for x, y in zip(a.descendants(), b.descendants()):
        if not x.is_group():
            assert np.array_equal(np.asarray(x.topil()), np.asarray(y.topil()))
    difference = np.abs(np.asarray(a.topil(), np.int64) - np.asarray(b.topil(), np.int64))
    assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_a_grouping_that_shatters_into_tiny_groups_gives_way_to_index_runs():
    from diffbmp.exports.groups import MANY_GROUPS, group_layers

    count = 4 * MANY_GROUPS
    boxes = np.tile(np.array([[0, 0, 10, 10]]), (count, 1))  # every layer overlaps every other
    alternating = [k % 2 for k in range(count)]  # two keys, interleaved: a group per layer
    tree = group_layers(alternating, boxes, list(range(count)), 100, lambda key, members: f"key {key}", 4)
    assert [node.name for node in tree] == ["primitives 0000-0099", "primitives 0100-0199", "primitives 0200-0255"]
    runs = [0] * (count // 2) + [1] * (count // 2)  # the same keys in two runs: two groups
    tree = group_layers(runs, boxes, list(range(count)), 0, lambda key, members: f"key {key}", 4)
    assert [node.name for node in tree] == ["key 0", "key 1"]
