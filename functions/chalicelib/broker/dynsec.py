"""Grant and revoke broker credentials through Mosquitto's dynamic-security protocol.

The control plane publishes JSON commands to ``$CONTROL/dynamic-security/v1`` and reads
replies on ``.../response`` (what ``mosquitto_ctrl`` does). The embedded broker speaks
the same protocol, so this client works against both. MQTT 3.1.1 is used because the
embedded broker (amqtt) does not speak MQTT 5; replies are matched by the
``correlationData`` field that dynsec echoes back.

Access model (dynsec defaults: publishClientSend deny, publishClientReceive allow,
subscribe deny, unsubscribe allow). Every role we create ends with explicit low-priority
denies so it does not lean on those defaults:

* publishClientSend ``#`` deny: already the default; explicit so a changed
  ``defaultACLAccess`` cannot let a viewer publish.
* subscribePattern ``#`` deny: already the default; same reason.
* publishClientReceive ``#`` deny: the default is *allow*. That is harmless only while
  every subscription a client holds was itself checked against the role, which stops
  being true for persistent sessions created under an older grant, for retained or
  queued messages, or if someone later widens the subscribe ACL. Denying receive outside
  the granted subtree closes that gap at delivery time.
* unsubscribe stays at the default allow: unsubscribing only narrows what a client gets.

Dynsec evaluates a client's roles by priority and, within a role, ACLs by priority; the
first match decides. Allows get priority 10 and the catch-all denies priority 0, so a
client with one role sees exactly its allows. (A second role of higher priority would be
shadowed by nothing, but one of lower priority would be shadowed by these denies: our
clients hold exactly one role.)
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as mqtt
from stellar_protocol import topics

COMMAND_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{COMMAND_TOPIC}/response"
ALLOW_PRIORITY = 10
DENY_PRIORITY = 0

Acl = dict[str, Any]


class BrokerAdminError(RuntimeError):
    """The broker refused a dynsec command, or could not be reached in time."""

    def __init__(self, command: str, error: str) -> None:
        super().__init__(f"dynsec {command}: {error}")
        self.command = command
        self.error = error


def allow(acltype: str, topic: str) -> Acl:
    return {"acltype": acltype, "topic": topic, "priority": ALLOW_PRIORITY, "allow": True}


def deny_everything_else() -> list[Acl]:
    """Catch-all denies appended to every role; see the module docstring for why."""
    return [
        {"acltype": t, "topic": "#", "priority": DENY_PRIORITY, "allow": False}
        for t in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]


def node_role(node_id: str) -> str:
    return f"node-{topics.check_id(node_id, 'node id')}"


def node_acls(node_id: str) -> list[Acl]:
    """A node may publish in its subtree and receive only its own command topic."""
    return [
        allow("subscribeLiteral", topics.node_commands(node_id)),
        allow("publishClientSend", topics.node_filter(node_id)),
        allow("publishClientReceive", topics.node_commands(node_id)),
        *deny_everything_else(),
    ]


def viewer_role(username: str) -> str:
    return f"viewer-{username}"


def viewer_acls(node_id: str, server_id: str) -> list[Acl]:
    """A browser grant may subscribe to (and receive) one server's subtree, nothing else."""
    flt = topics.server_viewer_filter(node_id, server_id)
    return [
        allow("subscribePattern", flt),
        allow("publishClientReceive", flt),
        *deny_everything_else(),
    ]


def _acl_key(acl: Acl) -> tuple[str, str, int, bool]:
    return (acl["acltype"], acl["topic"], int(acl.get("priority", -1)), bool(acl.get("allow", False)))


