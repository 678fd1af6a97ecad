"""Real ICC profiles for the colour tests, written from their published definitions.

Pillow's ImageCms only creates sRGB, Lab and XYZ profiles, so the matrix/TRC profiles of
ProPhoto RGB (ROMM RGB, ISO 22028-2: D50 white, gamma 1.8) and Display P3 (DCI-P3
primaries, D65 white, the sRGB tone curve) are written here byte by byte after ICC.1:
a header, a tag table, colorants adapted to the D50 connection space with the Bradford
transform, and tone curves (``curv`` gamma, or ``para`` type 3). Also a grey profile
(``kTRC``) and the matrices needed to convert analytically.
"""

from __future__ import annotations

import struct

import numpy as np

D50 = np.array([0.9642, 1.0, 0.8249])  # the ICC connection space's white
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1.0 - x - y) / y])


def rgb_to_xyz_matrix(primaries, white) -> np.ndarray:
    """RGB (linear) to XYZ whose white is ``white`` (Y = 1): columns are the primaries."""
    columns = np.stack([xy_to_xyz(*p) for p in primaries], axis=1)
    scale = np.linalg.solve(columns, xy_to_xyz(*white))
    return columns * scale


def bradford(source_white: np.ndarray, target_white: np.ndarray) -> np.ndarray:
    cone_source, cone_target = BRADFORD @ source_white, BRADFORD @ target_white
    return np.linalg.inv(BRADFORD) @ np.diag(cone_target / cone_source) @ BRADFORD


def d50_matrix(primaries, white) -> np.ndarray:
    """RGB (linear) to PCS XYZ D50: the colorants an ICC profile stores."""
    white_xyz = xy_to_xyz(*white)
    return bradford(white_xyz, D50) @ rgb_to_xyz_matrix(primaries, white)


PROPHOTO = {"primaries": [(0.7347, 0.2653), (0.1596, 0.8404), (0.0366, 0.0001)], "white": (0.3457, 0.3585)}
DISPLAY_P3 = {"primaries": [(0.680, 0.320), (0.265, 0.690), (0.150, 0.060)], "white": (0.3127, 0.3290)}
SRGB = {"primaries": [(0.64, 0.33), (0.30, 0.60), (0.15, 0.06)], "white": (0.3127, 0.3290)}

#: ProPhoto's gamma as the ``curv`` tag stores it (u8Fixed8: 461 / 256 = 1.80078).
PROPHOTO_GAMMA = 461 / 256
#: The sRGB curve as ``para`` type 3: Y = (aX + b)^g for X >= d, else cX.
SRGB_PARA = (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)


def _s15(*values: float) -> bytes:
    return b"".join(struct.pack(">i", int(round(v * 65536))) for v in values)


def _xyz(xyz) -> bytes:
    return b"XYZ \0\0\0\0" + _s15(*xyz)


def _gamma_curve(gamma: float) -> bytes:
    return b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"


def _para_curve(g: float, a: float, b: float, c: float, d: float) -> bytes:
    return b"para\0\0\0\0" + struct.pack(">HH", 3, 0) + _s15(g, a, b, c, d)


def _desc_v2(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc\0\0\0\0" + struct.pack(">I", len(ascii_)) + ascii_ + struct.pack(">II", 0, 0) + b"\0\0\0" + b"\0" * 67


def _text_v2(text: str) -> bytes:
    return b"text\0\0\0\0" + text.encode("ascii") + b"\0"


def _mluc(text: str) -> bytes:
    utf16 = text.encode("utf-16-be")
    return b"mluc\0\0\0\0" + struct.pack(">II", 1, 12) + b"enUS" + struct.pack(">II", len(utf16), 28) + utf16


def _profile(space: bytes, version: int, tags: list[tuple[bytes, bytes]]) -> bytes:
    table_size = 4 + 12 * len(tags)
    offset = 128 + table_size
    table, data = [struct.pack(">I", len(tags))], b""
    for signature, body in tags:
        body += b"\0" * (-len(body) % 4)
        table.append(struct.pack(">4sII", signature, offset + len(data), len(body)))
        data += body
    size = 128 + table_size + len(data)
    header = struct.pack(">I4sI4s4s4s", size, b"lcms", version, b"mntr", space, b"XYZ ")
    header += struct.pack(">6H", 2026, 1, 1, 0, 0, 0) + b"acsp" + b"\0" * 4 + b"\0" * 4  # date, magic, platform, flags
    header += b"\0" * 16 + struct.pack(">I", 0) + _s15(*D50) + b"lcms"  # maker, model, attributes, intent, illuminant
    header += b"\0" * (128 - len(header))
    return header + b"".join(table) + data


def matrix_trc_profile(description: str, primaries, white, trc: bytes, version: int = 2) -> bytes:
    """An RGB display profile: colorants from ``primaries``/``white`` (xy) adapted to D50."""
    matrix = d50_matrix(primaries, white)
    text = (_desc_v2(description), _text_v2("No copyright, use freely")) if version == 2 else (
        _mluc(description), _mluc("No copyright, use freely"))
    tags = [(b"desc", text[0]), (b"cprt", text[1]), (b"wtpt", _xyz(D50))]
    if version != 2:  # v4: the adaptation from the device white to D50
        tags.append((b"chad", b"sf32\0\0\0\0" + _s15(*bradford(xy_to_xyz(*white), D50).ravel())))
    tags += [(b"rXYZ", _xyz(matrix[:, 0])), (b"gXYZ", _xyz(matrix[:, 1])), (b"bXYZ", _xyz(matrix[:, 2]))]
    tags += [(b"rTRC", trc), (b"gTRC", trc), (b"bTRC", trc)]
    return _profile(b"RGB ", 0x02100000 if version == 2 else 0x04300000, tags)


def prophoto_profile() -> bytes:
    """ProPhoto RGB (ROMM RGB) as a v2 profile, gamma 1.8."""
    return matrix_trc_profile("ProPhoto RGB", PROPHOTO["primaries"], PROPHOTO["white"], _gamma_curve(1.8), version=2)


def display_p3_profile() -> bytes:
    """Display P3 as a v4 profile: P3 primaries, D65 white, the sRGB curve."""
    return matrix_trc_profile("Display P3", DISPLAY_P3["primaries"], DISPLAY_P3["white"], _para_curve(*SRGB_PARA), version=4)


def grey_profile(gamma: float = 1.8, *, srgb_curve: bool = False) -> bytes:
    """A grey profile with a gamma ``kTRC``, or with the sRGB curve ("sGray")."""
    name, curve = ("sGray", _para_curve(*SRGB_PARA)) if srgb_curve else (f"Grey gamma {gamma}", _gamma_curve(gamma))
    tags = [(b"desc", _desc_v2(name)), (b"cprt", _text_v2("No copyright, use freely")),
            (b"wtpt", _xyz(D50)), (b"kTRC", curve)]
    return _profile(b"GRAY", 0x02100000, tags)


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1 / 2.4) - 0.055)


