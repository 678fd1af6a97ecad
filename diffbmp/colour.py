"""Colour management: images read are converted to sRGB, images written are tagged sRGB.

diffbmp paints in sRGB: the compositor blends the numbers it is given, and every viewer
shows untagged pixels as sRGB. A photo tagged with a wider space (ProPhoto RGB, Display P3,
Adobe RGB) holds numbers that mean other colours; read as they are, they look washed out.
So every image read (targets and stamp bitmaps) is converted from its embedded ICC profile
to sRGB with LittleCMS (Pillow's ImageCms), and the PNGs diffbmp writes say they are sRGB.

Rendering intent: relative colorimetric. Colours sRGB can show keep their exact values
(the fit paints the colours of the photo, not a compressed version of them), colours
outside sRGB are clipped channel by channel, and the media white maps to sRGB's white.
For the matrix/TRC profiles of almost every RGB photo (ProPhoto, Display P3, Adobe RGB)
LittleCMS has no perceptual tables to use, so perceptual would give the same numbers; the
choice matters only for LUT-based profiles, where perceptual would also desaturate colours
that sRGB can show.

Precision: 8-bit images are converted by LittleCMS. Images read at 16 bits or as floats
(which Pillow's ImageCms cannot transform) are converted in float64 by the profile's own
matrix/TRC model (the model LittleCMS evaluates for such profiles), so their precision is
kept; a LUT-based profile on such an image goes through a 3D table sampled from LittleCMS
(8-bit nodes, interpolated), which the note says. Alpha is never touched.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import struct
import warnings
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from .errors import InputError

__all__ = [
    "ColourNote", "RENDERING_INTENT", "srgb_icc_profile", "profile_description", "to_srgb", "cmyk_to_srgb",
    "png_save_options", "check_dpi", "colour_notes_to",
]

#: The PNG ``sRGB`` chunk's rendering intent byte (0: perceptual, what image editors write).
_PNG_SRGB_INTENT = 0
#: PNG ``gAMA`` of sRGB (1/2.2 in units of 1e-5), written with the sRGB chunk for readers
#: that do not know it (the PNG specification recommends both).
_PNG_SRGB_GAMMA = 45455
#: PNG ``cHRM`` of sRGB: white, red, green, blue chromaticities in units of 1e-5.
_PNG_SRGB_CHRM = (31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)
#: The ICC header's creation date (year, month, day, hour, minute, second) and profile ID.
_ICC_DATE = slice(24, 36)
_ICC_PROFILE_ID = slice(84, 100)
#: The creation date written into the sRGB profile diffbmp embeds.
_ICC_FIXED_DATE = (2026, 1, 1, 0, 0, 0)
#: Largest DPI pHYs can state sensibly (pixels per metre fit in 32 bits far beyond it).
_MAX_DPI = 100_000


class ColourNote(UserWarning):
    """A note about an image's colours: converted from its embedded profile to sRGB, or read
    as it is because its profile could not be used. Silence with
    ``warnings.simplefilter("ignore", diffbmp.colour.ColourNote)``."""


#: Notes shown one by one; beyond this many (a folder of frames) the rest are counted.
_NOTES_SHOWN = 3


@contextlib.contextmanager
def colour_notes_to(say: Callable[[str], None]) -> Iterator[None]:
    """Show the :class:`ColourNote` warnings raised inside the block through ``say`` (as
    ``note: ...`` lines, the same note once, at most three and then a count) instead of as
    Python warnings; other warnings pass through unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ColourNote)
        yield
    notes: list[str] = []
    for warning in caught:
        if issubclass(warning.category, ColourNote):
            notes.append(str(warning.message))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    distinct = list(dict.fromkeys(notes))
    for note in distinct[:_NOTES_SHOWN]:
        say(f"note: {note}")
    if len(distinct) > _NOTES_SHOWN:
        say(f"note: ... and {len(distinct) - _NOTES_SHOWN} more files likewise")


def _intent():
    from PIL import ImageCms

    return ImageCms.Intent.RELATIVE_COLORIMETRIC


