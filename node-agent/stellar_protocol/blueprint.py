"""The blueprint model: the source of truth for what a game-server template holds.

A blueprint is loaded from YAML/JSON, validated here, and turned into a ``ServerSpec`` by
``to_spec``. Startup placeholders (``{{NAME}}``) may name only the blueprint's variables and
a short allow-list of server values; they become ``${NAME}`` shell references filled from
the container's environment, so no user value is ever spliced into the command as code.
Config-file patches (``config_files``) may use the same names plus ``NODE_INTERFACE``; the
agent expands them from the server's environment only, never from its own configuration.
Variable validation lives in ``rules.py``, egg import in ``eggs.py``; the published JSON
Schema (``blueprints/blueprint.schema.json``) is generated from this model.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .configpatch import PATCH_ONLY_PLACEHOLDERS, ConfigFile, placeholders
from .messages import InstallSpec, Limits, Port, ServerSpec, StopSpec
from .rules import Rules

# Server values a startup line or a config patch may reference besides the variables.
SERVER_PLACEHOLDERS = frozenset({"SERVER_MEMORY", "SERVER_IP", "SERVER_PORT"})
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")
ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
# Names the runtime sets itself or a shell relies on (Pelican's list plus ours): a variable
# may not shadow them.
RESERVED_ENV = frozenset({
    "PATH", "HOME", "USER", "HOSTNAME", "TZ", "TIMEZONE", "STARTUP", "MODIFIED_STARTUP", "ENV", "LANG",
    "PWD", "TERM", "SHELL", "UUID", "SERVER_UUID", "INTERNAL_IP", "NODE_INTERFACE", "LD_PRELOAD",
    *SERVER_PLACEHOLDERS,
})
# Signals a blueprint may stop a server with (SIGKILL is the agent's last resort, not a stop).
STOP_SIGNALS = frozenset({"SIGINT", "SIGTERM", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGABRT", "SIGWINCH"})
_FEATURE = r"^[A-Za-z0-9_.:-]{1,64}$"


class BlueprintError(ValueError):
    """A blueprint file or a set of variable values that cannot be used; says why."""


class Variable(BaseModel):
    """A value the server owner may see or set; reaches the game as an environment variable."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=4096)
    env: str = Field(pattern=ENV_NAME)
    default: str = Field(default="", max_length=65536)
    user_viewable: bool = True
    user_editable: bool = True
    rules: Rules = Field(default_factory=Rules)
    # A hard cap on top of the rules: values end up in env and config files.
    max_length: int = Field(default=4096, ge=0, le=65536)

    def check(self, value: str) -> str:
        if len(value) > self.max_length:
            raise BlueprintError(f"{self.env}: longer than {self.max_length} characters")
        if any(ord(ch) < 32 and ch != "\t" for ch in value):
            raise BlueprintError(f"{self.env}: control characters are not allowed")
        problem = self.rules.check(value)
        if problem is not None:
            raise BlueprintError(f"{self.env}: {problem}")
        return value


class Origin(BaseModel):
    """Where an imported blueprint came from, so it can be re-imported or traced."""

    model_config = ConfigDict(extra="forbid")

    format: str = Field(max_length=32)
    uuid: str | None = Field(default=None, max_length=64)
    update_url: str | None = Field(default=None, max_length=2048)
    exported_at: str | None = Field(default=None, max_length=64)


class Blueprint(BaseModel):
    """A game-server template; the single source of truth (the JSON Schema is generated)."""

    model_config = ConfigDict(extra="forbid", title="StellarStack blueprint")

    schema_version: Literal[1] = 1
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    name: str = Field(min_length=1, max_length=128)
    description: str = Field(default="", max_length=16384)
    author: str = Field(default="", max_length=256)
    category: str = Field(default="game", pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")
    tags: list[str] = Field(default_factory=list, max_length=32)
    images: dict[str, str] = Field(min_length=1, description="display name -> image reference")
    variables: list[Variable] = Field(default_factory=list, max_length=128)
    startup: str = Field(min_length=1, max_length=8192, description="shell; {{NAME}} placeholders")
    stop: StopSpec
    done: list[str] = Field(default_factory=list, max_length=32, description="console lines that mean running")
    done_regex: bool = False
    install: InstallSpec | None = None
    limits: Limits
    ports: int = Field(default=1, ge=0, le=64)
    read_only_root: bool = False
    config_files: list[ConfigFile] = Field(default_factory=list, max_length=64)
    file_denylist: list[str] = Field(default_factory=list, max_length=256)
    features: list[str] = Field(default_factory=list, max_length=32)
    origin: Origin | None = None

    @field_validator("done", mode="before")
    @classmethod
    def _done_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[str]) -> list[str]:
        for feature in value:
            if not re.match(_FEATURE, feature):
                raise ValueError(f"feature {feature!r} is not a simple name")
        return value

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
        for cf in self.config_files:
            for rep in cf.replace:
                for name in placeholders(rep.replace_with):
                    if name not in known | PATCH_ONLY_PLACEHOLDERS:
                        raise ValueError(f"config_files: {cf.file}: {rep.match}: unknown placeholder {{{{{name}}}}}")
        if self.stop.type == "signal" and self.stop.value not in STOP_SIGNALS:
            raise ValueError(f"stop: signal must be one of {', '.join(sorted(STOP_SIGNALS))}")
        if self.done_regex:
            for pattern in self.done:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"done: {pattern!r} does not compile: {exc}") from None
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
            config_files=self.config_files,
        )

    def to_json(self) -> dict[str, Any]:
        """The blueprint as published: aliases such as ``in``, defaults left out but the version."""
        return {"schema_version": self.schema_version,
                **self.model_dump(mode="json", by_alias=True, exclude_defaults=True)}


def json_schema() -> dict[str, Any]:
    """The published JSON Schema (``blueprints/blueprint.schema.json``)."""
    schema = Blueprint.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://stellarstack.dev/schemas/blueprint.schema.json"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    msg = str(first.get("msg", "")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


def parse_blueprint(raw: Any, source: str) -> Blueprint:
    """Validate already-parsed data; the error names ``source`` and the first bad field."""
    if not isinstance(raw, dict):
        raise BlueprintError(f"{source}: expected a mapping at the top level")
    try:
        return Blueprint.model_validate(raw)
    except ValidationError as exc:
        raise BlueprintError(f"{source}: {_first_error(exc)}") from None


def load_blueprint(path: Path) -> Blueprint:
    """Read one blueprint file (YAML or JSON) with an error that names the file."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise BlueprintError(f"{path}: cannot read: {exc}") from None
    return parse_blueprint(raw, str(path))


def load_catalogue(root: Path) -> dict[str, Blueprint]:
    """Every ``*/blueprint.yaml`` under ``root``, keyed by id."""
    found: dict[str, Blueprint] = {}
    for path in sorted(root.glob("*/blueprint.yaml")):
        bp = load_blueprint(path)
        if bp.id in found:
            raise BlueprintError(f"{path}: duplicate blueprint id {bp.id}")
        found[bp.id] = bp
    return found
