"""The local image recipe: both the busybox path and the host dash/coreutils fallback."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest
from stellar.images import DEMO_IMAGE, docker_available, ensure_demo_image

pytestmark = pytest.mark.docker

SCRIPT = "id -u; id -un; pwd; echo $PATH; [ -d /tmp ] && echo tmp-ok; date +%Y >/dev/null && echo date-ok"


@pytest.mark.parametrize("busybox", ["/bin/busybox", "/nonexistent/busybox"], ids=["busybox", "fallback"])
def test_recipe_builds_a_working_image(demo_image: str, busybox: str) -> None:
    assert docker_available()
    if busybox == "/bin/busybox" and not Path(busybox).exists():
        pytest.skip("host has no busybox")
    tag = f"stellarstack/test-rootfs:{'bb' if 'bin' in busybox else 'fallback'}"
    client = docker.from_env()
    messages: list[str] = []
    try:
        assert ensure_demo_image(client, messages.append, force=True, tag=tag, busybox=Path(busybox)) == tag
        assert any("ready" in m for m in messages)
        assert ensure_demo_image(client, messages.append, tag=tag) == tag  # idempotent
        assert messages[-1].endswith("already present")
        out = client.containers.run(tag, ["sh", "-c", SCRIPT], user="1000:1000", remove=True).decode()
        assert out.split() == ["1000", "container", "/home/container", "/bin:/usr/bin", "tmp-ok", "date-ok"]
    finally:
        try:
            client.images.remove(tag, force=True)
        except docker.errors.ImageNotFound:
            pass
    assert demo_image == DEMO_IMAGE
