"""`stellar bench coldstart`: import-to-ready time of the API function in a fresh interpreter.

Each sample is a new Python process that, as Lambda does, imports ``app`` and hands it one
API Gateway proxy event (``GET /api/openapi.json``: public, no AWS call, so nothing but our
own start-up is timed). Tracing on (``AWS_XRAY_SDK_ENABLED=true``, ``STELLAR_TRACING=1``: the
X-Ray SDK is imported, configured and patches boto3) against off. Baseline in the same run,
interleaved: the bare interpreter (``python -c pass``), the floor no function can go under.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from .common import FUNCTIONS, add_record_args, record, result_base

CHILD = r"""
import json, time
t0 = time.perf_counter()
import app
t1 = time.perf_counter()
event = {"resource": "/api/openapi.json", "path": "/api/openapi.json", "httpMethod": "GET",
         "headers": {"Host": "localhost"}, "multiValueHeaders": {"Host": ["localhost"]},
         "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
         "stageVariables": None, "body": None, "isBase64Encoded": False,
         "requestContext": {"resourcePath": "/api/openapi.json", "httpMethod": "GET", "requestId": "cold",
                            "stage": "api", "identity": {"sourceIp": "127.0.0.1"}}}
class Context:
    function_name = "stellarstack-api"; memory_limit_in_mb = 512; aws_request_id = "cold"
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:stellarstack-api"
    def get_remaining_time_in_millis(self): return 30000
resp = app.app(event, Context())
t2 = time.perf_counter()
from chalicelib import tracing
print(json.dumps({"import_ms": (t1 - t0) * 1000, "first_request_ms": (t2 - t1) * 1000,
                  "status": resp["statusCode"], "tracing": tracing.enabled()}))
"""


def _env(tracing: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_XRAY", "STELLAR_", "_X_AMZN"))}
    env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
               AWS_LAMBDA_FUNCTION_NAME="stellarstack-api", STELLAR_TABLE="bench", STELLAR_USER_POOL_ID="us-east-1_x",
               STELLAR_APP_CLIENT_ID="x", PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(FUNCTIONS), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if tracing:
        env.update(AWS_XRAY_SDK_ENABLED="true", STELLAR_TRACING="1", AWS_XRAY_DAEMON_ADDRESS="127.0.0.1:2000",
                   _X_AMZN_TRACE_ID="Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
    else:
        env.update(AWS_XRAY_SDK_ENABLED="false", STELLAR_TRACING="0")
    return env


def _sample(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=120,
                          cwd=str(FUNCTIONS))
    wall = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        raise RuntimeError(f"cold start child failed: {proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{\"import_ms\"")]
    return wall, json.loads(lines[-1]) if lines else {}


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stellar bench coldstart", description=__doc__)
    parser.add_argument("-n", "--samples", type=int, default=7, help="fresh interpreters per variant")
    add_record_args(parser)
    args = parser.parse_args(argv)
    result = result_base("coldstart", samples=args.samples)
    walls: dict[str, list[float]] = {"bare_interpreter": [], "tracing_off": [], "tracing_on": []}
    parts: dict[str, list[dict[str, Any]]] = {"tracing_off": [], "tracing_on": []}
    for _ in range(args.samples):  # interleaved, so drift on a noisy machine hits all three alike
        walls["bare_interpreter"].append(_sample(["-c", "pass"], _env(False))[0])
        for name, on in (("tracing_off", False), ("tracing_on", True)):
            wall, inner = _sample(["-c", CHILD], _env(on))
            if inner.get("status") != 200 or inner.get("tracing") is not on:
                raise RuntimeError(f"cold start {name}: unexpected child result {inner}")
            walls[name].append(wall)
            parts[name].append(inner)
    for name, values in walls.items():
        row: dict[str, Any] = {"process_wall_ms_p50": round(statistics.median(values), 1),
                               "process_wall_ms_max": round(max(values), 1)}
        if name in parts:
            row["import_ms_p50"] = round(statistics.median(p["import_ms"] for p in parts[name]), 1)
            row["first_request_ms_p50"] = round(statistics.median(p["first_request_ms"] for p in parts[name]), 1)
            row["import_to_ready_ms_p50"] = round(statistics.median(
                p["import_ms"] + p["first_request_ms"] for p in parts[name]), 1)
        result[name] = row
    off, on, bare = result["tracing_off"], result["tracing_on"], result["bare_interpreter"]
    result["tracing_cost_ms_p50"] = round(on["import_to_ready_ms_p50"] - off["import_to_ready_ms_p50"], 1)
    record(result, f"import-to-ready p50: tracing off {off['import_to_ready_ms_p50']} ms, on "
                   f"{on['import_to_ready_ms_p50']} ms (+{result['tracing_cost_ms_p50']}); process wall p50 off "
                   f"{off['process_wall_ms_p50']} / on {on['process_wall_ms_p50']} / bare interpreter "
                   f"{bare['process_wall_ms_p50']} ms", args)
    return 0
