"""`stellar bench command`: API power start → the server running, against bare Docker.

A demo server created through the API gets a ``game.sh`` that prints its ready line at once,
so the measurement is our path (HTTP → control plane → MQTT → agent → Docker → ready line →
state over MQTT to a WebSocket viewer), not the game's boot. Baselines in the same run,
alternating with ours so drift hits both alike: the same image's container created, started
and its first line read with the Docker SDK (what the agent does per start), and a bare
``docker start`` of an already created container (until the API call returns).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

from .common import add_record_args, bench_stack, create_server, pct, record, replace_game, result_base
from .console import WsViewer

READY = '#!/bin/sh\necho "[Server] Done! Server is ready"\nexec cat\n'


def _bare_docker_start(engine: Any, image: str, node_id: str) -> float:
    container = engine.containers.create(image, ["sh", "-c", "exec cat"], stdin_open=True,
                                         labels={"stellar.node": node_id, "stellar.bench": "bare"})
    try:
        t0 = time.perf_counter()
        container.start()
        return time.perf_counter() - t0
    finally:
        container.remove(force=True)


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench command", description=__doc__)
    parser.add_argument("--starts", type=int, default=10, help="samples of each")
    add_record_args(parser)
    args = parser.parse_args(argv)

    import docker

    from stellar.bench.agent import _bare_start
    from stellar.images import ensure_demo_image

    image = ensure_demo_image(progress=lambda _m: None)
    engine = docker.from_env(timeout=120)
    result = result_base("command", starts=args.starts, runtime="docker")
    ours: list[float] = []
    api_return: list[float] = []
    bare_first_line: list[float] = []
    bare_start: list[float] = []
    try:
        with bench_stack(runtime="docker") as (stack, api, _token):
            sid = create_server(api, "Command bench")
            replace_game(stack, sid, READY)
            grant = api.call("POST", f"/servers/{sid}/console-grant")
            viewer = WsViewer(grant["url"], grant["username"], grant["password"], grant["client_id"],
                              [grant["topics"]["state"]])
            states: list[tuple[float, str]] = []
            viewer.client.on_message = lambda _c, _u, m: states.append((time.perf_counter(), m.payload.decode()))
            try:
                for _ in range(args.starts):
                    states.clear()
                    t0 = time.perf_counter()
                    api.call("POST", f"/servers/{sid}/power", {"action": "start"})
                    api_return.append(time.perf_counter() - t0)
                    deadline = time.monotonic() + 60
                    while not any('"running"' in s for _t, s in states):
                        if time.monotonic() > deadline:
                            raise TimeoutError("no running state")
                        time.sleep(0.002)
                    ours.append(next(t for t, s in states if '"running"' in s) - t0)
                    api.call("POST", f"/servers/{sid}/power", {"action": "kill"})
                    api.wait_status(sid, "offline", 60)
                    bare_first_line.append(_bare_start(engine, image, stack.opts.node_id))
                    bare_start.append(_bare_docker_start(engine, image, stack.opts.node_id))
            finally:
                viewer.close()
    finally:
        engine.close()

    def ms(values: list[float]) -> dict[str, Any]:
        return {"p50_ms": round(statistics.median(values) * 1000, 1), "p99_ms": pct([v * 1000 for v in values], 99)}

    result["api_start_to_running_seen_by_viewer"] = ms(ours)
    result["api_call_returned"] = ms(api_return)
    result["baseline_docker_create_start_first_line"] = ms(bare_first_line)
    result["baseline_bare_docker_start"] = ms(bare_start)
    result["overhead_vs_create_start_first_line_ms_p50"] = round(
        (statistics.median(ours) - statistics.median(bare_first_line)) * 1000, 1)
    result["overhead_vs_bare_docker_start_ms_p50"] = round(
        (statistics.median(ours) - statistics.median(bare_start)) * 1000, 1)
    print(f"command: done, {len(ours)} samples", file=sys.stderr)
    r = result
    record(result, f"API start → running p50 {r['api_start_to_running_seen_by_viewer']['p50_ms']} ms; "
                   f"docker create+start+first line p50 {r['baseline_docker_create_start_first_line']['p50_ms']} ms; "
                   f"bare docker start p50 {r['baseline_bare_docker_start']['p50_ms']} ms; overhead "
                   f"{r['overhead_vs_create_start_first_line_ms_p50']} ms vs create+start+first line", args)
    return 0
