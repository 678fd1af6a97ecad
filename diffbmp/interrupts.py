"""Ctrl-C, SIGTERM and SIGHUP, handled alike.

``timeout``, batch schedulers and ``docker stop`` send SIGTERM, a closed terminal sends
SIGHUP; each is handled as Ctrl-C is: a fit finishes its step, writes a checkpoint and prints
the command that resumes it, and the ``diffbmp`` command exits with 128 + the signal's number
(130, 143, 129), as a shell reports a process the signal ended.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Callable, Iterator

__all__ = ["Interrupted", "INTERRUPT_SIGNALS", "exit_code", "handling", "signal_name", "signals_as_interrupts"]

#: The signals that stop work the way Ctrl-C does (SIGHUP does not exist on Windows).
INTERRUPT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """A KeyboardInterrupt that remembers the signal behind it."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def signal_name(error: KeyboardInterrupt) -> str:
    """``SIGTERM``, ``SIGINT`` ... for an interrupt."""
    return signal.Signals(getattr(error, "signum", int(signal.SIGINT))).name


def exit_code(error: KeyboardInterrupt) -> int:
    """The exit status a process ended by ``error``'s signal reports: 128 + its number."""
    return 128 + getattr(error, "signum", int(signal.SIGINT))


@contextlib.contextmanager
def handling(handler: Callable[[int, Any], None]) -> Iterator[bool]:
    """``handler`` for every interrupt signal while the block runs; yields whether it could be
    installed (only the main thread may handle signals). The previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = {}
    try:
        for signum in INTERRUPT_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
    except (ValueError, OSError):  # not allowed here (some embedded interpreters)
        pass
    try:
        yield bool(previous)
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _raise(signum: int, frame: Any) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Interrupted` as Ctrl-C raises KeyboardInterrupt."""
    with handling(_raise):
        yield
