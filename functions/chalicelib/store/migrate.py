"""Versioned SQL migrations for the PostgreSQL backend, and the application role.

Run with an owner DSN (a role that may create tables and roles); the application then
connects as ``APP_ROLE``, which owns nothing, is no superuser and cannot bypass RLS, so the
policies in the migrations apply to it. Files ``migrations/NNNN_name.sql`` are applied in
order, each in its own transaction, under an advisory lock so two migrators never race.
"""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from psycopg import sql

MIGRATIONS = Path(__file__).with_name("migrations")
APP_ROLE = "stellar_app"
_LOCK_ID = 0x5745_4C4C  # any constant shared by every migrator


def pending(applied: set[int]) -> list[tuple[int, Path]]:
    files = []
    for path in sorted(MIGRATIONS.glob("*.sql")):
        match = re.match(r"^(\d{4})_[a-z0-9_]+\.sql$", path.name)
        if not match:
            raise ValueError(f"migration file {path.name} is not named NNNN_name.sql")
        if int(match.group(1)) not in applied:
            files.append((int(match.group(1)), path))
    return files


def ensure_app_role(conn: psycopg.Connection, password: str | None = None) -> None:
    """Create the login role the application uses (roles are cluster-wide; creation may race)."""
    exists = conn.execute("select 1 from pg_roles where rolname = %s", [APP_ROLE]).fetchone()
    if not exists:
        try:
            with conn.transaction():
                conn.execute(sql.SQL("create role {} login nosuperuser nocreatedb nocreaterole nobypassrls")
                             .format(sql.Identifier(APP_ROLE)))
        except psycopg.errors.DuplicateObject:
            pass
    if password:
        conn.execute(sql.SQL("alter role {} password {}").format(sql.Identifier(APP_ROLE), sql.Literal(password)))


def migrate(owner_dsn: str, app_password: str | None = None) -> list[str]:
    """Apply every pending migration; returns the names applied (empty when up to date)."""
    done: list[str] = []
    with psycopg.connect(owner_dsn, autocommit=True) as conn:
        ensure_app_role(conn, app_password)
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", [_LOCK_ID])
            conn.execute("create table if not exists schema_migrations ("
                         " version integer primary key, name text not null,"
                         " applied_at timestamptz not null default now())")
            applied = {r[0] for r in conn.execute("select version from schema_migrations")}
            for version, path in pending(applied):
                with conn.transaction():
                    conn.execute(path.read_text())  # type: ignore[arg-type]  # trusted, shipped file
                    conn.execute("insert into schema_migrations (version, name) values (%s, %s)",
                                 [version, path.name])
                done.append(path.name)
    return done


def app_dsn(owner_dsn: str, password: str | None = None) -> str:
    """The same database, reached as the application role."""
    info = psycopg.conninfo.conninfo_to_dict(owner_dsn)
    info["user"] = APP_ROLE
    info.pop("password", None)
    if password:
        info["password"] = password
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def database_dsn(admin_dsn: str, name: str) -> str:
    """``admin_dsn`` pointed at database ``name``."""
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)  # type: ignore[arg-type]


def create_database(admin_dsn: str, name: str) -> str:
    """Create database ``name`` (tests and the dev stack); returns its owner DSN."""
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return database_dsn(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
