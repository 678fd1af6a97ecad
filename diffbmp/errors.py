"""Exceptions raised for bad input; each message names the problem and the fix."""

import os


class DiffBMPError(Exception):
    """Base class of every error diffbmp raises on purpose."""


class InputError(DiffBMPError, ValueError):
    """A tensor, file or argument handed to diffbmp is unusable."""


class ConfigError(DiffBMPError, ValueError):
    """A configuration file or option is invalid."""


class SettingsChangedError(ConfigError):
    """A run folder holds an unfinished run whose settings differ from the ones given.

    Attributes:
        folder: the run folder.
        changed: the settings that differ, described (e.g. "`n` (6 -> 7)").
    """

    def __init__(self, message: str, folder: "str | os.PathLike[str]", changed: list[str]):
        super().__init__(message)
        self.folder = folder
        self.changed = changed


class BackendUnavailableError(DiffBMPError, RuntimeError):
    """The requested rendering backend cannot run on this machine."""


class OutputError(DiffBMPError, OSError):
    """A file or folder diffbmp writes cannot be written: no space left, no permission, a
    read-only disk, or a run folder another process is using."""


def output_error(error: OSError, path: "str | os.PathLike[str]") -> OutputError:
    """An OutputError naming ``path``, what went wrong and what to do, for an OSError
    raised while writing it."""
    import errno

    reasons = {
        errno.ENOSPC: "no space is left on the disk that holds it; free some space or choose another output folder",
        errno.EDQUOT: "the disk quota is used up; free some space or choose another output folder",
        errno.EACCES: "permission denied; choose a folder you can write to, or change its permissions",
        errno.EPERM: "the operation is not permitted there; choose another output folder",
        errno.EROFS: "the disk that holds it is read-only; choose another output folder",
        errno.ENAMETOOLONG: "the name is too long for the file system; choose a shorter name",
    }
    reason = reasons.get(error.errno, error.strerror or str(error))
    return OutputError(f"cannot write {str(path)!r}: {reason}")


def similar_files_hint(path: "str | os.PathLike[str]", cutoff: float = 0.6) -> str:
    """`` Did you mean '...'?`` naming files beside a missing ``path`` whose names look like
    its name, or an empty string when its folder holds none (or does not exist)."""
    import difflib
    from pathlib import Path

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        return ""
    try:
        names = sorted(child.name for child in folder.iterdir() if child.is_file())
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=3, cutoff=cutoff)
    return f" Did you mean {', '.join(repr(str(folder / c)) for c in close)}?" if close else ""
