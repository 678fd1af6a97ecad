"""SVG export, rendered by independent SVG renderers (cairosvg, resvg) and compared with ours."""

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
from diffbmp.constants import ALPHA_MAX
from diffbmp.exports import export
from diffbmp.exports.svg import blend_opacities, svg_document
from diffbmp.exports.textures import bank_for_scale
from diffbmp.scene import Scene

cairosvg = pytest.importorskip("cairosvg")
resvg_py = pytest.importorskip("resvg_py")

SHAPES = ["circle", "gaussian", "disc", "star", "brush_flat"]
CIRCLE, GAUSSIAN, DISC, STAR, BRUSH = range(5)


@pytest.fixture(scope="module")
def bank() -> TextureBank:
    return TextureBank.from_names(SHAPES, texture_size=64)


def make_scene(bank, shapes, beta, n=120, seed=0, height=80, width=112, scale_range=(3.0, 12.0)) -> Scene:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    ids = torch.tensor(shapes)[torch.randint(0, len(shapes), (n,), generator=g)]
    low, high = scale_range
    scales = low + rand(n, 2) * (high - low)
    aspect = torch.tensor([bank[int(k)].aspect for k in ids])
    scales[:, 0] = torch.where(ids == BRUSH, scales[:, 1] * aspect, scales[:, 0])
    params = PrimitiveParams(
        means=rand(n, 2) * torch.tensor([width + 20.0, height + 20.0]) - 10.0,
        rotations=(rand(n) * 2 - 1) * math.pi,
        scales=scales,
        colors=rand(n, 3),
        opacities=0.3 + 0.7 * rand(n),
        shape_ids=ids,
        beta=rand(n) if beta is None else torch.full((n,), float(beta)),
    )
    return Scene.from_params(params, bank, height, width, background=(0.2, 0.3, 0.4))


def psnr(a, b) -> float:
    return 10 * math.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def rasterize(svg: str, renderer: str) -> np.ndarray:
    if renderer == "cairosvg":
        png = cairosvg.svg2png(bytestring=svg.encode("utf-8"))
    else:
        png = resvg_py.svg_to_bytes(svg_string=svg)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float64) / 255.0


SCENES = {
    "stamps_beta0": ([DISC, STAR], 0.0),
    "stamps_beta1": ([DISC, STAR], 1.0),
    "stamps_blend": ([DISC, STAR], None),
    "circles": ([CIRCLE], None),
    "gaussians": ([GAUSSIAN], None),
    "brush_strokes": ([BRUSH], None),
}


@pytest.mark.parametrize("renderer", ["cairosvg", "resvg"])
@pytest.mark.parametrize("scale", [1.0, 2.0])
@pytest.mark.parametrize("kind", sorted(SCENES))
def test_independent_renderers_match_our_render(bank, kind, scale, renderer):
    shapes, beta = SCENES[kind]
    scene = make_scene(bank, shapes, beta, seed=len(kind))
    # The scene's own bitmaps (texture_size=0), so that our render draws the same ones.
    svg = svg_document(scene, scale, texture_size=0)
    ours = scene.render(scale)[0].numpy()
    theirs = rasterize(svg, renderer)
    assert theirs.shape == ours.shape
    assert psnr(theirs, ours) >= 30.0


@pytest.mark.parametrize("renderer", ["cairosvg", "resvg"])
def test_soft_edges_at_a_fitted_blur(bank, renderer):
    # Circles and Gaussians carry their blurred profile as gradients, which every renderer
    # draws; bitmaps are blurred by a filter, which cairosvg ignores, so only resvg gets them.
    shapes = [CIRCLE, GAUSSIAN] if renderer == "cairosvg" else list(range(5))
    scene = make_scene(bank, shapes, None, seed=11)
    svg = svg_document(scene, 2.0, blur=1.5, texture_size=0)
    assert "radialGradient" in svg and (renderer == "cairosvg" or "feGaussianBlur" in svg)
    ours = scene.render(2.0, blur=1.5)[0].numpy()
    assert psnr(rasterize(svg, renderer), ours) >= 30.0


def test_each_bitmap_is_stored_once(bank):
    small = make_scene(bank, [DISC, STAR, BRUSH], None, n=100, seed=3)
    large = make_scene(bank, [DISC, STAR, BRUSH], None, n=400, seed=3)
    svg_small = svg_document(small, mipmaps=False)
    svg_large = svg_document(large, mipmaps=False)
    # The built-in bitmaps are white stencils: one image each serves both the tint mask and
    # the own-colour layer.
    assert svg_small.count("data:image/png;base64,") == 3
    assert svg_large.count("data:image/png;base64,") == 3
    assert len(re.findall(r'<mask id="mask\d+_0"', svg_large)) == 3
    per_primitive = (len(svg_large) - len(svg_small)) / 300
    assert per_primitive < 600  # bytes: primitives are references, not copies
    # A coloured bitmap gets a separate white stencil for tinting.
    coloured = TextureBank()
    coloured.add_texture("swatch", torch.rand(8, 8, 4).clamp(0.2, 1.0))
    scene = Scene.from_params(
        PrimitiveParams(torch.tensor([[8.0, 8.0]]), torch.zeros(1), torch.full((1, 2), 5.0), torch.rand(1, 3), torch.ones(1), torch.zeros(1, dtype=torch.long), torch.full((1,), 0.5)),
        coloured, 16, 16,
    )
    assert svg_document(scene).count("data:image/png;base64,") == 2


def test_mip_levels_only_for_minified_bitmaps(bank):
    scene = make_scene(bank, [DISC], 0.0, n=30, seed=4, scale_range=(2.0, 3.0))
    svg = svg_document(scene)
    assert 'id="tex2_0"' not in svg and re.search(r'id="tex2_[1-9]"', svg)
    assert svg_document(scene, 16.0).count("data:image/png") == 1


def test_large_exports_embed_sharper_bitmaps(bank):
    scene = make_scene(bank, [BRUSH], 1.0, n=5, seed=6)
    widest = float(torch.exp(scene.log_scales).max()) * 2 * 4  # px at scale 4
    sharper = bank_for_scale(scene, 4.0)
    assert sharper is not scene.bank and sharper[BRUSH].rgba.shape[1] >= min(widest, 1024)
    svg = svg_document(scene, 4.0, mipmaps=False)
    data = re.search(r'id="tex4_0"[^>]*base64,([^"]+)"', svg).group(1)
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


@pytest.mark.parametrize("opacity", [0.3, 0.8, 1.0])
@pytest.mark.parametrize("beta", [0.0, 0.25, 0.6, 1.0])
def test_two_layer_blend_is_exact_on_opaque_texels(opacity, beta):
    bottom, top = blend_opacities(opacity, beta)
    rng = np.random.default_rng(0)
    backdrop, tint, own = rng.random((3, 3))
    a = min(opacity, ALPHA_MAX)
    model = ((1 - beta) * tint + beta * own) * a + backdrop * (1 - a)
    stacked = own * top + (tint * bottom + backdrop * (1 - bottom)) * (1 - top)
    assert np.allclose(stacked, model, atol=1e-12)
