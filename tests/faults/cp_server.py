"""The control plane's HTTP API in a process of its own, so a fault test can SIGKILL it mid-request.

Run as ``python cp_server.py PORT``; it reads the same environment the dev stack set up
(table, user pool, broker) and serves until killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(port: int) -> None:
    sys.path.insert(0, str(REPO / "functions"))
    import app as control_plane
    from stellar.devstack.http import FrontApp, HttpServer

    server = HttpServer(FrontApp(control_plane.app, REPO / "web" / "dist"), port=port)
    server.start()
    threading.Event().wait()  # until SIGKILL/SIGTERM


if __name__ == "__main__":
    main(int(sys.argv[1]))
