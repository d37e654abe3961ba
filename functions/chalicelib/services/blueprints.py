"""The blueprint catalogue as the control plane sees it: the bundled files, overlaid by the
blueprints admins imported (stored as immutable versions; the latest version of each wins)."""

from __future__ import annotations

import logging
from functools import lru_cache

from stellar_protocol.blueprint import Blueprint, Variable, load_catalogue

from ..config import settings
from ..store import get_store
from ..store.records import BlueprintVersion

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def bundled() -> dict[str, Blueprint]:
    return load_catalogue(settings().blueprints_dir)


def catalogue() -> dict[str, Blueprint]:
    """Bundled blueprints plus imported ones (one index query; imports take effect at once)."""
    found = dict(bundled())
    store = get_store().as_admin("blueprint catalogue")
    cursor = None
    while True:
        page = store.list_blueprints(limit=100, cursor=cursor)
        for version in page:
            try:
                found[version.blueprint_id] = Blueprint.model_validate(version.definition)
            except ValueError:
                log.error("stored blueprint %s v%s no longer validates", version.blueprint_id, version.number)
        cursor = page.cursor
        if not cursor:
            return found


def save_import(blueprint: Blueprint, admin_id: str) -> int:
    """Store an imported blueprint as its next immutable version; returns the version number."""
    version = BlueprintVersion(blueprint_id=blueprint.id, name=blueprint.name,
                               definition=blueprint.model_dump(mode="json", by_alias=True), created_by=admin_id)
    return get_store().as_admin("blueprint import", admin_id).create_blueprint_version(version).number


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
