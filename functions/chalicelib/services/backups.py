"""Backups, control-plane side: count-limited records, S3 multipart uploads the node fills
through presigned part URLs, completion from the node's ``BackupEvent``, restore, retention.

Nodes never hold S3 credentials: every URL is minted here and the multipart upload is
completed here from the ETags the node reports. The upload id is not kept in the record:
S3 itself is asked for the open upload of the backup's key (one key per backup), so the
record shape stays the store's. Limits and retention come from the environment
(``STELLAR_BACKUP_LIMIT``, ``STELLAR_BACKUP_KEEP_LAST``, ``STELLAR_BACKUP_MAX_AGE_DAYS``)
and are read on every call, so an operator change applies without a redeploy of code.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from stellar_protocol.messages import BackupCommand, BackupEvent, BackupPart, RestoreCommand

from ..auth.jwt import Principal
from ..errors import ApiError
from ..store import Conflict, LimitReached, NotFound, Store, for_principal, get_store
from ..store.records import AuditEntry, Backup, Server
from . import files, servers

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 10
DEFAULT_KEEP_LAST = 0  # 0: no count-based retention (the hard limit still applies)
DEFAULT_MAX_AGE_DAYS = 0.0  # 0: no age-based retention
MAX_PARTS = 120  # BackupCommand.parts' cap: a node is never handed more URLs than this
MIN_PART = 8 * 1024 * 1024
URL_TTL_S = 6 * 3600  # a large backup or restore may outlive the file manager's 15 minutes


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=128)
    ignore: list[str] = Field(default_factory=list, max_length=256)


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wipe: bool = False  # delete the current files first (else the backup's files replace same-named ones)


class LockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    locked: bool


def _env_number(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        log.warning("ignoring non-numeric %s", name)
        return default


def limit() -> int:
    return int(_env_number("STELLAR_BACKUP_LIMIT", DEFAULT_LIMIT))


def retention() -> tuple[int, float]:
    """(keep_last, max_age_s); zero disables either rule."""
    return (int(_env_number("STELLAR_BACKUP_KEEP_LAST", DEFAULT_KEEP_LAST)),
            _env_number("STELLAR_BACKUP_MAX_AGE_DAYS", DEFAULT_MAX_AGE_DAYS) * 86_400)


def key(server_id: str, backup_id: str) -> str:
    return f"backups/{server_id}/{backup_id}.tar.gz"


def view(backup: Backup) -> dict[str, Any]:
    return {"id": backup.id, "name": backup.name, "status": backup.status, "size_bytes": backup.size_bytes,
            "sha256": backup.sha256, "locked": backup.locked, "created_at": backup.created_at}


def _audit(store: Store, actor: str, action: str, server: Server, backup_id: str, **details: str) -> None:
    store.add_audit(AuditEntry(actor_id=actor, action=action, server_id=server.id, target=f"backup:{backup_id}",
                               details=details))


def _store(principal: Principal) -> Store:
    return for_principal(principal.user_id, principal.is_admin)


def list_all(principal: Principal, server: Server) -> list[Backup]:
    store, out, cursor = _store(principal), [], None
    while True:
        page = store.list_backups(server.id, limit=100, cursor=cursor)
        out += list(page)
        cursor = page.cursor
        if not cursor:
            return sorted(out, key=lambda b: b.created_at, reverse=True)


def get(principal: Principal, server: Server, backup_id: str) -> Backup:
    try:
        return _store(principal).get_backup(server.id, backup_id)
    except NotFound:
        raise ApiError(404, "not_found", "no such backup") from None


def _part_size(server: Server) -> int:
    """Big enough that a tar.gz of the whole disk (plus headroom) fits in MAX_PARTS parts."""
    budget = server.disk_mb * 1024 * 1024 * 1.25 + 64 * 1024 * 1024
    mib = 1024 * 1024
    return max(MIN_PART, math.ceil(budget / MAX_PARTS / mib) * mib)


def create(principal: Principal | None, server: Server, body: CreateBody, actor: str | None = None) -> Backup:
    """Record (atomically within the limit), open the multipart upload, hand the node its part URLs."""
    store = _store(principal) if principal else get_store().as_admin("scheduled backup")
    backup = Backup(server_id=server.id, name=body.name or time.strftime("backup %Y-%m-%d %H:%M UTC", time.gmtime()))
    n = limit()
    try:
        store.create_backup(backup, n)
    except LimitReached:
        raise ApiError(409, "limit_reached", f"this server has its {n} backups already; delete one first") from None
    s3, bucket = files.s3(), files.bucket()
    k = key(server.id, backup.id)
    try:
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=k, ContentType="application/gzip")["UploadId"]
        size = _part_size(server)
        parts = [BackupPart(number=i, url=str(s3.generate_presigned_url(
            "upload_part", Params={"Bucket": bucket, "Key": k, "UploadId": upload_id, "PartNumber": i},
            ExpiresIn=URL_TTL_S))) for i in range(1, MAX_PARTS + 1)]
        servers.send(server, BackupCommand(server_id=server.id, backup_id=backup.id, part_size=size, parts=parts,
                                           ignore=body.ignore))
    except Exception:
        _mark_failed(store.as_admin("backup create failed"), server.id, backup.id, "could not start the backup")
        raise
    _audit(store, actor or (principal.user_id if principal else "scheduler"), "backup.create", server, backup.id)
    return backup


def _upload_id(s3: Any, bucket: str, k: str) -> str | None:
    uploads = s3.list_multipart_uploads(Bucket=bucket, Prefix=k).get("Uploads", [])
    return next((u["UploadId"] for u in uploads if u["Key"] == k), None)


def _mark_failed(store: Store, server_id: str, backup_id: str, error: str) -> None:
    try:
        backup = store.get_backup(server_id, backup_id)
        backup.status = "failed"
        store.update_backup(backup)
    except (NotFound, Conflict):
        return
    try:
        s3, bucket = files.s3(), files.bucket()
        k = key(server_id, backup_id)
        if upload_id := _upload_id(s3, bucket, k):
            s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=upload_id)
    except Exception as exc:
        log.warning("could not abort the upload of backup %s: %s", backup_id, exc)
    log.info("backup %s failed: %s", backup_id, error)


def ingest(server_id: str, event: BackupEvent) -> bool:
    """Apply a node's backup event (delivered at least once); True when the record changed."""
    if event.action != "create" or event.status == "running":
        return False  # progress and restore outcomes are for viewers on the topic, not the store
    store = get_store().as_admin("backup event ingestion")
    backup = store.get_backup(server_id, event.backup_id)
    if backup.status != "pending":
        return False  # a redelivery, or a late event for a backup already settled
    if event.status == "failed":
        _mark_failed(store, server_id, backup.id, event.error or "the node reported a failure")
        return True
    s3, bucket, k = files.s3(), files.bucket(), key(server_id, backup.id)
    upload_id = _upload_id(s3, bucket, k)
    if upload_id is None or not event.etags or event.sha256 is None or event.size is None:
        _mark_failed(store, server_id, backup.id, "completion without an open upload or its ETags")
        return True
    try:
        s3.complete_multipart_upload(Bucket=bucket, Key=k, UploadId=upload_id, MultipartUpload={
            "Parts": [{"ETag": etag, "PartNumber": i} for i, etag in enumerate(event.etags, start=1)]})
    except Exception as exc:  # S3 refused the parts (a wrong ETag, a missing part): never left pending
        _mark_failed(store, server_id, backup.id, f"S3 refused the upload: {exc}")
        return True
    backup.status, backup.sha256, backup.size_bytes = "completed", event.sha256, event.size
    store.update_backup(backup)
    try:
        apply_retention(server_id)
    except Exception:  # retention is housekeeping: a failure never undoes the completed backup
        log.exception("retention for server %s failed", server_id)
    return True


