"""The file routes over HTTP: API → MQTT → a real agent → reply, and presigned transfers via moto's S3."""

from __future__ import annotations

import base64
import os

import pytest
import requests
from livewire import wait_status


@pytest.fixture(scope="module")
def server(stack, owner) -> dict:  # noqa: ANN001
    r = owner.post("/servers", {"name": "Files", "blueprint_id": "demo", "location_id": "local",
                                "variables": {"SERVER_NAME": "Files"}})
    assert r.status_code == 201, r.text
    wait_status(owner, r.json()["id"], "offline", 60)
    return r.json()


def test_file_routes_end_to_end(stack, owner, stranger, server) -> None:  # noqa: ANN001
    sid = server["id"]
    base = f"/servers/{sid}/files"
    root = stack.agent.config.volumes_dir / sid
    assert owner.post(f"{base}/create-directory", {"path": "/cfg"}).status_code == 200
    r = owner.post(f"{base}/write", {"path": "/cfg/motd.txt", "content": "hello"})
    assert r.status_code == 200, r.text
    r = owner.post(f"{base}/contents", {"path": "/cfg/motd.txt"})
    assert base64.b64decode(r.json()["content_b64"]) == b"hello"
    names = [e["name"] for e in owner.get(f"{base}/list", params={"path": "/cfg"}).json()["entries"]]
    assert names == ["motd.txt"]
    assert owner.post(f"{base}/copy", {"path": "/cfg/motd.txt", "target": "/cfg/b.txt"}).status_code == 200
    r = owner.post(f"{base}/rename", {"path": "/cfg/b.txt", "target": "/cfg/motd.txt"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "exists"
    assert owner.post(f"{base}/chmod", {"path": "/cfg/b.txt", "mode": "600"}).status_code == 200
    assert owner.post(f"{base}/chmod", {"path": "/cfg/b.txt", "mode": "4755"}).status_code == 422
    assert owner.post(f"{base}/compress", {"paths": ["/cfg"], "target": "/cfg.zip", "format": "zip"}).ok
    assert owner.post(f"{base}/create-directory", {"path": "/x"}).ok
    assert owner.post(f"{base}/decompress", {"path": "/cfg.zip", "target": "/x"}).json()["entries"] >= 2
    assert owner.post(f"{base}/delete", {"paths": ["/x", "/cfg.zip"]}).ok
    # a link the tenant made: refused with a clear code, the target untouched
    os.symlink("/etc/hostname", root / "host-link")
    r = owner.post(f"{base}/contents", {"path": "/host-link"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "symlink"
    assert owner.post(f"{base}/contents", {"path": "/nope"}).status_code == 404
    r = owner.post(f"{base}/write", {"path": "/a\nb", "content": "x"})
    assert r.status_code == 422 and "newline" in r.json()["error"]["message"]
    assert stranger.get(f"{base}/list").status_code == 404


def test_large_transfers_go_through_presigned_s3(owner, server) -> None:  # noqa: ANN001
    base = f"/servers/{server['id']}/files"
    blob = os.urandom(3 * 1024 * 1024)
    up = owner.post(f"{base}/upload").json()
    assert requests.put(up["url"], data=blob, timeout=30).status_code == 200
    r = owner.post(f"{base}/pull", {"key": up["key"], "path": "/big.bin"})
    assert r.status_code == 200 and r.json()["size"] == len(blob), r.text
    down = owner.post(f"{base}/download", {"path": "/big.bin"})
    assert down.status_code == 200, down.text
    assert requests.get(down.json()["url"], timeout=30).content == blob
    r = owner.post(f"{base}/pull", {"key": "transfers/other-server/up-x", "path": "/stolen"})
    assert r.status_code == 422
