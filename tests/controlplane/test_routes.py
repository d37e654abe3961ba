"""The route table is the source of the API description and of its protection."""

from __future__ import annotations

import requests
from chalicelib.api.routing import ROUTE_META

PUBLIC = {("GET", "/api/health"), ("GET", "/api/openapi.json"), ("POST", "/api/auth/login"),
          ("POST", "/api/auth/login/totp"), ("POST", "/api/auth/refresh"), ("POST", "/api/auth/signup"),
          ("POST", "/api/auth/confirm"), ("POST", "/api/auth/password/forgot"), ("POST", "/api/auth/password/reset"),
          ("POST", "/api/nodes/register")}  # authenticated by its one-time enrollment token


def test_every_route_is_declared_and_only_known_routes_are_public(stack):
    public = set()
    for path, methods in stack.app.routes.items():
        for method, entry in methods.items():
            meta = ROUTE_META.get(entry.view_function)
            assert meta is not None, f"{method} {path} bypasses api_route"
            if meta.public:
                public.add((method, path))
            if "{server_id}" in path and not meta.admin:  # admins hold every node: their routes name none
                assert meta.permission is not None, f"{method} {path} has no permission node"
    assert public == PUBLIC


def test_every_non_public_route_refuses_anonymous_callers(stack):
    for path, methods in stack.app.routes.items():
        for method in methods:
            if (method, path) in PUBLIC:
                continue
            url = stack.urls["api"].removesuffix("/api") + path.replace("{server_id}", "abc123")
            r = requests.request(method, url, json={}, timeout=10)
            assert r.status_code == 401, (method, path, r.status_code)


def test_openapi_is_generated_from_the_route_table(stack):
    doc = requests.get(stack.urls["openapi"], timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    actual = {(m, p) for p, methods in stack.app.routes.items() for m in methods}
    assert documented == actual
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            expected = [] if (method.upper(), path) in PUBLIC else [{"bearerAuth": []}]
            assert op["security"] == expected, (method, path)
    assert doc["paths"]["/api/servers/{server_id}/power"]["post"]["x-permission"] == "control.{action}"
    assert "CreateServer" in doc["components"]["schemas"]


def test_health_reports_store_broker_and_nodes(stack):
    body = requests.get(f"{stack.urls['api']}/health", timeout=10).json()
    assert body["store"] == "ok"
    assert body["broker"] == "ok"
    assert body["nodes"]["total"] == 1


def test_security_headers_on_api_and_web(stack):
    r = requests.get(f"{stack.urls['api']}/health", timeout=10)
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-store"
