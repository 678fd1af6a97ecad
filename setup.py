"""Build script: packages diffbmp and, when PyTorch is importable at build time, compiles
the native extensions ahead of time. Otherwise they are compiled on first use.

The list of sources and flags lives in diffbmp/_build_spec.py, shared with the
just-in-time build, so the two can never drift apart.
"""

import importlib.util
import os
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def _load_build_spec():
    # Loaded by path: importing the diffbmp package would import torch.
    spec = importlib.util.spec_from_file_location("_diffbmp_build_spec", ROOT / "diffbmp" / "_build_spec.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildPyWithSources(build_py):
    """Ships csrc/ and docs/ inside the package (as diffbmp/_csrc and diffbmp/_docs): the
    just-in-time build compiles the sources after install, and `diffbmp fit --help` points at
    the installed guide (diffbmp/_resources.py finds both)."""

    def run(self):
        super().run()
        for source, name in ((ROOT / "csrc", "_csrc"), (ROOT / "docs", "_docs")):
            target = Path(self.build_lib) / "diffbmp" / name
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("*.o", "__pycache__"))


def _native_extensions(build_spec):
    if os.environ.get("DIFFBMP_SKIP_NATIVE_BUILD") == "1":
        return [], {}
    try:
        import torch  # noqa: F401
        from torch.utils.cpp_extension import BuildExtension
    except ImportError:
        print("diffbmp: PyTorch is not visible to this build; the native extension will be compiled on first use.")
        return [], {}
    extensions = build_spec.setuptools_extensions(str(ROOT))
    return extensions, {"build_ext": BuildExtension.with_options(use_ninja=True)}


build_spec = _load_build_spec()
ext_modules, ext_cmdclass = _native_extensions(build_spec)
setup(
    ext_modules=ext_modules,
    cmdclass={"build_py": BuildPyWithSources, **ext_cmdclass},
)
