"""Real delivery through both brokers: viewer grants, node isolation, revocation."""

from __future__ import annotations

import pytest
from stellar_protocol import topics

from .conftest import ADMIN, Client, uid

pytestmark = pytest.mark.broker
REFUSED = 0x80


def test_viewer_receives_its_server_over_websocket(broker, admin, connect):
    node, server, viewer = uid("n"), uid("s"), uid("v")
    admin.ensure_node_identity(node, "node-pw")
    admin.grant_viewer(viewer, "viewer-pw", node, server)
    agent = connect(f"node-{node}", "node-pw")
    browser = connect(viewer, "viewer-pw", websocket=True)

    assert browser.subscribe(topics.server_viewer_filter(node, server)) == 1
    agent.publish(topics.server_console(node, server), b"line 1")
    agent.publish(topics.server_state(node, server), b'{"state":"running"}')
    browser.expect(topics.server_console(node, server), b"line 1")
    browser.expect(topics.server_state(node, server), b'{"state":"running"}')


def test_viewer_cannot_see_anything_else(broker, admin, connect):
    node, server, other, viewer = uid("n"), uid("s"), uid("s"), uid("v")
    admin.ensure_node_identity(node, "node-pw")
    admin.grant_viewer(viewer, "viewer-pw", node, server)
    agent = connect(f"node-{node}", "node-pw")
    browser = connect(viewer, "viewer-pw", websocket=True)

    # Both brokers answer an MQTT 3.1.1 SUBACK of 0x80 for a filter outside the grant.
    assert browser.subscribe("#") == REFUSED
    assert browser.subscribe(topics.server_viewer_filter(node, other)) == REFUSED
    assert browser.subscribe(f"stellar/v1/nodes/{node}/servers/+/console") == REFUSED
    assert browser.subscribe(topics.node_commands(node)) == REFUSED
    agent.publish(topics.server_console(node, other), b"secret")
    agent.publish(topics.node_status(node), b"online")
    assert browser.received(within=1.0) == []

    # A viewer cannot publish anything, not even into its own server's subtree.
    assert browser.subscribe(topics.server_viewer_filter(node, server)) == 1
    browser.publish(topics.server_console(node, server), b"forged")
    assert browser.received(within=0.5) == []


@pytest.mark.parametrize("websocket", [False, True])
def test_wrong_password_refused(broker, admin, websocket):
    viewer = uid("v")
    admin.grant_viewer(viewer, "right-pw", uid("n"), uid("s"))
    for username, password in [(viewer, "wrong-pw"), (uid("nobody"), "x"), (viewer, "")]:
        client = Client(broker, username, password, websocket=websocket)
        try:
            assert client.connect() != 0
        finally:
            client.close()


def test_nodes_are_isolated(broker, admin, connect):
    a, b, server = uid("na"), uid("nb"), uid("s")
    admin.ensure_node_identity(a, "pw-a")
    admin.ensure_node_identity(b, "pw-b")
    node_a = connect(f"node-{a}", "pw-a")
    node_b = connect(f"node-{b}", "pw-b")
    control = connect(*ADMIN)

    assert node_a.subscribe("#") == REFUSED
    assert node_a.subscribe(topics.node_commands(b)) == REFUSED
    assert node_a.subscribe(topics.node_filter(a)) == REFUSED  # only its literal cmd topic
    assert node_a.subscribe(topics.node_commands(a)) == 1
    assert node_b.subscribe(topics.node_commands(b)) == 1
    assert control.subscribe(topics.node_filter(b)) == 1

    control.publish(topics.node_commands(b), b"cmd-for-b")
    control.publish(topics.node_commands(a), b"cmd-for-a")
    node_b.expect(topics.node_commands(b), b"cmd-for-b")
    node_a.expect(topics.node_commands(a), b"cmd-for-a")
    assert node_a.received(within=0.5) == []

    node_a.publish(topics.server_console(b, server), b"forged console")
    node_a.publish(topics.node_status(b), b"forged status")
    node_a.publish(topics.node_commands(b), b"forged cmd")
    node_b.publish(topics.node_status(b), b"genuine")
    control.expect(topics.node_status(b), b"genuine")
    assert [m for m in control.received(within=1.0) if m[1].startswith(b"forged")] == []


def test_revoke_viewer_disconnects_and_locks_out(broker, admin, connect):
    node, server, viewer = uid("n"), uid("s"), uid("v")
    admin.grant_viewer(viewer, "viewer-pw", node, server)
    browser = connect(viewer, "viewer-pw", websocket=True)
    assert browser.subscribe(topics.server_viewer_filter(node, server)) == 1

    admin.revoke_viewer(viewer)
    assert browser.disconnected.wait(5), "revoked viewer still connected"
    again = Client(broker, viewer, "viewer-pw", websocket=True)
    try:
        assert again.connect() != 0
    finally:
        again.close()
    assert admin.get_client(viewer) is None

