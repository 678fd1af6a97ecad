"""One job of a batch, run in whatever process the engine gives it (a local worker or a Ray task).

A job never raises for its own failure: a bad picture or a diverged fit becomes a result row
with the error, and the other jobs go on. Its result is written last, atomically, as
``result.json`` in its run folder, so a job is done only once everything it writes is whole;
re-running the batch skips done jobs and resumes the others from their checkpoints.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from .._tempfiles import write_text_atomic
from .jobs import Job

__all__ = ["run_job", "read_result", "stop_on_signals", "RESULT_FILE", "WORKER_FILE", "COLUMNS"]

#: The job's result, written when it ends (done, failed or interrupted).
RESULT_FILE = "result.json"
#: Who is running the job ("<host>:<pid>"), written when it starts.
WORKER_FILE = ".worker"
#: The columns of a result row (and of summary.csv).
COLUMNS = ("name", "input", "status", "psnr", "ssim", "primitives", "seconds", "worker", "error")


class _Worker:
    """A local worker's state: whether it was asked to stop, and whether a job is running."""

    signum: int | None = None
    running = False


def _on_signal(signum: int, frame: Any) -> None:
    _Worker.signum = signum
    if _Worker.running:  # outside the fit itself (it handles signals on its own): stop the job now
        from ..interrupts import Interrupted

        raise Interrupted(signum)


def stop_on_signals() -> None:
    """In a local worker: Ctrl-C, SIGTERM and SIGHUP stop the running job (a fit checkpoints
    first) and no other job starts in this worker."""
    import signal

    from ..interrupts import INTERRUPT_SIGNALS

    for signum in INTERRUPT_SIGNALS:
        signal.signal(signum, _on_signal)


def read_result(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The result a job left in ``folder``, or None (none yet, or unreadable)."""
    try:
        result = json.loads((Path(folder) / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) else None


def _write_result(folder: Path, row: dict[str, Any]) -> None:
    write_text_atomic(folder / RESULT_FILE, json.dumps(row, indent=1))


def _previews(result: Any, folder: Path) -> None:
    """Small pictures of the target and the painting for the batch's contact sheet."""
    from ..fitting.recording import to_uint8, write_png

    if hasattr(result, "target"):  # a still image
        write_png(folder / "preview_target.png", to_uint8(result.target.rgb))
        write_png(folder / "preview_painting.png", to_uint8(result.scene.render()[0]))
    elif getattr(result, "scenes", None):  # a video: its last frame
        write_png(folder / "preview_target.png", to_uint8(result.clip.frames[-1].rgb))
        write_png(folder / "preview_painting.png", to_uint8(result.scenes[-1].render()[0]))


def _settings(job: Job, config: Any) -> dict[str, Any]:
    """What a job's painting depends on (the resolved config less its output-only keys, and the
    exports): a done job is skipped only if these are unchanged."""
    from ..config import result_relevant

    return json.loads(json.dumps({**result_relevant(config), "exports": sorted(job.exports)}))


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    """Paint one job (``Job.to_dict()``) and return its result row (see COLUMNS)."""
    import torch

    from ..config import load_config
    from ..errors import DiffBMPError, SettingsChangedError
    from ..exports import export
    from ..fitting.image import run
    from ..fitting.runfolder import differences
    from ..interrupts import signal_name

    job = Job(**spec)
    folder = Path(job.folder)
    worker = f"{socket.gethostname()}:{os.getpid()}"
    row: dict[str, Any] = {"name": job.name, "input": job.target, "status": "failed", "psnr": None, "ssim": None,
                           "primitives": None, "seconds": None, "worker": worker, "error": ""}
    if _Worker.signum is not None:  # this worker was told to stop: nothing new starts
        return {**row, "status": "interrupted", "error": "stopped before it started", "started": False}
    started = time.perf_counter()
    settings = None
    try:
        _Worker.running = True
        config = load_config(job.recipe, [*job.overrides, f"target={json.dumps(job.target)}"])
        settings = _settings(job, config)
        previous = read_result(folder)
        if previous is not None and previous.get("status") == "done":
            if previous.get("settings") == settings:
                return {**{k: v for k, v in previous.items() if k != "settings"}, "skipped": True}
            # Not overwritten: that painting may be what someone wanted.
            changed = differences(previous["settings"], settings) if isinstance(previous.get("settings"), dict) else []
            what = f" ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})" if changed else ""
            return {**row, "error": f"it was painted with other settings before{what} in {folder}; paint into another "
                                    "--out, or delete the job's folder to paint it again"}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / WORKER_FILE).write_text(worker + "\n")
        torch.set_num_threads(max(1, job.threads))
        result = run(config, out=folder, resume=True, quiet=True)
        if hasattr(result, "target"):  # exports are of a still image's painting
            for fmt in job.exports:
                export(result.scene, folder / f"painting.{fmt}")
        _previews(result, folder)
        scenes = getattr(result, "scenes", None)
        row.update(status="done", psnr=round(float(result.psnr), 4), ssim=round(float(result.ssim), 4),
                   primitives=len(scenes[-1]) if scenes else len(result.scene), seconds=round(float(result.seconds), 2))
    except KeyboardInterrupt as error:  # Ctrl-C, SIGTERM: the fit checkpointed and stopped
        _Worker.signum = getattr(error, "signum", 2)  # (the fit's own handler took the signal) no job follows
        row.update(status="interrupted", error=f"interrupted ({signal_name(error)}); run the batch again to resume it")
    except SettingsChangedError as error:  # an interrupted job, resumed with other settings
        changed = error.changed
        what = f" ({', '.join(changed[:3])}{', ...' if len(changed) > 3 else ''})" if changed else ""
        row.update(error=f"it was started with other settings before{what} in {folder}; run it with those settings, "
                         "paint into another --out, or delete the job's folder to paint it again")
    except DiffBMPError as error:
        row.update(error=_first_line(error))
    except Exception as error:  # noqa: BLE001 (one job's failure must not stop the batch)
        row.update(error=f"{type(error).__name__}: {_first_line(error)}")
    finally:
        _Worker.running = False
    if row["seconds"] is None:
        row["seconds"] = round(time.perf_counter() - started, 2)
    try:
        _write_result(folder, {**row, "settings": settings})
    except OSError as error:  # the row still reaches the batch's summary
        row["error"] = (row["error"] + "; " if row["error"] else "") + f"result not written: {error}"
    return row
