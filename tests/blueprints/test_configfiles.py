"""Config-file patching on real files, per parser, driven by the real eggs' patches."""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from pathlib import Path

import pytest
import yaml
from lxml import etree
from stellar_agent.configfiles import apply_config_files, patch_one, patch_values
from stellar_agent.runtime.process import ProcessRuntime
from stellar_protocol.blueprint import load_catalogue
from stellar_protocol.configpatch import ConfigFile, Replacement
from stellar_protocol.eggs import import_text

from .conftest import FILES, REPO, egg

VALUES = {"SERVER_PORT": "30001", "SERVER_IP": "0.0.0.0", "SERVER_MEMORY": "2048", "NODE_INTERFACE": "172.17.0.1"}


def _egg_patches(rel: str) -> tuple[list[ConfigFile], dict[str, str]]:
    bp = import_text(egg(rel).read_bytes(), rel).blueprint
    return bp.config_files, {**{v.env: v.default for v in bp.variables}, **VALUES}


def _copy(tmp_path: Path, name: str, to: str) -> Path:
    dest = tmp_path / to
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(FILES / name, dest)
    return dest


def test_properties_paper_egg_on_a_real_server_properties(tmp_path: Path) -> None:
    path = _copy(tmp_path, "server.properties", "server.properties")
    files, values = _egg_patches("minecraft/java/paper/egg-paper.yaml")
    assert apply_config_files(tmp_path, files, values) == []
    text = path.read_text()
    assert "server-port=30001\n" in text and "query.port=30001\n" in text and "server-ip=\n" in text
    assert text.startswith("#Minecraft server properties\n")  # comments and order survive
    assert "motd=A Minecraft Server\n" in text and text.count("server-port=") == 1


def test_properties_file_created_from_nothing(tmp_path: Path) -> None:
    """Terraria's config is written from nothing by its egg's patch (Wings creates the file)."""
    files, values = _egg_patches("games-standalone/terraria/vanilla/egg-terraria-vanilla.json")
    assert apply_config_files(tmp_path, files, values) == []
    lines = dict(line.split("=", 1) for line in (tmp_path / "serverconfig.txt").read_text().splitlines())
    assert lines["port"] == "30001" and lines["worldpath"] == "/home/container/saves/Worlds"
    assert lines["world"] == f"/home/container/saves/Worlds/{values['WORLD_NAME']}.wld"


def test_yaml_bungeecord_list_index_wildcard_and_regex_if_value(tmp_path: Path) -> None:
    path = _copy(tmp_path, "bungee-config.yml", "config.yml")
    files, values = _egg_patches("minecraft/proxy/java/bungeecord/egg-bungeecord.yaml")
    assert apply_config_files(tmp_path, files, values) == []
    doc = yaml.safe_load(path.read_text())
    listener = doc["listeners"][0]
    assert listener["host"] == "0.0.0.0:30001" and listener["query_port"] == 30001  # typed: still a number
    assert listener["forced_hosts"] == {"pvp.md-5.net": "pvp"}  # untouched siblings survive
    servers = doc["servers"]
    assert servers["lobby"]["address"] == "172.17.0.1:25565"  # localhost:25565 → interface + $2
    assert servers["survival"]["address"] == "172.17.0.1"  # no port: $2 is empty
    assert servers["remote"]["address"] == "10.1.2.3:25570"  # regex does not match: left alone
    assert doc["permissions"]["default"][0] == "bungeecord.command.server"


def test_json_factorio_typed_values(tmp_path: Path) -> None:
    path = _copy(tmp_path, "server-settings.json", "data/server-settings.json")
    files, values = _egg_patches("games-standalone/factorio/factorio/egg-factorio.yaml")
    values["SERVER_NAME"] = "12345"  # digits, but the file holds a string there: stays a string
    assert apply_config_files(tmp_path, files, values) == []
    doc = json.loads(path.read_text())
    assert doc["name"] == "12345" and doc["max_players"] == int(values["MAX_SLOTS"])
    assert doc["autosave_interval"] == int(values["SAVE_INTERVAL"])
    assert doc["visibility"] == {"public": True, "lan": True} and doc["tags"] == ["game", "tags"]


