"""Admin blueprint tools: import a Pterodactyl/Pelican egg (or one of our blueprints).

The answer is the converted blueprint and the importer's warnings. With ``save`` the result is
stored as the blueprint's next immutable version and offered for new servers at once.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from pydantic import BaseModel, ConfigDict, Field
from stellar_protocol.blueprint import BlueprintError
from stellar_protocol.eggs import import_text

from ..errors import invalid
from ..services.blueprints import save_import
from .routing import Context, api_route

bp = Blueprint(__name__)

MAX_IMPORT_CHARS = 1_000_000  # the largest public eggs are ~60 kB


class ImportBody(BaseModel):
    """The egg or blueprint text, JSON or YAML, as uploaded."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=MAX_IMPORT_CHARS)
    filename: str | None = Field(default=None, max_length=256)
    save: bool = False


@api_route(bp, "/admin/blueprints/import", "POST", admin=True, body=ImportBody,
           summary="Convert an egg (PTDL_v1/v2, PLCN_v1-v3) or a blueprint; answers the blueprint and warnings")
def import_blueprint(ctx: Context) -> dict[str, Any]:
    body: ImportBody = ctx.body
    try:
        result = import_text(body.content, body.filename or "upload")
    except BlueprintError as exc:
        raise invalid({"content": str(exc)}, str(exc)) from None
    out: dict[str, Any] = {
        "blueprint": result.blueprint.to_json(),
        "warnings": result.warnings,
        "source_format": result.source_format,
    }
    if body.save:
        out["version"] = save_import(result.blueprint, ctx.user.user_id)
    return out
