"""Small on-disk records: atomic JSON files and the bounded log of executed command ids."""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any


def write_json(path: Path, data: Any) -> None:
    """Write-then-rename so a crash never leaves a half-written file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """The file's JSON, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class CommandLog:
    """Ids of commands already accepted, so a redelivered QoS 1 command runs once.

    Append-only file, compacted to the newest ``limit`` ids when it grows past twice that,
    so duplicates are caught across agent restarts with bounded disk and memory.
    """

    def __init__(self, path: Path, limit: int = 10_000) -> None:
        self._path = path
        self._limit = limit
        self._lock = threading.Lock()
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._lines = 0
        try:
            for line in path.read_text(encoding="utf-8").splitlines():
                if line:
                    self._ids[line] = None
                    self._ids.move_to_end(line)
                    self._lines += 1
        except OSError:
            pass
        while len(self._ids) > limit:
            self._ids.popitem(last=False)

    def remember(self, command_id: str) -> bool:
        """Record the id; False when it was already known (a duplicate delivery)."""
        with self._lock:
            if command_id in self._ids:
                return False
            self._ids[command_id] = None
            if len(self._ids) > self._limit:
                self._ids.popitem(last=False)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with open(self._path, "a", encoding="utf-8") as fh:
                fh.write(command_id + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._lines += 1
            if self._lines > 2 * self._limit:
                tmp = self._path.with_name(f".{self._path.name}.tmp")
                tmp.write_text("".join(f"{i}\n" for i in self._ids), encoding="utf-8")
                os.replace(tmp, self._path)
                self._lines = len(self._ids)
            return True
