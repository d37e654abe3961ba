"""Local MQTT brokers for StellarStack: Mosquitto when installed, else an embedded one.

Both enforce the same model: no anonymous clients, dynsec clients and roles managed over
``$CONTROL/dynamic-security/v1``, an admin identity for the control plane, listeners on
127.0.0.1 only (TCP for agents and the control plane, WebSocket at ``WS_PATH`` for
browsers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from . import embedded, mosquitto
from .handle import WS_PATH, BrokerHandle, BrokerStartError

__all__ = ["WS_PATH", "BrokerHandle", "BrokerStartError", "start_broker"]


def start_broker(
    data_dir: Path,
    tcp_port: int,
    ws_port: int,
    admin_username: str,
    admin_password: str,
    prefer: Literal["auto", "mosquitto", "embedded"] = "auto",
) -> BrokerHandle:
    """Start a broker and return once the admin can log in over TCP and WebSocket.

    ``auto`` picks Mosquitto when its binary is found, else the embedded broker.
    """
    if prefer not in ("auto", "mosquitto", "embedded"):
        raise ValueError(f"prefer must be auto, mosquitto or embedded, not {prefer!r}")
    kind = prefer
    if kind == "auto":
        kind = "mosquitto" if mosquitto.find_binary() else "embedded"
    module = mosquitto if kind == "mosquitto" else embedded
    return module.start(Path(data_dir), tcp_port, ws_port, admin_username, admin_password)
