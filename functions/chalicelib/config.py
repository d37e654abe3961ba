"""Control-plane settings, read from the environment once per process.

Lambda, `stellar dev` and the tests all configure the control plane the same way: through
environment variables. Locally `AWS_ENDPOINT_URL` points every AWS client at moto (or a
user's LocalStack); in AWS it is unset. Issuer and JWKS URL are separate settings because
moto issues tokens whose ``iss`` names the real AWS host while serving keys locally.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


class ConfigError(RuntimeError):
    """A required setting is missing or malformed."""


def _req(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"environment variable {name} is required")
    return value


@dataclass(frozen=True)
class Settings:
    region: str
    table_name: str
    user_pool_id: str
    app_client_id: str
    jwt_issuer: str
    jwks_url: str
    broker_host: str
    broker_port: int
    broker_ws_url: str
    broker_admin_username: str
    broker_admin_password: str
    blueprints_dir: Path
    grant_ttl_s: int
    store: str = "dynamodb"  # dynamodb | postgres
    database_url: str = ""  # PostgreSQL DSN for the application role (STELLAR_STORE=postgres)

    @staticmethod
    def from_env() -> Settings:
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        pool = _req("STELLAR_USER_POOL_ID")
        issuer = os.environ.get("STELLAR_JWT_ISSUER") or f"https://cognito-idp.{region}.amazonaws.com/{pool}"
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "").rstrip("/")
        default_jwks = f"{endpoint}/{pool}/.well-known/jwks.json" if endpoint else f"{issuer}/.well-known/jwks.json"
        default_bp = Path(__file__).resolve().parents[2] / "blueprints"
        store = os.environ.get("STELLAR_STORE", "dynamodb").strip() or "dynamodb"
        if store not in {"dynamodb", "postgres"}:
            raise ConfigError(f"STELLAR_STORE must be dynamodb or postgres, not {store!r}")
        return Settings(
            region=region,
            table_name=_req("STELLAR_TABLE") if store == "dynamodb" else os.environ.get("STELLAR_TABLE", ""),
            user_pool_id=pool,
            app_client_id=_req("STELLAR_APP_CLIENT_ID"),
            jwt_issuer=issuer,
            jwks_url=os.environ.get("STELLAR_JWKS_URL") or default_jwks,
            broker_host=os.environ.get("STELLAR_BROKER_HOST", "127.0.0.1"),
            broker_port=int(os.environ.get("STELLAR_BROKER_PORT", "1883")),
            broker_ws_url=os.environ.get("STELLAR_BROKER_WS_URL", ""),
            broker_admin_username=os.environ.get("STELLAR_BROKER_ADMIN_USERNAME", ""),
            broker_admin_password=os.environ.get("STELLAR_BROKER_ADMIN_PASSWORD", ""),
            blueprints_dir=Path(os.environ.get("STELLAR_BLUEPRINTS_DIR") or default_bp),
            grant_ttl_s=int(os.environ.get("STELLAR_GRANT_TTL_S", "900")),
            store=store,
            database_url=_req("STELLAR_DATABASE_URL") if store == "postgres" else "",
        )


@lru_cache(maxsize=1)
def settings() -> Settings:
    return Settings.from_env()


def reset() -> None:
    """Forget cached settings (tests and the dev stack change the environment)."""
    settings.cache_clear()
