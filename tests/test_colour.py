"""Colour management: images tagged with an ICC profile are read as sRGB (targets and stamps,
8-bit, 16-bit and float), untagged and sRGB images are read bit for bit as they are, and the
PNGs diffbmp writes are tagged sRGB with the pHYs asked for."""

from __future__ import annotations

import io
import math
import struct
import subprocess
import sys
import time
import warnings
import zlib

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms

import diffbmp
from diffbmp import InputError
from diffbmp.colour import ColourNote, colour_notes_to, png_save_options, srgb_icc_profile, to_srgb
from diffbmp.exports import export
from diffbmp.exports.textures import png_bytes
from diffbmp.image_files import read_image
from diffbmp.primitives import TextureBank
from diffbmp.targets import load_target
import icc_profiles as icc

SRGB = ImageCms.createProfile("sRGB")
RELATIVE = ImageCms.Intent.RELATIVE_COLORIMETRIC
SPACES = {
    "ProPhoto RGB": (icc.prophoto_profile, icc.PROPHOTO, lambda x: np.power(x, icc.PROPHOTO_GAMMA),
                     lambda x: np.power(x, 1 / icc.PROPHOTO_GAMMA)),
    "Display P3": (icc.display_p3_profile, icc.DISPLAY_P3, icc.srgb_decode, icc.srgb_encode),
}
#: Saturated sRGB colours, all inside both spaces' gamuts.
COLOURS = np.array([[0.85, 0.15, 0.10], [0.10, 0.65, 0.25], [0.15, 0.25, 0.90], [0.95, 0.80, 0.10], [0.5, 0.5, 0.5]])


def saturation(rgb: np.ndarray) -> float:
    """Mean HSV saturation of RGB in [0, 1]."""
    rgb = np.asarray(rgb, dtype=np.float64)
    high, low = rgb.max(axis=-1), rgb.min(axis=-1)
    return float(np.where(high > 0, (high - low) / np.maximum(high, 1e-12), 0.0).mean())


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """scikit-image's astronaut (saturated red, blue, yellow) at 128 px, 8-bit sRGB."""
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((128, 128), Image.LANCZOS))


def littlecms(pixels: np.ndarray, source, target) -> np.ndarray:
    return np.asarray(ImageCms.profileToProfile(Image.fromarray(pixels), source, target, renderingIntent=RELATIVE,
                                                outputMode="RGB"))


def profile(name: str) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(SPACES[name][0]()))


@pytest.fixture(scope="module")
def tagged(photo, tmp_path_factory) -> dict:
    """The photo converted into each space, saved with its profile (PNG and JPEG), with the
    sRGB conversion of the saved pixels and that conversion saved untagged."""
    folder = tmp_path_factory.mktemp("tagged")
    files = {}
    for name, (make, *_) in SPACES.items():
        stem = name.split()[0].lower()
        encoded = littlecms(photo, SRGB, profile(name))
        png = folder / f"{stem}.png"
        Image.fromarray(encoded).save(png, icc_profile=make())
        jpeg = folder / f"{stem}.jpg"
        Image.fromarray(encoded).save(jpeg, quality=95, icc_profile=make())
        with Image.open(jpeg) as img:
            decoded_jpeg = np.asarray(img.convert("RGB"))
        converted = littlecms(encoded, profile(name), SRGB)
        untagged = folder / f"{stem}_as_srgb.png"
        Image.fromarray(converted).save(untagged)
        files[name] = {"png": png, "jpg": jpeg, "encoded": encoded, "converted": converted, "untagged": untagged,
                       "jpeg_converted": littlecms(decoded_jpeg, profile(name), SRGB)}
    return files


def write_png_with_icc(path, pixels: np.ndarray, icc_bytes: bytes) -> None:
    """A PNG of any depth OpenCV writes (16-bit included), with an iCCP chunk added, which
    OpenCV cannot write."""
    array = pixels[..., [2, 1, 0, 3][: pixels.shape[2]]] if pixels.ndim == 3 else pixels  # RGB(A) -> BGR(A)
    ok, encoded = cv2.imencode(".png", array)
    assert ok
    data = encoded.tobytes()
    body = b"profile\0\0" + zlib.compress(icc_bytes)
    chunk = struct.pack(">I", len(body)) + b"iCCP" + body + struct.pack(">I", zlib.crc32(b"iCCP" + body))
    header_end = 8 + 25  # signature, IHDR
    path.write_bytes(data[:header_end] + chunk + data[header_end:])


