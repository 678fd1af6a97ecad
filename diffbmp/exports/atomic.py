"""Atomic file output: write to a temporary file in the target folder, then rename it.

``os.replace`` within one folder is atomic on POSIX and Windows, so a reader sees either the
old file or the complete new one, and an export that fails or is interrupted (Ctrl-C) leaves
neither a truncated target nor a stray temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Iterator

from .._tempfiles import TEMP_SUFFIX, remove_interrupted_writes, temporary_for, writing
from ..errors import InputError

__all__ = ["atomic_open", "check_output_path", "remove_interrupted_writes", "temporary_for", "TEMP_SUFFIX"]


def check_output_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path after checking that a file can be written there.

    Raises:
        InputError: naming the folder and the fix when it is missing, is not a folder, or is
            not writable, or when ``path`` itself is a folder.
    """
    path = Path(path).expanduser()
    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise InputError(f"cannot write {str(path)!r}: it is a folder; give a file name such as {str(path / 'out.png')!r}")
    if not folder.exists():
        raise InputError(
            f"cannot write {str(path)!r}: the folder {str(folder)!r} does not exist; "
            f"create it first (mkdir -p {str(folder)!r}) or choose another output path"
        )
    if not folder.is_dir():
        raise InputError(f"cannot write {str(path)!r}: {str(folder)!r} is a file, not a folder; choose another output path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(_unwritable(path, folder))
    return path


def _unwritable(path: Path, folder: Path) -> str:
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs (Windows)
        read_only = False
    if read_only:
        return f"cannot write {str(path)!r}: the disk that holds {str(folder)!r} is read-only; choose another output folder"
    return (
        f"cannot write {str(path)!r}: the folder {str(folder)!r} is not writable; "
        f"choose another output folder or change its permissions (chmod u+w {str(folder)!r})"
    )


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a binary file that appears at ``path`` only once the ``with`` block succeeds.

    Example:
        >>> with atomic_open("out.svg") as handle:  # doctest: +SKIP
        ...     handle.write(data)
    """
    path = check_output_path(path)
    folder = path.parent if str(path.parent) else Path(".")
    with writing(path):
        remove_interrupted_writes(folder, path.name)
        fd, temporary = temporary_for(path)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            # mkstemp creates the file readable by its owner only; an exported image is meant
            # to be shared, so give it the usual rw-r--r--.
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            # Any failure, KeyboardInterrupt included: never leave the temporary file behind.
            Path(temporary).unlink(missing_ok=True)
            raise
