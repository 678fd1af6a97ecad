"""Where the files that ship inside the package are: the C++/CUDA sources and the documentation.

An installed package holds them as ``diffbmp/_csrc`` and ``diffbmp/_docs`` (setup.py copies
them in); a source checkout has them beside the package as ``csrc/`` and ``docs/``. Nothing
here imports more than the standard library.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _shipped(installed: str, checkout: str, marker: str) -> Path | None:
    for candidate in (PACKAGE / installed, PACKAGE.parent / checkout):
        if (candidate / marker).exists():
            return candidate
    return None


def csrc_dir() -> Path | None:
    """The C++/CUDA sources, or None when neither copy is there."""
    return _shipped("_csrc", "csrc", "include/diffbmp/constants.h")


def docs_dir() -> Path | None:
    """The documentation (Markdown), or None when neither copy is there."""
    return _shipped("_docs", "docs", "fitting.md")


def doc_reference(page: str) -> str:
    """How to reach a page of the documentation: its installed path, else its name."""
    folder = docs_dir()
    return str(folder / page) if folder is not None else f"docs/{page} of the diffbmp sources"
