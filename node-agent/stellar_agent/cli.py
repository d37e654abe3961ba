"""``stellar-agent run --config FILE``: the entry point a node's service manager runs.

``stellar-agent enroll --panel URL --token T --config OUT`` joins a new machine: it trades
the one-time token an admin got from the panel for the node's broker identity and writes
the config ``run`` uses (mode 0600: it holds the broker password).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .config import AgentConfig, ConfigError, load


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stellar-agent", description="StellarStack node agent")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to the broker and run game servers")
    run.add_argument("--config", required=True, help="agent config file (YAML or JSON)")
    enroll = sub.add_parser("enroll", help="join this machine to a panel with a one-time token")
    enroll.add_argument("--panel", required=True, help="the panel's URL, e.g. https://panel.example.com")
    enroll.add_argument("--token", required=True, help="the enrollment token shown in the admin panel")
    enroll.add_argument("--config", required=True, help="where to write the agent config (YAML)")
    enroll.add_argument("--data-dir", default="/var/lib/stellar", help="the agent's data directory")
    enroll.add_argument("--runtime", default="auto", choices=["auto", "docker", "process"])
    args = parser.parse_args(argv)
    if args.command == "enroll":
        return _enroll(args.panel, args.token, Path(args.config), Path(args.data_dir), args.runtime)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load(args.config)
    except ConfigError as exc:
        print(f"stellar-agent: {exc}", file=sys.stderr)
        return 2
    from .agent import Agent

    Agent(config).run_forever()
    return 0


def register(panel: str, token: str, timeout: float = 30.0) -> dict[str, Any]:
    """POST the token to ``/api/nodes/register``; raises ConfigError with the panel's reason."""
    body = json.dumps({"token": token, "hostname": socket.gethostname()}).encode()
    request = urllib.request.Request(f"{panel.rstrip('/')}/api/nodes/register", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - the admin's URL
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            reason = exc.reason
        raise ConfigError(f"the panel refused the enrollment ({exc.code}): {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ConfigError(f"cannot reach the panel at {panel}: {exc}") from None


def enrollment_config(answer: dict[str, Any], data_dir: Path, runtime: str, config_dir: Path) -> dict[str, Any]:
    """The agent config for a register answer; a CA certificate, if any, is written beside it."""
    broker = answer["broker"]
    config: dict[str, Any] = {
        "node_id": answer["node_id"], "data_dir": str(data_dir), "runtime": runtime,
        "broker_host": broker["host"], "broker_port": int(broker["port"]),
        "broker_tls": bool(broker.get("tls", False)),
    }
    for key in ("username", "password"):
        if broker.get(key):
            config[f"broker_{key}"] = broker[key]
    if broker.get("ca_pem"):
        ca = config_dir / "broker-ca.pem"
        ca.write_text(broker["ca_pem"])
        config["broker_ca"] = str(ca)
    config.update({k: v for k, v in (answer.get("config") or {}).items() if k in AgentConfig.model_fields})
    AgentConfig.model_validate(config)  # refuse to write a config `run` would reject
    return config


def _enroll(panel: str, token: str, out: Path, data_dir: Path, runtime: str) -> int:
    import yaml

    try:
        answer = register(panel, token)
        out.parent.mkdir(parents=True, exist_ok=True)
        config = enrollment_config(answer, data_dir, runtime, out.parent)
    except (ConfigError, KeyError, ValueError) as exc:
        print(f"stellar-agent: enrollment failed: {exc}", file=sys.stderr)
        return 1
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    os.chmod(out, 0o600)
    print(f"enrolled as node {config['node_id']}; run: stellar-agent run --config {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
