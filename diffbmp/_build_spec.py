"""The one description of the native extensions: sources and flags.

Read by setup.py (ahead-of-time build) and by diffbmp._backend (just-in-time build), so the
two never drift apart. Imports nothing from diffbmp or torch at module level.
"""

from __future__ import annotations

import os

#: Sources relative to the csrc/ folder.
CPU_SOURCES = ["cpu/ops_cpu.cpp", "cpu/bindings_cpu.cpp"]
CUDA_SOURCES = ["cuda/ops_cuda.cpp", "cuda/rasterize_cuda.cu", "cuda/bindings_cuda.cpp"]
INCLUDE_DIRS = ["include"]

CXX_FLAGS = ["-O3", "-std=c++17", "-fopenmp"]
LINK_FLAGS = ["-fopenmp"]
# No fast-math: the kernels are tested against the float32 reference at 1e-5.
NVCC_FLAGS = ["-O3", "-std=c++17", "--expt-relaxed-constexpr", "-lineinfo"]

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
            extra_compile_args={"cxx": CXX_FLAGS},
            extra_link_args=LINK_FLAGS,
        )
    ]
    if torch.version.cuda is not None and CUDA_HOME is not None and os.environ.get("DIFFBMP_SKIP_CUDA_BUILD") != "1":
        extensions.append(
            CUDAExtension(
                AOT_MODULES["cuda"],
                rel(sources("cuda", csrc)),
                include_dirs=include_dirs(csrc),
                extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
                extra_link_args=LINK_FLAGS,
            )
        )
    return extensions
