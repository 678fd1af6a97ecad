"""Layered Photoshop documents: one pixel layer per primitive, in painting order.

The document is 8-bit RGB, tagged sRGB (an embedded ICC profile) with a resolution (``dpi``).
From the bottom: the background as an opaque layer (left out with ``transparent``), then
primitive 0, 1, ... each as a pixel layer holding the primitive's whole footprint (beyond the
canvas where the primitive reaches beyond it, see :mod:`diffbmp.exports.layers`), named
``0007 brush_flat #a35c2e`` (index, shape, painted colour), with its opacity as the layer
opacity and normal blending. Layers are grouped by the stage that added them, by shape, or in
runs by index (:mod:`diffbmp.exports.groups`), always in an order that paints the same
picture. The merged image every PSD carries (what viewers without layer support and
thumbnails show) is our own render of the scene.

Only the plainest structures are written, with psd-tools' record classes and its RLE
encoder: pixel layers with a transparency channel, normal blend mode, group dividers. That
is what Photoshop, GIMP and Krita all read. The records are assembled directly rather than
through ``PSDImage``'s layer-editing API, whose every insertion re-walks the whole layer
tree (quadratic: minutes for 5,000 layers), and whose save re-composites all layers.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tempfile
from pathlib import Path
from typing import BinaryIO, Hashable, Tuple, Union

import numpy as np
import torch
from psd_tools.constants import BlendMode, ChannelID, ColorMode, Compression, Resource, SectionDivider, Tag
from psd_tools.psd import PSD
from psd_tools.psd.color_mode_data import ColorModeData
from psd_tools.psd.header import FileHeader
from psd_tools.psd.image_data import ImageData
from psd_tools.psd.image_resources import ImageResource, ImageResources, ResoulutionInfo
from psd_tools.psd.layer_and_mask import (
    ChannelData,
    ChannelDataList,
    ChannelInfo,
    GlobalLayerMaskInfo,
    LayerRecord,
)
from psd_tools.psd.tagged_blocks import TaggedBlocks

from ..colour import srgb_icc_profile
from ..errors import InputError
from ..params import PrimitiveParams
from ..primitives import TextureBank
from ..scene import Scene
from .atomic import atomic_open
from .groups import GROUP_BY, LayerGroup, Node, group_layers, range_label
from .layers import PrimitiveLayer, footprint_boxes, iter_layers, layer_boxes, painted_colours
from .raster import render_bands
from .selection import source_indices
from .textures import bank_for_scale, hex_color, to_uint8

__all__ = [
    "build_psd", "write_psd", "layer_name", "group_name", "stage_group_name", "shape_group_name",
    "DEFAULT_GROUP_SIZE", "DEFAULT_DPI", "GROUP_BY", "MAX_PSD_SIDE", "MAX_PSD_RECORDS",
]

#: The most layers a group holds directly; bigger groups are split into sub-groups of this
#: many (0: never split; with ``group_by="none"``, 0 puts every layer at the top level).
DEFAULT_GROUP_SIZE = 500
#: Resolution written in the document when none is given (Photoshop's own default).
DEFAULT_DPI = 72.0
#: Largest side of a PSD; larger documents need Photoshop's PSB format.
MAX_PSD_SIDE = 30000
_DEPTH = 8
_VERSION = 1  # PSD (2 would be PSB)
#: Resolution is stored as 16.16 fixed point.
_MAX_DPI = 65535


def layer_name(index: int, shape: str, count: int, colour: str | None = None) -> str:
    """``0007 brush_flat #a35c2e``: the primitive's index, zero-padded so names sort, its
    shape, and (when given) the colour it paints."""
    name = f"{index:0{_digits(count)}d} {shape}"
    return f"{name} {colour}" if colour else name


def group_name(first: int, last: int, count: int) -> str:
    """``primitives 0500-0999`` for the group holding primitives ``first`` to ``last``."""
    return "primitives " + range_label(range(first, last + 1), _digits(count))


def stage_group_name(stage: int, indices: list[int], count: int) -> str:
    """``stage 1 (0500-0999)``: the group of a stage's layers, by the primitives' index range
    (``stage 1 (0500-1210, 312 layers)`` when they are not one unbroken run)."""
    return f"stage {stage} ({range_label(indices, _digits(count))})"


def shape_group_name(shape: str, indices: list[int]) -> str:
    """``brush_flat (312 layers)``: the group of a shape's layers."""
    return f"{shape} ({len(indices)} layer{'s' if len(indices) != 1 else ''})"


def _digits(count: int) -> int:
    return max(4, len(str(max(count - 1, 0))))


