"""The fit recipes that ship with diffbmp: ready-to-run YAML configs, found by name.

    diffbmp recipes                          # the list, one line each
    diffbmp fit brush_strokes --set target=photo.jpg
    diffbmp config brush_strokes > mine.yaml # a copy to edit; then: diffbmp fit mine.yaml

The first comment line of each file is its one-line description.
"""

from __future__ import annotations

import difflib
from pathlib import Path

__all__ = ["DEFAULT", "RECIPE_DIR", "names", "path", "describe", "close_names"]

#: The folder of the recipe files (inside the installed package).
RECIPE_DIR = Path(__file__).resolve().parent
#: The recipe a target given on its own is painted with.
DEFAULT = "default"


def names() -> list[str]:
    """Every recipe's name, sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def path(name: str) -> Path | None:
    """The file of recipe ``name`` (with or without the .yaml ending), or None."""
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    candidate = RECIPE_DIR / f"{stem}.yaml"
    return candidate if "/" not in stem and "\\" not in stem and candidate.is_file() else None


def describe(name: str) -> str:
    """The recipe's one-line description: the first line of its leading comment."""
    file = path(name)
    if file is None:
        raise KeyError(name)
    for line in file.read_text(encoding="utf-8").splitlines():
        text = line.lstrip("#").strip()
        if line.startswith("#") and text:
            return text
    return ""


def close_names(name: str) -> list[str]:
    """Recipe names that look like ``name`` (for did-you-mean messages)."""
    return difflib.get_close_matches(Path(name).stem, names(), n=3, cutoff=0.6)
