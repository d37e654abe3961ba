"""Backups end to end: API → MQTT → a real agent (process runtime) → presigned multipart
uploads into moto's S3 → the event bridge completes them; restore, limit, lock, retention."""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from livewire import Viewer, wait_status
from stellar_protocol import topics


def tree_hash(root: Path) -> dict[str, str]:
    """Every regular file under ``root`` by relative path → sha256 of its content (dirs listed too)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in dirnames:
            out[str(rel / d) + "/"] = "dir"
        for f in filenames:
            out[str(rel / f)] = hashlib.sha256((Path(dirpath) / f).read_bytes()).hexdigest()
    return out


def _server(owner: Any, name: str) -> dict[str, Any]:
    r = owner.post("/servers", {"name": name, "blueprint_id": "demo", "location_id": "local"})
    assert r.status_code == 201, r.text
    wait_status(owner, r.json()["id"], "offline", 60)
    return r.json()


def wait_backup(owner: Any, sid: str, bid: str, status: str = "completed", timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = {b["id"]: b for b in owner.get(f"/servers/{sid}/backups").json()["backups"]}
        last = found.get(bid, {})
        if last.get("status") == status:
            return last
        time.sleep(0.2)
    raise AssertionError(f"backup {bid} never reached {status}; last {last}")


def backup_ids(owner: Any, sid: str) -> set[str]:
    return {b["id"] for b in owner.get(f"/servers/{sid}/backups").json()["backups"]}


def test_backup_change_restore_round_trip(stack, owner, stranger) -> None:  # noqa: ANN001
    server = _server(owner, "Backups")
    sid, files = server["id"], f"/servers/{server['id']}/files"
    root = stack.agent.config.volumes_dir / sid
    blob = os.urandom(100_000)  # under the write route's cap; incompressible
    import base64

    assert owner.post(f"{files}/create-directory", {"path": "/world/region"}).ok
    assert owner.post(f"{files}/write", {"path": "/world/level.dat", "content": "seed=42"}).ok
    assert owner.post(f"{files}/write", {"path": "/world/region/r.0.0.mca",
                                         "content_b64": base64.b64encode(blob).decode()}).ok
    before = tree_hash(root)
    assert "world/region/r.0.0.mca" in before

    r = owner.post(f"/servers/{sid}/backups", {"name": "first"})
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    bid = r.json()["id"]
    done = wait_backup(owner, sid, bid)
    assert done["size_bytes"] > 0 and len(done["sha256"]) == 64
    # the object in S3 is exactly what the node hashed
    down = owner.post(f"/servers/{sid}/backups/{bid}/download")
    assert down.status_code == 200, down.text
    body = requests.get(down.json()["url"], timeout=30).content
    assert hashlib.sha256(body).hexdigest() == done["sha256"] and len(body) == done["size_bytes"]
    assert stranger.get(f"/servers/{sid}/backups").status_code == 404

    # change the files through the file API
    assert owner.post(f"{files}/write", {"path": "/world/level.dat", "content": "seed=7 griefed"}).ok
    assert owner.post(f"{files}/delete", {"paths": ["/world/region"]}).ok
    assert owner.post(f"{files}/write", {"path": "/junk.txt", "content": "added after"}).ok
    assert tree_hash(root) != before

    # a running server is refused
    assert owner.post(f"/servers/{sid}/power", {"action": "start"}).status_code == 202
    wait_status(owner, sid, "running")
    r = owner.post(f"/servers/{sid}/backups/{bid}/restore", {"wipe": True})
    assert r.status_code == 409 and r.json()["error"]["code"] == "bad_state"
    assert owner.post(f"/servers/{sid}/power", {"action": "kill"}).status_code == 202
    wait_status(owner, sid, "offline")

    grant = owner.post(f"/servers/{sid}/console-grant").json()
    viewer = Viewer(grant, filters=[topics.server_backups(server["node_id"], sid)])
    try:
        viewer.wait_subscribed()
        r = owner.post(f"/servers/{sid}/backups/{bid}/restore", {"wipe": True})
        assert r.status_code == 202, r.text
        _, event = viewer.wait_for(lambda t, m: m.get("backup_id") == bid and m.get("action") == "restore"
                                   and m.get("status") in {"completed", "failed"}, timeout=60)
    finally:
        viewer.close()
    assert event["status"] == "completed", event
    assert tree_hash(root) == before  # wiped first: the file added after the backup is gone too


def test_limit_is_atomic_and_lock_prevents_delete(stack, owner, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("STELLAR_BACKUP_LIMIT", "2")
    server = _server(owner, "Limit")
    sid = server["id"]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: owner.post(f"/servers/{sid}/backups", {"name": f"b{i}"}), range(6)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 202, 409, 409, 409, 409], [a.text for a in answers]
    assert all(a.json()["error"]["code"] == "limit_reached" for a in answers if a.status_code == 409)
    first, second = [a.json()["id"] for a in answers if a.status_code == 202]
    for bid in (first, second):
        wait_backup(owner, sid, bid)

    r = owner.post(f"/servers/{sid}/backups/{first}/lock", {"locked": True})
    assert r.status_code == 200 and r.json()["locked"] is True
    r = owner.delete(f"/servers/{sid}/backups/{first}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "locked"
    assert first in backup_ids(owner, sid)
    assert owner.post(f"/servers/{sid}/backups/{first}/download").status_code == 200

    assert owner.delete(f"/servers/{sid}/backups/{second}").status_code == 200
    assert owner.post(f"/servers/{sid}/backups", {}).status_code == 202  # a slot is free again

    assert owner.post(f"/servers/{sid}/backups/{first}/lock", {"locked": False}).status_code == 200
    assert owner.delete(f"/servers/{sid}/backups/{first}").status_code == 200
    assert first not in backup_ids(owner, sid)
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=os.environ["STELLAR_BACKUP_BUCKET"],
                                                  Prefix=f"backups/{sid}/").get("Contents", [])]
    assert f"backups/{sid}/{first}.tar.gz" not in keys


def test_retention_removes_the_oldest_unlocked(stack, owner, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("STELLAR_BACKUP_KEEP_LAST", "2")
    server = _server(owner, "Retention")
    sid = server["id"]
    made = []
    for i in range(4):
        r = owner.post(f"/servers/{sid}/backups", {"name": f"r{i}"})
        assert r.status_code == 202, r.text
        made.append(r.json()["id"])
        wait_backup(owner, sid, made[-1])
        if i == 0:  # the oldest is locked: retention never removes it, nor counts it
            assert owner.post(f"/servers/{sid}/backups/{made[0]}/lock", {"locked": True}).ok
    deadline = time.monotonic() + 30
    while backup_ids(owner, sid) != {made[0], made[2], made[3]} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backup_ids(owner, sid) == {made[0], made[2], made[3]}
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=os.environ["STELLAR_BACKUP_BUCKET"],
                                                  Prefix=f"backups/{sid}/").get("Contents", [])}
    assert keys == {f"backups/{sid}/{b}.tar.gz" for b in (made[0], made[2], made[3])}


@pytest.fixture(autouse=True)
def _no_leaked_env(monkeypatch) -> None:  # noqa: ANN001
    for name in ("STELLAR_BACKUP_LIMIT", "STELLAR_BACKUP_KEEP_LAST", "STELLAR_BACKUP_MAX_AGE_DAYS"):
        monkeypatch.delenv(name, raising=False)
