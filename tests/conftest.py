"""Shared fixtures: a real local stack (moto, an MQTT broker, the control plane, a node
agent) started on free ports in a temporary directory, and signed-in users."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from stellar.devstack.stack import DevStack, StackOptions, free_port

REPO = Path(__file__).resolve().parents[1]


def stack_options(tmp: Path, broker: str = "auto", runtime: str = "process") -> StackOptions:
    return StackOptions(data_dir=tmp / "stack", http_port=free_port(), aws_port=free_port(),
                        mqtt_port=free_port(), ws_port=free_port(), broker=broker, runtime=runtime,
                        admin_email="admin@test.local", admin_password="AdminPassw0rd",
                        stop_timeout_s=10, node_ports=(31000, 31019), node_id=f"t{uuid.uuid4().hex[:10]}")


@pytest.fixture(scope="session", autouse=True)
def _aws_env() -> None:
    os.environ.pop("AWS_ENDPOINT_URL", None)  # every stack starts its own moto
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevStack]:
    """The control-plane suite's stack: mosquitto (when installed) and the process runtime."""
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with DevStack(stack_options(tmp_path_factory.mktemp("cp"))) as st:
        yield st


class User:
    def __init__(self, stack: DevStack, email: str, password: str, admin: bool = False) -> None:
        from stellar.devstack import aws

        assert stack.resources is not None
        self.email, self.password = email, password
        self.id = aws.ensure_user(stack.resources, email, password, admin=admin)
        self.base = stack.urls["api"]
        r = requests.post(f"{self.base}/auth/login", json={"email": email, "password": password}, timeout=10)
        assert r.status_code == 200, r.text
        self.tokens = r.json()

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    def get(self, path: str, **kw: object) -> requests.Response:
        return requests.get(f"{self.base}{path}", headers=self.headers, timeout=15, **kw)  # type: ignore[arg-type]

    def post(self, path: str, body: object = None, **kw: object) -> requests.Response:
        return requests.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=15, **kw)  # type: ignore[arg-type]

    def delete(self, path: str) -> requests.Response:
        return requests.delete(f"{self.base}{path}", headers=self.headers, timeout=15)


@pytest.fixture(scope="module")
def make_user(stack: DevStack):
    def make(admin: bool = False) -> User:
        return User(stack, f"u-{uuid.uuid4().hex[:8]}@test.local", "Passw0rdPassw0rd", admin=admin)
    return make


@pytest.fixture(scope="module")
def owner(make_user) -> User:
    return make_user()


@pytest.fixture(scope="module")
def stranger(make_user) -> User:
    return make_user()


def _require(what: str, ok: bool) -> None:
    """Locally a missing service skips with a reason; in CI it fails (CI must provide it)."""
    if ok:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI: {what} is required but not available", pytrace=False)
    pytest.skip(f"{what} not available on this machine")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    from stellar.images import docker_available, ensure_demo_image

    _require("a Docker engine", docker_available())
    ensure_demo_image(progress=lambda _m: None)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    import shutil

    path = os.environ.get("STELLAR_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    _require("Chromium (apt-get install chromium)", bool(path))
    return str(path)


# ---- browser (end-to-end tests): Debian's Chromium driven by Playwright ----------------------

ARTIFACTS = REPO / "test-artifacts"
# Without the background-networking flags Chromium tries hosts this machine cannot reach.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Chromium logs every 4xx answer as a console error ("Failed to load resource: ... status of
# 422"). The answers a test provokes on purpose are listed per page and ignored; anything else
# logged as an error fails the test.
RESOURCE_ERROR = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")


@pytest.fixture()
def new_page(chromium_path: str) -> Iterator[Callable[..., object]]:
    """Pages in separate browser contexts (separate sessions), each collecting console errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        pages = []

        def make(width: int = 1280, height: int = 860) -> object:
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            page.errors = []  # type: ignore[attr-defined]
            page.expected_statuses = set()  # type: ignore[attr-defined]
            page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))  # type: ignore[attr-defined]
            page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
            pages.append(page)
            return page

        yield make
        for page in pages:
            unexpected = [e for e in page.errors
                          if not ((m := RESOURCE_ERROR.search(e)) and int(m.group(1)) in page.expected_statuses)]
            assert unexpected == [], unexpected
        browser.close()


def screenshot(page: object, name: str) -> None:
    """Save a full-page screenshot as a test artifact (test-artifacts/<name>.png)."""
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def sign_in(page: object, url: str, email: str, password: str) -> None:
    """Sign in through the login form and wait for the server list of that user."""
    from playwright.sync_api import expect

    page.goto(url)  # type: ignore[attr-defined]
    expect(page.locator("#email")).to_be_visible()  # type: ignore[attr-defined]
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    expect(page.get_by_role("button", name="New server")).to_be_visible()  # type: ignore[attr-defined]
    expect(page.get_by_test_id("user-email")).to_have_text(email)  # type: ignore[attr-defined]
