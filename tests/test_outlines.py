"""Vector forms of bank entries (``diffbmp.primitives.outlines.vector_art``): glyph outlines
and SVG stamps drawn by resvg in the bitmap's texel box must match the entry's bitmap."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import resvg_py
import torch
from PIL import Image

from diffbmp.primitives import BankEntry, TextureBank
from diffbmp.primitives.loaders import CROP_MARGIN
from diffbmp.primitives.outlines import VectorArt, default_id_prefix, vector_art

SERIF = Path("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf")
SUPERSAMPLE = 4


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / max(float(np.mean((a - b) ** 2)), 1e-12)))


def _draw(art: VectorArt, width: int, height: int, samples: int = SUPERSAMPLE) -> np.ndarray:
    """Premultiplied RGBA of the markup in an SVG document of the bitmap's size, drawn by
    resvg ``samples`` times larger and averaged (area coverage, like the bank's bitmaps)."""
    body = art.markup if art.own_colours else f'<g fill="#ffffff">{art.markup}</g>'
    document = (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" '
                f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">{body}</svg>')
    png = resvg_py.svg_to_bytes(svg_string=document, width=width * samples)
    rgba = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"), dtype=np.float64) / 255.0
    assert rgba.shape[:2] == (height * samples, width * samples)
    rgba[..., :3] *= rgba[..., 3:4]
    return rgba.reshape(height, samples, width, samples, 4).mean(axis=(1, 3))


def _check_matches(entry: BankEntry, art: VectorArt, *, colour: bool) -> None:
    h, w = entry.rgba.shape[:2]
    assert (art.width, art.height) == (w, h)
    drawn = _draw(art, w, h)
    stored = entry.rgba.double().numpy()
    assert _psnr(drawn[..., 3], stored[..., 3]) > 35
    if colour:
        assert _psnr(drawn[..., :3], stored[..., :3] * stored[..., 3:4]) > 35


# ----------------------------------------------------------------------------- glyphs
GLYPHS = ["text:A", "text:Ag", "text:Hello, world", "text:ab\ncd"]
if SERIF.is_file():
    GLYPHS += ["text:Aa@DejaVu Serif", "text:fig@DejaVu Serif", "text:Two\nlines@DejaVu Serif"]


@pytest.mark.parametrize("spec", GLYPHS)
@pytest.mark.parametrize("size", [64, 128])
def test_glyph_outline_matches_its_bitmap(spec, size):
    bank = TextureBank.from_names([spec], texture_size=size)
    art = vector_art(bank[0])
    assert art is not None and art.own_colours is False
    assert re.fullmatch(r'<path d="M[-0-9. MLHVQTCZ]+Z"/>', art.markup), art.markup[:200]
    _check_matches(bank[0], art, colour=False)


def test_glyph_outline_of_a_rebuilt_bank_at_export_resolution():
    bank = TextureBank.from_names(["text:Qr@DejaVu Serif" if SERIF.is_file() else "text:Qr"], texture_size=48).rebuilt(512)
    art = vector_art(bank[0])
    assert max(art.width, art.height) == 512
    _check_matches(bank[0], art, colour=False)


def test_built_in_font_outline_is_pillows_font():
    # The built-in font is Pillow's embedded TrueType font: its outline, drawn, is what
    # Pillow draws (up to Pillow's hinting), not some other font's.
    from PIL import ImageDraw, ImageFont

    bank = TextureBank.from_names(["text:R"], texture_size=128)
    art = vector_art(bank[0])
    drawn = _draw(art, art.width, art.height)[..., 3]
    font = ImageFont.load_default(400)
    canvas = Image.new("L", (600, 600))
    ImageDraw.Draw(canvas).text((100, 50), "R", font=font, fill=255)
    pillow = np.asarray(canvas, dtype=np.float32) / 255.0
    ys, xs = np.nonzero(pillow > 1 / 255)
    pillow = pillow[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    margin = round(CROP_MARGIN * 128)
    inner = drawn[margin:-margin, margin:-margin]
    resized = np.asarray(Image.fromarray(pillow).resize(inner.shape[::-1], Image.Resampling.BOX))
    assert _psnr(inner, resized) > 25  # 31 dB here; another font (DejaVu Sans) gives 8 dB


# ----------------------------------------------------------------------------- SVG stamps
STAMP = """<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="240" height="160" viewBox="0 0 120 80">
  <defs>
    <linearGradient id="sky" x1="0" x2="1"><stop offset="0" stop-color="#ff2000"/><stop offset="1" stop-color="#0040ff"/></linearGradient>
    <style>.leaf { fill: #20a040 } rect { stroke: #101010; stroke-width: 1 }</style>
  </defs>
  <rect id="box" x="30" y="20" width="40" height="30" fill="url(#sky)"/>
  <circle class="leaf" cx="80" cy="45" r="12" opacity="0.8"/>
  <use xlink:href="#box" x="6" y="6" opacity="0.4"/>
</svg>"""


@pytest.fixture
def stamp_file(tmp_path) -> Path:
    path = tmp_path / "stamp.svg"
    path.write_text(STAMP)
    return path


@pytest.mark.parametrize("size", [64, 128, 200])
def test_svg_stamp_markup_matches_its_bitmap(stamp_file, size):
    bank = TextureBank.from_names([str(stamp_file)], texture_size=size)
    art = vector_art(bank[0])
    assert art is not None and art.own_colours is True
    assert art.markup.startswith('<g transform="matrix(')
    _check_matches(bank[0], art, colour=True)


def test_svg_stamp_ids_are_prefixed_and_references_follow(stamp_file):
    bank = TextureBank.from_names([str(stamp_file)], texture_size=64)
    art = vector_art(bank[0])
    prefix = default_id_prefix(bank[0])
    ids = re.findall(r'\sid="([^"]+)"', art.markup)
    assert ids and all(i.startswith(prefix) for i in ids)
    assert f'url(#{prefix}sky)' in art.markup and f'xlink:href="#{prefix}box"' in art.markup
    assert f'class="{prefix}leaf"' in art.markup and f".{prefix}leaf" in art.markup
    assert "<linearGradient" in art.markup and "<style>" in art.markup  # the document's defs are kept
    other = vector_art(bank[0], id_prefix="other-")
    assert not set(re.findall(r'\sid="([^"]+)"', other.markup)) & set(ids)
    # Two stamps in one document: each keeps its own gradient and styles.
    both = f"{art.markup}{other.markup}"
    drawn = _draw(VectorArt(both, True, art.width, art.height), art.width, art.height)
    single = _draw(art, art.width, art.height)
    alpha = single[..., 3:4]
    over = single + (1 - alpha) * single  # the same stamp drawn twice, source-over
    assert _psnr(drawn, over) > 35


def test_svg_stamp_crop_is_the_content_plus_margin(tmp_path):
    # One rectangle, 40 x 20 units at (20, 30) on a 100 x 100 page: the bitmap is the rectangle
    # scaled so its width fills the box less the margins, centred.
    path = tmp_path / "bar.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100">'
                    '<rect x="20" y="30" width="40" height="20" fill="#00f"/></svg>')
    rgba = TextureBank.from_names([str(path)], texture_size=128)[0].rgba.numpy()
    margin = round(CROP_MARGIN * 128)
    assert rgba.shape[:2] == (round(20 * (128 - 2 * margin) / 40) + 2 * margin, 128)
    cols = np.flatnonzero(rgba[..., 3].max(axis=0) > 0.5)
    rows = np.flatnonzero(rgba[..., 3].max(axis=1) > 0.5)
    assert (cols[0], 128 - cols[-1] - 1) == (margin, margin)
    assert (rows[0], rgba.shape[0] - rows[-1] - 1) == (margin, margin)
    assert rgba[rgba.shape[0] // 2, 64].tolist() == pytest.approx([0, 0, 1, 1], abs=1e-6)


# ----------------------------------------------------------------------------- no vector form
def test_no_vector_form_for_built_ins_analytic_shapes_and_raster_files(tmp_path):
    png = tmp_path / "dot.png"
    image = np.zeros((20, 20, 4), dtype=np.uint8)
    image[5:15, 5:15] = 255
    Image.fromarray(image).save(png)
    bank = TextureBank.from_names(["star", "circle", "gaussian", str(png)], texture_size=32)
    assert [vector_art(entry) for entry in bank] == [None, None, None, None]


def test_no_vector_form_when_the_source_is_gone_or_no_longer_fits(tmp_path, stamp_file):
    bank = TextureBank.from_names([str(stamp_file)], texture_size=64)
    stamp_file.unlink()
    assert vector_art(bank[0]) is None
    lost_font = BankEntry("text:Q@Gone", 0, torch.ones(40, 30, 4), "text:Q@Gone Sans|/gone/GoneSans.ttf")
    assert vector_art(lost_font) is None
    # A bitmap that the source does not make (another box): its outline would not fit it.
    other = BankEntry("text:Q", 0, torch.ones(10, 64, 4), "text:Q")
    assert vector_art(other) is None


def test_svg_stamp_images_are_inlined(tmp_path):
    # An <image> names a file beside the SVG: the markup carries its bytes, since the
    # exported document lives elsewhere.
    red = np.zeros((20, 30, 4), np.uint8)
    red[..., 0] = red[..., 3] = 255
    Image.fromarray(red).save(tmp_path / "red.png")
    path = tmp_path / "framed.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="100" height="100">'
                    '<image xlink:href="red.png" x="10" y="10" width="60" height="40"/>'
                    '<circle cx="70" cy="70" r="10" fill="#0000ff"/></svg>')
    bank = TextureBank.from_names([str(path)], texture_size=64)
    art = vector_art(bank[0])
    assert 'xlink:href="data:image/png;base64,' in art.markup and "red.png" not in art.markup
    _check_matches(bank[0], art, colour=True)
    assert bank[0].rgba[20, 20].tolist() == pytest.approx([1, 0, 0, 1], abs=1e-6)


def test_no_vector_form_for_a_bitmap_its_source_does_not_make(stamp_file):
    # A learned (or otherwise changed) bitmap of the right box: the outline would not draw it.
    bank = TextureBank.from_names(["text:Q", str(stamp_file)], texture_size=64)
    for entry in bank:
        assert vector_art(entry) is not None
        changed = BankEntry(entry.name, entry.kind, entry.rgba.flip(0).flip(1).contiguous(), entry.source)
        assert vector_art(changed) is None
        assert vector_art(changed, check=False) is not None  # the box alone still fits


@pytest.mark.skipif(not SERIF.is_file(), reason="DejaVu fonts are not installed")
def test_svg_stamp_with_text_is_drawn_with_the_installed_fonts(tmp_path):
    path = tmp_path / "label.svg"
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="120" height="60">'
                    '<text x="10" y="40" font-family="DejaVu Serif" font-size="30" fill="#c00000">Hi</text></svg>')
    bank = TextureBank.from_names([str(path)], texture_size=64)
    assert bank[0].rgba[..., 3].max() > 0.9 and bank[0].rgba.shape[1] == 64  # the word, cropped
    art = vector_art(bank[0])
    assert "<text" in art.markup
    h, w = bank[0].rgba.shape[:2]
    png = resvg_py.svg_to_bytes(svg_string=f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * 4}" height="{h * 4}" '
                                f'viewBox="0 0 {w} {h}">{art.markup}</svg>')
    drawn = np.asarray(Image.open(io.BytesIO(bytes(png))).convert("RGBA"), dtype=np.float64)[..., 3] / 255.0
    assert _psnr(drawn.reshape(h, 4, w, 4).mean(axis=(1, 3)), bank[0].rgba.double().numpy()[..., 3]) > 35
