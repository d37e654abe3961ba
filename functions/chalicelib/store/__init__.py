"""Storage: one interface (``base.Store``), backends chosen by configuration."""

from __future__ import annotations

from functools import lru_cache

from ..config import settings
from .base import Conflict, NotFound, Store, StoreError

__all__ = ["Conflict", "NotFound", "Store", "StoreError", "get_store", "reset"]


@lru_cache(maxsize=1)
def get_store() -> Store:
    from .dynamo import DynamoStore

    cfg = settings()
    return DynamoStore(cfg.table_name, cfg.region)


def reset() -> None:
    get_store.cache_clear()
