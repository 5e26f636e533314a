"""The import's rows written by a thread of their own while the importer builds the next ones.

SQLite and PostgreSQL do most of a write without holding Python's GIL (the B-tree and index
work, the round trip): handed to a thread, a batch is written while the importer attributes and
prices the next one, on a second core when there is one. Batches are written in the order they
are put, each in one transaction (`record_many`), by this thread only; at most one waits its
turn, so memory holds about two batches.
"""

from __future__ import annotations

import queue
import threading

__all__ = ["BatchWriter"]

_END = None


class BatchWriter:
    """`ledger.record_many(batch)` for each batch put, in order, in a thread; a context manager.

    An error in the thread is raised by the next `put` or at the end; after one, the batches
    still put are dropped unwritten (the import stops there, and its state is not saved, so a
    rerun reads the same lines again).
    """

    def __init__(self, ledger) -> None:
        self._ledger = ledger
        self._queue: queue.Queue = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="transcript-import-writer", daemon=True)
        self._thread.start()

    def put(self, batch: list) -> None:
        self._raise_error()
        self._queue.put(batch)

    def close(self) -> None:
        """Write what was put, then stop the thread; raises the thread's error, if any."""
        self._stop()
        self._raise_error()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error  # kept: the thread drops every batch put after it

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _END:
                return
            if self._error is not None:
                continue  # drained, so that a put never waits on a thread that stopped writing
            try:
                self._ledger.record_many(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the importer's thread, raised there
                self._error = exc

    def __enter__(self) -> "BatchWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._stop()  # the importer's own error wins; what was put is still written or dropped whole
