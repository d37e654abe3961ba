"""The IoT Core custom authorizer, fed with real grants minted by the API."""

from __future__ import annotations

import base64
import json

import pytest
from stellar_protocol import topics


class _Ctx:
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:stellar-authorizer"


def _event(username: str, password: str, client_id: str | None = None) -> dict:
    return {"token": None, "signatureVerified": False, "protocols": ["mqtt"],
            "protocolData": {"mqtt": {"username": username, "clientId": client_id or username.split("?")[0],
                                      "password": base64.b64encode(password.encode()).decode()}},
            "connectionMetadata": {"id": "c1"}}


@pytest.fixture(scope="module")
def grant(aws_owner, aws_server):
    r = aws_owner.post(f"/servers/{aws_server['id']}/console-grant")
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_a_valid_grant_gets_a_policy_for_its_one_server_only(grant, aws_server):
    from chalicelib.services.broker_auth import MIN_SESSION_S, authorize

    node, sid = aws_server["node_id"], aws_server["id"]
    answer = authorize(_event(grant["username"] + "?x-amz-customauthorizer-name=stellarstack-browser-prod",
                              grant["password"]), _Ctx())
    assert answer["isAuthenticated"] is True
    assert answer["principalId"].isalnum()
    assert MIN_SESSION_S <= answer["disconnectAfterInSeconds"] <= 86_400
    (doc,) = [json.loads(d) for d in answer["policyDocuments"]]
    allowed = {(s["Action"], s["Resource"]) for s in doc["Statement"] if s["Effect"] == "Allow"}
    arn = "arn:aws:iot:eu-west-1:123456789012"
    assert allowed == {
        ("iot:Connect", f"{arn}:client/{grant['username']}"),
        ("iot:Subscribe", f"{arn}:topicfilter/{topics.server_viewer_filter(node, sid)}"),
        ("iot:Receive", f"{arn}:topic/{topics.server_root(node, sid)}/*"),
    }
    # The topics the API hands the browser are all inside what the policy lets it receive.
    for topic in grant["topics"].values():
        assert topic.startswith(topics.server_root(node, sid) + "/")


@pytest.mark.parametrize("mutate", ["wrong password", "unknown user", "other client id", "not base64",
                                    "expired", "empty"])
def test_everything_else_is_refused(grant, mutate):
    from chalicelib.services.broker_auth import authorize

    user, pw, now = grant["username"], grant["password"], None
    event = _event(user, pw)
    if mutate == "wrong password":
        event = _event(user, pw + "x")
    elif mutate == "unknown user":
        event = _event("viewer-0000000000000000", pw)
    elif mutate == "other client id":
        event = _event(user, pw, client_id="viewer-1111111111111111")
    elif mutate == "not base64":
        event["protocolData"]["mqtt"]["password"] = "%%%"
    elif mutate == "expired":
        now = grant["expires_at"] + 1
    elif mutate == "empty":
        event = {}
    assert authorize(event, _Ctx(), now=now) == {"isAuthenticated": False}


def test_the_store_keeps_only_a_slow_hash_of_the_password(grant):
    from chalicelib.services.broker_auth import verify_password
    from chalicelib.store import get_store

    stored = get_store().as_admin("test").get_grant(grant["username"])
    assert stored.password_hash and grant["password"] not in stored.password_hash
    assert stored.password_hash.startswith("scrypt$")
    assert verify_password(grant["password"], stored.password_hash)
    assert not verify_password(grant["password"], stored.password_hash.replace("scrypt$", "md5$"))
