"""Console plumbing: byte stream → lines → batched ``ConsoleMessage`` publications.

Lines are split on LF (a CR before it is dropped, other CRs and ANSI escapes are kept so
the browser terminal can render them), decoded incrementally so a UTF-8 character split
across chunks survives, and batched so a chatty server costs one MQTT message per
``batch_ms`` rather than one per line.
"""

from __future__ import annotations

import codecs
import json
import threading
import time
from collections import deque
from collections.abc import Callable

from stellar_protocol.messages import ConsoleMessage

MAX_LINE = 16 * 1024  # longer lines are cut so one line can never exceed a message
MAX_MESSAGE = 64 * 1024
MAX_PENDING = 5000  # lines waiting to be flushed; beyond this the oldest are dropped
_OVERHEAD = 160  # JSON envelope of a ConsoleMessage without its lines

Source = str  # "server" | "install" | "agent"


class LineSplitter:
    """Turns arbitrary byte chunks into complete lines, keeping the partial tail."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buf = ""
        self._max = max_line

    def feed(self, data: bytes) -> list[str]:
        self._buf += self._decoder.decode(data)
        parts = self._buf.split("\n")
        self._buf = parts.pop()
        lines = [p[:-1] if p.endswith("\r") else p for p in parts]
        out: list[str] = []
        for line in lines:
            out.extend(self._cut(line))
        while len(self._buf) > self._max:
            out.append(self._buf[: self._max])
            self._buf = self._buf[self._max :]
        return out

    def flush(self) -> list[str]:
        """The trailing partial line at end of stream, if any."""
        rest = self._buf + self._decoder.decode(b"", final=True)
        self._buf = ""
        rest = rest[:-1] if rest.endswith("\r") else rest
        return self._cut(rest) if rest else []

    def _cut(self, line: str) -> list[str]:
        if len(line) <= self._max:
            return [line]
        return [line[i : i + self._max] for i in range(0, len(line), self._max)]


def _cost(line: str) -> int:
    return len(json.dumps(line)) + 1


def batches(lines: list[str], limit: int = MAX_MESSAGE) -> list[list[str]]:
    """Split lines into groups whose encoded message stays under ``limit`` bytes."""
    out: list[list[str]] = []
    current: list[str] = []
    size = _OVERHEAD
    for line in lines:
        cost = _cost(line)
        if current and size + cost > limit:
            out.append(current)
            current, size = [], _OVERHEAD
        current.append(line)
        size += cost
    if current:
        out.append(current)
    return out


class Console:
    """Per-server console: a ring buffer for late viewers, a throttle and a batching publisher.

    Bounds, as the wire needs them: a line waits at most ``batch_ms`` (the deadline is set
    by the first line of a batch, not reset by later ones), a message never exceeds
    ``MAX_MESSAGE`` bytes, and a batch reaching that size is flushed at once. Above
    ``throttle_lines`` per ``throttle_ms`` window (Wings: 2,000 per 100 ms) lines are
    dropped and counted in the next message's ``dropped``, so a flooding game costs
    bounded CPU and bandwidth instead of stalling the agent.
    """

    def __init__(
        self,
        publish: Callable[[ConsoleMessage], None],
        batch_ms: int = 50,
        backlog_lines: int = 150,
        throttle_lines: int = 2000,
        throttle_ms: int = 100,
        clock: Callable[[], float] = time.monotonic,
        thread: bool = True,
    ) -> None:
        self._publish = publish
        self._batch_s = batch_ms / 1000.0
        self._ring: deque[tuple[Source, str]] = deque(maxlen=max(backlog_lines, 0) or None)
        self._keep_ring = backlog_lines > 0
        self._pending: list[tuple[Source, str]] = []
        self._pending_bytes = 0
        self._deadline: float | None = None
        self._dropped = 0
        self._limit = throttle_lines
        self._window_s = throttle_ms / 1000.0
        self._window_start = float("-inf")
        self._window_count = 0
        self._clock = clock
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        if thread:
            self._thread = threading.Thread(target=self._run, name="console-flush", daemon=True)
            self._thread.start()

    def push(self, line: str, source: Source = "server") -> None:
        with self._cond:
            now = self._clock()
            if source == "server" and self._limit > 0:
                if now - self._window_start >= self._window_s:
                    self._window_start, self._window_count = now, 0
                self._window_count += 1
                if self._window_count > self._limit:
                    self._dropped += 1
                    if self._deadline is None:
                        self._deadline = now + self._batch_s  # the marker must go out too
                        self._cond.notify()
                    return
            if self._keep_ring:
                self._ring.append((source, line))
            self._pending.append((source, line))
            self._pending_bytes += _cost(line)
            if len(self._pending) > MAX_PENDING:  # publishing fell behind: drop the oldest
                excess = len(self._pending) - MAX_PENDING
                self._pending_bytes -= sum(_cost(ln) for _, ln in self._pending[:excess])
                del self._pending[:excess]
                self._dropped += excess
            if self._deadline is None:
                self._deadline = now + self._batch_s
                self._cond.notify()
            elif self._pending_bytes + _OVERHEAD >= MAX_MESSAGE:
                self._deadline = now  # a full message: no reason to wait
                self._cond.notify()

    def due(self) -> bool:
        """Whether the pending batch has reached its deadline (or size bound)."""
        with self._cond:
            return self._deadline is not None and self._clock() >= self._deadline

    def backlog(self) -> None:
        """Re-publish the ring buffer (flagged ``backlog``) for a viewer that just joined."""
        with self._cond:
            ring = list(self._ring)
        for source, group in _by_source(ring):
            for chunk in batches(group):
                self._publish(ConsoleMessage(lines=chunk, backlog=True, source=source))  # type: ignore[arg-type]

    def flush(self) -> None:
        with self._cond:
            pending, dropped = self._pending, self._dropped
            self._pending, self._dropped, self._pending_bytes, self._deadline = [], 0, 0, None
        if dropped and not pending:
            self._publish(ConsoleMessage(lines=[], dropped=dropped, source="agent"))
            return
        first = True
        for source, group in _by_source(pending):
            for chunk in batches(group):
                self._publish(
                    ConsoleMessage(lines=chunk, source=source, dropped=dropped if first else 0)  # type: ignore[arg-type]
                )
                first = False

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.flush()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._deadline is None or self._clock() < self._deadline):
                    wait = None if self._deadline is None else max(self._deadline - self._clock(), 0.0)
                    self._cond.wait(wait)
                if self._closed:
                    return
            try:
                self.flush()
            except Exception:  # a publish failure must not kill the console
                pass


def _by_source(items: list[tuple[Source, str]]) -> list[tuple[Source, list[str]]]:
    """Group consecutive lines of the same source (a message carries one source)."""
    groups: list[tuple[Source, list[str]]] = []
    for source, line in items:
        if groups and groups[-1][0] == source:
            groups[-1][1].append(line)
        else:
            groups.append((source, [line]))
    return groups
