"""A journal: items a process has accepted, on local disk until they are delivered.

A process keeps items in memory for a while before it delivers them (the ledger writer, in
batches; the event publishers, while NATS is away); a process killed with -9 would lose them. So
each item is first appended to a journal file: one write(2) on an O_APPEND descriptor, no fsync
(a process crash loses nothing the kernel already has). A line is forgotten once its item is
delivered: files ("segments", at most `segment_bytes` each) are deleted when no entry in them is
outstanding and they are no longer written to, so the journal stays small while delivery keeps up.

Layout: `<dir>/<owner>.lock`, held with flock for the process's life, and `<owner>.<seq>.jsonl`.
A later process takes over the segments of owners whose lock it can take (their process is gone)
by moving them into its spool (common/spool.py), which it loads: every user delivers
idempotently (ledger rows are upserts on call_id, events carry their id to JetStream's
de-duplication), so an item loaded twice is still delivered once.
Used by the ledger writer (ledger/writer.py) and the event publishers (gateway/jetstream_publisher.py).
"""

from __future__ import annotations

import fcntl
import itertools
import os
import threading

from backlog_ops.common.home import ensure_dir
from backlog_ops.errors import HomeError

__all__ = ["Journal", "Segment"]

_owners = itertools.count(1)
_ROLL_EMPTY = 256 << 10  # what a killed writer leaves to be loaded again at most, when its delivery kept up


class Segment:
    """One journal file and how many of its entries are not delivered yet."""

    __slots__ = ("path", "seq", "size", "outstanding", "spilled", "closed")

    def __init__(self, path: str, seq: int) -> None:
        self.path = path
        self.seq = seq
        self.size = 0
        self.outstanding = 0
        self.spilled = False  # an entry was dropped from memory: the file itself must be loaded
        self.closed = False


