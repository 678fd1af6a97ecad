"""SVG export, rendered by independent SVG renderers (resvg, librsvg's rsvg-convert, cairosvg)
and compared with our own render."""

from __future__ import annotations

import base64
import io
import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp import PrimitiveParams, TextureBank
from diffbmp.constants import KIND_TEXTURE, PIXEL_SIGMA
from diffbmp.errors import InputError
from diffbmp.exports import export
from diffbmp.exports.png import render_pixels
from diffbmp.exports.svg import svg_document
from diffbmp.exports.svg_bitmaps import choose_variants, model_variance, opaque_colours, outline_softening
from diffbmp.exports.textures import bank_for_scale
from diffbmp.fitting.shapes import primitive_specs
from diffbmp.scene import Scene
from svg_renderers import psnr, rasterize, require

SHAPES = ["circle", "gaussian", "disc", "star", "brush_flat"]
CIRCLE, GAUSSIAN, DISC, STAR, BRUSH = range(5)
#: The bar every scene meets in every renderer, against our PNG at the same size.
MIN_PSNR = 38.0


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    return TextureBank.from_names(SHAPES, texture_size=64)


def soft_stamp(size: int = 48) -> torch.Tensor:
    """A stamp with no opaque texel: a colour ramp under a soft radial alpha that peaks at 0.85."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    alpha = 0.85 * torch.exp(-2.5 * (x**2 + y**2)) * ((x**2 + y**2) < 1)
    colour = torch.stack([0.5 + 0.5 * x, 0.5 + 0.5 * y, 0.5 - 0.4 * x * y], dim=-1)
    return torch.cat([colour, alpha[..., None]], dim=-1)


@pytest.fixture(scope="module")
def stamps() -> TextureBank:
    """scikit-image's logo (no opaque texel) and a generated soft stamp: their own colours."""
    bank = TextureBank.from_names(primitive_specs(["skimage:logo"]), texture_size=64)
    bank.add_texture("soft", soft_stamp())
    return bank


@pytest.fixture(scope="module")
def glyphs() -> TextureBank:
    return TextureBank.from_names(["text:d", "text:f", "text:m"], texture_size=64)


def make_scene(bank, shapes, beta, n=60, seed=0, height=64, width=96, scale_range=(3.0, 12.0)) -> Scene:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    ids = torch.tensor(shapes)[torch.randint(0, len(shapes), (n,), generator=g)]
    low, high = scale_range
    scales = low + rand(n, 2) * (high - low)
    aspect = torch.tensor([bank[int(k)].aspect for k in ids])
    keep_aspect = torch.tensor([bank[int(k)].kind == KIND_TEXTURE for k in ids])  # bitmaps keep their own proportions
    scales[:, 0] = torch.where(keep_aspect, scales[:, 1] * aspect, scales[:, 0])
    params = PrimitiveParams(
        means=rand(n, 2) * torch.tensor([width + 10.0, height + 10.0]) - 5.0,
        rotations=(rand(n) * 2 - 1) * math.pi,
        scales=scales,
        colors=rand(n, 3),
        opacities=0.3 + 0.7 * rand(n),
        shape_ids=ids,
        beta=rand(n) if beta is None else torch.full((n,), float(beta)),
    )
    return Scene.from_params(params, bank, height, width, background=(0.2, 0.3, 0.4))


def ours(scene: Scene, scale: float, blur: float = 0.0) -> np.ndarray:
    return render_pixels(scene, scale, blur=blur) / 255.0


# name: (bank fixture, shape indices (None: all), beta (None: random), blur)
SCENES = {
    "circles_and_gaussians": ("bank", [CIRCLE, GAUSSIAN], None, 0.0),
    "brush_strokes": ("bank", [BRUSH], None, 0.0),
    "stamps_beta0": ("stamps", None, 0.0, 0.0),
    "stamps_beta0.5": ("stamps", None, 0.5, 0.0),
    "stamps_beta1": ("stamps", None, 1.0, 0.0),
    "every_kind_blurred": ("bank", None, None, 1.0),
}


