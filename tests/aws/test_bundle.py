"""The Lambda bundle built by functions/Makefile (what `sam build` runs) is complete: in a
bare interpreter with nothing but the bundle on its path, the app imports and answers."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bundle_imports_and_serves_in_a_bare_interpreter(tmp_path):
    bundle = tmp_path / "ApiFunction"
    wheel_platform = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}[platform.machine()]
    build = subprocess.run(
        ["make", "-s", "-C", str(REPO / "functions"), "build-ApiFunction", f"ARTIFACTS_DIR={bundle}",
         f"PLATFORM={wheel_platform}", f"PYTHON={sys.executable}"],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    assert (bundle / "stellar_protocol" / "topics.py").is_file()
    assert (bundle / "chalicelib" / "api" / "routing.py").is_file()

    event = {"resource": "/api/openapi.json", "path": "/api/openapi.json", "httpMethod": "GET",
             "headers": {}, "multiValueHeaders": {}, "queryStringParameters": None, "pathParameters": None,
             "multiValueQueryStringParameters": None,
             "stageVariables": None, "body": None, "isBase64Encoded": False,
             "requestContext": {"resourcePath": "/api/openapi.json", "httpMethod": "GET", "requestId": "r1",
                                "identity": {"sourceIp": "127.0.0.1"}, "stage": "prod"}}
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import app; "
        "print(json.dumps(app.app(json.loads(sys.argv[2]), None)))"
    )
    env = {"PATH": os.environ.get("PATH", ""), "AWS_DEFAULT_REGION": "us-east-1", "STELLAR_TABLE": "t",
           "STELLAR_USER_POOL_ID": "us-east-1_x", "STELLAR_APP_CLIENT_ID": "c", "AWS_XRAY_SDK_ENABLED": "false"}
    # -S: no site-packages, so every import must come from the bundle or the standard library.
    run = subprocess.run([sys.executable, "-I", "-S", "-c", script, str(bundle), json.dumps(event)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    response = json.loads(run.stdout.strip().splitlines()[-1])
    assert response["statusCode"] == 200
    doc = json.loads(response["body"])
    assert doc["openapi"].startswith("3.1") and "/api/servers" in doc["paths"]
