"""JSON, YAML and TOML: dotted key paths with ``[n]`` list indexes and ``*`` wildcards.

``listeners[0].host`` sets ``host`` in the first listener; ``servers.*.address`` sets
``address`` in every entry of ``servers`` (one level, existing entries only), as Wings does.
Missing mapping keys on the way are created; a missing list index is reported, not invented.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, MutableMapping, MutableSequence
from typing import Any

import tomlkit
import yaml
from stellar_protocol.configpatch import Replacement

from .values import as_text, new_value, typed

_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")


class PatchError(ValueError):
    """A replacement that cannot be applied to this file."""


def parse_path(path: str) -> list[str | int]:
    """``a.b[0].*`` → ``["a", "b", 0, "*"]``."""
    out: list[str | int] = []
    for part in path.split("."):
        if not part:
            raise PatchError(f"{path!r}: empty path segment")
        pos = 0
        for m in _SEGMENT.finditer(part):
            if m.start() != pos:
                raise PatchError(f"{path!r}: cannot read {part!r}")
            pos = m.end()
            if m.group(1) is not None:
                out.append(m.group(1))
            else:
                out.append("*" if m.group(2) == "*" else int(m.group(2)))
        if pos != len(part):
            raise PatchError(f"{path!r}: cannot read {part!r}")
    return out


def _children(node: Any) -> list[tuple[Any, Any]]:
    if isinstance(node, Mapping):
        return [(k, node[k]) for k in list(node.keys())]
    if isinstance(node, MutableSequence):
        return list(enumerate(node))
    return []


def apply_path(doc: Any, path: list[str | int], rep: Replacement, values: Mapping[str, str],
               new_table: Any = dict) -> int:
    """Apply one replacement at ``path`` under ``doc``; returns how many values changed."""
    head, rest = path[0], path[1:]
    if head == "*":
        changed = 0
        for key, child in _children(doc):
            if not rest:
                changed += _set(doc, key, rep, values)
            elif isinstance(child, (Mapping, MutableSequence)):
                changed += apply_path(child, rest, rep, values, new_table)
        return changed
    if isinstance(head, int):
        if not isinstance(doc, MutableSequence) or head >= len(doc):
            raise PatchError(f"no list item [{head}] here")
    elif not isinstance(doc, MutableMapping):
        raise PatchError(f"{head!r}: the value above it is not a mapping")
    if not rest:
        return _set(doc, head, rep, values)
    if isinstance(head, str) and head not in doc:
        doc[head] = new_table()
    return apply_path(doc[head], rest, rep, values, new_table)


def _set(container: Any, key: Any, rep: Replacement, values: Mapping[str, str]) -> int:
    exists = key in container if isinstance(container, Mapping) else 0 <= key < len(container)
    current = container[key] if exists else None
    if isinstance(current, (Mapping, MutableSequence)):
        raise PatchError("cannot replace a whole mapping or list with a value")
    text = new_value(rep, as_text(current) if exists else None, values)
    if text is None:
        return 0
    container[key] = typed(text, current)
    return 1


def patch_json(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    doc = json.loads(text) if text.strip() else {}
    for rep in reps:
        apply_path(doc, parse_path(rep.match), rep, values)
    return json.dumps(doc, indent=4, ensure_ascii=False) + "\n"


def patch_yaml(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    doc = yaml.safe_load(text) if text.strip() else {}
    if doc is None:
        doc = {}
    for rep in reps:
        apply_path(doc, parse_path(rep.match), rep, values)
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)


def patch_toml(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    doc = tomlkit.parse(text)
    for rep in reps:
        apply_path(doc, parse_path(rep.match), rep, values, new_table=tomlkit.table)
    return tomlkit.dumps(doc)
