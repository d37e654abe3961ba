"""Account flows through the API against moto's Cognito: sign-up, refresh, sign-out
everywhere, password change, and two-factor at sign-in. moto accepts any TOTP code, so
these prove the flow and our handling of it, not the TOTP arithmetic (Cognito does that)."""

from __future__ import annotations

import time
import uuid

import requests


def _post(stack, path, body, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.post(f"{stack.urls['api']}{path}", json=body, headers=headers, timeout=15)


def _me(stack, token):
    return requests.get(f"{stack.urls['api']}/me", headers={"Authorization": f"Bearer {token}"}, timeout=15)


def _new_account(stack, password="Sign-up-Passw0rd"):
    email = f"new-{uuid.uuid4().hex[:8]}@test.local"
    r = _post(stack, "/auth/signup", {"email": email, "password": password})
    assert r.status_code == 201, r.text
    assert r.json()["confirmed"] is True  # dev auto-confirm
    return email, password


def test_sign_up_then_sign_in(stack):
    email, password = _new_account(stack)
    tokens = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    assert _me(stack, tokens["access_token"]).json()["email"] == email
    again = _post(stack, "/auth/signup", {"email": email, "password": password})
    assert again.status_code == 409 and "email" in again.json()["error"]["fields"]
    weak = _post(stack, "/auth/signup", {"email": f"x{email}", "password": "short"})
    assert weak.status_code == 422 and "password" in weak.json()["error"]["fields"]
    bad_email = _post(stack, "/auth/signup", {"email": "not-an-email", "password": password})
    assert bad_email.status_code == 422 and "email" in bad_email.json()["error"]["fields"]


def test_refresh_gives_a_working_access_token(stack):
    email, password = _new_account(stack)
    tokens = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    fresh = _post(stack, "/auth/refresh", {"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200, fresh.text
    assert _me(stack, fresh.json()["access_token"]).status_code == 200
    assert _post(stack, "/auth/refresh", {"refresh_token": "garbage"}).status_code == 401


def test_sign_out_everywhere_kills_existing_tokens(stack):
    email, password = _new_account(stack)
    tokens = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    assert _me(stack, tokens["access_token"]).status_code == 200
    time.sleep(1.1)  # iat has one-second resolution
    assert _post(stack, "/auth/logout", {}, tokens["access_token"]).status_code == 200
    r = _me(stack, tokens["access_token"])
    assert r.status_code == 401 and "signed out" in r.json()["error"]["message"]
    assert _post(stack, "/auth/refresh", {"refresh_token": tokens["refresh_token"]}).status_code == 401
    time.sleep(1.1)
    again = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    assert _me(stack, again["access_token"]).status_code == 200


def test_change_password(stack):
    email, password = _new_account(stack)
    token = _post(stack, "/auth/login", {"email": email, "password": password}).json()["access_token"]
    wrong = _post(stack, "/me/password", {"current_password": "Wrong-Passw0rd", "new_password": "Next-Passw0rd1"},
                  token)
    assert wrong.status_code == 422 and "current_password" in wrong.json()["error"]["fields"]
    ok = _post(stack, "/me/password", {"current_password": password, "new_password": "Next-Passw0rd1"}, token)
    assert ok.status_code == 200, ok.text
    assert _post(stack, "/auth/login", {"email": email, "password": password}).status_code == 401
    assert _post(stack, "/auth/login", {"email": email, "password": "Next-Passw0rd1"}).status_code == 200


def test_two_factor_is_enforced_at_sign_in(stack):
    email, password = _new_account(stack)
    token = _post(stack, "/auth/login", {"email": email, "password": password}).json()["access_token"]
    setup = _post(stack, "/me/totp/setup", {}, token).json()
    assert setup["secret"] and setup["otpauth_uri"].startswith("otpauth://totp/StellarStack")
    assert _post(stack, "/me/totp/verify", {"code": "12345"}, token).status_code == 422  # not 6 digits
    assert _post(stack, "/me/totp/verify", {"code": "123456"}, token).status_code == 200

    first = _post(stack, "/auth/login", {"email": email, "password": password}).json()
    assert first.get("challenge") == "totp" and "access_token" not in first
    done = _post(stack, "/auth/login/totp", {"email": email, "session": first["session"], "code": "654321"})
    assert done.status_code == 200, done.text
    assert _me(stack, done.json()["access_token"]).status_code == 200

    r = requests.delete(f"{stack.urls['api']}/me/totp", headers={"Authorization": f"Bearer {token}"}, timeout=15)
    assert r.status_code == 200
    assert "access_token" in _post(stack, "/auth/login", {"email": email, "password": password}).json()


def test_password_reset_request_does_not_reveal_accounts(stack):
    known, _ = _new_account(stack)
    for email in (known, f"nobody-{uuid.uuid4().hex[:6]}@test.local"):
        r = _post(stack, "/auth/password/forgot", {"email": email})
        assert r.status_code == 202 and r.json() == {"sent": True}
    # moto does not check reset codes (Cognito does); what we can prove is the flow itself.
    r = _post(stack, "/auth/password/reset", {"email": known, "code": "000000", "password": "Reset-Passw0rd1"})
    assert r.status_code == 200, r.text
    assert _post(stack, "/auth/login", {"email": known, "password": "Reset-Passw0rd1"}).status_code == 200
    weak = _post(stack, "/auth/password/reset", {"email": known, "code": "000000", "password": "short"})
    assert weak.status_code == 422 and "password" in weak.json()["error"]["fields"]
