"""Local image recipes: no registry is reachable, so the demo game image is built here.

The image is made with ``docker import`` from a rootfs assembled in a temp dir: a static
busybox with applet links when the host has one, otherwise the host's dash and coreutils
with the shared libraries ``ldd`` names. Recipe notes: infra/images/demo-game/README.md.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEMO_IMAGE = "stellarstack/demo-game:1"

BUSYBOX_APPLETS = (
    "sh",
    "cat",
    "sleep",
    "date",
    "echo",
    "ls",
    "mkdir",
    "rm",
    "cp",
    "mv",
    "chmod",
    "id",
    "env",
    "printf",
    "test",
    "[",
)
COREUTILS = ("cat", "sleep", "date", "echo", "ls", "mkdir", "rm", "cp", "mv", "chmod", "id", "env", "printf")

Progress = Callable[[str], None]


def _client(client: Any = None) -> Any:
    import docker

    return client or docker.from_env(timeout=120)


def docker_available(timeout: float = 3.0) -> bool:
    """True when a Docker engine answers a ping; never raises, never hangs long."""
    try:
        import docker

        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _is_static(path: Path) -> bool:
    """``ldd`` says "not a dynamic executable" for static binaries; fall back to `file`."""
    try:
        out = subprocess.run(["ldd", str(path)], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    text = (out.stdout + out.stderr).lower()
    return "not a dynamic executable" in text or "statically linked" in text


def _shared_libs(binary: Path) -> set[Path]:
    """Absolute paths of the shared libraries (and loader) a dynamic binary needs."""
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=10).stdout
    libs: set[Path] = set()
    for line in out.splitlines():
        for token in line.split():
            if token.startswith("/"):
                libs.add(Path(token))
    return libs


def _copy_into(root: Path, src: Path) -> None:
    """Copy a host file to the same path under ``root`` (following symlinks)."""
    dest = root / str(src).lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src.resolve(), dest)


def build_rootfs(root: Path, progress: Progress = print, busybox: Path = Path("/bin/busybox")) -> str:
    """Fill ``root`` with a minimal userland; returns which recipe was used."""
    (root / "bin").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    if busybox.exists() and _is_static(busybox):
        progress("images: using static /bin/busybox with applet links")
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in BUSYBOX_APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        recipe = "busybox"
    else:
        progress("images: no static busybox; copying host dash + coreutils and their libraries")
        binaries = [Path("/bin/sh").resolve()]
        for name in COREUTILS:
            found = shutil.which(name, path="/bin:/usr/bin")
            if not found:
                raise RuntimeError(f"host binary {name} not found")
            binaries.append(Path(found).resolve())
        libs: set[Path] = set()
        for binary in binaries:
            shutil.copy2(binary, root / "bin" / binary.name)
            libs |= _shared_libs(binary)
        if not (root / "bin" / "sh").exists():
            (root / "bin" / "sh").symlink_to(Path("/bin/sh").resolve().name)
        for lib in libs:
            _copy_into(root, lib)
        recipe = "host-dash-coreutils"
    etc = root / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\ncontainer:x:1000:1000::/home/container:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\ncontainer:x:1000:\n")
    (root / "home" / "container").mkdir(parents=True)
    (root / "root").mkdir()
    (root / "tmp").mkdir()
    return recipe


def _tar_rootfs(root: Path) -> bytes:
    """A tar of ``root`` with fixed ownership: /home/container is 1000:1000, /tmp is 1777."""

    def fix(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        if info.name in {"./home/container", "home/container"}:
            info.uid = info.gid = 1000
            info.uname = info.gname = "container"
        if info.name in {"./tmp", "tmp"}:
            info.mode = 0o1777
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for entry in sorted(os.listdir(root)):
            tar.add(root / entry, arcname=entry, filter=fix)
    return buf.getvalue()


def image_exists(client: Any, tag: str) -> bool:
    import docker

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_demo_image(
    client: Any = None,
    progress: Progress = print,
    force: bool = False,
    tag: str = DEMO_IMAGE,
    busybox: Path = Path("/bin/busybox"),
) -> str:
    """Build ``stellarstack/demo-game:1`` unless it already exists; returns the tag."""
    client = _client(client)
    if not force and image_exists(client, tag):
        progress(f"images: {tag} already present")
        return tag
    progress(f"images: building {tag} (docker import of a local rootfs)")
    with tempfile.TemporaryDirectory(prefix="stellar-rootfs-") as tmp:
        root = Path(tmp) / "rootfs"
        recipe = build_rootfs(root, progress, busybox)
        data = _tar_rootfs(root)
    repository, version = tag.rsplit(":", 1)
    progress(f"images: importing {len(data) // 1024} KiB rootfs ({recipe})")
    client.api.import_image_from_data(
        data,
        repository=repository,
        tag=version,
        changes=["ENV PATH=/bin:/usr/bin", "WORKDIR /home/container"],
    )
    if not image_exists(client, tag):
        raise RuntimeError(f"docker import did not produce {tag}")
    progress(f"images: {tag} ready")
    return tag


if __name__ == "__main__":
    ensure_demo_image()
