"""A JSON description of a scene for other tools (and its inverse).

All geometry is in pixels of the exported canvas (the scene's canvas times ``scale``): ``x``
grows to the right, ``y`` downwards, pixel (row i, column j) has its centre at
(j + 0.5, i + 0.5), and a positive rotation turns clockwise on screen. A primitive's shape
fills its local square [-1, 1]^2, which ``half_extents`` stretch and ``rotation`` turns about
``center`` (docs/rendering.md, sections 2-3). ``z`` is the painting order (0 is the bottom),
``stage`` the fit's stage that added the primitive; a shape with a rotation or aspect
constraint carries it as ``constraint`` (rotation range in radians, kept width/height ratio).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..constants import KIND_CIRCLE, KIND_GAUSSIAN, KIND_TEXTURE
from ..constraints import ShapeConstraints
from ..errors import InputError
from ..params import PrimitiveParams
from ..primitives import BankEntry, TextureBank
from ..scene import Scene
from .atomic import atomic_open
from .textures import hex_color, png_bytes, to_uint8

__all__ = ["JSON_FORMAT", "JSON_VERSION", "scene_to_dict", "scene_from_dict", "write_json", "read_json"]

JSON_FORMAT = "diffbmp-scene-json"
JSON_VERSION = 1
KIND_NAMES = {KIND_TEXTURE: "texture", KIND_CIRCLE: "circle", KIND_GAUSSIAN: "gaussian"}
_KIND_IDS = {name: kind for kind, name in KIND_NAMES.items()}


def _colour(rgb) -> dict[str, Any]:
    floats = [float(c) for c in rgb]
    return {"hex": hex_color(floats), "rgb": floats}


def scene_to_dict(scene: Scene, scale: float = 1.0, *, embed_textures: bool = False) -> dict[str, Any]:
    """The scene as JSON-ready data (see the module docstring for the conventions).

    Args:
        scale: geometry is given on a canvas ``scale`` times the scene's.
        embed_textures: include each bitmap as a base64 PNG (``shapes[i].png``), making
            the file self-contained; otherwise shapes are named by their ``source``.
    """
    scene.check_drawable()
    from .. import __version__

    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number, got {scale!r}")
    height, width = scene.canvas_size(scale)
    with torch.no_grad():
        params = scene.scaled_params(scale)
        means = params.means.detach().double().cpu().tolist()
        scales = params.scales.detach().double().cpu().tolist()
        rotations = params.rotations.detach().double().cpu().tolist()
        colors = params.colors.detach().double().cpu().tolist()
        opacities = params.opacities.detach().double().cpu().tolist()
        beta = params.beta_or_zeros().detach().double().cpu().tolist()
        ids = params.shape_ids.detach().cpu().tolist()
        background = scene.background().detach().double().cpu().tolist()
    stages = scene.stages.detach().cpu().tolist()
    limits = scene.constraints.to_json() if scene.constraints is not None else [None] * len(scene.bank)
    shapes = []
    for k, entry in enumerate(scene.bank):
        shape: dict[str, Any] = {"id": k, "name": entry.name, "kind": KIND_NAMES[entry.kind], "source": entry.source}
        if limits[k] is not None and (limits[k]["rotation"] is not None or limits[k]["aspect"] is not None):
            shape["constraint"] = limits[k]  # rotation range in radians, kept width/height ratio
        if entry.rgba is not None:
            shape["width"], shape["height"] = int(entry.rgba.shape[1]), int(entry.rgba.shape[0])
            if embed_textures:
                pixels = to_uint8(entry.rgba.detach().float().cpu().numpy())
                shape["png"] = base64.b64encode(png_bytes(pixels)).decode("ascii")
        shapes.append(shape)
    primitives = [
        {
            "z": n,
            "shape": scene.bank[ids[n]].name,
            "shape_id": ids[n],
            "kind": KIND_NAMES[scene.bank[ids[n]].kind],
            "center": means[n],
            "half_extents": scales[n],
            "rotation_deg": math.degrees(rotations[n]),
            "rotation_rad": rotations[n],
            "color": _colour(colors[n]),
            "opacity": opacities[n],
            "beta": beta[n],
            "stage": stages[n],
        }
        for n in range(len(ids))
    ]
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "generator": f"diffbmp {__version__}",
        "canvas": {"width": width, "height": height, "scale": float(scale), "scene_width": scene.width, "scene_height": scene.height},
        "background": _colour(background),
        "shapes": shapes,
        "primitives": primitives,
        "metadata": _jsonable(scene.metadata),
    }


def _jsonable(value: Any) -> Any:
    """``value`` with anything JSON cannot hold turned into its string form."""
    try:
        json.dumps(value, allow_nan=False)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        return str(value)


def write_json(scene: Scene, path: str | os.PathLike, scale: float = 1.0, *, embed_textures: bool = False, indent: int | None = 1) -> Path:
    """Write the scene's JSON description at ``path`` (atomically); see :func:`scene_to_dict`."""
    text = json.dumps(scene_to_dict(scene, scale, embed_textures=embed_textures), indent=indent, allow_nan=False)
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8") + b"\n")
    return Path(path)


