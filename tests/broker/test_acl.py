"""The embedded broker's topic matching and ACL evaluation (no broker needed)."""

from __future__ import annotations

import pytest
from stellar.broker import acl

pytestmark = pytest.mark.broker


@pytest.mark.parametrize(
    ("flt", "topic", "expected"),
    [
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("#", "$CONTROL/x", False),
        ("$CONTROL/#", "$CONTROL/x", True),
        ("a/b", "a/b", True),
        ("a/b", "a/c", False),
    ],
)
def test_topic_matches(flt, topic, expected):
    assert acl.topic_matches(flt, topic) is expected


@pytest.mark.parametrize(
    ("acl_topic", "sub", "expected"),
    [
        ("a/#", "a/#", True),
        ("a/#", "a/b/+", True),
        ("a/+", "a/b", True),
        ("a/+", "a/+", True),
        ("a/+", "a/#", False),
        ("a/b/#", "a/+/#", False),
        ("a/b/#", "#", False),
        ("a/b", "a/b", True),
    ],
)
def test_filter_within(acl_topic, sub, expected):
    assert acl.filter_within(acl_topic, sub) is expected


def test_first_match_by_priority_then_default():
    role = {"acls": [
        {"acltype": acl.RECEIVE, "topic": "a/#", "priority": 10, "allow": True},
        {"acltype": acl.RECEIVE, "topic": "#", "priority": 0, "allow": False},
    ]}
    defaults = {acl.RECEIVE: True, acl.SUBSCRIBE: False, acl.SEND: False, acl.UNSUBSCRIBE: True}
    assert acl.check([(role, -1)], acl.RECEIVE, "a/x", defaults)
    assert not acl.check([(role, -1)], acl.RECEIVE, "b/x", defaults)
    assert not acl.check([(role, -1)], acl.SUBSCRIBE, "a/x", defaults)  # default deny
    assert acl.check([], acl.RECEIVE, "b/x", defaults)  # default allow