#: The most layer records a PSD (and a PSB) can hold: the count is a signed 16-bit number.
#: Every layer, the background and each group's two records count.
MAX_PSD_RECORDS = 32767


def build_psd(
    scene: Scene,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    group_by: str = "stage",
    group_size: int = DEFAULT_GROUP_SIZE,
    transparent: bool = False,
    dpi: float = DEFAULT_DPI,
    texture_size: int | None = None,
    backend: str | None = None,
) -> PSD:
    """The scene as a layered PSD document (psd-tools' low-level ``PSD`` record), in memory.

    The document :func:`write_psd` writes, read back: see it for the arguments. Large
    documents are better written straight to a file with :func:`write_psd`, which streams.
    """
    buffer = io.BytesIO()
    _write_document(buffer, scene, scale, blur=blur, group_by=group_by, group_size=group_size, transparent=transparent,
                    dpi=dpi, texture_size=texture_size, backend=backend)
    buffer.seek(0)
    try:
        from psd_tools.psd.parse_limits import ParseLimits
    except ImportError:  # a psd-tools before parse limits
        return PSD.read(buffer)
    # Our own bytes: psd-tools' guard against hostile files would refuse 30,000 layers.
    return PSD.read(buffer, parse_limits=ParseLimits(max_objects=None))


def write_psd(
    scene: Scene,
    path: str | os.PathLike,
    scale: float = 1.0,
    *,
    blur: float = 0.0,
    group_by: str = "stage",
    group_size: int = DEFAULT_GROUP_SIZE,
    transparent: bool = False,
    dpi: float = DEFAULT_DPI,
    texture_size: int | None = None,
    backend: str | None = None,
) -> Path:
    """Write ``scene`` as a layered PSD at ``path`` (atomically), streamed: each layer is
    encoded as soon as its atlas page is drawn and its pixels wait in a temporary file beside
    the output, so memory holds the layer records and one page, not every layer.

    Args:
        scene: the painting (a subset made by
            :func:`~diffbmp.exports.selection.select_primitives` names its layers by their
            indices in the whole scene).
        scale: resolution multiplier; ``scale=4`` gives a document 4x larger with sharper layers.
        blur: soft-rasterization width in pixels of the scene's canvas (0 for a finished painting).
        group_by: ``"stage"`` (a group per stage of the fit that added the primitives),
            ``"shape"`` (a group per shape), or ``"none"`` (runs of ``group_size`` by index).
            Groups never change the picture (see :mod:`diffbmp.exports.groups`); a grouping
            that would put every layer in one group falls back to ``"none"``.
        group_size: the most layers a group holds directly: bigger groups are split into
            sub-groups of this many; with ``"none"``, layers are grouped in runs of this many
            when there are more; 0 never splits (and with ``"none"`` never groups).
        transparent: leave out the background layer; the merged image gets an alpha channel.
        dpi: the resolution written in the document (pixels per inch; print size only).
        texture_size: bitmap resolution, see :func:`~diffbmp.exports.textures.bank_for_scale`.
        backend: rendering backend (None: the fastest for the scene's device).

    Raises:
        InputError: bad options, a document larger than a PSD allows, or more layers than a
            PSD holds (:data:`MAX_PSD_RECORDS`), before anything is drawn.
    """
    with atomic_open(path) as handle:
        _write_document(handle, scene, scale, blur=blur, group_by=group_by, group_size=group_size, transparent=transparent,
                        dpi=dpi, texture_size=texture_size, backend=backend, spill_folder=Path(path).expanduser().parent)
    return Path(path)


