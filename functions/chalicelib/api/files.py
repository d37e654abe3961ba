"""File manager routes: every operation runs on the server's node and the API waits for its reply."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from chalice import Blueprint

from ..errors import invalid
from ..services import files as service
from ..services.files import (
    ChmodBody,
    CompressBody,
    DecompressBody,
    MoveBody,
    PathBody,
    PathsBody,
    PullBody,
    WriteBody,
)
from .routing import Context, api_route

bp = Blueprint(__name__)
P = "/servers/{server_id}/files"


def _server(ctx: Context) -> Any:
    assert ctx.server is not None
    return ctx.server


@api_route(bp, f"{P}/list", "GET", summary="One page of a directory (?path=&after=&limit=)", permission="file.read")
def list_files(ctx: Context, server_id: str) -> dict[str, Any]:
    q = ctx.request.query_params or {}
    try:
        limit = int(q.get("limit", "200"))
    except ValueError:
        raise invalid({"limit": "an integer from 1 to 1000"}) from None
    if not 1 <= limit <= 1000:
        raise invalid({"limit": "an integer from 1 to 1000"})
    return service.run(_server(ctx), "list", path=q.get("path", "/"), after=q.get("after"), limit=limit)


@api_route(bp, f"{P}/contents", "POST", summary="A file's content, base64 (up to 4 MiB; larger: download)",
           body=PathBody, permission="file.read-content")
def contents(ctx: Context, server_id: str) -> dict[str, Any]:
    """POST so the path rides in the body, never in access logs' query strings."""
    return service.run(_server(ctx), "read", path=ctx.body.path)


@api_route(bp, f"{P}/write", "POST", summary="Write a file atomically (text or base64)", body=WriteBody,
           permission="file.update")
def write(ctx: Context, server_id: str) -> dict[str, Any]:
    body: WriteBody = ctx.body
    if (body.content is None) == (body.content_b64 is None):
        raise invalid({"content": "give exactly one of content and content_b64"})
    if body.content_b64 is not None:
        try:
            base64.b64decode(body.content_b64, validate=True)
        except (binascii.Error, ValueError):
            raise invalid({"content_b64": "not base64"}) from None
        data = body.content_b64
    else:
        data = base64.b64encode((body.content or "").encode()).decode()
    return service.run(_server(ctx), "write", path=body.path, content_b64=data)


@api_route(bp, f"{P}/create-directory", "POST", summary="Create a directory (and its parents)", body=PathBody,
           permission="file.create")
def create_directory(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.run(_server(ctx), "mkdir", path=ctx.body.path)


@api_route(bp, f"{P}/rename", "POST", summary="Rename or move (never replaces)", body=MoveBody,
           permission="file.update")
def rename(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.run(_server(ctx), "rename", path=ctx.body.path, target=ctx.body.target)


@api_route(bp, f"{P}/copy", "POST", summary="Copy a file or directory", body=MoveBody, permission="file.create")
def copy(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.run(_server(ctx), "copy", path=ctx.body.path, target=ctx.body.target)


@api_route(bp, f"{P}/delete", "POST", summary="Delete files and directories (links, never their targets)",
           body=PathsBody, permission="file.delete")
def delete(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.run(_server(ctx), "delete", paths=ctx.body.paths)


@api_route(bp, f"{P}/chmod", "POST", summary="Change a mode (never through a link; no special bits)",
           body=ChmodBody, permission="file.chmod")
def chmod(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.run(_server(ctx), "chmod", path=ctx.body.path, mode=int(ctx.body.mode, 8))


@api_route(bp, f"{P}/compress", "POST", summary="Archive files (tar.gz or zip)", body=CompressBody,
           permission="file.archive")
def compress(ctx: Context, server_id: str) -> dict[str, Any]:
    b: CompressBody = ctx.body
    return service.run(_server(ctx), "compress", paths=b.paths, target=b.target, format=b.format)


@api_route(bp, f"{P}/decompress", "POST", summary="Extract a zip, tar or tar.gz (hostile members refused)",
           body=DecompressBody, permission="file.archive")
def decompress(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.run(_server(ctx), "decompress", path=ctx.body.path, target=ctx.body.target)


@api_route(bp, f"{P}/upload", "POST", summary="A presigned URL to PUT a large file to, then /files/pull",
           permission="file.create")
def upload(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.upload_url(_server(ctx))


@api_route(bp, f"{P}/pull", "POST", summary="Move an uploaded object into the server's files", body=PullBody,
           permission="file.create")
def pull(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.pull(_server(ctx), ctx.body.key, ctx.body.path)


@api_route(bp, f"{P}/download", "POST", summary="A presigned URL to download a file of any size", body=PathBody,
           permission="file.read-content")
def download(ctx: Context, server_id: str) -> dict[str, Any]:
    return service.download(_server(ctx), ctx.body.path)