def _remove(store: Store, backup: Backup) -> None:
    """The record first (refused while locked), then the object: never an object-less live record."""
    store.delete_backup(backup.server_id, backup.id)
    s3, bucket, k = files.s3(), files.bucket(), key(backup.server_id, backup.id)
    if backup.status == "completed":
        s3.delete_object(Bucket=bucket, Key=k)
    elif upload_id := _upload_id(s3, bucket, k):
        s3.abort_multipart_upload(Bucket=bucket, Key=k, UploadId=upload_id)


def apply_retention(server_id: str, now: float | None = None) -> list[str]:
    """Delete completed, unlocked backups beyond the newest ``keep_last`` or older than the max age.

    Locked backups are never removed and do not count towards ``keep_last``. Returns the ids removed.
    """
    keep_last, max_age_s = retention()
    if keep_last <= 0 and max_age_s <= 0:
        return []
    now = time.time() if now is None else now
    store = get_store().as_admin("backup retention")
    found, cursor = [], None
    while True:
        page = store.list_backups(server_id, limit=100, cursor=cursor)
        found += [b for b in page if b.status == "completed" and not b.locked]
        cursor = page.cursor
        if not cursor:
            break
    found.sort(key=lambda b: b.created_at, reverse=True)
    doomed = found[keep_last:] if keep_last > 0 else []
    if max_age_s > 0:
        doomed += [b for b in found if now - b.created_at > max_age_s and b not in doomed]
    removed = []
    for backup in doomed:
        try:
            _remove(store, backup)
        except (Conflict, NotFound):
            continue  # locked or deleted meanwhile
        store.add_audit(AuditEntry(actor_id="retention", action="backup.delete", server_id=server_id,
                                   target=f"backup:{backup.id}", details={"reason": "retention"}))
        removed.append(backup.id)
    return removed