# ----------------------------------------------------------------------------- targets, 8-bit
@pytest.mark.parametrize("name", list(SPACES))
@pytest.mark.parametrize("kind", ["png", "jpg"])
def test_a_tagged_target_is_read_as_its_srgb_conversion(tagged, name, kind):
    files = tagged[name]
    path = files[kind]
    with pytest.warns(ColourNote, match=rf"{path.name}: converted from its embedded profile '{name}' to sRGB"):
        target = load_target(str(path), size=None)
    reference = files["converted" if kind == "png" else "jpeg_converted"] / 255.0
    assert np.abs(target.rgb.numpy() - reference).max() <= 1.5 / 255
    assert saturation(target.rgb.numpy()) == pytest.approx(saturation(reference), rel=0.02)
    # Read as it is, the file is clearly paler: the conversion is what brings the colour back.
    assert saturation(files["encoded"] / 255.0) < 0.92 * saturation(target.rgb.numpy())


@pytest.mark.parametrize("name", list(SPACES))
def test_known_colours_match_the_analytic_conversion(tmp_path, name):
    make, space, _, encode = SPACES[name]
    encoded = icc.analytic_from_srgb(COLOURS, space, encode)  # the colours written in the wide space
    pixels8 = np.rint(np.repeat(encoded[None], 4, axis=0) * 255).astype(np.uint8)
    Image.fromarray(pixels8).save(tmp_path / "eight.png", icc_profile=make())
    with pytest.warns(ColourNote):
        rgba, has_alpha = read_image(tmp_path / "eight.png")
    assert not has_alpha
    np.testing.assert_allclose(rgba[0, :, :3], COLOURS, atol=2.5 / 255)  # 8-bit in, 8-bit out
    pixels16 = np.rint(np.repeat(encoded[None], 4, axis=0) * 65535).astype(np.uint16)
    write_png_with_icc(tmp_path / "sixteen.png", pixels16, make())
    with pytest.warns(ColourNote):
        rgba16, _ = read_image(tmp_path / "sixteen.png")
    np.testing.assert_allclose(rgba16[0, :, :3], COLOURS, atol=2e-4)  # the precision of the 16 bits is kept


# ----------------------------------------------------------------------------- deeper than 8 bits
def ramp16(height: int = 8, width: int = 1024) -> np.ndarray:
    """A smooth 16-bit colour ramp, from dark to saturated orange."""
    t = np.linspace(0, 1, width)[None, :].repeat(height, axis=0)
    return np.rint(np.stack([t, 0.45 * t, 0.1 * t], axis=-1) * 65535).astype(np.uint16)


@pytest.mark.parametrize("container", ["png", "tif", "float-tif"])
def test_16_bit_and_float_images_keep_their_precision(tmp_path, container):
    make, space, decode, _ = SPACES["ProPhoto RGB"]
    pixels = ramp16()
    path = tmp_path / f"ramp.{container.split('-')[-1]}"
    if container == "png":
        write_png_with_icc(path, pixels, make())
    elif container == "tif":
        tifffile.imwrite(path, pixels, photometric="rgb", iccprofile=make())
    else:
        tifffile.imwrite(path, (pixels / 65535.0).astype(np.float32), photometric="rgb", iccprofile=make())
    with pytest.warns(ColourNote, match="ProPhoto RGB"):
        rgba, _ = read_image(path)
    expected = icc.analytic_to_srgb(pixels / 65535.0, space, decode)
    assert np.abs(rgba[..., :3] - expected).max() < 2e-4
    assert len(np.unique(rgba[0, :, 0])) > 600  # far more levels than 8 bits hold
    # On the same values cut to 8 bits, LittleCMS's own 8-bit conversion agrees to its rounding.
    eight = np.rint(pixels / 257).astype(np.uint8)
    littlecms8 = littlecms(eight, profile("ProPhoto RGB"), SRGB) / 255.0
    float_path = to_srgb(eight.astype(np.uint16) * 257, make(), "ramp")[0] / 65535.0
    assert np.abs(float_path - littlecms8).max() < 1.5 / 255


def test_16_bit_alpha_is_untouched(tmp_path):
    pixels = ramp16()
    alpha = np.linspace(65535, 0, pixels.shape[1]).round().astype(np.uint16)[None, :, None].repeat(8, axis=0)
    write_png_with_icc(tmp_path / "rgba.png", np.concatenate([pixels, alpha], axis=2), icc.prophoto_profile())
    with pytest.warns(ColourNote):
        rgba, has_alpha = read_image(tmp_path / "rgba.png")
    assert has_alpha
    np.testing.assert_array_equal(rgba[..., 3], alpha[..., 0] / 65535.0)


