"""``Scene``: the raw (unconstrained) parameters of a painting, their activations, rendering at
any scale, and a save format that cannot execute code.

Raw parameters and activations:

| raw tensor | shape | activation | activated |
| --- | --- | --- | --- |
| ``means`` | [N, 2] | identity | centre in canvas pixels |
| ``log_scales`` | [N, 2] | exp (after the aspect constraint) | half-extents in pixels |
| ``rotations`` | [N] | identity (or the rotation constraint) | radians |
| ``color_logits`` | [N, 3] | sigmoid | tint in [0, 1] |
| ``opacity_logits`` | [N] | sigmoid | opacity in [0, 1] |
| ``beta_logits`` | [N] | sigmoid | colour blend in [0, 1] (-inf gives exactly 0) |
| ``shape_ids`` | [N] | - | bank index (int64) |
| ``stages`` | [N] | - | the fit's stage that added the primitive (int64, see below) |
| ``background_logits`` | [3] | sigmoid | background colour |

``stages`` records where each primitive came from in a fit: 0 for the primitives of the
initialisation, ``k`` for those added by the ``k``-th later stage of the coarse-to-fine
schedule (``stages:``, or a round of the search strategy), and in a budget fit the index of
the round (0 the first) whose primitives they are. A primitive that is pruned and re-seeded,
or relocated by the search strategy, takes the stage in which it was re-seeded (it is a new
primitive, painted on top); of a split primitive's two children, the first keeps the
parent's stage and the second takes the round's. Scenes made otherwise (``from_params``,
scene files written before the array existed) have stage 0 everywhere. Stages never affect
rendering.

``constraints`` (a :class:`~diffbmp.constraints.ShapeConstraints`, one entry per bank shape,
or None) bounds rotations (upright, or within a range) and keeps aspects (a circle stays a
circle, a glyph keeps its proportions) exactly, through the activations of ``rotations`` and
``log_scales`` (the maps are in :mod:`diffbmp.constraints`): whatever the raw values, the
activated ones keep them. Without constraints the activations are the plain ones above.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._tempfiles import temporary_for, writing
from .errors import InputError
from .constraints import ShapeConstraints
from .params import PrimitiveParams
from .primitives import BankEntry, TextureBank
from .render import composite

__all__ = ["Scene", "SCENE_FORMAT", "SCENE_FORMAT_VERSION", "logit"]

SCENE_FORMAT = "diffbmp-scene"
#: The newest scene format this version reads. Version 2 added shape constraints; a scene
#: without constraints is written as version 1, which diffbmp before it reads too.
SCENE_FORMAT_VERSION = 2
#: The most pixels a render or an export makes at once (a 16384 x 16384 canvas): beyond it the
#: memory needed (16 bytes a pixel and more) is refused before anything is allocated.
MAX_RENDER_PIXELS = 16384 * 16384
_RAW_NAMES = ("means", "log_scales", "rotations", "color_logits", "opacity_logits", "beta_logits")


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def logit(p: torch.Tensor | float, eps: float = 1e-6) -> torch.Tensor:
    """Inverse of the sigmoid, with ``p`` kept ``eps`` away from 0 and 1."""
    p = torch.as_tensor(p, dtype=torch.float32) if not isinstance(p, torch.Tensor) else p
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


@dataclass
class Scene:
    """A painting: N primitives over a background, on a ``height`` x ``width`` canvas.

    The raw tensors are what an optimiser updates; :meth:`params` applies the activations.
    """

    height: int
    width: int
    bank: TextureBank
    means: torch.Tensor
    log_scales: torch.Tensor
    rotations: torch.Tensor
    color_logits: torch.Tensor
    opacity_logits: torch.Tensor
    beta_logits: torch.Tensor
    shape_ids: torch.Tensor
    background_logits: torch.Tensor = field(default_factory=lambda: logit(torch.ones(3)))
    metadata: dict[str, Any] = field(default_factory=dict)
    #: [N] int64: the fit's stage that added each primitive (None: stage 0 for all).
    stages: torch.Tensor | None = None
    #: Rotation and aspect constraints, one per bank shape (None: none).
    constraints: ShapeConstraints | None = None

    def __post_init__(self) -> None:
        if self.stages is None:
            self.stages = torch.zeros(self.means.shape[0], dtype=torch.long, device=self.means.device)
        self._check_constraints(self.constraints)

    def _check_constraints(self, constraints: ShapeConstraints | None) -> None:
        if constraints is not None and len(constraints) != len(self.bank):
            raise InputError(f"the scene's constraints are for {len(constraints)} shapes but its bank has "
                             f"{len(self.bank)} ({', '.join(self.bank.names)}); give one constraint per shape")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_params(
        cls,
        params: PrimitiveParams,
        bank: TextureBank,
        height: int,
        width: int,
        background: torch.Tensor | tuple[float, float, float] = (1.0, 1.0, 1.0),
        *,
        stages: torch.Tensor | None = None,
        constraints: ShapeConstraints | None = None,
    ) -> "Scene":
        """A scene whose activated parameters are ``params`` (up to the logit clamp).

        ``stages`` ([N] whole numbers >= 0) gives each primitive's stage (default: all 0).
        With ``constraints``, the raw tensors are set so that :meth:`params` gives ``params``
        back wherever they keep the constraints (elsewhere the nearest that does: a rotation
        outside a range its nearer bound, a kept aspect the geometric mean size).
        """
        params.validate(len(bank))
        detach = lambda t: t.detach().clone()  # noqa: E731
        beta = params.beta_or_zeros().detach()
        # Exactly 0 and 1 are kept exact: sigmoid(-inf) = 0, sigmoid(inf) = 1.
        beta_logits = torch.where(beta <= 0, -math.inf, torch.where(beta >= 1, math.inf, logit(beta)))
        background = torch.as_tensor(background, dtype=params.dtype, device=params.device)
        if stages is not None:
            stages = torch.as_tensor(stages)
            if tuple(stages.shape) != (len(params),) or stages.is_floating_point() or stages.dtype == torch.bool \
                    or (len(params) and int(stages.min()) < 0):
                raise InputError(f"stages must be {len(params)} whole numbers >= 0 (one per primitive), got "
                                 f"{stages.dtype} of shape {list(stages.shape)}")
            stages = stages.detach().clone().long().to(params.device)
        scene = cls(
            height=int(height),
            width=int(width),
            bank=bank,
            means=detach(params.means),
            log_scales=torch.log(detach(params.scales)),
            rotations=detach(params.rotations),
            color_logits=logit(detach(params.colors)),
            opacity_logits=logit(detach(params.opacities)),
            beta_logits=beta_logits.to(params.dtype),
            shape_ids=detach(params.shape_ids).long(),
            background_logits=logit(background.detach().clone()),
            stages=stages,
        )
        if constraints is None:
            return scene
        return scene._under(constraints, params.scales.detach(), params.rotations.detach(), start=False)

    @classmethod
    def empty(cls, bank: TextureBank, height: int, width: int, background=(1.0, 1.0, 1.0)) -> "Scene":
        """A scene with no primitives."""
        zeros = lambda *shape: torch.zeros(*shape)  # noqa: E731
        params = PrimitiveParams(zeros(0, 2), zeros(0), torch.ones(0, 2), zeros(0, 3), zeros(0), torch.zeros(0, dtype=torch.long))
        return cls.from_params(params, bank, height, width, background)

    # ------------------------------------------------------------------ activations
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def params(self) -> PrimitiveParams:
        """The activated parameters (differentiable with respect to the raw tensors)."""
        constraints = self.constraints
        if constraints is None:
            rotations, log_scales = self.rotations, self.log_scales
        else:
            rotations = constraints.rotations(self.rotations, self.shape_ids)
            log_scales = constraints.log_scales(self.log_scales, self.shape_ids)
        return PrimitiveParams(
            means=self.means,
            rotations=rotations,
            scales=torch.exp(log_scales),
            colors=torch.sigmoid(self.color_logits),
            opacities=torch.sigmoid(self.opacity_logits),
            shape_ids=self.shape_ids,
            beta=torch.sigmoid(self.beta_logits),
        )

    def background(self) -> torch.Tensor:
        """Background colour [3] in [0, 1]."""
        return torch.sigmoid(self.background_logits)

    def raw_tensors(self) -> dict[str, torch.Tensor]:
        """The optimisable tensors by name (including ``background_logits``)."""
        return {name: getattr(self, name) for name in (*_RAW_NAMES, "background_logits")}

    # ------------------------------------------------------------------ constraints
    def with_constraints(self, constraints: ShapeConstraints | None, *, start: bool = False) -> "Scene":
        """This scene under ``constraints`` (None: none): the raw rotations and log scales are
        set from the activated ones by the inverse maps, so that where the primitives already
        keep the constraints they stay as they are (see :meth:`from_params`). The same
        constraints give this scene back unchanged.

        ``start``: for primitives about to be optimised, a rotation outside its range starts
        at the range's centre and one inside it a little inside its bounds
        (:meth:`~diffbmp.constraints.ShapeConstraints.raw_rotations`).
        """
        if constraints == self.constraints:
            return self
        with torch.no_grad():
            params = self.params()
            return self._under(constraints, params.scales, params.rotations, start=start)

    def _under(self, constraints: ShapeConstraints | None, scales: torch.Tensor, rotations: torch.Tensor, *,
               start: bool) -> "Scene":
        """This scene under ``constraints``, its primitives with activated ``scales`` and ``rotations``."""
        self._check_constraints(constraints)
        with torch.no_grad():
            if constraints is None:
                log_scales = scales.log()
            else:
                log_scales = constraints.raw_log_scales(scales, self.shape_ids)
                rotations = constraints.raw_rotations(rotations, self.shape_ids, start=start)
        return self._replace(log_scales=log_scales.contiguous(), rotations=rotations.clone().contiguous(),
                             constraints=constraints)

    def raw_geometry(self, scales: torch.Tensor, rotations: torch.Tensor, shape_ids: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw (log scales, rotations) of primitives of ``shape_ids`` whose activated half-extents
        are ``scales`` and rotations ``rotations`` under this scene's constraints (for edits of
        the raw tensors, e.g. splitting a primitive)."""
        if self.constraints is None:
            return scales.log(), rotations
        return (self.constraints.raw_log_scales(scales, shape_ids),
                self.constraints.raw_rotations(rotations, shape_ids))

    # ------------------------------------------------------------------ editing
    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Scene":
        """A copy on ``device`` / in ``dtype`` (shape ids stay int64)."""
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device=device, dtype=dtype if t.is_floating_point() and dtype is not None else t.dtype)

        return self._replace(**{name: move(t) for name, t in self.raw_tensors().items()}, shape_ids=self.shape_ids.to(device),
                             stages=self.stages.to(device))

    def detached(self) -> "Scene":
        """A copy whose tensors are detached clones (a snapshot of a fit in progress)."""
        return self._replace(**{n: t.detach().clone() for n, t in self.raw_tensors().items()}, shape_ids=self.shape_ids.clone(),
                             stages=self.stages.clone())

    def select(self, index: torch.Tensor) -> "Scene":
        """The primitives at ``index`` (mask or indices), keeping painting order."""
        return self._replace(**{n: getattr(self, n)[index] for n in _RAW_NAMES}, shape_ids=self.shape_ids[index],
                             stages=self.stages[index])

    def concat(self, other: "Scene") -> "Scene":
        """This scene's primitives followed (painted on top) by ``other``'s."""
        if other.bank is not self.bank and other.bank.names != self.bank.names:
            raise InputError("scenes can only be joined when they share a texture bank")
        if other.constraints != self.constraints:
            raise InputError("scenes can only be joined when they have the same constraints; give the other "
                             "scene this one's first with other.with_constraints(scene.constraints)")
        joined = {n: torch.cat([getattr(self, n), getattr(other, n).to(getattr(self, n))]) for n in _RAW_NAMES}
        return self._replace(**joined, shape_ids=torch.cat([self.shape_ids, other.shape_ids.to(self.shape_ids.device)]),
                             stages=torch.cat([self.stages, other.stages.to(self.stages.device)]))

    def _replace(self, **changes) -> "Scene":
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        values["metadata"] = dict(self.metadata)
        return Scene(**values)

    def check_drawable(self) -> None:
        """InputError when the scene cannot be drawn: NaN or infinite values (a fit that
        diverged), sizes of zero, shape ids outside its bank. Every export checks this before
        writing anything. (Infinite logits are fine: they stand for opacities of 0 or 1.)"""
        try:
            self.params().check_values(len(self.bank))
            if not bool(torch.isfinite(self.background()).all()):
                raise InputError("its background colour is NaN")
        except InputError as error:
            raise InputError(f"the scene cannot be drawn: {error}") from None

    # ------------------------------------------------------------------ rendering
    def scaled_params(self, scale: float = 1.0) -> PrimitiveParams:
        """Activated parameters on a canvas ``scale`` times larger (positions and sizes scaled)."""
        params = self.params()
        if scale == 1.0:
            return params
        params.means = params.means * scale
        params.scales = params.scales * scale
        return params

    def canvas_size(self, scale: float = 1.0) -> tuple[int, int]:
        """(height, width) of the canvas rendered at ``scale``."""
        return max(1, int(round(self.height * scale))), max(1, int(round(self.width * scale)))

    def raster_size(self, scale: float = 1.0) -> tuple[int, int]:
        """:meth:`canvas_size`, for a raster made at ``scale``: InputError when it is more than
        MAX_RENDER_PIXELS, before anything is allocated."""
        height, width = self.canvas_size(scale)
        if height * width > MAX_RENDER_PIXELS:
            raise InputError(
                f"at scale {scale:g} the {self.width}x{self.height} scene is {width}x{height} pixels ({height * width / 1e6:.0f} "
                f"megapixels, about {height * width * 16 / 2**30:.0f} GB to render), more than the {MAX_RENDER_PIXELS / 1e6:.0f} "
                "megapixels diffbmp renders at once; choose a smaller scale"
            )
        return height, width

    def render(
        self,
        scale: float = 1.0,
        *,
        blur: float = 0.0,
        background: torch.Tensor | None | bool = True,
        backend: str | None = None,
        bank: TextureBank | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Image [H*scale, W*scale, 3] and alpha; differentiable with respect to the raw tensors.

        Args:
            scale: resolution multiplier; primitives are resolution-independent, so a scene
                fitted at 256 px renders crisply at 2048 px with ``scale=8``.
            blur: soft-rasterization width in pixels of the *original* canvas.
            background: True for the scene's background colour, False/None for a transparent
                canvas (premultiplied image), or a tensor [3] / [H, W, 3].
            bank: a bank to draw with instead of the scene's own (e.g. the same shapes at a
                higher texture resolution, see :meth:`TextureBank.rebuilt`).
        """
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise InputError(f"scale must be a positive number, got {scale!r}")
        height, width = self.raster_size(scale)
        if background is True:
            background = self.background()
        elif background is False:
            background = None
        return composite(self.scaled_params(scale), bank or self.bank, background, height, width, blur=blur * scale, backend=backend)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> Path:
        """Write the scene (parameters, bank bitmaps, metadata) as a NumPy ``.npz`` archive.

        The file holds plain arrays and JSON only, so loading it cannot run code. The write is
        atomic: an interrupted save never leaves a truncated file behind.
        """
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        arrays: dict[str, np.ndarray] = {}
        for name, tensor in self.raw_tensors().items():
            arrays[name] = tensor.detach().cpu().numpy()
        arrays["shape_ids"] = self.shape_ids.detach().cpu().long().numpy()
        arrays["stages"] = self.stages.detach().cpu().long().numpy()
        bank_index = []
        for i, entry in enumerate(self.bank):
            bank_index.append({"name": entry.name, "kind": entry.kind, "source": entry.source})
            if entry.rgba is not None:
                arrays[f"texture_{i}"] = entry.rgba.detach().cpu().float().numpy()
        constrained = self.constraints is not None
        header = {
            "format": SCENE_FORMAT,
            "version": SCENE_FORMAT_VERSION if constrained else 1,
            "height": self.height,
            "width": self.width,
            "bank": bank_index,
            "metadata": self.metadata,
            **({"constraints": self.constraints.to_json()} if constrained else {}),
        }
        arrays["header"] = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = temporary_for(path)
            try:
                with os.fdopen(fd, "wb") as handle:
                    np.savez_compressed(handle, **arrays)
                os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp's 0600 is for secrets, not scenes
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str = "cpu") -> "Scene":
        """Read a scene written by :meth:`save` (never unpickles anything)."""
        path = Path(path)
        if not path.exists():
            raise InputError(f"scene file {str(path)!r} does not exist")
        if not zipfile.is_zipfile(path):
            raise InputError(f"{str(path)!r} is not a diffbmp scene file: {_what_it_is(path)}, not an .npz archive")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except ValueError:  # object arrays, which only pickle can read: never offered
            raise InputError(f"{str(path)!r} is not a diffbmp scene file: it holds Python objects that diffbmp never "
                             "writes (and never unpickles)") from None
        except (OSError, zipfile.BadZipFile, EOFError) as error:
            raise InputError(f"{str(path)!r} is a damaged scene file ({error}); save the scene again") from None
        if "header" not in arrays:
            raise InputError(f"{str(path)!r} is not a diffbmp scene file (no header)")
        try:
            header = json.loads(arrays["header"].tobytes().decode("utf-8"))
        except ValueError as error:
            raise InputError(f"{str(path)!r} has a corrupt header ({error})") from error
        if not isinstance(header, dict) or header.get("format") != SCENE_FORMAT:
            found = header.get("format") if isinstance(header, dict) else type(header).__name__
            raise InputError(f"{str(path)!r} is not a diffbmp scene file (format {found!r})")
        version = header.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise InputError(f"{str(path)!r} is a damaged scene file: its format version is {version!r}")
        if version > SCENE_FORMAT_VERSION:
            raise InputError(
                f"{str(path)!r} was written by a newer diffbmp (scene format {header['version']}, this version reads "
                f"up to {SCENE_FORMAT_VERSION}); upgrade diffbmp with `pip install -U diffbmp`"
            )
        problem = _scene_file_problem(header, arrays)
        if problem is not None:
            raise InputError(f"{str(path)!r} is a damaged scene file: {problem}; save or export the scene again")
        entries = []
        for i, info in enumerate(header["bank"]):
            rgba = arrays.get(f"texture_{i}")
            entries.append(BankEntry(info["name"], int(info["kind"]), None if rgba is None else torch.from_numpy(rgba.copy()), info.get("source", "")))
        tensor = lambda name: torch.from_numpy(arrays[name].copy()).to(device)  # noqa: E731
        return cls(
            height=int(header["height"]),
            width=int(header["width"]),
            bank=TextureBank(entries),
            **{name: tensor(name) for name in (*_RAW_NAMES, "background_logits")},
            shape_ids=torch.from_numpy(arrays["shape_ids"].copy()).long().to(device),
            metadata=header.get("metadata", {}),
            # Files written before stages were recorded have none: stage 0 everywhere.
            stages=torch.from_numpy(arrays["stages"].astype(np.int64)).to(device) if "stages" in arrays else None,
            constraints=None if header.get("constraints") is None else ShapeConstraints.from_json(header["constraints"], len(entries)),
        )


#: The parameter arrays of a scene file, with the width of each row (None: one value per primitive).
_FILE_ARRAYS = {"means": 2, "log_scales": 2, "rotations": None, "color_logits": 3, "opacity_logits": None,
                "beta_logits": None}
#: The largest canvas side a scene file may claim.
MAX_CANVAS_SIDE = 65536


def _scene_file_problem(header: dict, arrays: dict[str, np.ndarray]) -> str | None:
    """What is wrong with a scene file's contents (every field load() reads), or None."""
    for key in ("height", "width"):
        value = header.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_CANVAS_SIDE:
            return f"its canvas {key} is {value!r} (a whole number from 1 to {MAX_CANVAS_SIDE} is expected)"
    bank = header.get("bank")
    if not isinstance(bank, list) or not bank:
        return "it lists no primitives"
    for index, info in enumerate(bank):
        if not isinstance(info, dict) or not isinstance(info.get("name"), str) or info.get("kind") not in (0, 1, 2):
            return f"primitive {index} of its bank is {info!r}"
        texture = arrays.get(f"texture_{index}")
        if info["kind"] == 0:
            if texture is None or texture.ndim != 3 or texture.shape[2] != 4 or 0 in texture.shape[:2] \
                    or texture.dtype.kind != "f" or not np.isfinite(texture).all() or texture.min() < 0 or texture.max() > 1:
                return f"the bitmap of primitive {index} ({info['name']!r}) is missing or not RGBA values in [0, 1]"
    if not isinstance(header.get("metadata", {}), dict):
        return "its metadata is not a mapping"
    if header.get("constraints") is not None:
        try:
            ShapeConstraints.from_json(header["constraints"], len(bank))
        except InputError as error:
            return str(error)
    ids = arrays.get("shape_ids")
    if ids is None or ids.ndim != 1 or ids.dtype.kind not in "iu":
        return "its shape ids are missing or not whole numbers"
    n = ids.shape[0]
    if n and (int(ids.min()) < 0 or int(ids.max()) >= len(bank)):
        return f"its shape ids reach outside the {len(bank)} primitives of its bank"
    stages = arrays.get("stages")  # absent in files written before stages were recorded
    if stages is not None and (stages.shape != (n,) or stages.dtype.kind not in "iu" or (n and int(stages.min()) < 0)):
        return f"its 'stages' array is {stages.dtype} of shape {list(stages.shape)}, expected {n} whole numbers >= 0"
    for name, width in {**_FILE_ARRAYS, "background_logits": "background"}.items():
        array = arrays.get(name)
        expected = (3,) if width == "background" else (n,) if width is None else (n, width)
        if array is None or array.shape != expected or array.dtype.kind != "f":
            shape = None if array is None else list(array.shape)
            return f"its {name!r} array is {'missing' if array is None else f'of shape {shape} ({array.dtype})'}, expected {list(expected)} floats"
    return None


def _what_it_is(path: Path) -> str:
    """A few words on what a file that is not a scene seems to be."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as error:
        return f"it cannot be read ({error.strerror or error})"
    if not head:
        return "it is empty"
    for magic, kind in ((b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
                        (b"8BPS", "a PSD file"), (b"\x93NUMPY", "a single NumPy array (.npy)")):
        if head.startswith(magic):
            return f"it is {kind}"
    try:
        head.decode("utf-8")
        return "it is a text file"
    except UnicodeDecodeError:
        return "its contents are not a scene's"

