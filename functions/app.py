"""StellarStack control plane: the Chalice app. Thin on purpose; logic is in chalicelib."""

from __future__ import annotations

import logging
from typing import Any

from chalice import Rate
from chalicelib.api import account, catalog, servers, system
from chalicelib.api.threadsafe import ThreadSafeChalice
from chalicelib.services import events, grants

app = ThreadSafeChalice(app_name="stellarstack")
app.log.setLevel(logging.INFO)

for group in (system, account, catalog, servers):
    app.register_blueprint(group.bp, url_prefix="/api")


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_grants(event: Any) -> dict[str, int]:
    """Revoke expired browser broker grants (EventBridge every minute; the dev ticker locally)."""
    return {"revoked": grants.sweep()}


@app.lambda_function(name="ingest_event")
def ingest_event(event: dict[str, Any], context: Any) -> dict[str, bool]:
    """Agent state and node status (an IoT topic rule in AWS, the local bridge in dev)."""
    payload = event.get("payload", "")
    data = payload.encode() if isinstance(payload, str) else bytes(payload)
    return {"applied": events.ingest(str(event.get("topic", "")), data)}
