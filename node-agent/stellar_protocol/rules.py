"""Variable validation rules: our own structured form, and conversion from Laravel rule strings.

Eggs describe variable validation as Laravel rules (``required|string|max:20``). We keep a
structured model instead (easy to render in a form, to publish as JSON Schema, and to check
here without PHP), but it must behave like Laravel on every rule it claims to support:

- an empty value passes every rule except ``required`` (Laravel skips non-implicit rules for
  empty strings, and the panel turns empty strings into null);
- ``min``/``max``/``between``/``size`` measure the *number* when the rules hold ``integer`` or
  ``numeric`` and the value is numeric, otherwise the string length in characters;
- ``boolean`` accepts the strings ``"0"`` and ``"1"`` only, as Laravel does for strings;
- ``regex`` uses search semantics (``preg_match``), so anchors are the egg's business.

A rule we do not understand is kept verbatim in ``unsupported`` and reported by the importer;
it does not block values (Laravel would fail the request with a server error on an unknown
rule, which is no behaviour worth copying).
"""

from __future__ import annotations

import csv
import ipaddress
import json
import re
import unicodedata
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ValueType = Literal["string", "integer", "numeric", "boolean"]
Charset = Literal["alpha", "alpha_num", "alpha_dash"]
Format = Literal["url", "email", "ip", "ipv4", "ipv6", "uuid", "json"]

_INT = re.compile(r"\s*[+-]?(0|[1-9][0-9]*)\s*")  # PHP FILTER_VALIDATE_INT (trims whitespace)
_NUMERIC = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")  # PHP 8 is_numeric
_URL = re.compile(r"[a-z][a-z0-9+.-]*://([^\s/?#@]+@)?[^\s/?#@]+(:\d+)?([/?#]\S*)?", re.IGNORECASE)
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+")
# Rules that need no checking for a single string variable (all values are strings).
_NO_OPS = frozenset({"string", "bail", "sometimes", "present", "filled", "nullable"})


class RulesError(ValueError):
    """A rule that cannot be converted (e.g. a regex that does not compile)."""


class Rules(BaseModel):
    """How a variable's value is validated; every field is optional and they all must pass."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    required: bool = False
    nullable: bool = False
    type: ValueType = "string"
    min: int | float | None = None
    max: int | float | None = None
    size: int | float | None = None
    digits: int | None = Field(default=None, ge=1, le=64)
    digits_between: tuple[int, int] | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    not_in: list[str] | None = None
    regex: str | None = Field(default=None, max_length=2048, description="Python syntax, search semantics")
    not_regex: str | None = Field(default=None, max_length=2048)
    charset: Charset | None = None
    formats: list[Format] = Field(default_factory=list)
    starts_with: list[str] | None = None
    ends_with: list[str] | None = None
    lowercase: bool = False
    uppercase: bool = False
    unsupported: list[str] = Field(default_factory=list, description="kept from the source, not enforced")

    @field_validator("regex", "not_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from None
        return value

    def _size(self, value: str) -> float:
        if self.type in ("integer", "numeric") and _NUMERIC.fullmatch(value):
            return float(value)
        return float(len(value))

    def check(self, value: str) -> str | None:
        """The first reason ``value`` fails, or None when it passes."""
        if value.strip() == "":
            return "is required" if self.required else None
        if self.type == "integer" and not _INT.fullmatch(value):
            return "must be an integer"
        if self.type == "numeric" and not _NUMERIC.fullmatch(value):
            return "must be a number"
        # Laravel's boolean takes the strings "0" and "1" only (true/false are JSON values).
        if self.type == "boolean" and value not in ("0", "1"):
            return "must be 1 or 0"
        size = self._size(value)
        unit = "" if self.type in ("integer", "numeric") else " characters"
        if self.min is not None and size < self.min:
            return f"must be at least {self.min:g}{unit}"
        if self.max is not None and size > self.max:
            return f"must be at most {self.max:g}{unit}"
        if self.size is not None and size != self.size:
            return f"must be exactly {self.size:g}{unit}"
        if self.digits is not None and not (value.isascii() and value.isdigit() and len(value) == self.digits):
            return f"must be {self.digits} digits"
        if self.digits_between is not None:
            low, high = self.digits_between
            if not (value.isascii() and value.isdigit() and low <= len(value) <= high):
                return f"must be between {low} and {high} digits"
        if self.in_ is not None and value not in self.in_:
            return f"must be one of {', '.join(self.in_)}"
        if self.not_in is not None and value in self.not_in:
            return f"must not be one of {', '.join(self.not_in)}"
        if self.regex is not None and not re.search(self.regex, value):
            return f"does not match {self.regex}"
        if self.not_regex is not None and re.search(self.not_regex, value):
            return f"must not match {self.not_regex}"
        if self.charset is not None and not _charset_ok(self.charset, value):
            return {"alpha": "must contain only letters", "alpha_num": "must contain only letters and digits",
                    "alpha_dash": "must contain only letters, digits, dashes and underscores"}[self.charset]
        for fmt in self.formats:
            if not _format_ok(fmt, value):
                return f"must be a valid {fmt}"
        if self.starts_with is not None and not any(value.startswith(p) for p in self.starts_with):
            return f"must start with one of {', '.join(self.starts_with)}"
        if self.ends_with is not None and not any(value.endswith(p) for p in self.ends_with):
            return f"must end with one of {', '.join(self.ends_with)}"
        if self.lowercase and value != value.lower():
            return "must be lowercase"
        if self.uppercase and value != value.upper():
            return "must be uppercase"
        return None


def _charset_ok(charset: str, value: str) -> bool:
    """Laravel's \\pL\\pM (alpha), plus \\pN (alpha_num), plus ``_-`` (alpha_dash)."""
    for ch in value:
        cat = unicodedata.category(ch)
        if cat[0] in "LM" or (charset != "alpha" and cat[0] == "N") or (charset == "alpha_dash" and ch in "_-"):
            continue
        return False
    return True


