"""Shared pieces of the benchmarks: machine details, percentiles, the results file, a stack.

Every scenario prints one JSON object and appends one row to ``docs/benchmarks.md`` (unless
``--no-record``), so results are comparable only together with the machine they came from.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]
DOCS = REPO / "docs" / "benchmarks.md"
FUNCTIONS = REPO / "functions"

_HEADER = """# Benchmarks

Produced by `stellar bench <scenario>`; every run appends one row (newest last). Each scenario measures
its own baseline in the same run, so compare ratios and overheads, not absolute numbers across machines.
The full JSON of a run is what the command prints; the summary column keeps the headline figures.

| date (UTC) | scenario | machine | summary |
|---|---|---|---|
"""


def machine() -> dict[str, Any]:
    """CPU model, cores, memory, Python and date: what a number needs to be read."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass
    mem_gb = None
    try:
        mem_gb = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}",
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return round(ordered[rank], 2)


def add_record_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    parser.add_argument("--record-to", type=Path, default=DOCS, help="results file (default docs/benchmarks.md)")


def record(result: dict[str, Any], summary: str, args: argparse.Namespace) -> None:
    """Print the JSON and append one row (scenario, machine, summary) to the results file."""
    print(json.dumps(result, indent=2))
    if args.no_record:
        return
    m = result["machine"]
    path: Path = args.record_to
    if not path.exists() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_HEADER)
    where = f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, Python {m['python']}"
    row = f"| {m['date']} | {result['scenario']} | {where} | {summary.replace('|', '/')} |\n"
    with path.open("a") as fh:
        fh.write(row)


def result_base(scenario: str, **params: Any) -> dict[str, Any]:
    return {"scenario": scenario, "machine": machine(), "params": params}


class Api:
    """A signed-in API user over HTTP (requests), as the web panel is."""

    def __init__(self, base: str, token: str) -> None:
        import requests

        self.base = base
        self.session = requests.Session()
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body: Any = None, timeout: float = 15) -> Any:
        r = self.session.request(method, f"{self.base}{path}", json=body, headers=self.headers, timeout=timeout)
        if r.status_code >= 300:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    def wait_status(self, sid: str, status: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            last = self.call("GET", f"/servers/{sid}")
            if last["status"] == status:
                return last
            time.sleep(0.1)
        raise TimeoutError(f"server {sid} never reached {status}; last {last}")


@contextmanager
def bench_stack(runtime: str = "process", node_ports: tuple[int, int] = (32000, 32099),
                node_memory_mb: int = 65536) -> Iterator[tuple[Any, Api, str]]:
    """A whole DevStack on free ports in a temp dir, plus a signed-in user: (stack, api, token)."""
    import logging

    import requests

    from stellar.devstack import aws
    from stellar.devstack.stack import DevStack, StackOptions, free_port

    logging.getLogger().setLevel(logging.ERROR)
    if str(FUNCTIONS) not in sys.path:
        sys.path.insert(0, str(FUNCTIONS))
    os.environ.pop("AWS_ENDPOINT_URL", None)
    work = Path(tempfile.mkdtemp(prefix="stellar-bench-"))
    opts = StackOptions(data_dir=work / "stack", http_port=free_port(), aws_port=free_port(),
                        mqtt_port=free_port(), ws_port=free_port(), broker="auto", runtime=runtime,
                        admin_email="admin@bench.local", admin_password="AdminPassw0rd", stop_timeout_s=10,
                        node_ports=node_ports, node_memory_mb=node_memory_mb,
                        node_id=f"b{uuid.uuid4().hex[:10]}")
    stack = DevStack(opts, progress=lambda _m: None)
    try:
        stack.start()
        assert stack.resources is not None
        email, password = f"bench-{uuid.uuid4().hex[:6]}@bench.local", "Passw0rdPassw0rd"
        aws.ensure_user(stack.resources, email, password)
        r = requests.post(f"{stack.urls['api']}/auth/login", json={"email": email, "password": password}, timeout=15)
        r.raise_for_status()
        token = r.json()["access_token"]
        yield stack, Api(stack.urls["api"], token), token
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)


def create_server(api: Api, name: str = "Bench") -> str:
    """Create a demo server through the API and wait until its install finished."""
    sid = api.call("POST", "/servers", {"name": name, "blueprint_id": "demo", "location_id": "local",
                                        "variables": {"SERVER_NAME": "Bench"}})["id"]
    api.wait_status(sid, "offline")
    return str(sid)


def replace_game(stack: Any, sid: str, script: str) -> None:
    """Swap the demo's game.sh in the server's volume for a purpose-built one (next start uses it)."""
    path = stack.opts.data_dir / "node" / "volumes" / sid / "game.sh"
    path.write_text(script)
    path.chmod(0o755)