def srgb_decode(encoded: np.ndarray) -> np.ndarray:
    return np.where(encoded <= 0.04045, encoded / 12.92, np.power((encoded + 0.055) / 1.055, 2.4))


def analytic_to_srgb(rgb: np.ndarray, space: dict, decode) -> np.ndarray:
    """Encoded RGB in [0, 1] of ``space`` to sRGB, by the published matrices (relative
    colorimetric through D50, as an ICC workflow does; out-of-gamut values clipped)."""
    to_pcs = d50_matrix(space["primaries"], space["white"])
    from_pcs = np.linalg.inv(d50_matrix(SRGB["primaries"], SRGB["white"]))
    return srgb_encode(decode(rgb) @ (from_pcs @ to_pcs).T)


def analytic_from_srgb(rgb: np.ndarray, space: dict, encode) -> np.ndarray:
    """sRGB in [0, 1] to encoded RGB of ``space`` (values outside its gamut clipped)."""
    to_pcs = d50_matrix(SRGB["primaries"], SRGB["white"])
    from_pcs = np.linalg.inv(d50_matrix(space["primaries"], space["white"]))
    return encode(np.clip(srgb_decode(rgb) @ (from_pcs @ to_pcs).T, 0.0, 1.0))


def cmyk_ink(cmyk: np.ndarray) -> np.ndarray:
    """The sRGB colour of CMYK in [0, 1] on a made-up press: inks that absorb 90 % and a
    black that absorbs 80 % (unlike a naive 1 - C - K conversion)."""
    c, m, y, k = (cmyk[..., i] for i in range(4))
    return np.stack([(1 - 0.9 * c) * (1 - 0.8 * k), (1 - 0.9 * m) * (1 - 0.8 * k), (1 - 0.9 * y) * (1 - 0.8 * k)], axis=-1)


#: Grid points per ink of :func:`cmyk_profile`'s table: nodes at the 8-bit values 0, 51, ... 255.
CMYK_GRID = 6


def cmyk_profile() -> bytes:
    """A v2 CMYK output profile whose A2B0 (``lut16Type``, PCS XYZ) is :func:`cmyk_ink`
    sampled on a grid of :data:`CMYK_GRID` points per ink."""
    n = CMYK_GRID
    levels = np.linspace(0.0, 1.0, n)
    grid = np.stack(np.meshgrid(levels, levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 4)
    xyz = srgb_decode(cmyk_ink(grid)) @ d50_matrix(SRGB["primaries"], SRGB["white"]).T
    clut = np.clip(np.rint(xyz * 32768), 0, 65535).astype(">u2")  # lut16 XYZ: 0x8000 is 1.0
    identity_table = np.rint(np.linspace(0, 65535, 2)).astype(">u2")
    body = b"mft2\0\0\0\0" + struct.pack(">BBBB", 4, 3, n, 0) + _s15(1, 0, 0, 0, 1, 0, 0, 0, 1)
    body += struct.pack(">HH", 2, 2) + identity_table.tobytes() * 4 + clut.tobytes() + identity_table.tobytes() * 3
    tags = [(b"desc", _desc_v2("Made-up press CMYK")), (b"cprt", _text_v2("No copyright, use freely")),
            (b"wtpt", _xyz(D50)), (b"A2B0", body)]
    data = bytearray(_profile(b"CMYK", 0x02100000, tags))
    data[12:16] = b"prtr"
    return bytes(data)
