"""Account features in a real browser: sign up, change password, two-factor on and off with the
code step at sign-in, password reset, token refresh, and sign out everywhere.

Real moto (Cognito), control plane and web build; the process runtime is enough (no game server
is started). moto's Cognito accepts any 6-digit TOTP code and any confirmation or reset code, so
these tests prove the panel's flows and its handling of the API, not the TOTP arithmetic (which
is Cognito's job in AWS and covered there)."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import screenshot, stack_options
from stellar.devstack.stack import DevStack

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def account_stack(tmp_path_factory) -> Iterator[DevStack]:
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with DevStack(stack_options(tmp_path_factory.mktemp("e2e-account"), runtime="process")) as st:
        yield st


def shot(page, name: str) -> None:
    screenshot(page, f"account-{name}")


def sign_in(page, email: str, password: str, totp: str | None = None) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#email")).to_be_visible()
    page.fill("#email", email)
    page.fill("#password", password)
    page.get_by_role("button", name="Sign in").click()
    if totp is not None:
        expect(page.locator("#totp-code")).to_be_visible()
        page.fill("#totp-code", totp)
        page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="New server")).to_be_visible()
    expect(page.get_by_test_id("user-email")).to_have_text(email)


def sign_out(page) -> None:
    from playwright.sync_api import expect

    page.get_by_role("button", name="Sign out", exact=True).click()
    expect(page.locator("#email")).to_be_visible()


def open_account(page):
    from playwright.sync_api import expect

    page.get_by_role("link", name="Account").click()
    expect(page.get_by_role("heading", name="Account", exact=True)).to_be_visible()


def test_sign_up_password_two_factor_and_sign_out_everywhere(account_stack, new_page):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    email = f"web-{uuid.uuid4().hex[:8]}@test.local"
    first, second = "First-Passw0rd", "Second-Passw0rd"
    page = new_page()
    page.expected_statuses = {422, 401}  # wrong current password; the old session after sign-out-everywhere

    # Sign up → signed in (the dev stack confirms accounts at once).
    page.goto(account_stack.urls["panel"])
    page.get_by_role("link", name="Create account").click()
    page.fill("#signup-email", email)
    page.fill("#signup-password", first)
    shot(page, "1-signup")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("button", name="New server")).to_be_visible()
    expect(page.get_by_test_id("user-email")).to_have_text(email)

    # Change password: a wrong current password is shown next to that field, then success.
    open_account(page)
    page.fill("#current-password", "Not-my-passw0rd")
    page.fill("#new-password", second)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_test_id("error-current-password")).to_contain_text(re.compile("not correct", re.I))
    expect(page.locator("#current-password")).to_have_attribute("aria-invalid", "true")
    shot(page, "2-password-error")
    page.fill("#current-password", first)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_test_id("password-changed")).to_be_visible()
    expect(page.get_by_test_id("error-current-password")).to_have_count(0)
    sign_out(page)
    sign_in(page, email, second)

    # Two-factor: QR code and the key as text, turned on with a code from "the app".
    open_account(page)
    with page.expect_response("**/api/me/totp/setup") as setup:
        page.get_by_role("button", name="Set up two-factor").click()
    secret = setup.value.json()["secret"]  # moto hands out one fixed secret
    qr = page.get_by_role("img", name=re.compile("QR code"))
    expect(qr).to_be_visible()
    assert qr.bounding_box()["width"] >= 150  # type: ignore[index]
    expect(page.get_by_test_id("totp-secret")).to_have_text(secret)
    shot(page, "3-totp-setup")
    page.fill("#totp-verify-code", "12345")
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_test_id("error-totp-verify-code")).to_be_visible()  # not 6 digits: caught here
    page.fill("#totp-verify-code", "123456")  # moto accepts any 6-digit code
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_test_id("totp-status")).to_have_attribute("data-state", "on")
    shot(page, "4-totp-on")

    # Sign out; signing in now asks for the code.
    sign_out(page)
    page.fill("#email", email)
    page.fill("#password", second)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#totp-code")).to_be_visible()
    expect(page.locator("#email")).to_have_count(0)
    shot(page, "5-totp-step")
    page.fill("#totp-code", "654321")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="New server")).to_be_visible()

    # A second browser signs in too; "Sign out everywhere" in the first ends both sessions.
    other = new_page()
    other.expected_statuses = {401}  # its access token refused, then its refresh token
    other.goto(account_stack.urls["panel"])
    sign_in(other, email, second, totp="111111")
    time.sleep(1.1)  # revocation works at the token's issue time, which has one-second resolution
    open_account(page)
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.locator("#email")).to_be_visible()
    expect(page.get_by_test_id("login-notice")).to_contain_text("signed out on every device")
    other.reload()
    expect(other.locator("#email")).to_be_visible()
    expect(other.get_by_test_id("login-notice")).to_contain_text("session has ended")
    shot(other, "6-other-session-ended")

    # Turn two-factor off again: the next sign-in needs the password only.
    time.sleep(1.1)
    sign_in(page, email, second, totp="222222")
    open_account(page)
    page.get_by_role("button", name="Turn off two-factor").click()
    page.get_by_test_id("totp-off-confirm").click()
    expect(page.get_by_test_id("totp-status")).to_have_attribute("data-state", "off")
    sign_out(page)
    sign_in(page, email, second)


def test_confirm_step_reset_password_and_refresh(account_stack, new_page):
    from playwright.sync_api import expect

    expect.set_options(timeout=30_000)
    email = f"web-{uuid.uuid4().hex[:8]}@test.local"
    page = new_page(width=390, height=844)  # phone width
    page.expected_statuses = {401, 409}

    # The dev stack confirms new accounts at once; answer "not confirmed" to show the code step.
    def unconfirmed(route):
        response = route.fetch()
        body = response.json()
        assert body["confirmed"] is True
        route.fulfill(response=response, json={**body, "confirmed": False})

    page.route("**/api/auth/signup", unconfirmed)
    page.goto(f"{account_stack.urls['panel']}#/signup")
    page.fill("#signup-email", email)
    page.fill("#signup-password", "short")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_test_id("error-signup-password")).to_contain_text("10 characters")
    page.fill("#signup-password", "Phone-Passw0rd")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#confirm-code")).to_be_visible()
    shot(page, "7-confirm-code")
    page.fill("#confirm-code", "424242")  # moto takes any code
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("button", name="New server")).to_be_visible()
    shot(page, "8-phone-servers")

    # The account exists now: a second sign-up shows the error next to the email field.
    page.unroute("**/api/auth/signup")
    sign_out(page)
    page.goto(f"{account_stack.urls['panel']}#/signup")
    page.fill("#signup-email", email)
    page.fill("#signup-password", "Phone-Passw0rd")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_test_id("error-signup-email")).to_be_visible()

    # Forgot password → reset with the emailed code (moto takes any) → sign in with the new one.
    page.goto(f"{account_stack.urls['panel']}#/login")
    page.get_by_role("link", name="Forgot password?").click()
    page.fill("#forgot-email", email)
    page.get_by_role("button", name="Send reset code").click()
    expect(page.get_by_test_id("reset-sent")).to_be_visible()
    expect(page.locator("#reset-email")).to_have_value(email)
    page.fill("#reset-code", "000000")
    page.fill("#reset-password", "Reset-Passw0rd1")
    shot(page, "9-reset")
    page.get_by_role("button", name="Set new password").click()
    expect(page.get_by_test_id("login-notice")).to_contain_text("password has been changed")
    expect(page.locator("#email")).to_have_value(email)
    sign_in(page, email, "Reset-Passw0rd1")

    # Token refresh: an access token the API refuses is refreshed once and the call retried
    # (the server list polls every 5 s; its next poll is answered 401 once).
    refused = {"count": 0}

    def refuse_once(route):
        if refused["count"] == 0:
            refused["count"] += 1
            route.fulfill(status=401, json={"error": {"code": "unauthorized", "message": "token expired"}})
        else:
            route.continue_()

    page.route("**/api/servers", refuse_once)
    with page.expect_response("**/api/auth/refresh", timeout=20_000) as refresh:
        pass
    assert refresh.value.status == 200 and refused["count"] == 1
    with page.expect_response(lambda r: r.url.endswith("/api/servers") and r.status == 200, timeout=20_000):
        pass
    expect(page.get_by_role("button", name="New server")).to_be_visible()
    page.reload()  # the refreshed tokens were kept
    open_account(page)
    expect(page.get_by_test_id("account-email")).to_have_text(email)
    shot(page, "10-phone-account")
