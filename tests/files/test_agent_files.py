"""File commands through a real agent over MQTT, and the symlink classes inside a real container.

In the Docker test the links are made by the container's own user (``docker exec``), so
they mean what a tenant means them to mean: ``/`` inside the container is the host's ``/``
when the agent resolves it. Every request must be refused and the host left untouched.
"""

from __future__ import annotations

import base64
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent.conftest import Harness
from stellar_protocol import topics

SID = "srv-files"


def request(h: Harness, op: str, timeout: float = 20.0, **kw: Any) -> dict[str, Any]:
    """Send a server.files command and return its Reply."""
    cid = h.observer.send({"type": "server.files", "server_id": SID, "op": op, **kw})

    def find() -> dict[str, Any] | None:
        for topic, payload, _ in list(h.observer.messages):
            if topics.parse(topic).kind == "reply":
                body = json.loads(payload)
                if body["id"] == cid:
                    return body
        return None

    return h.observer.wait_for(find, timeout, f"reply to {op}")


def installed(h: Harness) -> Harness:
    h.start_agent()
    h.view(SID)
    assert h.observer.ack(h.install(SID), 120)["ok"]
    return h


@pytest.fixture
def pnode(harness_factory: Callable[..., Harness]) -> Harness:
    return installed(harness_factory("process"))


def test_every_file_operation_over_mqtt(pnode: Harness) -> None:
    root = pnode.config.volumes_dir / SID
    content = base64.b64encode(b"motd=hello\n").decode()
    assert request(pnode, "mkdir", path="/cfg/deep")["ok"]
    assert request(pnode, "write", path="/cfg/a.properties", content_b64=content)["ok"]
    read = request(pnode, "read", path="/cfg/a.properties")
    assert base64.b64decode(read["result"]["content_b64"]) == b"motd=hello\n"
    listing = request(pnode, "list", path="/cfg")["result"]
    assert [e["name"] for e in listing["entries"]] == ["a.properties", "deep"]
    assert request(pnode, "copy", path="/cfg/a.properties", target="/cfg/b.properties")["ok"]
    assert request(pnode, "rename", path="/cfg/b.properties", target="/cfg/deep/c.properties")["ok"]
    assert request(pnode, "chmod", path="/cfg/deep/c.properties", mode=0o600)["ok"]
    assert oct((root / "cfg/deep/c.properties").stat().st_mode & 0o777) == "0o600"
    assert request(pnode, "compress", paths=["/cfg"], target="/cfg.zip", format="zip")["ok"]
    assert request(pnode, "compress", paths=["/cfg"], target="/cfg.tar.gz")["ok"]
    assert request(pnode, "mkdir", path="/out")["ok"]
    assert request(pnode, "decompress", path="/cfg.zip", target="/out")["result"]["entries"] >= 3
    assert (root / "out/cfg/deep/c.properties").read_bytes() == b"motd=hello\n"
    assert request(pnode, "delete", paths=["/out", "/cfg.zip"])["ok"]
    assert not (root / "out").exists()
    missing = request(pnode, "read", path="/nope")
    assert not missing["ok"] and missing["code"] == "not_found"
    bad = request(pnode, "write", path="/a\nb", content_b64=content)
    assert not bad["ok"] and "newline" in bad["error"]
    denied = request(pnode, "read", path="/cfg/a.properties", deny=["*.properties"])
    assert not denied["ok"] and denied["code"] == "denied"


def test_hostile_archive_over_mqtt_leaves_nothing(pnode: Harness) -> None:
    root = pnode.config.volumes_dir / SID
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        link = tarfile.TarInfo("evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc"
        tar.addfile(link)
    (root / "evil.tar.gz").write_bytes(buf.getvalue())
    before = sorted(p.name for p in root.iterdir())
    reply = request(pnode, "decompress", path="/evil.tar.gz", target="/")
    assert not reply["ok"] and reply["code"] == "bad_archive" and "symbolic link" in reply["error"]
    assert sorted(p.name for p in root.iterdir()) == before


@pytest.mark.docker
def test_links_made_inside_a_real_container_never_reach_the_host(
        harness_factory: Callable[..., Harness], demo_image: str, tmp_path: Path) -> None:
    import docker

    h = installed(harness_factory("docker"))
    assert h.observer.ack(h.power(SID, "start"), 60)["ok"]
    h.observer.wait_state("running", SID, timeout=60)
    # a host directory the tenant knows the absolute path of
    host = tmp_path / f"host-{uuid.uuid4().hex[:6]}"
    host.mkdir()
    (host / "secret").write_text("host secret")
    client = docker.from_env()
    try:
        container = next(c for c in client.containers.list(filters={"label": f"stellar.node={h.node_id}"}))
        script = (f"cd /home/container && ln -s / slash && ln -s {host}/secret secret && ln -s {host} hostdir"
                  f" && ln -s hostdir chain && ln -s /does/not/exist dangling && mkdir -p d && ln -s {host} d/inner")
        code, out = container.exec_run(["sh", "-c", script], user="1000:1000")
        assert code == 0, out
    finally:
        client.close()
    root = h.config.volumes_dir / SID
    assert os.readlink(root / "slash") == "/"  # made by the tenant, seen by the host
    for path in ("/secret", "/slash/etc/passwd", "/hostdir/secret", "/chain/secret", "/dangling"):
        reply = request(h, "read", path=path)
        assert not reply["ok"], (path, reply)
    for path in ("/hostdir/new", "/chain/new", "/slash/tmp/stellar-pwned"):
        assert not request(h, "write", path=path, content_b64="eA==")["ok"]
        assert not request(h, "mkdir", path=path + "-dir")["ok"]
    assert not request(h, "list", path="/slash")["ok"]
    assert not request(h, "chmod", path="/secret", mode=0o777)["ok"]
    assert not request(h, "chmod", path="/hostdir/secret", mode=0o777)["ok"]
    assert not request(h, "rename", path="/d", target="/hostdir/moved")["ok"]
    assert not request(h, "compress", paths=["/hostdir"], target="/x.tar.gz")["ok"]
    assert request(h, "delete", paths=["/d", "/chain", "/hostdir", "/slash", "/secret", "/dangling"])["ok"]
    assert (host / "secret").read_text() == "host secret"
    assert oct((host / "secret").stat().st_mode & 0o777) != "0o777"
    assert sorted(p.name for p in host.iterdir()) == ["secret"]
    assert not Path("/tmp/stellar-pwned").exists()
    assert not any(os.path.lexists(root / n) for n in ("d", "chain", "hostdir", "slash", "secret", "dangling"))
