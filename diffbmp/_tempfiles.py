"""Temporary files of atomic writes: each output is written to ``.<name>.<random>.tmp`` beside
it and renamed into place when whole. A process killed outright (SIGKILL, power loss) cannot
remove its temporary file, so the next write in the same place does. Standard library only,
so that every module that writes files can use it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import OutputError, output_error

__all__ = ["TEMP_SUFFIX", "temporary_for", "remove_interrupted_writes", "writing"]

#: Ending of the temporary files.
TEMP_SUFFIX = ".tmp"


def temporary_for(path: str | os.PathLike) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``mkstemp``'s descriptor and name)."""
    path = Path(path)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent if str(path.parent) else ".")


def remove_interrupted_writes(folder: str | os.PathLike, name: str = "*", recursive: bool = False) -> list[Path]:
    """Delete the temporary files that writes of ``name`` (or of any file) into ``folder`` left
    when they were killed before their rename; returns them."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = f".{name}.*{TEMP_SUFFIX}"
    found = sorted(folder.rglob(pattern) if recursive else folder.glob(pattern))
    for leftover in found:
        leftover.unlink(missing_ok=True)
    return found


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an OSError raised while writing ``path`` (a full disk, a read-only folder) into an
    OutputError that names the path and what to do."""
    try:
        yield
    except OutputError:
        raise
    except OSError as error:
        raise output_error(error, path) from error

