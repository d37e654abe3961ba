"""MQTT topic matching and dynsec ACL evaluation, mirroring Mosquitto 2.0's rules."""

from __future__ import annotations

from typing import Any

SEND = "publishClientSend"
RECEIVE = "publishClientReceive"
SUBSCRIBE = "subscribe"
UNSUBSCRIBE = "unsubscribe"
ACL_TYPES = (
    SEND,
    RECEIVE,
    "subscribeLiteral",
    "subscribePattern",
    "unsubscribeLiteral",
    "unsubscribePattern",
)


def topic_matches(flt: str, topic: str) -> bool:
    """Does concrete ``topic`` match filter ``flt``? Wildcards never match a leading '$'."""
    if topic.startswith("$") != flt.startswith("$"):
        return False
    f_levels, t_levels = flt.split("/"), topic.split("/")
    for i, level in enumerate(f_levels):
        if level == "#":
            return i == len(f_levels) - 1
        if i >= len(t_levels) or level not in ("+", t_levels[i]):
            return False
    return len(f_levels) == len(t_levels)


def filter_within(acl: str, sub: str) -> bool:
    """Is every topic matched by subscription filter ``sub`` also matched by ``acl``?

    This is what a subscribePattern ACL means: ``a/#`` admits ``a/b/#`` and ``a/+``, but
    ``a/+`` does not admit ``a/#``, and a literal level never admits a wildcard.
    """
    a_levels, s_levels = acl.split("/"), sub.split("/")
    for i, level in enumerate(a_levels):
        if level == "#":
            return True
        if i >= len(s_levels) or s_levels[i] == "#":
            return False
        if level != "+" and s_levels[i] != level:
            return False
    return len(a_levels) == len(s_levels)


def _sorted_acls(role: dict[str, Any], acltype: str) -> list[dict[str, Any]]:
    acls = [a for a in role.get("acls", []) if a.get("acltype") == acltype]
    return sorted(acls, key=lambda a: -int(a.get("priority", -1)))


def check(
    client_roles: list[tuple[dict[str, Any], int]],
    access: str,
    topic: str,
    default_access: dict[str, bool],
) -> bool:
    """First matching ACL wins: roles by priority, then ACLs by priority; else the default.

    ``access`` is SEND, RECEIVE, SUBSCRIBE or UNSUBSCRIBE; for the last two ``topic`` is a
    filter checked against the *Literal (exact) then *Pattern ACLs of each role.
    """
    for role, _prio in sorted(client_roles, key=lambda rp: -rp[1]):
        if access in (SUBSCRIBE, UNSUBSCRIBE):
            for acl in _sorted_acls(role, f"{access}Literal"):
                if acl.get("topic") == topic:
                    return bool(acl.get("allow"))
            for acl in _sorted_acls(role, f"{access}Pattern"):
                if filter_within(str(acl.get("topic")), topic):
                    return bool(acl.get("allow"))
        else:
            for acl in _sorted_acls(role, access):
                if topic_matches(str(acl.get("topic")), topic):
                    return bool(acl.get("allow"))
    return bool(default_access.get(access, False))
