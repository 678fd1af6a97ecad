"""Many pictures and clips at once: ``diffbmp batch RECIPE INPUTS... --out DIR`` and
:func:`diffbmp.batch`.

Every input becomes a job with a run folder of its own under ``DIR`` (named after the input),
painted as ``diffbmp fit`` paints it, by an engine: ``local`` (a process pool on this machine,
the default) or ``ray`` (a Ray cluster). A job that fails is recorded and the others go on;
re-running the same batch skips done jobs and resumes interrupted ones. docs/batch.md is the
guide.

Modules: :mod:`~diffbmp.batching.jobs` (inputs to jobs), :mod:`~diffbmp.batching.runner` (one
job), :mod:`~diffbmp.batching.engines` (where jobs run), :mod:`~diffbmp.batching.report`
(progress, summary.csv, index.html).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from .engines import ENGINES, make_engine
from .jobs import Job, collect_jobs
from .report import Report

__all__ = ["batch", "BatchResult", "Job", "collect_jobs", "ENGINES"]

#: Export formats a batch can write for each painting.
EXPORT_FORMATS = ("psd", "svg", "png", "json")


@dataclass
class BatchResult:
    """The outcome of a batch.

    Attributes:
        rows: one result per job, in input order (name, input, status, psnr, ssim,
            primitives, seconds, worker, error).
        summary: path of summary.csv.
        index: path of index.html (the contact sheet).
    """

    rows: list[dict[str, Any]]
    summary: Path
    index: Path

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [row for row in self.rows if row["status"] != "done"]


def batch(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    recipe: str | None = None,
    out: str | os.PathLike = "batch",
    *,
    exports: Sequence[str] = (),
    engine: str = "local",
    workers: int | None = None,
    threads: int = 1,
    device: str = "auto",
    address: str | None = None,
    retries: int = 2,
    overrides: Sequence[str] = (),
    quiet: bool = False,
) -> BatchResult:
    """Paint every input, each in a run folder of its own under ``out``.

    Args:
        inputs: pictures, videos, folders (each picture or video in them), patterns
            (``"shots/*.jpg"``), ``skimage:``/``demo:`` names, or CSV/JSON manifests (one row
            per job: ``input``, optionally ``name``, and config keys for that job).
        recipe: the recipe name or YAML file every job starts from (None: the defaults).
        out: the batch folder.
        exports: formats to export each painting to (psd, svg, png, json).
        engine: "local" (a process pool here) or "ray" (a Ray cluster: ``address``, else
            ``RAY_ADDRESS``, else a Ray instance started here).
        workers: local worker processes (default: one per core, or per GPU).
        threads: CPU threads per job (and CPUs a Ray task asks for).
        device: "cpu", "cuda" (one worker per GPU locally; one GPU per Ray task), or "auto" (the
            default: "cuda" where there are GPUs, here or in the Ray cluster).
        retries: how often a job whose worker died is run again.
        overrides: ``key=value`` config overrides for every job.
        quiet: no progress lines.

    Returns:
        A :class:`BatchResult`; jobs that failed are in it with their error (nothing raises
        for one job's failure).
    """
    from ..config import load_config
    from ..errors import ConfigError

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    unknown = sorted(set(exports) - set(EXPORT_FORMATS))
    if unknown:
        raise ConfigError(f"unknown export format {', '.join(map(repr, unknown))}; choose from {', '.join(EXPORT_FORMATS)}")
    if retries < 0 or threads < 1 or (workers is not None and workers < 1):
        raise ConfigError("retries must be 0 or more, and threads and workers 1 or more")
    config = load_config(recipe, list(overrides))  # a bad recipe or key is reported once, before any job starts
    if "psd" in exports and not config.budget.active:
        from ..exports.psd import MAX_PSD_RECORDS

        if config.n + 1 > MAX_PSD_RECORDS:
            raise ConfigError(f"{config.n} primitives are more layers than a PSD holds ({MAX_PSD_RECORDS}, Photoshop "
                              "opens 8000); export svg or png, and parts of a scene as PSDs with `diffbmp export "
                              "SCENE.npz --select index=0-7999 ...`")
    out = Path(out).expanduser()
    jobs = collect_jobs([os.fspath(i) for i in inputs], out, recipe=recipe, overrides=overrides, exports=exports,
                        threads=threads)
    runner = make_engine(engine, workers=workers, device=device, address=address, retries=retries, threads=threads)
    for job in jobs:  # the engine's device first: a --set device=... still wins
        job.overrides.insert(0, f"device={runner.device}")
    at_once = min(runner.workers, len(jobs))
    report = Report(out, [job.name for job in jobs], at_once, say=(lambda m: None) if quiet else None)
    out.mkdir(parents=True, exist_ok=True)
    report.say(f"{len(jobs)} job{'s' if len(jobs) != 1 else ''} on the {runner.name} engine ({at_once} at a time, "
               f"on {runner.device}) into {out}")
    try:
        runner.run(jobs, report.record)
    finally:
        report.write_summary()
        report.write_index()
    return BatchResult(rows=report.ordered(), summary=report.summary_csv, index=report.index_html)
