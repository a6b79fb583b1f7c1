"""End to end: real Chromium (Debian's, driven by Playwright) against daphne, a real Celery
worker, real Redis and the test database."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from scripts.processes import Daphne
from tests.helpers import chromium_or_skip

# Playwright's sync API keeps an event loop in this thread; Django's ORM, used here only by
# the test itself to arrange and check data, would otherwise refuse to run beside it.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS = ROOT / "docs"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    # A page a test fulfils itself (to add a header) has no address Chromium can place on the
    # loopback network, so its local-network checks would refuse that page's websocket.
    "--disable-features=LocalNetworkAccessChecks",
]

# Runs in every page before its own scripts: remembers each state the live indicator took
# and every upload card that was ever in the DOM, so a test can ask what the page went
# through (a "reconnecting" that lasted 300 ms, a card that came and went), not only where
# it ended.
WATCH_PAGE = """
(() => {
  const states = window.__liveStates = [];
  const seen = window.__cardsSeen = [];
  const record = (el) => {
    const id = el.getAttribute && el.getAttribute("data-upload-id");
    if (id && el.classList.contains("upload-card") && !seen.includes(id)) seen.push(id);
  };
  document.addEventListener("DOMContentLoaded", () => {
    const indicator = document.getElementById("live-indicator");
    if (indicator) {
      const note = () => {
        const state = indicator.getAttribute("data-state");
        if (states[states.length - 1] !== state) states.push(state);
      };
      note();
      new MutationObserver(note).observe(indicator, {attributes: true, attributeFilter: ["data-state"]});
    }
    document.querySelectorAll(".upload-card").forEach(record);
    new MutationObserver((mutations) => {
      for (const mutation of mutations) {
        for (const node of mutation.addedNodes) {
          if (node.nodeType !== 1) continue;
          record(node);
          node.querySelectorAll(".upload-card").forEach(record);
        }
      }
    }).observe(document.documentElement, {childList: true, subtree: true});
  });
})();
"""


@pytest.fixture(scope="session")
def server(worker, service_env, tmp_path_factory):
    env = dict(service_env, DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost")
    instance = Daphne(env, tmp_path_factory.mktemp("daphne") / "daphne.log")
    instance.start()
    yield instance
    instance.stop()


@pytest.fixture
def running_server(server):
    """The session's daphne, started again after the test if the test stopped it."""
    yield server
    if server.process is None or server.process.poll() is not None:
        server.start()


@pytest.fixture(scope="session")
def browser():
    chromium = chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class Screenshots:
    """Screenshots go to test-artifacts/ (gitignored). With INTAKE_UPDATE_DOCS=1 the ones the
    README shows are also written to docs/, to be reviewed and committed by hand."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def take(self, page, name: str, *, docs_name: str | None = None, full_page: bool = False) -> Path:
        path = self.directory / name
        page.screenshot(path=str(path), full_page=full_page)
        if docs_name and os.environ.get("INTAKE_UPDATE_DOCS") == "1":
            shutil.copyfile(path, DOCS / docs_name)
        return path


@pytest.fixture
def artifacts() -> Screenshots:
    ARTIFACTS.mkdir(exist_ok=True)
    return Screenshots(ARTIFACTS)


class SignedInPage:
    """A browser page signed in as one user, recording the HTTP requests made after load
    and, per websocket opened, the frames it received."""

    def __init__(self, context, page, base_url: str) -> None:
        self.context, self.page, self.base_url = context, page, base_url
        self.requests: list[tuple[str, str]] = []
        self.sockets: list[list[str]] = []  # one list of received frames per websocket, in order
        self.sent: list[str] = []  # every frame the page sent, over all its websockets, in order
        page.on("request", lambda request: self.requests.append((request.method, request.url)))
        page.on("websocket", self._watch_socket)

    def _watch_socket(self, ws) -> None:
        frames: list[str] = []
        self.sockets.append(frames)
        ws.on("framereceived", lambda payload: frames.append(str(payload)))
        ws.on("framesent", lambda payload: self.sent.append(str(payload)))

    @property
    def frames(self) -> list[str]:
        return [frame for frames in self.sockets for frame in frames]

    def http(self, *, static: bool = False) -> list[tuple[str, str]]:
        """HTTP requests since the dashboard loaded (static assets left out unless asked)."""
        return [(method, url) for method, url in self.requests if static or "/static/" not in url]

    def live_states(self) -> list[str]:
        """Every state the live indicator took since this page was loaded, in order."""
        return self.page.evaluate("window.__liveStates")

    def cards_seen(self) -> list[str]:
        """The ids of every upload card that was ever on this page since it was loaded."""
        return self.page.evaluate("window.__cardsSeen")

    def wait_until(self, condition, *, timeout: float, message: str = "") -> None:
        """Wait for a condition on what Python recorded (requests, frames); the browser's
        events are delivered while Playwright waits. A time-out here is a hang, not a speed check."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(message or f"condition not met in {timeout} s")
            self.page.wait_for_timeout(50)

    def open_dashboard(self) -> None:
        self.page.goto(self.base_url + "/")
        self.page.wait_for_load_state("load")
        self.page.locator('#live-indicator[data-state="live"]').wait_for(timeout=10_000)
        self.requests.clear()


@pytest.fixture
def signed_in(browser, server, live_worker, django_user_model):
    """signed_in("alice") -> a SignedInPage on the dashboard, signed in through the form."""
    contexts = []

    def sign_in(username: str, *, init_script: str | None = None, wait_live: bool = True, prepare=None) -> SignedInPage:
        """`prepare(context)` runs before the first page opens (to route its requests, say)."""
        password = f"{username}-pass-9f3k"
        django_user_model.objects.create_user(username=username, password=password)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        context.add_init_script(WATCH_PAGE)
        if init_script:
            context.add_init_script(init_script)
        if prepare:
            prepare(context)
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