def test_a_table_sampled_from_littlecms_converts_profiles_without_a_matrix_model(monkeypatch):
    # LUT-based profiles have no matrix/TRC model; deep images with one go through a 3D table
    # sampled from LittleCMS. Hiding the matrix model of ProPhoto exercises that path.
    import diffbmp.colour as colour

    monkeypatch.setattr(colour, "_shaper", lambda data: None)
    pixels = ramp16()
    converted, description = to_srgb(pixels, icc.prophoto_profile(), "ramp")
    assert description == "ProPhoto RGB, through a table sampled at 8-bit steps"
    expected = icc.analytic_to_srgb(pixels / 65535.0, icc.PROPHOTO, SPACES["ProPhoto RGB"][2])
    assert converted.dtype == np.uint16
    assert np.abs(converted / 65535.0 - expected).max() < 2.5 / 255


# ----------------------------------------------------------------------------- alpha, grey
def test_8_bit_alpha_is_untouched(tmp_path, photo):
    encoded = littlecms(photo, SRGB, profile("ProPhoto RGB"))
    alpha = (np.arange(128)[None, :] * 2).repeat(128, axis=0).astype(np.uint8)
    Image.fromarray(np.dstack([encoded, alpha]), "RGBA").save(tmp_path / "rgba.png", icc_profile=icc.prophoto_profile())
    with pytest.warns(ColourNote):
        rgba, has_alpha = read_image(tmp_path / "rgba.png")
    assert has_alpha
    np.testing.assert_array_equal(rgba[..., 3], alpha / 255.0)
    np.testing.assert_array_equal(np.rint(rgba[..., :3] * 255), littlecms(encoded, profile("ProPhoto RGB"), SRGB))


def test_a_grey_profile_is_applied_to_grey_images(tmp_path):
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png", icc_profile=icc.grey_profile(1.8))
    with pytest.warns(ColourNote, match="Grey gamma 1.8"):
        rgba, has_alpha = read_image(tmp_path / "grey.png")
    expected = icc.srgb_encode(np.power(grey / 255.0, 461 / 256))
    assert not has_alpha
    assert np.abs(rgba[..., 0] - expected).max() <= 2.5 / 255
    np.testing.assert_array_equal(rgba[..., 0], rgba[..., 2])  # still neutral
    deep = (grey.astype(np.uint16) * 257)
    write_png_with_icc(tmp_path / "grey16.png", deep, icc.grey_profile(1.8))
    with pytest.warns(ColourNote):
        rgba16, _ = read_image(tmp_path / "grey16.png")
    assert np.abs(rgba16[..., 1] - expected).max() < 2e-4


