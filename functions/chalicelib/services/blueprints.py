"""The blueprint catalogue as the control plane sees it (bundled files for now)."""

from __future__ import annotations

from functools import lru_cache

from stellar_protocol.blueprint import Blueprint, load_catalogue

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
        "variables": [
            {"name": v.name, "description": v.description, "env": v.env, "default": v.default,
             "user_editable": v.user_editable, "pattern": v.pattern, "max_length": v.max_length}
            for v in bp.variables if v.user_viewable
        ],
    }
