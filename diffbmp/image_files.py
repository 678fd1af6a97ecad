"""Reading image files as the pixels they hold.

One reader for targets, maps, video frames and stamps, so that every image means the same
everywhere:

- the bit depth comes from the file (8-bit, 16-bit), never from the values it happens to
  hold: a dark 16-bit photo stays dark;
- float images (TIFF, EXR-like float TIFFs) must hold values in [0, 1]: diffbmp does not
  guess a range, it says what it found;
- colour images deeper than 8 bits (16-bit RGB PNG and TIFF, float RGB TIFF), which Pillow
  would cut to 8 bits or cannot open, are read with OpenCV;
- the EXIF orientation is applied;
- an embedded ICC profile is applied: the pixels are converted to sRGB, the space diffbmp
  paints in (``diffbmp.colour``), and a :class:`~diffbmp.colour.ColourNote` names the file
  and the profile;
- a file claiming more pixels than ``max_image_pixels()`` is refused before it is decoded
  (decompression bombs), with the setting that raises the limit.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from .colour import ColourNote, cmyk_to_srgb, to_srgb
from .errors import InputError

__all__ = ["read_image", "image_size", "max_image_pixels", "pillow_pixels", "pillow_srgb_pixels", "pixels_to_float"]

#: Pixels a file may claim before it is refused (Pillow's own default: about 89 megapixels).
DEFAULT_MAX_PIXELS = 89_478_485
#: Pillow modes that hold 8 bits per channel (converted to RGB or RGBA).
_EIGHT_BIT_MODES = {"1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


def max_image_pixels() -> int:
    """``DIFFBMP_MAX_IMAGE_PIXELS`` (a positive whole number), else the default."""
    setting = os.environ.get("DIFFBMP_MAX_IMAGE_PIXELS", "").strip()
    if not setting:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(setting)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"DIFFBMP_MAX_IMAGE_PIXELS={setting!r} must be a positive whole number of pixels")
    return value


def _refuse_if_too_large(width: int, height: int, what: str) -> None:
    limit = max_image_pixels()
    if width * height > limit:
        raise InputError(
            f"{what} claims {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), more than the "
            f"{limit / 1e6:.0f} megapixels diffbmp opens without asking (a guard against decompression bombs); "
            f"if the file is genuine, raise the limit with DIFFBMP_MAX_IMAGE_PIXELS={width * height}"
        )


def pixels_to_float(array: np.ndarray, what: str, dtype: type = np.float64) -> np.ndarray:
    """Pixels as floats (``dtype``: float64 or float32) in [0, 1], scaled by what their type can
    hold (uint8: 255, uint16: 65535, bool: 1); floats must already lie in [0, 1].

    float32 values are those of the float64 result rounded once, so both agree to float32."""
    if array.dtype == np.bool_:
        return array.astype(dtype)
    if array.dtype in (np.uint8, np.uint16):
        # A table of every code's value (rounded from float64) costs a gather instead of a
        # float64 copy of the whole image, which matters at 16 megapixels.
        codes = 255 if array.dtype == np.uint8 else 65535
        table = (np.arange(codes + 1, dtype=np.float64) / codes).astype(dtype)
        return table[array]
    if np.issubdtype(array.dtype, np.floating):
        out = array.astype(dtype)
        if not np.isfinite(out).all():
            raise InputError(f"{what} contains NaN or infinite values")
        low, high = (float(out.min()), float(out.max())) if out.size else (0.0, 0.0)
        if low < -1e-6 or high > 1 + 1e-6:
            raise InputError(f"{what} holds float values in [{low:.4g}, {high:.4g}]; float images must lie in [0, 1] "
                             "(diffbmp does not guess their range: scale them to [0, 1], or save 8- or 16-bit integers)")
        return np.clip(out, 0.0, 1.0, out=out)
    raise InputError(f"{what} has {array.dtype} pixels, whose range is ambiguous; use uint8 (0..255), uint16 "
                     "(0..65535) or float values in [0, 1]")


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an [H, W, ...] array."""
    steps = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
             5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
             7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    return np.ascontiguousarray(steps[orientation](array)) if orientation in steps else array


def _deeper_than_pillow(img) -> bool:
    """A colour image with more than 8 bits per channel, which Pillow would cut to 8."""
    if img.mode not in ("RGB", "RGBA"):
        return False
    if img.format == "PNG":
        return any("16" in str(tile.args) for tile in img.tile)
    if img.format == "TIFF":
        bits = img.tag_v2.get(258, (8,))
        return max(bits if isinstance(bits, tuple) else (bits,)) > 8
    return False


def _read_with_opencv(path: Path, what: str) -> np.ndarray:
    import cv2

    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise InputError(f"cannot read {what}: OpenCV could not decode it")
    if array.ndim == 3 and array.shape[2] in (3, 4):
        array = array[..., [2, 1, 0, 3][: array.shape[2]]]  # BGR(A) -> RGB(A)
    return array


def _tiff_icc_profile(path: Path) -> bytes | None:
    """The ICC profile (tag 34675) of a TIFF that Pillow cannot open (float RGB)."""
    try:
        import tifffile

        with tifffile.TiffFile(path) as tiff:
            tag = tiff.pages[0].tags.get(34675)
            return bytes(tag.value) if tag is not None else None
    except Exception:  # no tifffile, or a TIFF it cannot parse: read the pixels as they are
        return None


