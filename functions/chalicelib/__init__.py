"""StellarStack control plane library (Chalice `chalicelib`)."""

from __future__ import annotations


def reset_all() -> None:
    """Drop every per-process cache (settings, store, broker connections, keys).

    Lambda never needs this; `stellar dev` and the tests do when they change the
    environment the control plane reads.
    """
    from . import config
    from .api import security
    from .auth import cognito
    from .services import blueprints, messaging, rpc
    from .store import reset as reset_store

    rpc.reset()
    messaging.reset()
    config.reset()
    reset_store()
    cognito.reset()
    security.verifier.cache_clear()
    blueprints.bundled.cache_clear()
