"""The control plane's connections to the broker, one per process (reused across requests).

Which broker is chosen by ``STELLAR_BROKER_KIND``: ``mqtt`` (default: Mosquitto or the
embedded broker, through the admin identity) or ``iot-core`` (AWS: commands go out through
the IoT data-plane ``Publish`` API, which needs no MQTT connection from a Lambda; browser
grants are checked by the custom authorizer in ``broker_auth``, so there is no dynsec admin).
Every publish is a trace subsegment, and each command carries the request's trace header so
the agent can log its work under the same trace.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Protocol

from stellar_protocol import topics
from stellar_protocol.messages import encode

from .. import tracing
from ..broker.dynsec import DynsecAdmin
from ..broker.publisher import BrokerUnavailable, Publisher
from ..config import settings

IOT_CORE = "iot-core"


class CommandPublisher(Protocol):
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                timeout: float = 5.0) -> None: ...
    def ping(self, timeout: float = 2.0) -> None: ...
    def close(self) -> None: ...


class IotDataPublisher:
    """Publish through AWS IoT Core's data plane (HTTPS ``iot-data:Publish``)."""

    def __init__(self, endpoint_url: str | None = None, region: str | None = None) -> None:
        import boto3

        self._client: Any = boto3.client("iot-data", endpoint_url=endpoint_url or None, region_name=region)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5.0) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.publish(topic=topic, qos=qos, retain=retain, payload=payload)
        except (BotoCoreError, ClientError) as exc:
            raise BrokerUnavailable(f"iot-data publish to {topic!r} failed: {exc}") from exc

    def ping(self, timeout: float = 2.0) -> None:
        """Nothing to hold open: the data plane is reached per call."""

    def close(self) -> None:
        self._client.close()


class NoBrokerAdmin:
    """IoT Core has no dynsec: grants live in the store and the custom authorizer reads them."""

    def __enter__(self) -> NoBrokerAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def grant_viewer(self, username: str, password: str, node_id: str, server_id: str) -> None:
        return None

    def revoke_viewer(self, username: str) -> None:
        return None


def broker_kind() -> str:
    return os.environ.get("STELLAR_BROKER_KIND", "mqtt").strip().lower() or "mqtt"


@lru_cache(maxsize=1)
def publisher() -> CommandPublisher:
    cfg = settings()
    if broker_kind() == IOT_CORE:
        # The data-plane endpoint is account specific (describe-endpoint iot:Data-ATS).
        return IotDataPublisher(os.environ.get("STELLAR_IOT_DATA_ENDPOINT"), cfg.region)
    return Publisher(cfg.broker_host, cfg.broker_port, cfg.broker_admin_username, cfg.broker_admin_password)


def broker_admin() -> DynsecAdmin | NoBrokerAdmin:
    if broker_kind() == IOT_CORE:
        return NoBrokerAdmin()
    cfg = settings()
    return DynsecAdmin(cfg.broker_host, cfg.broker_port, cfg.broker_admin_username, cfg.broker_admin_password)


def send_command(node_id: str, command: object) -> str:
    """Publish a command (QoS 1) to a node; returns the command id for the caller to track."""
    topic = topics.node_commands(node_id)
    with tracing.subsegment("broker.publish", topic=topic, command=getattr(command, "type", "")):
        header = tracing.trace_header()
        if header and getattr(command, "trace_id", None) is None:
            command = command.model_copy(update={"trace_id": header})  # type: ignore[attr-defined]
        publisher().publish(topic, encode(command), qos=1)  # type: ignore[arg-type]
    return command.id  # type: ignore[attr-defined]


def reset() -> None:
    if publisher.cache_info().currsize:
        publisher().close()
    publisher.cache_clear()