def _write_document(
    fp: BinaryIO, scene: Scene, scale: float, *, blur: float, group_by: str, group_size: int, transparent: bool,
    dpi: float, texture_size: int | None, backend: str | None, spill_folder: Path | None = None,
) -> None:
    """The PSD of :func:`write_psd`, written to ``fp`` front to back (no seeking)."""
    scene.check_drawable()
    _check_options(scale, blur, group_by, group_size, transparent, dpi)
    height, width = scene.canvas_size(scale)
    if max(height, width) > MAX_PSD_SIDE:
        largest = MAX_PSD_SIDE / max(scene.height, scene.width)
        raise InputError(
            f"a {width}x{height} px document is larger than the PSD format allows ({MAX_PSD_SIDE} px a side); "
            f"use a scale of at most {math.floor(largest * 100) / 100:g}"
        )
    scene.raster_size(scale)  # within what diffbmp renders at once
    fixed = 0 if transparent else 1  # the background's record
    if len(scene) + fixed > MAX_PSD_RECORDS:  # too many without counting groups: said before they are worked out
        raise InputError(_too_many_layers(len(scene), len(scene) + fixed, group_size, transparent, grouped=False))
    bank = bank_for_scale(scene, scale, texture_size)
    params = scene.scaled_params(scale).map(lambda t: t.detach())
    with torch.no_grad():
        full, _ = layer_boxes(params, bank, height, width, blur * scale)
    tree = _layer_tree(scene, footprint_boxes(full, height, width), group_by, group_size)
    records = _record_count(tree) + fixed
    if records > MAX_PSD_RECORDS:
        raise InputError(_too_many_layers(len(scene), records, group_size, transparent, grouped=True))
    header = FileHeader(version=_VERSION, channels=4 if transparent else 3, height=height, width=width, depth=_DEPTH,
                        color_mode=ColorMode.RGB)
    with tempfile.TemporaryFile(dir=spill_folder, prefix=".diffbmp-layers.") as spill:
        encoded = _spill_layers(scene, params, bank, height, width, blur * scale, backend, spill)
        pieces: list[_Piece] = []
        if not transparent:
            pieces.append(_encoded_piece(*_background_layer(scene.background(), height, width)))
        _add_pieces(tree, encoded, pieces)
        header.write(fp)
        ColorModeData().write(fp)
        _image_resources(dpi).write(fp, "macroman")
        _write_layer_section(fp, pieces, spill, -len(pieces) if transparent else len(pieces))
    _merged_image(scene, scale, bank, header, transparent, blur, backend).write(fp)


#: A layer record's bytes, then its channel data: bytes, or (offset, length) in the spill file.
_Piece = Tuple[bytes, Union[bytes, Tuple[int, int]]]


def _spill_layers(scene: Scene, params: PrimitiveParams, bank: TextureBank, height: int, width: int, blur: float,
                  backend: str | None, spill: BinaryIO) -> list[tuple[bytes, int, int]]:
    """Every primitive's layer record and the place of its channel data in ``spill``, by index:
    each layer is encoded as soon as its atlas page is drawn, and its pixels are let go."""
    names = [entry.name for entry in bank]
    shape_ids = scene.shape_ids.tolist()
    indices, total = source_indices(scene)
    colours = painted_colours(params, scene.bank)
    encoded: list[tuple[bytes, int, int]] = [(b"", 0, 0)] * len(scene)
    for layer in iter_layers(params, bank, height, width, blur=blur, backend=backend):
        n = layer.index
        record, data = _pixel_layer(layer, layer_name(indices[n], names[shape_ids[n]], total, hex_color(colours[n])))
        start = spill.tell()
        data.write(spill)
        encoded[n] = (_record_bytes(record), start, spill.tell() - start)
    return encoded


def _add_pieces(nodes: list[Node], encoded: list[tuple[bytes, int, int]], pieces: list[_Piece]) -> None:
    """The records of ``nodes`` in file order: a group is its closing divider, its children, then its folder."""
    for node in nodes:
        if isinstance(node, LayerGroup):
            pieces.append(_encoded_piece(*_divider("</Layer group>", SectionDivider.BOUNDING_SECTION_DIVIDER)))
            _add_pieces(node.children, encoded, pieces)
            pieces.append(_encoded_piece(*_divider(node.name, SectionDivider.CLOSED_FOLDER)))
        else:
            record, start, length = encoded[node]
            pieces.append((record, (start, length)))


def _too_many_layers(count: int, records: int, group_size: int, transparent: bool, grouped: bool) -> str:
    """What to do about a scene of ``count`` primitives whose document needs ``records`` layer
    records (at least that many when the groups are not ``grouped`` in yet)."""
    # Index runs of group_size cost two records per group: the largest part that fits.
    fixed = 0 if transparent else 1
    per_layer = 1 + (2 / group_size if group_size else 0)
    part = max(1, int((MAX_PSD_RECORDS - fixed - 2) / per_layer))
    need = f"with their groups that is {records} layers" if grouped else f"that is at least {records} layers"
    return (f"the scene has {count} primitives: {need}, more than the "
            f"{MAX_PSD_RECORDS} a PSD can hold (its layer count is a 16-bit number; Photoshop opens at most 8000); "
            f"export it in parts of at most {part} primitives (8000 for Photoshop) with --group-by none and --select "
            f"(--select index=0-{part - 1}, "
            f"then index={part}-{min(2 * part, count) - 1} ...; select= in Python), or the whole painting as SVG or PNG")


