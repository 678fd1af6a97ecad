"""Exclusive locks that say who holds them.

The lock itself is the operating system's (``filelock``), so it goes with its holder: a
process killed outright never leaves a lock behind. The holder writes who it is (process,
machine, since when) into ``<lock>.owner``, for the messages of those that wait or give up.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["exclusive", "holder_of"]

#: Seconds a lock is waited for before the wait is announced.
QUIET_WAIT = 3.0


def _owner_file(lock: Path) -> Path:
    return lock.with_name(lock.name + ".owner")


def holder_of(lock: str | os.PathLike) -> str:
    """Who holds ``lock``, as its holder wrote it ("another process" when unknown)."""
    try:
        return _owner_file(Path(lock)).read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def exclusive(lock: str | os.PathLike, *, wait: float, on_wait: Callable[[str], None] | None = None,
              on_timeout: Callable[[str], BaseException]) -> Iterator[None]:
    """Hold ``lock`` while the block runs.

    Args:
        wait: seconds to wait for another holder (0: do not wait).
        on_wait: called with the holder's description before waiting.
        on_timeout: makes the exception raised, from the holder's description, when the lock
            is still held after ``wait`` seconds.
    """
    from filelock import FileLock, Timeout

    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = FileLock(str(lock))
    quiet = min(wait, QUIET_WAIT)  # a lock held for a moment (a build found ready) is waited for silently
    try:
        handle.acquire(timeout=quiet)
    except Timeout:
        if wait <= quiet:
            raise on_timeout(holder_of(lock)) from None
        if on_wait is not None:
            on_wait(holder_of(lock))
        try:
            handle.acquire(timeout=wait - quiet)
        except Timeout:
            raise on_timeout(holder_of(lock)) from None
    owner = _owner_file(lock)
    try:
        owner.write_text(f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        yield
    finally:
        owner.unlink(missing_ok=True)
        handle.release()
