"""The cuda backend builds, and its kernels compute the right numbers, on a machine without a GPU.

1. Every csrc/cuda/*.cu compiles with nvcc (device code for several architectures plus PTX).
2. The host files (ops_cuda.cpp, bindings_cuda.cpp) pass a syntax check against this PyTorch's
   headers and the CUDA toolkit's, when the two allow it.
3. (slow) The kernels, launchers and host op, built for the host through
   csrc/cuda/emulation/cuda_emulation.h, pass the same checks as the real backend in
   tests/test_cuda.py: parity with the torch and cpu backends, gradcheck, edge cases, errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from diffbmp import _backend, _build_spec, _jit, render
from nvcc_check import NVCC, needs_nvcc
from scenes import FLOAT_FIELDS, random_params
from test_cuda import CudaBackendChecks

ROOT = Path(__file__).resolve().parent.parent
CSRC = ROOT / "csrc"
CUDA_DIR = CSRC / "cuda"
# Architectures the kernels are checked for: Volta (the oldest with the warp intrinsics and
# double atomicAdd used here), Ampere, Hopper, plus Hopper PTX that newer GPUs JIT-compile.
REQUESTED_SM = [70, 80, 90]
PTX = 90


def supported_sm() -> list[int]:
    out = subprocess.run([NVCC, "--list-gpu-code"], capture_output=True, text=True, check=True).stdout
    return sorted(int(m) for m in re.findall(r"sm_(\d+)\b", out))


def gencode_flags() -> tuple[list[str], list[str]]:
    """-gencode flags for REQUESTED_SM (each replaced by the oldest newer one nvcc still supports) and notes."""
    available = supported_sm()
    flags, notes = [], []
    for sm in REQUESTED_SM:
        target = sm if sm in available else next((a for a in available if a > sm), None)
        if target is None:
            notes.append(f"sm_{sm}: not supported by this nvcc")
            continue
        if target != sm:
            notes.append(f"sm_{sm} is not supported by this nvcc; checked sm_{target} instead")
        flags.append(f"-gencode=arch=compute_{target},code=sm_{target}")
    if PTX in available:
        flags.append(f"-gencode=arch=compute_{PTX},code=compute_{PTX}")
    return sorted(set(flags)), notes


@needs_nvcc
@pytest.mark.parametrize("source", sorted(p.name for p in CUDA_DIR.glob("*.cu")))
def test_cu_file_compiles(source, tmp_path):
    flags, notes = gencode_flags()
    assert flags, f"this nvcc supports none of sm_{REQUESTED_SM}: {notes}"
    command = [
        NVCC, "-c", str(CUDA_DIR / source), "-o", str(tmp_path / (source + ".o")),
        f"-I{CSRC / 'include'}", "--threads", "0", *_build_spec.NVCC_FLAGS, *flags,
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, f"nvcc failed ({'; '.join(notes)}):\n{' '.join(command)}\n{result.stdout}{result.stderr}"


def cuda_include_dirs() -> list[Path]:
    """The toolkit's include folders, as nvcc itself reports them (nvcc may be a wrapper script)."""
    dry = subprocess.run([NVCC, "--dryrun", "-c", "-x", "cu", os.devnull], capture_output=True, text=True)
    found = re.findall(r'(?:-I|-isystem"? ")"?([^"\s]+)', dry.stdout + dry.stderr)
    dirs = [Path(d).resolve() for d in found] + [Path(NVCC).resolve().parent.parent / "include"]
    return list(dict.fromkeys(d for d in dirs if d.is_dir()))


def newest_standard(compiler: str) -> str:
    """-std=c++20 where the compiler has it (PyTorch 2.14's headers need it), else -std=c++17."""
    probe = subprocess.run([compiler, "-std=c++20", "-fsyntax-only", "-x", "c++", "-"], input="int main() {}\n",
                           capture_output=True, text=True)
    return "-std=c++20" if probe.returncode == 0 else "-std=c++17"