def read_json(path: str | os.PathLike, bank: TextureBank | None = None) -> Scene:
    """A scene from a JSON file written by :func:`write_json`; see :func:`scene_from_dict`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"JSON scene file {str(path)!r} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{str(path)!r} is not valid JSON ({error})") from error
    return scene_from_dict(data, bank)


def scene_from_dict(data: dict[str, Any], bank: TextureBank | None = None) -> Scene:
    """Rebuild a scene (at the scene's own canvas size) from :func:`scene_to_dict` data.

    Args:
        bank: the bank to draw with; by default it is rebuilt from the shapes' embedded PNGs
            or, failing that, their sources (analytic shapes, built-ins, text, files).
    """
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
        raise InputError(f"not a diffbmp JSON scene (expected \"format\": {JSON_FORMAT!r})")
    if int(data.get("version", 0)) > JSON_VERSION:
        raise InputError(
            f"this JSON scene has version {data['version']}, newer than this diffbmp reads ({JSON_VERSION}); "
            "upgrade diffbmp with `pip install -U diffbmp`"
        )
    try:
        canvas = data["canvas"]
        scale = float(canvas["scale"])
        shapes = data["shapes"]
        rows = data["primitives"]
        if bank is None:
            bank = _bank_from_shapes(shapes)
        elif bank.names != [shape["name"] for shape in shapes]:
            raise InputError(f"the bank's shapes {bank.names} do not match the file's {[s['name'] for s in shapes]}")
        column = lambda key: torch.tensor([row[key] for row in rows], dtype=torch.float64).reshape(len(rows), -1)  # noqa: E731
        params = PrimitiveParams(
            means=column("center") / scale,
            rotations=column("rotation_rad")[:, 0],
            scales=column("half_extents") / scale,
            colors=torch.tensor([row["color"]["rgb"] for row in rows], dtype=torch.float64).reshape(len(rows), 3),
            opacities=column("opacity")[:, 0],
            shape_ids=torch.tensor([int(row["shape_id"]) for row in rows], dtype=torch.long),
            beta=column("beta")[:, 0],
        ).map(lambda t: t.float() if t.is_floating_point() else t)
        stages = torch.tensor([int(row.get("stage", 0)) for row in rows], dtype=torch.long)  # files before stage ids: 0
        constraints = None
        if any("constraint" in shape for shape in shapes):
            free = {"rotation": None, "aspect": None}
            constraints = ShapeConstraints.from_json([shape.get("constraint", free) for shape in shapes], len(shapes))
        scene = Scene.from_params(params, bank, int(canvas["scene_height"]), int(canvas["scene_width"]),
                                  tuple(data["background"]["rgb"]), stages=stages, constraints=constraints)
    except (KeyError, TypeError, IndexError) as error:
        raise InputError(f"the JSON scene is missing or has a malformed field ({error!r})") from error
    scene.metadata = dict(data.get("metadata") or {})
    return scene


def _bank_from_shapes(shapes: list[dict[str, Any]]) -> TextureBank:
    entries = []
    for shape in shapes:
        kind = _KIND_IDS[shape["kind"]]
        if kind != KIND_TEXTURE:
            entries.append(BankEntry(shape["name"], kind, None, shape.get("source", "")))
            continue
        if "png" in shape:
            image = Image.open(io.BytesIO(base64.b64decode(shape["png"]))).convert("RGBA")
            rgba = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)
        else:
            rgba = _texture_from_source(shape)
        entries.append(BankEntry(shape["name"], kind, rgba, shape.get("source", "")))
    return TextureBank(entries)


def _texture_from_source(shape: dict[str, Any]) -> torch.Tensor:
    source = shape.get("source", "")
    spec = source[len("builtin:"):] if source.startswith("builtin:") else source
    size = max(int(shape.get("width", 128)), int(shape.get("height", 128)))
    try:
        probe = TextureBank()
        probe.add(spec, texture_size=size)
    except InputError as error:
        raise InputError(
            f"cannot rebuild shape {shape['name']!r} from its source {source!r} ({error}); "
            "export the JSON with embed_textures=True or pass the bank"
        ) from error
    return probe[0].rgba
