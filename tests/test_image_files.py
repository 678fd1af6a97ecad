"""Image files read as the pixels they hold: bit depth from the file, floats only in [0, 1],
colour deeper than 8 bits kept, orientation applied, decompression bombs refused."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from diffbmp import InputError
from diffbmp.image_files import read_image
from diffbmp.primitives.loaders import load_image_rgba
from diffbmp.targets import load_target

RAMP = np.arange(48 * 64, dtype=np.int64).reshape(48, 64)


def test_16_bit_grey_is_scaled_by_its_depth_not_its_values(tmp_path):
    # Every value is at most 255: read as 8-bit, the picture would be 257 times too bright.
    grey = (RAMP % 200).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "dark.png"), grey)
    rgba, has_alpha = read_image(tmp_path / "dark.png")
    assert not has_alpha and rgba.shape == (48, 64, 4)
    np.testing.assert_allclose(rgba[..., 0], grey / 65535.0, atol=1e-12)
    target = load_target(str(tmp_path / "dark.png"), size=None)
    assert float(target.rgb.max()) < 200 / 65535 + 1e-6


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_colour_keeps_all_its_bits(tmp_path, suffix):
    rgb = np.stack([RAMP * 13 % 65536, RAMP * 7 % 65536, RAMP % 65536], axis=-1).astype(np.uint16)
    cv2.imwrite(str(tmp_path / f"deep{suffix}"), rgb[..., ::-1])  # OpenCV writes BGR
    rgba, _ = read_image(tmp_path / f"deep{suffix}")
    np.testing.assert_allclose(rgba[..., :3], rgb / 65535.0, atol=1e-12)  # not cut to 8 bits


def test_16_bit_colour_with_alpha(tmp_path):
    rgba16 = np.stack([RAMP * 3 % 65536, RAMP % 65536, RAMP * 5 % 65536, 65535 - RAMP * 11 % 65536], axis=-1).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "deep.png"), rgba16[..., [2, 1, 0, 3]])
    rgba, has_alpha = read_image(tmp_path / "deep.png")
    assert has_alpha
    np.testing.assert_allclose(rgba, rgba16 / 65535.0, atol=1e-12)


def test_float_images_must_lie_in_0_1(tmp_path):
    good = (RAMP / RAMP.max()).astype(np.float32)
    cv2.imwrite(str(tmp_path / "grey.tif"), good)
    cv2.imwrite(str(tmp_path / "colour.tif"), np.stack([good, good * 0.5, 1 - good], axis=-1))
    np.testing.assert_allclose(read_image(tmp_path / "grey.tif")[0][..., 1], good, atol=1e-7)
    colour, _ = read_image(tmp_path / "colour.tif")  # Pillow cannot open float RGB TIFFs
    np.testing.assert_allclose(colour[..., :3], np.stack([1 - good, good * 0.5, good], -1), atol=1e-7)  # written as BGR
    cv2.imwrite(str(tmp_path / "hdr.tif"), good * 3)
    with pytest.raises(InputError, match=r"hdr\.tif.*float values in \[0, 3\].*must lie in \[0, 1\]"):
        read_image(tmp_path / "hdr.tif")
    nan = good.copy()
    nan[3, 4] = np.nan
    cv2.imwrite(str(tmp_path / "nan.tif"), nan)
    with pytest.raises(InputError, match=r"nan\.tif.*NaN"):
        load_target(str(tmp_path / "nan.tif"))


def test_32_bit_integers_are_refused_as_ambiguous(tmp_path):
    Image.fromarray((RAMP * 1000).astype(np.int32), mode="I").save(tmp_path / "wide.tif")
    with pytest.raises(InputError, match=r"wide\.tif.*32-bit integer pixels.*ambiguous"):
        read_image(tmp_path / "wide.tif")


def test_palette_with_transparency_keeps_its_alpha(tmp_path):
    image = Image.new("P", (8, 6), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (4, 0, 8, 6))
    image.save(tmp_path / "palette.png", transparency=0)
    rgba, has_alpha = read_image(tmp_path / "palette.png")
    assert has_alpha and np.all(rgba[:, :4, 3] == 0) and np.all(rgba[:, 4:, 3] == 1)
    np.testing.assert_array_equal(rgba[0, 5, :3], [0, 0, 1])


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :10] = 255  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: shown turned 90 degrees clockwise
    Image.fromarray(pixels).save(tmp_path / "photo.jpg", exif=exif, quality=100)
    rgba, _ = read_image(tmp_path / "photo.jpg")
    assert rgba.shape[:2] == (40, 20)
    assert rgba[:10, :, 0].mean() > 0.9 and rgba[-10:, :, 0].mean() < 0.1  # the white side is on top


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height grey pixels (the data is a few bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def test_decompression_bombs_are_refused_with_the_setting_that_allows_them(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png(60_000, 60_000))
    for read in (lambda: load_target(str(path)), lambda: load_image_rgba(path)):
        with pytest.raises(InputError, match=r"bomb\.png.*60000x60000.*DIFFBMP_MAX_IMAGE_PIXELS=3600000000"):
            read()
    # In a folder of video frames too.
    from diffbmp.video import load_clip

    frames = tmp_path / "frames"
    frames.mkdir()
    Image.new("RGB", (8, 8)).save(frames / "frame_0.png")
    (frames / "frame_1.png").write_bytes(bomb_png(60_000, 60_000))
    with pytest.raises(InputError, match="DIFFBMP_MAX_IMAGE_PIXELS"):
        load_clip(frames)
    # A lower limit applies to ordinary files as well.
    monkeypatch.setenv("DIFFBMP_MAX_IMAGE_PIXELS", "50")
    with pytest.raises(InputError, match="frame_0.png.*8x8"):
        read_image(frames / "frame_0.png")


@pytest.mark.parametrize("array,message", [
    (np.full((4, 4), 200, np.int64), "int64 pixels.*ambiguous"),
    (np.full((4, 4), 2.0, np.float32), r"float values in \[2, 2\]"),
    (torch.full((3, 4, 4), float("inf")), "NaN or infinite"),
])
def test_arrays_say_what_is_wrong(array, message):
    with pytest.raises(InputError, match=message):
        load_target(array)


def test_uint16_arrays_are_16_bit_whatever_their_values():
    target = load_target(np.full((4, 4), 255, np.uint16), size=None)
    assert torch.allclose(target.rgb, torch.full((4, 4, 3), 255 / 65535))
    image = Image.fromarray(np.full((4, 4), 255, np.uint16))  # a Pillow "I;16" image
    assert torch.allclose(load_target(image, size=None).rgb, torch.full((4, 4, 3), 255 / 65535))
