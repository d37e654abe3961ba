"""The blueprint model: the source of truth for what a game-server template holds.

A blueprint is loaded from YAML/JSON, validated here, and turned into a ``ServerSpec`` by
``to_spec``. Startup placeholders (``{{NAME}}``) may name only the blueprint's variables and
a short allow-list of server values; they become ``${NAME}`` shell references filled from
the container's environment, so no user value is ever spliced into the command as code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .messages import InstallSpec, Limits, Port, ServerSpec, StopSpec

# Server values a startup line may reference besides the blueprint's own variables.
SERVER_PLACEHOLDERS = frozenset({"SERVER_MEMORY", "SERVER_IP", "SERVER_PORT"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
_ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,63}$"
RESERVED_ENV = frozenset({"PATH", "HOME", "USER", "HOSTNAME", "TZ", "STARTUP", *SERVER_PLACEHOLDERS})


class BlueprintError(ValueError):
    """A blueprint file or a set of variable values that cannot be used; says why."""


class Variable(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    env: str = Field(pattern=_ENV_NAME)
    default: str = ""
    user_viewable: bool = True
    user_editable: bool = True
    # Validation: a regex the value must fully match, and a length cap.
    pattern: str | None = None
    max_length: int = Field(default=256, ge=0, le=65536)

    def check(self, value: str) -> str:
        if len(value) > self.max_length:
            raise BlueprintError(f"{self.env}: longer than {self.max_length} characters")
        if "\x00" in value or "\n" in value:
            raise BlueprintError(f"{self.env}: control characters are not allowed")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise BlueprintError(f"{self.env}: does not match {self.pattern}")
        return value


class Blueprint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str = Field(min_length=1, max_length=128)
    description: str = ""
    category: str = "game"
    images: dict[str, str] = Field(min_length=1)
    variables: list[Variable] = Field(default_factory=list)
    startup: str = Field(min_length=1, max_length=8192)
    stop: StopSpec
    done: list[str] = Field(default_factory=list)
    done_regex: bool = False
    install: InstallSpec | None = None
    limits: Limits
    ports: int = Field(default=1, ge=0, le=64)
    read_only_root: bool = False

    @model_validator(mode="after")
    def _check(self) -> Blueprint:
        envs = [v.env for v in self.variables]
        if len(set(envs)) != len(envs):
            raise ValueError("variables: env names must be unique")
        reserved = RESERVED_ENV.intersection(envs)
        if reserved:
            raise ValueError(f"variables: reserved env names {sorted(reserved)}")
        known = set(envs) | SERVER_PLACEHOLDERS
        for name in _PLACEHOLDER.findall(self.startup):
            if name not in known:
                raise ValueError(f"startup: unknown placeholder {{{{{name}}}}}")
        return self

    @property
    def default_image(self) -> str:
        return next(iter(self.images.values()))

    def resolve_variables(self, given: dict[str, str]) -> dict[str, str]:
        """Merge user values over defaults; refuse unknown or non-editable names."""
        by_env = {v.env: v for v in self.variables}
        for env in given:
            if env not in by_env:
                raise BlueprintError(f"{env}: not a variable of blueprint {self.id}")
            if not by_env[env].user_editable:
                raise BlueprintError(f"{env}: not editable")
        return {env: var.check(str(given.get(env, var.default))) for env, var in by_env.items()}

    def to_spec(
        self,
        server_id: str,
        variables: dict[str, str],
        limits: Limits | None = None,
        ports: list[Port] | None = None,
        image: str | None = None,
    ) -> ServerSpec:
        limits = limits or self.limits
        ports = ports or []
        env = self.resolve_variables(variables)
        env["SERVER_MEMORY"] = str(limits.memory_mb)
        if ports:
            env["SERVER_IP"] = ports[0].ip
            env["SERVER_PORT"] = str(ports[0].port)
        startup = _PLACEHOLDER.sub(lambda m: "${" + m.group(1) + "}", self.startup)
        return ServerSpec(
            server_id=server_id,
            image=image or self.default_image,
            startup=startup,
            environment=env,
            stop=self.stop,
            done=self.done,
            done_regex=self.done_regex,
            install=self.install,
            limits=limits,
            ports=ports,
            read_only_root=self.read_only_root,
        )


def load_blueprint(path: Path) -> Blueprint:
    """Read one blueprint file (YAML or JSON) with an error that names the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BlueprintError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise BlueprintError(f"{path}: expected a mapping at the top level")
    try:
        return Blueprint.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise BlueprintError(f"{path}: {where}: {first.get('msg')}") from None


def load_catalogue(root: Path) -> dict[str, Blueprint]:
    """Every ``*/blueprint.yaml`` under ``root``, keyed by id."""
    found: dict[str, Blueprint] = {}
    for path in sorted(root.glob("*/blueprint.yaml")):
        bp = load_blueprint(path)
        if bp.id in found:
            raise BlueprintError(f"{path}: duplicate blueprint id {bp.id}")
        found[bp.id] = bp
    return found
