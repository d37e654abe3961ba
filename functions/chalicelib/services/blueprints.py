"""The blueprint catalogue as the control plane sees it (bundled files for now)."""

from __future__ import annotations

from functools import lru_cache

from stellar_protocol.blueprint import Blueprint, Variable, load_catalogue

from ..config import settings


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Blueprint]:
    return load_catalogue(settings().blueprints_dir)


def public_view(bp: Blueprint) -> dict[str, object]:
    """What any signed-in user may see of a blueprint (no install script, no hidden variables)."""
    return {
        "id": bp.id,
        "name": bp.name,
        "description": bp.description,
        "category": bp.category,
        "images": list(bp.images),
        "features": bp.features,
        "variables": [
            {"name": v.name, "description": v.description, "env": v.env, "default": v.default,
             "user_editable": v.user_editable,
             # ``pattern``/``max_length`` for simple forms; ``rules`` is the full set the API enforces
             "pattern": v.rules.regex, "max_length": _max_length(v),
             "rules": v.rules.model_dump(mode="json", by_alias=True, exclude_defaults=True)}
            for v in bp.variables if v.user_viewable
        ],
    }


def _max_length(v: Variable) -> int:
    """The tightest length cap a form can enforce: the hard cap, or a string rule's max."""
    if v.rules.type not in ("integer", "numeric") and v.rules.max is not None:
        return min(v.max_length, int(v.rules.max))
    return v.max_length
