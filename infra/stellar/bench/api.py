"""`stellar bench api`: authenticated list (50 servers) and get, over HTTP and in-process.

The stack's waitress front (16 threads) serves the Chalice app; 1, 10 and 50 concurrent
clients each send requests back to back for a fixed time. Every answer is classified (2xx,
4xx, 429, 5xx, timeout, connection error) and a run with more than 1 % non-2xx is reported
as failed rather than as throughput. The baseline in the same run is the same request
through Chalice's test client in this process (no HTTP, no waitress): the per-request cost
of the app itself, which over HTTP is shared with everything around it.

Every authenticated request spends from a per-user budget (``ratelimit.LIMITS["api.user"]``),
and all clients here are one user, so the run is made twice: ``deployed`` (the limit as
shipped: expect 429s, reported as failed) and ``lifted`` (the budget raised in this process,
its per-request store write still paid), which is the throughput of the route itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any

from .common import add_record_args, bench_stack, pct, record, result_base


def _seed(stack: Any, user_id: str, count: int) -> list[str]:
    """``count`` servers owned by the user, written straight to the store (no installs to wait for)."""
    from chalicelib.store import get_store
    from chalicelib.store.records import Allocation, AuditEntry, Server, new_id
    from stellar_protocol.messages import Port

    store = get_store().as_user(user_id)
    node = get_store().as_admin("bench").get_node(stack.opts.node_id)
    ids = []
    for i in range(count):
        sid, port = new_id(), node.port_start + i
        server = Server(id=sid, name=f"bench {i}", owner_id=user_id, node_id=node.id, location_id=node.location_id,
                        blueprint_id="demo", image="stellarstack/demo-game:1", variables={"SERVER_NAME": "B"},
                        memory_mb=64, disk_mb=64, cpu_percent=50, ports=[Port(ip=node.address, port=port)])
        store.create_server(server, [Allocation(node_id=node.id, ip=node.address, port=port, server_id=sid)],
                            AuditEntry(actor_id=user_id, action="server.create", server_id=sid))
        ids.append(sid)
    return ids


def _load(url: str, headers: dict[str, str], clients: int, seconds: float, check: Any) -> dict[str, Any]:
    import requests

    counts = {"2xx": 0, "4xx": 0, "429": 0, "5xx": 0, "timeout": 0, "error": 0, "wrong_body": 0}
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        local = dict.fromkeys(counts, 0)
        while time.monotonic() < stop_at:
            t0 = time.perf_counter()
            try:
                r = session.get(url, headers=headers, timeout=10)
            except requests.Timeout:
                local["timeout"] += 1
                continue
            except requests.RequestException:
                local["error"] += 1
                continue
            elapsed = (time.perf_counter() - t0) * 1000
            code = r.status_code
            key = "429" if code == 429 else "2xx" if code < 300 else "4xx" if code < 500 else "5xx"
            if key == "2xx" and not check(r.json()):
                key = "wrong_body"
            local[key] += 1
            if key == "2xx":
                mine.append(elapsed)
        session.close()
        with lock:
            latencies.extend(mine)
            for k, v in local.items():
                counts[k] += v

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    span = time.perf_counter() - started
    total = sum(counts.values())
    bad = total - counts["2xx"]
    failed = total == 0 or bad / total > 0.01
    out: dict[str, Any] = {"clients": clients, "requests": total, "counts": counts,
                           "non_2xx_percent": round(100 * bad / total, 2) if total else None,
                           "failed": failed}
    if not failed:
        out.update(requests_per_s=round(counts["2xx"] / span, 1), p50_ms=pct(latencies, 50), p99_ms=pct(latencies, 99))
    return out


def _in_process(app: Any, path: str, headers: dict[str, str], n: int, check: Any) -> dict[str, Any]:
    from chalice.test import Client

    times = []
    with Client(app) as client:
        for _ in range(n + 1):
            t0 = time.perf_counter()
            r = client.http.get(path, headers=headers)
            times.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200 or not check(json.loads(r.body)):
                raise RuntimeError(f"in-process {path}: {r.status_code}")
    times = times[1:]  # the first warms caches (JWKS, connections)
    return {"n": n, "p50_ms": pct(times, 50), "p99_ms": pct(times, 99)}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench api", description=__doc__)
    parser.add_argument("--clients", default="1,10,50", help="concurrency levels, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each load run")
    parser.add_argument("--servers", type=int, default=50, help="servers the user owns (the list size)")
    parser.add_argument("--in-process", type=int, default=200, help="in-process requests per route")
    parser.add_argument("--limits", choices=["both", "deployed", "lifted"], default="both",
                        help="per-user request budget as shipped, lifted, or both (deployed first)")
    add_record_args(parser)
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",") if c]
    result = result_base("api", clients=levels, seconds=args.seconds, servers=args.servers, http_threads=16)
    with bench_stack(runtime="process", node_ports=(32000, 32000 + max(args.servers, 1) + 10)) as (stack, api, token):
        me = api.call("GET", "/me")
        ids = _seed(stack, me["id"], args.servers)
        headers = {"Authorization": f"Bearer {token}"}
        routes = {
            "list": ("/servers", lambda body: isinstance(body, list) and len(body) == args.servers),
            "get": (f"/servers/{ids[0]}", lambda body: body.get("id") == ids[0]),
        }
        from chalicelib.services import ratelimit

        shipped = ratelimit.LIMITS["api.user"]
        modes = ["deployed", "lifted"] if args.limits == "both" else [args.limits]
        for mode in modes:
            ratelimit.LIMITS["api.user"] = shipped if mode == "deployed" else ratelimit.Limit(10**9, 60)
            result[mode] = {}
            for name, (path, check) in routes.items():
                section: dict[str, Any] = {"http": [], "in_process": None if mode == "deployed" else
                                           _in_process(stack.app, f"/api{path}", headers, args.in_process, check)}
                for clients in levels:
                    row = _load(f"{stack.urls['api']}{path}", headers, clients, args.seconds, check)
                    section["http"].append(row)
                    print(f"api {mode} {name} x{clients}: {json.dumps(row)}", file=sys.stderr)
                result[mode][name] = section
        ratelimit.LIMITS["api.user"] = shipped
        result["api_user_limit"] = {"count": shipped.count, "window_s": shipped.window_s}

    def line(mode: str, name: str) -> str:
        sec = result[mode][name]
        parts = [f"{name}:" + (f" in-process p50 {sec['in_process']['p50_ms']} ms" if sec["in_process"] else "")]
        for row in sec["http"]:
            if row["failed"]:
                parts.append(f"x{row['clients']} FAILED ({row['non_2xx_percent']}% non-2xx: {row['counts']})")
            else:
                parts.append(f"x{row['clients']} {row['requests_per_s']} req/s "
                             f"p50 {row['p50_ms']} p99 {row['p99_ms']} ms")
        return ", ".join(parts)

    summary = "; ".join(f"[{mode}] {line(mode, 'list')}; {line(mode, 'get')}" for mode in modes)
    record(result, f"{args.servers} servers, one user, 16 HTTP threads; {summary}", args)
    return 0