def test_a_cmyk_image_is_converted_through_its_profile(tmp_path):
    levels = np.arange(0, 256, 255 // (icc.CMYK_GRID - 1), dtype=np.uint8)  # the nodes of the profile's table
    inks = np.stack(np.meshgrid(levels, levels, levels, levels, indexing="ij"), axis=-1).reshape(36, 36, 4)
    Image.fromarray(inks, "CMYK").save(tmp_path / "press.tif", icc_profile=icc.cmyk_profile())
    Image.fromarray(inks, "CMYK").save(tmp_path / "plain.tif")
    with pytest.warns(ColourNote, match="press.tif: converted from its embedded profile 'Made-up press CMYK'"):
        rgba, has_alpha = read_image(tmp_path / "press.tif")
    expected = icc.cmyk_ink(inks / 255.0)
    assert not has_alpha
    assert np.abs(rgba[..., :3] - expected).max() <= 4 / 255
    plain, _ = read_image(tmp_path / "plain.tif")  # no profile: Pillow's plain conversion, far from the press
    assert np.abs(plain[..., :3] - expected).max() > 40 / 255


def test_a_pillow_image_target_with_a_profile_is_converted(tagged):
    files = tagged["ProPhoto RGB"]
    with Image.open(files["png"]) as img:
        with pytest.warns(ColourNote, match="'ProPhoto RGB' to sRGB"):
            target = load_target(img, size=None)
    np.testing.assert_array_equal(np.rint(target.rgb.numpy() * 255), files["converted"])
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L").convert("LA")
    grey.info["icc_profile"] = icc.grey_profile(1.8)
    with pytest.warns(ColourNote):
        grey_target = load_target(grey, size=None)
    assert grey_target.alpha is None  # grey with an opaque alpha: RGB, converted on the neutral axis
    expected = icc.srgb_encode(np.power(np.arange(256).reshape(16, 16) / 255.0, 461 / 256))
    for channel in range(3):
        assert np.abs(grey_target.rgb[..., channel].numpy() - expected).max() <= 2.5 / 255


# ----------------------------------------------------------------------------- unchanged, refused
def test_untagged_and_srgb_tagged_images_are_unchanged_bit_for_bit(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "plain.png")
    Image.fromarray(photo).save(tmp_path / "srgb.png", icc_profile=srgb_icc_profile())
    Image.fromarray(photo).save(tmp_path / "srgb.jpg", quality=95, icc_profile=srgb_icc_profile())
    Image.fromarray(photo).save(tmp_path / "plain.jpg", quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ColourNote)  # and no note either
        plain, srgb = read_image(tmp_path / "plain.png")[0], read_image(tmp_path / "srgb.png")[0]
        plain_jpeg, srgb_jpeg = read_image(tmp_path / "plain.jpg")[0], read_image(tmp_path / "srgb.jpg")[0]
    np.testing.assert_array_equal(plain[..., :3], photo / 255.0)
    np.testing.assert_array_equal(srgb, plain)
    np.testing.assert_array_equal(srgb_jpeg, plain_jpeg)
    pixels16 = ramp16()
    assert to_srgb(pixels16, srgb_icc_profile(), "ramp") == (pixels16, None)
    grey = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert to_srgb(grey, icc.grey_profile(srgb_curve=True), "grey") == (grey, None)


def test_a_broken_profile_is_noted_and_the_pixels_read_as_they_are(tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "broken.png", icc_profile=b"not an ICC profile at all" * 10)
    with pytest.warns(ColourNote, match=r"broken\.png.*cannot be used.*read as they are"):
        rgba, _ = read_image(tmp_path / "broken.png")
    np.testing.assert_array_equal(rgba[..., :3], photo / 255.0)


def test_profiles_of_other_spaces_are_refused(tmp_path, photo):
    cmyk = bytearray(icc.prophoto_profile())
    cmyk[16:20] = b"CMYK"  # a CMYK profile on RGB pixels
    Image.fromarray(photo).save(tmp_path / "cmyk.png", icc_profile=bytes(cmyk))
    with pytest.raises(InputError, match=r"cmyk\.png.*CMYK ICC profile.*convert the image to sRGB"):
        read_image(tmp_path / "cmyk.png")
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    Image.fromarray(photo).save(tmp_path / "lab.png", icc_profile=lab)
    with pytest.raises(InputError, match=r"lab\.png.*(Lab|abst)"):
        read_image(tmp_path / "lab.png")


# ----------------------------------------------------------------------------- stamps, fits
def test_a_stamp_file_with_a_profile_is_converted(tmp_path, photo):
    encoded = littlecms(photo[32:96, 32:96], SRGB, profile("Display P3"))
    Image.fromarray(encoded).save(tmp_path / "stamp.png", icc_profile=icc.display_p3_profile())
    Image.fromarray(littlecms(encoded, profile("Display P3"), SRGB)).save(tmp_path / "stamp_srgb.png")
    Image.fromarray(encoded).save(tmp_path / "stamp_untagged.png")
    with pytest.warns(ColourNote, match="stamp.png: converted from its embedded profile 'Display P3'"):
        tagged = TextureBank.from_names([str(tmp_path / "stamp.png")], texture_size=64)[0].rgba
    converted = TextureBank.from_names([str(tmp_path / "stamp_srgb.png")], texture_size=64)[0].rgba
    untagged = TextureBank.from_names([str(tmp_path / "stamp_untagged.png")], texture_size=64)[0].rgba
    assert float((tagged - converted).abs().max()) <= 1.5 / 255
    assert saturation(untagged[..., :3].numpy()) < 0.95 * saturation(tagged[..., :3].numpy())


FIT = dict(n=60, steps=60, size=48, quiet=True, seed=3, output={"frames": 0, "gif": False, "mp4": False})


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", list(SPACES))
def test_a_fit_of_a_tagged_photo_paints_the_srgb_saturation(tagged, name):
    files = tagged[name]
    painted = diffbmp.fit(str(files["png"]), ["circle"], **FIT)  # the note is a line of the fit (quiet here)
    reference = diffbmp.fit(str(files["untagged"]), ["circle"], **FIT)  # the sRGB conversion, saved untagged
    painted_saturation = saturation(painted.scene.render()[0].numpy())
    assert painted_saturation == pytest.approx(saturation(reference.scene.render()[0].numpy()), rel=0.02)
    # What the fit paints without colour management: the wide-space numbers, visibly paler.
    pale = diffbmp.fit(files["encoded"], ["circle"], **FIT)
    assert saturation(pale.scene.render()[0].numpy()) < 0.95 * painted_saturation


# ----------------------------------------------------------------------------- PNG outputs
@pytest.fixture(scope="module")
def scene():
    params = diffbmp.PrimitiveParams(
        means=torch.tensor([[10.0, 10.0], [20.0, 14.0]]), rotations=torch.zeros(2), scales=torch.full((2, 2), 6.0),
        colors=torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.2, 0.9]]), opacities=torch.ones(2),
        shape_ids=torch.zeros(2, dtype=torch.long), beta=torch.zeros(2))
    return diffbmp.Scene.from_params(params, TextureBank.from_names(["circle"]), 24, 32, background=(1.0, 1.0, 1.0))


