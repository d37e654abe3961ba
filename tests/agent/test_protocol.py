"""The protocol catalogue and its AsyncAPI document, and the pure policies of the agent.

Console bounds and throttling run on an injected clock: the policy (when a batch is due,
what is dropped) is proven exactly, without timing assertions. Real latency is measured
by ``stellar bench agent``.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest
from stellar_agent.agent import Backoff
from stellar_agent.console import MAX_MESSAGE, Console
from stellar_agent.runtime.docker import hardening
from stellar_agent.server import dir_usage
from stellar_protocol import asyncapi, messages, topics
from stellar_protocol.messages import (
    BacklogCommand,
    ConsoleCommand,
    ConsoleMessage,
    DeleteCommand,
    InstallCommand,
    Limits,
    PowerCommand,
    ProtocolError,
    ReinstallCommand,
    UpdateCommand,
    ViewerCommand,
    decode,
    decode_command,
    encode,
)

from . import wire
from .conftest import demo_spec


def test_asyncapi_document_is_generated_from_the_models() -> None:
    """docs/asyncapi.yaml must be exactly what the catalogue and models produce today."""
    assert wire.DOC.read_text(encoding="utf-8") == asyncapi.render(), (
        "docs/asyncapi.yaml is stale: run `python -m stellar_protocol.asyncapi > docs/asyncapi.yaml`"
    )
    doc = wire.document()
    assert doc["asyncapi"] == "3.0.0"
    assert set(doc["channels"]) == {row.kind for row in topics.CHANNELS}
    variants = {ref["$ref"].rsplit("/", 1)[1] for ref in doc["components"]["schemas"]["Command"]["oneOf"]}
    assert variants == {"InstallCommand", "PowerCommand", "ConsoleCommand", "BacklogCommand", "DeleteCommand",
                        "ViewerCommand", "FileCommand", "BackupCommand", "RestoreCommand", "UpdateCommand",
                        "ReinstallCommand"}
    for row in topics.CHANNELS:  # every address in the doc is the one the code builds
        concrete = row.address.replace("{nodeId}", "n1").replace("{serverId}", "s1")
        assert topics.parse(concrete).kind == row.kind
        for example in doc["components"]["messages"][row.payload]["examples"]:
            assert not wire.validator(row.payload).is_valid({"junk": 1})
            assert list(wire.validator(row.payload).iter_errors(example["payload"])) == []


def test_control_plane_commands_match_the_document() -> None:
    """Each command as the control plane builds it (pydantic → encode) validates and decodes."""
    spec = demo_spec("srv-1")
    built = [
        InstallCommand(spec=spec),
        PowerCommand(server_id="srv-1", action="restart"),
        ConsoleCommand(server_id="srv-1", line="say hi"),
        BacklogCommand(server_id="srv-1"),
        DeleteCommand(server_id="srv-1"),
        ViewerCommand(server_id="srv-1", until=time.time() + 900, trace_id="Root=1-abc"),
        UpdateCommand(spec=spec),
        ReinstallCommand(server_id="srv-1"),
    ]
    topic = topics.node_commands("n1")
    for cmd in built:
        payload = encode(cmd)
        assert wire.problems(topic, payload) == [], cmd.type
        assert decode_command(payload) == cmd


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"until": -5}, "until"),
        ({"extra": 1}, "extra"),
        ({"v": 2}, "v"),
        ({"server_id": "a/#"}, "server_id"),
        ({"ts": 1.0}, "stale"),
        ({"ts": 4e9}, "future"),
    ],
)
def test_bad_commands_are_refused_whole(change: dict, why: str) -> None:
    good = json.loads(encode(ViewerCommand(server_id="srv-1", until=time.time() + 60)))
    with pytest.raises(ProtocolError, match=why):
        decode_command(json.dumps({**good, **change}))


def test_console_batch_deadline_and_size_bounds() -> None:
    now = [100.0]
    sent: list[ConsoleMessage] = []
    console = Console(sent.append, batch_ms=50, backlog_lines=0, clock=lambda: now[0], thread=False)
    console.push("first")
    now[0] += 0.049
    console.push("second")  # does not push the deadline back
    assert not console.due()
    now[0] += 0.001
    assert console.due()  # 50 ms after the first line, whatever came after it
    console.flush()
    assert [m.lines for m in sent] == [["first", "second"]]
    assert not console.due()

    sent.clear()
    big = "x" * 1000
    for _ in range(200):  # ~200 KB arriving at one instant
        console.push(big)
    assert console.due()  # a full message does not wait for the deadline
    console.flush()
    assert sum(len(m.lines) for m in sent) == 200 and len(sent) >= 4
    assert all(len(encode(m)) <= MAX_MESSAGE for m in sent)


def test_console_throttle_drops_with_a_count_and_recovers() -> None:
    now = [0.0]
    sent: list[ConsoleMessage] = []
    console = Console(sent.append, batch_ms=50, backlog_lines=10, throttle_lines=2000, throttle_ms=100,
                      clock=lambda: now[0], thread=False)
    for i in range(2500):
        console.push(f"l{i}")
    console.push("agent says", "agent")  # the agent's own lines are never throttled
    console.flush()
    lines = [ln for m in sent for ln in m.lines]
    assert lines[:2000] == [f"l{i}" for i in range(2000)] and lines[-1] == "agent says"
    assert sum(m.dropped for m in sent) == 500
    sent.clear()
    now[0] += 0.1  # next window
    console.push("after")
    console.flush()
    assert [m.lines for m in sent] == [["after"]] and sent[0].dropped == 0
    # only dropped lines in a window: the marker still goes out, as an empty agent message
    sent.clear()
    now[0] += 0.1
    for i in range(2001):
        console.push(f"m{i}")
    console.flush()
    sent.clear()
    console.push("dropped too")
    console.flush()
    assert sent[0].lines == [] and sent[0].dropped == 1


def test_backoff_grows_with_jitter_and_resets() -> None:
    rng = random.Random(7)
    b = Backoff(0.5, 8.0, rng.random)
    delays = [b.next() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2**n) for n in range(10)]
    assert all(0.5 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len({round(d, 6) for d in delays}) == 10  # jittered, not a fixed ladder
    assert max(delays[5:]) > 2.0  # it did grow
    b.reset()
    assert b.next() == pytest.approx(0.5)  # attempt 0: ceiling == base


def test_swap_policy_and_read_only_root(tmp_path: Path) -> None:
    spec = demo_spec("srv-1")
    mb = 1024 * 1024
    for swap, expected in ((0, 64 * mb), (32, 96 * mb), (-1, -1)):
        limits = spec.limits.model_copy(update={"swap_mb": swap})
        opts = hardening(spec.model_copy(update={"limits": limits}), tmp_path)
        assert opts["mem_limit"] == 64 * mb and opts["memswap_limit"] == expected
    assert hardening(spec, tmp_path)["read_only"] is False
    assert hardening(spec.model_copy(update={"read_only_root": True}), tmp_path)["read_only"] is True
    assert Limits(memory_mb=64).pids == 512  # Wings' default


def test_dir_usage_counts_blocks_and_never_follows_links(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "data").write_bytes(os.urandom(300_000))
    with open(tmp_path / "sparse", "wb") as fh:
        fh.truncate(1 << 30)  # 1 GiB apparent, ~0 allocated
    os.symlink("/", tmp_path / "root-link")
    os.symlink("/usr", tmp_path / "sub" / "usr-link")
    used = dir_usage(tmp_path)
    assert 300_000 <= used < 2_000_000


def test_messages_refuse_unknown_fields() -> None:
    with pytest.raises(ProtocolError, match="gpu: Extra inputs"):
        decode(messages.StatsMessage, json.dumps({"cpu_percent": 1, "memory_bytes": 1, "memory_limit_bytes": 1,
                                                  "rx_bytes": 0, "tx_bytes": 0, "uptime_s": 1, "gpu": 1}))