@pytest.mark.parametrize("renderer", ["resvg", "rsvg", "cairosvg"])
@pytest.mark.parametrize("scale", [1.0, 4.0])
@pytest.mark.parametrize("kind", list(SCENES))
def test_independent_renderers_match_our_render(request, one_thread, kind, scale, renderer):
    require(renderer)
    fixture, shapes, beta, blur = SCENES[kind]
    shape_bank = request.getfixturevalue(fixture)
    shapes = list(range(len(shape_bank))) if shapes is None else shapes
    scene = make_scene(shape_bank, shapes, beta, n=60 if scale == 1 else 30, seed=len(kind))
    svg = svg_document(scene, scale, blur=blur)
    assert "<filter" not in svg  # soft edges are gradients and pre-blurred images
    theirs = rasterize(svg, renderer)
    reference = ours(scene, scale, blur)
    assert theirs.shape == reference.shape
    assert psnr(theirs, reference) >= MIN_PSNR


@pytest.mark.parametrize("renderer", ["resvg", "rsvg"])
@pytest.mark.parametrize("beta", [0.25, 0.6])
@pytest.mark.parametrize("opacity", [0.35, 0.9])
def test_blend_is_exact_on_partially_transparent_texels(stamps, one_thread, renderer, beta, opacity):
    # One large soft stamp (no opaque texel) over a backdrop of circles: a blend stacked from
    # two layers of constant opacity is off there by up to 30 %; the masked group is exact.
    require(renderer)
    circles = TextureBank.from_names(["circle"])
    bank = TextureBank([circles[0], stamps[1]])
    params = PrimitiveParams(
        means=torch.tensor([[20.0, 20.0], [44.0, 30.0], [32.0, 24.0]]),
        rotations=torch.tensor([0.0, 0.0, 0.4]),
        scales=torch.tensor([[14.0, 14.0], [14.0, 12.0], [22.0, 20.0]]),
        colors=torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.9, 0.2], [0.1, 0.2, 0.9]]),
        opacities=torch.tensor([1.0, 1.0, opacity]),
        shape_ids=torch.tensor([0, 0, 1]),
        beta=torch.tensor([0.0, 0.0, beta]),
    )
    scene = Scene.from_params(params, bank, 48, 64, background=(1.0, 1.0, 1.0))
    svg = svg_document(scene, 2.0)
    assert 'id="opaque1_' in svg
    assert psnr(rasterize(svg, renderer), ours(scene, 2.0)) >= 44.0


@pytest.mark.parametrize("renderer", ["resvg", "rsvg", "cairosvg"])
@pytest.mark.parametrize("scale", [1.0, 4.0])
def test_glyphs_are_outlines(glyphs, one_thread, scale, renderer):
    require(renderer)
    scene = make_scene(glyphs, [0, 1, 2], None, n=30 if scale == 1 else 20, seed=7, scale_range=(5.0, 14.0))
    svg = svg_document(scene, scale)
    # Each glyph's outline is stored once as a <path>, and no bitmap is embedded.
    assert len(re.findall(r'<g id="vec\d" transform="[^"]+"><path d="M', svg)) == 3
    assert "data:image/png" not in svg
    plain = re.findall(r'<use id="p\d{4}-text_[dfm]" xlink:href="#vec\d"', svg)
    softened = re.findall(r'<g id="p\d{4}-text_[dfm]" filter="url\(#soft\d+\)"><use xlink:href="#vec\d"', svg)
    assert len(plain) + len(softened) == len(scene)
    if scale == 1:
        # At a few texels per pixel the model draws a glyph softer than a viewer's antialiasing
        # of its outline: the outline carries the difference as a blur.
        assert len(softened) > len(scene) // 2
    assert psnr(rasterize(svg, renderer), ours(scene, scale)) >= MIN_PSNR


