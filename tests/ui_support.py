"""Shared helpers for the UI tests: a real RAG in a temporary index, a real Gradio server on a free local port,
and a real headless Chromium (Debian's, since Playwright's own browser download is unavailable here).

Imported by tests/test_ui_browser.py and tests/test_ui_client.py (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import closing, contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(demo, settings) -> Iterator[str]:
    """Launch `demo` on 127.0.0.1 and a free port, with the app's own launch options; close it afterwards."""
    from ui.app import launch_options

    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                **launch_options(settings))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def make_settings(root: Path, **sections):
    """Settings whose default index and uploaded sets live under `root` (index/ and sets/)."""
    from rag import Settings

    return Settings(index={"dir": root / "index"}, **sections)


@contextmanager
def chromium() -> Iterator[object]:
    """A headless Debian Chromium driven by Playwright; skips the test when it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page, name: str, full_page: bool | None = None) -> Path:
    """Save a screenshot under test-artifacts/: the whole page, except on a phone-sized window, where the
    window itself is what a user sees (a full-page shot paints the fixed bottom tab bar mid-page)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    if full_page is None:
        full_page = (page.viewport_size or {}).get("width", 1440) > 480
    page.screenshot(path=str(path), full_page=full_page)
    return path


BOT = "#chat [data-testid='bot']"


def ask(page, question: str, timeout_ms: int = 120_000, prepare: bool = False):
    """Type `question`, press Ask, and wait until the streamed answer is finished (the cursor is gone);
    `prepare`: also let the page script prepare the answer's markers (popovers, labels) before returning."""
    before = page.locator(BOT).count()
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(
        """([sel, n]) => { const m = document.querySelectorAll(sel);
               return m.length > n && !m[m.length - 1].innerText.includes('▌'); }""",
        arg=[BOT, before], timeout=timeout_ms)
    if prepare:
        page.evaluate("window.ragUi.prepareAll()")
    return page.locator(BOT).last


# -- fixtures shared by the UI test modules (imported by each; module scope: one app per module) ------------------
@pytest.fixture(scope="module")
def ui_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ui")


@pytest.fixture(scope="module")
def ui_settings(ui_root):
    return make_settings(ui_root)


@pytest.fixture(scope="module")
def ui_rag(ui_settings):
    from rag import RAG

    return RAG.from_settings(ui_settings)  # builds the bundled essay into the empty tmp index


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def app_url(ui_settings, ui_rag):
    from ui.app import build_app

    with serve(build_app(ui_settings, ui_rag), ui_settings) as url:
        yield url
