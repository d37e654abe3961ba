"""Line-based formats: Java-style properties, INI and Wings' plain ``file`` parser.

These are edited line by line rather than parsed and re-serialised, so comments, ordering,
blank lines and quirks (Unreal's repeated ``+Key=`` lines, keys without values) survive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from stellar_protocol.configpatch import Replacement

from .values import new_value

_PROP = re.compile(r"^(\s*)((?:\\.|[^=:\s\\])+)(\s*[=:]\s*|\s+)?(.*)$")
_SECTION = re.compile(r"^\s*\[([^\]]*)\]\s*(?:[;#].*)?$")
_INI_KEY = re.compile(r"^(\s*)([^=;#\[\s][^=]*?)(\s*=\s*)(.*)$")


def _split_lines(text: str) -> tuple[list[str], str]:
    newline = "\r\n" if "\r\n" in text else "\n"
    lines = text.split(newline)
    if lines and lines[-1] == "":
        lines.pop()
    return lines, newline


def _join(lines: list[str], newline: str) -> str:
    return newline.join(lines) + newline if lines else ""


def patch_properties(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    """``key=value`` lines (``:`` or whitespace separators too); absent keys are appended."""
    lines, newline = _split_lines(text)
    for rep in reps:
        found = False
        for i, line in enumerate(lines):
            if line.lstrip().startswith(("#", "!")) or not line.strip():
                continue
            m = _PROP.match(line)
            if not m or m.group(2) != rep.match:
                continue
            found = True
            value = new_value(rep, m.group(4), values)
            if value is not None:
                lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3) or '='}{value}"
        if not found:
            value = new_value(rep, None, values)
            if value is not None:
                lines.append(f"{rep.match}={value}")
    return _join(lines, newline)


def _ini_target(match: str) -> tuple[str | None, str]:
    """``[Section.With.Dots].Key``, ``section.key`` or a bare ``key`` (before any section)."""
    if match.startswith("["):
        end = match.find("]")
        if end > 0 and match[end + 1:end + 2] == ".":
            return match[1:end], match[end + 2:]
    section, dot, key = match.partition(".")
    return (section, key) if dot else (None, match)


def patch_ini(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    """Set ``key`` in ``[section]``: the first matching line, else added at the section's end."""
    lines, newline = _split_lines(text)
    for rep in reps:
        section, key = _ini_target(rep.match)
        start: int | None = 0 if section is None else None
        if section is not None:
            for i, line in enumerate(lines):
                sec = _SECTION.match(line)
                if sec and sec.group(1).strip() == section:
                    start = i + 1
                    break
        if start is None:  # the section does not exist yet
            value = new_value(rep, None, values)
            if value is not None:
                if lines and lines[-1].strip():
                    lines.append("")
                lines += [f"[{section}]", f"{key}={value}"]
            continue
        end = next((j for j in range(start, len(lines)) if _SECTION.match(lines[j])), len(lines))
        for i in range(start, end):
            m = _INI_KEY.match(lines[i])
            if m and m.group(2).strip() == key:
                value = new_value(rep, m.group(4), values)
                if value is not None:
                    lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{value}"
                break
        else:
            value = new_value(rep, None, values)
            if value is not None:
                lines.insert(_after_last_content(lines, start, end), f"{key}={value}")
    return _join(lines, newline)


def _after_last_content(lines: list[str], start: int, end: int) -> int:
    """Where to add a key to the section spanning ``lines[start:end]``: after its last line."""
    pos = end
    while pos > start and not lines[pos - 1].strip():
        pos -= 1
    return pos


def patch_file(text: str, reps: list[Replacement], values: Mapping[str, str]) -> str:
    """Wings' ``file`` parser: a line starting with ``match`` is replaced whole.

    ``if_value`` is checked against the rest of the line after the prefix; nothing is appended
    when no line matches (as Wings).
    """
    lines, newline = _split_lines(text)
    for i, line in enumerate(lines):
        for rep in reps:
            if not line.startswith(rep.match):
                continue
            if rep.if_value is not None and rep.if_value.startswith("regex:"):
                value = new_value(rep, line, values)
            else:
                value = new_value(rep, line[len(rep.match):], values)
            if value is not None:
                line = value
        lines[i] = line
    return _join(lines, newline)
