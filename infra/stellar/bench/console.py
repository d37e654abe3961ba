"""`stellar bench console`: game-server stdout → browser-side MQTT/WebSocket viewers.

A demo server created through the API gets a purpose-built ``game.sh`` that prints numbered
lines at a fixed rate (bursts every 100 ms). Viewers hold real console grants from the API and
subscribe over WebSocket, as the web panel does. Latency is from the line's emission to its
receipt by a viewer: Docker's own log timestamp with the Docker runtime, a timestamp printed
by the emitter with the process runtime (same clock either way). Loss counts lines emitted
but never received by a viewer. Baseline, in the same run: the raw broker round trip of one
message per line, published over TCP by the admin and received over WebSocket.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from typing import Any
from urllib.parse import urlparse

from .common import Api, add_record_args, bench_stack, create_server, pct, record, replace_game, result_base

DOCKER_EMITTER = """#!/bin/sh
echo "[Server] Done! Server is ready"
. ./bench.conf
sleep 0.5
i=0
while [ $i -lt $TOTAL ]; do
  j=0
  while [ $j -lt $BURST ] && [ $i -lt $TOTAL ]; do i=$((i+1)); j=$((j+1)); echo "L $i"; done
  sleep $TICK
done
exec cat
"""

PROCESS_EMITTER = """import sys, time
conf = dict(l.split("=", 1) for l in open("bench.conf").read().split())
total, burst, tick = int(conf["TOTAL"]), int(conf["BURST"]), float(conf["TICK"])
print("[Server] Done! Server is ready", flush=True)
time.sleep(0.5)
i, nxt = 0, time.monotonic()
while i < total:
    out = []
    for _ in range(min(burst, total - i)):
        i += 1
        out.append(f"L {i} {time.time():.6f}")
    sys.stdout.write("\\n".join(out) + "\\n")
    sys.stdout.flush()
    nxt += tick
    time.sleep(max(0.0, nxt - time.monotonic()))
