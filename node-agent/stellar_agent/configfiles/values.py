"""Placeholder expansion, ``if_value`` checks and value typing shared by every parser."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from stellar_protocol.configpatch import Replacement

# One pass over a template: {{NAME}} placeholders and, for regex if_values, $1 / ${1}.
_TOKEN = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}|\$\{(\d+)\}|\$(\d+)")


def render(template: str, values: Mapping[str, str], match: re.Match[str] | None = None) -> str:
    """Expand placeholders from ``values`` only (unknown names become empty), in one pass.

    A value is inserted literally: a variable holding ``{{SERVER_PORT}}`` or ``$1`` is not
    expanded again.
    """

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is not None:
            return values.get(m.group(1), "")
        if match is None:
            return m.group(0)
        index = int(m.group(2) or m.group(3))
        if index > (match.re.groups or 0):
            return ""
        return match.group(index) or ""

    return _TOKEN.sub(sub, template)


def plain(value: Any) -> Any:
    """tomlkit/other wrapped scalars → plain Python values."""
    unwrap: Callable[[], Any] | None = getattr(value, "unwrap", None)
    return unwrap() if callable(unwrap) else value


def as_text(value: Any) -> str:
    value = plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def new_value(rep: Replacement, current: str | None, values: Mapping[str, str]) -> str | None:
    """The text to write for ``rep`` given the current text, or None to leave it alone.

    ``if_value`` (literal) requires the current value to equal it; ``regex:…`` replaces every
    part of the current value the regex matches, with ``$n`` backreferences (Wings' semantics).
    """
    if rep.if_value is None:
        return render(rep.replace_with, values)
    if current is None:
        return None
    if rep.if_value.startswith("regex:"):
        pattern = re.compile(rep.if_value[len("regex:"):])
        if not pattern.search(current):
            return None
        return pattern.sub(lambda m: render(rep.replace_with, values, m), current)
    if current != rep.if_value:
        return None
    return render(rep.replace_with, values)


def typed(text: str, current: Any) -> Any:
    """A value for a typed format (json/yaml/toml): keep the type already there.

    With nothing there, ``true``/``false`` become booleans and integers numbers, as Wings does.
    """
    current = plain(current)
    lowered = text.strip().lower()
    if isinstance(current, str):
        return text
    if isinstance(current, bool) or current is None:
        if lowered in ("true", "false"):
            return lowered == "true"
        if current is not None:
            return text
    if isinstance(current, (int, float)) or current is None:
        if re.fullmatch(r"[+-]?\d{1,18}", text.strip()):
            return int(text)
        if isinstance(current, float):
            try:
                return float(text)
            except ValueError:
                return text
    return text
