"""Publisher, Subscriber, DynsecAdmin semantics, broker lifecycle and persistence."""

from __future__ import annotations

import os
import queue
import socket
import threading
import time

import pytest
from chalicelib.broker import BrokerAdminError, BrokerUnavailable, DynsecAdmin, Publisher, Subscriber
from chalicelib.broker.dynsec import node_acls, viewer_role
from stellar.broker import BrokerStartError, start_broker
from stellar_protocol import topics

from .conftest import ADMIN, KINDS, Client, free_port, start, uid

pytestmark = pytest.mark.broker


def test_publisher_delivers_qos1_to_subscriber(broker, admin):
    node, server = uid("n"), uid("s")
    got: queue.Queue[tuple[str, bytes]] = queue.Queue()
    with Subscriber(broker.host, broker.tcp_port, *ADMIN, [topics.ALL_SERVER_STATES],
                    lambda t, p: got.put((t, p))):
        with Publisher(broker.host, broker.tcp_port, *ADMIN) as pub:
            pub.publish(topics.server_state(node, server), b'{"seq":1}')
            pub.publish(topics.server_console(node, server), b"not a state")  # filtered out
            pub.publish(topics.server_state(node, server), b'{"seq":2}', qos=0)
        assert got.get(timeout=5) == (topics.server_state(node, server), b'{"seq":1}')
        assert got.get(timeout=5) == (topics.server_state(node, server), b'{"seq":2}')
        assert got.empty()


def test_publisher_is_thread_safe(broker):
    with Publisher(broker.host, broker.tcp_port, *ADMIN) as pub:
        errors: list[BaseException] = []

        def worker(i: int) -> None:
            try:
                for j in range(10):
                    pub.publish(f"stellar/v1/nodes/t{i}/status", str(j).encode())
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_subscriber_refused_filter_raises(broker):
    node = uid("n")
    with DynsecAdmin(broker.host, broker.tcp_port, *ADMIN) as admin:
        admin.ensure_node_identity(node, "pw")
    sub = Subscriber(broker.host, broker.tcp_port, f"node-{node}", "pw", ["#"], lambda t, p: None)
    with pytest.raises(BrokerUnavailable, match="refused"):
        sub.start()


def test_publisher_wrong_credentials(broker):
    with Publisher(broker.host, broker.tcp_port, ADMIN[0], "wrong") as pub, pytest.raises(BrokerUnavailable):
        pub.publish("stellar/v1/nodes/x/status", b"x", timeout=2)


@pytest.mark.parametrize("kind", KINDS)
def test_publisher_raises_when_broker_down_and_recovers(kind, tmp_path):
    handle = start(kind, tmp_path / "b")
    pub = Publisher(handle.host, handle.tcp_port, *ADMIN)
    try:
        pub.publish("stellar/v1/nodes/x/status", b"up")
        handle.stop()
        with pytest.raises(BrokerUnavailable):
            pub.publish("stellar/v1/nodes/x/status", b"down", timeout=2)
        with pytest.raises(BrokerUnavailable):  # a fresh connection attempt fails fast
            Publisher(handle.host, handle.tcp_port, *ADMIN).publish("stellar/v1/nodes/x/status", b"x")
        handle = start_broker(tmp_path / "b", handle.tcp_port, handle.ws_port, *ADMIN, prefer=kind)
        pub.publish("stellar/v1/nodes/x/status", b"back", timeout=15)  # same Publisher reconnects
    finally:
        pub.close()
        handle.stop()


@pytest.mark.parametrize("kind", KINDS)
def test_start_stop_leaves_nothing_running(kind, tmp_path):
    threads_before = {t.ident for t in threading.enumerate()}
    handle = start(kind, tmp_path / "b")
    assert handle.kind == kind
    ports = (handle.tcp_port, handle.ws_port)
    handle.stop()
    handle.stop()  # idempotent
    if handle.pid is not None:
        with pytest.raises(ProcessLookupError):
            os.kill(handle.pid, 0)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and {t.ident for t in threading.enumerate()} - threads_before:
        time.sleep(0.05)
    assert {t.ident for t in threading.enumerate()} - threads_before == set()
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))  # free again


