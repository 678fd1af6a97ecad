"""The run folder: where a fit writes its outputs, and the rules for reusing one.

A folder that already holds a run is never overwritten by accident: continuing it needs
``--resume`` (and the same settings), replacing it needs ``--force``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .._locks import exclusive
from .._tempfiles import publish_file, remove_interrupted_writes, temporary_for, write_text_atomic, writing
from ..errors import ConfigError, OutputError, SettingsChangedError

__all__ = ["RunFolder", "LOG_COLUMNS", "write_csv", "differences"]

#: The lock file a running fit holds in its run folder.
LOCK_NAME = ".diffbmp.lock"

#: Columns of log.csv.
LOG_COLUMNS = ("step", "loss", "psnr", "n", "blur", "seconds")


class RunFolder:
    """Paths of a run's outputs inside ``root``."""

    FILES = ("config.yaml", "checkpoint.pt", "final.png", "scene.npz", "fit.gif", "fit.mp4", "log.csv", "rounds.csv")
    FOLDERS = ("frames", "snapshots")

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        self.config = self.root / "config.yaml"
        self.checkpoint = self.root / "checkpoint.pt"
        self.final = self.root / "final.png"
        self.scene = self.root / "scene.npz"
        self.gif = self.root / "fit.gif"
        self.mp4 = self.root / "fit.mp4"
        self.log = self.root / "log.csv"
        self.rounds = self.root / "rounds.csv"  # a budget fit's rounds
        self.frames = self.root / "frames"
        self.snapshots = self.root / "snapshots"

    @contextlib.contextmanager
    def claimed(self) -> Iterator["RunFolder"]:
        """While the block runs, this process holds the folder from :meth:`prepare` on: a second
        run pointed at the same folder is refused at once, naming the process that holds it
        (diffbmp/_locks.py). Nothing is created before :meth:`prepare`, so a run refused for
        bad input leaves no folder behind."""
        with contextlib.ExitStack() as stack:
            self._claim = stack
            try:
                yield self
            finally:
                self._claim = None

    def _hold(self) -> None:
        def in_use(holder: str) -> BaseException:
            return OutputError(f"the run folder {str(self.root)!r} is in use by {holder}; wait for that run to end, "
                               "or choose another folder with --out")

        if getattr(self, "_claim", None) is not None:
            self._claim.enter_context(exclusive(self.root / LOCK_NAME, wait=0, on_timeout=in_use))
            self._claim = None  # held until the block of claimed() ends

    def existing(self) -> list[str]:
        """Names of the run files already in the folder."""
        names = [name for name in self.FILES if (self.root / name).exists()]
        names += [name + "/" for name in self.FOLDERS if (self.root / name).is_dir()]
        return names

    def clear(self) -> None:
        """Remove this run's files (never anything else the folder holds)."""
        for name in self.FILES:
            (self.root / name).unlink(missing_ok=True)
        for name in self.FOLDERS:
            shutil.rmtree(self.root / name, ignore_errors=True)

    def prepare(self, relevant: dict[str, Any], *, resume: bool, force: bool,
                resolve: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> bool:
        """Check the folder against the run about to start; True when it is to be resumed.

        Args:
            relevant: the result-determining part of the new run's config.
            resume: continue the run in the folder (it must have a checkpoint and the same settings).
            force: replace whatever run the folder holds.
            resolve: turns settings into what they mean for this run (``auto`` values
                resolved), so that the saved and the new settings are compared by meaning.
        """
        if resolve is not None:
            relevant = resolve(relevant)
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"the output folder {str(self.root)!r} is a file; choose another --out")
        with writing(self.root):
            self.root.mkdir(parents=True, exist_ok=True)
            self._hold()
            remove_interrupted_writes(self.root, recursive=True)  # left by a run killed mid-write
        existing = self.existing()
        if force and not resume:
            self.clear()
            return False
        if resume:
            saved = self.saved_relevant()
            if saved is not None and resolve is not None:
                saved = resolve(saved)
            if not self.checkpoint.exists():
                # Killed before its first checkpoint (or never started): nothing to continue,
                # so the run starts over, provided it is the same run.
                if saved is not None and saved != relevant:
                    changed = differences(saved, relevant)
                    raise SettingsChangedError(
                        f"cannot resume the run in {str(self.root)!r}: it has no checkpoint, and its settings differ in "
                        f"{', '.join(changed) or '(unknown)'}; pass --force to start a new run there",
                        self.root, changed,
                    )
                self.clear()
                return False
            if saved is not None and saved != relevant:
                changed = differences(saved, relevant)
                raise SettingsChangedError(
                    f"cannot resume the run in {str(self.root)!r}: its settings differ in "
                    f"{', '.join(changed) or '(unknown)'}; resume with the same settings, or pass --force to start a "
                    "new run there",
                    self.root, changed,
                )
            return True
        if existing:
            raise ConfigError(
                f"the output folder {str(self.root)!r} already holds a run ({', '.join(existing)}); pass --resume to "
                "continue it, --force to replace it, or choose another folder with --out"
            )
        return False

    def saved_relevant(self) -> dict[str, Any] | None:
        if not self.config.exists():
            return None
        from ..config import config_from_dict, result_relevant, read_yaml

        return result_relevant(config_from_dict(read_yaml(self.config), origin=str(self.config)))

    def write_config(self, text: str) -> None:
        write_text_atomic(self.config, text)

    def write_log(self, history: list[dict[str, float]], columns: tuple[str, ...] = LOG_COLUMNS) -> None:
        write_csv(self.log, history, columns)

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """``torch.save`` to a temp file, then rename: a crash never leaves half a checkpoint,
        and a write that fails (a full disk) leaves the previous checkpoint as it was."""
        with writing(self.checkpoint):
            self.root.mkdir(parents=True, exist_ok=True)
            fd, temporary = temporary_for(self.checkpoint)
            try:
                with os.fdopen(fd, "wb") as handle:
                    torch.save(state, handle)
                publish_file(temporary, self.checkpoint)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise

    def load_checkpoint(self) -> dict[str, Any]:
        try:
            return torch.load(self.checkpoint, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged or foreign file
            raise ConfigError(f"cannot read the checkpoint {str(self.checkpoint)!r} ({error}); pass --force to start over") from None


def write_csv(path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Write ``rows`` (dicts) as CSV with ``columns``, atomically; missing values are empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_format(row.get(column)) for column in columns])
    write_text_atomic(path, buffer.getvalue())


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def differences(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """The keys in which two (nested) settings differ, each with its old and new value."""
    keys = sorted(set(a) | set(b))
    out = []
    for key in keys:
        left, right = a.get(key), b.get(key)
        if isinstance(left, dict) and isinstance(right, dict):
            out += differences(left, right, f"{prefix}{key}.")
        elif left != right:
            out.append(f"`{prefix}{key}` ({json.dumps(left)} -> {json.dumps(right)})")
    return out
