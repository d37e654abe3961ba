"""Import Pterodactyl/Pelican eggs (PTDL_v1/v2, PLCN_v1-v3; JSON or YAML) as blueprints.

The conversion follows what the panels and Wings actually do with an egg, not what the
fields look like: ``config.*`` may be JSON strings or objects, ``done`` a string or a list,
rules a pipe string or a list, ``startup`` or ``startup_commands``, parser ``yml`` is ``yaml``,
``^C``/``^^C``/``^c`` stops mean SIGINT (what the authors intend; Wings fell back to SIGKILL),
legacy placeholders are rewritten to our allow-listed names, and reserved env names are
renamed the Pelican way (``SERVER_<NAME>``). Anything we cannot carry over exactly is kept
where possible and always reported as a warning; bad input raises one ``BlueprintError``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from .blueprint import (
    RESERVED_ENV,
    SERVER_PLACEHOLDERS,
    STOP_SIGNALS,
    Blueprint,
    BlueprintError,
    parse_blueprint,
)
from .configpatch import PARSERS, PLACEHOLDER
from .rules import RulesError, from_laravel

EGG_FORMATS = ("PTDL_v1", "PTDL_v2", "PLCN_v1", "PLCN_v2", "PLCN_v3")
DEFAULT_LIMITS = {"memory_mb": 1024, "cpu_percent": 100, "disk_mb": 10240, "pids": 512}
# Legacy and Pelican placeholder names → our allow-listed names. ``env.X``,
# ``server.build.env.X`` and ``server.environment.X`` name variable X.
_ALIASES = {
    "server.build.default.port": "SERVER_PORT",
    "server.allocations.default.port": "SERVER_PORT",
    "server.build.default.ip": "SERVER_IP",
    "server.allocations.default.ip": "SERVER_IP",
    "server.build.memory": "SERVER_MEMORY",
    "server.build.memory_limit": "SERVER_MEMORY",
    "env.SERVER_PORT": "SERVER_PORT",
    "env.SERVER_IP": "SERVER_IP",
    "env.SERVER_MEMORY": "SERVER_MEMORY",
    "config.docker.interface": "NODE_INTERFACE",
    "config.docker.network.interface": "NODE_INTERFACE",
}
_VAR_PREFIXES = ("server.build.env.", "server.environment.", "env.")
_SIGNAL_KEYS = {"C": "SIGINT", "\\": "SIGQUIT", "D": "SIGHUP"}
_EGG_ROOT = "/home/container/"


@dataclass
class ImportResult:
    """The converted blueprint and every warning raised while converting it."""

    blueprint: Blueprint
    warnings: list[str] = field(default_factory=list)
    source_format: str = ""


def parse_text(text: str | bytes, source: str) -> Any:
    """JSON or YAML text → data (YAML is a superset, but JSON errors read better)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BlueprintError(f"{source}: not UTF-8 text") from None
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise BlueprintError(f"{source}: empty file")
    if text.lstrip()[:1] in "{[":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise BlueprintError(f"{source}: invalid JSON: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BlueprintError(f"{source}: invalid YAML: {str(exc).splitlines()[0]}") from None


def import_text(text: str | bytes, source: str = "<input>") -> ImportResult:
    """An egg (any supported version) or one of our blueprints, as a validated blueprint."""
    data = parse_text(text, source)
    if not isinstance(data, dict):
        raise BlueprintError(f"{source}: expected a mapping at the top level")
    if "schema_version" in data:
        return ImportResult(parse_blueprint(data, source), [], "blueprint")
    meta = data.get("meta")
    version = meta.get("version") if isinstance(meta, dict) else None
    if version is None:
        raise BlueprintError(f"{source}: neither an egg (meta.version) nor a blueprint (schema_version)")
    if version not in EGG_FORMATS:
        raise BlueprintError(f"{source}: unsupported egg format {version!r} (supported: {', '.join(EGG_FORMATS)})")
    return _Converter(data, str(version), source).run()


def slug(name: str) -> str:
    """A blueprint id from an egg name: lowercase, dashes, at most 64 characters."""
    out = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:64].strip("-")
    return out or "imported"


