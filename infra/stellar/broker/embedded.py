"""An in-process MQTT broker (amqtt 0.12.1) enforcing the same dynsec model as Mosquitto.

Used when no ``mosquitto`` binary exists. It runs on its own thread and event loop, with
a TCP and a WebSocket listener on 127.0.0.1. ``DynsecPlugin`` answers amqtt's
authentication and topic-filtering hooks from a ``DynsecStore``; ``StellarBroker``
patches the places where amqtt has no hook:

* ``$CONTROL/dynamic-security/v1`` is executed (amqtt would drop the connection for a
  ``$`` topic) and answered on ``.../response``; clients are disconnected the way
  Mosquitto does it (deleteClient, setClientPassword, role changes on a client).
* credentials are checked *before* amqtt touches an existing session with the same
  client id, so a stranger cannot wipe or take over someone's session;
* unsubscribe ACLs are applied, and retained messages are delivered only where the
  receive ACL allows (amqtt checks receive only for live publishes).

Retained messages persist in ``data_dir/retained.json``; sessions do not survive a
restart (Mosquitto's do).
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.errors import AMQTTError, MQTTError, NoDataError
from amqtt.events import BrokerEvents
from amqtt.mqtt.connack import NOT_AUTHORIZED, ConnackPacket
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.plugins.base import BaseAuthPlugin, BasePlugin, BaseTopicPlugin
from amqtt.session import Session
from amqtt.utils import gen_client_id

from . import acl, dynsec_file
from .dynsec_store import COMMAND_TOPIC, RESPONSE_TOPIC, DynsecStore
from .handle import BrokerHandle, BrokerStartError, wait_ready

HOST = "127.0.0.1"
RETAINED_FILE = "retained.json"
_ACCESS = {Action.PUBLISH: acl.SEND, Action.RECEIVE: acl.RECEIVE, Action.SUBSCRIBE: acl.SUBSCRIBE}
_PREAUTH = "_stellar_preauthenticated"


class DynsecPlugin(BaseAuthPlugin, BaseTopicPlugin):
    """amqtt's authentication and topic hooks, answered by the dynsec store."""

    @dataclass
    class Config:
        store_path: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.store = DynsecStore(Path(self.config.store_path))

    async def authenticate(self, *, session: Session) -> bool | None:
        if getattr(session, _PREAUTH, False):
            setattr(session, _PREAUTH, False)  # consumed once, by the very next check
            return True
        return self.store.authenticate(session.username, session.password)

    async def topic_filtering(
        self, *, session: Session | None = None, topic: str | None = None, action: Action | None = None
    ) -> bool | None:
        if session is None or topic is None or action not in _ACCESS:
            return False
        return self.store.allowed(session.username, _ACCESS[action], topic)


class RetainedStorePlugin(BasePlugin[BaseContext]):
    """Keep retained messages (e.g. server state, node status) across restarts."""

    @dataclass
    class Config:
        path: str = ""

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self.path = Path(self.config.path)
        self.messages: dict[str, dict[str, Any]] = {}

    async def on_broker_post_start(self) -> None:
        if self.path.exists():
            saved = json.loads(self.path.read_text())
            for topic, msg in saved.items():
                await self.context.retain_message(topic, base64.b64decode(msg["data"]), msg.get("qos") or 0)  # type: ignore[attr-defined]

    async def on_broker_retained_message(self, *, client_id: str | None, retained_message: Any) -> None:
        if client_id is not None:  # a message queued for an offline session, not a retained topic
            return
        if retained_message.data:
            self.messages[retained_message.topic] = {
                "data": base64.b64encode(bytes(retained_message.data)).decode(),
                "qos": retained_message.qos,
            }
        else:
            self.messages.pop(retained_message.topic, None)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self.messages))
        tmp.replace(self.path)


