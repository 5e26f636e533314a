"""Transparent stand-ins for SDK streams that count the usage passing through them.

The caller sees the same items and attributes, and can use the stand-in as a context manager
as it would the stream. When the stream ends, fails or is closed, `on_done(usage, exc)` is
called once with what the items said (`exc` is None for a normal end).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from backlog_ops.capture.usage import StreamUsage, Usage

__all__ = ["counted_stream", "looks_like_stream"]

OnDone = Callable[[Usage, "BaseException | None"], None]


def counted_stream(stream: Any, on_done: OnDone) -> Any:
    """A sync or async stand-in for `stream`, whichever it is."""
    if hasattr(stream, "__aiter__") or hasattr(stream, "__aenter__") and not hasattr(stream, "__enter__"):
        return _AsyncStreamProxy(stream, on_done)
    return _StreamProxy(stream, on_done)


def looks_like_stream(obj: Any) -> bool:
    """Whether a function's return value is an SDK stream (or stream manager) worth wrapping."""
    if isinstance(obj, (str, bytes, dict, list, tuple)):
        return False
    name = type(obj).__name__
    return name.endswith(("Stream", "StreamManager")) and (
        hasattr(obj, "__iter__") or hasattr(obj, "__aiter__") or hasattr(obj, "__enter__") or hasattr(obj, "__aenter__")
    )


class _StreamProxyBase:
    """What the sync and async stand-ins share: state, attribute pass-through, counting, finishing."""

    def __init__(self, stream: Any, on_done: OnDone, acc: StreamUsage | None = None, owner: bool = True) -> None:
        self._stream = stream
        self._on_done = on_done
        self._acc = acc or StreamUsage()
        self._owner = owner  # False for the stream a manager handed out: the manager reports
        self._done = False
        self._iter: Any = None
        self._inner: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __del__(self) -> None:
        try:
            self._finish(None)
        except Exception:  # noqa: BLE001
            pass

    def _counted(self, item: Any) -> Any:
        self._acc.feed(item)
        return item

    def _ended_by(self, exc: BaseException) -> None:
        """The iteration stopped with `exc`: the normal end, or a failure to report."""
        self._finish(None if isinstance(exc, (StopIteration, StopAsyncIteration)) else exc)

    def _entered(self, inner: Any) -> Any:
        """What `with`/`async with` gives the caller: us, or a stand-in for the stream a manager hands out."""
        if inner is self._stream:
            return self
        # A manager (anthropic's messages.stream()) handing out the real stream.
        self._inner = inner
        return type(self)(inner, self._on_done, self._acc, owner=False)

    def _finish(self, exc: BaseException | None) -> None:
        if self._done or not self._owner:
            self._done = True
            return
        self._done = True
        self._on_done(self._acc.final(self._inner if self._inner is not None else self._stream), exc)


class _StreamProxy(_StreamProxyBase):
    """A transparent stand-in for a sync stream (or stream manager) that counts its usage."""

    def __iter__(self) -> "_StreamProxy":
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._stream)
        try:
            item = next(self._iter)
        except BaseException as exc:
            self._ended_by(exc)
            raise
        return self._counted(item)

    def __enter__(self) -> Any:
        return self._entered(self._stream.__enter__())

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            return self._stream.__exit__(*exc_info)
        finally:
            self._finish(exc_info[1])

    def close(self) -> Any:
        try:
            closer = getattr(self._stream, "close", None)
            return closer() if closer is not None else None
        finally:
            self._finish(None)


class _AsyncStreamProxy(_StreamProxyBase):
    """The async twin of _StreamProxy."""

    def __aiter__(self) -> "_AsyncStreamProxy":
        return self

    async def __anext__(self) -> Any:
        if self._iter is None:
            self._iter = self._stream.__aiter__()
        try:
            item = await self._iter.__anext__()
        except BaseException as exc:
            self._ended_by(exc)
            raise
        return self._counted(item)

    async def __aenter__(self) -> Any:
        return self._entered(await self._stream.__aenter__())

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            return await self._stream.__aexit__(*exc_info)
        finally:
            self._finish(exc_info[1])

    async def close(self) -> Any:
        try:
            closer = getattr(self._stream, "close", None) or getattr(self._stream, "aclose", None)
            result = closer() if closer is not None else None
            return await result if inspect.isawaitable(result) else result
        finally:
            self._finish(None)
