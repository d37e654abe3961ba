"""User administration through /api/admin/users against the local stack (Cognito in moto, the
store, the API's own token checks): create and invite, suspend, delete with server transfer, admin."""

from __future__ import annotations

import math
import time
import uuid

import pytest
import requests
from chalicelib.store import get_store

PASSWORD = "Passw0rdPassw0rd"


@pytest.fixture(scope="module")
def admin(make_user):
    return make_user(admin=True)


def _email() -> str:
    return f"adm-{uuid.uuid4().hex[:8]}@test.local"


def _login(base: str, email: str, password: str = PASSWORD) -> requests.Response:
    return requests.post(f"{base}/auth/login", json={"email": email, "password": password}, timeout=10)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _past_cutoff(user_id: str) -> None:
    """Token ``iat`` has whole seconds, so one issued in the cut-off's own second is refused (it may
    predate the cut-off): sign in again only once that second is over."""
    cutoff = get_store().as_admin("test").get_user(user_id).tokens_valid_after
    assert cutoff is not None
    time.sleep(max(0.0, math.ceil(cutoff) - time.time() + 0.05))


def _create(admin, **body) -> dict:
    r = admin.post("/admin/users", {"email": _email(), **body})
    assert r.status_code == 201, r.text
    return r.json()


def test_create_with_password_and_invite(admin, owner):
    made = _create(admin, password=PASSWORD)
    assert made["admin"] is False and made["suspended"] is False
    assert _login(admin.base, made["email"]).status_code == 200  # ready at once
    assert admin.get(f"/admin/users/{made['id']}").json()["email"] == made["email"]

    invited = _create(admin)  # no password: Cognito mails a temporary one
    assert admin.get(f"/admin/users/{invited['id']}").status_code == 200
    assert _login(admin.base, invited["email"]).status_code != 200  # nobody knows its password yet

    assert owner.post("/admin/users", {"email": _email(), "password": PASSWORD}).status_code == 404
    bad = admin.post("/admin/users", {"email": "not-an-email", "password": PASSWORD})
    assert bad.status_code == 422 and "email" in bad.json()["error"]["fields"]


def test_suspension_refuses_tokens_and_sign_in(admin):
    made = _create(admin, password=PASSWORD)
    token = _login(admin.base, made["email"]).json()["access_token"]
    assert requests.get(f"{admin.base}/servers", headers=_bearer(token), timeout=10).status_code == 200

    r = admin.post(f"/admin/users/{made['id']}/suspend")
    assert r.status_code == 200 and r.json()["suspended"] is True, r.text
    assert requests.get(f"{admin.base}/servers", headers=_bearer(token), timeout=10).status_code == 401
    # moto's Cognito refuses a disabled user's sign-in, as Cognito does
    assert _login(admin.base, made["email"]).status_code == 401

    assert admin.post(f"/admin/users/{made['id']}/unsuspend").json()["suspended"] is False
    _past_cutoff(made["id"])
    fresh = _login(admin.base, made["email"])
    assert fresh.status_code == 200, fresh.text
    assert requests.get(f"{admin.base}/servers", headers=_bearer(fresh.json()["access_token"]),
                        timeout=10).status_code == 200
    # a token from before the suspension stays refused: lifting it does not revive old sessions
    assert requests.get(f"{admin.base}/servers", headers=_bearer(token), timeout=10).status_code == 401

    r = admin.post(f"/admin/users/{admin.id}/suspend")
    assert r.status_code == 409 and r.json()["error"]["code"] == "self"


def test_delete_refused_while_owning_servers_unless_transferred(admin, make_user):
    leaving, heir = make_user(), make_user()
    sid = leaving.post("/servers", {"name": "Heirloom", "blueprint_id": "demo", "location_id": "local"}).json()["id"]
    try:
        r = requests.delete(f"{admin.base}/admin/users/{leaving.id}", headers=admin.headers, timeout=15)
        assert r.status_code == 409 and r.json()["error"]["code"] == "owns_servers", r.text
        assert leaving.get(f"/servers/{sid}").status_code == 200  # nothing happened

        r = requests.delete(f"{admin.base}/admin/users/{leaving.id}", params={"transfer_to": leaving.id},
                            headers=admin.headers, timeout=15)
        assert r.status_code == 422 and "transfer_to" in r.json()["error"]["fields"]

        r = requests.delete(f"{admin.base}/admin/users/{leaving.id}", params={"transfer_to": heir.id},
                            headers=admin.headers, timeout=15)
        assert r.status_code == 200, r.text
        assert heir.get(f"/servers/{sid}").json()["owner_id"] == heir.id
        assert admin.get(f"/admin/users/{leaving.id}").status_code == 404
        assert _login(admin.base, leaving.email).status_code == 401  # gone from Cognito too
    finally:
        heir.delete(f"/servers/{sid}")


def test_delete_without_servers(admin):
    made = _create(admin, password=PASSWORD)
    r = requests.delete(f"{admin.base}/admin/users/{made['id']}", headers=admin.headers, timeout=15)
    assert r.status_code == 200, r.text
    assert admin.get(f"/admin/users/{made['id']}").status_code == 404


def test_make_admin_and_remove_it(admin):
    made = _create(admin, password=PASSWORD)
    token = _login(admin.base, made["email"]).json()["access_token"]
    assert requests.get(f"{admin.base}/admin/locations", headers=_bearer(token), timeout=10).status_code == 404

    r = requests.put(f"{admin.base}/admin/users/{made['id']}/admin", json={"admin": True}, headers=admin.headers,
                     timeout=15)
    assert r.status_code == 200 and r.json()["admin"] is True, r.text
    promoted = _login(admin.base, made["email"]).json()["access_token"]  # the group claim comes with a new token
    assert requests.get(f"{admin.base}/admin/locations", headers=_bearer(promoted), timeout=10).status_code == 200

    r = requests.put(f"{admin.base}/admin/users/{made['id']}/admin", json={"admin": False}, headers=admin.headers,
                     timeout=15)
    assert r.status_code == 200 and r.json()["admin"] is False
    # the token that carried the admin claim no longer works at all
    assert requests.get(f"{admin.base}/admin/locations", headers=_bearer(promoted), timeout=10).status_code == 401
    _past_cutoff(made["id"])
    demoted = _login(admin.base, made["email"]).json()["access_token"]
    assert requests.get(f"{admin.base}/admin/locations", headers=_bearer(demoted), timeout=10).status_code == 404
