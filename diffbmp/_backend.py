"""Finding, building and choosing the rendering backends.

The native extensions are imported from the package when ``pip install`` built them ahead of
time, and otherwise compiled on first use (with a visible message) into diffbmp's extension
cache (diffbmp/_jit.py), from the same sources and flags (diffbmp/_build_spec.py).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import warnings
from pathlib import Path
from types import ModuleType
from typing import Iterator

import torch

from . import _build_spec, _jit, _resources
from .errors import BackendUnavailableError, InputError

BACKENDS = ("torch", "cpu", "cuda")

_lock = threading.Lock()
_modules: dict[str, ModuleType] = {}
_failures: dict[str, str] = {}
_warned_fallback = False


def csrc_dir() -> Path:
    """The C++/CUDA sources: shipped inside the package, or beside it in a source checkout."""
    found = _resources.csrc_dir()
    if found is None:
        package = _resources.PACKAGE
        raise BackendUnavailableError(
            f"diffbmp's C++ sources are missing (looked in {package / '_csrc'} and {package.parent / 'csrc'}); "
            "reinstall the package with `pip install .` from a source checkout"
        )
    return found


def _jit_build(kind: str) -> ModuleType:
    sources = _build_spec.sources(kind, str(csrc_dir()))
    return _jit.compile_extension(_build_spec.JIT_MODULES[kind], kind, sources, cuda=kind == "cuda")


def native_module(kind: str) -> ModuleType:
    """The compiled ``kind`` ("cpu" or "cuda") extension, building it if needed."""
    with _lock:
        if kind in _modules:
            return _modules[kind]
        if kind in _failures:
            raise BackendUnavailableError(_failures[kind])
        try:
            module = importlib.import_module(_build_spec.AOT_MODULES[kind])
        except ImportError:
            try:
                module = _jit_build(kind)
            except Exception as error:  # the compiler's own message is the useful part
                _failures[kind] = (
                    f"the {kind} backend could not be compiled: {str(error).strip()[-2000:]}\n"
                    "Fix: install a C++ compiler (and the CUDA toolkit for the cuda backend) and ninja, "
                    "or pass backend='torch' to use the slow reference renderer."
                )
                raise BackendUnavailableError(_failures[kind]) from error
        chosen = _pixel_path_from_environment() if kind == "cpu" else ""
        if chosen:
            module.set_pixel_path(chosen)
        _modules[kind] = module
        return module


#: Values of DIFFBMP_CPU_PIXELS: how the cpu backend's tile loops evaluate pixels.
CPU_PIXEL_PATHS = ("lanes", "scalar")


def _pixel_path_from_environment() -> str:
    """``DIFFBMP_CPU_PIXELS``: "lanes" (vectors of neighbouring pixels of a row, the default of
    a build for a processor with AVX2) or "scalar" (one pixel at a time: the reference the
    vector path is tested against, and the default of other builds); "" when unset."""
    path = os.environ.get("DIFFBMP_CPU_PIXELS", "").strip().lower()
    if path and path not in CPU_PIXEL_PATHS:
        raise InputError(f"DIFFBMP_CPU_PIXELS={path!r} is not a pixel path; use one of {', '.join(CPU_PIXEL_PATHS)} (or leave it unset)")
    return path


@contextlib.contextmanager
def cpu_pixel_path(path: str) -> Iterator[None]:
    """Within the block, the cpu backend evaluates pixels by ``path`` ("lanes" or "scalar");
    for tests and benchmarks that compare the two (the setting is process-wide)."""
    if path not in CPU_PIXEL_PATHS:
        raise InputError(f"unknown pixel path {path!r}; choose one of {', '.join(CPU_PIXEL_PATHS)}")
    module = native_module("cpu")
    before = module.pixel_path()
    module.set_pixel_path(path)
    try:
        yield
    finally:
        module.set_pixel_path(before)


#: Values of DIFFBMP_CUDA_BACKWARD: how the cuda backend sums each primitive's gradient.
CUDA_BACKWARD_MODES = ("deterministic", "atomic")


def cuda_backward_mode() -> str:
    """``DIFFBMP_CUDA_BACKWARD``: "deterministic" (the default: per-pair rows summed in a fixed
    order, the same bits on every run) or "atomic" (float atomics: no per-pair rows, but the
    last bits vary from run to run; ignored while torch.use_deterministic_algorithms is on)."""
    mode = os.environ.get("DIFFBMP_CUDA_BACKWARD", "").strip().lower() or "deterministic"
    if mode not in CUDA_BACKWARD_MODES:
        raise InputError(f"DIFFBMP_CUDA_BACKWARD={mode!r} is not a backward mode; use one of {', '.join(CUDA_BACKWARD_MODES)} (or leave it unset)")
    return mode


def resolve_backend(requested: str | None, device: torch.device) -> str:
    """The backend to render tensors on ``device`` with: ``requested`` or the fastest available."""
    global _warned_fallback
    if requested is not None:
        if requested not in BACKENDS:
            raise InputError(f"unknown backend {requested!r}; choose one of {', '.join(BACKENDS)} (or None for automatic)")
        if requested == "cuda" and device.type != "cuda":
            raise InputError("backend='cuda' needs the parameters on a CUDA device; move them with .to('cuda')")
        if requested == "cpu" and device.type != "cpu":
            raise InputError(f"backend='cpu' needs the parameters on the CPU, they are on {device}")
        return requested
    if device.type == "cuda":
        return "cuda"
    if device.type != "cpu":
        return "torch"
    try:
        native_module("cpu")
        return "cpu"
    except BackendUnavailableError as error:
        if not _warned_fallback:
            warnings.warn(f"{error}\nFalling back to the slow torch backend.", RuntimeWarning, stacklevel=3)
            _warned_fallback = True
        return "torch"
