"""StellarStack control plane: the Chalice app. Thin on purpose; logic is in chalicelib."""

from __future__ import annotations

import base64
import logging
from typing import Any

from chalice import Rate
from chalicelib import logs
from chalicelib.api import (
    account,
    activity,
    admin,
    apikeys,
    backups,
    blueprints_admin,
    catalog,
    files,
    nodes,
    permissions_catalogue,
    schedules,
    servers,
    subusers,
    system,
)
from chalicelib.api.threadsafe import ThreadSafeChalice
from chalicelib.services import broker_auth, events, grants
from chalicelib.services import nodes as node_liveness
from chalicelib.services import schedules as schedule_runner

logs.setup()  # JSON lines in Lambda (or with STELLAR_LOG_JSON=1); the plain format otherwise
app = ThreadSafeChalice(app_name="stellarstack")
app.log.setLevel(logging.INFO)

for group in (system, account, catalog, servers, blueprints_admin, admin, nodes, subusers, activity, apikeys,
              files, permissions_catalogue, backups, schedules):
    app.register_blueprint(group.bp, url_prefix="/api")


@app.schedule(Rate(1, unit=Rate.MINUTES))
def sweep_grants(event: Any) -> dict[str, int]:
    """Revoke expired browser broker grants (EventBridge every minute; the dev ticker locally)."""
    return {"revoked": grants.sweep(), "nodes_offline": node_liveness.sweep()}


@app.schedule(Rate(1, unit=Rate.MINUTES))
def run_schedules(event: Any) -> dict[str, int]:
    """Fire due server schedules and their pending tasks (EventBridge every minute; the dev ticker locally)."""
    return schedule_runner.tick()


@app.lambda_function(name="ingest_event")
def ingest_event(event: dict[str, Any], context: Any) -> dict[str, bool]:
    """Agent state, node status and backup outcomes (IoT topic rules in AWS, the local bridge in dev)."""
    if "payload_b64" in event:  # the IoT rule sends `encode(*, 'base64')`: any payload, byte-exact
        data = base64.b64decode(str(event["payload_b64"]))
    else:
        payload = event.get("payload", "")
        data = payload.encode() if isinstance(payload, str) else bytes(payload)
    return {"applied": events.ingest(str(event.get("topic", "")), data)}


@app.lambda_function(name="broker_authorizer")
def broker_authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """IoT Core custom authorizer: browser MQTT connections present a grant from the API."""
    return broker_auth.authorize(event, context)
