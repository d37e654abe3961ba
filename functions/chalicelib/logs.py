"""Structured JSON logs (Powertools Logger) with request id, user and server on every line.

Every module keeps using ``logging.getLogger(__name__)``; ``setup()`` puts the Powertools
JSON formatter on the root handler, and a filter stamps each record with the current
request's keys from a ``ContextVar``. A context variable, not the formatter's own
``append_keys``, because ``stellar dev`` serves requests on many threads and one request's
user must never appear on another's lines. On in Lambda; locally with ``STELLAR_LOG_JSON=1``.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import IO

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = "stellarstack"
KEYS = ("request_id", "user", "server")
_context: ContextVar[dict[str, str] | None] = ContextVar("stellar_log_context", default=None)
_MARK = "_stellar_json"

logger = Logger(service=SERVICE)


class ContextFilter(logging.Filter):
    """Copy the current request's keys onto the record; ``-`` when a key is not known (yet)."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = _context.get() or {}
        for key in KEYS:
            setattr(record, key, ctx.get(key, "-"))
        return True


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(LambdaPowertoolsFormatter(service=SERVICE))
    handler.addFilter(ContextFilter())
    setattr(handler, _MARK, True)
    return handler


def setup(force: bool = False, stream: IO[str] | None = None) -> bool:
    """Switch the root logger to JSON lines (idempotent); returns whether it did."""
    if not (force or os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("STELLAR_LOG_JSON") == "1"):
        return False
    root = logging.getLogger()
    for h in list(root.handlers):  # Lambda's own plain-text handler would print each line twice
        root.removeHandler(h)
    root.addHandler(json_handler(stream))
    root.setLevel(os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"))
    for h in logger.handlers:  # the Powertools logger itself gets the same keys
        h.addFilter(ContextFilter())
    return True


@contextmanager
def request_context(request_id: str | None = None, **keys: str | None) -> Iterator[str]:
    """Bind request id (generated if absent), user and server for the lines logged inside."""
    rid = request_id or uuid.uuid4().hex
    token = _context.set({"request_id": rid, **{k: v for k, v in keys.items() if v}})
    try:
        yield rid
    finally:
        _context.reset(token)


def bind(**keys: str | None) -> None:
    """Add keys (user once authenticated, server once loaded) to the current request's lines."""
    current = dict(_context.get() or {})
    current.update({k: v for k, v in keys.items() if v})
    _context.set(current)


def current() -> dict[str, str]:
    return dict(_context.get() or {})
