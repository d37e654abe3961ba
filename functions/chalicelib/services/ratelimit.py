"""Abuse limits kept in the store, so they hold across stateless Lambda instances.

Fixed windows counted with ``Store.count_hit`` (one atomic increment). Sign-in and two-factor
count *failures* per account and per source IP, checked before each attempt, so a person who
signs in correctly is never slowed down while guessing is capped; password-reset requests (each
sends mail or tries a code) count every request. Every authenticated API request spends from a
per-user budget. Exceeding a limit is a 429 with ``Retry-After`` (seconds to the window's end).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass

from ..errors import ApiError
from ..store import get_store


@dataclass(frozen=True)
class Limit:
    count: int
    window_s: int


# Mutable on purpose: deployments may tune them, tests lower them to reach them quickly.
LIMITS: dict[str, Limit] = {
    "auth.account": Limit(10, 60),  # failed sign-ins / 2FA codes per account
    "auth.ip": Limit(10, 60),  # failed sign-ins / 2FA codes per source IP
    "reset.account": Limit(10, 60),  # password-reset requests and attempts per account
    "reset.ip": Limit(10, 60),
    "api.user": Limit(720, 60),  # authenticated API requests per user
}
TOTP_REPLAY_WINDOW_S = 300  # a used code is remembered at least this long (its validity is ~90 s)


def _key(*parts: str) -> str:
    """Bucket names hold no raw emails or codes."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _refuse(limit: Limit, now: float) -> ApiError:
    retry = max(1, math.ceil((math.floor(now / limit.window_s) + 1) * limit.window_s - now))
    return ApiError(429, "rate_limited", "too many requests; try again later", headers={"Retry-After": str(retry)})


def _store():  # noqa: ANN202  # counters are no tenant's rows: the unscoped store counts them
    return get_store()


def spend(name: str, subject: str, now: float | None = None) -> None:
    """Count one request against ``LIMITS[name]`` for ``subject``; 429 once over the limit."""
    now = time.time() if now is None else now
    limit = LIMITS[name]
    if _store().count_hit(f"{name}#{_key(subject)}", limit.window_s, now) > limit.count:
        raise _refuse(limit, now)


def check_failures(name: str, subject: str, now: float | None = None) -> None:
    """429 when ``subject`` already used up its failures in this window (nothing is counted)."""
    now = time.time() if now is None else now
    limit = LIMITS[name]
    if _store().peek_hits(f"{name}#{_key(subject)}", limit.window_s, now) >= limit.count:
        raise _refuse(limit, now)


def used(name: str, subject: str, now: float | None = None) -> int:
    """How much of ``LIMITS[name]`` ``subject`` has used in the current window."""
    limit = LIMITS[name]
    return _store().peek_hits(f"{name}#{_key(subject)}", limit.window_s, time.time() if now is None else now)


def record_failure(name: str, subject: str, now: float | None = None) -> None:
    limit = LIMITS[name]
    _store().count_hit(f"{name}#{_key(subject)}", limit.window_s, time.time() if now is None else now)


def auth_guard(email: str, source_ip: str | None) -> list[tuple[str, str]]:
    """Check sign-in limits; returns the (limit, subject) pairs to charge if the attempt fails."""
    subjects = [("auth.account", email.strip().lower())]
    if source_ip:
        subjects.append(("auth.ip", source_ip))
    for name, subject in subjects:
        check_failures(name, subject)
    return subjects


def reset_guard(email: str, source_ip: str | None) -> None:
    spend("reset.account", email.strip().lower())
    if source_ip:
        spend("reset.ip", source_ip)


def totp_code_fresh(subject: str, code: str, now: float | None = None) -> bool:
    """True the first time ``code`` is presented for ``subject`` within the replay window.

    The use is recorded in the current and the previous window's counter, so a code replayed
    just after a window boundary is still caught: a code is remembered for at least one window.
    """
    now = time.time() if now is None else now
    bucket = f"totp#{_key(subject, code)}"
    here = _store().count_hit(bucket, TOTP_REPLAY_WINDOW_S, now)
    before = _store().count_hit(bucket, TOTP_REPLAY_WINDOW_S, now - TOTP_REPLAY_WINDOW_S)
    return here == 1 and before == 1