def test_ini_satisfactory_bracketed_sections_keep_everything_else(tmp_path: Path) -> None:
    path = _copy(tmp_path, "Engine.ini", "FactoryGame/Saved/Config/LinuxServer/Engine.ini")
    files, values = _egg_patches("games-steamcmd/satisfactory/egg-satisfactory.json")
    assert apply_config_files(tmp_path, files, values) == []
    text = path.read_text()
    section = text.split("[/Script/OnlineSubsystemUtils.IpNetDriver]\n")[1].split("\n[")[0]
    assert f"ConnectionTimeout={values['CONNECT_TIMEOUT']}" in section
    assert f"InitialConnectTimeout={values['INIT_CONNECT_TIMEOUT']}" in section
    assert "NetServerMaxTickRate=30" in section and "; connection timeouts, in seconds" in section
    assert text.count("Paths=") == 3 and "+Paths=../../../FactoryGame" in text  # repeated keys survive
    assert f"[/Script/FactoryGame.FGSaveSession]\nmNumRotatingAutosaves={values['NUM_AUTOSAVES']}" in text
    game = (tmp_path / "FactoryGame/Saved/Config/LinuxServer/Game.ini").read_text()
    assert game == f"[/Script/Engine.GameSession]\nMaxPlayers={values['MAX_PLAYERS']}\n"


def test_ini_plain_section_dot_key_and_sectionless_keys(tmp_path: Path) -> None:
    (tmp_path / "a.ini").write_text("top=1\n\n[server]\nname = old\n\n[other]\nx=1\n")
    cf = ConfigFile(file="a.ini", parser="ini", replace=[
        Replacement(match="server.name", replace_with="new"),
        Replacement(match="server.port", replace_with="{{SERVER_PORT}}"),
        Replacement(match="top", replace_with="2"), Replacement(match="other.x", if_value="9", replace_with="no")])
    patch_one(tmp_path, cf, VALUES)
    assert (tmp_path / "a.ini").read_text() == "top=2\n\n[server]\nname = new\nport=30001\n\n[other]\nx=1\n"


def test_xml_space_engineers_keeps_namespaces_and_comments(tmp_path: Path) -> None:
    path = _copy(tmp_path, "SpaceEngineers-Dedicated.cfg", "config/SpaceEngineers-Dedicated.cfg")
    files, values = _egg_patches("games-steamcmd/space_engineers/default/egg-space-engineers.json")
    problems = apply_config_files(tmp_path, files[:1], values)
    assert problems == []
    root = etree.parse(str(path)).getroot()
    settings = root.find("SessionSettings")
    assert settings.findtext("GameMode") == values["SERVER_MODE"]
    assert settings.findtext("MaxPlayers") == values["MAX_PLAYERS"]
    assert settings.findtext("InventorySizeMultiplier") == "3"
    text = path.read_text()
    assert "<!-- Space Engineers dedicated server settings -->" in text
    assert 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"' in text and 'xsi:nil="true"' in text
    assert text.startswith("<?xml")


def test_xml_trackmania_created_from_nothing(tmp_path: Path) -> None:
    files, values = _egg_patches("games-standalone/trackmania2020/egg-trackmania2020.json")
    assert apply_config_files(tmp_path, files, values) == []
    root = etree.parse(str(tmp_path / "UserData/Config/dedicated_cfg.xml")).getroot()
    assert root.tag == "dedicated" and root.findtext("server_options/name") == values["SERVER_NAME"]


def test_toml_velocity_keeps_comments_and_types(tmp_path: Path) -> None:
    path = _copy(tmp_path, "velocity.toml", "velocity.toml")
    bp = load_catalogue(REPO / "blueprints")["velocity"]
    assert [cf.parser for cf in bp.config_files] == ["toml"]
    extra = ConfigFile(file="velocity.toml", parser="toml", replace=[
        Replacement(match="show-max-players", replace_with="{{SERVER_MEMORY}}"),
        Replacement(match="servers.lobby", if_value="regex:^127\\.0\\.0\\.1(:\\d+)$",
                    replace_with="{{NODE_INTERFACE}}$1"),
        Replacement(match="advanced.new-key", replace_with="true")])
    assert apply_config_files(tmp_path, [*bp.config_files, extra], VALUES) == []
    text = path.read_text()
    doc = tomllib.loads(text)
    assert doc["bind"] == "0.0.0.0:30001" and doc["show-max-players"] == 2048
    assert doc["servers"]["lobby"] == "172.17.0.1:30066" and doc["servers"]["factions"] == "127.0.0.1:30067"
    assert doc["advanced"]["new-key"] is True and doc["servers"]["try"] == ["lobby"]
    assert "# What port should the proxy be bound to?" in text


