"""`backlog-ops import transcripts`: run the import, show its progress, print its report."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from backlog_ops.capture.transcripts import import_transcripts, render_report

__all__ = ["run_import"]


def run_import(path: str | None, dry_run: bool, as_json: bool) -> int:
    """Import, print the report (text or JSON); 0 on success."""
    bar = _Progress.for_stderr()

    def progress(files: list):
        bar.start(len(files))
        for i, file in enumerate(files):
            bar.update(i, file)
            yield file
        bar.finish()

    report = import_transcripts(path, dry_run=dry_run, progress=progress)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_report(report))
    return 0


class _Progress:
    """A progress bar on stderr: redrawn in place on a terminal, a line per 10% otherwise.

    Shown for 20 files or more on a terminal, 1000 or more elsewhere (CI logs stay short);
    BACKLOG_PROGRESS=0/1 forces it off/on.
    """

    def __init__(self, stream: TextIO | None, tty: bool = False, force: bool | None = None) -> None:
        self.stream = stream
        self.tty = tty
        self.force = force
        self.total = 0
        self.shown = False
        self._last = -1
        self._last_draw = 0.0

    @classmethod
    def for_stderr(cls) -> "_Progress":
        forced = os.environ.get("BACKLOG_PROGRESS")
        force = None if forced in (None, "") else forced not in ("0", "false", "no")
        try:
            tty = sys.stderr.isatty()
        except (AttributeError, ValueError):
            tty = False
        return cls(sys.stderr, tty, force)

    def start(self, total: int) -> None:
        self.total = total
        if self.stream is None:
            return
        threshold = 20 if self.tty else 1000
        self.shown = self.force if self.force is not None else total >= threshold

    def update(self, done: int, current: Path | None = None) -> None:
        if not self.shown or not self.total:
            return
        pct = done * 100 // self.total
        if self.tty:
            now = time.monotonic()
            if now - self._last_draw < 0.1 and done:
                return
            self._last_draw = now
            width = 30
            filled = width * done // self.total
            self.stream.write(f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} files")
            self.stream.flush()
        elif pct // 10 != self._last // 10:
            self._last = pct
            self.stream.write(f"  {done}/{self.total} files ({pct}%)\n")
            self.stream.flush()

    def finish(self) -> None:
        if not self.shown or not self.total:
            return
        if self.tty:
            self.stream.write(f"\r  [{'#' * 30}] {self.total}/{self.total} files\n")
        else:
            self.stream.write(f"  {self.total}/{self.total} files (100%)\n")
        self.stream.flush()
