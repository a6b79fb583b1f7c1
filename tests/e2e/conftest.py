"""End to end: real Chromium (Debian's, driven by Playwright) against daphne, a real Celery
worker, real Redis and the test database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scripts.processes import Daphne

# Playwright's sync API keeps an event loop in this thread; Django's ORM, used here only by
# the test itself to arrange and check data, would otherwise refuse to run beside it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]


@pytest.fixture(scope="session")
def server(worker, service_env, tmp_path_factory):
    env = dict(service_env, DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost")
    instance = Daphne(env, tmp_path_factory.mktemp("daphne") / "daphne.log")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


class SignedInPage:
    """A browser page signed in as one user, recording the HTTP requests made after load
    and the websocket frames received."""

    def __init__(self, context, page, base_url: str) -> None:
        self.context, self.page, self.base_url = context, page, base_url
        self.requests: list[tuple[str, str]] = []
        self.frames: list[str] = []
        page.on("request", lambda request: self.requests.append((request.method, request.url)))
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: self.frames.append(str(payload))))

    def open_dashboard(self) -> None:
        self.page.goto(self.base_url + "/")
        self.page.wait_for_load_state("load")
        self.page.locator('#live-indicator[data-state="live"]').wait_for(timeout=10_000)
        self.requests.clear()


@pytest.fixture
def signed_in(browser, server, live_worker, django_user_model):
    """signed_in("alice") -> a SignedInPage on the dashboard, signed in through the form."""
    contexts = []

    def sign_in(username: str, *, init_script: str | None = None, wait_live: bool = True) -> SignedInPage:
        password = f"{username}-pass-9f3k"
        django_user_model.objects.create_user(username=username, password=password)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        if init_script:
            context.add_init_script(init_script)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(server.url + "/accounts/login/")
        page.fill('input[name="username"]', username)
        page.fill('input[name="password"]', password)
        page.click('button[type="submit"], input[type="submit"]')
        page.wait_for_url(server.url + "/")
        signed = SignedInPage(context, page, server.url)
        if wait_live:
            signed.open_dashboard()
        return signed

    yield sign_in
    for context in contexts:
        context.close()
