"""Tracing: the only module that talks to the tracing SDK (aws-xray-sdk today).

aws-xray-sdk is in maintenance until Feb 2027, so callers use only ``request``,
``subsegment``, ``annotate`` and ``trace_header``; an OpenTelemetry version of this module
can replace it without touching them. Tracing is on in Lambda (where the facade segment
exists and we add subsegments) or when ``AWS_XRAY_DAEMON_ADDRESS`` is set (we open our own
segment per request). Segments go out as UDP datagrams, fire-and-forget, so a missing
daemon costs nothing and raises nothing; ``context_missing`` is IGNORE_ERROR for the same
reason. Off, every call is a no-op that never imports the SDK.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_configured = False
_enabled = False


def _in_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


def enabled() -> bool:
    """Whether tracing is on; decided (and the SDK configured) once per process."""
    global _configured, _enabled
    if _configured:
        return _enabled
    with _lock:
        if not _configured:
            want = os.environ.get("STELLAR_TRACING", "").lower()
            on = want in {"1", "true", "on"} or (
                want not in {"0", "false", "off"} and (_in_lambda() or bool(os.environ.get("AWS_XRAY_DAEMON_ADDRESS"))))
            if on:
                _configure()
            _enabled, _configured = on, True
    return _enabled


def _configure() -> None:
    from aws_xray_sdk import global_sdk_config
    from aws_xray_sdk.core import patch, xray_recorder

    global_sdk_config.set_sdk_enabled(True)
    # Sampling on by default (X-Ray's rules: 1/s then 5%); STELLAR_TRACE_SAMPLING=0 records all.
    sampling = os.environ.get("STELLAR_TRACE_SAMPLING", "1") != "0"
    xray_recorder.configure(service="stellarstack", context_missing="IGNORE_ERROR", sampling=sampling,
                            daemon_address=os.environ.get("AWS_XRAY_DAEMON_ADDRESS", "127.0.0.1:2000"))
    # botocore covers PynamoDB 6 (it calls DynamoDB through a botocore client), iot-data and Cognito.
    patch(("botocore",), raise_errors=False)
    # Background work (sweeper, ingestion bridge) calls AWS outside any request: the recorder
    # warns "No segment found" for each such call even with IGNORE_ERROR. Expected, not news.
    logging.getLogger("aws_xray_sdk.core.recorder").setLevel(logging.ERROR)


def reset() -> None:
    """Decide again from the environment (tests change it)."""
    global _configured, _enabled
    with _lock:
        _configured = _enabled = False
    if "aws_xray_sdk" in sys.modules:
        from aws_xray_sdk.core import xray_recorder

        xray_recorder.clear_trace_entities()


@contextmanager
def request(name: str, **annotations: str | None) -> Iterator[None]:
    """Trace one API request: a segment of its own locally, a subsegment of Lambda's facade."""
    if not enabled():
        yield
        return
    from aws_xray_sdk.core import xray_recorder

    own = not _in_lambda()
    entity: Any = xray_recorder.begin_segment(name) if own else xray_recorder.begin_subsegment(name)
    try:
        for key, value in annotations.items():
            if value is not None and entity is not None:
                entity.put_annotation(key, value)
        yield
    except Exception as exc:
        if entity is not None:
            entity.add_exception(exc, _stack())
        raise
    finally:
        if own:
            xray_recorder.end_segment()
        elif entity is not None:
            xray_recorder.end_subsegment()


def _stack() -> list[Any]:
    import traceback

    return traceback.extract_stack(limit=10)


@contextmanager
def subsegment(name: str, namespace: str = "remote", **metadata: object) -> Iterator[None]:
    """A timed child of the current segment (broker publish, store call); no-op outside one."""
    if not enabled():
        yield
        return
    from aws_xray_sdk.core import xray_recorder

    sub = xray_recorder.begin_subsegment(name, namespace) if xray_recorder.get_trace_entity() else None
    try:
        if sub is not None:
            for key, value in metadata.items():
                sub.put_metadata(key, value)
        yield
    except Exception as exc:
        if sub is not None:
            sub.add_exception(exc, _stack())
        raise
    finally:
        if sub is not None:
            xray_recorder.end_subsegment()


def annotate(**annotations: str | None) -> None:
    """Add searchable annotations (user, server) to the current segment, if any."""
    if not enabled():
        return
    from aws_xray_sdk.core import xray_recorder

    entity = xray_recorder.get_trace_entity()
    if entity is None:
        return
    for key, value in annotations.items():
        if value is not None:
            entity.put_annotation(key, value)


def trace_header() -> str | None:
    """``Root=…;Parent=…;Sampled=…`` of the current entity: what travels inside commands."""
    if not enabled():
        return None
    from aws_xray_sdk.core import xray_recorder

    entity = xray_recorder.get_trace_entity()
    if entity is None or getattr(entity, "trace_id", None) is None:
        return None
    sampled = 1 if getattr(entity, "sampled", False) else 0
    return f"Root={entity.trace_id};Parent={entity.id};Sampled={sampled}"