def _completed(principal: Principal, server: Server, backup_id: str) -> Backup:
    backup = get(principal, server, backup_id)
    if backup.status != "completed" or not backup.sha256:
        raise ApiError(409, "not_completed", f"the backup is {backup.status}")
    return backup


def download(principal: Principal, server: Server, backup_id: str) -> dict[str, Any]:
    backup = _completed(principal, server, backup_id)
    filename = f"{server.id}-{backup.id}.tar.gz"
    url = files.s3().generate_presigned_url("get_object", Params={
        "Bucket": files.bucket(), "Key": key(server.id, backup.id),
        "ResponseContentDisposition": f'attachment; filename="{filename}"'}, ExpiresIn=files.URL_TTL_S)
    _audit(_store(principal), principal.user_id, "backup.download", server, backup.id)
    return {"url": url, "expires_in": files.URL_TTL_S, "size_bytes": backup.size_bytes, "sha256": backup.sha256}


def restore(principal: Principal, server: Server, backup_id: str, wipe: bool) -> str:
    """The node verifies size and sha256 before touching files; the server must be offline (the
    node checks again on the server's own queue, so a start racing this request cannot interleave)."""
    backup = _completed(principal, server, backup_id)
    if server.status != "offline":
        raise ApiError(409, "bad_state", f"the server is {server.status}; stop it before restoring")
    url = files.s3().generate_presigned_url("get_object", Params={
        "Bucket": files.bucket(), "Key": key(server.id, backup.id)}, ExpiresIn=URL_TTL_S)
    command_id = servers.send(server, RestoreCommand(server_id=server.id, backup_id=backup.id, url=url,
                                                     sha256=backup.sha256 or "", size=backup.size_bytes, wipe=wipe))
    _audit(_store(principal), principal.user_id, "backup.restore", server, backup.id, wipe=str(wipe).lower())
    return command_id


def delete(principal: Principal, server: Server, backup_id: str) -> None:
    backup = get(principal, server, backup_id)
    if backup.locked:
        raise ApiError(409, "locked", "the backup is locked; unlock it before deleting")
    store = _store(principal)
    try:
        _remove(store, backup)
    except Conflict:
        raise ApiError(409, "locked", "the backup is locked or changed; reload and try again") from None
    _audit(store, principal.user_id, "backup.delete", server, backup.id)


def set_locked(principal: Principal, server: Server, backup_id: str, locked: bool) -> Backup:
    store = _store(principal)
    backup = get(principal, server, backup_id)
    backup.locked = locked
    store.update_backup(backup)
    _audit(store, principal.user_id, "backup.lock" if locked else "backup.unlock", server, backup.id)
    return backup
