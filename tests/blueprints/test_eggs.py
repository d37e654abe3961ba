"""Egg import: every shared egg converts, validates against the published schema, and keeps
the fields that matter (stop, done, parsers and patch targets); format variants and bad input."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import jsonschema
import pytest
import yaml
from stellar_protocol.blueprint import SERVER_PLACEHOLDERS, Blueprint, BlueprintError, json_schema
from stellar_protocol.configpatch import placeholders
from stellar_protocol.eggs import import_text, stop_from_egg

from .conftest import EGGS, REPO, all_eggs, egg

VALIDATOR = jsonschema.Draft202012Validator(json_schema())
EGG_FILES = all_eggs()


def test_the_shared_folder_is_there() -> None:
    assert EGGS.is_dir(), f"expected the shared eggs at {EGGS}"
    assert len(EGG_FILES) >= 24


@pytest.mark.parametrize("path", EGG_FILES, ids=[p.name for p in EGG_FILES])
def test_every_egg_imports_and_validates_against_the_schema(path) -> None:
    result = import_text(path.read_bytes(), str(path))
    published = result.blueprint.to_json()
    VALIDATOR.validate(published)  # the JSON the CLI prints is valid under the published schema
    again = Blueprint.model_validate(published)
    assert again == result.blueprint  # and round-trips exactly
    data = json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())
    assert result.source_format == data["meta"]["version"]
    assert len(again.variables) == len(data.get("variables") or [])
    assert "\r" not in again.startup and (again.install is None or "\r" not in again.install.script)
    for var in again.variables:  # reserved names never reach the runtime's environment
        assert var.env not in {"HOSTNAME", "HOME", "TZ", "SERVER_PORT", "STARTUP"}
    # placeholders only ever name variables and allow-listed server values
    allowed = {v.env for v in again.variables} | SERVER_PLACEHOLDERS
    assert set(placeholders(again.startup)) <= allowed
    for cf in again.config_files:
        for rep in cf.replace:
            assert set(placeholders(rep.replace_with)) <= allowed | {"NODE_INTERFACE"}


# file → (stop, done, [(parser, file, [some matches])], format)
EXPECTED = {
    "minecraft/java/paper/egg-paper.yaml": (
        ("command", "stop"), [")! For help, type "],
        [("properties", "server.properties", ["server-ip", "server-port", "query.port"])], "PLCN_v3"),
    "minecraft/proxy/java/bungeecord/egg-bungeecord.yaml": (
        ("command", "end"), ["Listening on "],
        [("yaml", "config.yml", ["listeners[0].query_port", "listeners[0].host", "servers.*.address"])], "PLCN_v3"),
    "minecraft/proxy/java/velocity/egg-velocity.json": (
        ("command", "end"), ["Done ("], [("file", "velocity.toml", ["bind = "])], "PLCN_v3"),
    "minecraft/bedrock/bedrock/egg-vanilla-bedrock.json": (
        ("command", "stop"), ["Server started"],
        [("properties", "server.properties", ["server-port", "server-name", "gamemode"])], "PLCN_v1"),
    "games-steamcmd/valheim/valheim_vanilla/egg-valheim.json": (
        ("signal", "SIGINT"), ["DungeonDB Start"], [], "PLCN_v3"),
    "games-steamcmd/rust/vanilla/egg-rust.yaml": (
        ("command", "quit"), ["Server startup complete"],
        [("file", "server/rust/cfg/server.cfg", ["server.hostname ", "server.description "])], "PLCN_v3"),
    "games-steamcmd/satisfactory/egg-satisfactory.json": (
        ("signal", "SIGINT"), ["Engine Initialization"],
        [("ini", "FactoryGame/Saved/Config/LinuxServer/Game.ini", ["[/Script/Engine.GameSession].MaxPlayers"]),
         ("ini", "FactoryGame/Saved/Config/LinuxServer/Engine.ini",
          ["[/Script/FactoryGame.FGSaveSession].mNumRotatingAutosaves"])], "PLCN_v1"),
    "games-steamcmd/space_engineers/default/egg-space-engineers.json": (
        ("signal", "SIGINT"), ["Game ready..."],  # ^^C: the community's Ctrl-C workaround
        [("xml", "config/SpaceEngineers-Dedicated.cfg", ["MyConfigDedicated.SessionSettings.GameMode"]),
         ("xml", "config/Saves/World/Sandbox.sbc", ["MyObjectBuilder_Checkpoint.Settings.GameMode"]),
         ("xml", "config/Saves/World/Sandbox_config.sbc",
          ["MyObjectBuilder_WorldConfiguration.Settings.GameMode"])], "PTDL_v2"),
    "games-steamcmd/palworld/egg-palworld.yaml": (("command", "shutdown 15"), None, [], "PLCN_v3"),
    "games-standalone/terraria/vanilla/egg-terraria-vanilla.json": (
        ("command", "exit"), ["Type 'help' for a list of commands"],
        [("properties", "serverconfig.txt", ["worldpath", "worldname", "port"])], "PTDL_v2"),
    "games-standalone/factorio/factorio/egg-factorio.yaml": (
        ("command", "/quit"), ["Hosting game at"],
        [("json", "data/server-settings.json", ["name", "max_players", "game_password"])], "PLCN_v3"),
    "games-standalone/trackmania2020/egg-trackmania2020.json": (
        ("signal", "SIGINT"), ["...Load succeeds"],
        [("xml", "UserData/Config/dedicated_cfg.xml", ["dedicated.server_options.name"])], "PLCN_v2"),
    "games-standalone/gta/fivem/egg-five-m.json": (
        ("command", "quit"), ["succeeded. Welcome!"], [("file", "server.cfg", ["endpoint_add_tcp"])], "PLCN_v1"),
    "generic/nodejs/egg-nodejs-generic.yaml": (
        ("signal", "SIGINT"), ["change this text 1", "change this text 2"], [], "PLCN_v3"),
    "database/sql/mariadb/egg-maria-d-b115.json": (
        ("command", "shutdown; exit;"), ["ready for connections."], [("file", ".my.cnf", ["port"])], "PLCN_v1"),
    "software/uptime-kuma/egg-uptime-kuma.json": (("signal", "SIGINT"), None, [], "PTDL_v2"),
    "game-eggs/counter_strike/counter_strike_1.6_rehlds/egg-cs 1.6-rehlds.json": (
        ("command", "quit"), ["Connection to Steam servers successful"], [], "PTDL_v2"),
}


@pytest.mark.parametrize("rel", sorted(EXPECTED))
def test_specific_fields_per_egg(rel: str) -> None:
    stop, done, files, fmt = EXPECTED[rel]
    result = import_text(egg(rel).read_bytes(), rel)
    bp = result.blueprint
    assert (bp.stop.type, bp.stop.value) == stop
    if done is not None:
        assert bp.done == done and not bp.done_regex
    got = [(cf.parser, cf.file, [r.match for r in cf.replace]) for cf in bp.config_files]
    assert [(p, f) for p, f, _ in got] == [(p, f) for p, f, _ in files]
    for (_, _, matches), (_, _, want) in zip(got, files, strict=True):
        assert set(want) <= set(matches)
    assert result.source_format == fmt


def test_paper_details() -> None:
    bp = import_text(egg("minecraft/java/paper/egg-paper.yaml").read_bytes()).blueprint
    raw = yaml.safe_load(egg("minecraft/java/paper/egg-paper.yaml").read_text())
    assert len(bp.images) == len(raw["docker_images"])
    assert set(bp.features) >= {"eula", "java_version", "pid_limit"}
    props = bp.config_files[0].replace
    assert {r.match: r.replace_with for r in props}["server-port"] == "{{SERVER_PORT}}"  # legacy name rewritten
    jar = next(v for v in bp.variables if v.env == "SERVER_JARFILE")
    assert jar.rules.regex and jar.check("server.jar") == "server.jar"
    with pytest.raises(BlueprintError):
        jar.check("server.zip")
    assert bp.install is not None and bp.install.script.startswith("#!/bin/ash")


def test_bungeecord_regex_if_value_and_node_interface() -> None:
    bp = import_text(egg("minecraft/proxy/java/bungeecord/egg-bungeecord.yaml").read_bytes()).blueprint
    rep = next(r for r in bp.config_files[0].replace if r.match == "servers.*.address")
    assert rep.if_value and rep.if_value.startswith("regex:")
    assert rep.replace_with == "{{NODE_INTERFACE}}$2"  # never {{config.*}}: agent config stays private


def test_reserved_env_names_are_renamed_and_references_follow() -> None:
    result = import_text(egg("game-eggs/counter_strike/counter_strike_1.6_rehlds/egg-cs 1.6-rehlds.json").read_bytes())
    envs = [v.env for v in result.blueprint.variables]
    assert "HOSTNAME" not in envs and "SERVER_HOSTNAME" in envs
    assert any("HOSTNAME" in w and "renamed" in w for w in result.warnings)
    raw = json.loads(egg("game-eggs/counter_strike/counter_strike_1.6_rehlds/egg-cs 1.6-rehlds.json").read_text())
    if "{{HOSTNAME}}" in raw["startup"]:
        assert "{{SERVER_HOSTNAME}}" in result.blueprint.startup


def test_unsupported_rules_become_warnings() -> None:
    result = import_text(egg("games-standalone/terraria/vanilla/egg-terraria-vanilla.json").read_bytes())
    npc = next(v for v in result.blueprint.variables if v.env == "NPCSTREAM")
    assert npc.rules.unsupported == ["int"]
    assert any("NPCSTREAM" in w and "'int'" in w for w in result.warnings)


def test_digits_between_and_in_rules_from_real_eggs() -> None:
    factorio = import_text(egg("games-standalone/factorio/factorio/egg-factorio.yaml").read_bytes()).blueprint
    slots = next(v for v in factorio.variables if v.env == "MAX_SLOTS")
    assert slots.rules.digits_between == (1, 3) and slots.rules.type == "numeric"
    assert slots.check("20") and slots.rules.check("1000") is not None
    forge = import_text(egg("minecraft/java/forge/egg-forge-minecraft.yaml").read_bytes()).blueprint
    assert any(v.rules.in_ for v in forge.variables)


# ---- format variants ----------------------------------------------------------------------------

def _paper() -> dict:
    return yaml.safe_load(egg("minecraft/java/paper/egg-paper.yaml").read_text())


def test_config_as_json_strings_equals_config_as_objects() -> None:
    native = _paper()
    stringly = copy.deepcopy(native)
    stringly["meta"]["version"] = "PTDL_v2"
    for key in ("files", "startup", "logs"):
        stringly["config"][key] = json.dumps(native["config"][key])
    for var in stringly["variables"]:
        var["rules"] = "|".join(var["rules"]) if isinstance(var["rules"], list) else var["rules"]
    stringly["startup"] = next(iter(stringly.pop("startup_commands").values()))
    a = import_text(json.dumps(native)).blueprint
    b = import_text(json.dumps(stringly)).blueprint
    assert a.model_dump(exclude={"origin"}) == b.model_dump(exclude={"origin"})


def test_ptdl_v1_images_and_yml_alias_and_legacy_placeholders() -> None:
    data = {
        "meta": {"version": "PTDL_v1"},
        "name": "Old Proxy",
        "image": "quay.io/pterodactyl/core:java",
        "startup": "java -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}} --port {{server.build.default.port}}",
        "config": {
            "files": json.dumps({"/home/container/config.yml": {"parser": "yml", "find": {
                "listeners[0].host": "0.0.0.0:{{server.build.default.port}}",
                "motd": "{{server.build.env.MOTD}}", "limit": "{{env.SERVER_MEMORY}}"}}}),
            "startup": json.dumps({"done": "regex:^Listening on \\d+", "userInteraction": []}),
            "stop": "^c", "logs": "{}"},
        "variables": [
            {"name": "Jar", "env_variable": "SERVER_JARFILE", "default_value": "proxy.jar",
             "user_viewable": 1, "user_editable": 1, "rules": "required|regex:/^([\\w\\d._-]+)(\\.jar)$/"},
            {"name": "MOTD", "env_variable": "MOTD", "default_value": True, "user_viewable": 1,
             "user_editable": 0, "rules": "nullable|string"},
        ],
    }
    result = import_text(json.dumps(data))
    bp = result.blueprint
    assert bp.images == {"quay.io/pterodactyl/core:java": "quay.io/pterodactyl/core:java"}
    assert bp.startup.endswith("--port {{SERVER_PORT}}")
    cf = bp.config_files[0]
    assert (cf.parser, cf.file) == ("yaml", "config.yml")
    assert [r.replace_with for r in cf.replace] == ["0.0.0.0:{{SERVER_PORT}}", "{{MOTD}}", "{{SERVER_MEMORY}}"]
    assert bp.done == ["^Listening on \\d+"] and bp.done_regex
    assert (bp.stop.type, bp.stop.value) == ("signal", "SIGINT")
    assert bp.variables[1].default == "true" and bp.variables[1].user_editable is False


def test_flags_and_dotted_paths_from_old_exports() -> None:
    data = json.loads(egg("database/sql/mariadb/egg-maria-d-b115.json").read_text())
    files = json.loads(data["config"]["files"])
    data["config"]["files"] = json.dumps({"./" + k: v for k, v in files.items()})
    data["variables"] = [{"name": "Hidden", "env_variable": "HIDDEN", "default_value": "", "rules": "nullable",
                          "user_viewable": "0", "user_editable": 0}]
    bp = import_text(json.dumps(data)).blueprint
    assert bp.config_files[0].file == ".my.cnf"  # "./.my.cnf": the dot file keeps its dot
    assert bp.variables[0].user_viewable is False and bp.variables[0].user_editable is False


def test_mixed_done_list_becomes_regexes() -> None:
    data = _paper()
    data["config"]["startup"] = {"done": ["Done (", "regex:^\\[Server\\] ready$"]}
    bp = import_text(json.dumps(data)).blueprint
    assert bp.done_regex and bp.done == ["Done\\ \\(", "^\\[Server\\] ready$"]


def test_startup_commands_keep_the_first_and_warn_about_the_rest() -> None:
    data = _paper()
    data["startup_commands"] = {"Default": "java -jar {{SERVER_JARFILE}}", "Aikar": "java -XX:+UseG1GC -jar x.jar"}
    result = import_text(yaml.safe_dump(data, sort_keys=False))
    assert result.blueprint.startup == "java -jar {{SERVER_JARFILE}}"
    assert any("Aikar" in w for w in result.warnings)


@pytest.mark.parametrize(("stop", "expected"), [
    ("^C", ("signal", "SIGINT")), ("^^C", ("signal", "SIGINT")), ("^c", ("signal", "SIGINT")),
    ("^SIGTERM", ("signal", "SIGTERM")), ("^TERM", ("signal", "SIGTERM")), ("^SIGABRT", ("signal", "SIGABRT")),
    ("^X", ("signal", "SIGTERM")), ("stop", ("command", "stop")), ("shutdown 15", ("command", "shutdown 15")),
])
def test_stop_values_map_to_what_the_egg_intends(stop: str, expected: tuple[str, str]) -> None:
    got, warning = stop_from_egg(stop)
    assert (got["type"], got["value"]) == expected
    assert (warning is not None) is (stop == "^X")


def test_unknown_placeholders_are_dropped_with_a_warning_never_expanded() -> None:
    data = _paper()
    data["config"]["files"]["server.properties"]["find"]["rcon.password"] = "{{config.remote}}"
    data["startup_commands"] = {"Default": "java -jar {{SERVER_JARFILE}} {{server.build.node.fqdn}}"}
    result = import_text(json.dumps(data))
    assert "{{" not in result.blueprint.startup.replace("{{SERVER_JARFILE}}", "")
    rep = {r.match: r.replace_with for r in result.blueprint.config_files[0].replace}
    assert rep["rcon.password"] == ""
    assert sum("placeholder" in w for w in result.warnings) == 2


def test_our_own_blueprints_import_as_themselves() -> None:
    text = (REPO / "blueprints" / "demo" / "blueprint.yaml").read_text()
    result = import_text(text, "demo")
    assert result.blueprint.id == "demo" and result.source_format == "blueprint" and result.warnings == []


@pytest.mark.parametrize(("text", "message"), [
    ("", "empty file"),
    ("{not json", "invalid JSON"),
    ("- a\n- b\n", "mapping"),
    ("name: x\n", "neither an egg"),
    ('{"meta": {"version": "PTDL_v9"}, "name": "x"}', "unsupported egg format 'PTDL_v9'"),
    ('{"meta": {"version": "PTDL_v2"}, "name": "x", "docker_images": {"a": "b:c"}, "startup": "x",'
     ' "config": {"files": "{bad"}}', "config.files is not valid JSON"),
    ('{"meta": {"version": "PTDL_v2"}, "name": "x", "docker_images": {"a": "b:c"}, "startup": "x",'
     ' "config": {"files": {"../../etc/passwd": {"parser": "file", "find": {"a": "b"}}}}}', "leaves the server"),
    ('{"meta": {"version": "PTDL_v2"}, "name": "x", "startup": "x", "config": {}}', "no docker image"),
    ('{"meta": {"version": "PTDL_v2"}, "name": "x", "docker_images": {"a": "b:c"}, "startup": "x",'
     ' "variables": [{"name": "v", "env_variable": "BAD NAME", "rules": ""}]}', "not a valid environment name"),
    ('{"meta": {"version": "PTDL_v2"}, "name": "x", "docker_images": {"a": "b:c"}, "startup": "x",'
     ' "variables": [{"name": "v", "env_variable": "V", "rules": "regex:/[oops/"}]}', "does not compile"),
])
def test_bad_input_gets_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(BlueprintError) as info:
        import_text(text, "upload.json")
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith("upload.json: ")


# ---- the CLI ------------------------------------------------------------------------------------------

def _stellar(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "stellar.cli", *args], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


def test_cli_import_prints_blueprint_json_and_exits_0() -> None:
    path = egg("games-steamcmd/space_engineers/default/egg-space-engineers.json")
    out = _stellar("blueprints", "import", str(path))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    VALIDATOR.validate(data)
    assert data["stop"] == {"type": "signal", "value": "SIGINT"}


def test_cli_import_of_bad_input_exits_2_with_one_line(tmp_path) -> None:
    bad = tmp_path / "egg.json"
    bad.write_text('{"meta": {"version": "PTDL_v9"}}')
    out = _stellar("blueprints", "import", str(bad))
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.strip().splitlines()) == 1 and "unsupported egg format" in out.stderr
    missing = _stellar("blueprints", "import", str(tmp_path / "nope.json"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
