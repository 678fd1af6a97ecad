"""Tests of the bitmap loaders (diffbmp.primitives.loaders). Fixtures are made in tmp_path."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from diffbmp import TextureBank
from diffbmp.errors import InputError
from diffbmp.primitives.loaders import load_image_rgba, load_svg_rgba, render_text_rgba, white_to_alpha


def _check_rgba(rgba: np.ndarray) -> None:
    assert isinstance(rgba, np.ndarray) and rgba.dtype == np.float32
    assert rgba.ndim == 3 and rgba.shape[2] == 4 and rgba.shape[0] > 0 and rgba.shape[1] > 0
    assert np.isfinite(rgba).all() and rgba.min() >= 0.0 and rgba.max() <= 1.0


def _black_disc_on_white(h: int = 120, w: int = 160) -> np.ndarray:
    img = np.full((h, w, 3), 255, np.uint8)
    cv2.circle(img, (w // 2, h // 2), min(h, w) // 3, (0, 0, 0), -1, cv2.LINE_AA)
    # A grey, coloured patch too, to check un-mixing of colour from white.
    cv2.rectangle(img, (10, 10), (30, 25), (200, 120, 40), -1)
    return img


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


def _assert_composites_back(rgba: np.ndarray, original: np.ndarray, tol: float = 2.0 / 255.0) -> None:
    """Composite ``rgba`` over white and compare to ``original`` (uint8 RGB) at the crop."""
    orig = original.astype(np.float64) / 255.0
    # Locate the crop: the visible box of the result sits on the original's non-white box.
    oy0, _, ox0, _ = _bbox(1.0 - orig.min(axis=-1) >= tol)
    ry0, _, rx0, _ = _bbox(rgba[..., 3] > 0)
    dy, dx = oy0 - ry0, ox0 - rx0  # result texel (i, j) shows original pixel (i + dy, j + dx)
    h, w = rgba.shape[:2]
    a = rgba[..., 3:4].astype(np.float64)
    over_white = a * rgba[..., :3] + (1.0 - a)
    # Texels padded beyond the original image must be transparent ...
    inside = np.zeros((h, w), bool)
    inside[max(0, -dy):min(h, orig.shape[0] - dy), max(0, -dx):min(w, orig.shape[1] - dx)] = True
    assert (rgba[~inside, 3] == 0).all()
    # ... and the rest composites back to the original.
    rows = slice(max(0, -dy), min(h, orig.shape[0] - dy))
    cols = slice(max(0, -dx), min(w, orig.shape[1] - dx))
    window = orig[rows.start + dy:rows.stop + dy, cols.start + dx:cols.stop + dx]
    assert np.abs(over_white[rows, cols] - window).max() <= tol + 1e-6


# ----------------------------------------------------------------------------- white_to_alpha
def test_white_to_alpha_inverts_exactly():
    rng = np.random.default_rng(0)
    rgb = rng.uniform(size=(50, 50, 3))
    rgba = white_to_alpha(rgb, tolerance=0.0)
    a = rgba[..., 3:4].astype(np.float64)
    assert np.abs(a * rgba[..., :3] + (1 - a) - rgb).max() < 1e-5
    # White becomes transparent, black opaque, mid grey half transparent black.
    out = white_to_alpha(np.array([[[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.995, 1.0, 1.0]]]))
    assert out[0, 0, 3] == 0.0 and out[0, 0, :3].tolist() == [1.0, 1.0, 1.0]
    assert out[0, 1].tolist() == [0.0, 0.0, 0.0, 1.0]
    assert out[0, 2, 3] == pytest.approx(0.5) and out[0, 2, :3] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert out[0, 3, 3] == 0.0  # within the tolerance of white


# ----------------------------------------------------------------------------- load_image_rgba
def test_rgba_png_keeps_alpha(tmp_path):
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[16:48, 16:48] = (255, 0, 0, 255)
    rgba[16:48, 16:32, 3] = 128  # half-transparent left half
    path = tmp_path / "stamp.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image_rgba(path)
    _check_rgba(out)
    # Cropped to the 32x32 square plus a small margin.
    assert 32 <= out.shape[0] <= 36 and 32 <= out.shape[1] <= 36
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0)
    assert (y1 - y0, x1 - x0) == (32, 32)
    assert y0 >= 1 and x0 >= 1 and out.shape[0] - y1 >= 1
    square = out[y0:y1, x0:x1]
    assert np.allclose(square[..., :3], [1.0, 0.0, 0.0], atol=1e-6)
    assert np.allclose(square[:, :16, 3], 128 / 255, atol=1e-6)
    assert np.allclose(square[:, 16:, 3], 1.0)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_black_on_white_becomes_transparent(tmp_path, suffix):
    path = tmp_path / f"scan{suffix}"
    Image.fromarray(_black_disc_on_white()).save(path, quality=95)
    original = np.asarray(Image.open(path).convert("RGB"))
    out = load_image_rgba(path)
    _check_rgba(out)
    alpha = out[..., 3]
    h, w = alpha.shape
    # Centre of the disc opaque and dark; corners (white paper) transparent.
    assert alpha[h // 2 + 10, w // 2 + 10] > 0.95 and out[h // 2 + 10, w // 2 + 10, :3].max() < 0.05
    assert alpha[-1, -1] == 0.0 and alpha[-1, 0] == 0.0
    # Crop: the white page (160 x 120) shrank to the content plus a margin.
    assert out.shape[0] < 120 and out.shape[1] < 160
    _assert_composites_back(out, original)


def test_background_to_alpha_false_keeps_it_opaque(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(_black_disc_on_white()).save(path)
    out = load_image_rgba(path, background_to_alpha=False)
    _check_rgba(out)
    assert out.shape[:2] == (120, 160)
    assert (out[..., 3] == 1.0).all()
    assert np.allclose(out[..., :3], _black_disc_on_white() / 255.0, atol=1e-6)


def test_photo_with_dark_border_is_not_keyed(tmp_path):
    rng = np.random.default_rng(1)
    photo = (rng.uniform(0.1, 0.7, size=(40, 60, 3)) * 255).astype(np.uint8)
    photo[10:20, 10:20] = 255  # a white patch inside must stay opaque
    path = tmp_path / "photo.jpg"
    Image.fromarray(photo).save(path)
    out = load_image_rgba(path)
    assert out.shape[:2] == (40, 60)
    assert (out[..., 3] == 1.0).all()


def test_background_to_alpha_true_forces_keying(tmp_path):
    # A mostly dark border would not be keyed automatically, but True forces it.
    img = np.full((40, 40, 3), 255, np.uint8)
    img[:, :4] = 0
    img[15:25, 15:25] = 0
    path = tmp_path / "forced.png"
    Image.fromarray(img).save(path)
    assert (load_image_rgba(path)[..., 3] == 1.0).all()
    out = load_image_rgba(path, background_to_alpha=True)
    assert (out[..., 3] == 0.0).any()


def test_grayscale_png(tmp_path):
    grey = np.full((50, 70), 255, np.uint8)
    grey[10:40, 20:50] = 64
    path = tmp_path / "grey.png"
    Image.fromarray(grey, "L").save(path)
    out = load_image_rgba(path)
    _check_rgba(out)
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0)
    assert (y1 - y0, x1 - x0) == (30, 30)
    # 64/255 grey un-mixed from white is black at alpha 1 - 64/255.
    centre = out[(y0 + y1) // 2, (x0 + x1) // 2]
    assert centre[3] == pytest.approx(1 - 64 / 255, abs=1e-5)
    assert centre[:3] == pytest.approx([0, 0, 0], abs=1e-5)


def test_sixteen_bit_grayscale(tmp_path):
    grey = np.full((50, 70), 65535, np.uint16)
    grey[10:40, 20:50] = 1000
    path = tmp_path / "grey16.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I")
    out = load_image_rgba(path)
    _check_rgba(out)
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0)
    assert (y1 - y0, x1 - x0) == (30, 30)
    assert out[(y0 + y1) // 2, (x0 + x1) // 2, 3] == pytest.approx(1 - 1000 / 65535, abs=1e-4)
    opaque = load_image_rgba(path, background_to_alpha=False)
    assert opaque[25, 35, 0] == pytest.approx(1000 / 65535, abs=1e-4)
    assert opaque[0, 0, 0] == pytest.approx(1.0)


def test_sixteen_bit_rgba(tmp_path):
    rgba = np.zeros((40, 50, 4), np.uint16)
    rgba[10:30, 10:40] = (0, 0, 65535, 65535)  # OpenCV order: BGRA, so this is red
    path = tmp_path / "rgba16.png"
    assert cv2.imwrite(str(path), rgba)
    out = load_image_rgba(path)
    _check_rgba(out)
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0.5)
    assert (y1 - y0, x1 - x0) == (20, 30)
    assert out[(y0 + y1) // 2, (x0 + x1) // 2].tolist() == pytest.approx([1, 0, 0, 1], abs=1e-3)


def test_palette_images(tmp_path):
    img = np.full((40, 40, 3), 255, np.uint8)
    img[10:30, 10:30] = (0, 128, 0)
    path = tmp_path / "palette.png"
    Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(path)
    assert Image.open(path).mode == "P"
    out = load_image_rgba(path)
    _check_rgba(out)
    assert out.shape[0] < 40
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0.5)
    assert out[(y0 + y1) // 2, (x0 + x1) // 2].tolist() == pytest.approx([0, 128 / 255, 0, 1], abs=1e-3)
    # A palette with a transparent index keeps that transparency.
    pal = Image.new("P", (30, 30), 0)
    pal.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pal.paste(1, (5, 5, 15, 15))
    path2 = tmp_path / "palette_t.png"
    pal.save(path2, transparency=0)
    out2 = load_image_rgba(path2)
    assert out2.shape[0] <= 12
    y0, y1, x0, x1 = _bbox(out2[..., 3] > 0)
    assert (y1 - y0, x1 - x0) == (10, 10)
    assert out2[y0 + 5, x0 + 5].tolist() == pytest.approx([0, 0, 1, 1])


def test_cmyk_jpeg(tmp_path):
    img = np.full((40, 40, 3), 255, np.uint8)
    img[10:30, 10:30] = (0, 0, 255)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(img).convert("CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = load_image_rgba(path)
    _check_rgba(out)
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0.5)
    r, g, b, a = out[(y0 + y1) // 2, (x0 + x1) // 2]
    assert b > 0.8 and r < 0.2 and g < 0.2 and a > 0.9


def test_resize_bound_and_premultiplied_filtering(tmp_path):
    # Red square on transparent pixels whose (hidden) colour is green: a straight-RGBA
    # resize would bleed green into the edge.
    rgba = np.zeros((400, 600, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[50:350, 50:550] = (255, 0, 0, 255)
    path = tmp_path / "big.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image_rgba(path, max_size=64)
    _check_rgba(out)
    assert max(out.shape[:2]) <= 64 and max(out.shape[:2]) >= 60
    assert out.shape[1] / out.shape[0] == pytest.approx(500 / 300, rel=0.08)
    visible = out[..., 3] > 0.01
    assert (out[visible, 1] < 1e-4).all()  # no green anywhere the texel shows
    assert ((out[..., 3] > 0.05) & (out[..., 3] < 0.95)).any()  # edges filtered, not snapped
    small = load_image_rgba(path, max_size=1000)
    assert small.shape[0] <= 400  # never enlarged


def test_crop_adds_small_margin(tmp_path):
    rgba = np.zeros((300, 300, 4), np.uint8)
    rgba[100:200, 120:160] = 255
    path = tmp_path / "tall.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image_rgba(path)
    h, w = out.shape[:2]
    assert 102 <= h <= 110 and 42 <= w <= 50
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0)
    assert y0 == x0 and h - y1 == y0 and w - x1 == x0 and 1 <= y0 <= 5


def test_content_touching_the_edge_is_padded(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[0:20, 0:40] = 255
    path = tmp_path / "edge.png"
    Image.fromarray(rgba, "RGBA").save(path)
    out = load_image_rgba(path)
    assert out[0, :, 3].max() == 0.0 and out[:, 0, 3].max() == 0.0
    assert out.shape == (22, 42, 4)


def test_transparent_texels_have_sensible_colour(tmp_path):
    path = tmp_path / "scan.png"
    Image.fromarray(_black_disc_on_white()).save(path)
    out = load_image_rgba(path)
    clear = out[..., 3] == 0
    assert clear.any() and np.isfinite(out[clear]).all()


def test_missing_file_suggests_similar_names(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "brush_stamp.png")
    missing = tmp_path / "brush_stmap.png"
    with pytest.raises(InputError) as info:
        load_image_rgba(missing)
    message = str(info.value)
    assert str(missing) in message and "does not exist" in message and "brush_stamp.png" in message
    with pytest.raises(InputError, match="does not exist"):
        load_image_rgba(tmp_path / "nowhere" / "x.png")
    with pytest.raises(InputError, match="folder"):
        load_image_rgba(tmp_path)


def test_corrupt_image_names_file_and_pillow_error(tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError) as info:
        load_image_rgba(path)
    assert str(path) in str(info.value) and "Pillow reported" in str(info.value)
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    with pytest.raises(InputError, match="notes.jpg.*not an image file Pillow knows"):
        load_image_rgba(text)
    # A truncated file: header fine, pixel data cut short.
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:300])
    with pytest.raises(InputError, match="cut.png"):
        load_image_rgba(cut)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def test_zero_size_image(tmp_path):
    path = tmp_path / "empty.png"
    header = struct.pack(">IIBBBBB", 0, 10, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
                     + _png_chunk(b"IDAT", zlib.compress(b"")) + _png_chunk(b"IEND", b""))
    with pytest.raises(InputError) as info:
        load_image_rgba(path)
    assert str(path) in str(info.value) and "empty" in str(info.value)


def test_fully_transparent_image(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (20, 20), (255, 0, 0, 0)).save(path)
    with pytest.raises(InputError) as info:
        load_image_rgba(path)
    assert str(path) in str(info.value) and "transparent" in str(info.value)
    white = tmp_path / "white.png"
    Image.new("RGB", (20, 20), "white").save(white)
    with pytest.raises(InputError, match="background_to_alpha=False"):
        load_image_rgba(white)
    assert (load_image_rgba(white, background_to_alpha=False)[..., 3] == 1).all()


def test_bad_max_size(tmp_path):
    path = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(path)
    with pytest.raises(InputError, match="max_size"):
        load_image_rgba(path, max_size=0)


# ----------------------------------------------------------------------------- load_svg_rgba
def _write_svg(path: Path, body: str, attrs: str = 'width="100" height="100"') -> Path:
    path.write_text(f'<svg xmlns="http://www.w3.org/2000/svg" {attrs}>{body}</svg>')
    return path


def test_svg_red_circle(tmp_path):
    path = _write_svg(tmp_path / "circle.svg", '<circle cx="50" cy="50" r="30" fill="red"/>')
    out = load_svg_rgba(path, size=128)
    _check_rgba(out)
    h, w = out.shape[:2]
    assert max(h, w) <= 128 and max(h, w) >= 120  # the circle, not the page, gets the size
    assert out[h // 2, w // 2].tolist() == pytest.approx([1, 0, 0, 1], abs=1e-6)
    for corner in (out[0, 0], out[0, -1], out[-1, 0], out[-1, -1]):
        assert corner[3] == 0.0
    edge = out[..., 3]
    assert ((edge > 0.05) & (edge < 0.95)).any()  # antialiased outline
    assert (edge > 0.5).mean() == pytest.approx(np.pi / 4 * (1 - 2 * 0.03) ** 2, abs=0.06)


def test_svg_keeps_aspect(tmp_path):
    path = _write_svg(tmp_path / "tall.svg", '<rect x="5" y="5" width="40" height="90" fill="blue"/>',
                      'viewBox="0 0 50 100"')
    out = load_svg_rgba(path, size=100)
    h, w = out.shape[:2]
    assert h <= 100 and h >= 95
    y0, y1, x0, x1 = _bbox(out[..., 3] > 0.5)
    assert (x1 - x0) / (y1 - y0) == pytest.approx(40 / 90, rel=0.05)
    assert out[(y0 + y1) // 2, (x0 + x1) // 2].tolist() == pytest.approx([0, 0, 1, 1], abs=1e-6)


def test_svg_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_svg_rgba(tmp_path / "nope.svg")
    bad = tmp_path / "bad.svg"
    bad.write_text("<svg oops")
    with pytest.raises(InputError) as info:
        load_svg_rgba(bad)
    assert str(bad) in str(info.value) and "resvg reported" in str(info.value)
    empty = _write_svg(tmp_path / "empty.svg", "")
    with pytest.raises(InputError, match="transparent"):
        load_svg_rgba(empty)
    zero = _write_svg(tmp_path / "zero.svg", '<circle r="3"/>', 'width="0" height="0"')
    with pytest.raises(InputError, match="zero.svg"):
        load_svg_rgba(zero)
    with pytest.raises(InputError, match="size"):
        load_svg_rgba(empty, size=2)


# ----------------------------------------------------------------------------- render_text_rgba
def test_glyph_a_has_ink_and_margin():
    out = render_text_rgba("A", size=128)
    _check_rgba(out)
    alpha = out[..., 3]
    h, w = alpha.shape
    assert max(h, w) == 128
    assert (out[..., :3] == 1.0).all()  # white stencil
    assert alpha.max() == 1.0 and 0.1 < alpha.mean() < 0.6
    for side in (alpha[:2], alpha[-2:], alpha[:, :2], alpha[:, -2:]):
        assert side.max() == 0.0
    y0, y1, x0, x1 = _bbox(alpha > 0)
    assert y0 <= 6 and h - y1 <= 6 and x0 <= 6 and w - x1 <= 6  # tight crop
    assert ((alpha > 0.05) & (alpha < 0.95)).any()  # antialiased
    # "A" is hollow: the apex row is narrower than the base row.
    assert (alpha[y0 + 3] > 0.5).sum() < (alpha[y1 - 3] > 0.5).sum()


@pytest.mark.parametrize("text", ["g", "7", ".", "?", "Hi!"])
def test_glyphs_of_all_kinds(text):
    out = render_text_rgba(text, size=64)
    _check_rgba(out)
    assert max(out.shape[:2]) == 64
    assert out[..., 3].max() > 0.9


def test_text_with_named_font_and_path():
    try:
        from PIL import ImageFont

        ImageFont.truetype("DejaVuSans.ttf", 10)
    except OSError:
        pytest.skip("DejaVuSans is not installed")
    by_name = render_text_rgba("Q", font="DejaVuSans.ttf", size=96)
    assert max(by_name.shape[:2]) == 96
    path = ImageFont.truetype("DejaVuSans.ttf", 10).path
    by_path = render_text_rgba("Q", font=path, size=96)
    assert np.array_equal(by_name, by_path)


def test_text_errors(tmp_path):
    with pytest.raises(InputError, match="nothing to draw"):
        render_text_rgba("   ")
    with pytest.raises(InputError, match="nothing to draw"):
        render_text_rgba("")
    with pytest.raises(InputError) as info:
        render_text_rgba("A", font="NoSuchFontAnywhere")
    assert "NoSuchFontAnywhere" in str(info.value) and ".ttf" in str(info.value)
    missing = tmp_path / "fonts" / "Missing.ttf"
    with pytest.raises(InputError) as info:
        render_text_rgba("A", font=str(missing))
    assert str(missing) in str(info.value) and "does not exist" in str(info.value) and ".ttf" in str(info.value)
    not_a_font = tmp_path / "fake.ttf"
    not_a_font.write_text("hello")
    with pytest.raises(InputError, match="fake.ttf"):
        render_text_rgba("A", font=str(not_a_font))
    with pytest.raises(InputError, match="size"):
        render_text_rgba("A", size=4)


@pytest.mark.parametrize("text", ["é", "中", "\x07", "a\u200b"])
def test_characters_the_font_lacks_are_refused_by_name(text):
    # Pillow's built-in font has the ASCII letters only: anything else would come out as its
    # "missing glyph" box.
    missing = [c for c in text if c not in "a"][0]
    with pytest.raises(InputError, match=rf"font 'built-in' has no glyph for .*U\+{ord(missing):04X}.*text_font"):
        render_text_rgba(text, size=32)
    with pytest.raises(InputError, match="no glyph"):
        TextureBank.from_names([f"text:{text}"])


def test_a_font_that_has_the_character_draws_it():
    try:
        from PIL import ImageFont

        path = ImageFont.truetype("DejaVuSans.ttf", 10).path
    except OSError:
        pytest.skip("DejaVuSans is not installed")
    out = render_text_rgba("é", font=path, size=64)
    assert max(out.shape[:2]) == 64 and out[..., 3].max() > 0.9
    bank = TextureBank.from_names(["text:é"], font=path)
    assert bank.names == ["text:é"]
    with pytest.raises(InputError, match=r"DejaVuSans\.ttf' has no glyph for '中' \(U\+4E2D\)"):
        render_text_rgba("中", font=path)

