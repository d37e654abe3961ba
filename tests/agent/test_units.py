"""Pure pieces of the agent: line splitting, batching, config loading, command log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stellar_agent.config import ConfigError, load
from stellar_agent.console import MAX_MESSAGE, Console, LineSplitter, batches
from stellar_agent.storage import CommandLog
from stellar_protocol.messages import ConsoleMessage, encode


def test_line_splitter_handles_partials_crlf_ansi_and_utf8() -> None:
    s = LineSplitter()
    assert s.feed(b"hel") == []
    assert s.feed(b"lo\r") == []
    assert s.feed(b"\nworld\n\x1b[32mgreen\x1b[0m\r\n") == ["hello", "world", "\x1b[32mgreen\x1b[0m"]
    snowman = "☃".encode()
    assert s.feed(b"a" + snowman[:1]) == []
    assert s.feed(snowman[1:] + b"b\ntail") == ["a☃b"]
    assert s.flush() == ["tail"]
    assert s.flush() == []


def test_line_splitter_cuts_huge_lines() -> None:
    s = LineSplitter(max_line=10)
    assert s.feed(b"x" * 25) == ["x" * 10, "x" * 10]
    assert s.flush() == ["x" * 5]


def test_batches_stay_under_64k() -> None:
    lines = ["\x1b" * 1000] * 200  # escapes expand 6x in JSON
    groups = batches(lines)
    assert sum(len(g) for g in groups) == 200 and len(groups) > 1
    for g in groups:
        assert len(encode(ConsoleMessage(lines=g))) <= MAX_MESSAGE


def test_console_batches_and_keeps_a_ring() -> None:
    sent: list[ConsoleMessage] = []
    console = Console(sent.append, batch_ms=20, backlog_lines=3)
    for i in range(5):
        console.push(f"line {i}")
    console.close()
    assert [ln for m in sent for ln in m.lines] == [f"line {i}" for i in range(5)]
    assert len(sent) == 1  # one message for the burst
    sent.clear()
    console.backlog()
    assert sent[0].backlog and sent[0].lines == ["line 2", "line 3", "line 4"]


def test_config_load_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "agent.yaml"
    good.write_text("node_id: n1\ndata_dir: /var/lib/stellar\nbroker_port: 1884\n")
    cfg = load(good)
    assert cfg.broker_port == 1884 and cfg.runtime == "auto" and cfg.stop_timeout_s == 30
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"node_id": "n1", "data_dir": "/x", "runtme": "docker"}))
    with pytest.raises(ConfigError, match="runtme"):
        load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")


def test_command_log_is_bounded_and_persistent(tmp_path: Path) -> None:
    path = tmp_path / "commands.log"
    log = CommandLog(path, limit=5)
    assert log.remember("a" * 8) and not log.remember("a" * 8)
    for i in range(20):
        log.remember(f"cmd-{i:04d}")
    again = CommandLog(path, limit=5)
    assert not again.remember("cmd-0019")  # survives a restart
    assert again.remember("a" * 8)  # evicted: bounded
    assert len(path.read_text().splitlines()) <= 11


def test_cli_refuses_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from stellar_agent.cli import main

    assert main(["run", "--config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err
