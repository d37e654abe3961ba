"""Abuse limits and response hardening, through the API: sign-in, two-factor and password
reset limited per account and per IP, the per-user API budget, 429 with Retry-After, TOTP codes
refused on replay, and the security headers on every API answer. The limits are lowered for a
test through ``ratelimit.LIMITS`` (the stack runs the control plane in this process) and use an
hour-long window so that a window boundary cannot fall inside a test."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from chalice.test import Client
from chalicelib.services import ratelimit


def _post(stack, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{stack.urls['api']}{path}", json=body, headers=headers, timeout=15)


def _account(stack, password="Limits-Passw0rd"):
    email = f"lim-{uuid.uuid4().hex[:8]}@test.local"
    assert _post(stack, "/auth/signup", {"email": email, "password": password}).status_code == 201
    return email, password


@pytest.fixture()
def limits(monkeypatch):
    """Set limits for one test, in a window that will not roll over during it."""
    if 3600 - time.time() % 3600 < 120:
        time.sleep(3600 - time.time() % 3600 + 1)  # pragma: no cover - only in the last two minutes of an hour

    def set_(**values: int) -> None:
        for name, count in values.items():
            monkeypatch.setitem(ratelimit.LIMITS, name.replace("_", "."), ratelimit.Limit(count, 3600))
    return set_


def _assert_limited(r):
    assert r.status_code == 429, (r.status_code, r.text)
    assert r.json()["error"]["code"] == "rate_limited"
    assert 0 < int(r.headers["Retry-After"]) <= 3600


def test_failed_sign_ins_are_limited_per_account(stack, limits):
    limits(auth_account=3, auth_ip=1000)
    email, password = _account(stack)
    assert _post(stack, "/auth/login", {"email": email, "password": password}).status_code == 200  # not counted
    for _ in range(3):
        assert _post(stack, "/auth/login", {"email": email, "password": "Wrong-Passw0rd"}).status_code == 401
    _assert_limited(_post(stack, "/auth/login", {"email": email, "password": password}))  # even the right one
    other, pw = _account(stack)
    assert _post(stack, "/auth/login", {"email": other, "password": pw}).status_code == 200  # per account


def test_failed_sign_ins_are_limited_per_ip(stack, limits):
    limits(auth_account=1000, auth_ip=1)  # the hour window first: ``used`` reads the current window
    limits(auth_account=1000, auth_ip=ratelimit.used("auth.ip", "127.0.0.1") + 4)  # earlier tests' failures
    accounts = [_account(stack) for _ in range(3)]
    for email, _ in accounts:  # spread over accounts, as a credential-stuffing run would be
        assert _post(stack, "/auth/login", {"email": email, "password": "Wrong-Passw0rd"}).status_code == 401
    assert _post(stack, "/auth/login", {"email": accounts[0][0], "password": "Wrong-Passw0rd"}).status_code == 401
    fresh, pw = _account(stack)
    _assert_limited(_post(stack, "/auth/login", {"email": fresh, "password": pw}))


def test_password_reset_requests_are_limited(stack, limits):
    limits(reset_account=2, reset_ip=1000)
    email, _ = _account(stack)
    for _ in range(2):
        assert _post(stack, "/auth/password/forgot", {"email": email}).status_code == 202
    _assert_limited(_post(stack, "/auth/password/forgot", {"email": email}))
    _assert_limited(_post(stack, "/auth/password/reset", {"email": email, "code": "000000",
                                                          "password": "Reset-Passw0rd1"}))


def test_the_per_user_api_budget(stack, limits):
    limits(api_user=5, auth_account=1000, auth_ip=1000)
    heavy, pw = _account(stack)
    token = _post(stack, "/auth/login", {"email": heavy, "password": pw}).json()["access_token"]
    light, pw2 = _account(stack)
    other = _post(stack, "/auth/login", {"email": light, "password": pw2}).json()["access_token"]
    me = [requests.get(f"{stack.urls['api']}/me", headers={"Authorization": f"Bearer {token}"}, timeout=15)
          for _ in range(6)]
    assert [r.status_code for r in me[:5]] == [200] * 5
    _assert_limited(me[5])
    assert requests.get(f"{stack.urls['api']}/me", headers={"Authorization": f"Bearer {other}"},
                        timeout=15).status_code == 200  # the budget is per user


def test_a_two_factor_code_is_accepted_once(stack, limits):
    limits(auth_account=1000, auth_ip=1000)
    email, password = _account(stack)
    token = _post(stack, "/auth/login", {"email": email, "password": password}).json()["access_token"]
    _post(stack, "/me/totp/setup", {}, token)
    assert _post(stack, "/me/totp/verify", {"code": "314159"}, token).status_code == 200
    replay = _post(stack, "/me/totp/verify", {"code": "314159"}, token)
    assert replay.status_code == 422 and "code" in replay.json()["error"]["fields"]

    challenge = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    answer = {"email": email, "session": challenge["session"], "code": "271828"}
    assert _post(stack, "/auth/login/totp", answer).status_code == 200
    challenge = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    reused = _post(stack, "/auth/login/totp", {**answer, "session": challenge["session"]})
    assert reused.status_code == 422 and reused.json()["error"]["fields"] == {"code": "already used"}
    fresh = _post(stack, "/auth/login/totp", {**answer, "session": challenge["session"], "code": "161803"})
    assert fresh.status_code == 200, fresh.text


def test_two_factor_failures_are_limited(stack, limits):
    limits(auth_account=2, auth_ip=1000)
    email, password = _account(stack)
    token = _post(stack, "/auth/login", {"email": email, "password": password}).json()["access_token"]
    _post(stack, "/me/totp/setup", {}, token)
    assert _post(stack, "/me/totp/verify", {"code": "100001"}, token).status_code == 200
    session = _post(stack, "/auth/login", {"email": email, "password": password}).json()["session"]
    assert _post(stack, "/auth/login/totp", {"email": email, "session": session, "code": "100002"}).status_code == 200
    for _ in range(2):  # replays count as failures
        r = _post(stack, "/auth/login/totp", {"email": email, "session": session, "code": "100002"})
        assert r.status_code == 422
    _assert_limited(_post(stack, "/auth/login/totp", {"email": email, "session": session, "code": "100003"}))


@pytest.mark.parametrize("path", ["/health", "/me", "/servers/nope"])
def test_security_headers_on_every_api_answer(stack, path):
    r = requests.get(f"{stack.urls['api']}{path}", timeout=15)  # 200, 401, 401: success and errors alike
    assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["X-Content-Type-Options"] == "nosniff"  # once: the dev front does not add a second
    assert r.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in r.headers  # plain HTTP here


@pytest.mark.parametrize("path", ["/api/health", "/api/me"])
def test_the_app_itself_sets_them_and_hsts_behind_tls(stack, path):
    """What runs in Lambda is the app object: no dev front adds anything there. (waitress drops
    untrusted X-Forwarded-* headers, so TLS behind a proxy is shown through Chalice's client.)"""
    with Client(stack.app) as client:
        plain = client.http.get(path)
        tls = client.http.get(path, headers={"X-Forwarded-Proto": "https"})
    assert plain.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert plain.headers["X-Content-Type-Options"] == "nosniff" and plain.headers["Cache-Control"] == "no-store"
    assert "Strict-Transport-Security" not in plain.headers
    assert tls.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
