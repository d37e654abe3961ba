"""The AsyncAPI 3 document, generated from the topic catalogue and the pydantic models.

``docs/asyncapi.yaml`` is this module's output, never edited by hand, so dashboards read
the same schemas the agent and control plane validate with. Regenerate with
``python -m stellar_protocol.asyncapi > docs/asyncapi.yaml``; a test fails when it drifts.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml
from pydantic import TypeAdapter

from . import messages, topics

REF = "#/components/schemas/{model}"
_PARAMS = {
    "nodeId": {"description": "Node id: 1-64 of [A-Za-z0-9_-]; never a wildcard."},
    "serverId": {"description": "Server id: 1-64 of [A-Za-z0-9_-]."},
}
_EXAMPLE_TS = 1767225600.0

DESCRIPTION = """\
MQTT 3.1.1 protocol between the StellarStack control plane, node agents and dashboards.

* Payloads are versioned JSON (`v`); unknown fields and bad values are refused. A command
  with a `ts` older than {age:.0f} s or more than {skew:.0f} s in the future is refused (stale
  replay). A refused command gets an `Ack` with `ok: false` and is never half-executed.
* Commands carry ids; a redelivered id is acknowledged with `duplicate: true` and not run.
* Agents keep a persistent session (clean_session false) and subscribe to their commands
  at QoS 1; they reconnect with exponential backoff and full jitter, and on every
  reconnect re-publish the state of every server and a heartbeat with all server states.
* Cost rule: console and stats flow only while a viewer holds a grant (`viewer.grant`);
  states and the node heartbeat are always published.
* Transport: plain MQTT on a private network, or TLS (`mqtts`, port 8883 by convention)
  with a CA file and optionally a client certificate (AWS IoT Core needs one).
"""


def _schemas() -> dict[str, Any]:
    """Every payload schema, with shared definitions lifted into components.schemas."""
    out: dict[str, Any] = {}

    def add(name: str, schema: dict[str, Any]) -> None:
        out.update(schema.pop("$defs", {}))
        out[name] = schema

    add("Command", TypeAdapter(messages.Command).json_schema(ref_template=REF))
    for row in topics.CHANNELS:
        if row.payload != "Command":
            add(row.payload, getattr(messages, row.payload).model_json_schema(ref_template=REF))
    return dict(sorted(out.items()))


def _examples() -> dict[str, list[dict[str, Any]]]:
    ts = {"ts": _EXAMPLE_TS}
    cmd = {"v": 1, "id": "0f8e5b1c2d3a4e5f", **ts}
    return {
        "Command": [
            {**cmd, "type": "server.power", "server_id": "srv-1", "action": "start"},
            {**cmd, "type": "server.command", "server_id": "srv-1", "line": "say hello"},
            {**cmd, "type": "viewer.grant", "server_id": "srv-1", "until": _EXAMPLE_TS + 900},
            {**cmd, "type": "server.files", "server_id": "srv-1", "op": "list", "path": "/plugins"},
        ],
        "Reply": [{"v": 1, "id": "0f8e5b1c2d3a4e5f", **ts, "ok": False, "code": "symlink",
                   "error": "/world: is or passes through a symbolic link"}],
        "BackupEvent": [{"v": 1, **ts, "backup_id": "b1", "action": "create", "status": "running",
                         "bytes": 1048576}],
        "Ack": [{"v": 1, "id": "0f8e5b1c2d3a4e5f", **ts, "ok": False, "error": "unknown server srv-9"}],
        "NodeStatus": [
            {"v": 1, **ts, "status": "online", "runtime": "docker", "isolated": True,
             "servers": {"srv-1": "running"}, "uptime_s": 3600.0, "heartbeat_s": 30.0}
        ],
        "StateMessage": [{"v": 1, **ts, "server_id": "srv-1", "state": "running", "seq": 42}],
        "ConsoleMessage": [{"v": 1, **ts, "lines": ["[Server] Done!"], "dropped": 0, "source": "server"}],
        "StatsMessage": [
            {"v": 1, **ts, "cpu_percent": 12.5, "memory_bytes": 52428800, "memory_limit_bytes": 67108864,
             "rx_bytes": 1024, "tx_bytes": 2048, "uptime_s": 120.0, "disk_bytes": 1048576,
             "disk_limit_bytes": 67108864}
        ],
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document, from the agent's point of view (it receives commands)."""
    examples = _examples()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    msgs: dict[str, Any] = {}
    for row in topics.CHANNELS:
        params = {p: _PARAMS[p] for p in _PARAMS if "{" + p + "}" in row.address}
        channels[row.kind] = {
            "address": row.address,
            "description": row.description,
            "parameters": params,
            "messages": {row.payload: {"$ref": f"#/components/messages/{row.payload}"}},
        }
        model = messages.Command if row.payload == "Command" else getattr(messages, row.payload)
        doc = (getattr(model, "__doc__", None) or "").strip().split("\n")[0] if row.payload != "Command" else (
            "One command; `type` selects the variant."
        )
        msgs[row.payload] = {
            "name": row.payload,
            "contentType": "application/json",
            "summary": doc,
            "payload": {"$ref": REF.format(model=row.payload)},
            "examples": [{"payload": ex} for ex in examples[row.payload]],
        }
        action = "receive" if row.sender == "control-plane" else "send"
        operations[f"{action}_{row.kind}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{row.kind}"},
            "summary": f"{row.sender} → {'agent' if action == 'receive' else 'subscribers'}",
            "bindings": {"mqtt": {"qos": row.qos, "retain": row.retain, "bindingVersion": "0.2.0"}},
            "messages": [{"$ref": f"#/channels/{row.kind}/messages/{row.payload}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "StellarStack node protocol",
            "version": f"{messages.VERSION}.0.0",
            "description": DESCRIPTION.format(age=messages.MAX_COMMAND_AGE, skew=messages.MAX_CLOCK_SKEW),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:18830",
                "protocol": "mqtt",
                "protocolVersion": "3.1.1",
                "description": "`make dev` broker (Mosquitto with dynamic security, or embedded).",
                "security": [{"$ref": "#/components/securitySchemes/userPassword"}],
            },
            "tls": {
                "host": "{host}:8883",
                "protocol": "mqtts",
                "protocolVersion": "3.1.1",
                "description": "TLS broker (Mosquitto listener with certificates, or AWS IoT Core).",
                "variables": {"host": {"description": "Broker host name"}},
                "security": [
                    {"$ref": "#/components/securitySchemes/userPassword"},
                    {"$ref": "#/components/securitySchemes/certificate"},
                ],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": msgs,
            "schemas": _schemas(),
            "securitySchemes": {
                "userPassword": {"type": "userPassword", "description": "Per-node broker user (dynsec)."},
                "certificate": {"type": "X509", "description": "Per-node client certificate (AWS IoT)."},
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """No anchors/aliases (readers copy sections by hand) and block style for long text."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    header = "# Generated by `python -m stellar_protocol.asyncapi` from stellar_protocol; do not edit.\n"
    return header + yaml.dump(document(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    sys.stdout.write(render())