def _record_count(tree: list[Node]) -> int:
    """Layer records of a tree: one per layer, two per group (its folder and its end)."""
    return sum(2 + _record_count(node.children) if isinstance(node, LayerGroup) else 1 for node in tree)


def _record_bytes(record: LayerRecord) -> bytes:
    buffer = io.BytesIO()
    record.write(buffer, encoding="macroman", version=_VERSION)
    return buffer.getvalue()


def _encoded_piece(record: LayerRecord, data: ChannelDataList) -> tuple[bytes, bytes]:
    buffer = io.BytesIO()
    data.write(buffer)
    return _record_bytes(record), buffer.getvalue()


def _write_layer_section(fp: BinaryIO, pieces: list[_Piece], spill: BinaryIO, layer_count: int) -> None:
    """The layer and mask information section as psd-tools writes it: its length, the layer
    info (length, count, every record, then every layer's channel data, padded to 4 bytes),
    and an empty global layer mask; channel data stored in ``spill`` is copied from there."""
    mask_info = io.BytesIO()
    GlobalLayerMaskInfo().write(mask_info)
    if not pieces:
        fp.write(struct.pack(">II", 4 + len(mask_info.getvalue()), 0))
        fp.write(mask_info.getvalue())
        return
    body = 2 + sum(len(record) + (data[1] if isinstance(data, tuple) else len(data)) for record, data in pieces)
    padding = -body % 4
    fp.write(struct.pack(">IIh", 4 + body + padding + len(mask_info.getvalue()), body + padding, layer_count))
    for record, _ in pieces:
        fp.write(record)
    for _, data in pieces:
        if isinstance(data, bytes):
            fp.write(data)
            continue
        start, length = data
        spill.seek(start)
        while length:
            chunk = spill.read(min(length, 1 << 22))
            fp.write(chunk)
            length -= len(chunk)
    fp.write(b"\0" * padding)
    fp.write(mask_info.getvalue())


def _merged_image(scene: Scene, scale: float, bank: TextureBank, header: FileHeader, transparent: bool, blur: float,
                  backend: str | None) -> ImageData:
    """The merged image every PSD carries (our own render), drawn band by band."""
    height, width = header.height, header.width
    planes = np.empty((height, width, 4 if transparent else 3), dtype=np.uint8)
    for top, image, alpha in render_bands(scene, scale, bank, blur=blur, transparent=transparent, backend=backend):
        rgb = image.detach().float().cpu().numpy()
        if transparent:
            # Photoshop stores a transparent document's merged image over white, with its alpha
            # as the first extra channel (the negative layer count says so).
            a = alpha.detach().float().cpu().numpy()
            planes[top:top + rgb.shape[0]] = to_uint8(np.concatenate([rgb + (1.0 - a[..., None]), a[..., None]], axis=-1))
        else:
            planes[top:top + rgb.shape[0]] = to_uint8(rgb)
    image_data = ImageData(compression=Compression.RLE)
    image_data.set_data([planes[..., c].tobytes() for c in range(planes.shape[-1])], header)
    return image_data


def _layer_tree(scene: Scene, boxes: np.ndarray, group_by: str, group_size: int) -> list[Node]:
    """The layers (positions) and groups, bottom to top, from the layers' boxes [N, 4]."""
    indices, total = source_indices(scene)
    names = [entry.name for entry in scene.bank]
    digits = _digits(total)
    keys: list[Hashable] | None = None
    if group_by == "stage":
        keys = scene.stages.tolist()
        name = lambda key, members: stage_group_name(int(key), members, total)  # noqa: E731
    elif group_by == "shape":
        keys = scene.shape_ids.tolist()
        name = lambda key, members: shape_group_name(names[int(key)], members)  # noqa: E731
    else:
        name = lambda key, members: ""  # noqa: E731
    return group_layers(keys, boxes, indices, group_size, name, digits)


def _image_resources(dpi: float) -> ImageResources:
    """Version info, the sRGB ICC profile and the resolution (pixels per inch)."""
    resources = ImageResources.new()
    resources[Resource.ICC_PROFILE] = ImageResource(key=Resource.ICC_PROFILE, data=srgb_icc_profile())
    fixed = int(round(dpi * 65536))  # 16.16 fixed point
    # Units: 1 = pixels per inch for the resolution, 1 = inches for the displayed size.
    info = ResoulutionInfo(horizontal=fixed, horizontal_unit=1, width_unit=1, vertical=fixed, vertical_unit=1, height_unit=1)
    resources[Resource.RESOLUTION_INFO] = ImageResource(key=Resource.RESOLUTION_INFO, data=info)
    return resources


