"""Compiling a native extension on first use, into a cache that builds never share by accident.

Each build has its own folder under ``$DIFFBMP_CACHE_DIR/extensions`` (default
``~/.cache/diffbmp/extensions``), named by a hash of everything that makes it: the sources'
contents and folder (the build file names sources by absolute path), the flags, the compiler,
and the versions of diffbmp, PyTorch, Python and CUDA. Two checkouts or two versions of
diffbmp therefore never rebuild each other's extension, nor load one built from other sources. A file lock beside the folder lets one process compile while
the others wait (and say so); the operating system releases it when its holder dies, so a
killed build never leaves the next one waiting.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Sequence

from . import __version__, _build_spec, _resources
from ._locks import exclusive
from .errors import BackendUnavailableError

#: How long a process waits for another one's build before giving up.
WAIT_SECONDS = 30 * 60
#: What counts as a source file for the cache key.
SOURCE_SUFFIXES = {".h", ".cuh", ".cpp", ".cu"}


def cache_root() -> Path:
    return Path(os.environ.get("DIFFBMP_CACHE_DIR") or Path.home() / ".cache" / "diffbmp") / "extensions"


def build_directory(label: str, csrc: Path, flags: dict[str, list[str]]) -> Path:
    """The cache folder of one build: ``<label>-torch<version>-py<version>-<hash>``."""
    import torch

    digest = hashlib.sha256()
    # The folder too: the build file names every source by its absolute path, so two checkouts
    # sharing one folder would each find the other's build stale and compile again.
    for part in (__version__, torch.__version__, sys.version, torch.version.cuda or "", os.environ.get("CXX", ""),
                 json.dumps(flags, sort_keys=True), str(csrc.resolve())):
        digest.update(part.encode() + b"\0")
    for path in sorted(p for p in csrc.rglob("*") if p.suffix in SOURCE_SUFFIXES and p.is_file()):
        digest.update(path.relative_to(csrc).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    return cache_root() / f"{label}-torch{torch.__version__.split('+')[0]}-{python}-{digest.hexdigest()[:16]}"


def build_lock(build_dir: Path, label: str) -> contextlib.AbstractContextManager:
    """One process at a time builds in ``build_dir``; the others wait, saying who they wait for
    (diffbmp/_locks.py: a killed builder never leaves the next one waiting)."""
    def waiting(holder: str) -> None:
        print(f"diffbmp: {holder} is compiling the {label} backend into {build_dir}; waiting for it ...",
              file=sys.stderr, flush=True)

    def gave_up(holder: str) -> BaseException:
        return BackendUnavailableError(
            f"{holder} has been compiling the {label} backend into {build_dir} for {WAIT_SECONDS // 60} minutes; "
            "stop it, or set DIFFBMP_CACHE_DIR to build elsewhere"
        )

    return exclusive(Path(f"{build_dir}.lock"), wait=WAIT_SECONDS, on_wait=waiting, on_timeout=gave_up)


def compile_extension(name: str, label: str, sources: Sequence[str], *, cuda: bool = False,
                      defines: Sequence[str] = ()) -> ModuleType:
    """Load the extension ``name`` built from ``sources`` (paths inside the C++ source folder),
    compiling it first unless this exact build is cached. ``label`` names it in messages."""
    from torch.utils import cpp_extension

    csrc = _resources.csrc_dir()
    if csrc is None:
        raise BackendUnavailableError("diffbmp's C++ sources are missing; reinstall the package with `pip install .`")
    flags = {"cxx": [*_build_spec.cxx_flags(this_machine=True), *defines], "ld": _build_spec.link_flags(),
             "nvcc": [*_build_spec.NVCC_FLAGS, *defines] if cuda else []}
    build_dir = build_directory(label, csrc, flags)
    with build_lock(build_dir, label):
        build_dir.mkdir(exist_ok=True)
        if not any(build_dir.glob(f"{name}.*")):
            print(f"diffbmp: compiling the {label} backend (once; about a minute) into {build_dir} ...",
                  file=sys.stderr, flush=True)
        # PyTorch's own lock file in the folder, if a killed build left one: with ours held,
        # nobody else is building here.
        (build_dir / "lock").unlink(missing_ok=True)
        return cpp_extension.load(
            name=name,
            sources=list(sources),
            extra_include_paths=_build_spec.include_dirs(str(csrc)),
            extra_cflags=flags["cxx"],
            extra_ldflags=flags["ld"],
            extra_cuda_cflags=flags["nvcc"] or None,
            build_directory=str(build_dir),
            verbose=os.environ.get("DIFFBMP_VERBOSE_BUILD") == "1",
        )
