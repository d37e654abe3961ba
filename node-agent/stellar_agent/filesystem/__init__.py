"""The agent's file manager: kernel-confined operations on a server's files.

``handle`` turns one ``FileCommand`` into a result dict (or a ``FileError``); the agent
publishes it as the command's ``Reply``. See ``confine`` for why every path is resolved by
fd, and ``archives`` for how hostile archives are refused.
"""

from __future__ import annotations

import base64
import http.client
import os
import urllib.parse
import urllib.request
from pathlib import Path
from typing import IO, Any

from stellar_protocol.messages import FileCommand

from . import archives, ops
from .confine import FileError, Root, openat2_available, split_path

__all__ = ["FileError", "Root", "handle", "openat2_available", "split_path"]

HTTP_TIMEOUT_S = 60


def _pull(root: Root, path: str, url: str, budget: ops.Budget) -> dict[str, Any]:
    """GET a presigned URL into ``path`` (atomic), charging the disk budget as bytes arrive."""
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as resp:  # noqa: S310 - minted by the control plane
        size = ops.write_stream(root, path, iter(lambda: resp.read(ops.CHUNK), b""), budget)
    return {"path": path, "size": size}


def http_put(url: str, body: IO[bytes] | bytes, size: int) -> str:
    """PUT a body to a presigned URL, streamed, with no Content-Type (it is part of S3's signature
    when set, and urllib would add a form type); returns the response's ETag."""
    parts = urllib.parse.urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(parts.hostname or "", parts.port, timeout=HTTP_TIMEOUT_S)
    try:
        conn.putrequest("PUT", f"{parts.path}?{parts.query}" if parts.query else parts.path,
                        skip_accept_encoding=True)
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        if isinstance(body, bytes):
            conn.send(body)
        else:
            while chunk := body.read(ops.CHUNK):
                conn.send(chunk)
        resp = conn.getresponse()
        text = resp.read()
        if resp.status >= 300:
            raise FileError(f"upload refused by storage: HTTP {resp.status} {text[:200]!r}", "io")
        return (resp.getheader("ETag") or "").strip('"')
    finally:
        conn.close()


def _push(root: Root, path: str, url: str) -> dict[str, Any]:
    """PUT the file at ``path`` to a presigned URL, streamed from the confined fd."""
    fd, size = ops.open_read(root, path)
    with os.fdopen(fd, "rb") as f:
        http_put(url, f, size)
    return {"path": path, "size": size}


def handle(server_dir: Path, cmd: FileCommand, free_bytes: int | None = None,
           caps: archives.Caps | None = None) -> dict[str, Any]:
    """Run one file operation under ``server_dir``; ``free_bytes`` is what the disk limit still allows."""
    budget = ops.Budget(free_bytes)
    with Root(server_dir, cmd.deny) as root:
        op = cmd.op
        if op == "list":
            return ops.list_dir(root, cmd.path, cmd.after, cmd.limit)
        if op == "stat":
            return ops.stat_entry(root, cmd.path)
        if op == "read":
            data = ops.read_file(root, cmd.path)
            return {"path": cmd.path, "size": len(data), "content_b64": base64.b64encode(data).decode()}
        if op == "write":
            data = base64.b64decode(cmd.content_b64 or "", validate=True)
            return {"path": cmd.path, "size": ops.write_file(root, cmd.path, data, budget)}
        if op == "mkdir":
            ops.mkdir(root, cmd.path)
            return {"path": cmd.path}
        if op in ("rename", "copy"):
            if not cmd.target:
                raise FileError(f"{op} needs a target")
            if op == "rename":
                ops.rename(root, cmd.path, cmd.target)
            else:
                ops.copy(root, cmd.path, cmd.target, budget)
            return {"path": cmd.target}
        if op == "delete":
            for path in cmd.paths or [cmd.path]:
                ops.delete(root, path)
            return {"deleted": cmd.paths or [cmd.path]}
        if op == "chmod":
            if cmd.mode is None:
                raise FileError("chmod needs a mode")
            ops.chmod(root, cmd.path, cmd.mode)
            return {"path": cmd.path, "mode": f"{cmd.mode:o}"}
        if op == "compress":
            if not cmd.target:
                raise FileError("compress needs a target file")
            return archives.compress(root, cmd.paths or [cmd.path], cmd.target, cmd.format or "tar.gz", budget)
        if op == "decompress":
            entries = archives.decompress(root, cmd.path, cmd.target or "/", caps or archives.Caps(), budget)
            return {"path": cmd.target or "/", "entries": entries}
        if op in ("pull", "push"):
            if not cmd.url:
                raise FileError(f"{op} needs a url")
            return _pull(root, cmd.path, cmd.url, budget) if op == "pull" else _push(root, cmd.path, cmd.url)
        raise FileError(f"unsupported operation {op}")
