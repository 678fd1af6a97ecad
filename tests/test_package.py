"""The package as a user gets it: its public names, what its wheel holds, and the on-first-use
build of its extension (a cache shared by processes that build at once, and a compiler
without OpenMP)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

import diffbmp

ROOT = Path(__file__).resolve().parent.parent


def python(code: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)


# -- public names -----------------------------------------------------------------------------


def test_import_diffbmp_does_not_import_torch():
    done = python("import sys, diffbmp; print('torch' in sys.modules, diffbmp.__version__)")
    assert done.returncode == 0 and done.stdout.split() == ["False", diffbmp.__version__], done.stderr


def test_no_function_hides_a_submodule():
    # `diffbmp.fit` is a function and `diffbmp.fitting` the package behind it: every submodule
    # stays reachable by its dotted name after the package's names have been used.
    for name in diffbmp.__all__:
        getattr(diffbmp, name)
    for info in pkgutil.walk_packages(diffbmp.__path__, "diffbmp."):
        module = importlib.import_module(info.name)
        parent, _, leaf = info.name.rpartition(".")
        assert getattr(importlib.import_module(parent), leaf) is module, f"{info.name} is hidden by another name"


def test_documented_call_paths_exist():
    import diffbmp.exports.psd
    import diffbmp.fitting.image

    assert callable(diffbmp.fit) and diffbmp.fit is diffbmp.fitting.image.fit
    assert callable(diffbmp.export) and diffbmp.export is diffbmp.exports.export
    for path in ("fitting.image.run", "fitting.image.build_config", "exports.psd.build_psd", "exports.svg.svg_document",
                 "exports.png.render_pixels", "exports.json_format.scene_to_dict", "config.load_config", "recipes.names"):
        target = diffbmp
        for part in path.split("."):
            target = getattr(target, part)
        assert callable(target), path


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'compositee'"):
        diffbmp.compositee  # noqa: B018


# -- the wheel --------------------------------------------------------------------------------


@pytest.mark.slow
def test_wheel_holds_recipes_docs_and_sources(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(tmp_path), "-q"],
                          capture_output=True, text=True, env=dict(os.environ, DIFFBMP_SKIP_NATIVE_BUILD="1"))
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("diffbmp-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = {Path(n).stem for n in names if n.startswith("diffbmp/recipes/") and n.endswith(".yaml")}
    assert recipes == {p.stem for p in (ROOT / "diffbmp" / "recipes").glob("*.yaml")}
    docs = {n.removeprefix("diffbmp/_docs/") for n in names if n.startswith("diffbmp/_docs/")}
    assert {"fitting.md", "install.md", "video.md", "exports.md"} <= docs
    sources = {n.removeprefix("diffbmp/_csrc/") for n in names if n.startswith("diffbmp/_csrc/")}
    assert {"include/diffbmp/binning.h", "cpu/ops_cpu.cpp", "cuda/rasterize_cuda.cu", "cuda/kernels_cuda.cuh",
            "host/bindings.h"} <= sources
    assert "diffbmp/py.typed" in names and not any(n.startswith("tests/") for n in names)


# -- the build on first use -------------------------------------------------------------------

BUILD_AND_RENDER = """
import torch
from diffbmp import composite
from diffbmp._backend import native_module
from scenes import BACKGROUND, make_bank, random_params
module = native_module("cpu")
params = random_params(40, 20, 24, seed=3)
bank = make_bank()
background = torch.tensor(BACKGROUND)
got, _ = composite(params, bank, background, 20, 24, backend="cpu")
want, _ = composite(params, bank, background, 20, 24, backend="torch")
assert (got - want).abs().max() < 1e-5
# An error message with numbers in it arrives whole (a second copy of libstdc++ in the
# module cut it short, or crashed).
inputs = [params.means, params.rotations, params.scales, params.colors, params.opacities, params.beta_or_zeros(),
          params.shape_ids.to(torch.int32), torch.zeros(16), torch.zeros(1, 8), torch.zeros(1, 8)]
try:
    module.composite_forward(inputs, 20, 24, 0.0)
    raise AssertionError("a flat texel tensor was accepted")
except RuntimeError as error:
    assert "texels must have 2 dimensions, got [16]" in str(error), str(error)
