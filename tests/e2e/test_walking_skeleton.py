"""The walking skeleton in a real browser: log in, create a server from the demo blueprint,
start it, watch the console live, send a command, stop it, and see every state change
arrive without reloading. Real moto, Mosquitto, control plane, agent and Docker."""

from __future__ import annotations

import os
import re

import pytest
from conftest import screenshot, stack_options
from stellar.devstack.stack import DevStack

pytestmark = [pytest.mark.browser, pytest.mark.docker]


@pytest.fixture(scope="module")
def docker_stack(tmp_path_factory, docker_engine):
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with DevStack(stack_options(tmp_path_factory.mktemp("e2e"), broker="mosquitto", runtime="docker")) as st:
        yield st


@pytest.fixture()
def page(new_page):
    return new_page(1280, 860)


def shot(page, name: str) -> None:
    screenshot(page, f"skeleton-{name}")


def test_create_start_console_stop_in_the_browser(docker_stack, page):
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    page.goto(docker_stack.urls["panel"])
    page.fill("#email", "admin@test.local")
    page.fill("#password", "AdminPassw0rd")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="New server")).to_be_visible()
    shot(page, "1-servers")

    page.get_by_role("button", name="New server").click()
    page.fill("[data-testid=create-name]", "Browser World")
    page.select_option("[data-testid=create-blueprint]", "demo")
    page.select_option("[data-testid=create-location]", "local")
    page.fill("[data-testid=var-SERVER_NAME]", "Skeleton")
    shot(page, "2-create")
    page.click("[data-testid=create-submit]")

    state = page.locator("[data-testid=server-state]")
    history = page.locator("[data-testid=state-history] li")
    console = page.locator("[data-testid=console] .xterm-rows")
    expect(history.first).to_contain_text("installing")
    expect(console).to_contain_text("Downloading game files")
    expect(state).to_contain_text("offline")

    page.click("[data-testid=power-start]")
    expect(state).to_contain_text("running")
    expect(console).to_contain_text("Starting Skeleton")
    expect(console).to_contain_text("Server is ready")
    shot(page, "3-running")

    page.fill("[data-testid=console-input]", "say hello from chromium")
    page.keyboard.press("Enter")
    expect(console).to_contain_text("[Server] hello from chromium")

    page.click("[data-testid=power-stop]")
    expect(console).to_contain_text("Goodbye")
    expect(state).to_contain_text("offline")
    shot(page, "4-stopped")

    seen = [re.sub(r"\s.*", "", t.strip()) for t in history.all_inner_texts()]
    expected = ["installing", "offline", "starting", "running", "stopping", "offline"]
    it = iter(seen)
    assert all(s in it for s in expected), f"state changes seen live: {seen}"
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
