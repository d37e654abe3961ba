"""Both store backends against real services: moto's DynamoDB in server mode, provisioned from
template.yaml, and a PostgreSQL database of this session's own (created, migrated, dropped)."""

from __future__ import annotations

import os
import threading
import urllib.request
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from chalicelib.store import migrate
from chalicelib.store.base import Store
from chalicelib.store.dynamo import DynamoStore
from chalicelib.store.postgres import PostgresStore
from chalicelib.store.records import Location, Node

ADMIN_DSN = os.environ.get("STELLAR_TEST_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_answers() -> bool:
    try:
        with psycopg.connect(ADMIN_DSN, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def _serial_moto(port: int = 0):  # noqa: ANN202  # a ThreadedMotoServer
    """moto, answering one request at a time.

    moto checks a TransactWriteItems' conditions and applies its writes without a lock, so two
    threads can both pass them (the races below then fail now and then); DynamoDB applies each
    request atomically. Serialising requests gives moto that per-request atomicity and nothing
    more: racing clients still interleave between requests exactly as they would against AWS.
    """
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    class SerialMotoServer(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app, lock = DomainDispatcherApplication(create_backend_app), threading.Lock()

            def serial(environ: dict, start_response):  # noqa: ANN001, ANN202
                with lock:
                    return list(app(environ, start_response))

            self._server = make_server(self._ip_address, self._port, serial, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return SerialMotoServer(ip_address="127.0.0.1", port=port, verbose=False)


@pytest.fixture(scope="module")
def dynamo_endpoint() -> Iterator[tuple[str, str]]:
    from stellar.devstack import aws

    server = _serial_moto()
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
    res = aws.provision(endpoint, prefix=f"st-{uuid.uuid4().hex[:6]}")
    yield endpoint, res.table
    server.stop()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[tuple[str, str]]:
    """(owner DSN, app-role DSN) of a fresh, migrated database dropped at the end."""
    if not _postgres_answers():
        if os.environ.get("CI"):
            pytest.fail("CI: PostgreSQL at 127.0.0.1:5432 is required", pytrace=False)
        pytest.skip("PostgreSQL not available on this machine")
    name = f"stellar_test_{uuid.uuid4().hex[:10]}"
    owner = migrate.create_database(ADMIN_DSN, name)
    try:
        migrate.migrate(owner)
        yield owner, migrate.app_dsn(owner)
    finally:
        migrate.drop_database(ADMIN_DSN, name)


@pytest.fixture(scope="module")
def pg_store(pg_database: tuple[str, str]) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_database[1], max_size=8)
    yield store
    store.close()


@pytest.fixture(params=["dynamodb", "postgres"])
def store(request: pytest.FixtureRequest) -> Store:
    """The unscoped store of one backend (tests pick the actor they act as)."""
    if request.param == "dynamodb":
        endpoint, table = request.getfixturevalue("dynamo_endpoint")
        return DynamoStore(table, "us-east-1", host=endpoint)  # rebinds the model to this moto
    return request.getfixturevalue("pg_store")


def uid(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex[:10]


@pytest.fixture
def node(store: Store) -> Node:
    """A location and a node with a small port range, created through the admin bypass."""
    admin = store.as_admin("test fixture")
    loc = Location(id=uid("loc"), name="Test")
    admin.create_location(loc)
    n = Node(id=uid("node"), name="n", location_id=loc.id, memory_mb=4096, disk_mb=10_000,
             port_start=30000, port_end=30009, status="online")
    admin.put_node(n)
    return n
