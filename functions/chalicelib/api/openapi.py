"""OpenAPI 3.1 document generated from Chalice's route table and each route's metadata."""

from __future__ import annotations

import re
from typing import Any

from chalice import Chalice

from .routing import ROUTE_META

_PARAM = re.compile(r"\{([^}]+)\}")


def build(app: Chalice, title: str = "StellarStack API", version: str = "0.1.0") -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            meta = ROUTE_META.get(entry.view_function)
            if meta is None:
                raise RuntimeError(f"{method} {path} was not declared with api_route")
            op: dict[str, Any] = {
                "operationId": entry.view_name,
                "summary": meta.summary,
                "security": [] if meta.public else [{"bearerAuth": []}],
                "responses": {str(meta.status): {"description": "success"},
                              "default": {"$ref": "#/components/responses/Error"}},
            }
            if meta.permission_doc:
                op["x-permission"] = meta.permission_doc
            if meta.admin:
                op["x-admin-only"] = True
            params = _PARAM.findall(path)
            if params:
                op["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                    for p in params]
            if meta.body is not None:
                name = meta.body.__name__
                schema = meta.body.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[name] = schema
                op["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
            paths.setdefault(path, {})[method.lower()] = op
    schemas["Error"] = {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                               "description": "Cognito access token, verified by the API"}},
            "schemas": schemas,
            "responses": {"Error": {"description": "error", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
        },
    }
