"""Storage: one interface (``base.Store``), backends chosen by configuration.

``STELLAR_STORE=dynamodb`` (default; ``STELLAR_TABLE``) or ``postgres``
(``STELLAR_DATABASE_URL``, a DSN for the application role). ``get_store()`` is the unscoped
store; request code acts through ``for_principal`` (a user, or an audited admin bypass) and
the control plane's own machinery through ``get_store().as_admin(reason)``.
"""

from __future__ import annotations

from functools import lru_cache

from ..config import settings
from .base import Actor, BadCursor, Conflict, LimitReached, NotFound, Store, StoreError

__all__ = ["Actor", "BadCursor", "Conflict", "LimitReached", "NotFound", "Store", "StoreError", "for_principal",
           "get_store", "reset"]


@lru_cache(maxsize=1)
def get_store() -> Store:
    cfg = settings()
    if cfg.store == "postgres":
        from .postgres import PostgresStore

        return PostgresStore(cfg.database_url)
    from .dynamo import DynamoStore

    return DynamoStore(cfg.table_name, cfg.region)


def for_principal(user_id: str, is_admin: bool = False) -> Store:
    """The store acting for a signed-in user; admins act through a bypass naming them."""
    store = get_store()
    return store.as_admin(f"admin request by {user_id}", user_id) if is_admin else store.as_user(user_id)


def reset() -> None:
    if get_store.cache_info().currsize:
        get_store().close()
    get_store.cache_clear()