sys.stdin.read()
"""


class WsViewer:
    """One browser-like subscriber over MQTT/WebSocket; records (receive time, text) per line."""

    def __init__(self, url: str, username: str, password: str, client_id: str, filters: list[str]) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        where = urlparse(url)
        self.lines: list[tuple[float, str]] = []
        self.messages: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, transport="websockets",
                                  protocol=mqtt.MQTTv311)
        self.client.ws_set_options(path=where.path or "/mqtt")
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda c, *_a: c.subscribe([(f, 1) for f in filters])
        self.client.on_subscribe = lambda *_a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(where.hostname or "127.0.0.1", where.port or 80)
        self.client.loop_start()
        if not self._subscribed.wait(15):
            raise TimeoutError("viewer could not subscribe")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.time()
        if msg.topic.endswith("/console"):
            data = json.loads(msg.payload)
            with self._lock:
                self.lines.extend((now, ln) for ln in data.get("lines", []))
        elif "/bench/" in msg.topic:
            with self._lock:
                self.messages.append((now, msg.payload))

    def take(self) -> tuple[list[tuple[float, str]], list[tuple[float, bytes]]]:
        with self._lock:
            lines, msgs = self.lines, self.messages
            self.lines, self.messages = [], []
        return lines, msgs

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _pacing(rate: int) -> tuple[int, float]:
    burst = max(1, rate // 10)
    return burst, burst / rate


def _summarise(emitted: dict[int, float], viewers: list[list[tuple[float, str]]]) -> dict[str, Any]:
    latencies: list[float] = []
    lost = []
    for lines in viewers:
        seen: set[int] = set()
        for when, text in lines:
            parts = text.split()
            if len(parts) < 2 or parts[0] != "L":
                continue
            n = int(parts[1])
            sent = float(parts[2]) if len(parts) > 2 else emitted.get(n)
            if n in seen or sent is None:
                continue
            seen.add(n)
            latencies.append((when - sent) * 1000)
        lost.append(len(set(emitted) - seen) if emitted else 0)
    total = len(emitted) * len(viewers)
    return {"emitted": len(emitted), "p50_ms": pct(latencies, 50), "p99_ms": pct(latencies, 99),
            "samples": len(latencies), "loss_percent": round(100 * sum(lost) / total, 3) if total else None}


def _docker_emissions(sid: str) -> dict[int, float]:
    import docker
    from stellar_agent.runtime.docker import _epoch

    engine = docker.from_env(timeout=60)
    try:
        raw = engine.containers.get(f"stellar-{sid}").logs(timestamps=True).decode(errors="replace")
    finally:
        engine.close()
    out: dict[int, float] = {}
    for row in raw.splitlines():
        stamp, _, text = row.partition(" ")
        if text.startswith("L "):
            when = _epoch(stamp)
            if when is not None:
                out[int(text.split()[1])] = when
    return out


def _run_console(stack: Any, api: Api, sid: str, runtime: str, rate: int, seconds: float,
                 viewers: list[WsViewer]) -> dict[str, Any]:
    total = max(1, int(rate * seconds))
    burst, tick = _pacing(rate)
    (stack.opts.data_dir / "node" / "volumes" / sid / "bench.conf").write_text(
        f"TOTAL={total}\nBURST={burst}\nTICK={tick}\n")
    for v in viewers:
        v.take()
    api.call("POST", f"/servers/{sid}/power", {"action": "start"})
    api.wait_status(sid, "running", 60)
    t0 = time.time()

    def got_all() -> bool:
        with viewers[-1]._lock:
            return sum(1 for _t, ln in viewers[-1].lines if ln.startswith("L ")) >= total

    deadline = t0 + seconds * 1.5 + 10
    while time.time() < deadline and not got_all():
        time.sleep(0.1)
    time.sleep(1.0)  # stragglers to other viewers
    span = time.time() - t0
    if runtime == "docker":
        emitted = _docker_emissions(sid)
    else:
        emitted = {n: 0.0 for n in range(1, total + 1)}  # the lines carry their own timestamps
    taken = [v.take()[0] for v in viewers]
    api.call("POST", f"/servers/{sid}/power", {"action": "kill"})
    api.wait_status(sid, "offline", 60)
    out = _summarise(emitted, taken)
    if runtime != "docker":  # lines carry emission times; emitted is the known total
        out["emitted"] = total
    out["target_lines_per_s"] = rate
    out["span_s"] = round(span, 1)
    return out


def _run_baseline(stack: Any, rate: int, seconds: float, count: int) -> dict[str, Any]:
    """The same pacing and fan-out as one message per line: admin over TCP → admin subscribers over WS."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    password = stack._secrets()["broker_admin"]
    topic = f"stellar/v1/bench/{uuid.uuid4().hex[:8]}"
    subs = [WsViewer(stack.broker.ws_url, "stellar-admin", password, f"bench-ws-{uuid.uuid4().hex[:8]}", [topic])
            for _ in range(count)]
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                      protocol=mqtt.MQTTv311)
    pub.username_pw_set("stellar-admin", password)
    pub.connect("127.0.0.1", stack.broker.tcp_port)
    pub.loop_start()
    try:
        total = max(1, int(rate * seconds))
        burst, tick = _pacing(rate)
        sent: dict[int, float] = {}
        nxt = time.monotonic()
        i = 0
        while i < total:
            for _ in range(min(burst, total - i)):
                i += 1
                sent[i] = time.time()
                pub.publish(topic, str(i).encode(), qos=1)
            nxt += tick
            time.sleep(max(0.0, nxt - time.monotonic()))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with subs[-1]._lock:
                if len(subs[-1].messages) >= total:
                    break
            time.sleep(0.05)
        time.sleep(0.5)
        lines = [[(t, f"L {int(p)} {sent[int(p)]}") for t, p in v.take()[1]] for v in subs]
    finally:
        pub.loop_stop()
        pub.disconnect()
        for v in subs:
            v.close()
    out = _summarise(sent, lines)
    out["target_msgs_per_s"] = rate
    return out


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench console", description=__doc__)
    parser.add_argument("--rates", default="1,100,1000,10000", help="lines per second, comma-separated")
    parser.add_argument("--viewers", default="1,10", help="viewer counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0, help="emission time per measurement")
    parser.add_argument("--runtime", choices=["docker", "process"], default="docker")
    add_record_args(parser)
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r]
    counts = sorted(int(c) for c in args.viewers.split(",") if c)
    result = result_base("console", rates=rates, viewers=counts, seconds=args.seconds, runtime=args.runtime)
    rows: list[dict[str, Any]] = []
    with bench_stack(runtime=args.runtime) as (stack, api, _token):
        sid = create_server(api, "Console bench")
        script = DOCKER_EMITTER if args.runtime == "docker" else (
            f"exec {sys.executable} -u emit.py\n")
        replace_game(stack, sid, script)
        if args.runtime != "docker":
            (stack.opts.data_dir / "node" / "volumes" / sid / "emit.py").write_text(PROCESS_EMITTER)
        viewers: list[WsViewer] = []
        try:
            for count in counts:
                while len(viewers) < count:
                    grant = api.call("POST", f"/servers/{sid}/console-grant")
                    viewers.append(WsViewer(grant["url"], grant["username"], grant["password"],
                                            grant["client_id"], [grant["topics"]["console"]]))
                for rate in rates:
                    row = {"viewers": count, "lines_per_s": rate}
                    row["stellar"] = _run_console(stack, api, sid, args.runtime, rate, args.seconds, viewers)
                    row["baseline_broker"] = _run_baseline(stack, rate, args.seconds, count)
                    base, ours = row["baseline_broker"]["p50_ms"], row["stellar"]["p50_ms"]
                    row["p50_overhead_ms"] = round(ours - base, 2) if ours is not None and base is not None else None
                    rows.append(row)
                    print(f"console: {count} viewers, {rate}/s: {json.dumps(row)}", file=sys.stderr)
        finally:
            for v in viewers:
                v.close()
    result["runs"] = rows
    summary = "; ".join(
        f"{r['viewers']}v@{r['lines_per_s']}/s p50 {r['stellar']['p50_ms']} p99 {r['stellar']['p99_ms']} ms "
        f"loss {r['stellar']['loss_percent']}% (broker p50 {r['baseline_broker']['p50_ms']})" for r in rows)
    record(result, f"{args.runtime} runtime: {summary}", args)
    return 0