def host_syntax_command(source: Path, stub_dir: Path) -> list[str] | str:
    """g++ -fsyntax-only with torch's and CUDA's headers, or the reason it cannot work here."""
    from torch.utils import cpp_extension

    compiler = shutil.which("g++") or shutil.which("c++")
    if compiler is None:
        return "no host C++ compiler"
    torch_include = [Path(p) for p in cpp_extension.include_paths()]
    if not any((p / "c10" / "cuda" / "CUDAGuard.h").exists() for p in torch_include):
        return "this PyTorch ships no c10/cuda headers"
    cuda_include = next((d for d in cuda_include_dirs() if (d / "cuda_runtime_api.h").exists()), None)
    if cuda_include is None:
        return f"no cuda_runtime_api.h among nvcc's include folders {cuda_include_dirs()}"
    # A CPU build of PyTorch ships c10/cuda but not the header its CMake generates; the stub
    # holds what a CUDA build's copy holds.
    if not any((p / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h").exists() for p in torch_include):
        stub = stub_dir / "c10" / "cuda" / "impl" / "cuda_cmake_macros.h"
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_text("#pragma once\n#define C10_CUDA_BUILD_SHARED_LIBS\n")
    return [
        compiler, "-fsyntax-only", "-w", newest_standard(compiler), *_build_spec.cxx_flags(), "-DWITH_CUDA",
        *[f"-I{p}" for p in torch_include], f"-I{stub_dir}", f"-I{CSRC / 'include'}", f"-I{cuda_include}",
        f"-I{sysconfig.get_paths()['include']}", str(source),
    ]


@needs_nvcc
def test_host_files_pass_syntax_check(tmp_path):
    sources = [CUDA_DIR / "ops_cuda.cpp", CUDA_DIR / "bindings_cuda.cpp"]
    commands = [host_syntax_command(s, tmp_path / "stub") for s in sources]
    reasons = [c for c in commands if isinstance(c, str)]
    if reasons:
        pytest.skip(f"cannot syntax-check the cuda host files against this PyTorch: {reasons[0]}")
    # Both at once: each takes about 15 s of parsing torch's headers.
    running = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands]
    for source, command, process in zip(sources, commands, running):
        output, _ = process.communicate()
        assert process.returncode == 0, f"{source.name} fails the syntax check:\n{' '.join(command)}\n{output}"


def test_cuda_sources_are_listed_in_build_spec():
    listed = {Path(s).name for s in _build_spec.CUDA_SOURCES}
    assert {"ops_cuda.cpp", "rasterize_cuda.cu", "bindings_cuda.cpp"} <= listed
    for name in _build_spec.CUDA_SOURCES:
        assert (CSRC / name).exists(), f"{name} is listed in _build_spec.CUDA_SOURCES but missing"
    # torch only picks the architectures (TORCH_CUDA_ARCH_LIST or the visible GPUs, newest + PTX)
    # when no flag mentions an architecture.
    assert not any("arch" in flag or "gencode" in flag for flag in _build_spec.NVCC_FLAGS)


# -- the kernels on the host ---------------------------------------------------------------------

EMULATED = "cuda_emulated"


def build_emulated_module():
    """csrc/cuda compiled for the host with -DDIFFBMP_CUDA_EMULATION (csrc/cuda/emulation/README.md)."""
    if sys.platform != "linux":
        pytest.skip("the cuda emulation uses ucontext fibers (Linux only)")
    sources = [CUDA_DIR / "ops_cuda.cpp", CUDA_DIR / "emulation" / "rasterize_emulated.cpp", CUDA_DIR / "bindings_cuda.cpp"]
    return _jit.compile_extension("diffbmp_cuda_emulated", EMULATED, [str(p) for p in sources],
                                  defines=["-DDIFFBMP_CUDA_EMULATION"])


@pytest.mark.slow
class TestEmulatedCuda(CudaBackendChecks):
    """The checks of tests/test_cuda.py on the emulated kernels (CPU tensors, small scenes)."""

    backend = EMULATED
    device = "cpu"
    stack_pairs = 20_000  # the fibers make a million-entry list take minutes
    large_scenes = False

    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def emulated_backend(cls):
        module = build_emulated_module()
        resolve = render.resolve_backend
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(_backend._modules, EMULATED, module)
            patch.setattr(
                render, "resolve_backend", lambda requested, device: EMULATED if requested == EMULATED else resolve(requested, device)
            )
            yield module

    def test_emulation_exposes_the_order_of_atomic_sums(self, bank, monkeypatch):
        # Blocks run in a random order at every launch, as a GPU may run them, so the float
        # atomics of the atomic backward sum in a different order from run to run: what makes
        # test_backward_is_the_same_on_every_run a real test of the deterministic backward here.
        monkeypatch.setenv("DIFFBMP_CUDA_BACKWARD", "atomic")
        params = random_params(300, 50, 45, seed=21, scale_range=(3.0, 30.0))
        runs = [self.run_self(params, bank, 50, 45, 0.5)[2] for _ in range(4)]
        assert any(not torch.equal(run[name], runs[0][name]) for run in runs[1:] for name in FLOAT_FIELDS)
