"""`stellar dev`: the whole stack on one machine, started in order and stopped in reverse.

Local AWS (moto, or the endpoint in AWS_ENDPOINT_URL), an MQTT broker of our own, the
control plane behind a local HTTP server with the web app, the event bridge and ticker,
and one node agent in the location "local". The same class backs the end-to-end tests,
which start it on free ports in a temporary directory.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import aws
from .template import REPO

log = logging.getLogger(__name__)

FUNCTIONS_DIR = REPO / "functions"
WEB_DIST = REPO / "web" / "dist"
LOCATION_ID = "local"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class StackOptions:
    data_dir: Path = REPO / ".stellar" / "dev"
    http_port: int = 8080
    aws_port: int = 4566
    mqtt_port: int = 18830
    ws_port: int = 18831
    broker: str = "auto"  # auto | mosquitto | embedded
    runtime: str = "auto"  # auto | docker | process
    admin_email: str = field(default_factory=lambda: os.environ.get("STELLAR_ADMIN_EMAIL", "admin@stellar.local"))
    admin_password: str = field(default_factory=lambda: os.environ.get("STELLAR_ADMIN_PASSWORD", "StellarAdmin1"))
    node_memory_mb: int = 8192
    node_ports: tuple[int, int] = (30000, 30099)
    stop_timeout_s: float = 30.0
    grant_ttl_s: int = 900
    node_id: str = "local-1"  # tests give each stack its own, so stacks never touch each other's containers
    liveness_interval_s: float = 1.0  # how often silent nodes are marked offline
    fresh: bool = True  # moto keeps nothing on disk, so agent state from an older run is stale
    store: str = "dynamodb"  # dynamodb | postgres
    # postgres: a DSN allowed to create databases and roles; the stack makes its own database
    database_admin_url: str = field(default_factory=lambda: os.environ.get(
        "STELLAR_DATABASE_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))


class DevStack:
    def __init__(self, options: StackOptions | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        self.opts = options or StackOptions()
        self.progress = progress or (lambda msg: log.info("%s", msg))
        self._stops: list[Callable[[], None]] = []
        self.urls: dict[str, str] = {}
        self.app: Any = None
        self.agent: Any = None
        self.broker: Any = None
        self.resources: aws.Resources | None = None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> DevStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._stops:
            fn = self._stops.pop()
            try:
                fn()
            except Exception:
                log.exception("while stopping")

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        opts = self.opts
        local_aws = aws.LocalAws(port=opts.aws_port)
        endpoint = local_aws.start()
        self._stops.append(local_aws.stop)
        self.progress(f"local AWS at {endpoint}" + (" (external)" if local_aws.external else " (moto)"))
        if opts.fresh and opts.data_dir.exists() and not local_aws.external:
            self._remove_containers()
            shutil.rmtree(opts.data_dir, ignore_errors=True)
        opts.data_dir.mkdir(parents=True, exist_ok=True)
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        for key, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test"),
                           ("AWS_DEFAULT_REGION", "us-east-1")):
            os.environ.setdefault(key, value)
        self.resources = res = aws.provision(endpoint, region=os.environ["AWS_DEFAULT_REGION"])
        self.progress(f"provisioned table {res.table}, user pool {res.user_pool_id}")

        secrets_ = self._secrets()
        from stellar.broker import start_broker

        self.broker = start_broker(opts.data_dir / "broker", opts.mqtt_port, opts.ws_port,
                                   "stellar-admin", secrets_["broker_admin"], prefer=opts.broker)
        self._stops.append(self.broker.stop)
        self.progress(f"MQTT broker ({self.broker.kind}) on tcp://127.0.0.1:{self.broker.tcp_port} "
                      f"and {self.broker.ws_url}")

        self._configure_control_plane(res, secrets_["broker_admin"])
        self._seed(res, secrets_)
        self._start_bridge(secrets_["broker_admin"])
        self._start_agent(secrets_)
        self._start_http()

    # -- pieces ---------------------------------------------------------------------------

    def _remove_containers(self) -> None:
        """Remove this stack's game-server containers and their networks (state is not kept between runs)."""
        try:
            from stellar.images import docker_available

            if docker_available():
                import docker

                client = docker.from_env()
                mine = {"label": f"stellar.node={self.opts.node_id}"}
                for c in client.containers.list(all=True, filters=mine):
                    c.remove(force=True)
                for network in client.networks.list(filters=mine):
                    network.remove()
        except Exception as exc:  # cleaning is best effort; the agent copes with strays
            log.warning("could not remove containers: %s", exc)

    def _secrets(self) -> dict[str, str]:
        path = self.opts.data_dir / "secrets.json"
        if path.exists():
            return dict(json.loads(path.read_text()))
        values = {"broker_admin": secrets.token_urlsafe(24), "node": secrets.token_urlsafe(24)}
        path.write_text(json.dumps(values))
        path.chmod(0o600)
        return values

    def _configure_control_plane(self, res: aws.Resources, broker_password: str) -> None:
        env = {
            "STELLAR_TABLE": res.table,
            "STELLAR_USER_POOL_ID": res.user_pool_id,
            "STELLAR_APP_CLIENT_ID": res.app_client_id,
            "STELLAR_BROKER_HOST": "127.0.0.1",
            "STELLAR_BROKER_PORT": str(self.broker.tcp_port),
            "STELLAR_BROKER_WS_URL": self.broker.ws_url,
            "STELLAR_BROKER_ADMIN_USERNAME": "stellar-admin",
            "STELLAR_BROKER_ADMIN_PASSWORD": broker_password,
            "STELLAR_GRANT_TTL_S": str(self.opts.grant_ttl_s),
            "STELLAR_AUTO_CONFIRM": "1",  # no mail server locally: sign-ups are confirmed at once
            "STELLAR_STORE": self.opts.store,
            "STELLAR_BACKUP_BUCKET": res.backup_bucket,
        }
        if self.opts.store == "postgres":
            env["STELLAR_DATABASE_URL"] = self._postgres()
        os.environ.update(env)
        if str(FUNCTIONS_DIR) not in sys.path:
            sys.path.insert(0, str(FUNCTIONS_DIR))
        from chalicelib import reset_all

        reset_all()
        import app as control_plane

        self.app = control_plane.app
        self._stops.append(reset_all)

    def _postgres(self) -> str:
        """A database of this stack's own, migrated; returns the application role's DSN."""
        if str(FUNCTIONS_DIR) not in sys.path:
            sys.path.insert(0, str(FUNCTIONS_DIR))
        from chalicelib.store import migrate

        name = "stellar_" + "".join(c if c.isalnum() else "_" for c in self.opts.node_id.lower())
        if self.opts.fresh:  # Cognito (moto) starts empty, so older rows would name unknown users
            migrate.drop_database(self.opts.database_admin_url, name)
        try:
            owner_dsn = migrate.create_database(self.opts.database_admin_url, name)
        except migrate.psycopg.errors.DuplicateDatabase:  # kept from an earlier run (fresh=False)
            owner_dsn = migrate.database_dsn(self.opts.database_admin_url, name)
        if self.opts.fresh:  # nothing in it outlives this stack's moto: drop it when the stack stops
            self._stops.append(lambda: migrate.drop_database(self.opts.database_admin_url, name))
        applied = migrate.migrate(owner_dsn)
        self.progress(f"PostgreSQL database {name} ({len(applied)} migrations applied), "
                      f"app role {migrate.APP_ROLE} under row-level security")
        return migrate.app_dsn(owner_dsn)

    def _seed(self, res: aws.Resources, secrets_: dict[str, str]) -> None:
        from chalicelib.services import messaging
        from chalicelib.store import Conflict, NotFound, get_store
        from chalicelib.store.records import Location, Node, User

        opts = self.opts
        admin_id = aws.ensure_user(res, opts.admin_email, opts.admin_password, admin=True)
        store = get_store().as_admin("dev stack seed")
        try:
            store.get_user(admin_id)
        except NotFound:
            store.put_user(User(id=admin_id, email=opts.admin_email, admin=True))
        try:
            store.create_location(Location(id=LOCATION_ID, name="Local"))
        except Conflict:
            pass
        try:
            store.get_node(opts.node_id)
        except NotFound:
            store.put_node(Node(id=opts.node_id, name="This machine", location_id=LOCATION_ID, address="127.0.0.1",
                                memory_mb=opts.node_memory_mb, disk_mb=50_000, port_start=opts.node_ports[0],
                                port_end=opts.node_ports[1]))
        with messaging.broker_admin() as admin:
            self.node_username = admin.ensure_node_identity(opts.node_id, secrets_["node"])

    def _start_bridge(self, broker_password: str) -> None:
        from chalicelib.services import events, grants, nodes, schedules

        from .bridge import Ticker, event_bridge

        bridge = event_bridge("127.0.0.1", self.broker.tcp_port, "stellar-admin", broker_password, events.ingest)
        bridge.start(timeout=10)
        self._stops.append(bridge.close)
        ticker = Ticker(grants.sweep, interval=60)
        ticker.start()
        self._stops.append(ticker.stop)
        # Server schedules: the same tick as the EventBridge rule (every minute); idempotent across tickers.
        schedule_ticker = Ticker(schedules.tick, interval=60)
        schedule_ticker.start()
        self._stops.append(schedule_ticker.stop)
        # Nodes whose heartbeats stopped are written down as offline well within 10 s.
        liveness = Ticker(nodes.sweep, interval=self.opts.liveness_interval_s)
        liveness.start()
        self._stops.append(liveness.stop)

    def _start_agent(self, secrets_: dict[str, str]) -> None:
        from stellar_agent.agent import Agent
        from stellar_agent.config import AgentConfig
        from stellar_agent.runtime import select_runtime

        config = AgentConfig(node_id=self.opts.node_id, broker_host="127.0.0.1", broker_port=self.broker.tcp_port,
                             broker_username=self.node_username, broker_password=secrets_["node"],
                             data_dir=self.opts.data_dir / "node", runtime=self.opts.runtime,  # type: ignore[arg-type]
                             stop_timeout_s=self.opts.stop_timeout_s)
        runtime = select_runtime(config)
        if runtime.name == "docker":
            from stellar.images import ensure_demo_image

            ensure_demo_image(progress=self.progress)
        self.agent = Agent(config, runtime=runtime)
        self.agent.start()
        self._stops.append(self._stop_agent)
        isolation = "isolated" if runtime.isolated else "UNISOLATED: game servers run as plain processes"
        self.progress(f"node agent {self.opts.node_id} in location '{LOCATION_ID}' using the {runtime.name} runtime "
                      f"({isolation})")

    def _stop_agent(self) -> None:
        """Dev only: stop the game servers too, so Ctrl-C leaves nothing running."""
        self.agent.stop_all_servers()
        self.agent.stop()
        if self.opts.fresh:
            self._remove_containers()

    def _start_http(self) -> None:
        from .http import FrontApp, HttpServer

        front = FrontApp(self.app, WEB_DIST, csp_connect=f"ws://127.0.0.1:{self.broker.ws_port}")
        server = HttpServer(front, port=self.opts.http_port)
        server.start()
        self._stops.append(server.stop)
        self.urls = {
            "panel": f"{server.url}/",
            "api": f"{server.url}/api",
            "openapi": f"{server.url}/api/openapi.json",
            "mqtt": f"tcp://127.0.0.1:{self.broker.tcp_port}",
            "mqtt_ws": self.broker.ws_url,
            "aws": os.environ["AWS_ENDPOINT_URL"],
        }
