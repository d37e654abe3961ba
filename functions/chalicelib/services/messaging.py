"""The control plane's connections to the broker, one per process (reused across requests).

Locally this is Mosquitto (or the embedded broker) through the admin identity; on AWS the
same calls map onto IoT Core (publish via the data plane, grants via the custom authorizer).
"""

from __future__ import annotations

from functools import lru_cache

from stellar_protocol import topics
from stellar_protocol.messages import encode

from ..broker.dynsec import DynsecAdmin
from ..broker.publisher import Publisher
from ..config import settings


@lru_cache(maxsize=1)
def publisher() -> Publisher:
    cfg = settings()
    return Publisher(cfg.broker_host, cfg.broker_port, cfg.broker_admin_username, cfg.broker_admin_password)


def broker_admin() -> DynsecAdmin:
    cfg = settings()
    return DynsecAdmin(cfg.broker_host, cfg.broker_port, cfg.broker_admin_username, cfg.broker_admin_password)


def send_command(node_id: str, command: object) -> str:
    """Publish a command (QoS 1) to a node; returns the command id for the caller to track."""
    publisher().publish(topics.node_commands(node_id), encode(command), qos=1)  # type: ignore[arg-type]
    return command.id  # type: ignore[attr-defined]


def reset() -> None:
    if publisher.cache_info().currsize:
        publisher().close()
    publisher.cache_clear()
