"""The one description of the native extensions: sources and flags.

Read by setup.py (ahead-of-time build) and by diffbmp._backend (just-in-time build), so the
two never drift apart. Imports nothing from diffbmp or torch at module level.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
import tempfile

#: Sources relative to the csrc/ folder.
CPU_SOURCES = ["cpu/ops_cpu.cpp", "cpu/bindings_cpu.cpp"]
# csrc/cuda/emulation/ (a host stand-in for CUDA used by tests/test_cuda_compiles.py) is never built here.
CUDA_SOURCES = ["cuda/ops_cuda.cpp", "cuda/rasterize_cuda.cu", "cuda/bindings_cuda.cpp"]
INCLUDE_DIRS = ["include"]

# The C++ standard is left to torch.utils.cpp_extension (its headers need the one it picks).
# -ffp-contract=off: no multiply-add fusion, so binning's two walks over a primitive's tiles
# take the same decisions on every host, aarch64 included, where GCC fuses by default
# (csrc/include/diffbmp/common.h, mul_rn; the device code uses explicitly rounded intrinsics).
# MSVC does not fuse under its default /fp:precise (Visual Studio 2022 and later).
#
# OpenMP: PyTorch's Linux and Windows builds run at::parallel_for on OpenMP, which is only
# parallel in code compiled with OpenMP; where the compiler has none (Apple's clang) the
# kernels build without it and run their loops on one thread, or on ATen's own thread pool
# where PyTorch was built with it. DIFFBMP_OPENMP=0 or 1 overrides the check.


def is_msvc() -> bool:
    """Windows builds use MSVC (torch.utils.cpp_extension's compiler there)."""
    return sys.platform == "win32"


@functools.lru_cache(maxsize=None)
def compiler_has_openmp() -> bool:
    """Whether the host compiler builds and links an OpenMP program (MSVC always does)."""
    if is_msvc():
        return True
    compiler = os.environ.get("CXX") or "c++"
    program = "#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n"
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run([compiler, "-fopenmp", "-x", "c++", "-", "-o", os.path.join(folder, "probe")],
                                  input=program, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def use_openmp() -> bool:
    """DIFFBMP_OPENMP=0/1, else whether the compiler has OpenMP."""
    setting = os.environ.get("DIFFBMP_OPENMP", "").strip()
    if setting in ("0", "1"):
        return setting == "1"
    return compiler_has_openmp()


def this_machine_vector_flags() -> list[str]:
    """``-mavx2`` where this machine's x86-64 processor has AVX2, so the cpu backend's pixel
    lanes (csrc/cpu/lanes.h) fill 256-bit registers instead of pairs of SSE2 ones (twice the
    speed). Only for builds that run where they are compiled (the on-first-use build, whose
    cache folder is keyed by its flags): a wheel built ahead of time stays portable."""
    if is_msvc() or platform.machine().lower() not in ("x86_64", "amd64"):
        return []
    import torch  # the builds that call this have torch at hand

    return ["-mavx2"] if torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") else []


def cxx_flags(openmp: bool | None = None, *, this_machine: bool = False) -> list[str]:
    """Host compiler flags (``openmp`` None: :func:`use_openmp`); ``this_machine``: for a build
    that runs only on the processor compiling it (:func:`this_machine_vector_flags`)."""
    openmp = use_openmp() if openmp is None else openmp
    if is_msvc():
        return ["/O2", *(["/openmp"] if openmp else [])]
    # No errno from sqrt: one instruction instead of a call guarded by a branch (same values).
    flags = ["-O3", "-ffp-contract=off", "-fno-math-errno", *(["-fopenmp"] if openmp else [])]
    return flags + (this_machine_vector_flags() if this_machine else [])


def link_flags(openmp: bool | None = None) -> list[str]:
    """Linker flags (MSVC needs none for OpenMP)."""
    openmp = use_openmp() if openmp is None else openmp
    flags = ["-fopenmp"] if openmp and not is_msvc() else []
    if sys.platform.startswith("linux"):
        # torch's shared libstdc++, named before any the compiler driver adds: a toolchain that
        # links it statically gives the module its own copy, and formatting a number into an
        # error message then crashes.
        flags.insert(0, "-Wl,-l:libstdc++.so.6")
    return flags


# No fast-math: the kernels are tested against the float32 reference at 1e-5.
# No architecture flags, on purpose: torch.utils.cpp_extension (_get_cuda_arch_flags) adds its
# own -gencode flags only when no flag here mentions "arch". It then builds for
#   - TORCH_CUDA_ARCH_LIST when that is set (e.g. "8.0;9.0+PTX"; "+PTX" adds the PTX that a
#     newer GPU JIT-compiles at load time), else
#   - every GPU visible at build time (capability clamped to the newest that this PyTorch was
#     built for), with PTX for the newest of them, so a just-in-time build (diffbmp._backend)
#     always runs on the GPU it was built on, and newer GPUs run its PTX.
# An ahead-of-time build (setup.py) on a machine with no visible GPU needs
# TORCH_CUDA_ARCH_LIST (e.g. "7.5;8.0;8.6;9.0+PTX"): with neither a GPU nor a list torch
# raises IndexError, so setuptools_extensions() then leaves the cuda extension to the
# just-in-time build. Nothing here sets environment variables. CUDA 13's nvcc
# starts at sm_75; the kernels keep a compare-and-swap double atomicAdd for targets below sm_60.
NVCC_FLAGS = ["-O3", "--expt-relaxed-constexpr", "-lineinfo"]

#: Module names: installed inside the package ahead of time, or loaded from torch's cache.
AOT_MODULES = {"cpu": "diffbmp._C_cpu", "cuda": "diffbmp._C_cuda"}
JIT_MODULES = {"cpu": "diffbmp_cpu", "cuda": "diffbmp_cuda"}


def sources(kind: str, csrc: str) -> list[str]:
    """Absolute source paths of the ``kind`` ("cpu" or "cuda") extension."""
    names = CPU_SOURCES if kind == "cpu" else CUDA_SOURCES
    return [os.path.join(csrc, name) for name in names]


def include_dirs(csrc: str) -> list[str]:
    return [os.path.join(csrc, d) for d in INCLUDE_DIRS]


def setuptools_extensions(root: str) -> list:
    """Extensions for setup.py; the cuda one only when PyTorch was built with CUDA and nvcc exists."""
    from torch.utils.cpp_extension import CUDA_HOME, CppExtension, CUDAExtension
    import torch

    csrc = os.path.join(root, "csrc")
    rel = lambda paths: [os.path.relpath(p, root) for p in paths]  # noqa: E731 (setuptools wants relative paths)
    extensions = [
        CppExtension(
            AOT_MODULES["cpu"],
            rel(sources("cpu", csrc)),
            include_dirs=include_dirs(csrc),
            extra_compile_args={"cxx": cxx_flags()},
            extra_link_args=link_flags(),
        )
    ]
    wants_cuda = torch.version.cuda is not None and CUDA_HOME is not None and os.environ.get("DIFFBMP_SKIP_CUDA_BUILD") != "1"
    if wants_cuda and not torch.cuda.is_available() and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
        print("diffbmp: no GPU is visible and TORCH_CUDA_ARCH_LIST is not set; the cuda backend will be compiled on first use.")
        wants_cuda = False
    if wants_cuda:
        extensions.append(
            CUDAExtension(
                AOT_MODULES["cuda"],
                rel(sources("cuda", csrc)),
                include_dirs=include_dirs(csrc),
                extra_compile_args={"cxx": cxx_flags(), "nvcc": NVCC_FLAGS},
                extra_link_args=link_flags(),
            )
        )
    return extensions