#: LittleCMS rendering intent used for every conversion (see the module docstring).
RENDERING_INTENT = "relative colorimetric"


@functools.lru_cache(maxsize=1)
def srgb_icc_profile() -> bytes:
    """The bytes of an sRGB ICC profile (LittleCMS's built-in sRGB), for files that embed one
    (PSD, PNG's iCCP).

    LittleCMS stamps a new profile with the time it was made; the header's date is set to a
    fixed one instead, so the same scene exports to the same bytes on every run. (The
    profile carries no profile ID, the MD5 that would cover the date.)
    """
    from PIL import ImageCms

    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    if any(data[_ICC_PROFILE_ID]):
        return bytes(data)  # a profile ID covers the date: keep the profile as it is
    data[_ICC_DATE] = struct.pack(">6H", *_ICC_FIXED_DATE)
    return bytes(data)


@functools.lru_cache(maxsize=1)
def _srgb_profile():
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# ----------------------------------------------------------------------------- reading profiles
@dataclass(frozen=True)
class _Shaper:
    """The matrix/TRC model of an RGB or grey profile: per-channel tone curves to linear
    light, and (RGB) the columns of the matrix to PCS XYZ (D50)."""

    curves: tuple[Callable[[np.ndarray], np.ndarray], ...]
    matrix: np.ndarray | None  # [3, 3], columns = red, green, blue colorants; None for grey


def _tags(icc: bytes) -> dict[bytes, bytes]:
    count = struct.unpack(">I", icc[128:132])[0]
    tags = {}
    for index in range(count):
        signature, offset, size = struct.unpack(">4sII", icc[132 + 12 * index: 144 + 12 * index])
        tags[signature] = icc[offset: offset + size]
    return tags


def _s15(data: bytes, count: int, start: int = 0) -> np.ndarray:
    return np.array(struct.unpack(f">{count}i", data[start: start + 4 * count]), dtype=np.float64) / 65536.0


def _curve(tag: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """A ``curv`` or ``para`` tone curve (ICC.1 10.6 and 10.18) as a function on [0, 1]."""
    kind = tag[:4]
    if kind == b"curv":
        count = struct.unpack(">I", tag[8:12])[0]
        if count == 0:
            return lambda x: x
        if count == 1:
            gamma = struct.unpack(">H", tag[12:14])[0] / 256.0
            return lambda x: np.power(np.clip(x, 0.0, 1.0), gamma)
        table = np.array(struct.unpack(f">{count}H", tag[12: 12 + 2 * count]), dtype=np.float64) / 65535.0
        grid = np.linspace(0.0, 1.0, count)
        return lambda x: np.interp(x, grid, table)
    if kind == b"para":
        function = struct.unpack(">H", tag[8:10])[0]
        sizes = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}
        if function not in sizes:
            raise ValueError(f"parametric curve type {function}")
        p = list(_s15(tag, sizes[function], 12)) + [0.0] * 7
        g, a, b, c, d, e, f = p[:7]

        def power(base: np.ndarray) -> np.ndarray:
            return np.power(np.maximum(base, 0.0), g)

        if function == 0:
            return lambda x: power(x)
        if function == 1:
            return lambda x: np.where(x >= -b / a, power(a * x + b), 0.0)
        if function == 2:
            return lambda x: np.where(x >= -b / a, power(a * x + b) + c, c)
        if function == 3:
            return lambda x: np.where(x >= d, power(a * x + b), c * x)
        return lambda x: np.where(x >= d, power(a * x + b) + e, c * x + f)
    raise ValueError(f"tone curve of type {kind!r}")