def test_file_parser_velocity_egg_and_rust_prefixes(tmp_path: Path) -> None:
    _copy(tmp_path, "velocity.toml", "velocity.toml")
    files, values = _egg_patches("minecraft/proxy/java/velocity/egg-velocity.json")
    assert apply_config_files(tmp_path, files, values) == []
    assert 'bind = "0.0.0.0:30001"\n' in (tmp_path / "velocity.toml").read_text()
    path = _copy(tmp_path, "server.cfg", "server/rust/cfg/server.cfg")
    files, values = _egg_patches("games-steamcmd/rust/vanilla/egg-rust.yaml")
    values["SERVER_HOSTNAME"] = "Stellar Rust"
    assert apply_config_files(tmp_path, files, values) == []
    lines = path.read_text().splitlines()
    assert lines[0] == 'server.hostname "Stellar Rust"' and "// custom lines stay" in lines
    assert len(lines) == 7  # the file parser never appends


def test_values_are_inserted_literally_single_pass(tmp_path: Path) -> None:
    cf = ConfigFile(file="x.properties", parser="properties",
                    replace=[Replacement(match="a", replace_with="{{EVIL}}-{{SERVER_PORT}}")])
    patch_one(tmp_path, cf, {**VALUES, "EVIL": "{{SERVER_MEMORY}}$1"})
    assert (tmp_path / "x.properties").read_text() == "a={{SERVER_MEMORY}}$1-30001\n"


def test_only_the_given_values_expand(tmp_path: Path) -> None:
    from stellar_protocol.messages import Limits, ServerSpec, StopSpec

    spec = ServerSpec(server_id="s1", image="x", startup="x", environment={"A": "1"},
                      stop=StopSpec(type="signal", value="SIGINT"), limits=Limits(memory_mb=64))
    values = patch_values(spec, ProcessRuntime())
    assert values == {"A": "1", "NODE_INTERFACE": "127.0.0.1"}
    cf = ConfigFile(file="y.json", parser="json", replace=[Replacement(match="t", replace_with="{{AGENT_TOKEN}}{{A}}")])
    patch_one(tmp_path, cf, values)
    assert json.loads((tmp_path / "y.json").read_text()) == {"t": 1}


def test_paths_cannot_leave_the_server_directory(tmp_path: Path) -> None:
    root = tmp_path / "srv"
    root.mkdir()
    outside = tmp_path / "secret.properties"
    outside.write_text("a=1\n")
    (root / "link.properties").symlink_to(outside)
    (root / "dir").symlink_to(tmp_path)
    set_a = [Replacement(match="a", replace_with="2")]
    bad = [ConfigFile(file="link.properties", parser="properties", replace=set_a),
           ConfigFile(file="dir/secret.properties", parser="properties", replace=set_a)]
    problems = apply_config_files(root, bad, VALUES)
    assert len(problems) == 2 and all("outside the server directory" in p for p in problems)
    assert outside.read_text() == "a=1\n"
    with pytest.raises(ValueError):
        ConfigFile(file="../x", parser="file")


def test_a_broken_file_is_reported_and_the_others_still_patched(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    good = ConfigFile(file="ok.properties", parser="properties", replace=[Replacement(match="k", replace_with="v")])
    bad = ConfigFile(file="bad.json", parser="json", replace=[Replacement(match="k", replace_with="v")])
    problems = apply_config_files(tmp_path, [bad, good], VALUES)
    assert len(problems) == 1 and "bad.json (json) not patched" in problems[0]
    assert (tmp_path / "bad.json").read_text() == "{not json"  # nothing half-written
    assert (tmp_path / "ok.properties").read_text() == "k=v\n"


def test_file_mode_is_kept(tmp_path: Path) -> None:
    path = _copy(tmp_path, "server.properties", "server.properties")
    os.chmod(path, 0o600)
    patch_one(tmp_path, ConfigFile(file="server.properties", parser="properties",
                                   replace=[Replacement(match="pvp", replace_with="false")]), VALUES)
    assert path.stat().st_mode & 0o777 == 0o600 and "pvp=false\n" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["server.properties"]  # no temp file left
