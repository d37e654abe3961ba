"""`stellar bench footprint`: the agent's RSS and CPU with 0, 10 and 50 idle servers.

Reuses the ``agent`` scenario's pieces (private mosquitto, the agent as its own process,
``Control`` playing the control plane, ``/proc`` sampling) but only measures footprint, with
servers that are running and idle (``exec cat``, no viewer, so no console or stats traffic).
Baseline in the same run: a bare interpreter that imported the agent's modules and sleeps,
i.e. the floor any Python agent pays before doing anything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from .agent import Control, _free_port, _measure, _spec
from .common import add_record_args, record, result_base

BASELINE = "import stellar_agent.agent, stellar_agent.runtime.{runtime}, time; time.sleep(3600)"


def _mosquitto(work: Path, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    extra = "user root\n" if os.geteuid() == 0 else ""
    (work / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{extra}")
    return subprocess.Popen([binary, "-c", str(work / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench footprint", description=__doc__)
    parser.add_argument("--servers", default="0,10,50", help="idle-server counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement window")
    parser.add_argument("--runtime", choices=["docker", "process"], default="docker")
    add_record_args(parser)
    args = parser.parse_args(argv)
    counts = sorted(int(c) for c in args.servers.split(",") if c)
    result = result_base("footprint", servers=counts, seconds=args.seconds, runtime=args.runtime)
    if args.runtime == "docker":
        from stellar.images import ensure_demo_image

        ensure_demo_image(progress=lambda _m: None)
    work = Path(tempfile.mkdtemp(prefix="stellar-footprint-"))
    port = _free_port()
    broker = _mosquitto(work, port)
    node_id = f"fp{uuid.uuid4().hex[:8]}"
    config = work / "agent.json"
    config.write_text(json.dumps({"node_id": node_id, "broker_port": port, "data_dir": str(work / "data"),
                                  "runtime": args.runtime, "stop_timeout_s": 10}))
    agent = subprocess.Popen([sys.executable, "-m", "stellar_agent.cli", "run", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    floor = subprocess.Popen([sys.executable, "-c", BASELINE.format(runtime=args.runtime)])
    ctl: Control | None = None
    rows: dict[str, Any] = {}
    try:
        time.sleep(0.3)
        ctl = Control(port, node_id)
        ctl.wait(lambda: ctl.online, 30)
        time.sleep(1.0)
        result["baseline_bare_interpreter"] = _measure(floor.pid, args.seconds)
        started = 0
        for count in counts:
            ids = [f"idle{i}" for i in range(started, count)]
            for sid in ids:
                ctl.send({"type": "server.install", "spec": _spec(sid, "exec cat", [])})
            ctl.wait(lambda ids=ids: all(ctl.states.get(s) == "offline" for s in ids), 300)
            for sid in ids:
                ctl.send({"type": "server.power", "server_id": sid, "action": "start"})
            ctl.wait(lambda n=count: sum(v == "running" for k, v in ctl.states.items() if k.startswith("idle")) >= n,
                     300)
            started = count
            time.sleep(2.0)  # let start-up work settle
            rows[str(count)] = _measure(agent.pid, args.seconds)
            print(f"footprint {count}: {rows[str(count)]}", file=sys.stderr)
        result["agent"] = rows
    finally:
        if ctl is not None:
            try:  # end our game servers through the agent (it leaves them running when it stops)
                for sid in [k for k, v in ctl.states.items() if v != "offline"]:
                    ctl.send({"type": "server.power", "server_id": sid, "action": "kill"})
                ctl.wait(lambda: all(v == "offline" for v in ctl.states.values()), 120)
            except TimeoutError:
                print("footprint: some servers did not stop", file=sys.stderr)
            ctl.close()
        floor.kill()
        floor.wait(timeout=10)
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
        if args.runtime == "docker":
            import docker

            engine = docker.from_env(timeout=120)
            for container in engine.containers.list(all=True, filters={"label": f"stellar.node={node_id}"}):
                container.remove(force=True)
            engine.close()
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    base = result["baseline_bare_interpreter"]
    summary = f"{args.runtime} runtime; bare interpreter {base['rss_mb']} MB; " + ", ".join(
        f"{n} idle: {r['rss_mb']} MB RSS, {r['cpu_percent']}% CPU" for n, r in rows.items())
    record(result, summary, args)
    return 0
