"""Laravel rules → our rules: pinned Laravel outcomes, and every egg variable cross-checked.

``laravel_passes`` below is an independent, deliberately plain re-statement of Laravel's
validator for the rules eggs use (written against the Laravel source, not against
``stellar_protocol.rules``), so the two implementations check each other.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from stellar_protocol.rules import Rules, RulesError, from_laravel, pcre_to_python

from .conftest import all_eggs

# (rules, value, Laravel's answer) — outcomes as Laravel 10/11 gives them for a string input.
PINNED = [
    ("required|string|max:20", "", False),
    ("required|string|max:20", "x" * 20, True),
    ("required|string|max:20", "x" * 21, False),
    ("nullable|string|max:20", "", True),  # empty skips every non-implicit rule
    ("string|max:3", "", True),
    ("integer", "42", True),
    ("integer", "-7", True),
    ("integer", "4.2", False),
    ("integer", "abc", False),
    ("integer", "007", False),  # FILTER_VALIDATE_INT refuses leading zeros
    ("numeric", "4.2", True),
    ("numeric", "1e3", True),
    ("numeric", "0x1A", False),
    ("required|integer|between:1025,65535", "1024", False),
    ("required|integer|between:1025,65535", "25565", True),
    ("required|numeric|between:1,64", "64", True),
    ("required|numeric|between:1,64", "65", False),
    ("required|string|between:1,3", "1000", False),  # string: length 4, not the number
    ("max:5", "123456", False),  # no numeric rule: length
    ("numeric|max:5", "4", True),
    ("numeric|max:5", "6", False),
    ("boolean", "1", True),
    ("boolean", "0", True),
    ("boolean", "true", False),  # Laravel accepts only "0"/"1" as strings
    ("boolean", "yes", False),
    ("in:survival,creative", "creative", True),
    ("in:survival,creative", "Creative", False),
    ("in:730", "730", True),
    ("regex:/^[\\w.-]+\\.jar$/", "server.jar", True),
    ("regex:/^[\\w.-]+\\.jar$/", "server.zip", False),
    ("regex:/^(latest|[0-9.]+)$/", "latest", True),  # a | inside the regex, pipe-string form
    ("regex:/^(latest|[0-9.]+)$/", "1.20.4", True),
    ("regex:/^(latest|[0-9.]+)$/", "beta", False),
    ("regex:/abc/i", "xxABCxx", True),  # preg_match searches, flags apply
    ("digits_between:1,3", "20", True),
    ("digits_between:1,3", "2000", False),
    ("digits_between:1,3", "2a", False),
    ("digits:4", "0420", True),
    ("alpha_dash", "my-world_2", True),
    ("alpha_dash", "my world", False),
    ("alpha_num", "World2", True),
    ("alpha_num", "World-2", False),
    ("url", "https://example.com/x?y=1", True),
    ("url", "example.com", False),
    ("size:3", "abc", True),
    ("integer|size:3", "3", True),
    ("not_in:root,admin", "root", False),
]


@pytest.mark.parametrize(("rules", "value", "expected"), PINNED)
def test_converted_rules_behave_as_laravel(rules: str, value: str, expected: bool) -> None:
    converted, warnings = from_laravel(rules)
    assert warnings == []
    assert (converted.check(value) is None) is expected, converted.check(value)
    assert laravel_passes(split_rules_plain(rules), value) is expected  # the oracle agrees too


def test_rules_as_a_list_equal_rules_as_a_string() -> None:
    as_list, _ = from_laravel(["required", "regex:/^(a|b)$/", "max:3"])
    as_string, _ = from_laravel("required|regex:/^(a|b)$/|max:3")
    assert as_list == as_string and as_list.regex == "^(a|b)$"


def test_unsupported_rules_are_kept_and_reported() -> None:
    rules, warnings = from_laravel("required|int|confirmed|max:5")
    assert rules.unsupported == ["int", "confirmed"]
    assert len(warnings) == 2 and "'int'" in warnings[0]
    assert rules.check("12") is None  # kept, not enforced
    assert rules.check("123456") is not None  # the supported ones still are


def test_bad_rules_are_errors() -> None:
    with pytest.raises(RulesError):
        from_laravel("regex:/[unclosed/")
    with pytest.raises(RulesError):
        from_laravel("max:lots")
    with pytest.raises(RulesError):
        pcre_to_python("no-delimiters")


def test_pcre_features_convert() -> None:
    assert re.search(pcre_to_python("#^a/b$#"), "a/b")
    assert re.search(pcre_to_python("/^(?<name>\\w+)$/"), "abc")
    assert re.search(pcre_to_python("/^abc\\z/"), "abc")
    assert not re.search(pcre_to_python("/^abc$/"), "ABC")
    assert re.search(pcre_to_python("/^abc$/i"), "ABC")


def test_rules_model_round_trips_through_json() -> None:
    rules, _ = from_laravel("required|in:a,b|between:1,5")
    again = Rules.model_validate(json.loads(rules.model_dump_json(by_alias=True)))
    assert again == rules and again.in_ == ["a", "b"]


# ---- every variable of every shared egg ----------------------------------------------------

def _egg_variables() -> list[tuple[str, dict]]:
    out = []
    for path in all_eggs():
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        for var in data.get("variables") or []:
            out.append((f"{path.name}:{var['env_variable']}", var))
    return out


EGG_VARIABLES = _egg_variables()


def test_the_shared_eggs_have_variables() -> None:
    assert len(EGG_VARIABLES) > 150


@pytest.mark.parametrize(("where", "var"), EGG_VARIABLES, ids=[w for w, _ in EGG_VARIABLES])
def test_each_default_passes_its_converted_rules_where_it_passed_the_original(where: str, var: dict) -> None:
    raw = var.get("rules")
    default = var.get("default_value")
    default = "" if default is None else ("true" if default is True else "false" if default is False else str(default))
    converted, _ = from_laravel(raw)
    pieces = raw if isinstance(raw, list) else split_rules_plain(str(raw or ""))
    original = laravel_passes(pieces, default)
    if original is None:  # Laravel itself errors on an unknown rule: nothing to compare
        assert converted.unsupported
        return
    assert (converted.check(default) is None) is original, (raw, default, converted.check(default))
    for probe in ("", "0", "1", "25565", "abc", "x" * 300, "hello world", "1.5"):
        ours = converted.check(probe) is None
        theirs = laravel_passes(pieces, probe)
        assert ours is theirs, (raw, probe)


# ---- the oracle -------------------------------------------------------------------------------

def split_rules_plain(rules: str) -> list[str]:
    """Pipe-split, re-joining a regex that contains ``|`` (what the author meant)."""
    out: list[str] = []
    for piece in rules.split("|") if rules else []:
        if out and out[-1].startswith("regex:") and not re.search(r"/[a-zA-Z]*$", out[-1][len("regex:/"):]):
            out[-1] += "|" + piece
        else:
            out.append(piece)
    return out


def laravel_passes(rules: list[str], value: str) -> bool | None:
    """Laravel's validator on a string; None when Laravel would throw (unknown rule)."""
    names = [r.split(":", 1)[0] for r in rules]
    if value.strip() == "":
        return "required" not in names
    numeric_rule = "integer" in names or "numeric" in names
    is_num = re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*", value) is not None

    def size() -> float:
        return float(value) if numeric_rule and is_num else len(value)

    for rule in rules:
        name, _, arg = rule.partition(":")
        args = arg.split(",")
        if name in ("required", "nullable", "string", "sometimes", "bail"):
            ok = True
        elif name == "integer":
            ok = re.fullmatch(r"\s*[+-]?(0|[1-9]\d*)\s*", value) is not None
        elif name == "numeric":
            ok = is_num
        elif name == "boolean":
            ok = value in ("0", "1")
        elif name == "min":
            ok = size() >= float(arg)
        elif name == "max":
            ok = size() <= float(arg)
        elif name == "size":
            ok = size() == float(arg)
        elif name == "between":
            ok = float(args[0]) <= size() <= float(args[1])
        elif name == "in":
            ok = value in args
        elif name == "not_in":
            ok = value not in args
        elif name == "digits":
            ok = value.isdigit() and len(value) == int(arg)
        elif name == "digits_between":
            ok = value.isdigit() and int(args[0]) <= len(value) <= int(args[1])
        elif name == "regex":
            body, flags = arg[1:arg.rindex(arg[0])], arg[arg.rindex(arg[0]) + 1:]
            ok = re.search(body, value, re.I if "i" in flags else 0) is not None
        elif name == "alpha_dash":
            ok = re.fullmatch(r"[\w-]+", value) is not None
        elif name == "alpha_num":
            ok = re.fullmatch(r"[^\W_]+", value) is not None
        elif name == "url":
            ok = re.fullmatch(r"(https?|ftp)://[^\s/]+(/\S*)?", value) is not None
        else:
            return None
        if not ok:
            return False
    return True