@pytest.mark.parametrize("kind", KINDS)
def test_grants_and_retained_state_survive_restart(kind, tmp_path):
    node, server, viewer = uid("n"), uid("s"), uid("v")
    handle = start(kind, tmp_path / "b")
    try:
        with DynsecAdmin(handle.host, handle.tcp_port, *ADMIN) as admin:
            admin.grant_viewer(viewer, "viewer-pw", node, server)
        with Publisher(handle.host, handle.tcp_port, *ADMIN) as pub:
            pub.publish(topics.server_state(node, server), b"running", retain=True)
    finally:
        handle.stop()
    handle = start(kind, tmp_path / "b")
    try:
        browser = Client(handle, viewer, "viewer-pw", websocket=True)
        assert browser.connect() == 0
        assert browser.subscribe(topics.server_viewer_filter(node, server)) == 1
        browser.expect(topics.server_state(node, server), b"running")
        browser.close()
    finally:
        handle.stop()


def test_dynsec_admin_is_idempotent(broker, admin):
    node, viewer = uid("n"), uid("v")
    admin.delete_client(uid("missing"))
    admin.delete_role(uid("missing"))
    assert admin.ensure_node_identity(node, "pw1") == f"node-{node}"
    assert admin.ensure_node_identity(node, "pw2") == f"node-{node}"  # password rotated
    role = admin.command("getRole", rolename=f"node-{node}")["data"]["role"]
    assert sorted((a["acltype"], a["topic"], a["allow"]) for a in role["acls"]) == sorted(
        (a["acltype"], a["topic"], a["allow"]) for a in node_acls(node)
    )
    old = Client(broker, f"node-{node}", "pw1")
    assert old.connect() != 0
    old.close()

    admin.grant_viewer(viewer, "pw", uid("n"), uid("s"))
    admin.grant_viewer(viewer, "pw", node, "s2")  # re-grant moves the viewer to another server
    role = admin.command("getRole", rolename=viewer_role(viewer))["data"]["role"]
    assert {a["topic"] for a in role["acls"] if a["allow"]} == {topics.server_viewer_filter(node, "s2")}
    assert viewer in admin.list_clients()
    admin.revoke_viewer(viewer)
    admin.revoke_viewer(viewer)
    assert viewer not in admin.list_clients()


def test_dynsec_errors_are_raised(broker, admin):
    with pytest.raises(BrokerAdminError, match="Role not found"):
        admin.command("getRole", rolename=uid("missing"))
    with pytest.raises(BrokerAdminError, match="Unknown command"):
        admin.command("frobnicate")
    with pytest.raises(BrokerAdminError, match="connect"):
        DynsecAdmin(broker.host, broker.tcp_port, ADMIN[0], "wrong", timeout=2)


def test_non_admin_cannot_issue_dynsec_commands(broker, admin):
    node = uid("n")
    admin.ensure_node_identity(node, "pw")
    with pytest.raises(BrokerAdminError):
        DynsecAdmin(broker.host, broker.tcp_port, f"node-{node}", "pw", timeout=1.5).command("listClients")
    node_client = Client(broker, f"node-{node}", "pw")
    assert node_client.connect() == 0
    node_client.publish("$CONTROL/dynamic-security/v1",
                        b'{"commands":[{"command":"createClient","username":"evil","password":"x"}]}')
    time.sleep(0.5)
    node_client.close()
    assert admin.get_client("evil") is None


@pytest.mark.parametrize("busy", ["tcp", "ws"])
@pytest.mark.parametrize("kind", KINDS)
def test_start_failure_is_reported_and_cleaned_up(kind, busy, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ports = {"tcp": free_port(), "ws": free_port(), busy: taken.getsockname()[1]}
        with pytest.raises(BrokerStartError) as info:
            start_broker(tmp_path / "b", ports["tcp"], ports["ws"], *ADMIN, prefer=kind)
    assert str(ports[busy]) in str(info.value)  # the log tail or error names the port
    other = ports["ws" if busy == "tcp" else "tcp"]
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", other))  # the listener that did bind was released