def _inverse(curve: Callable[[np.ndarray], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    """The inverse of a rising tone curve, by interpolation in a dense table (the sRGB curve
    is smooth, and 2^16 + 1 samples keep it within 1e-7)."""
    grid = np.linspace(0.0, 1.0, 65537)
    values = np.maximum.accumulate(curve(grid))
    return lambda y: np.interp(y, values, grid)


def _shaper(icc: bytes) -> _Shaper | None:
    """The matrix/TRC model of a profile, or None when it has none (a LUT-based profile)."""
    try:
        tags = _tags(icc)
        space = icc[16:20]
        if space == b"GRAY" and b"kTRC" in tags:
            return _Shaper((_curve(tags[b"kTRC"]),), None)
        names = (b"rXYZ", b"gXYZ", b"bXYZ", b"rTRC", b"gTRC", b"bTRC")
        if space != b"RGB " or not all(name in tags for name in names):
            return None
        matrix = np.stack([_s15(tags[name], 3, 8) for name in names[:3]], axis=1)
        return _Shaper(tuple(_curve(tags[name]) for name in names[3:]), matrix)
    except (ValueError, struct.error, ZeroDivisionError):
        return None


@functools.lru_cache(maxsize=1)
def _srgb_shaper() -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray]]:
    """(inverse matrix from PCS XYZ, encoding curve, decoding curve) of LittleCMS's sRGB."""
    model = _shaper(srgb_icc_profile())
    assert model is not None and model.matrix is not None
    return np.linalg.inv(model.matrix), _inverse(model.curves[0]), model.curves[0]


def _is_srgb(model: _Shaper | None) -> bool:
    """Whether a matrix/TRC model is sRGB's, or a grey one with sRGB's tone curve (to within
    2e-3), so that an image tagged sRGB is read bit for bit as it is."""
    if model is None:
        return False
    srgb = _shaper(srgb_icc_profile())
    if model.matrix is not None and np.abs(model.matrix - srgb.matrix).max() > 2e-3:
        return False  # a grey profile has no matrix: its tone curve alone decides
    grid = np.linspace(0.0, 1.0, 256)
    return all(np.abs(curve(grid) - srgb.curves[0](grid)).max() < 2e-3 for curve in model.curves)


def profile_description(icc: bytes) -> str:
    """The profile's description string (e.g. ``"ProPhoto RGB"``); InputError if the bytes
    are not an ICC profile LittleCMS can read."""
    from PIL import ImageCms

    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as error:
        raise InputError(f"not an ICC profile LittleCMS can read ({error})") from None
    return (profile.profile.profile_description or "").strip() or "unnamed profile"


# ----------------------------------------------------------------------------- converting
def _note_unusable(what: str, reason: str) -> None:
    warnings.warn(f"{what}: its embedded ICC profile cannot be used ({reason}); its pixels are read as they are, "
                  "as if they were sRGB, so its colours may be off", ColourNote, stacklevel=3)


def _open_profile(icc: bytes, what: str):
    from PIL import ImageCms

    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (OSError, ValueError, TypeError, ImageCms.PyCMSError) as error:
        _note_unusable(what, f"LittleCMS could not read it: {error}")
        return None


