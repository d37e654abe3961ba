"""`stellar bench store`: the same operations timed on both store backends, printed as JSON.

For each backend: a server get, a list of 50 servers (one page), and a 3-item transaction
(server + allocation + audit entry). DynamoDB is moto in server mode (so its numbers measure
moto over HTTP, not AWS); PostgreSQL is the local server, through the pooled app role under RLS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

FUNCTIONS = Path(__file__).resolve().parents[3] / "functions"


def _measure(fn: Callable[[int], object], n: int) -> dict[str, float]:
    fn(-1)  # warm-up (connections, prepared statements)
    times = []
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        times.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - started
    times.sort()
    return {"n": n, "ops_per_s": round(n / total, 1), "p50_ms": round(statistics.median(times), 3),
            "p99_ms": round(times[min(n - 1, int(n * 0.99))], 3)}


def _scenario(store: Any, n: int) -> dict[str, Any]:
    from chalicelib.store.records import Allocation, AuditEntry, Location, Node, Server
    from stellar_protocol.messages import Port

    admin = store.as_admin("benchmark")
    tag = uuid.uuid4().hex[:8]
    loc = Location(id=f"bench-{tag}", name="bench")
    admin.create_location(loc)
    node = Node(id=f"bench-{tag}", name="bench", location_id=loc.id, memory_mb=1 << 20, disk_mb=1 << 20,
                port_start=1024, port_end=65000)
    admin.put_node(node)
    owner = f"owner-{tag}"
    me = store.as_user(owner)
    port = iter(range(1024, 65000))

    def create(i: int) -> None:
        sid = f"{tag}-{i + 1:06d}"
        p = next(port)
        server = Server(id=sid, name="bench", owner_id=owner, node_id=node.id, location_id=loc.id,
                        blueprint_id="demo", image="img", variables={"A": "1"}, memory_mb=512, disk_mb=1024,
                        cpu_percent=100, ports=[Port(ip=node.address, port=p)])
        me.create_server(server, [Allocation(node_id=node.id, ip=node.address, port=p, server_id=sid)],
                         AuditEntry(actor_id=owner, action="server.create", server_id=sid))

    out: dict[str, Any] = {"transaction_3_items": _measure(create, n)}
    first = f"{tag}-000001"
    out["get"] = _measure(lambda _i: me.get_server(first), n)

    def page(_i: int) -> None:
        got = me.list_servers_owned(owner, 50)
        assert len(got) == 50, len(got)

    out["list_50"] = _measure(page, max(10, n // 4))
    return out


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench store", description=__doc__)
    parser.add_argument("-n", "--iterations", type=int, default=200, help="operations per measurement (>= 50)")
    parser.add_argument("--database-admin-url", default=os.environ.get(
        "STELLAR_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--backend", choices=["both", "dynamodb", "postgres"], default="both")
    args = parser.parse_args(argv)
    n = max(50, args.iterations)
    if str(FUNCTIONS) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS))
    result: dict[str, Any] = {"iterations": n}
    if args.backend in {"both", "dynamodb"}:
        result["dynamodb"] = _dynamodb(n)
    if args.backend in {"both", "postgres"}:
        result["postgres"] = _postgres(n, args.database_admin_url)
    print(json.dumps(result, indent=2))
    return 0


def _dynamodb(n: int) -> dict[str, Any]:
    import logging

    from chalicelib.store.dynamo import DynamoStore
    from moto.server import ThreadedMotoServer

    from stellar.devstack import aws

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
        res = aws.provision(endpoint, prefix=f"bench-{uuid.uuid4().hex[:6]}")
        out = _scenario(DynamoStore(res.table, res.region, host=endpoint), n)
        out["engine"] = "moto (server mode)"
        return out
    finally:
        server.stop()


def _postgres(n: int, admin_dsn: str) -> dict[str, Any]:
    from chalicelib.store import migrate
    from chalicelib.store.postgres import PostgresStore

    name = f"stellar_bench_{uuid.uuid4().hex[:8]}"
    owner = migrate.create_database(admin_dsn, name)
    try:
        migrate.migrate(owner)
        store = PostgresStore(migrate.app_dsn(owner), max_size=4)
        try:
            out = _scenario(store, n)
        finally:
            store.close()
        out["engine"] = "PostgreSQL, app role under RLS, pooled"
        return out
    finally:
        migrate.drop_database(admin_dsn, name)