class DynsecAdmin:
    """A connected dynsec admin session; use as a context manager or call ``close()``."""

    def __init__(self, host: str, port: int, username: str, password: str, timeout: float = 15.0) -> None:
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._responses: dict[str, dict[str, Any]] = {}
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._connect_rc: Any = None
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"stellar-dynsec-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv311,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = self._on_message
        try:
            self._client.connect(host, port, keepalive=30)
        except OSError as exc:
            raise BrokerAdminError("connect", f"{host}:{port} unreachable: {exc}") from exc
        self._client.loop_start()
        if not self._connected.wait(timeout) or self._connect_rc != 0:
            self.close()
            raise BrokerAdminError("connect", f"not accepted by {host}:{port} (rc={self._connect_rc})")
        if not self._subscribed.wait(timeout):
            self.close()
            raise BrokerAdminError("connect", "no SUBACK for the dynsec response topic")

    # -- transport -------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: Any, _p: object) -> None:
        self._connect_rc = 0 if rc == 0 else rc
        if rc == 0:
            client.subscribe(RESPONSE_TOPIC, qos=1)
        self._connected.set()

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
        except ValueError:
            return
        with self._cond:
            for response in doc.get("responses", []):
                corr = response.get("correlationData")
                if isinstance(corr, str):
                    self._responses[corr] = response
            self._cond.notify_all()

    def command(self, name: str, **fields: Any) -> dict[str, Any]:
        """Send one command and return its response; raise BrokerAdminError on ``error``."""
        corr = uuid.uuid4().hex
        payload = json.dumps({"commands": [{"command": name, "correlationData": corr, **fields}]})
        with self._lock:
            info = self._client.publish(COMMAND_TOPIC, payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerAdminError(name, f"publish failed ({mqtt.error_string(info.rc)})")
        with self._cond:
            if not self._cond.wait_for(lambda: corr in self._responses, self.timeout):
                raise BrokerAdminError(name, f"no response within {self.timeout}s")
            response = self._responses.pop(corr)
        if response.get("error"):
            raise BrokerAdminError(name, str(response["error"]))
        return response

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> DynsecAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- clients and roles ------------------------------------------------------------

    def create_client(self, username: str, password: str, roles: Iterable[str] = ()) -> None:
        self.command(
            "createClient",
            username=username,
            password=password,
            roles=[{"rolename": r, "priority": -1} for r in roles],
        )

    def delete_client(self, username: str) -> None:
        """Delete (and disconnect) a client; a missing client is not an error."""
        try:
            self.command("deleteClient", username=username)
        except BrokerAdminError as exc:
            if exc.error != "Client not found":
                raise

    def get_client(self, username: str) -> dict[str, Any] | None:
        try:
            return self.command("getClient", username=username)["data"]["client"]
        except BrokerAdminError as exc:
            if exc.error == "Client not found":
                return None
            raise

    def list_clients(self) -> list[str]:
        return list(self.command("listClients", verbose=False, count=-1)["data"]["clients"])

    def create_role(self, name: str, acls: Iterable[Acl]) -> None:
        """Create a role, or converge an existing one to exactly ``acls``."""
        wanted = {_acl_key(a): a for a in acls}
        try:
            self.command("createRole", rolename=name, acls=list(wanted.values()))
            return
        except BrokerAdminError as exc:
            if exc.error != "Role already exists":
                raise
        have = {_acl_key(a) for a in self.command("getRole", rolename=name)["data"]["role"].get("acls", [])}
        for acltype, topic, _prio, _allow in have - set(wanted):
            self.command("removeRoleACL", rolename=name, acltype=acltype, topic=topic)
        for key in set(wanted) - have:
            acl = wanted[key]
            try:
                self.command("addRoleACL", rolename=name, **acl)
            except BrokerAdminError as exc:
                if exc.error != "ACL with this topic already exists":
                    raise
                # Same type and topic with another priority/allow: replace it.
                self.command("removeRoleACL", rolename=name, acltype=acl["acltype"], topic=acl["topic"])
                self.command("addRoleACL", rolename=name, **acl)

    def delete_role(self, name: str) -> None:
        """Delete a role; a missing role is not an error."""
        try:
            self.command("deleteRole", rolename=name)
        except BrokerAdminError as exc:
            if exc.error not in ("Role not found", "Role does not exist"):
                raise

    def ensure_client(self, username: str, password: str, roles: Iterable[str]) -> None:
        """Create the client or reset an existing one to this password and exactly these roles."""
        roles = list(roles)
        try:
            self.create_client(username, password, roles)
            return
        except BrokerAdminError as exc:
            if exc.error != "Client already exists":
                raise
        self.command("setClientPassword", username=username, password=password)
        current = {r["rolename"] for r in (self.get_client(username) or {}).get("roles", [])}
        for role in current - set(roles):
            self.command("removeClientRole", username=username, rolename=role)
        for role in set(roles) - current:
            self.command("addClientRole", username=username, rolename=role, priority=-1)

    # -- StellarStack identities --------------------------------------------------------

    def ensure_node_identity(self, node_id: str, password: str) -> str:
        """Client ``node-<id>``: publish in its own subtree, receive only its commands."""
        role = node_role(node_id)
        self.create_role(role, node_acls(node_id))
        self.ensure_client(role, password, [role])
        return role

    def grant_viewer(self, username: str, password: str, node_id: str, server_id: str) -> str:
        """A browser credential confined to ``topics.server_viewer_filter(node, server)``."""
        topics.check_id(username, "viewer username")
        role = viewer_role(username)
        self.create_role(role, viewer_acls(node_id, server_id))
        self.ensure_client(username, password, [role])
        return role

    def revoke_viewer(self, username: str) -> None:
        """Delete the viewer (which disconnects it) and its role."""
        self.delete_client(username)
        self.delete_role(viewer_role(username))