class Journal:
    """The journal of one writer, in `directory`; thread-safe. `name` says what it is in errors."""

    def __init__(self, directory, *, name: str = "journal", segment_bytes: int = 8 << 20,
                 max_bytes: int = 1 << 30) -> None:
        self.directory = os.fspath(directory)
        self.name = name
        # pid, a counter and a random part: a later process that reuses the pid never takes these files for its own.
        self.owner = f"{os.getpid()}-{next(_owners)}-{os.urandom(3).hex()}"
        self._segment_bytes = segment_bytes
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._current: Segment | None = None
        self._segments: dict[int, Segment] = {}
        self._seq = 0
        self._bytes = 0

    # -- writing -----------------------------------------------------------------------------

    def append(self, line: bytes) -> Segment:
        """Write one line (ending in a newline); the segment that holds it, to `resolve` later.

        Raises HomeError when the line cannot be written (read-only home, full disk, journal full).
        """
        with self._lock:
            if self._fd is None or self._current.size + len(line) > self._segment_bytes:
                self._roll()
            if self._bytes + len(line) > self._max_bytes:
                raise HomeError(f"{self.name} {self.directory} holds {self._bytes >> 20} MB, its limit")
            try:
                written = os.write(self._fd, line)
            except OSError as exc:
                raise HomeError(f"cannot append to the {self.name} {self._current.path}: {exc.strerror or exc}") from exc
            segment = self._current
            segment.size += written
            self._bytes += written
            if written != len(line):  # a full disk: the line is torn, a later load moves it aside
                raise HomeError(f"cannot append to the {self.name} {segment.path}: short write")
            segment.outstanding += 1
            return segment

    def resolve(self, segment: Segment, count: int = 1) -> None:
        """`count` entries of `segment` are delivered; a segment with none left is deleted.

        The segment being written is deleted too once it holds `_ROLL_EMPTY` bytes, so a journal
        whose delivery keeps up stays that small.
        """
        with self._lock:
            segment.outstanding -= count
            if segment.outstanding > 0 or segment.spilled:
                return
            if segment is self._current:
                if segment.size >= _ROLL_EMPTY:
                    self._close_current()
            else:
                self._delete(segment)

    def spill(self, segment: Segment) -> None:
        """An entry of `segment` was dropped from memory: keep the file until `take_spilled` loads it."""
        with self._lock:
            segment.spilled = True

    def take_spilled(self, spool_path: str) -> int:
        """Move finished segments that hold dropped entries into the spool's claimed files; how many."""
        moved = 0
        with self._lock:
            if self._current is not None and self._current.spilled:
                self._close_current()
            for segment in [s for s in self._segments.values() if s.spilled and s is not self._current]:
                if self._move(segment, spool_path):
                    moved += 1
        return moved

    def outstanding(self) -> int:
        with self._lock:
            return sum(max(0, s.outstanding) for s in self._segments.values())

    def close(self, *, keep: bool) -> None:
        """Stop writing; delete every segment unless `keep` (the next writer then takes them over)."""
        with self._lock:
            self._close_current()
            if not keep:
                for segment in list(self._segments.values()):
                    self._delete(segment)
                if self._lock_fd is not None:
                    _unlink(os.path.join(self.directory, f"{self.owner}.lock"))
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    # -- taking over what dead writers left ------------------------------------------------------

    def adopt_orphans(self, spool_path: str) -> int:
        """Move the segments of writers that are gone into the spool's claimed files; how many."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return 0
        owners = {n.split(".", 1)[0] for n in names if n.endswith((".lock", ".jsonl"))} - {self.owner}
        moved = 0
        for owner in sorted(owners):
            lock_path = os.path.join(self.directory, f"{owner}.lock")
            fd = None
            if os.path.exists(lock_path):
                try:
                    fd = os.open(lock_path, os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    if fd is not None:
                        os.close(fd)
                    continue  # its writer is alive (or the lock cannot be read: leave it)
            # A segment without a lock file is an orphan too: a writer takes its lock before its first segment.
            try:
                files = sorted(n for n in names if n.startswith(owner + ".") and n.endswith(".jsonl"))
                left = 0
                for file_name in files:
                    if _rename(os.path.join(self.directory, file_name), _claimed_name(spool_path, file_name)):
                        moved += 1
                    else:
                        left += 1
                if not left:
                    _unlink(lock_path)
            finally:
                if fd is not None:
                    os.close(fd)
        return moved

    # -- inside (callers hold self._lock) --------------------------------------------------------

    def _roll(self) -> None:
        if self._lock_fd is None:
            self._take_own_lock()
        self._close_current()
        self._seq += 1
        segment = Segment(os.path.join(self.directory, f"{self.owner}.{self._seq:06d}.jsonl"), self._seq)
        try:
            self._fd = os.open(segment.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            raise HomeError(f"cannot create the {self.name} {segment.path}: {exc.strerror or exc}") from exc
        self._current = segment
        self._segments[segment.seq] = segment

    def _take_own_lock(self) -> None:
        ensure_dir(self.directory)
        path = os.path.join(self.directory, f"{self.owner}.lock")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        except OSError as exc:
            raise HomeError(f"cannot create {path}: {exc.strerror or exc}") from exc
        fcntl.flock(fd, fcntl.LOCK_EX)  # our own name: nobody else holds it
        self._lock_fd = fd

    def _close_current(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        current, self._current = self._current, None
        if current is not None:
            current.closed = True
            if current.outstanding <= 0 and not current.spilled:
                self._delete(current)

    def _delete(self, segment: Segment) -> None:
        if self._segments.pop(segment.seq, None) is not None:
            self._bytes -= segment.size
            _unlink(segment.path)

    def _move(self, segment: Segment, spool_path: str) -> bool:
        if not _rename(segment.path, _claimed_name(spool_path, os.path.basename(segment.path))):
            return False
        self._segments.pop(segment.seq, None)
        self._bytes -= segment.size
        return True


def _claimed_name(spool_path: str, file_name: str) -> str:
    # The spool loader takes every "<spool>.*.loading" file: a moved segment is one of them.
    return f"{os.fspath(spool_path)}.journal-{file_name[:-len('.jsonl')]}.loading"


def _rename(source: str, target: str) -> bool:
    try:
        os.rename(source, target)
        return True
    except OSError:
        return False


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