def pillow_pixels(img, what: str) -> np.ndarray:
    """The pixels of a Pillow image in their own type (uint8, uint16 or float32): [H, W] or
    [H, W, 3 or 4]."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.asarray(img).astype(np.uint16)
    if mode == "I":  # 32-bit integers: a PNG's 16-bit grey as older Pillow reads it, or ambiguous
        if img.format == "PNG":
            return np.asarray(img).astype(np.uint16)
        raise InputError(f"{what} has 32-bit integer pixels, whose range is ambiguous; save it as an 8- or 16-bit "
                         "image, or as float values in [0, 1]")
    if mode == "F":
        return np.asarray(img, dtype=np.float32)
    if mode in _EIGHT_BIT_MODES:
        has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or "transparency" in img.info
        return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))
    raise InputError(f"{what} has the image mode {mode!r}, which diffbmp does not read; save it as an 8- or 16-bit "
                     "RGB, RGBA or greyscale image")


def pillow_srgb_pixels(img, what: str, icc: bytes | None = None) -> tuple[np.ndarray, str | None]:
    """The pixels of a Pillow image as :func:`pillow_pixels` gives them, converted from its
    embedded ICC profile (``img.info["icc_profile"]``, or ``icc``) to sRGB, and the
    description of the profile applied (None: no profile, or sRGB already).

    A grey image with a profile keeps its own channels ([H, W] or [H, W, 2] grey and alpha),
    so that its grey profile applies; :func:`pillow_pixels` makes other grey images RGB.
    """
    icc = icc or img.info.get("icc_profile")
    applied = None
    if img.mode == "CMYK" and icc:
        img, applied = cmyk_to_srgb(img, icc, what)
        icc = None  # applied, or unusable and noted
    if icc and img.mode in ("L", "LA"):
        return to_srgb(np.asarray(img), icc, what)
    array = pillow_pixels(img, what)
    if icc:
        array, applied = to_srgb(array, icc, what)
    return array, applied


def image_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """(width, height) from the file's header, within the pixel limit (InputError otherwise)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    what = f"{what} {str(path)!r}"
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as img:
            size = img.size
    except UnidentifiedImageError:
        raise InputError(f"cannot read {what}: it is not an image file Pillow knows, or it is damaged") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise InputError(f"cannot read {what}: Pillow reported: {error}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    _refuse_if_too_large(size[0], size[1], what)
    return size


def read_image(path: str | os.PathLike, what: str = "image", dtype: type = np.float64) -> tuple[np.ndarray, bool]:
    """The pixels of an image file and whether it has alpha.

    ``dtype`` float32 halves the memory of a large image (targets are fitted in float32).

    Returns:
        ``dtype`` [H, W, 4] straight RGBA in [0, 1] (alpha 1 where the file has none; grey
        images repeat their value in R, G and B), and True when the file carries alpha.
        Colours are sRGB: a file with an ICC profile is converted (``diffbmp.colour``), and
        a :class:`~diffbmp.colour.ColourNote` warning names the file and the profile.

    Raises:
        InputError: naming the file, for anything unreadable, ambiguous or too large.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    what = f"{what} {str(path)!r}"
    applied = None  # the description of the ICC profile converted from, if any
    pillow_limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the limit below is the one that holds
    try:
        with Image.open(path) as img:
            _refuse_if_too_large(img.width, img.height, what)
            icc = img.info.get("icc_profile")
            if _deeper_than_pillow(img):
                orientation = img.getexif().get(0x0112, 1)
                array = _orient(_read_with_opencv(path, what), orientation)
            else:
                img.load()
                try:
                    img = ImageOps.exif_transpose(img)
                except Exception:  # a damaged EXIF block must not stop an otherwise good image
                    pass
                array, applied = pillow_srgb_pixels(img, what, icc)
                icc = None  # applied
    except InputError:
        raise
    except UnidentifiedImageError:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise InputError(f"cannot read {what}: it is not an image file Pillow knows (PNG, JPEG, WebP, TIFF, BMP, "
                             "GIF ...), or it is damaged") from None
        array = _read_with_opencv(path, what)  # float RGB TIFF: OpenCV reads what Pillow cannot
        _refuse_if_too_large(array.shape[1], array.shape[0], what)
        icc = _tiff_icc_profile(path)
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as error:
        raise InputError(f"cannot read {what}: Pillow reported: {error}") from None
    finally:
        Image.MAX_IMAGE_PIXELS = pillow_limit
    if icc:
        array, applied = to_srgb(array, icc, what)
    if applied is not None:
        warnings.warn(f"{path.name}: converted from its embedded profile {applied!r} to sRGB", ColourNote, stacklevel=2)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"{what} is empty ({array.shape[1]}x{array.shape[0]} pixels)")
    pixels = pixels_to_float(array, what, dtype)
    channels = pixels.shape[2]
    has_alpha = channels in (2, 4)
    colour = pixels[..., :3] if channels >= 3 else np.repeat(pixels[..., :1], 3, axis=2)
    alpha = pixels[..., -1:] if has_alpha else np.ones_like(pixels[..., :1])
    return np.concatenate([colour, alpha], axis=2), has_alpha