def test_exported_png_is_tagged_srgb_with_the_dpi_asked_for(scene, tmp_path):
    with Image.open(export(scene, tmp_path / "print.png", dpi=300)) as img:
        assert img.info["srgb"] == 0 and img.info["gamma"] == pytest.approx(0.45455)
        assert img.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    with Image.open(export(scene, tmp_path / "screen.png", transparent=True)) as img:
        assert "srgb" in img.info
        assert "dpi" not in img.info  # no pHYs unless asked for
    with pytest.raises(InputError, match="dpi must be a number of dots per inch"):
        export(scene, tmp_path / "bad.png", dpi=-3)
    assert not (tmp_path / "bad.png").exists()


def test_embedded_textures_stay_small_and_untagged():
    pixels = np.zeros((8, 8, 4), np.uint8)
    plain, tagged = png_bytes(pixels), png_bytes(pixels, srgb=True)
    with Image.open(io.BytesIO(plain)) as img:
        assert "srgb" not in img.info and "icc_profile" not in img.info
    assert len(tagged) - len(plain) < 100


def test_png_save_options_tag_any_pillow_png():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", **png_save_options(dpi=72))
    with Image.open(buffer) as img:
        assert img.info["srgb"] == 0 and img.info["dpi"] == pytest.approx((72, 72), abs=0.01)
        assert math.isclose(img.info["chromaticity"][0], 0.3127)


@pytest.mark.usefixtures("one_thread")
def test_the_fits_final_png_is_tagged_srgb(tmp_path, tagged):
    result = diffbmp.fit(str(tagged["ProPhoto RGB"]["untagged"]), ["circle"], n=20, steps=5, size=32, quiet=True,
                         out=tmp_path / "run", output={"frames": 0, "gif": False, "mp4": False})
    with Image.open(result.paths["final"]) as img:
        assert img.info.get("srgb") == 0 or "icc_profile" in img.info


@pytest.mark.usefixtures("one_thread")
def test_a_fit_says_once_which_profile_it_applied(tmp_path, tagged, capsys):
    path = tagged["ProPhoto RGB"]["png"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ColourNote)  # shown as a line of the fit, not as a Python warning
        diffbmp.fit(str(path), ["circle"], n=10, steps=2, size=32, out=tmp_path / "run",
                    output={"frames": 0, "gif": False, "mp4": False, "progress": False})
    printed = capsys.readouterr()
    lines = [line for line in (printed.out + printed.err).splitlines() if "converted from its embedded profile" in line]
    assert lines == [f"diffbmp: note: {path.name}: converted from its embedded profile 'ProPhoto RGB' to sRGB"]


def test_colour_notes_are_counted_beyond_three_and_other_warnings_pass():
    said: list[str] = []
    with pytest.warns(UserWarning, match="unrelated"):
        with colour_notes_to(said.append):
            for index in range(5):
                warnings.warn(f"frame_{index}.png: converted from its embedded profile 'P3' to sRGB", ColourNote)
            warnings.warn("frame_0.png: converted from its embedded profile 'P3' to sRGB", ColourNote)  # the same again
            warnings.warn("unrelated", UserWarning)
    assert said == [f"note: frame_{index}.png: converted from its embedded profile 'P3' to sRGB" for index in range(3)] + [
        "note: ... and 2 more files likewise"]


def test_the_embedded_srgb_profile_is_the_same_bytes_in_every_process():
    # LittleCMS dates a new profile; the embedded one carries a fixed date, so exports repeat.
    script = "import hashlib; from diffbmp.colour import srgb_icc_profile; print(hashlib.sha1(srgb_icc_profile()).hexdigest())"
    digests = []
    for _ in range(2):
        digests.append(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
        time.sleep(1.1)  # LittleCMS's date has whole seconds
    assert digests[0] == digests[1]
    profile = ImageCms.ImageCmsProfile(io.BytesIO(srgb_icc_profile()))
    assert "sRGB" in ImageCms.getProfileDescription(profile)
