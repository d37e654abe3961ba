"""`stellar bench agent`: the node agent's cost and speed, measured against the real engine.

Runs a private mosquitto and the agent as its own process (so RSS and CPU are the agent's
alone), drives it over MQTT like the control plane, and prints one JSON object:

* ``rss_idle_mb``, ``cpu_idle_percent``: no servers;
* ``running[N]``: RSS and CPU with N demo servers running (nobody viewing);
* ``console``: lines/s delivered from a flooding server (the throttle caps it and counts
  the rest as ``dropped``) and latency p50/p99 from Docker's receipt of a stdout line
  (its log timestamp) to a subscriber, at 100 lines/s;
* ``start``: command → "running" through the agent vs a bare ``docker create+start`` →
  first output line, medians of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_usage(pid: int) -> tuple[float, float]:
    """(RSS MB, CPU seconds) of a process."""
    with open(f"/proc/{pid}/status") as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat", "rb") as fh:
        fields = fh.read().rsplit(b")", 1)[1].split()
    return rss, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(pid: int, seconds: float) -> dict[str, float]:
    _, cpu0 = _proc_usage(pid)
    time.sleep(seconds)
    rss, cpu1 = _proc_usage(pid)
    return {"rss_mb": round(rss, 1), "cpu_percent": round((cpu1 - cpu0) / seconds * 100, 2)}


class Control:
    """Plays the control plane: commands out, everything the node says recorded."""

    def __init__(self, port: int, node_id: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion
        from stellar_protocol import topics

        self.topics = topics
        self.node_id = node_id
        self.cond = threading.Condition()
        self.states: dict[str, str] = {}
        self.acks: set[str] = set()
        self.lines: list[tuple[float, str]] = []
        self.dropped = 0
        self.online = False
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topics.node_filter(node_id), qos=1)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = time.time()
        where = self.topics.parse(msg.topic)
        if not msg.payload:
            return
        data = json.loads(msg.payload)
        with self.cond:
            if where.kind == "state":
                self.states[where.server_id] = data["state"]
            elif where.kind == "ack":
                self.acks.add(data["id"])
            elif where.kind == "status":
                self.online = data["status"] == "online"
            elif where.kind == "console":
                self.lines.extend((now, ln) for ln in data["lines"])
                self.dropped += data.get("dropped", 0)
            self.cond.notify_all()

    def send(self, command: dict[str, Any]) -> str:
        command = {"v": 1, "id": uuid.uuid4().hex, "ts": time.time(), **command}
        self.client.publish(self.topics.node_commands(self.node_id), json.dumps(command), qos=1)
        return command["id"]

    def wait(self, predicate: Any, timeout: float = 60.0) -> None:
        with self.cond:
            if not self.cond.wait_for(predicate, timeout):
                raise TimeoutError("bench: timed out waiting for the agent")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _spec(server_id: str, startup: str, done: list[str], install: bool = False) -> dict[str, Any]:
    from stellar_protocol.blueprint import load_catalogue

    spec = load_catalogue(REPO / "blueprints")["demo"].to_spec(server_id, {"SERVER_NAME": "Bench"})
    if not install:
        spec = spec.model_copy(update={"install": None, "startup": startup, "done": done})
    return spec.model_dump(mode="json")


def _start_server(ctl: Control, sid: str, spec: dict[str, Any], view: bool = False) -> float:
    """Install (no-op without a script) and start; returns seconds from the start command to running."""
    if view:
        ctl.wait(lambda: ctl.send({"type": "viewer.grant", "server_id": sid, "until": time.time() + 3600}) or True)
    cid = ctl.send({"type": "server.install", "spec": spec})
    ctl.wait(lambda: cid in ctl.acks, 120)
    t0 = time.perf_counter()
    ctl.send({"type": "server.power", "server_id": sid, "action": "start"})
    ctl.wait(lambda: ctl.states.get(sid) == "running", 60)
    return time.perf_counter() - t0


def _kill(ctl: Control, sid: str) -> None:
    ctl.send({"type": "server.power", "server_id": sid, "action": "kill"})
    ctl.wait(lambda: ctl.states.get(sid) == "offline", 30)


def _bare_start(client: Any, image: str, node_id: str) -> float:
    t0 = time.perf_counter()
    container = client.containers.create(image, ["sh", "-c", "echo ready; exec cat"], stdin_open=True,
                                         labels={"stellar.node": node_id, "stellar.bench": "bare"})
    container.start()
    for chunk in container.logs(stream=True, follow=True):
        if b"ready" in chunk:
            break
    elapsed = time.perf_counter() - t0
    container.remove(force=True)
    return elapsed


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench agent")
    parser.add_argument("--servers", default="10", help="comma-separated running-server counts, e.g. 10,50")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement window")
    parser.add_argument("--starts", type=int, default=5, help="start samples for the overhead comparison")
    args = parser.parse_args(argv)

    import docker

    from stellar.images import ensure_demo_image

    image = ensure_demo_image(progress=lambda _m: None)
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    work = Path(tempfile.mkdtemp(prefix="stellar-bench-"))
    port = _free_port()
    (work / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen([mosquitto, "-c", str(work / "mosquitto.conf")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    node_id = f"bench{uuid.uuid4().hex[:8]}"
    config = work / "agent.json"
    config.write_text(json.dumps({"node_id": node_id, "broker_port": port, "data_dir": str(work / "data"),
                                  "runtime": "docker", "stop_timeout_s": 10}))
    agent = subprocess.Popen([sys.executable, "-m", "stellar_agent.cli", "run", "--config", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    engine = docker.from_env(timeout=120)
    ctl: Control | None = None
    result: dict[str, Any] = {"scenario": "agent", "runtime": "docker", "python": sys.version.split()[0]}
    try:
        time.sleep(0.3)
        ctl = Control(port, node_id)
        ctl.wait(lambda: ctl.online, 30)
        time.sleep(1.0)
        idle = _measure(agent.pid, args.seconds)
        result["rss_idle_mb"], result["cpu_idle_percent"] = idle["rss_mb"], idle["cpu_percent"]

        # command -> running vs bare docker, alternating so drift hits both alike
        quick = _spec("quick", "echo ready; exec cat", ["ready"])
        agent_s, bare_s = [], []
        for _ in range(args.starts):
            agent_s.append(_start_server(ctl, "quick", quick))
            _kill(ctl, "quick")
            bare_s.append(_bare_start(engine, image, node_id))
        result["start"] = {
            "agent_command_to_running_ms_p50": round(statistics.median(agent_s) * 1000, 1),
            "bare_docker_create_start_first_line_ms_p50": round(statistics.median(bare_s) * 1000, 1),
            "overhead_ms_p50": round((statistics.median(agent_s) - statistics.median(bare_s)) * 1000, 1),
            "samples": args.starts,
        }

        # console: sustained flood (throttled), then paced latency
        flood = _spec("flood", 'i=0; while :; do i=$((i+1)); echo "line $i"; done', [])
        _start_server(ctl, "flood", flood, view=True)
        time.sleep(1.0)
        with ctl.cond:
            n0, d0 = len(ctl.lines), ctl.dropped
        t0 = time.perf_counter()
        time.sleep(args.seconds)
        with ctl.cond:
            n1, d1 = len(ctl.lines), ctl.dropped
        span = time.perf_counter() - t0
        _kill(ctl, "flood")
        paced = _spec("paced", 'i=0; while :; do i=$((i+1)); echo "p $i"; sleep 0.01; done', [])
        _start_server(ctl, "paced", paced, view=True)
        time.sleep(args.seconds)
        container = engine.containers.get("stellar-paced")
        logs = container.logs(timestamps=True).decode().splitlines()
        _kill(ctl, "paced")
        from stellar_agent.runtime.docker import _epoch

        emitted = {}
        for row in logs:
            stamp, _, text = row.partition(" ")
            when = _epoch(stamp)
            if text.startswith("p ") and when is not None:
                emitted[text] = when
        with ctl.cond:
            received = {text: t for t, text in ctl.lines if text.startswith("p ")}
        lat = sorted((received[k] - emitted[k]) * 1000 for k in emitted if k in received)
        result["console"] = {
            "flood_lines_per_s_delivered": round((n1 - n0) / span),
            "flood_lines_per_s_dropped": round((d1 - d0) / span),
            "throttle": "2000 lines / 100 ms",
            "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
            "latency_ms_p99": round(lat[int(len(lat) * 0.99)], 1) if lat else None,
            "latency_samples": len(lat),
        }

        # RSS and CPU with N demo servers running (nobody viewing)
        result["running"] = {}
        started = 0
        for count in sorted(int(c) for c in args.servers.split(",") if c):
            demo_ids = [f"demo{i}" for i in range(started, count)]
            for sid in demo_ids:
                ctl.send({"type": "server.install", "spec": _spec(sid, "", [], install=True)})
            ctl.wait(lambda ids=demo_ids: all(ctl.states.get(s) == "offline" for s in ids), 300)
            for sid in demo_ids:
                ctl.send({"type": "server.power", "server_id": sid, "action": "start"})
            ctl.wait(lambda n=count: sum(v == "running" for k, v in ctl.states.items() if k.startswith("demo")) >= n,
                     300)
            started = count
            time.sleep(2.0)
            result["running"][str(count)] = _measure(agent.pid, args.seconds)
    finally:
        if ctl is not None:
            ctl.close()
        agent.terminate()
        try:
            agent.wait(timeout=20)
        except subprocess.TimeoutExpired:
            agent.kill()
        for container in engine.containers.list(all=True, filters={"label": f"stellar.node={node_id}"}):
            container.remove(force=True)
        engine.close()
        broker.terminate()
        broker.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    return 0
