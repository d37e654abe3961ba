"""Backup routes: the node uploads and restores; the API keeps records, URLs and the rules."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from ..services import backups as service
from ..services.backups import CreateBody, LockBody, RestoreBody
from .routing import Context, api_route

bp = Blueprint(__name__)
P = "/servers/{server_id}/backups"


def _server(ctx: Context) -> Any:
    assert ctx.server is not None
    return ctx.server


@api_route(bp, P, "GET", summary="The server's backups, newest first", permission="backup.read")
def list_backups(ctx: Context, server_id: str) -> dict[str, Any]:
    found = service.list_all(ctx.user, _server(ctx))
    return {"backups": [service.view(b) for b in found], "limit": service.limit()}


@api_route(bp, P, "POST", summary="Start a backup (tar.gz to S3 through presigned part URLs)", body=CreateBody,
           permission="backup.create", status=202)
def create_backup(ctx: Context, server_id: str) -> dict[str, Any]:
    """202: the record is pending until the node reports completion (see ``status``)."""
    return service.view(service.create(ctx.user, _server(ctx), ctx.body))


@api_route(bp, f"{P}/{{backup_id}}/download", "POST", summary="A presigned URL to download a backup",
           permission="backup.download")
def download_backup(ctx: Context, server_id: str, backup_id: str) -> dict[str, Any]:
    return service.download(ctx.user, _server(ctx), backup_id)


@api_route(bp, f"{P}/{{backup_id}}/restore", "POST", summary="Restore over the files (server offline; optional wipe)",
           body=RestoreBody, permission="backup.restore", status=202)
def restore_backup(ctx: Context, server_id: str, backup_id: str) -> dict[str, Any]:
    return {"command_id": service.restore(ctx.user, _server(ctx), backup_id, ctx.body.wipe)}


@api_route(bp, f"{P}/{{backup_id}}/lock", "POST", summary="Lock or unlock (a locked backup cannot be deleted)",
           body=LockBody, permission="backup.lock")
def lock_backup(ctx: Context, server_id: str, backup_id: str) -> dict[str, Any]:
    return service.view(service.set_locked(ctx.user, _server(ctx), backup_id, ctx.body.locked))


@api_route(bp, f"{P}/{{backup_id}}", "DELETE", summary="Delete a backup and its object (refused while locked)",
           permission="backup.delete")
def delete_backup(ctx: Context, server_id: str, backup_id: str) -> dict[str, Any]:
    service.delete(ctx.user, _server(ctx), backup_id)
    return {"deleted": backup_id}
