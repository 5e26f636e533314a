"""`backlog-ops import transcripts`: run the import, show its progress, print its report."""

from __future__ import annotations

import json
import sys
from typing import Iterable, TextIO

from tqdm import tqdm

from backlog_ops.capture.transcripts import import_transcripts, render_report
from backlog_ops.common.settings import env_str

__all__ = ["file_progress", "run_import"]

# Shown from this many files on: on a terminal a bar is cheap, a CI log should stay short.
TTY_THRESHOLD = 20
LOG_THRESHOLD = 1000
TTY_FORMAT = "  [{bar:30}] {n_fmt}/{total_fmt} files"
LOG_FORMAT = "  {n_fmt}/{total_fmt} files ({percentage:.0f}%)"


def run_import(path: str | None, dry_run: bool, as_json: bool, jobs: int | None = None) -> int:
    """Import, print the report (text or JSON); 0 on success."""
    report = import_transcripts(path, dry_run=dry_run, progress=file_progress(), jobs=jobs)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        sys.stdout.write(render_report(report))
    return 0


def file_progress(stream: TextIO | None = None, *, tty: bool | None = None, force: bool | None = None):
    """The import's progress hook: the files, under a progress bar on `stream` (stderr) when it is worth one.

    Redrawn in place on a terminal (20 files or more), a line per 10% elsewhere (1000 or more);
    BACKLOG_PROGRESS=0/1 forces it off/on.
    """
    stream = sys.stderr if stream is None else stream
    tty = _isatty(stream) if tty is None else tty
    if force is None:
        forced = env_str("BACKLOG_PROGRESS")
        force = None if forced is None else forced not in ("0", "false", "no")

    def progress(files: list) -> Iterable:
        shown = force if force is not None else len(files) >= (TTY_THRESHOLD if tty else LOG_THRESHOLD)
        if not shown or not files:
            return files
        if tty:
            return tqdm(files, file=stream, ascii=".#", bar_format=TTY_FORMAT)
        # No time-based redraws in a log (maxinterval): only every tenth of the files.
        return tqdm(files, file=_LogLines(stream), ascii=True, bar_format=LOG_FORMAT,
                    miniters=-(-len(files) // 10), mininterval=0, maxinterval=float("inf"))

    return progress


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class _LogLines:
    """A log is read, not redrawn: each of tqdm's redraws ('\\r' + status) becomes a line of its own."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = ""

    def write(self, text: str) -> None:
        line = text.strip("\r\n").rstrip()
        if line and line != self._last:  # tqdm draws the last state again when it closes
            self._stream.write(line + "\n")
            self._last = line

    def flush(self) -> None:
        self._stream.flush()
