"""Idempotency-Key support: a retried request (a client that lost the answer, or a control
plane that died after writing) gets the first outcome back instead of doing the work twice.

The key is claimed with a conditional create before the work runs, so two concurrent
retries cannot both run it; the outcome is stored for a day. A different request body under
the same key is refused, as is a retry while the first attempt is still running.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from typing import Any

from ..errors import ApiError
from ..store import Conflict, NotFound, Store
from ..store.records import Idempotency

KEEP_S = 24 * 3600
_KEY = re.compile(r"^[A-Za-z0-9_.:-]{8,128}$")


def run_once(store: Store, user_id: str, key: str, route: str, body: Any,
             work: Callable[[], tuple[int, Any]]) -> tuple[int, Any]:
    """``work()`` → (status, body), done at most once per (user, key) while the record lives."""
    if not _KEY.match(key):
        raise ApiError(400, "bad_idempotency_key", "Idempotency-Key must be 8-128 of A-Z a-z 0-9 _ . : -")
    digest = hashlib.sha256(json.dumps([route, body], sort_keys=True, default=str).encode()).hexdigest()
    record = Idempotency(user_id=user_id, key=key, request_hash=digest, expires_at=time.time() + KEEP_S)
    try:
        store.claim_idempotency(record)
    except Conflict:
        return _replay(store, user_id, key, digest)
    try:
        status, out = work()
    except ApiError as exc:
        if exc.status >= 500:
            _release(store, record)
            raise
        _finish(store, record, exc.status, {"error": {"code": exc.code, "message": exc.message,
                                                       **({"fields": exc.fields} if exc.fields else {})}})
        raise
    except Exception:
        _release(store, record)  # nothing was decided: let a retry run it
        raise
    _finish(store, record, status, out)
    return status, out


def _replay(store: Store, user_id: str, key: str, digest: str) -> tuple[int, Any]:
    try:
        previous = store.get_idempotency(user_id, key)
    except NotFound:  # expired between the claim and the read
        raise ApiError(409, "idempotency_in_progress", "retry the request") from None
    if previous.request_hash != digest:
        raise ApiError(422, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    if previous.status != "done" or previous.response is None:
        raise ApiError(409, "idempotency_in_progress", "a request with this Idempotency-Key is still running")
    return int(previous.response["status"]), previous.response["body"]


def _finish(store: Store, record: Idempotency, status: int, body: Any) -> None:
    record.status, record.response = "done", {"status": status, "body": body}
    store.finish_idempotency(record)


def _release(store: Store, record: Idempotency) -> None:
    record.expires_at = time.time() - 1  # expired records are invisible and can be claimed again
    try:
        store.finish_idempotency(record)
    except (Conflict, NotFound):
        pass