def stop_from_egg(value: Any) -> tuple[dict[str, str], str | None]:
    """``config.stop`` → our stop and an optional warning.

    ``^C``, ``^^C`` (a community workaround) and ``^c`` all mean Ctrl-C: SIGINT. ``^SIGTERM``
    or ``^TERM`` name a signal. Anything else after ``^`` is not a signal we can send: SIGTERM
    (a clean stop request) with a warning, never silently SIGKILL as Wings did.
    """
    text = str(value or "").strip()
    if not text:
        return {"type": "signal", "value": "SIGINT"}, "no stop command: using SIGINT"
    if not text.startswith("^"):
        return {"type": "command", "value": text}, None
    key = text.lstrip("^").strip().upper()
    if key in _SIGNAL_KEYS:
        return {"type": "signal", "value": _SIGNAL_KEYS[key]}, None
    name = key if key.startswith("SIG") else f"SIG{key}"
    if name in STOP_SIGNALS:
        return {"type": "signal", "value": name}, None
    return {"type": "signal", "value": "SIGTERM"}, f"stop {text!r} is not a signal we can send: using SIGTERM"


def _json_field(value: Any, where: str, source: str) -> Any:
    """``config.*`` is a JSON string in PTDL and PLCN_v1/v2 exports, an object in PLCN_v3."""
    if isinstance(value, str):
        if not value.strip():
            return {}
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise BlueprintError(f"{source}: {where} is not valid JSON: {exc}") from None
    return {} if value is None else value


