"""The file manager, control-plane side: build ``server.files`` commands, wait for the agent's
reply, map its error codes to HTTP, and mint presigned S3 URLs for large transfers.

The agent does the confinement (fd-relative resolution, see ``stellar_agent.filesystem``);
this layer only checks permissions (in the routes), adds the blueprint's deny-list and keeps
transfer keys scoped to the server.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from stellar_protocol.messages import FileCommand

from ..errors import ApiError
from ..store.records import Server
from . import rpc
from .blueprints import catalogue

URL_TTL_S = 900
_STATUS = {"not_found": 404, "exists": 409, "denied": 403, "too_large": 413, "no_space": 507, "symlink": 422,
           "not_a_directory": 422, "is_a_directory": 422, "not_a_file": 422, "bad_archive": 422, "invalid": 422}

Path = Field(max_length=4096)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PathBody(_Body):
    path: str = Path


class WriteBody(_Body):
    path: str = Path
    content: str | None = Field(default=None, max_length=130_000)
    content_b64: str | None = Field(default=None, max_length=175_000)


class MoveBody(_Body):
    path: str = Path
    target: str = Path


class PathsBody(_Body):
    paths: list[str] = Field(min_length=1, max_length=1000)


class ChmodBody(_Body):
    path: str = Path
    mode: str = Field(pattern=r"^[0-7]{3}$")


class CompressBody(_Body):
    paths: list[str] = Field(min_length=1, max_length=1000)
    target: str = Path
    format: Literal["tar.gz", "zip"] = "tar.gz"


class DecompressBody(_Body):
    path: str = Path
    target: str = Field(default="/", max_length=4096)


class PullBody(_Body):
    key: str = Field(max_length=256)
    path: str = Path


def deny_list(server: Server) -> list[str]:
    bp = catalogue().get(server.blueprint_id)
    return list(getattr(bp, "file_denylist", []) or [])


def run(server: Server, op: str, **fields: Any) -> dict[str, Any]:
    """One file operation on the server's node; its result, or the agent's refusal as an ApiError."""
    command = FileCommand(server_id=server.id, op=op, deny=deny_list(server), **fields)  # type: ignore[arg-type]
    reply = rpc.call(server.node_id, command)
    if not reply.ok:
        code = reply.code or "invalid"
        raise ApiError(_STATUS.get(code, 422), code, reply.error or "the file operation failed")
    return reply.result or {}


# ---- presigned transfers ----------------------------------------------------------------

def bucket() -> str:
    name = os.environ.get("STELLAR_BACKUP_BUCKET", "")
    if not name:
        raise ApiError(503, "no_bucket", "no transfer bucket is configured (STELLAR_BACKUP_BUCKET)")
    return name


def s3() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None,
                        config=Config(signature_version="s3v4"))


def presign(method: str, key: str, **extra: Any) -> str:
    return str(s3().generate_presigned_url(method, Params={"Bucket": bucket(), "Key": key, **extra},
                                           ExpiresIn=URL_TTL_S))


def upload_url(server: Server) -> dict[str, Any]:
    """A presigned PUT for the browser; the key is then handed to ``pull``."""
    key = f"transfers/{server.id}/up-{uuid.uuid4().hex}"
    return {"key": key, "url": presign("put_object", key), "expires_in": URL_TTL_S}


def pull(server: Server, key: str, path: str) -> dict[str, Any]:
    if not key.startswith(f"transfers/{server.id}/up-") or "/" in key.removeprefix(f"transfers/{server.id}/"):
        raise ApiError(422, "invalid", "not an upload key of this server")
    try:
        return run(server, "pull", path=path, url=presign("get_object", key))
    finally:
        s3().delete_object(Bucket=bucket(), Key=key)


def download(server: Server, path: str) -> dict[str, Any]:
    """The agent PUTs the file to a fresh key; the browser gets a presigned GET for it."""
    key = f"transfers/{server.id}/down-{uuid.uuid4().hex}"
    result = run(server, "push", path=path, url=presign("put_object", key))
    name = path.rstrip("/").rsplit("/", 1)[-1] or "download"
    url = presign("get_object", key, ResponseContentDisposition=f'attachment; filename="{name}"')
    return {**result, "url": url, "expires_in": URL_TTL_S}
