"""The API's routes in template.yaml, generated from the Chalice route table.

Chalice dispatches on the API Gateway *resource* (``/api/servers/{server_id}``), so a
catch-all ``/{proxy+}`` cannot reach it: every Chalice route needs its own API Gateway
resource and method. ``stellar template routes`` rewrites the block between the markers in
the ``ApiFunction`` events from ``app.routes``; ``--check`` (and tests/aws) fail when the
template and the code disagree. A text block, not a YAML round-trip, so the rest of the
template keeps its comments and short-form tags.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "template.yaml"
BEGIN = "        # BEGIN routes:"
END = "        # END routes"


def chalice_routes() -> list[tuple[str, str]]:
    """(METHOD, path) for every route the Chalice app declares, sorted."""
    functions = str(REPO / "functions")
    if functions not in sys.path:
        sys.path.insert(0, functions)
    from app import app  # the deployed app itself, not a copy of its table

    return sorted((method, path) for path, methods in app.routes.items() for method in methods)


def event_name(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", f"{method.lower()} {path}")
    return "".join(w[:1].upper() + w[1:] for w in words)


def render(routes: list[tuple[str, str]]) -> str:
    lines = []
    for method, path in routes:
        lines += [f"        {event_name(method, path)}:",
                  "          Type: Api",
                  "          Properties:",
                  "            RestApiId: !Ref Api",
                  f"            Path: {path}",
                  f"            Method: {method}"]
    return "\n".join(lines) + ("\n" if lines else "")


def sync(path: Path = TEMPLATE, check: bool = False) -> bool:
    """Bring the generated block up to date; returns True if it already was."""
    text = path.read_text(encoding="utf-8")
    start = text.index(BEGIN)
    body_start = text.index("\n", start) + 1
    body_end = text.index(END, body_start)
    wanted = render(chalice_routes())
    if text[body_start:body_end] == wanted:
        return True
    if not check:
        path.write_text(text[:body_start] + wanted + text[body_end:], encoding="utf-8")
    return False


def template_routes(template: dict[str, Any], function: str = "ApiFunction") -> list[tuple[str, str]]:
    """(METHOD, path) of the function's API Gateway events, as deployed."""
    events = template["Resources"][function]["Properties"].get("Events") or {}
    return sorted((e["Properties"]["Method"].upper(), e["Properties"]["Path"])
                  for e in events.values() if e.get("Type") == "Api")