def test_outline_softening_follows_the_models_texture_filter():
    # The model draws a bitmap through its own one-texel box, then its texture filter at the
    # pixel prefilter (a level blend, model_variance); the viewer adds its one-pixel box.
    deviations = outline_softening(64, np.array([8.0, 64.0, 256.0, 4096.0]))
    per_px = 64 / np.array([8.0, 64.0, 256.0])
    expected = np.sqrt(1 / 12 + model_variance(PIXEL_SIGMA * per_px, 64) - (PIXEL_SIGMA * per_px) ** 2)
    assert deviations[:3] == pytest.approx(expected)
    # Magnified 64 times: the bitmap's box and its bilinear interpolation, half a texel.
    assert deviations[3] == pytest.approx(math.sqrt(1 / 12 + 1 / 6), abs=1e-4)  # less the viewer's 1/64-texel box


def test_glyph_bitmaps_when_asked(glyphs):
    scene = make_scene(glyphs, [0, 1, 2], 0.0, n=10, seed=7, scale_range=(5.0, 14.0))
    svg = svg_document(scene, vectors=False)
    assert "<path" not in svg and svg.count("data:image/png") >= 3
    # At a blur glyphs are drawn from pre-blurred bitmaps, which every viewer draws soft.
    blurred = svg_document(scene, blur=1.0)
    assert "<path" not in blurred and "data:image/png" in blurred


@pytest.mark.parametrize("renderer", ["resvg", "rsvg"])
def test_svg_stamps_keep_their_drawing(tmp_path, one_thread, renderer):
    require(renderer)
    drawing = tmp_path / "flower.svg"
    drawing.write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30" viewBox="0 0 40 30">'
        '<ellipse cx="20" cy="15" rx="18" ry="12" fill="#d04020" fill-opacity="0.7"/>'
        '<rect x="12" y="8" width="16" height="14" fill="#2060c0"/><circle cx="20" cy="15" r="4" fill="#ffe000"/></svg>'
    )
    bank = TextureBank.from_names([str(drawing)], texture_size=64)
    scene = make_scene(bank, [0], 1.0, n=20, seed=2, scale_range=(5.0, 14.0))
    svg = svg_document(scene, 2.0)
    assert '<g id="vec0"' in svg and "<ellipse" in svg and "data:image/png" not in svg
    assert psnr(rasterize(svg, renderer), ours(scene, 2.0)) >= MIN_PSNR
    # In their own colours only: a tinted or blended drawing is drawn from its bitmap.
    blended = svg_document(make_scene(bank, [0], 0.5, n=5, seed=2), 2.0)
    assert '<g id="vec0"' not in blended and 'id="opaque0_' in blended


def test_soft_circles_use_gradients_in_user_space(bank):
    scene = make_scene(bank, [CIRCLE, GAUSSIAN], None, n=20, seed=11)
    svg = svg_document(scene, 2.0, blur=1.5)
    gradients = re.findall(r"<radialGradient [^>]*>", svg)
    assert len(gradients) == 20
    # objectBoundingBox gradients are stretched over the box of a rotated ellipse by librsvg.
    assert all('gradientUnits="userSpaceOnUse"' in g and 'gradientTransform="scale(' in g for g in gradients)


def test_blurred_copies_are_shared_and_scale_with_the_primitive():
    # Primitives of one bitmap at similar sizes share a blurred copy; a blur is isotropic on
    # screen, so the copy of a primitive twice as wide is blurred half as much along x.
    variants = choose_variants(64, 64, np.array([10.0, 10.2, 20.0]), np.array([10.0, 10.2, 10.0]), 1.0, 1.0, True)
    assert variants[0] == variants[1] != variants[2]
    assert variants[2].blur_x == variants[0].blur_x - 4 and variants[2].blur_y == variants[0].blur_y
    # A long thin stroke is halved along its length only (the model's rip-map does the same).
    (stroke,) = choose_variants(256, 64, np.array([16.0]), np.array([16.0]), 1.0, 0.0, True)
    assert (stroke.halve_x, stroke.halve_y) == (3, 1) and stroke.blur_x is None


