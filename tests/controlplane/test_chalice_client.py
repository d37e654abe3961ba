"""The same gate and validation through Chalice's own test client (no HTTP server): what
runs in Lambda is the app object, and it must refuse and accept exactly as over HTTP."""

from __future__ import annotations

import json

from chalice.test import Client


def test_app_enforces_tokens_without_the_http_front(stack, owner):
    with Client(stack.app) as client:
        assert client.http.get("/api/me").status_code == 401
        assert client.http.get("/api/me", headers={"Authorization": "Bearer x.y.z"}).status_code == 401
        ok = client.http.get("/api/me", headers={"Authorization": f"Bearer {owner.tokens['access_token']}"})
        assert ok.status_code == 200 and json.loads(ok.body)["id"] == owner.id


def test_app_validates_bodies_and_hides_other_users_servers(stack, owner, stranger):
    with Client(stack.app) as client:
        headers = {"Authorization": f"Bearer {owner.tokens['access_token']}", "Content-Type": "application/json"}
        bad = client.http.post("/api/servers", headers=headers, body=json.dumps({"name": "x"}))
        assert bad.status_code == 422
        fields = json.loads(bad.body)["error"]["fields"]
        assert {"blueprint_id", "location_id"} <= set(fields)
        created = client.http.post("/api/servers", headers=headers, body=json.dumps(
            {"name": "Chalice", "blueprint_id": "demo", "location_id": "local"}))
        assert created.status_code == 201
        sid = json.loads(created.body)["id"]
        theirs = {"Authorization": f"Bearer {stranger.tokens['access_token']}"}
        assert client.http.get(f"/api/servers/{sid}", headers=theirs).status_code == 404
        assert client.http.get(f"/api/servers/{sid}", headers=headers).status_code == 200
        assert client.http.delete(f"/api/servers/{sid}", headers=headers).status_code == 202
