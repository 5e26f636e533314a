"""Reading the transcripts that changed: each file into its requests, here or in worker processes.

One file at a time
    A file is read on its own (`read_file`): its new lines parsed (files.read_new_lines,
    parse.parse_lines) and merged into requests within the file, with a report of its own (its
    lines, malformed lines, or why it could not be read). The importer merges the files'
    requests and reports in the order of the files, so an import gives the same rows and the
    same report whether its files were read here or in workers.

In parallel
    An import with PARALLEL_MIN_BYTES or more to read, in two files or more, reads them in a pool
    of worker processes, one per idle core (`worker_count`; `jobs` chooses how many, 1 reads
    everything here). Below that a pool costs more than it saves (starting it, sending the rows
    back), a single file cannot be shared between processes, and on a machine with no idle core
    workers only add their own cost. A worker sends back plain tuples, not objects, with the
    strings a file repeats (its path, sessions, models, branches) sent once; it never touches
    the ledger: the importer alone writes it. A worker that dies (killed, out of memory) loses
    nothing: the files it had not returned are read here.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, fields
from operator import attrgetter
from pathlib import Path
from typing import Iterator

from backlog_ops.capture.transcripts.files import read_new_lines
from backlog_ops.capture.transcripts.parse import Request, RequestGroups, parse_lines
from backlog_ops.capture.transcripts.report import ImportReport
from backlog_ops.errors import TranscriptFileError

__all__ = ["FileRead", "PARALLEL_MIN_BYTES", "read_file", "read_files", "worker_count"]

# Below this many bytes to read an import stays in one process: starting the pool and sending the
# rows back cost about 0.05 s of CPU and up to 0.15 s of wall time, more than a second core saves on
# a few MB (measured on 2 cores, --jobs 2 vs. 1: 10 MB in 20 files 0.52 / 0.37 s at a load average
# of 3.5; 32 MB in 80 files 3.05 / 2.90 s at 6-7; at 212 MB the workers save ~1 s of parsing when a
# core is idle). A guess to re-take on a quiet machine.
PARALLEL_MIN_BYTES = 32 * 2**20
MAX_AUTO_JOBS = 8  # more workers than this mostly wait on the disk and on the one writer

_ROW = attrgetter(*(f.name for f in fields(Request)))  # a Request as a tuple, in the order Request(*row) takes


@dataclass(slots=True)
class FileRead:
    """What reading one file gave: whether it was opened, what to keep for it, its requests and its report."""

    opened: bool  # False: unchanged, or not readable (its report says why)
    state: dict | None  # the file's state after this read (None: keep the old one)
    requests: list[Request]  # merged within the file, in the order their first lines were read
    report: ImportReport  # this file's lines, malformed lines, and why it could not be read
    unchanged: bool = False


def read_file(path: Path, prior: dict | None) -> FileRead:
    """Read what `path` gained since `prior` (its state after the last import) into requests."""
    report = ImportReport(str(path), False)
    try:
        new = read_new_lines(path, prior)
    except TranscriptFileError as exc:
        report.problem("not_regular", f"{path}: {exc}")
        return FileRead(False, None, [], report)
    except OSError as exc:
        report.problem("unreadable", f"{path}: {exc.strerror or exc}")
        return FileRead(False, None, [], report)
    if new is None:
        return FileRead(False, None, [], report, unchanged=True)
    groups = RequestGroups(report)
    with new:
        try:
            for request in parse_lines(path, new, new.first_line, report):
                groups.add(request)
        except OSError as exc:
            report.problem("unreadable", f"{path}: {exc.strerror or exc}")
            return FileRead(True, None, [], report)
    return FileRead(True, new.state, groups.in_file_order(), report)


def worker_count(jobs: int | None, files: int, total_bytes: int) -> int:
    """How many worker processes read `files` files of `total_bytes` bytes (0: read them here).

    `jobs` None chooses: from PARALLEL_MIN_BYTES on, one per idle core (rounded) and one for the importer's
    own (it only waits while they read), so none on a machine whose cores are all busy: there a
    worker gets no more CPU than the importer would, and pickling the rows back costs ~8% more CPU
    (measured at a load average of 5 on 2 cores: 5.94 s vs. 5.44 s, wall 0.99x). A number is taken
    as given (when there is anything to parse: files that only need looking at are looked at here).
    """
    if total_bytes <= 0:
        return 0
    if jobs is None:
        if total_bytes < PARALLEL_MIN_BYTES:
            return 0
        cores = _cores()
        idle = cores - _load_average()
        # Half a core idle is enough: on 2 cores at a load average of 1.0 (the import's own
        # earlier minutes included) 2 readers took 0.86x the wall time of one; at 1.7-2.1, 1.03x.
        jobs = min(cores, MAX_AUTO_JOBS, int(idle + 0.5) + 1) if idle >= 0.5 else 0
    workers = min(jobs, files)
    return workers if workers > 1 else 0


def _load_average() -> float:
    """The last minute's load average (0.0 where the system does not say)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def read_files(tasks: list[tuple[Path, dict | None]], workers: int) -> Iterator[FileRead]:
    """read_file(path, prior) of each task, in the order of `tasks`, by `workers` processes (0: here)."""
    if workers <= 0:
        for path, prior in tasks:
            yield read_file(path, prior)
        return
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_start_method(), initializer=_ignore_interrupts)
    finished = False
    try:
        # All submitted at once (a task is a path and a small dict); results are taken in order, so
        # at most the files read ahead of the oldest one still being read wait here.
        futures = [pool.submit(_read_in_worker, str(path), prior) for path, prior in tasks]
        for index, (path, prior) in enumerate(tasks):
            try:
                sent = futures[index].result()
            except BrokenProcessPool:
                # A worker died: what was not returned is read here, in the same order.
                yield from (read_file(p, pr) for p, pr in tasks[index:])
                break
            futures[index] = None  # type: ignore[call-overload]  # its rows are not kept twice
            yield _received(path, sent)
        finished = True
    finally:
        # Done: the workers are gone when the import goes on. Interrupted (Ctrl-C, an error): queued
        # files are dropped and each worker ends after its file, without the import waiting for it.
        pool.shutdown(wait=finished, cancel_futures=True)


def _read_in_worker(path: str, prior: dict | None) -> tuple:
    """read_file in a worker, as what is cheap to send back: (opened, state, report, unchanged, rows)."""
    done = read_file(Path(path), prior)
    return done.opened, done.state, dict(done.report), done.unchanged, list(map(_ROW, done.requests))


def _received(path: Path, sent: tuple) -> FileRead:
    opened, state, report_data, unchanged, rows = sent
    report = ImportReport(str(path), False)
    report.update(report_data)
    return FileRead(opened, state, [Request(*row) for row in rows], report, unchanged)


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C is the importer's to handle (it stops the pool), not a traceback per worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _start_method():
    """fork where it is safe and cheapest (Linux, no other thread whose locks a child could inherit held), else spawn."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
