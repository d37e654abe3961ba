"""API errors: one JSON shape for every failure, so the web app can place messages."""

from __future__ import annotations

import json

from chalice import Response


class ApiError(Exception):
    """Raised anywhere in a request; turned into ``{"error": {...}}`` with its status."""

    def __init__(self, status: int, code: str, message: str, fields: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.fields = fields or {}
        self.headers = headers or {}

    def response(self) -> Response:
        body: dict[str, object] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return json_response({"error": body}, self.status, self.headers)


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body=json.dumps(body), status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def not_found(what: str = "resource") -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def forbidden(permission: str) -> ApiError:
    return ApiError(403, "forbidden", f"missing permission {permission}")


def invalid(fields: dict[str, str], message: str = "invalid request") -> ApiError:
    return ApiError(422, "invalid", message, fields)