class StellarBroker(Broker):
    """amqtt's Broker with the dynsec control topic and stricter access checks."""

    @property
    def dynsec(self) -> DynsecStore:
        plugin = self.plugins_manager.get_plugin("DynsecPlugin")
        assert isinstance(plugin, DynsecPlugin)
        return plugin.store

    async def disconnect_users(self, usernames: set[str]) -> None:
        """Drop live connections of these users without publishing their wills."""
        for session, handler in list(self._sessions.values()):
            if session.username in usernames and session.transitions.is_connected():
                session.will_flag = False
                await handler.handle_connection_closed()

    async def _initialize_client_session(
        self, reader: Any, writer: Any, remote_address: str, remote_port: int
    ) -> tuple[BrokerProtocolHandler, Session]:
        # Same as amqtt 0.12.1, except the credentials are checked first: upstream
        # deletes or adopts the existing session of this client id before authenticating.
        try:
            handler, incoming = await BrokerProtocolHandler.init_from_connect(
                reader, writer, self.plugins_manager
            )
        except (AMQTTError, NoDataError) as exc:
            raise AMQTTError(exc) from exc
        except MQTTError:
            await writer.close()
            raise
        if not self.dynsec.authenticate(incoming.username, incoming.password):
            await ConnackPacket.build(0, NOT_AUTHORIZED).to_stream(writer)
            await writer.close()
            raise MQTTError(f"bad credentials for user {incoming.username!r} from {remote_address}")

        session = incoming
        if incoming.clean_session:
            if incoming.client_id:
                await self._delete_session(incoming.client_id)
            else:
                incoming.client_id = gen_client_id()
            incoming.parent = 0
        elif incoming.client_id in self._sessions:
            session = self._sessions[incoming.client_id][0]
            for attr in ("will_flag", "will_message", "will_topic", "will_qos", "keep_alive",
                         "username", "password"):
                setattr(session, attr, getattr(incoming, attr))
            session.parent = 1
        else:
            incoming.parent = 0
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        setattr(session, _PREAUTH, True)
        return handler, session

    async def _handle_message_delivery(
        self, client_session: Session, handler: BrokerProtocolHandler, wait_deliver: asyncio.Future[Any]
    ) -> bool:
        message = wait_deliver.result()
        topic = getattr(message, "topic", None) or ""
        if topic == COMMAND_TOPIC:
            if await self._topic_filtering(client_session, topic=topic, action=Action.PUBLISH):
                response, kick = self.dynsec.handle(bytes(message.data or b""))
                await self._broadcast_message(None, RESPONSE_TOPIC, response)
                await self.disconnect_users(kick)
            return True
        if topic.startswith("$"):
            return True  # refused like a Mosquitto ACL denial: dropped, connection kept
        return await super()._handle_message_delivery(client_session, handler, wait_deliver)

    async def _handle_unsubscription(
        self, client_session: Session, handler: BrokerProtocolHandler, unsubscribe_waiter: asyncio.Future[Any]
    ) -> None:
        unsubscription = unsubscribe_waiter.result()
        for topic in unsubscription.topics:
            if self.dynsec.allowed(client_session.username, acl.UNSUBSCRIBE, topic):
                self._del_subscription(topic, client_session)
                await self.plugins_manager.fire_event(
                    BrokerEvents.CLIENT_UNSUBSCRIBED, client_id=client_session.client_id, topic=topic
                )
        await handler.mqtt_acknowledge_unsubscription(unsubscription.packet_id)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        topic_filter, qos = subscription
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = [
            asyncio.ensure_future(
                handler.mqtt_publish(msg.topic, msg.data, min(qos, msg.qos or qos), retain=True)
            )
            for topic, msg in list(self._retained_messages.items())
            if self._matches(topic, topic_filter)
            and self.dynsec.allowed(session.username, acl.RECEIVE, topic)
        ]
        if tasks:
            await asyncio.wait(tasks)


class _Runner:
    """Owns the broker's thread and event loop."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.broker: StellarBroker | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="stellar-embedded-broker", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # reported to the starting thread
            self.error = exc
            self.loop.close()
            self.ready.set()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(self.loop) if not t.done()]
            for task in pending:
                task.cancel()
            self.loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self.loop.close()

    async def _start(self) -> None:
        broker = StellarBroker(self.config)
        try:
            await broker.start()
        except BaseException:
            # amqtt leaves already-bound listeners open when a later one fails.
            for server in broker._servers.values():
                await server.close_instance()
            raise
        self.broker = broker

    def start(self, timeout: float) -> None:
        self.thread.start()
        if not self.ready.wait(timeout):
            raise BrokerStartError(f"embedded broker did not start within {timeout}s")
        if self.error is not None:
            raise BrokerStartError(f"embedded broker failed to start: {self.error!r}") from self.error

    def stop(self) -> None:
        if not self.thread.is_alive() or self.loop.is_closed():
            self.thread.join(timeout=10)
            return
        if self.broker is not None:
            future = asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop)
            try:
                future.result(timeout=10)
            except Exception:  # still stop the loop; shutdown errors must not leak a thread
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


def broker_config(data_dir: Path, tcp_port: int, ws_port: int, store_path: Path) -> dict[str, Any]:
    return {
        "listeners": {
            "default": {"type": "tcp", "bind": f"{HOST}:{tcp_port}"},
            "ws": {"type": "ws", "bind": f"{HOST}:{ws_port}"},
        },
        "plugins": {
            f"{__name__}.DynsecPlugin": {"store_path": str(store_path)},
            f"{__name__}.RetainedStorePlugin": {"path": str(data_dir / RETAINED_FILE)},
        },
    }


def start(
    data_dir: Path,
    tcp_port: int,
    ws_port: int,
    admin_username: str,
    admin_password: str,
    timeout: float = 10.0,
) -> BrokerHandle:
    data_dir.mkdir(parents=True, exist_ok=True)
    store_path = dynsec_file.prepare(data_dir, admin_username, admin_password)
    runner = _Runner(broker_config(data_dir, tcp_port, ws_port, store_path))
    try:
        runner.start(timeout)
        wait_ready(HOST, tcp_port, ws_port, admin_username, admin_password, timeout,
                   alive=runner.thread.is_alive, log_tail=lambda: repr(runner.error))
    except BaseException:
        runner.stop()
        raise
    return BrokerHandle("embedded", HOST, tcp_port, ws_port, _stopper=runner.stop)
