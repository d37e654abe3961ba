"""The process-wide token verifier (keys are cached between requests of one Lambda)."""

from __future__ import annotations

from functools import lru_cache

from ..auth.jwt import TokenVerifier
from ..config import settings


@lru_cache(maxsize=1)
def verifier() -> TokenVerifier:
    cfg = settings()
    return TokenVerifier(cfg.jwt_issuer, cfg.jwks_url, cfg.app_client_id)
