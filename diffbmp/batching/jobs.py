"""The jobs of a batch: what each paints, where its run folder is, and what it overrides.

Inputs are files, folders (each picture or video in them is a job), globs (``shots/*.jpg``),
``skimage:``/``demo:`` names, or a manifest: a ``.csv`` (a header row; an ``input`` column and
optionally ``name``; every other column is a config key for that row, e.g. ``n``, ``size``,
``optim.lr.means``) or a ``.json`` list of objects with the same keys. Pictures and videos may
be mixed: each job is fitted as ``diffbmp fit`` would fit its input.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import ConfigError, InputError

__all__ = ["Job", "collect_jobs", "MEDIA_SUFFIXES"]

#: Files a folder or a glob contributes as jobs: pictures and videos.
MEDIA_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif",
                  ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")
#: Names a target may have instead of a file.
SPEC_PREFIXES = ("skimage:", "demo:")


@dataclass
class Job:
    """One fit of a batch (plain values only: it travels to worker processes and Ray tasks).

    Attributes:
        name: its run folder's name under the batch folder (unique in the batch).
        target: what it paints (a path, or a ``skimage:``/``demo:`` name).
        folder: its run folder.
        recipe: the recipe name or YAML file every job starts from (None: the defaults).
        overrides: ``key=value`` items, the batch's and then the job's own.
        exports: formats to export the painting to when the fit ends (``psd``, ``svg`` ...).
        threads: CPU threads the fit may use.
    """

    name: str
    target: str
    folder: str
    recipe: str | None = None
    overrides: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    threads: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _natural(text: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", text) if part]


def _media_in(folder: Path) -> list[str]:
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES]
    if not files:
        raise InputError(f"the folder {str(folder)!r} holds no pictures or videos ({', '.join(MEDIA_SUFFIXES[:8])}, ...)")
    return [str(p) for p in sorted(files, key=lambda p: _natural(p.name))]


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a CSV or JSON manifest, each with an ``input``."""
    try:
        if path.suffix.lower() == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
                raise InputError(f"the manifest {str(path)!r} must be a JSON list of objects, each with an \"input\"")
        else:
            with path.open(newline="", encoding="utf-8") as handle:
                rows = [{k.strip(): v for k, v in row.items() if k is not None and v not in (None, "")}
                        for row in csv.DictReader(handle)]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, csv.Error) as error:
        raise InputError(f"cannot read the manifest {str(path)!r}: {error}") from None
    for number, row in enumerate(rows, start=2 if path.suffix.lower() != ".json" else 1):
        if not row.get("input"):
            where = f"row {number}" if path.suffix.lower() != ".json" else f"entry {number}"
            raise InputError(f"{where} of the manifest {str(path)!r} has no input; every row names the picture or video to paint")
    base = path.parent
    for row in rows:  # inputs relative to the manifest's own folder
        text = str(row["input"])
        if not text.startswith(SPEC_PREFIXES) and not Path(text).expanduser().is_absolute():
            row["input"] = str(base / text)
    return rows


def _expand(spec: str) -> list[dict[str, Any]]:
    """The rows (``input`` plus per-job keys) one command-line input stands for."""
    if spec.startswith(SPEC_PREFIXES):
        return [{"input": spec}]
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix.lower() in (".csv", ".json"):
        return _manifest_rows(path)
    if path.is_dir():
        return [{"input": p} for p in _media_in(path)]
    if path.is_file():
        return [{"input": str(path)}]
    if glob.has_magic(spec):
        matches = sorted((p for p in glob.glob(os.path.expanduser(spec), recursive=True)
                          if Path(p).is_file() and Path(p).suffix.lower() in MEDIA_SUFFIXES), key=_natural)
        if not matches:
            raise InputError(f"the pattern {spec!r} matches no pictures or videos")
        return [{"input": p} for p in matches]
    from ..errors import similar_files_hint

    raise InputError(f"the input {spec!r} does not exist.{similar_files_hint(path)}")


def _safe_name(text: str) -> str:
    """``text`` as a folder name: letters, digits, ``.``, ``-`` and ``_``."""
    return (re.sub(r"[^\w.-]+", "_", text).strip("._") or "job")[:80]


def _name_of(target: str) -> str:
    """A job's name from its input: the file's stem, or the name after ``skimage:``/``demo:``."""
    if target.startswith(SPEC_PREFIXES):
        return _safe_name(target.split(":", 1)[1].split(":")[0])
    return _safe_name(Path(target).stem)


def _override(key: str, value: Any) -> str:
    """A manifest cell as a ``key=value`` item (JSON values stay typed)."""
    text = value if isinstance(value, str) else json.dumps(value)
    return f"{key}={text}"


def collect_jobs(inputs: Sequence[str], out: str | os.PathLike, *, recipe: str | None = None,
                 overrides: Iterable[str] = (), exports: Iterable[str] = (), threads: int = 1) -> list[Job]:
    """The jobs ``inputs`` stand for, each with a run folder of its own under ``out``.

    Raises:
        InputError: an input that does not exist, an empty folder or pattern, a bad manifest.
        ConfigError: two manifest rows claiming the same name.
    """
    if not inputs:
        raise InputError("name at least one input: pictures, videos, folders, patterns such as 'shots/*.jpg', or a manifest")
    out = Path(out).expanduser().resolve()  # absolute: jobs may run in other processes or on other machines
    jobs: list[Job] = []
    taken: set[str] = set()
    for spec in inputs:
        for row in _expand(str(spec)):
            target = str(row["input"])
            if not target.startswith(SPEC_PREFIXES):
                target = str(Path(target).expanduser().resolve())
            wanted = row.get("name")
            if wanted is not None:
                name = _safe_name(str(wanted))
                if name in taken:
                    raise ConfigError(f"two jobs are named {name!r}; give each manifest row its own name")
            else:
                base, name, count = _name_of(target), _name_of(target), 1
                while name in taken:
                    count += 1
                    name = f"{base}_{count}"
            taken.add(name)
            own = [_override(k, v) for k, v in row.items() if k not in ("input", "name")]
            jobs.append(Job(name=name, target=target, folder=str(out / name), recipe=recipe,
                            overrides=[*overrides, *own], exports=list(exports), threads=threads))
    return jobs
