"""Validation against the published AsyncAPI document (docs/asyncapi.yaml), not the models.

Tests check what actually crossed the broker against the document dashboards read, so a
model change that is not regenerated into the document, or a message the agent builds by
hand, fails here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from stellar_protocol import topics

DOC = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
BASE = "urn:stellar:asyncapi"


@cache
def document() -> dict[str, Any]:
    return yaml.safe_load(DOC.read_text(encoding="utf-8"))


@cache
def validator(payload: str) -> Draft202012Validator:
    registry = Registry().with_resource(BASE, Resource.from_contents(document(), DRAFT202012))
    return Draft202012Validator({"$ref": f"{BASE}#/components/schemas/{payload}"}, registry=registry)


def problems(topic: str, payload: bytes) -> list[str]:
    """Every way this message violates the document (empty list: valid)."""
    kind = topics.parse(topic).kind
    row = topics.channel(kind)
    if kind == "state" and payload == b"":
        return []  # a cleared retained state (server deleted) is documented as empty
    try:
        data = json.loads(payload)
    except ValueError as exc:
        return [f"{topic}: not JSON: {exc}"]
    return [f"{topic}: {e.json_path}: {e.message}" for e in validator(row.payload).iter_errors(data)]
