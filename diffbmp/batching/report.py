"""What a batch tells as it goes and leaves when it ends: a progress line per finished job (done,
failed, running, pictures per minute, time left), ``summary.csv`` rewritten after every job,
and ``index.html``, a contact sheet of every job's target and painting that opens in a browser
from the folder itself (no server)."""

from __future__ import annotations

import csv
import html
import io
import sys
import time
from pathlib import Path
from typing import Any, Callable

from .._tempfiles import write_text_atomic
from .runner import COLUMNS

__all__ = ["Report"]


class Report:
    """Collects result rows (in job order) and writes the batch's summary files under ``out``."""

    def __init__(self, out: Path, names: list[str], workers: int, *, say: Callable[[str], None] | None = None):
        self.out = out
        self.order = {name: index for index, name in enumerate(names)}
        self.rows: dict[str, dict[str, Any]] = {}
        self.workers = workers
        self.started = time.perf_counter()
        self.painted = 0  # fits run by this invocation (skipped ones are not counted in the rate)
        self.say = say or (lambda message: print(f"diffbmp batch: {message}", file=sys.stderr, flush=True))

    @property
    def summary_csv(self) -> Path:
        return self.out / "summary.csv"

    @property
    def index_html(self) -> Path:
        return self.out / "index.html"

    def counts(self) -> dict[str, int]:
        statuses = [row["status"] for row in self.rows.values()]
        return {status: statuses.count(status) for status in ("done", "failed", "interrupted")}

    def record(self, row: dict[str, Any]) -> None:
        self.rows[row["name"]] = row
        if not row.get("skipped"):
            self.painted += 1
        total, finished = len(self.order), len(self.rows)
        counts = self.counts()
        minutes = (time.perf_counter() - self.started) / 60
        rate = self.painted / minutes if minutes > 0 and self.painted else 0.0
        left = total - finished
        eta = ""
        if rate > 0 and left:
            minutes_left = left / rate
            eta = f", about {minutes_left:.0f} min left" if minutes_left >= 1 else f", about {minutes_left * 60:.0f} s left"
        running = min(left, self.workers)
        what = "skipped (done before)" if row.get("skipped") else row["status"]
        detail = f", PSNR {row['psnr']:.2f} dB" if row.get("psnr") is not None else ""
        detail += f": {row['error']}" if row["status"] != "done" and row.get("error") else ""
        stopped = f", {counts['interrupted']} interrupted" if counts["interrupted"] else ""
        self.say(f"[{finished}/{total}] {row['name']} {what}{detail} | {counts['done']} done, {counts['failed']} failed"
                 f"{stopped}, {running} running, {rate:.1f} per minute{eta}")
        self.write_summary()

    def ordered(self) -> list[dict[str, Any]]:
        return sorted(self.rows.values(), key=lambda row: self.order.get(row["name"], len(self.order)))

    def write_summary(self) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(COLUMNS)
        for row in self.ordered():
            writer.writerow(["" if row.get(column) is None else row[column] for column in COLUMNS])
        write_text_atomic(self.summary_csv, buffer.getvalue())

    def write_index(self) -> None:
        cells = []
        for row in self.ordered():
            folder = self.out / row["name"]
            pictures = []
            for label, name in (("target", "preview_target.png"), ("painting", "preview_painting.png")):
                if (folder / name).is_file():
                    pictures.append(f'<figure><img src="{html.escape(row["name"])}/{name}" alt="{label}" loading="lazy">'
                                    f"<figcaption>{label}</figcaption></figure>")
            facts = [row["status"]]
            if row.get("psnr") is not None:
                facts.append(f"PSNR {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}, {row['primitives']} primitives")
            if row.get("seconds") is not None:
                facts.append(f"{row['seconds']:.1f} s")
            if row.get("error"):
                facts.append(html.escape(row["error"]))
            link = f'<a href="{html.escape(row["name"])}/">{html.escape(row["name"])}</a>'
            cells.append(f'<section class="{row["status"]}"><h2>{link}</h2>{"".join(pictures)}'
                         f"<p>{' &middot; '.join(facts)}</p><p class=\"input\">{html.escape(str(row['input']))}</p></section>")
        counts = self.counts()
        page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>diffbmp batch: {len(self.rows)} jobs</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; background: #fafafa; }}
main {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(330px, 1fr)); gap: 1em; }}
section {{ background: white; border: 1px solid #ddd; padding: 0.6em; }}
section.failed {{ border-color: #c33; }} section.interrupted {{ border-color: #c93; }}
h2 {{ font-size: 1em; margin: 0 0 0.4em; }} figure {{ display: inline-block; margin: 0 0.4em 0 0; }}
img {{ width: 150px; image-rendering: auto; }} figcaption, .input {{ font-size: 0.8em; color: #666; }}
</style></head><body>
<h1>{counts['done']} done, {counts['failed']} failed, {counts['interrupted']} interrupted</h1>
<p>Each folder holds the run's final.png, scene.npz and exports; <a href="summary.csv">summary.csv</a> has the numbers.</p>
<main>
{chr(10).join(cells)}
</main></body></html>
"""
        write_text_atomic(self.index_html, page)