def _text(value: Any) -> str:
    """Egg scalars as env strings: YAML booleans become ``true``/``false`` (as Pelican does)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _flag(value: Any) -> bool:
    """PTDL_v1 exports flags as 0/1 (sometimes strings); PLCN as booleans."""
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no", "off")
    return bool(value)


class _Converter:
    def __init__(self, egg: dict[str, Any], version: str, source: str) -> None:
        self.egg, self.version, self.source = egg, version, source
        self.warnings: list[str] = []
        self.renamed: dict[str, str] = {}  # reserved egg env name → ours
        self.envs: set[str] = set()

    def warn(self, text: str) -> None:
        self.warnings.append(text)

    def fail(self, text: str) -> BlueprintError:
        return BlueprintError(f"{self.source}: {text}")

    def run(self) -> ImportResult:
        egg = self.egg
        name = str(egg.get("name") or "").strip()
        if not name:
            raise self.fail("the egg has no name")
        config = egg.get("config") or {}
        if not isinstance(config, dict):
            raise self.fail("config must be a mapping")
        variables = self._variables(egg.get("variables") or [])
        startup = self._startup(egg)
        stop, stop_warning = stop_from_egg(config.get("stop"))
        if stop_warning:
            self.warn(stop_warning)
        done, done_regex = self._done(_json_field(config.get("startup"), "config.startup", self.source))
        meta = egg.get("meta") if isinstance(egg.get("meta"), dict) else {}
        tags = [str(t)[:64] for t in egg.get("tags") or [] if str(t).strip()]
        features = self._features(egg.get("features"))
        for key in ("config_from", "copy_script_from"):
            if egg.get(key):
                self.warn(f"{key} is set: the inherited parts are not in this file")
        raw: dict[str, Any] = {
            "schema_version": 1,
            "id": slug(name),
            "name": name[:128],
            "description": _text(egg.get("description")).replace("\r\n", "\n").strip()[:16384],
            "author": _text(egg.get("author"))[:256],
            "category": self._category(tags),
            "tags": tags[:32],
            "images": self._images(egg),
            "variables": variables,
            "startup": startup,
            "stop": stop,
            "done": done,
            "done_regex": done_regex,
            "install": self._install(egg.get("scripts")),
            "limits": dict(DEFAULT_LIMITS),
            "ports": 1,
            "config_files": self._config_files(_json_field(config.get("files"), "config.files", self.source)),
            "file_denylist": [str(p) for p in egg.get("file_denylist") or [] if str(p).strip()],
            "features": features,
            "origin": {
                "format": self.version,
                "uuid": str(egg["uuid"]) if egg.get("uuid") else None,
                "update_url": str(meta["update_url"]) if meta.get("update_url") else None,
                "exported_at": str(egg["exported_at"]) if egg.get("exported_at") else None,
            },
        }
        return ImportResult(parse_blueprint(raw, self.source), self.warnings, self.version)

    # ---- parts ------------------------------------------------------------------------
    def _images(self, egg: dict[str, Any]) -> dict[str, str]:
        images = egg.get("docker_images")
        if isinstance(images, dict) and images:
            out = {str(k): str(v) for k, v in images.items() if str(v).strip()}
        else:  # PTDL_v1: ``images`` (a list) or ``image`` (a string)
            legacy = egg.get("images") or egg.get("image") or []
            legacy = [legacy] if isinstance(legacy, str) else legacy
            out = {str(v): str(v) for v in legacy if isinstance(v, str) and v.strip() and ":" in v}
        if not out:
            raise self.fail("the egg names no docker image")
        return out

    def _category(self, tags: list[str]) -> str:
        for tag in tags:
            candidate = re.sub(r"[^a-z0-9]+", "-", tag.lower()).strip("-")[:32].strip("-")
            if candidate:
                return candidate
        return "game"

    def _variables(self, raw: Any) -> list[dict[str, Any]]:
        if not isinstance(raw, list):
            raise self.fail("variables must be a list")
        out: list[dict[str, Any]] = []
        for i, var in enumerate(raw):
            if not isinstance(var, dict):
                raise self.fail(f"variables[{i}] must be a mapping")
            env = str(var.get("env_variable") or "").strip()
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", env):
                raise self.fail(f"variables[{i}]: env_variable {env!r} is not a valid environment name")
            if env in self.envs:
                raise self.fail(f"variables[{i}]: env_variable {env} is defined twice")
            if env.upper() in RESERVED_ENV or env in RESERVED_ENV:
                new = f"SERVER_{env.upper()}" if not env.upper().startswith("SERVER_") else f"EGG_{env.upper()}"
                self.warn(f"variable {env} is a reserved name: renamed to {new} (startup and config files "
                          "follow; scripts that read ${" + env + "} still see the runtime's value)")
                self.renamed[env] = new
                env = new
            self.envs.add(env)
            try:
                rules, rule_warnings = from_laravel(var.get("rules"))
            except RulesError as exc:
                raise self.fail(f"variable {env}: {exc}") from None
            self.warnings.extend(f"variable {env}: {w}" for w in rule_warnings)
            field_type = var.get("field_type")
            if field_type not in (None, "text"):
                self.warn(f"variable {env}: field_type {field_type!r} is shown as text")
            out.append({
                "name": (_text(var.get("name")).strip() or env)[:128],
                "description": _text(var.get("description"))[:4096],
                "env": env,
                "default": _text(var.get("default_value")),
                "user_viewable": _flag(var.get("user_viewable", True)),
                "user_editable": _flag(var.get("user_editable", True)),
                "rules": rules.model_dump(by_alias=True, exclude_defaults=True),
                "max_length": 65536,
            })
        return out

    def _placeholder(self, name: str, where: str, allowed_extra: frozenset[str] = frozenset()) -> str | None:
        """One placeholder name → ours, or None (with a warning) when it cannot be allowed."""
        name = self.renamed.get(name, name)
        if name in self.envs or name in SERVER_PLACEHOLDERS:
            return name
        target = _ALIASES.get(name)
        if target is None:
            for prefix in _VAR_PREFIXES:
                if name.startswith(prefix):
                    target = self.renamed.get(name[len(prefix):], name[len(prefix):])
                    break
        if target is not None and (target in self.envs or target in SERVER_PLACEHOLDERS or target in allowed_extra):
            return target
        self.warn(f"{where}: placeholder {{{{{name}}}}} names no variable or allowed server value: "
                  "it expands to an empty string")
        return None

    def _rewrite(self, text: str, where: str, allowed_extra: frozenset[str] = frozenset()) -> str:
        def sub(m: re.Match[str]) -> str:
            target = self._placeholder(m.group(1), where, allowed_extra)
            return "" if target is None else "{{" + target + "}}"

        return PLACEHOLDER.sub(sub, text)

    def _startup(self, egg: dict[str, Any]) -> str:
        commands = egg.get("startup_commands")
        if isinstance(commands, dict) and commands:
            (label, startup), *others = commands.items()
            if others:
                self.warn(f"startup_commands: using {label!r}; {len(others)} other command(s) not imported: "
                          + ", ".join(repr(k) for k, _ in others))
        else:
            startup = egg.get("startup")
        startup = _text(startup).replace("\r\n", "\n").strip()
        if not startup:
            raise self.fail("the egg has no startup command")
        return self._rewrite(startup, "startup")

    def _done(self, startup_cfg: Any) -> tuple[list[str], bool]:
        if not isinstance(startup_cfg, dict):
            raise self.fail("config.startup must be a mapping")
        for key in startup_cfg:
            if key not in ("done", "strip_ansi", "userInteraction", "user_interaction"):
                self.warn(f"config.startup.{key} is not used")
        if startup_cfg.get("strip_ansi"):
            self.warn("config.startup.strip_ansi: console lines are matched as they are")
        done = startup_cfg.get("done")
        items = [done] if isinstance(done, str) else list(done or [])
        items = [str(d) for d in items if str(d) != ""]
        if not any(d.startswith("regex:") for d in items):
            return items, False
        out: list[str] = []
        for d in items:
            if d.startswith("regex:"):
                pattern = d[len("regex:"):]
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise self.fail(f"config.startup.done: {pattern!r} does not compile: {exc}") from None
                out.append(pattern)
            else:
                out.append(re.escape(d))
        return out, True

    def _install(self, scripts: Any) -> dict[str, str] | None:
        inst = scripts.get("installation") if isinstance(scripts, dict) else None
        if not isinstance(inst, dict):
            return None
        script = _text(inst.get("script")).replace("\r\n", "\n")
        if not script.strip():
            return None
        image = _text(inst.get("container")).strip()
        if not image:
            image = "ghcr.io/pterodactyl/installers:alpine"
            self.warn(f"install: no container named: using {image}")
        return {"image": image, "entrypoint": _text(inst.get("entrypoint")).strip() or "bash", "script": script}

    def _features(self, raw: Any) -> list[str]:
        if isinstance(raw, dict):  # Pelican allows feature → console patterns
            raw = list(raw)
        out = []
        for f in raw or []:
            name = str(f).strip()
            if re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", name):
                out.append(name)
            else:
                self.warn(f"feature {name!r} is not a simple name: not imported")
        return out

    def _config_files(self, files: Any) -> list[dict[str, Any]]:
        if not isinstance(files, dict):
            raise self.fail("config.files must be a mapping of file → patch")
        out: list[dict[str, Any]] = []
        for path, spec in files.items():
            where = f"config.files[{path}]"
            if not isinstance(spec, dict):
                raise self.fail(f"{where} must be a mapping")
            parser = str(spec.get("parser") or "").lower()
            parser = "yaml" if parser == "yml" else parser
            if parser not in PARSERS:
                self.warn(f"{where}: parser {parser!r} is not supported: file not patched")
                continue
            rel = str(path).strip()
            if rel.startswith(_EGG_ROOT):
                rel = rel[len(_EGG_ROOT):]
            while rel.startswith("./"):
                rel = rel[2:]
            if rel.startswith("/") or ".." in rel.split("/"):
                raise self.fail(f"{where}: the path leaves the server directory")
            find = spec.get("find") or {}
            if not isinstance(find, dict):
                raise self.fail(f"{where}.find must be a mapping")
            replace: list[dict[str, Any]] = []
            for match, value in find.items():
                if isinstance(value, dict):  # {if_value: replace_with, ...}
                    for if_value, with_ in value.items():
                        replace.append(self._replacement(str(match), _text(with_), str(if_value), where))
                else:
                    replace.append(self._replacement(str(match), _text(value), None, where))
            out.append({"file": rel, "parser": parser, "replace": replace})
        return out

    def _replacement(self, match: str, value: str, if_value: str | None, where: str) -> dict[str, Any]:
        rep: dict[str, Any] = {
            "match": match,
            "replace_with": self._rewrite(value, f"{where}.{match}", frozenset({"NODE_INTERFACE"})),
        }
        if if_value is not None:
            rep["if_value"] = if_value
        return rep
