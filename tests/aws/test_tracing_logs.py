"""Tracing from API to agent, structured logs, and the IoT-Core-side runtime pieces, against a
real local stack (moto, broker, agent) with a fake X-Ray daemon listening on UDP."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
import time

import requests
from stellar_protocol import topics
from stellar_protocol.messages import NodeStatus, PowerCommand, encode

SEGMENT = "POST /api/servers/{server_id}/power"


def _all_subsegments(entity):
    for sub in entity.get("subsegments", []):
        yield sub
        yield from _all_subsegments(sub)


def test_an_api_request_is_one_trace_from_the_store_through_the_broker_to_the_agent(
        aws_stack, aws_owner, aws_server, xray, caplog):
    sid = aws_server["id"]
    with caplog.at_level(logging.INFO, logger="stellar_agent.agent"):
        r = aws_owner.post(f"/servers/{sid}/power", {"action": "start"})
        assert r.status_code == 202, r.text
        seg = xray.wait_for(lambda s: s.get("name") == SEGMENT and s.get("annotations", {}).get("server") == sid)
        assert seg["annotations"]["user"] == aws_owner.id
        subs = list(_all_subsegments(seg))
        publish = [s for s in subs if s["name"] == "broker.publish"]
        assert len(publish) == 1 and publish[0]["metadata"]["default"]["topic"] == \
            topics.node_commands(aws_server["node_id"])
        store_calls = [s for s in subs if s.get("namespace") == "aws" and s["name"].lower() == "dynamodb"]
        assert store_calls, [s["name"] for s in subs]  # the server was read from the store in this request
        assert "error" not in seg and "fault" not in seg
        # The agent logs the command under the request's trace, parented on the publish subsegment.
        wanted = f"trace=Root={seg['trace_id']};Parent={publish[0]['id']};Sampled=1"
        deadline = time.monotonic() + 10
        while not any(wanted in rec.getMessage() and "received" in rec.getMessage() for rec in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
    aws_owner.post(f"/servers/{sid}/power", {"action": "kill"})


def test_tracing_with_no_daemon_is_silent_and_cheap(caplog, monkeypatch):
    from chalicelib import tracing

    with socket_closed_port() as address:
        monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", address)
        monkeypatch.setenv("STELLAR_TRACE_SAMPLING", "0")
        tracing.reset()
        try:
            assert tracing.enabled()
            started = time.perf_counter()
            with caplog.at_level(logging.DEBUG):
                for i in range(200):
                    with tracing.request(f"GET /x/{i}", user="u"), tracing.subsegment("broker.publish", topic="t"):
                        assert tracing.trace_header().startswith("Root=1-")
            elapsed = time.perf_counter() - started
        finally:
            monkeypatch.delenv("AWS_XRAY_DAEMON_ADDRESS")
            tracing.reset()
    assert elapsed < 2.0, f"200 traced requests took {elapsed:.2f}s with no daemon"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    # ...and with tracing off, the wrapper never touches the SDK and still works.
    assert not tracing.enabled() and tracing.trace_header() is None
    with tracing.request("GET /y"), tracing.subsegment("s"):
        pass
    monkeypatch.undo()  # back to the package's fake daemon for the tests that follow
    tracing.reset()


class socket_closed_port:
    """A UDP address nothing listens on (bound, then closed)."""

    def __enter__(self) -> str:
        import socket

        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return f"127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        return None


def _json_lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_every_log_line_carries_request_user_and_server_even_across_threads():
    from chalicelib import logs

    stream = io.StringIO()
    handler = logs.json_handler(stream)
    log = logging.getLogger("chalicelib.services.example")
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    barrier = threading.Barrier(2)

    def work(user: str, server: str) -> None:
        with logs.request_context(f"req-{user}", server=server):
            logs.bind(user=user)
            barrier.wait()  # both requests are in flight at once
            for i in range(20):
                log.info("step %d", i)

    try:
        threads = [threading.Thread(target=work, args=(u, s)) for u, s in (("alice", "s1"), ("bob", "s2"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        log.info("outside any request")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    lines = _json_lines(stream)
    assert len(lines) == 41
    for line in lines[:-1]:
        assert line["service"] == "stellarstack" and line["level"] == "INFO"
        assert (line["user"], line["server"], line["request_id"]) in {("alice", "s1", "req-alice"),
                                                                      ("bob", "s2", "req-bob")}, line
    assert (lines[-1]["request_id"], lines[-1]["user"], lines[-1]["server"]) == ("-", "-", "-")


def test_api_log_lines_are_json_with_the_request_keys(aws_stack, aws_server):
    from chalicelib import logs

    stream = io.StringIO()
    handler = logs.json_handler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.INFO)
    try:
        r = requests.get(f"{aws_stack.urls['api']}/servers/{aws_server['id']}",
                         headers={"Authorization": "Bearer not-a-token"}, timeout=10)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert r.status_code == 401
    rejected = [line for line in _json_lines(stream) if "rejected token" in line["message"]]
    assert len(rejected) == 1, stream.getvalue()
    line = rejected[0]
    assert line["server"] == aws_server["id"] and line["user"] == "-"
    assert line["request_id"] not in {"", "-"}


def test_setup_switches_the_root_logger_to_json_only_when_asked(monkeypatch):
    from chalicelib import logs

    root = logging.getLogger()
    saved = list(root.handlers), root.level
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    monkeypatch.delenv("STELLAR_LOG_JSON", raising=False)
    try:
        assert logs.setup() is False and root.handlers == saved[0]
        stream = io.StringIO()
        monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "stellar-api")
        assert logs.setup(stream=stream) is True
        assert len(root.handlers) == 1
        with logs.request_context("r1", user="u1", server="s9"):
            logging.getLogger("anything").warning("hello")
        (line,) = _json_lines(stream)
        assert (line["message"], line["request_id"], line["user"], line["server"]) == ("hello", "r1", "u1", "s9")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_commands_go_through_the_iot_data_plane_with_the_trace_id(aws_stack, monkeypatch):
    from chalicelib import tracing
    from chalicelib.services import messaging
    from moto.backends import get_backend

    monkeypatch.setenv("STELLAR_BROKER_KIND", "iot-core")
    monkeypatch.setenv("STELLAR_IOT_DATA_ENDPOINT", aws_stack.resources.endpoint)
    messaging.reset()
    try:
        assert isinstance(messaging.broker_admin(), messaging.NoBrokerAdmin)
        cmd = PowerCommand(server_id="srv1", action="stop")
        with tracing.request("POST /test"):
            header = tracing.trace_header()
            assert messaging.send_command("node9", cmd) == cmd.id
    finally:
        monkeypatch.delenv("STELLAR_BROKER_KIND")
        messaging.reset()
    published = [p for backend in get_backend("iot-data").values() for region in backend.values()
                 for p in region.published_payloads]
    (topic, payload), = [p for p in published if p[0] == topics.node_commands("node9")]
    body = json.loads(payload)
    assert body["id"] == cmd.id and body["action"] == "stop"
    root = header.split(";")[0]
    assert body["trace_id"].startswith(root + ";Parent=")  # parented on the publish subsegment


def test_the_iot_rule_payload_reaches_ingestion_byte_exact(aws_stack):
    import app as control_plane

    node = aws_stack.opts.node_id
    status = encode(NodeStatus(status="online", runtime="process", isolated=False))
    event = {"topic": topics.node_status(node), "payload_b64": base64.b64encode(status).decode()}
    assert control_plane.ingest_event(event, None) == {"applied": True}
    bad = {"topic": topics.node_status(node), "payload_b64": base64.b64encode(b"\xff\x00").decode()}
    assert control_plane.ingest_event(bad, None) == {"applied": False}
    assert os.environ.get("STELLAR_BROKER_KIND", "mqtt") == "mqtt"
