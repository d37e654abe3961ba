"""Config-file patching: rewrite a blueprint's config files before each start (as Wings).

Parsers: ``properties``, ``yaml``, ``json``, ``ini``, ``xml``, ``toml`` and the line-based
``file``. Placeholders expand from the values the caller passes (the server's environment,
i.e. its variables and ``SERVER_*`` values, plus ``NODE_INTERFACE``) and nothing else.

A missing file is created (Wings does the same, and eggs rely on it: Terraria's config is
written from nothing). Paths are resolved inside the server directory, symlinks included, and
written atomically (temp file + rename) with the previous file's mode. A file that cannot be
patched is reported and skipped: a bad config patch must not keep a server from starting.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from stellar_protocol.configpatch import ConfigFile, Replacement
from stellar_protocol.messages import ServerSpec

from .lines import patch_file, patch_ini, patch_properties
from .structured import PatchError, patch_json, patch_toml, patch_yaml
from .xmlfile import patch_xml

MAX_FILE_BYTES = 8 * 1024 * 1024
# Where a container reaches its host: Docker's default bridge gateway; the host itself for
# the unisolated process runtime.
DOCKER_HOST_INTERFACE = "172.17.0.1"

PATCHERS: dict[str, Callable[[str, list[Replacement], Mapping[str, str]], str]] = {
    "properties": patch_properties,
    "yaml": patch_yaml,
    "json": patch_json,
    "ini": patch_ini,
    "xml": patch_xml,
    "toml": patch_toml,
    "file": patch_file,
}

__all__ = ["PATCHERS", "PatchError", "apply_config_files", "patch_one", "patch_values", "safe_target"]


def patch_values(spec: ServerSpec, runtime: object) -> dict[str, str]:
    """The only values a patch can expand: the server's environment and NODE_INTERFACE."""
    isolated = bool(getattr(runtime, "isolated", False))
    return {**spec.environment, "NODE_INTERFACE": DOCKER_HOST_INTERFACE if isolated else "127.0.0.1"}


def safe_target(root: Path, rel: str) -> Path:
    """``root/rel`` if it (after following symlinks) stays inside ``root``."""
    base = root.resolve()
    target = (base / rel).resolve()
    if not target.is_relative_to(base) or target == base:
        raise PatchError(f"{rel}: resolves outside the server directory")
    return target


def patch_one(root: Path, cf: ConfigFile, values: Mapping[str, str]) -> bool:
    """Patch one file; returns whether its content changed."""
    path = safe_target(root, cf.file)
    if path.exists():
        if not path.is_file():
            raise PatchError(f"{cf.file}: not a regular file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PatchError(f"{cf.file}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
        before = path.read_bytes().decode("utf-8", errors="surrogateescape")
    else:
        before = ""
    after = PATCHERS[cf.parser](before, list(cf.replace), values)
    if after == before and path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    safe_target(root, cf.file)  # the parents we just made must not have moved it outside
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".stellar")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(after.encode("utf-8", errors="surrogateescape"))
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def apply_config_files(root: Path, files: list[ConfigFile], values: Mapping[str, str]) -> list[str]:
    """Patch every file; returns one message per file that could not be patched."""
    problems: list[str] = []
    for cf in files:
        try:
            patch_one(root, cf, values)
        except Exception as exc:  # one bad file (or a bad patch) must not block the others
            problems.append(f"config file {cf.file} ({cf.parser}) not patched: {exc}")
    return problems
