"""`stellar dev` as a user runs it: it comes up, prints its URLs and login, serves the API
and the panel, and Ctrl-C stops everything it started. Uses the fallbacks a new user without
Mosquitto or Docker lands on (embedded broker, process runtime), so they cannot rot."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from livewire import Viewer, wait_status
from stellar.devstack.stack import free_port

REPO = Path(__file__).resolve().parents[1]


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class _ApiUser:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.headers = base, {"Authorization": f"Bearer {token}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.headers, timeout=15)

    def post(self, path: str, body: object = None) -> requests.Response:
        return requests.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=15)


def test_stellar_dev_runs_the_stack_and_ctrl_c_stops_everything(tmp_path):
    ports = {"--port": free_port(), "--aws-port": free_port(), "--mqtt-port": free_port(), "--ws-port": free_port()}
    env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    env.update(STELLAR_ADMIN_EMAIL="owner@dev.test", STELLAR_ADMIN_PASSWORD="DevPassw0rd1")
    cmd = [str(Path(sys.executable).parent / "stellar"), "dev", "--broker", "embedded", "--runtime", "process",
           "--data-dir", str(tmp_path / "dev")]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, "stellar dev exited early:\n" + "".join(output)
            output.append(line)
            if "Press Ctrl-C" in line:
                break
        text = "".join(output)
        assert f"http://127.0.0.1:{ports['--port']}/" in text
        assert "owner@dev.test / DevPassw0rd1" in text
        assert "embedded" in text and "UNISOLATED" in text  # the fallbacks are labelled as such

        api = f"http://127.0.0.1:{ports['--port']}/api"
        health = requests.get(f"{api}/health", timeout=10).json()
        assert health["status"] == "ok", health
        assert requests.get(f"http://127.0.0.1:{ports['--port']}/", timeout=10).text.startswith("<!doctype html")

        # The slice through the fallbacks: embedded broker and process runtime.
        login = requests.post(f"{api}/auth/login", json={"email": "owner@dev.test", "password": "DevPassw0rd1"},
                              timeout=10).json()
        user = _ApiUser(api, login["access_token"])
        deadline = time.monotonic() + 20
        while requests.get(f"{api}/health", timeout=10).json()["nodes"]["online"] != 1:
            assert time.monotonic() < deadline, "the local node never came online"
            time.sleep(0.2)
        server = user.post("/servers", {"name": "Fallback", "blueprint_id": "demo", "location_id": "local"}).json()
        wait_status(user, server["id"], "offline")
        viewer = Viewer(user.post(f"/servers/{server['id']}/console-grant").json())
        try:
            viewer.wait_subscribed()
            assert user.post(f"/servers/{server['id']}/power", {"action": "start"}).status_code == 202
            viewer.state("running")
            assert user.post(f"/servers/{server['id']}/command", {"line": "say via amqtt"}).status_code == 202
            viewer.console_line("[Server] via amqtt")
        finally:
            viewer.close()
        assert _games_under(tmp_path), "the game server is not a process under the dev data dir"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        output.append(rest)
    assert proc.returncode == 0, "".join(output)
    assert "nothing left running" in "".join(output)
    for port in ports.values():
        assert not _port_open(port), f"port {port} still open after Ctrl-C"
    assert _games_under(tmp_path) == [], "a game process survived Ctrl-C"


def _games_under(root: Path) -> list[int]:
    """Pids of demo game processes whose working directory is inside ``root``."""
    found = []
    for proc_dir in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc_dir / "cmdline").read_bytes().replace(b"\0", b" ")
            cwd = os.readlink(proc_dir / "cwd")
        except OSError:
            continue
        if b"game.sh" in cmdline and cwd.startswith(str(root)):
            found.append(int(proc_dir.name))
    return found
