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

__all__ = ["TEMP_SUFFIX", "temporary_for", "publish_file", "write_text_atomic", "remove_interrupted_writes", "writing"]

#: Ending of the temporary files.
TEMP_SUFFIX = ".tmp"

# mkstemp creates files readable by their owner only; outputs get the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)


def temporary_for(path: str | os.PathLike) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``mkstemp``'s descriptor and name)."""
    path = Path(path)
    return tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent if str(path.parent) else ".")


def publish_file(temporary: str | os.PathLike, path: str | os.PathLike) -> None:
    """Give a finished temporary file the permissions of a normal new file and move it into place."""
    os.chmod(temporary, 0o666 & ~_UMASK)
    os.replace(temporary, path)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file, creating its folder; a
    failed write (OutputError naming the path) leaves no temporary file and the old one intact."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = temporary_for(path)
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
            publish_file(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


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

