"""Local stand-ins for two AWS wirings: the IoT rule that feeds agent events to the
ingestion function, and the EventBridge rule that runs the grant sweeper every minute.
Both call the very handlers deployed in AWS, so local runs exercise the same code.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from chalicelib.broker.publisher import Subscriber
from stellar_protocol import topics

log = logging.getLogger(__name__)

EVENT_FILTERS = (topics.ALL_SERVER_STATES, topics.ALL_NODE_STATUS, topics.ALL_SERVER_BACKUPS)


def event_bridge(host: str, port: int, username: str, password: str,
                 handler: Callable[[str, bytes], object]) -> Subscriber:
    """Agent state, node status and backup outcomes → ``handler`` (the ingestion function)."""
    return Subscriber(host, port, username, password, EVENT_FILTERS, lambda t, p: handler(t, p),
                      client_id_prefix="stellar-bridge")


class Ticker:
    """Calls ``fn`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, fn: Callable[[], object], interval: float = 60.0) -> None:
        self._fn, self._interval = fn, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ticker", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._fn()
            except Exception:
                log.exception("scheduled task failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