def _split(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """(colour [H, W, 1 or 3], alpha [H, W, 1] or None, grey) of [H, W] or [H, W, 1..4]."""
    array = pixels[:, :, None] if pixels.ndim == 2 else pixels
    channels = array.shape[2]
    if channels in (1, 2):
        return array[..., :1], (array[..., 1:2] if channels == 2 else None), True
    return array[..., :3], (array[..., 3:4] if channels == 4 else None), False


def _join(colour: np.ndarray, alpha: np.ndarray | None, like: np.ndarray) -> np.ndarray:
    out = colour if alpha is None else np.concatenate([colour, alpha], axis=2)
    return out[..., 0] if like.ndim == 2 else out


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    values = np.clip(values, 0.0, 1.0)
    if dtype == np.uint16:
        return np.rint(values * 65535.0).astype(np.uint16)
    if dtype == np.uint8:
        return np.rint(values * 255.0).astype(np.uint8)
    return values.astype(dtype)


def _scale(array: np.ndarray) -> float:
    return {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(array.dtype, 1.0)


def _convert_8bit(colour: np.ndarray, profile, grey: bool) -> np.ndarray:
    """LittleCMS on 8-bit colour [H, W, 1 or 3]: sRGB colour of the same channels."""
    from PIL import Image, ImageCms

    image = Image.fromarray(np.ascontiguousarray(colour[..., 0] if grey else colour), "L" if grey else "RGB")
    out = ImageCms.profileToProfile(image, profile, _srgb_profile(), renderingIntent=_intent(), outputMode="RGB")
    rgb = np.asarray(out)
    return rgb[..., :1] if grey else rgb


def _convert_shaper(colour: np.ndarray, model: _Shaper) -> np.ndarray:
    """Float64 conversion by the profile's matrix/TRC model: colour [H, W, 1 or 3] in [0, 1]."""
    to_srgb_matrix, encode, _ = _srgb_shaper()
    if model.matrix is None:  # grey: the grey's luminance, on sRGB's neutral axis
        return encode(np.clip(model.curves[0](colour), 0.0, 1.0))
    linear = np.stack([curve(colour[..., i]) for i, curve in enumerate(model.curves)], axis=-1)
    srgb_linear = linear @ (to_srgb_matrix @ model.matrix).T
    return encode(np.clip(srgb_linear, 0.0, 1.0))  # clipped channel by channel, as LittleCMS does


@functools.lru_cache(maxsize=4)
def _sampled_table(icc: bytes, grey: bool, nodes: int = 52) -> np.ndarray:
    """LittleCMS's conversion sampled on a grid of 8-bit values (every 5th), for profiles
    with no matrix/TRC model applied to deep images: [n, n, n, 3] (grey: [n, 1]) in [0, 1]."""
    levels = np.linspace(0, 255, nodes).round().astype(np.uint8)
    profile = _open_profile(icc, "profile")
    if grey:
        return _convert_8bit(levels[:, None, None], profile, True)[:, 0, :].astype(np.float64) / 255.0
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(nodes * nodes, nodes, 3)
    return _convert_8bit(grid, profile, False).reshape(nodes, nodes, nodes, 3).astype(np.float64) / 255.0


def _convert_sampled(colour: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Trilinear (grey: linear) interpolation of ``colour`` in [0, 1] in a sampled table."""
    nodes = table.shape[0]
    if colour.shape[2] == 1:
        return np.interp(colour, np.linspace(0.0, 1.0, nodes), table[:, 0])
    position = np.clip(colour, 0.0, 1.0) * (nodes - 1)
    low = np.minimum(np.floor(position).astype(np.int64), nodes - 2)
    t = position - low
    out = np.zeros(colour.shape[:2] + (3,), dtype=np.float64)
    for corner in range(8):
        bits = [(corner >> axis) & 1 for axis in range(3)]
        weight = np.prod([t[..., a] if bit else 1.0 - t[..., a] for a, bit in enumerate(bits)], axis=0)
        out += weight[..., None] * table[low[..., 0] + bits[0], low[..., 1] + bits[1], low[..., 2] + bits[2]]
    return out


def to_srgb(pixels: np.ndarray, icc: bytes | None, what: str = "image") -> tuple[np.ndarray, str | None]:
    """Pixels converted from their embedded ICC profile to sRGB (relative colorimetric).

    Args:
        pixels: decoded pixels in their own type (uint8, uint16 or float in [0, 1]): [H, W]
            or [H, W, 1] grey, [H, W, 2] grey and alpha, [H, W, 3] RGB, [H, W, 4] RGBA.
        icc: the image's embedded ICC profile (None or empty: none).
        what: the file, for messages.

    Returns:
        (pixels of the same shape and type, description of the profile applied). The
        description is None, and the pixels are the very array given, when there was no
        profile, the profile is sRGB, or it could not be used (then a :class:`ColourNote`
        warning says so). Alpha is never changed.

    Raises:
        InputError: the profile describes CMYK, Lab or another space that does not fit the
            pixels' channels in a way diffbmp can convert.
    """
    if not icc:
        return pixels, None
    profile = _open_profile(icc, what)
    if profile is None:
        return pixels, None
    info = profile.profile
    space = (info.xcolor_space or "").strip()
    description = (info.profile_description or "").strip() or "unnamed profile"
    colour, alpha, grey = _split(pixels)
    if info.device_class in ("link", "abst", "nmcl"):
        raise InputError(f"{what} embeds a {info.device_class!r} ICC profile ({description!r}), which describes no "
                         "colour space of its own; save the image as sRGB (or with its working-space profile)")
    if space not in ("RGB", "GRAY"):
        raise InputError(f"{what} is tagged with a {space or 'unknown'} ICC profile ({description!r}) but holds "
                         f"{'grey' if grey else 'RGB'} pixels, which diffbmp cannot convert; convert the image to sRGB "
                         "in an image editor and save it again")
    if (space == "GRAY") != grey:
        _note_unusable(what, f"it is a {'grey' if space == 'GRAY' else 'colour'} profile ({description!r}) on "
                             f"{'grey' if grey else 'colour'} pixels")
        return pixels, None
    model = _shaper(icc)
    if _is_srgb(model):
        return pixels, None
    if pixels.dtype == np.uint8:
        converted = _convert_8bit(colour, profile, grey)
    elif model is not None:
        converted = _to_dtype(_convert_shaper(colour.astype(np.float64) / _scale(colour), model), colour.dtype)
    else:
        values = _convert_sampled(colour.astype(np.float64) / _scale(colour), _sampled_table(icc, grey))
        converted = _to_dtype(values, colour.dtype)
        description += ", through a table sampled at 8-bit steps"
    return _join(converted, alpha, pixels), description


def cmyk_to_srgb(image, icc: bytes | None, what: str = "image"):
    """An 8-bit Pillow CMYK image converted to an sRGB ``RGB`` image through its embedded
    CMYK profile (relative colorimetric), and the profile's description; (image, None)
    unchanged when it has no usable profile (Pillow's plain conversion then applies)."""
    from PIL import ImageCms

    if not icc:
        return image, None
    profile = _open_profile(icc, what)
    if profile is None:
        return image, None
    description = (profile.profile.profile_description or "").strip() or "unnamed profile"
    if (profile.profile.xcolor_space or "").strip() != "CMYK":
        _note_unusable(what, f"it is a {profile.profile.xcolor_space.strip()} profile ({description!r}) on CMYK pixels")
        return image, None
    try:
        converted = ImageCms.profileToProfile(image, profile, _srgb_profile(), renderingIntent=_intent(), outputMode="RGB")
    except ImageCms.PyCMSError as error:
        _note_unusable(what, f"LittleCMS could not convert with it: {error}")
        return image, None
    return converted, description


# ----------------------------------------------------------------------------- writing PNG
def check_dpi(dpi: float) -> float:
    """``dpi`` as a float, or InputError naming the problem."""
    if isinstance(dpi, bool) or not isinstance(dpi, (int, float)) or not math.isfinite(dpi) or not 0 < dpi <= _MAX_DPI:
        raise InputError(f"dpi must be a number of dots per inch in (0, {_MAX_DPI}], e.g. 300 for print, got {dpi!r}")
    return float(dpi)


def png_save_options(dpi: float | None = None) -> dict:
    """Keyword arguments for Pillow's ``Image.save(..., format="PNG")`` that tag the file as
    sRGB: the ``sRGB`` chunk, with the ``gAMA`` and ``cHRM`` the PNG specification asks to
    go with it for older readers (about 90 bytes in all, where an sRGB ICC profile in
    ``iCCP`` would take about 500), and ``pHYs`` stating ``dpi`` when given."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add(b"sRGB", bytes([_PNG_SRGB_INTENT]))
    info.add(b"gAMA", struct.pack(">I", _PNG_SRGB_GAMMA))
    info.add(b"cHRM", struct.pack(">8I", *_PNG_SRGB_CHRM))
    options: dict = {"pnginfo": info}
    if dpi is not None:
        value = check_dpi(dpi)
        options["dpi"] = (value, value)  # Pillow writes pHYs in pixels per metre
    return options