def test_opaque_colours_reach_across_the_edge():
    pixels = np.zeros((6, 6, 4), np.uint8)
    pixels[2:4, 2:4] = (200, 40, 10, 128)
    colours = opaque_colours(pixels)
    assert colours.shape == (6, 6, 3)
    assert (colours == (200, 40, 10)).all()


def test_each_bitmap_is_stored_once(bank):
    small = make_scene(bank, [DISC, STAR, BRUSH], None, n=100, seed=3)
    large = make_scene(bank, [DISC, STAR, BRUSH], None, n=400, seed=3)
    svg_small = svg_document(small, mipmaps=False)
    svg_large = svg_document(large, mipmaps=False)
    # The built-in bitmaps are white stencils: one image each serves the tint mask and the
    # own-colour layer; primitives with a blend share one opaque copy of each.
    assert svg_small.count("data:image/png;base64,") == 6
    assert svg_large.count("data:image/png;base64,") == 6
    assert len(re.findall(r'<mask id="mask\d+_0_0"', svg_large)) == 3
    per_primitive = (len(svg_large) - len(svg_small)) / 300
    assert per_primitive < 600  # bytes: primitives are references, not copies
    # A coloured bitmap gets a separate white stencil for tinting.
    coloured = TextureBank()
    coloured.add_texture("swatch", torch.rand(8, 8, 4).clamp(0.2, 1.0))
    scene = Scene.from_params(
        PrimitiveParams(torch.tensor([[8.0, 8.0]]), torch.zeros(1), torch.full((1, 2), 5.0), torch.rand(1, 3), torch.ones(1), torch.zeros(1, dtype=torch.long), torch.full((1,), 0.5)),
        coloured, 16, 16,
    )
    svg = svg_document(scene)
    assert svg.count("data:image/png;base64,") == 2 and 'id="stencil0_' in svg and 'id="opaque0_' in svg


def test_mip_levels_only_for_minified_bitmaps(bank):
    scene = make_scene(bank, [DISC], 0.0, n=30, seed=4, scale_range=(2.0, 3.0))
    svg = svg_document(scene)
    assert 'id="tex2_0_0"' not in svg and re.search(r'id="tex2_[1-9]_[1-9]"', svg)
    assert svg_document(scene, 16.0).count("data:image/png") == 1


def test_large_exports_embed_sharper_bitmaps(bank):
    scene = make_scene(bank, [BRUSH], 1.0, n=5, seed=6)
    widest = float(torch.exp(scene.log_scales).max()) * 2 * 4  # px at scale 4
    sharper = bank_for_scale(scene, 4.0)
    assert sharper is not scene.bank and sharper[BRUSH].rgba.shape[1] >= min(widest, 1024)
    svg = svg_document(scene, 4.0, mipmaps=False)
    data = re.search(r'id="tex4_0_0"[^>]*base64,([^"]+)"', svg).group(1)
    width = Image.open(io.BytesIO(base64.b64decode(data))).size[0]
    assert width == sharper[BRUSH].rgba.shape[1] > bank[BRUSH].rgba.shape[1]


def test_document_size_viewbox_and_background(bank, tmp_path):
    scene = make_scene(bank, [CIRCLE, DISC], None, n=10, seed=5)
    path = export(scene, tmp_path / "out.svg", scale=2.5)
    text = path.read_text()
    assert f'width="{scene.width * 5 // 2}" height="{scene.height * 5 // 2}"' in text
    assert f'viewBox="0 0 {scene.width} {scene.height}"' in text
    assert 'id="background"' in text and 'fill="#334d66"' in text
    assert 'id="background"' not in svg_document(scene, transparent=True)
    ids = re.findall(r'id="(p\d{4}-[a-z_]+)"', text)
    assert ids == [f"p{n:04d}-{bank[int(k)].name}" for n, k in enumerate(scene.shape_ids)]  # painting order


def test_bad_options_are_refused(bank):
    scene = make_scene(bank, [CIRCLE], None, n=2)
    with pytest.raises(InputError, match="vectors"):
        svg_document(scene, vectors="no")
    with pytest.raises(InputError, match="mipmaps"):
        svg_document(scene, mipmaps=None)
