"""`stellar dev --store postgres`: the same stack on PostgreSQL under row-level security. It comes
up, a server is created and read back through the API, and its database is gone once it stops."""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
import requests
from conftest import stack_options
from stellar.devstack import aws
from stellar.devstack.stack import DevStack


def _postgres_admin() -> str:
    dsn = os.environ.get("STELLAR_TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return dsn
    except psycopg.OperationalError:
        if os.environ.get("CI"):
            pytest.fail("CI: PostgreSQL at 127.0.0.1:5432 is required", pytrace=False)
        pytest.skip("PostgreSQL not available on this machine")


def _databases(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {r[0] for r in conn.execute("select datname from pg_database")}


def test_the_dev_stack_runs_on_postgres_and_drops_its_database(tmp_path):
    admin_dsn = _postgres_admin()
    opts = stack_options(tmp_path)
    opts.store, opts.database_admin_url = "postgres", admin_dsn
    before = _databases(admin_dsn)
    with DevStack(opts) as stack:
        from chalicelib.store import get_store
        from chalicelib.store.postgres import PostgresStore

        assert isinstance(get_store(), PostgresStore)
        ours = _databases(admin_dsn) - before
        assert len(ours) == 1
        assert stack.resources is not None
        email, password = f"pg-{uuid.uuid4().hex[:8]}@test.local", "Passw0rdPassw0rd"
        aws.ensure_user(stack.resources, email, password)
        api = stack.urls["api"]
        tokens = requests.post(f"{api}/auth/login", json={"email": email, "password": password}, timeout=10).json()
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        r = requests.post(f"{api}/servers", headers=headers, timeout=15, json={
            "name": "On Postgres", "blueprint_id": "demo", "location_id": "local",
            "variables": {"SERVER_NAME": "Pg"}})
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        got = requests.get(f"{api}/servers/{sid}", headers=headers, timeout=10)
        assert got.status_code == 200 and got.json()["name"] == "On Postgres"
        listed = requests.get(f"{api}/servers", headers=headers, params={"limit": 5}, timeout=10)
        assert [s["id"] for s in listed.json()] == [sid]
        (dbname,) = ours
        owner_dsn = psycopg.conninfo.make_conninfo(admin_dsn, dbname=dbname)
        with psycopg.connect(owner_dsn) as conn:
            row = conn.execute("select owner_id from servers where id = %s", [sid]).fetchone()
            assert row == (got.json()["owner_id"],)
            conn.execute("insert into admin_bypass (xid, reason, at)"
                         " values (pg_current_xact_id(), 'ancient', now() - interval '1000 days')")
        from chalicelib.services import grants

        grants.sweep()  # the minute ticker's job also applies the admin-bypass retention
        with psycopg.connect(owner_dsn) as conn:
            reasons = {r[0] for r in conn.execute("select reason from admin_bypass")}
        assert "ancient" not in reasons and "grant sweeper" in reasons
    assert dbname not in _databases(admin_dsn)
