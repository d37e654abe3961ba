"""The local HTTP front: the Chalice app under /api and the built web app at /.

Requests to /api go through Chalice's LocalGateway (the same event conversion as API
Gateway); waitress serves them from a thread pool, so concurrent requests really are
concurrent (the app keeps per-request state per thread, see chalicelib.api.threadsafe).
"""

from __future__ import annotations

import base64
import mimetypes
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from chalice.config import Config
from chalice.local import LocalGateway, LocalGatewayException

StartResponse = Callable[..., Any]

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
_REASONS = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
            401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
            409: "Conflict", 413: "Payload Too Large", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable"}
MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous payload limit
API_CSP = "default-src 'none'; frame-ancestors 'none'"  # as chalicelib.api.routing.SECURITY_HEADERS


def _status(code: int) -> str:
    return f"{code} {_REASONS.get(code, 'Status')}"


class FrontApp:
    """A WSGI app: /api/* → Chalice, anything else → static files with SPA fallback."""

    def __init__(self, chalice_app: Any, web_dist: Path, csp_connect: str = "") -> None:
        self.gateway = LocalGateway(chalice_app, Config.create(lambda_timeout=30))
        self.web_dist = web_dist.resolve()
        self.csp = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                    f"img-src 'self' data:; connect-src 'self' {csp_connect}; frame-ancestors 'none'; "
                    "worker-src 'self' blob:; base-uri 'self'; form-action 'self'")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if path == "/api" or path.startswith("/api/"):
            return self._api(environ, start_response)
        return self._static(path, environ, start_response)

    def _api(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        query = environ.get("QUERY_STRING")
        path = environ.get("PATH_INFO", "/") + (f"?{query}" if query else "")
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > MAX_BODY:
            return self._plain(start_response, 413, b'{"error":{"code":"too_large","message":"body too large"}}')
        body = environ["wsgi.input"].read(length) if length else b""
        headers.setdefault("x-forwarded-for", environ.get("REMOTE_ADDR", "127.0.0.1"))
        try:
            resp = self.gateway.handle_request(method, path, headers, body)
        except LocalGatewayException as exc:
            return self._plain(start_response, exc.CODE, exc.body or b"", dict(exc.headers))
        raw = resp.get("body") or b""
        if resp.get("isBase64Encoded"):
            payload = base64.b64decode(raw)
        else:
            payload = raw.encode() if isinstance(raw, str) else raw
        out_headers = [(k, str(v)) for k, v in (resp.get("headers") or {}).items()]
        for k, values in (resp.get("multiValueHeaders") or {}).items():
            out_headers.extend((k, str(v)) for v in values)
        # The API sets its own security headers (chalicelib.api.routing, so they hold in Lambda too);
        # these only fill in what a response from outside api_route (Chalice's own 404/405) lacks.
        present = {k.lower() for k, _ in out_headers}
        out_headers.extend((k, v) for k, v in {**SECURITY_HEADERS, "Cache-Control": "no-store",
                                               "Content-Security-Policy": API_CSP}.items()
                           if k.lower() not in present)
        start_response(_status(resp["statusCode"]), out_headers)
        return [payload]

    def _plain(self, start_response: StartResponse, code: int, body: bytes,
               headers: dict[str, str] | None = None) -> Iterable[bytes]:
        hdrs = {"Content-Type": "application/json", **(headers or {}), **SECURITY_HEADERS}
        start_response(_status(code), list(hdrs.items()))
        return [body]

    def _static(self, path: str, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] not in {"GET", "HEAD"}:
            return self._plain(start_response, 405, b"")
        target = (self.web_dist / path.lstrip("/")).resolve()
        if not target.is_relative_to(self.web_dist) or not target.is_file():
            target = self.web_dist / "index.html"  # single-page app: client-side routes
        if not target.is_file():
            msg = b"web app not built: run `make web` (npm ci && npm run build in web/)"
            start_response(_status(503), [("Content-Type", "text/plain")])
            return [msg]
        data = target.read_bytes()
        ctype = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        cache = "no-cache" if target.name == "index.html" else "public, max-age=31536000, immutable"
        headers = [("Content-Type", ctype), ("Content-Length", str(len(data))), ("Cache-Control", cache),
                   ("Content-Security-Policy", self.csp), *SECURITY_HEADERS.items()]
        start_response(_status(200), headers)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [data]


class HttpServer:
    """waitress in a background thread, stoppable.

    The event loop runs in short rounds and checks a stop flag between them, so sockets are
    closed only after the loop has left ``select``: closing them under it (waitress's own
    ``run``) makes the loop thread die with EBADF.
    """

    def __init__(self, app: FrontApp, host: str = "127.0.0.1", port: int = 8080, threads: int = 16) -> None:
        from waitress.server import create_server

        self._server = create_server(app, host=host, port=port, threads=threads, ident="stellar")
        self.port = int(self._server.effective_port)  # type: ignore[union-attr]
        self.url = f"http://{host}:{self.port}"
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="http", daemon=True)

    def _run(self) -> None:
        from waitress import wasyncore

        while not self._stopping.is_set():
            wasyncore.loop(timeout=0.2, map=self._server._map, count=1)  # type: ignore[union-attr]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._server.close()
        self._server.task_dispatcher.shutdown()  # type: ignore[union-attr]