print(module.__file__)
"""


def static_libstdcxx_compiler(folder: Path) -> str | None:
    """A wrapper of the C++ compiler that links libstdc++ statically, as some toolchains do,
    or None where this one cannot (no static libstdc++)."""
    real = os.environ.get("CXX", "c++")
    probe = folder / "probe.so"
    done = subprocess.run([real, "-shared", "-fPIC", "-static-libstdc++", "-x", "c++", "-", "-o", str(probe)],
                          input="#include <sstream>\nstd::string f(long x) { std::ostringstream s; s << x; return s.str(); }\n",
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None
    wrapper = folder / "c++-static-libstdc++"
    wrapper.write_text(f'#!/bin/sh\nexec "{real}" "$@" -static-libstdc++\n')
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="the build test runs the POSIX compiler")
def test_processes_share_one_build_and_a_compiler_without_openmp_is_enough(tmp_path):
    # A fresh cache, and no OpenMP (as with Apple's clang): two processes need the extension at
    # once; one compiles, the other says it waits, and both render what the reference does.
    # Where it can, the compiler links libstdc++ statically (as the g++ of some GPU images does):
    # the module must still use torch's shared copy.
    env = dict(os.environ, DIFFBMP_CACHE_DIR=str(tmp_path), DIFFBMP_OPENMP="0",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]))
    tools = tmp_path / "tools"
    tools.mkdir()
    wrapper = static_libstdcxx_compiler(tools) if sys.platform.startswith("linux") else None
    if wrapper:
        env["CXX"] = wrapper
    processes = [subprocess.Popen([sys.executable, "-c", BUILD_AND_RENDER], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(2)]
    outputs = [process.communicate(timeout=600) for process in processes]
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err
    errors = "".join(err for _, err in outputs)
    assert errors.count("diffbmp: compiling the cpu backend") == 1 and errors.count("waiting for it") == 1, errors
    pids = [str(p.pid) for p in processes]
    assert any(f"process {pid} on " in errors for pid in pids), f"the waiting message names no holder: {errors}"
    (built,) = {out.strip().splitlines()[-1] for out, _ in outputs}  # the very same file
    folder = Path(built).parent
    assert folder.parent == tmp_path / "extensions" and "-fopenmp" not in (folder / "build.ninja").read_text()


def test_cache_folders_differ_with_sources_and_flags(tmp_path, monkeypatch):
    from diffbmp import _jit

    monkeypatch.setenv("DIFFBMP_CACHE_DIR", str(tmp_path))
    csrc = tmp_path / "csrc"
    (csrc / "include").mkdir(parents=True)
    header = csrc / "include" / "a.h"
    header.write_text("int a;\n")
    first = _jit.build_directory("cpu", csrc, {"cxx": ["-O3"]})
    assert first == _jit.build_directory("cpu", csrc, {"cxx": ["-O3"]})
    assert first.name.startswith(f"cpu-torch{torch.__version__.split('+')[0]}-py{sys.version_info[0]}{sys.version_info[1]}-")
    assert _jit.build_directory("cpu", csrc, {"cxx": ["-O2"]}) != first
    copy = tmp_path / "checkout2" / "csrc"
    shutil.copytree(csrc, copy)  # another checkout of the same sources: a build of its own
    assert _jit.build_directory("cpu", copy, {"cxx": ["-O3"]}) != first
    header.write_text("int b;\n")
    assert _jit.build_directory("cpu", csrc, {"cxx": ["-O3"]}) != first


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_killed_builder_leaves_no_lock_behind(tmp_path):
    # The lock belongs to its holder: once the holder is gone (here: killed outright) the next
    # process takes it at once.
    from diffbmp import _jit

    folder = tmp_path / "extensions" / "cpu-x"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from diffbmp import _jit\n"
        f"with _jit.build_lock(Path({str(folder)!r}), 'cpu'):\n    print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert holder.stdout.readline().strip() == "held"
    assert "process" in Path(f"{folder}.lock.owner").read_text()
    holder.kill()
    holder.wait()
    with _jit.build_lock(folder, "cpu"):  # would wait 30 minutes if the lock had outlived its holder
        assert str(os.getpid()) in Path(f"{folder}.lock.owner").read_text()

