"""A Chalice app whose per-request state is per thread.

Chalice keeps ``current_request`` and ``lambda_context`` as plain attributes of the app,
which is right for Lambda (one request per process at a time) but lets two requests served
by threads of the local HTTP server read each other's request. Thread-local storage keeps
both environments correct.
"""

from __future__ import annotations

import threading
from typing import Any

from chalice import Chalice


class ThreadSafeChalice(Chalice):
    _local = threading.local()

    @property  # type: ignore[override]
    def current_request(self) -> Any:
        return getattr(self._local, "request", None)

    @current_request.setter
    def current_request(self, value: Any) -> None:
        self._local.request = value

    @property  # type: ignore[override]
    def lambda_context(self) -> Any:
        return getattr(self._local, "context", None)

    @lambda_context.setter
    def lambda_context(self, value: Any) -> None:
        self._local.context = value
