"""Agents on Mosquitto's mTLS listener: certificates from our CA in, everything else out."""

from __future__ import annotations

import os
import pwd
import socket
import ssl
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from chalicelib.broker import DynsecAdmin
from cryptography import x509
from stellar.broker import BrokerHandle, BrokerStartError, start_broker
from stellar.broker.handle import probe
from stellar.pki import LocalCA
from stellar_protocol import topics

from .conftest import ADMIN, HOST, CertClient, free_port, needs_mosquitto, start

pytestmark = [pytest.mark.broker, needs_mosquitto]


def node(admin: DynsecAdmin, ca: LocalCA, tmp: Path) -> tuple[str, Path, Path]:
    """A node known to dynsec (role ``node-<id>``) with a client certificate whose CN is that username."""
    node_id = f"n{uuid.uuid4().hex[:8]}"
    username = admin.ensure_node_identity(node_id, "unused-over-mtls-" + uuid.uuid4().hex)
    cert, key = ca.issue_client(username).write(tmp, username)
    return node_id, cert, key


def publish_as_admin(broker: BrokerHandle, topic: str, payload: bytes) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"adm-{uuid.uuid4().hex[:8]}",
                      protocol=mqtt.MQTTv311)
    pub.username_pw_set(*ADMIN)
    pub.connect(broker.host, broker.tcp_port)
    pub.loop_start()
    try:
        pub.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        pub.disconnect()
        pub.loop_stop()


def test_node_certificate_receives_its_own_commands_and_roles_follow_the_cn(
        broker: BrokerHandle, admin: DynsecAdmin, ca: LocalCA, cert_client, tmp_path: Path) -> None:
    node_id, cert, key = node(admin, ca, tmp_path)
    other_id, _, _ = node(admin, ca, tmp_path)
    agent = cert_client(ca.ca_path, cert, key, client_id=node_id)
    assert agent.attempt() == ""
    assert agent.subscribe(topics.node_commands(node_id)) == 1
    assert agent.subscribe(topics.node_commands(other_id)) == 0x80  # dynsec role of node-<id>, keyed on the CN
    publish_as_admin(broker, topics.node_commands(other_id), b'{"not": "yours"}')
    publish_as_admin(broker, topics.node_commands(node_id), b'{"cmd": "ping"}')
    assert agent.messages.get(timeout=5) == (topics.node_commands(node_id), b'{"cmd": "ping"}')
    assert agent.messages.empty()

    # a certificate for a username dynsec does not know connects, but may do nothing
    stranger_cert, stranger_key = ca.issue_client("node-nobody").write(tmp_path, "stranger")
    stranger = cert_client(ca.ca_path, stranger_cert, stranger_key)
    assert stranger.attempt() == ""
    assert stranger.subscribe(topics.node_commands(node_id)) == 0x80


def test_certificate_from_another_ca_is_refused(
        admin: DynsecAdmin, ca: LocalCA, cert_client, tmp_path: Path) -> None:
    node_id, cert, key = node(admin, ca, tmp_path)
    assert cert_client(ca.ca_path, cert, key).attempt() == ""  # the same client shape does get in
    rogue = LocalCA(tmp_path / "rogue")
    rogue_cert, rogue_key = rogue.issue_client(f"node-{node_id}").write(tmp_path, "rogue")  # same CN, wrong issuer
    assert cert_client(ca.ca_path, rogue_cert, rogue_key).attempt() != ""


def test_no_client_certificate_is_refused(ca: LocalCA, cert_client) -> None:
    assert cert_client(ca.ca_path).attempt() != ""


def test_password_listener_is_unchanged(broker: BrokerHandle, admin: DynsecAdmin) -> None:
    """The mTLS listener is added; agents with passwords keep the plain TCP listener."""
    admin.ensure_node_identity("pwnode", "a-password-123")
    assert probe(broker.host, broker.tcp_port, "node-pwnode", "a-password-123", websocket=False) == ""
    assert probe(broker.host, broker.tcp_port, "node-pwnode", "wrong-password", websocket=False) != ""


def test_revoked_certificate_is_refused_after_crl_reload(
        broker: BrokerHandle, admin: DynsecAdmin, ca: LocalCA, cert_client, tmp_path: Path) -> None:
    _, cert, key = node(admin, ca, tmp_path)
    _, keep_cert, keep_key = node(admin, ca, tmp_path)
    assert cert_client(ca.ca_path, cert, key).attempt() == ""
    serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
    ca.revoke(serial)
    assert serial in ca.revoked_serials()
    broker.reload_crl()
    assert cert_client(ca.ca_path, cert, key).attempt() != ""
    assert cert_client(ca.ca_path, keep_cert, keep_key).attempt() == ""  # the others are unaffected


@pytest.mark.skipif(os.geteuid() != 0, reason="privileges are only dropped when started as root")
def test_broker_reads_tls_files_after_dropping_root(broker: BrokerHandle) -> None:
    """The reload above only proves something if Mosquitto no longer runs as root."""
    try:
        mosquitto_uid = pwd.getpwnam("mosquitto").pw_uid
    except KeyError:
        pytest.skip("no mosquitto user")
    status = Path(f"/proc/{broker.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert int(uid_line.split()[1]) == mosquitto_uid


def test_revocation_survives_a_restart(ca: LocalCA, tmp_path: Path) -> None:
    data = tmp_path / "broker"
    handle = start(data, ca)
    try:
        with DynsecAdmin(handle.host, handle.tcp_port, *ADMIN) as adm:
            _, cert, key = node(adm, ca, tmp_path)
        first = CertClient(handle.tls_port, ca.ca_path, cert, key)
        assert first.attempt() == ""
        first.close()
        assert ca.revoke_subject(cert.stem)  # the file is named after the CN
    finally:
        handle.stop()
    handle = start(data, ca)  # a fresh start copies the CA's current CRL
    try:
        again = CertClient(handle.tls_port, ca.ca_path, cert, key)
        assert again.attempt() != ""
        again.close()
    finally:
        handle.stop()


def test_server_certificate_verifies_with_hostname_checks(broker: BrokerHandle, ca: LocalCA, tmp_path: Path) -> None:
    cert, key = ca.issue_client("node-probe").write(tmp_path, "probe")

    def handshake(cafile: Path, server_hostname: str) -> dict:
        ctx = ssl.create_default_context(cafile=str(cafile))
        assert ctx.check_hostname and ctx.verify_mode == ssl.CERT_REQUIRED
        ctx.load_cert_chain(str(cert), str(key))
        with socket.create_connection((HOST, broker.tls_port), timeout=5) as raw, \
                ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
            return tls.getpeercert()

    peer = handshake(ca.ca_path, "127.0.0.1")
    assert ("IP Address", "127.0.0.1") in peer["subjectAltName"]
    assert ("DNS", "localhost") in peer["subjectAltName"]
    assert handshake(ca.ca_path, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        handshake(ca.ca_path, "example.com")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(LocalCA(tmp_path / "other").ca_path, "127.0.0.1")


def test_embedded_broker_refuses_to_fake_mtls(ca: LocalCA, tmp_path: Path) -> None:
    with pytest.raises(BrokerStartError, match="mTLS"):
        start_broker(tmp_path, free_port(), free_port(), *ADMIN, prefer="embedded", tls_port=free_port(), pki=ca)