def _format_ok(fmt: str, value: str) -> bool:
    try:
        if fmt in ("ip", "ipv4", "ipv6"):
            addr = ipaddress.ip_address(value)
            return fmt == "ip" or addr.version == int(fmt[-1])
        if fmt == "uuid":
            uuid.UUID(value)
            return bool(re.fullmatch(r"[0-9a-fA-F-]{36}", value))
        if fmt == "json":
            json.loads(value)
            return True
    except ValueError:
        return False
    if fmt == "url":
        return bool(_URL.fullmatch(value))
    return bool(_EMAIL.fullmatch(value))


# ---- Laravel → Rules --------------------------------------------------------------------

_PCRE_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE, "u": 0, "D": 0}
_BRACKETS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def pcre_to_python(rule: str) -> str:
    """``/pattern/flags`` (any delimiter) → a Python pattern with inline flags."""
    rule = rule.strip()
    if len(rule) < 2 or rule[0].isalnum() or rule[0] == "\\" or rule[0].isspace():
        raise RulesError(f"regex {rule!r} has no delimiters")
    close = _BRACKETS.get(rule[0], rule[0])
    end = rule.rfind(close)
    if end <= 0:
        raise RulesError(f"regex {rule!r} is not closed")
    body, flags = rule[1:end], rule[end + 1:]
    inline = ""
    for flag in flags:
        if flag not in _PCRE_FLAGS:
            raise RulesError(f"regex {rule!r}: unsupported flag {flag!r}")
        if _PCRE_FLAGS[flag]:
            inline += flag
    if close == "/":
        body = body.replace("\\/", "/")
    body = re.sub(r"\(\?<(?![=!])", "(?P<", body)  # PCRE named groups
    body = body.replace("\\z", "\\Z")  # PCRE's absolute end is Python's \Z
    pattern = f"(?{inline}){body}" if inline else body
    try:
        re.compile(pattern)
    except re.error as exc:
        raise RulesError(f"regex {rule!r} does not compile: {exc}") from None
    return pattern


def split_rules(raw: Any) -> list[str]:
    """Rules as a pipe string, a list, or (rarely) a mapping → a list of rule strings.

    In a pipe string a ``regex:`` rule may itself contain ``|``: pieces are re-joined until
    the regex delimiter closes, which is what the egg author meant.
    """
    if raw is None:
        return []
    if isinstance(raw, dict):
        raw = list(raw.values())
    if isinstance(raw, list):
        return [str(r).strip() for r in raw if str(r).strip()]
    pieces = str(raw).split("|")
    out: list[str] = []
    while pieces:
        piece = pieces.pop(0)
        if piece.startswith(("regex:", "not_regex:")):
            while pieces and not _regex_closed(piece.split(":", 1)[1]):
                piece += "|" + pieces.pop(0)
        if piece.strip():
            out.append(piece.strip())
    return out


def _regex_closed(rule: str) -> bool:
    rule = rule.strip()
    if len(rule) < 2:
        return True
    close = _BRACKETS.get(rule[0], rule[0])
    return bool(re.search(re.escape(close) + r"[imsxuD]*$", rule[1:]))


def _csv(params: str) -> list[str]:
    return next(csv.reader([params], skipinitialspace=False)) if params else []


def _number(name: str, params: str) -> int | float:
    try:
        number = float(params)
        return int(number) if number.is_integer() else number
    except ValueError:
        raise RulesError(f"{name}: {params!r} is not a number") from None


def from_laravel(raw: Any) -> tuple[Rules, list[str]]:
    """Convert Laravel rules; returns the rules and a warning per rule kept as unsupported."""
    data: dict[str, Any] = {}
    unsupported: list[str] = []
    types: set[str] = set()
    for rule in split_rules(raw):
        name, _, params = rule.partition(":")
        name = name.strip().lower()
        if name in _NO_OPS:
            if name == "nullable":
                data["nullable"] = True
        elif name == "required":
            data["required"] = True
        elif name in ("integer", "numeric", "boolean"):
            types.add(name)
        elif name in ("min", "max", "size"):
            data[name] = _number(name, params)
        elif name == "between":
            low, _, high = params.partition(",")
            data["min"], data["max"] = _number(name, low), _number(name, high)
        elif name == "digits":
            data["digits"] = int(_number(name, params))
        elif name == "digits_between":
            low, _, high = params.partition(",")
            data["digits_between"] = (int(_number(name, low)), int(_number(name, high)))
        elif name in ("in", "not_in"):
            data["in" if name == "in" else "not_in"] = _csv(params)
        elif name in ("regex", "not_regex"):
            data[name] = pcre_to_python(params)
        elif name in ("alpha", "alpha_num", "alpha_dash"):
            data["charset"] = name
        elif name in ("url", "active_url", "email", "ip", "ipv4", "ipv6", "uuid", "json"):
            data.setdefault("formats", []).append("url" if name == "active_url" else name)
        elif name in ("starts_with", "ends_with"):
            data[name] = _csv(params)
        elif name in ("lowercase", "uppercase"):
            data[name] = True
        else:
            unsupported.append(rule)
    # Laravel measures numbers only under integer/numeric; integer is the stricter check.
    for kind in ("integer", "numeric", "boolean"):
        if kind in types:
            data["type"] = kind
            break
    data["unsupported"] = unsupported
    try:
        rules = Rules.model_validate(data)
    except ValueError as exc:
        raise RulesError(str(exc)) from None
    warnings = [f"rule {r!r} is not supported: kept, not enforced" for r in unsupported]
    return rules, warnings
