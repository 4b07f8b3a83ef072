"""The web page at / in a real headless Chromium (Debian's), driven by Playwright's Python package."""

from __future__ import annotations

import importlib.util
import os

import pytest

from bayling.testing.fake_engine import FakeEngine
from bayling.serve.app import create_app
from bayling.testing.background import BackgroundServer

CHROMIUM = os.environ.get("BAYLING_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="the playwright Python package is not installed (pip install playwright)"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM),
                       reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"),
]


def _reply(target) -> str:
    """A scripted translator: a German draft, then whatever the refinement asked for."""
    if isinstance(target, str):
        return "echo"
    last = target[-1]["content"]
    if last.startswith("Translate the following English text into German."):
        return "Hallo Welt"
    if "formal" in last:
        return "Guten Tag, verehrte Welt"
    if "shorter" in last:
        return "Hallo"
    return "Du hast gesagt: " + last


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(create_app(FakeEngine(_reply, token_latency=0.01), api_key="sk-web")) as s:
        yield s


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    yield page
    context.close()


def _use_key(page):
    page.wait_for_selector("#key-box:not([hidden])")  # /v1/models answered 401: the page asks
    page.fill("#api-key", "sk-web")
    page.click("#key-save")
    page.wait_for_function("document.getElementById('model-name').textContent === 'fake'")


def test_translate_refine_history_copy(page):
    _use_key(page)
    assert page.locator("#src-lang option").count() == 204
    page.fill("#lang-filter", "germ")
    page.select_option("#tgt-lang", "deu_Latn")
    page.select_option("#src-lang", "eng_Latn")
    page.fill("#source-text", "Hello world")
    page.click("#translate-btn")
    page.wait_for_function("document.getElementById('result').textContent === 'Hallo Welt'")

    page.click("button[data-refine='Make it more formal.']")
    page.wait_for_function("document.getElementById('result').textContent === 'Guten Tag, verehrte Welt'")
    page.fill("#refine-input", "Make it shorter.")
    page.click("#refine-btn")
    page.wait_for_function("document.getElementById('result').textContent === 'Hallo'")

    turns = page.locator("#history .turn").all_inner_texts()
    assert len(turns) == 6
    assert "Translate the following English text into German." in turns[0]
    assert [t.split("\n", 1)[-1] for t in turns[1::2]] == ["Hallo Welt", "Guten Tag, verehrte Welt", "Hallo"]

    page.click("#copy-btn")
    page.wait_for_function("document.getElementById('copy-status').textContent === 'Copied!'")
    assert page.evaluate("navigator.clipboard.readText()") == "Hallo"


def test_plain_chat_streams_and_resets(page):
    _use_key(page)
    page.click("#tab-chat")
    page.fill("#chat-input", "how are you")
    page.press("#chat-input", "Enter")
    page.wait_for_function("document.querySelectorAll('#chat-log .turn').length === 2 && "
                           "document.querySelector('#chat-log .turn.assistant').textContent.endsWith('Du hast gesagt: how are you')")
    page.click("#chat-reset")
    assert page.locator("#chat-log .turn").count() == 0


def test_errors_show_on_the_page(page):
    _use_key(page)
    page.fill("#source-text", "x" * 10)
    page.evaluate("document.getElementById('src-lang').innerHTML = '<option value=\"Klingon\">Klingon</option>'")
    page.click("#translate-btn")
    page.wait_for_selector("#error:not([hidden])")
    assert "unknown language" in page.inner_text("#error")
