"""The schema (generated and published), the bundled catalogue, the admin import route and
the agent applying patches before each start."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from stellar_agent.config import AgentConfig
from stellar_agent.runtime.process import ProcessRuntime
from stellar_agent.server import Server
from stellar_protocol.blueprint import Blueprint, BlueprintError, json_schema, json_schema_text, load_catalogue
from stellar_protocol.messages import Port

from .conftest import REPO, egg

SCHEMA_FILE = REPO / "blueprints" / "blueprint.schema.json"
CATALOGUE = load_catalogue(REPO / "blueprints")
VALIDATOR = jsonschema.Draft202012Validator(json_schema())


def test_published_schema_is_up_to_date() -> None:
    hint = "run: stellar blueprints schema > blueprints/blueprint.schema.json"
    assert SCHEMA_FILE.read_text() == json_schema_text(), hint
    jsonschema.Draft202012Validator.check_schema(json.loads(SCHEMA_FILE.read_text()))


def test_catalogue_spans_the_genres() -> None:
    games = {k: v for k, v in CATALOGUE.items() if k != "demo"}
    assert len(games) >= 12
    assert {"minecraft-paper", "minecraft-bedrock", "valheim", "cs2", "terraria", "factorio", "rust",
            "satisfactory", "discord-redbot", "nodejs", "python", "mariadb"} <= set(games)
    assert {"minecraft", "survival", "fps", "sandbox", "strategy", "bot", "runtime", "database"} <= {
        b.category for b in games.values()}
    parsers = {cf.parser for b in games.values() for cf in b.config_files}
    assert {"properties", "json", "ini", "file", "toml"} <= parsers


@pytest.mark.parametrize("bp_id", sorted(CATALOGUE))
def test_each_catalogue_blueprint_is_valid_and_usable(bp_id: str) -> None:
    bp = CATALOGUE[bp_id]
    raw = yaml.safe_load((REPO / "blueprints" / bp_id / "blueprint.yaml").read_text())
    VALIDATOR.validate(raw)  # the file itself, against the published schema
    VALIDATOR.validate(bp.to_json())
    for var in bp.variables:
        if var.default or not var.rules.required:
            var.check(var.default)  # shipped defaults pass their own rules
    filled = {v.env: _a_valid_value(v) for v in bp.variables if v.user_editable and v.rules.required and not v.default}
    try:
        spec = bp.to_spec("srv1", filled, ports=[Port(port=30000 + i) for i in range(bp.ports)])
    except BlueprintError as exc:
        pytest.fail(f"{bp_id}: {exc}")
    assert spec.config_files == bp.config_files and "{{" not in spec.startup


def _a_valid_value(var) -> str:
    """Something an owner could type for a required variable without a default."""
    for candidate in ("1", "world", "A" * 32, "https://example.com/x", "server.jar", "a" * 59):
        if var.rules.check(candidate) is None:
            return candidate
    pytest.fail(f"{var.env}: no sample value passes {var.rules}")


def test_demo_keeps_what_dev_and_tests_rely_on() -> None:
    demo = CATALOGUE["demo"]
    assert demo.startup == "sh ./game.sh" and demo.stop.value == "SIGINT" and demo.done == ["Server is ready"]
    name = demo.variables[0]
    assert name.env == "SERVER_NAME" and name.rules.regex
    assert name.check("My World") == "My World"
    with pytest.raises(BlueprintError):
        name.check("bad;name$(reboot)")


@pytest.mark.parametrize(("change", "message"), [
    ({"variables": [{"name": "x", "env": "HOME"}]}, "reserved env names"),
    ({"startup": "run {{SECRET_TOKEN}}"}, "unknown placeholder"),
    ({"startup": "run {{NODE_INTERFACE}}"}, "unknown placeholder"),  # patch-only value
    ({"config_files": [{"file": "a.yml", "parser": "yaml", "replace": [
        {"match": "a", "replace_with": "{{config.docker.interface}}"}]}]}, "unknown placeholder"),
    ({"config_files": [{"file": "/etc/passwd", "parser": "file", "replace": []}]}, "relative path"),
    ({"config_files": [{"file": "a", "parser": "nginx", "replace": []}]}, "config_files.0.parser"),
    ({"stop": {"type": "signal", "value": "SIGKILL"}}, "signal must be one of"),
    ({"done": "(unclosed", "done_regex": True}, "does not compile"),
    ({"variables": [{"name": "x", "env": "X", "rules": {"regex": "[bad"}}]}, "does not compile"),
    ({"features": ["has space"]}, "not a simple name"),
    ({"surprise": 1}, "Extra inputs"),
])
def test_bad_blueprints_get_one_clear_error(tmp_path: Path, change: dict, message: str) -> None:
    raw = yaml.safe_load((REPO / "blueprints" / "demo" / "blueprint.yaml").read_text())
    raw.update(change)
    path = tmp_path / "blueprint.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = subprocess.run([sys.executable, "-m", "stellar.cli", "blueprints", "validate", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_cli_validate_accepts_the_whole_catalogue_and_prints_the_schema() -> None:
    files = sorted(str(p) for p in (REPO / "blueprints").glob("*/blueprint.yaml"))
    out = subprocess.run([sys.executable, "-m", "stellar.cli", "blueprints", "validate", *files],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count(": ok (") == len(files)
    schema = subprocess.run([sys.executable, "-m", "stellar.cli", "blueprints", "schema"],
                            capture_output=True, text=True, timeout=60)
    assert schema.returncode == 0 and schema.stdout == SCHEMA_FILE.read_text()


def test_catalogue_public_view_exposes_rules() -> None:
    from chalicelib.services.blueprints import public_view

    view = public_view(CATALOGUE["minecraft-paper"])
    jar = next(v for v in view["variables"] if v["env"] == "SERVER_JARFILE")
    assert jar["pattern"] and jar["rules"]["required"] is True and "regex" in jar["rules"]
    assert "install" not in view
    hidden = {v.env for v in CATALOGUE["minecraft-paper"].variables if not v.user_viewable}
    assert hidden and not hidden & {v["env"] for v in view["variables"]}


# ---- the admin API ----------------------------------------------------------------------------------

def test_admin_import_route(stack, make_user, owner) -> None:
    admin = make_user(admin=True)
    text = egg("games-steamcmd/satisfactory/egg-satisfactory.json").read_text()
    ok = admin.post("/admin/blueprints/import", {"content": text, "filename": "egg-satisfactory.json"})
    assert ok.status_code == 200, ok.text
    body = ok.json()
    VALIDATOR.validate(body["blueprint"])
    assert body["source_format"] == "PLCN_v1" and isinstance(body["warnings"], list)
    assert [cf["parser"] for cf in body["blueprint"]["config_files"]] == ["ini", "ini"]
    bad = admin.post("/admin/blueprints/import", {"content": '{"meta": {"version": "PTDL_v9"}}'})
    assert bad.status_code == 422 and "unsupported egg format" in bad.json()["error"]["message"]
    assert admin.post("/admin/blueprints/import", {}).status_code == 422
    # not for ordinary users (hidden as not found)
    assert owner.post("/admin/blueprints/import", {"content": text}).status_code == 404


# ---- the agent applies patches before each start ---------------------------------------------------

def test_agent_patches_config_files_before_each_start(tmp_path: Path) -> None:
    bp = Blueprint.model_validate({
        "id": "patch-demo", "name": "Patch demo", "images": {"default": "none"},
        "variables": [{"name": "MOTD", "env": "MOTD", "default": "Hello"}],
        "startup": "cat server.properties; echo READY; sleep 30",
        "stop": {"type": "signal", "value": "SIGTERM"}, "done": ["READY"],
        "limits": {"memory_mb": 64},
        "config_files": [{"file": "server.properties", "parser": "properties", "replace": [
            {"match": "server-port", "replace_with": "{{SERVER_PORT}}"},
            {"match": "motd", "replace_with": "{{MOTD}}"}]}],
    })
    spec = bp.to_spec("patchsrv", {"MOTD": "Stellar"}, ports=[Port(ip="127.0.0.1", port=30123)])
    config = AgentConfig(node_id="n1", data_dir=tmp_path, stop_timeout_s=5)
    published: list[tuple[str, bytes]] = []
    server = Server(spec, config, ProcessRuntime(), lambda topic, payload, qos=0, retain=False:
                    published.append((topic, payload)))
    try:
        props = server.dir / "server.properties"
        server.dir.mkdir(parents=True)
        props.write_text("#game\nserver-port=25565\nmotd=old\n")
        server.start()
        assert props.read_text() == "#game\nserver-port=30123\nmotd=Stellar\n"
        deadline = time.monotonic() + 10
        while server.state != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.state == "running"
        server.stop()
        props.write_text("server-port=1\nmotd=edited by the game\n")  # the game rewrote it
        server.start()
        assert props.read_text() == "server-port=30123\nmotd=Stellar\n"  # re-applied on every start
        server.kill()
    finally:
        server.close()


def test_saved_import_joins_the_catalogue_as_immutable_versions(stack, make_user, owner) -> None:
    admin = make_user(admin=True)
    text = egg("games-steamcmd/valheim/valheim_vanilla/egg-valheim.json").read_text()
    preview = admin.post("/admin/blueprints/import", {"content": text})
    bp_id = preview.json()["blueprint"]["id"]
    assert "version" not in preview.json()
    listed = {b["id"] for b in owner.get("/blueprints").json()}
    first = admin.post("/admin/blueprints/import", {"content": text, "save": True})
    assert first.status_code == 200, first.text
    assert first.json()["version"] >= 1
    again = admin.post("/admin/blueprints/import", {"content": text, "save": True}).json()
    assert again["version"] == first.json()["version"] + 1  # a new version, never an overwrite
    after = {b["id"]: b for b in owner.get("/blueprints").json()}
    assert bp_id in after and set(after) >= listed
    # Ordinary users cannot store blueprints, only see them.
    assert owner.post("/admin/blueprints/import", {"content": text, "save": True}).status_code == 404
