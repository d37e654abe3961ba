"""Local MQTT brokers for StellarStack: Mosquitto when installed, else an embedded one.

Both enforce the same model: no anonymous clients, dynsec clients and roles managed over
``$CONTROL/dynamic-security/v1``, an admin identity for the control plane, listeners on
127.0.0.1 only (TCP for agents and the control plane, WebSocket at ``WS_PATH`` for
browsers).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import embedded, mosquitto
from .handle import WS_PATH, BrokerHandle, BrokerStartError

if TYPE_CHECKING:
    from ..pki import LocalCA

__all__ = ["WS_PATH", "BrokerHandle", "BrokerStartError", "start_broker"]


def start_broker(
    data_dir: Path,
    tcp_port: int,
    ws_port: int,
    admin_username: str,
    admin_password: str,
    prefer: Literal["auto", "mosquitto", "embedded"] = "auto",
    tls_port: int | None = None,
    pki: LocalCA | None = None,
) -> BrokerHandle:
    """Start a broker and return once the admin can log in over TCP and WebSocket.

    ``auto`` picks Mosquitto when its binary is found, else the embedded broker. With
    ``tls_port`` and ``pki`` (a ``stellar.pki.LocalCA``) Mosquitto also listens for agents
    with client certificates from that CA; the embedded broker has no mTLS, so asking it for
    one is an error rather than a silently weaker listener.
    """
    if prefer not in ("auto", "mosquitto", "embedded"):
        raise ValueError(f"prefer must be auto, mosquitto or embedded, not {prefer!r}")
    kind = prefer
    if kind == "auto":
        kind = "mosquitto" if mosquitto.find_binary() else "embedded"
    if kind == "mosquitto":
        return mosquitto.start(Path(data_dir), tcp_port, ws_port, admin_username, admin_password,
                               tls_port=tls_port, pki=pki)
    if tls_port is not None or pki is not None:
        raise BrokerStartError("the embedded broker has no mTLS listener; install mosquitto")
    return embedded.start(Path(data_dir), tcp_port, ws_port, admin_username, admin_password)
