"""Config-file patches: which files the agent rewrites before each start, and how.

The shape follows Wings (``file``, ``parser``, ``replace: [{match, if_value, replace_with}]``)
so eggs convert one to one. Values may hold ``{{NAME}}`` placeholders; the agent expands them
from the server's environment only (blueprint variables and the ``SERVER_*`` values) plus
``NODE_INTERFACE``. Nothing else is reachable, so a patch can never read agent configuration
or secrets (Wings' ``{{config.*}}`` could, until it was fixed).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Parser = Literal["properties", "yaml", "json", "ini", "xml", "toml", "file"]
PARSERS: tuple[str, ...] = ("properties", "yaml", "json", "ini", "xml", "toml", "file")
# Values a patch may use besides variables: the address at which a container reaches its
# host (Wings' config.docker.interface, used by proxies to reach sibling servers).
PATCH_ONLY_PLACEHOLDERS = frozenset({"NODE_INTERFACE"})
PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


class Replacement(BaseModel):
    """Set ``match`` (a key path, or a line prefix for ``file``) to ``replace_with``.

    With ``if_value`` the current value must equal it; ``regex:…`` instead replaces the
    parts of the current value the regex matches (``$1`` backreferences allowed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str = Field(min_length=1, max_length=1024)
    if_value: str | None = Field(default=None, max_length=1024)
    replace_with: str = Field(max_length=8192)

    @field_validator("if_value")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("regex:"):
            try:
                re.compile(value[len("regex:"):])
            except re.error as exc:
                raise ValueError(f"if_value regex does not compile: {exc}") from None
        return value


class ConfigFile(BaseModel):
    """One file under the server directory and the replacements applied to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(min_length=1, max_length=512)
    parser: Parser
    replace: list[Replacement] = Field(default_factory=list, max_length=256)

    @field_validator("file")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts or "\\" in value or "\x00" in value:
            raise ValueError("must be a relative path inside the server directory")
        return value


def placeholders(text: str) -> list[str]:
    """Names of the ``{{NAME}}`` placeholders in ``text``."""
    return PLACEHOLDER.findall(text)
