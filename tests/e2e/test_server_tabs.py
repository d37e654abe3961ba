"""The server page's Startup and Backups tabs and the Console tab's live stats graph in a real
browser: a startup variable refused by the blueprint's rule (shown under its input), then changed,
saved and used by the next start; a backup created and seen to complete in the list, locked; the
CPU/memory graph filling while the demo server runs; a restore refused while it runs (409 shown).

Real moto, broker, control plane, agent (process runtime) and web build."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from conftest import screenshot, sign_in, stack_options
from stellar.devstack.stack import DevStack

pytestmark = [pytest.mark.browser]
PASSWORD = "Tabs-Passw0rd"
ADMIN = ("admin@test.local", "AdminPassw0rd")


@pytest.fixture(scope="module")
def tabs_stack(tmp_path_factory) -> Iterator[DevStack]:
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with DevStack(stack_options(tmp_path_factory.mktemp("e2e-tabs"), runtime="process")) as st:
        yield st


def shot(page, name: str) -> None:
    screenshot(page, f"tabs-{name}")



def test_startup_backups_and_stats_graph(tabs_stack, new_page):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    url = tabs_stack.urls["panel"]
    email = f"tabs-{uuid.uuid4().hex[:8]}@test.local"

    admin = new_page()
    sign_in(admin, url, *ADMIN)
    admin.get_by_test_id("admin-link").click()
    admin.get_by_test_id("admin-tab-users").click()
    admin.fill("#user-email", email)
    admin.fill("#user-password", PASSWORD)
    admin.get_by_test_id("user-create").click()
    expect(admin.locator("[data-testid=user-row]", has_text=email)).to_be_visible()

    page = new_page()
    page.expected_statuses = {422, 409}  # the rule-breaking variable and the restore while running
    sign_in(page, url, email, PASSWORD)
    page.get_by_role("button", name="New server").click()
    page.fill("[data-testid=create-name]", "Tabs World")
    page.select_option("[data-testid=create-blueprint]", "demo")
    page.select_option("[data-testid=create-location]", "local")
    page.click("[data-testid=create-submit]")
    expect(page.get_by_test_id("server-title")).to_have_text("Tabs World")
    state = page.get_by_test_id("server-state")
    expect(state).to_contain_text("offline", timeout=60_000)
    for tab in ("startup", "backups"):
        expect(page.get_by_test_id(f"tab-{tab}")).to_be_visible()

    # Startup: a value the blueprint's regex refuses is shown under its input; a good one is saved.
    page.get_by_test_id("tab-startup").click()
    field = page.locator("#startup-var-SERVER_NAME")
    expect(field).to_have_value("Demo")
    expect(page.get_by_test_id("startup-command")).to_contain_text("game.sh")
    field.fill("Bad!Name")
    page.get_by_test_id("startup-save").click()
    expect(page.get_by_test_id("error-startup-var-SERVER_NAME")).to_be_visible()
    expect(field).to_have_attribute("aria-invalid", "true")
    shot(page, "1-startup-error")
    field.fill("Tabbed World")
    page.get_by_test_id("startup-save").click()
    expect(page.get_by_test_id("startup-saved")).to_contain_text("SERVER_NAME")
    expect(page.get_by_test_id("error-startup-var-SERVER_NAME")).to_have_count(0)
    page.reload()
    expect(page.locator("#startup-var-SERVER_NAME")).to_have_value("Tabbed World")
    shot(page, "2-startup-saved")

    # Backups: create one; it shows as in progress, then completes in the list; lock it.
    page.get_by_test_id("tab-backups").click()
    page.get_by_test_id("backup-create").click()
    page.fill("#backup-name", "before start")
    page.get_by_test_id("backup-create-submit").click()
    expect(page.get_by_test_id("backups-notice")).to_contain_text("before start")
    row = page.locator("[data-testid=backup-row][data-name='before start']")
    expect(row).to_have_attribute("data-status", "completed", timeout=60_000)
    expect(row.get_by_test_id("backup-download")).to_be_enabled()
    row.get_by_test_id("backup-lock").click()
    expect(row).to_have_attribute("data-locked", "true")
    expect(row.get_by_test_id("backup-delete")).to_be_disabled()
    shot(page, "3-backups")

    # Console: start the server; the saved variable is used and the stats graph fills.
    page.get_by_test_id("tab-console").click()
    page.get_by_test_id("power-start").click()
    expect(state).to_contain_text("running", timeout=60_000)
    expect(page.locator("[data-testid=console] .xterm-rows")).to_contain_text("Starting Tabbed World")
    graph = page.get_by_test_id("stats-graph")
    expect(graph).to_be_visible()
    expect(page.get_by_test_id("stats-graph-cpu").locator("polyline")).to_have_count(1)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=stats-graph-memory]')?.dataset.points) >= 3")
    shot(page, "4-stats-graph")

    # Restoring needs the server offline: the API's 409 is shown on the backup's row.
    page.get_by_test_id("tab-backups").click()
    row.get_by_test_id("backup-restore").click()
    page.get_by_test_id("backup-restore-confirm").click()
    expect(row.get_by_test_id("backup-row-error")).to_contain_text("stop it before restoring")
    shot(page, "5-restore-refused")

    page.get_by_test_id("tab-console").click()
    page.get_by_test_id("power-stop").click()
    expect(state).to_contain_text("offline", timeout=60_000)