def _check_options(scale: float, blur: float, group_by: str, group_size: int, transparent: bool, dpi: float) -> None:
    if group_by not in GROUP_BY:
        raise InputError(f"group_by must be one of {', '.join(repr(g) for g in GROUP_BY)}, got {group_by!r}")
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 0:
        raise InputError(f"group_size must be a whole number >= 0 (0 never splits a group into sub-groups), got {group_size!r}")
    if not isinstance(transparent, (bool, np.bool_)):
        raise InputError(f"transparent must be True or False, got {transparent!r}")
    if isinstance(dpi, bool) or not (isinstance(dpi, (int, float)) and math.isfinite(dpi) and 0 < dpi <= _MAX_DPI):
        raise InputError(f"dpi must be a number of pixels per inch above 0 and at most {_MAX_DPI}, got {dpi!r}")
    if not (isinstance(blur, (int, float)) and math.isfinite(blur) and blur >= 0):
        raise InputError(f"blur must be a number >= 0 (pixels), got {blur!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
        raise InputError(f"scale must be a positive number, got {scale!r}")


def _named_record(name: str, **fields) -> LayerRecord:
    # The Pascal name is MacRoman and at most 255 bytes; the Unicode name block carries the
    # full name, and every editor prefers it.
    pascal = name.encode("mac_roman", errors="replace")[:255].decode("mac_roman")
    record = LayerRecord(name=pascal, tagged_blocks=TaggedBlocks(), **fields)
    record.tagged_blocks.set_data(Tag.UNICODE_LAYER_NAME, name)
    return record


def _encoded_layer(name: str, left: int, top: int, planes: list[tuple[int, np.ndarray]], opacity: int) -> tuple[LayerRecord, ChannelDataList]:
    """A pixel layer whose channels (transparency first) are RLE-encoded 8-bit planes."""
    height, width = planes[0][1].shape
    record = _named_record(name, top=top, left=left, bottom=top + height, right=left + width, opacity=opacity, blend_mode=BlendMode.NORMAL)
    data = ChannelDataList()
    for channel_id, plane in planes:
        if height == 0 or width == 0:
            channel = ChannelData(compression=Compression.RAW, data=b"")  # an empty layer
        else:
            channel = ChannelData(compression=Compression.RLE)
            channel.set_data(np.ascontiguousarray(plane).tobytes(), width, height, _DEPTH, _VERSION)
        record.channel_info.append(ChannelInfo(id=ChannelID(channel_id), length=len(channel.data) + 2))
        data.append(channel)
    return record, data


def _pixel_layer(layer: PrimitiveLayer, name: str) -> tuple[LayerRecord, ChannelDataList]:
    rgba = layer.rgba
    planes = [(ChannelID.TRANSPARENCY_MASK, rgba[..., 3])] + [(c, rgba[..., c]) for c in range(3)]
    top, left = (layer.top, layer.left) if rgba.size else (0, 0)
    return _encoded_layer(name, left, top, planes, layer.opacity)


def _background_layer(colour: torch.Tensor, height: int, width: int) -> tuple[LayerRecord, ChannelDataList]:
    rgb = to_uint8(colour.detach().float().cpu().numpy())
    opaque = np.full((height, width), 255, dtype=np.uint8)
    planes = [(ChannelID.TRANSPARENCY_MASK, opaque)] + [(c, np.full((height, width), rgb[c], dtype=np.uint8)) for c in range(3)]
    return _encoded_layer("background", 0, 0, planes, 255)


def _divider(name: str, kind: SectionDivider) -> tuple[LayerRecord, ChannelDataList]:
    """A group's opening (folder) or closing (bounding divider) record: no pixels.

    The group blends normally: for layers that themselves blend normally this composites
    exactly like pass-through, and every editor implements it.
    """
    record = _named_record(name, blend_mode=BlendMode.NORMAL)
    if kind == SectionDivider.BOUNDING_SECTION_DIVIDER:
        record.tagged_blocks.set_data(Tag.SECTION_DIVIDER_SETTING, kind=kind)
    else:
        record.tagged_blocks.set_data(Tag.SECTION_DIVIDER_SETTING, kind=kind, blend_mode=BlendMode.NORMAL)
    data = ChannelDataList()
    for channel_id in (ChannelID.TRANSPARENCY_MASK, 0, 1, 2):
        record.channel_info.append(ChannelInfo(id=ChannelID(channel_id), length=2))
        data.append(ChannelData(compression=Compression.RAW, data=b""))
    return record, data
