"""Backups on the node: stream a tar.gz of a server's files into presigned S3 part URLs,
and restore one from a presigned GET after verifying its checksum.

The node never holds S3 credentials: the control plane mints every URL and completes the
multipart upload from the ETags reported here. Restores download to a temp file outside
the server's tree, check size and sha256, then extract with the same hostile-archive rules
as the file manager (into a temp dir inside the root, moved into place at the end).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stellar_protocol.messages import BackupCommand, RestoreCommand

from .filesystem import FileError, Root, archives, http_put, ops

HTTP_TIMEOUT_S = 120


class _PartWriter(io.RawIOBase):
    """A write-only stream that cuts the archive into ``part_size`` parts and PUTs each one."""

    def __init__(self, cmd: BackupCommand, progress: Callable[[int], None]) -> None:
        self.cmd, self.progress = cmd, progress
        self.buf = bytearray()
        self.sha = hashlib.sha256()
        self.size = 0
        self.etags: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.buf += data
        self.sha.update(data)
        self.size += len(data)
        while len(self.buf) >= self.cmd.part_size:
            self._put(bytes(self.buf[: self.cmd.part_size]))
            del self.buf[: self.cmd.part_size]
        return len(data)

    def _put(self, body: bytes) -> None:
        index = len(self.etags)
        if index >= len(self.cmd.parts):
            raise FileError("backup larger than the parts the control plane allowed", "too_large")
        self.etags.append(http_put(self.cmd.parts[index].url, body, len(body)))
        self.progress(self.size)

    def finish(self) -> None:
        if self.buf or not self.etags:
            self._put(bytes(self.buf))
            self.buf.clear()


def create(server_dir: Path, cmd: BackupCommand, progress: Callable[[int], None]) -> dict[str, Any]:
    """Stream the backup; returns size, sha256 and the ETags of the uploaded parts."""
    writer = _PartWriter(cmd, progress)
    with Root(server_dir) as root:
        archives.write_tar(root, [[]], writer, compress=True, ignore=cmd.ignore)  # type: ignore[arg-type]
    writer.finish()
    return {"size": writer.size, "sha256": writer.sha.hexdigest(), "etags": writer.etags}


def restore(server_dir: Path, cmd: RestoreCommand, scratch: Path, free_bytes: Callable[[], int | None],
            progress: Callable[[int], None]) -> dict[str, Any]:
    """Download, verify, optionally wipe, extract. The caller guarantees the server is stopped."""
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=scratch) as tmp:
        sha, size = hashlib.sha256(), 0
        with urllib.request.urlopen(cmd.url, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310
            while chunk := resp.read(ops.CHUNK):
                size += len(chunk)
                if size > cmd.size:
                    raise FileError("backup is larger than recorded; refusing it", "checksum")
                sha.update(chunk)
                tmp.write(chunk)
                progress(size)
        if size != cmd.size or sha.hexdigest() != cmd.sha256:
            raise FileError("backup checksum does not match the recorded sha256; nothing was changed", "checksum")
        tmp.seek(0)
        with Root(server_dir) as root:
            if cmd.wipe:
                for name in os.listdir(root.fd):
                    ops._remove_at(root.fd, name)
            entries = archives.extract(root, tmp, "tar.gz", "/", archives.Caps(), ops.Budget(free_bytes()),
                                       replace=True)
    return {"entries": entries, "size": size}

