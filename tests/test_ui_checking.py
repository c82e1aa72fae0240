"""Checking a claim in one click, on any screen (issue 12), in a real browser: real RAG, real Gradio server,
headless Debian Chromium at 1440×900 (desktop) and 390×844 (phone).

The tests check behaviour and invariants, not exact answers: the viewer shows the whole document (text far from
the cited passage) with the cited sentence marked and focused; markers are numbered 1, 2, … by first appearance;
popovers appear on hover, focus and tap; one reset clears chat, sources and follow-up context; keyboard-only use
works; the phone layout opens at the title with sources in a tab. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
from ui_support import ask as ask_and_wait
from ui_support import (  # noqa: F401 (the shared fixtures are imported to be used)
    BOT, app_url, browser, chromium, make_settings, screenshot, serve, ui_rag, ui_root, ui_settings)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

Q_DEFENSE = "Why did Russia avoid a mutual defense clause with Iran?"
Q_ENRICH = "What did Zarif say about enrichment during the JCPOA talks?"
Q_LOOK_EAST = "What is the ‘Look to the East’ policy?"
# Answers that cite passages out of retrieval order (before renumbering they showed [2][4] and [3][1]).
Q_OUT_OF_ORDER = ["Does the author think Tehran's rulers rank economic growth at home as a top concern?",
                  "Why did the Kremlin decline to put a collective-security commitment into its long-range pact with "
                  "Tehran?"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
SCREENS = pytest.mark.parametrize("screen", ["desktop", "phone"])


def open_page(browser, url: str, screen: str = "desktop"):
    phone = screen == "phone"
    context = browser.new_context(viewport=PHONE if phone else DESKTOP, has_touch=phone, is_mobile=phone)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url, wait_until="domcontentloaded")  # a Gradio page never goes network-idle
    page.wait_for_selector("#question textarea")
    page.wait_for_function("() => window.ragUi && document.body.dataset.pane")
    # The script sets the pane first and the labels once #sources exists (it retries every 100 ms): on a loaded
    # machine the keyboard test read the question box before its aria-label was set (CI of a fresh clone, 2 cores
    # shared with a local model).
    page.wait_for_function("() => document.querySelector('#sources')?.getAttribute('aria-live') === 'polite'")
    return context, page


@pytest.fixture
def desktop(browser, app_url):
    context, page = open_page(browser, app_url, "desktop")
    yield page
    context.close()


@pytest.fixture
def screen_page(request, browser, app_url):
    context, page = open_page(browser, app_url, request.param)
    yield request.param, page
    context.close()


def ask(page, question: str, timeout_ms: int = 120_000):
    """Ask and wait for the finished answer with its chips prepared."""
    return ask_and_wait(page, question, timeout_ms, prepare=True)


def settle(page) -> None:
    page.wait_for_function("""() => ![...document.querySelectorAll('[data-testid=status-tracker]')]
                                   .some(e => !e.classList.contains('hide'))""")
    page.wait_for_timeout(300)


def opened(page, count_before: int) -> None:
    """Wait until the viewer has shown a new rendering (scrolled and focused)."""
    page.wait_for_function("n => window.ragUi.opened > n", arg=count_before)


def open_count(page) -> int:
    return page.evaluate("window.ragUi.opened")


def visible_in(page, inner: str, outer: str) -> bool:
    """Whether element `inner` lies within the visible box of `outer` (and of the window)."""
    return page.evaluate("""([a, b]) => { const i = document.querySelector(a).getBoundingClientRect();
        const o = document.querySelector(b).getBoundingClientRect();
        return i.top >= o.top - 1 && i.top < o.bottom && i.top >= 0 && i.top < window.innerHeight; }""",
                         [inner, outer])


def chip_numbers(answer) -> list[int]:
    return [int(re.sub(r"\D", "", t)) for t in answer.locator("a.cite").all_inner_texts()]


# -- 1. the document viewer -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("screen_page", ["desktop", "phone"], indirect=True)
def test_citation_opens_the_whole_document_at_the_span(screen_page, ui_rag):
    screen, page = screen_page
    answer = ask(page, Q_DEFENSE)
    chip = answer.locator("a.cite").first
    chip_id = chip.get_attribute("id")
    n = int(chip.get_attribute("data-n"))
    before = open_count(page)
    if screen == "phone":  # a tap previews first (the popover), its button opens the document
        chip.tap()
        page.locator("#cite-popover button").tap()
    else:
        chip.click()
    opened(page, before)
    assert page.evaluate("document.body.dataset.view") == "viewer"
    assert page.locator("#viewer .vtext").is_visible() and not page.locator("#sources").is_visible()

    # The whole document: text far from the cited passage is in the viewer too.
    source = next(c for c in ui_rag.ask(Q_DEFENSE).citations if c.n == n)
    text = ui_rag.document_text(source.source)
    # (text_content: the viewer lays out only the blocks near the screen, so innerText would leave the rest out)
    shown = page.locator("#viewer .vtext").text_content()
    far = " ".join(text[:200].split()[:12])  # the start of the document
    assert source.start > 5_000 and far in " ".join(shown.split())
    assert len(" ".join(shown.split())) >= 0.95 * len(" ".join(text.split()))

    # The cited sentence is marked, focused and scrolled into view inside the viewer.
    current = page.locator("#viewer-current")
    assert page.evaluate("document.activeElement.id") == "viewer-current"
    sentence = " ".join(current.inner_text().split())
    assert sentence and any(sentence in " ".join(source.text[a - source.start:b - source.start].split())
                            or " ".join(source.text[a - source.start:b - source.start].split()) in sentence
                            for a, b in source.highlights)
    assert visible_in(page, "#viewer-current", "#viewer .vtext")
    assert page.locator("#viewer .band, #viewer .hl").count() >= 1  # the passage around it is marked too
    if screen == "phone":
        assert page.evaluate("document.body.dataset.pane") == "sources"
        assert not page.locator("#chat-col").is_visible()
    screenshot(page, f"12-1-viewer-{screen}.png")

    # Previous / next citation, then back to the answer: focus returns to the marker.
    chips = answer.locator("a.cite").count()
    if chips > 1:
        before = open_count(page)
        page.locator("#viewer button[aria-label='Next citation']").click()
        opened(page, before)
        assert f"2 of {chips}" in page.locator("#viewer .vpos").inner_text()
    page.locator("#viewer button.vback").click()
    assert page.evaluate("document.body.dataset.view") == "sources"
    if chips > 1:
        chip_id = answer.locator("a.cite").nth(1).get_attribute("id")
    assert page.evaluate("document.activeElement.id") == chip_id
    if screen == "phone":
        assert page.evaluate("document.body.dataset.pane") == "chat"


def test_uploaded_document_opens_in_the_viewer(desktop, tmp_path):
    doc = tmp_path / "Keepers log.md"
    filler = "\n\n".join(f"Entry {i}: the lamp was trimmed and the weather noted." for i in range(200))
    doc.write_text(f"# Keepers log\n\n{filler}\n\n## Builders\n\nThe Zorbian lighthouse was built in 1873 by "
                   "engineer Malia Terrow.\n", encoding="utf-8")
    desktop.locator("#upload").get_by_text("Add your own documents").click()
    desktop.locator("#upload-files input[type=file]").set_input_files([str(doc)])
    desktop.locator("#upload-files").get_by_text("Keepers log", exact=True).first.wait_for()
    desktop.locator("#upload-target").get_by_text("A new document set").click()
    desktop.fill("#new-set-name textarea, #new-set-name input", "Keeper's Log!")
    desktop.click("#add-files")
    desktop.wait_for_function("() => /Added|Not added/.test(document.querySelector('#upload-status').innerText)",
                              timeout=120_000)
    status = desktop.locator("#upload-status").inner_text()
    assert "Added" in status and "was changed to" in status and "keeper-s-log" in status  # renamed, and said so
    desktop.wait_for_function("() => document.querySelector('#status-line').innerText.includes('keeper-s-log')")
    answer = ask(desktop, "When was the Zorbian lighthouse built?")
    before = open_count(desktop)
    answer.locator("a.cite").first.click()
    opened(desktop, before)
    shown = desktop.locator("#viewer .vtext").text_content()
    assert "Entry 0: the lamp was trimmed" in shown and "1873" in desktop.locator("#viewer-current").inner_text()
    assert visible_in(desktop, "#viewer-current", "#viewer .vtext")  # at the very end of the document
    assert "Keepers log" in desktop.locator("#viewer .vtitle").inner_text()
    screenshot(desktop, "12-1-viewer-uploaded.png")


# -- 2. numbering ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("screen_page", ["desktop", "phone"], indirect=True)
def test_numbering_without_gaps(screen_page, ui_rag):
    """Markers are numbered 1, 2, … in order of first appearance, the same in the answer, the cards and the JSON."""
    from rag import markers

    screen, page = screen_page
    for question in (Q_DEFENSE, Q_ENRICH, Q_LOOK_EAST, *Q_OUT_OF_ORDER):
        data = ui_rag.ask(question).to_dict()
        if data["refused"]:
            continue
        first_seen = markers.cited(data["answer"])
        assert first_seen == list(range(1, len(first_seen) + 1)), (question, data["answer"])
        assert sorted(c["n"] for c in data["citations"]) == first_seen

        answer = ask(page, question)
        seen = list(dict.fromkeys(chip_numbers(answer)))
        assert seen == list(range(1, len(seen) + 1)), (question, seen)
        cards = page.locator("#sources .card:not(.other) .num").all_inner_texts()
        assert [int(re.sub(r"\D", "", c)) for c in cards] == seen
    settle(page)
    screenshot(page, f"12-2-numbering-{screen}.png")


# -- 3 and 4. popover; a marker highlights its own claim ------------------------------------------------------------
@pytest.mark.parametrize("screen_page", ["desktop", "phone"], indirect=True)
def test_popover_on_hover_focus_and_tap_highlights_its_own_claim(screen_page):
    screen, page = screen_page
    answer = ask(page, Q_DEFENSE)
    chips = answer.locator("a.cite")
    first = chips.first
    assert first.get_attribute("title") is None  # no native tooltip
    popover = page.locator("#cite-popover")

    # Focus (keyboard): the popover quotes the sentence(s) and names document and section.
    first.focus()
    popover.wait_for(state="visible")
    quote = first.get_attribute("data-quote")
    assert quote and quote[:40] in " ".join(popover.inner_text().split())
    where = first.get_attribute("data-where")
    assert where and where.split(" — ")[0] in popover.inner_text()
    # The marker's own claim is highlighted (colour plus underline), and it is what the popover quotes.
    claim = page.locator(".claim.active")
    assert claim.count() == 1
    assert "underline" in claim.evaluate("e => getComputedStyle(e).textDecorationLine")
    claim_text = " ".join(claim.inner_text().split())
    assert quote.rstrip(".")[:60] in claim_text or claim_text[:60] in quote  # extractive answers quote
    screenshot(page, f"12-3-popover-focus-{screen}.png")

    if chips.count() > 1:  # two markers of one number each highlight their own sentence
        second = chips.nth(1)
        second.focus()
        page.wait_for_function("q => document.querySelector('#cite-popover').innerText.includes(q.slice(0, 30))",
                               arg=second.get_attribute("data-quote"))
        assert page.locator(".claim.active").count() == 1
        assert " ".join(page.locator(".claim.active").inner_text().split()) != claim_text
    page.keyboard.press("Escape")
    popover.wait_for(state="hidden")

    if screen == "phone":  # tap: the popover, with a button to open the document
        first.tap()
        popover.wait_for(state="visible")
        assert popover.locator("button", has_text="Show in document").is_visible()
        assert page.evaluate("document.body.dataset.view") == "sources"  # a tap alone does not jump away
        box, view = popover.bounding_box(), page.viewport_size
        assert box["x"] >= 0 and box["x"] + box["width"] <= view["width"]
        screenshot(page, "12-3-popover-tap-phone.png")
    else:  # hover
        page.mouse.move(0, 0)
        popover.wait_for(state="hidden")
        first.hover()
        popover.wait_for(state="visible")
        screenshot(page, "12-3-popover-hover-desktop.png")


# -- 5. one reset ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("control", ["clear", "new-chat"])
def test_reset_clears_chat_sources_viewer_and_follow_up_context(desktop, control):
    ask(desktop, Q_DEFENSE)
    before = open_count(desktop)
    desktop.locator(BOT).last.locator("a.cite").first.click()
    opened(desktop, before)
    if control == "clear":
        desktop.locator("#chat button[aria-label='Clear'], #chat button[title='Clear']").first.click()
    else:
        desktop.click("#new-chat")
    desktop.wait_for_function("sel => document.querySelectorAll(sel).length === 0", arg=BOT)
    desktop.wait_for_function("() => document.querySelector('#sources').innerText.includes('Ask a question and')")
    assert desktop.evaluate("document.body.dataset.view") == "sources"
    settle(desktop)
    # The follow-up context is gone: this is read as a new question, not joined to the cleared one.
    follow = ask(desktop, "Why did Moscow refuse?")
    panel = desktop.locator("#sources").inner_text()
    assert "searched as" not in panel and "mutual defense" not in panel.split("Generator")[-1]
    assert "Sources for answer 1" in panel or follow.locator(".note-refusal").count() == 1
    screenshot(desktop, f"12-5-after-{control}.png")


# -- 6 and 7. phone layout; first open ------------------------------------------------------------------------------
@pytest.mark.parametrize("screen_page", ["desktop", "phone"], indirect=True)
def test_first_open_names_the_documents_plainly_with_example_buttons(screen_page, ui_rag):
    screen, page = screen_page
    page.locator("#chat button.example").first.wait_for()
    settle(page)
    title = ui_rag.documents()[0].title
    assert title in page.locator("#chat").inner_text()  # the empty chat names the document
    assert title in page.locator("#status-line").inner_text()
    examples = page.locator("#chat button.example")
    assert examples.count() >= 4
    assert examples.first.evaluate("e => getComputedStyle(e).borderTopStyle") != "none"  # they look like buttons
    main_text = page.locator("#chat-tab").inner_text()
    for jargon in ("chunk", "llm.backend", "MRR@10", "top-k", "(k)"):
        assert jargon not in main_text, jargon
    assert page.locator("#settings").get_by_text("Advanced").is_visible()
    # Title and status are on screen at load, and the page did not scroll to a focused input.
    assert page.evaluate("window.scrollY") == 0
    for selector in ("h1", "#status-line"):
        box = page.locator(selector).first.bounding_box()
        assert box and 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]
    # Nothing overlaps: no floating "Conversation" label over the messages; the placeholder is not cut.
    assert not page.locator("#chat").get_by_text("Conversation", exact=True).is_visible()
    placeholder = page.locator("#chat .placeholder-content, #chat .placeholder").first
    assert placeholder.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    if screen == "phone":
        assert page.evaluate("document.activeElement.tagName") != "TEXTAREA"
        assert page.locator("#pane-tabs").is_visible() and not page.locator("#sources").is_visible()
    else:
        assert page.locator("#sources").is_visible() and not page.locator("#pane-tabs").is_visible()
    screenshot(page, f"12-7-first-open-{screen}.png")


def test_phone_sources_are_a_tab_beside_the_chat_without_scroll_traps(browser, app_url):
    context, page = open_page(browser, app_url, "phone")
    try:
        ask(page, Q_DEFENSE)
        ask(page, Q_ENRICH)
        # The chat grows with the page instead of scrolling inside it: no nested scroll area to get stuck in.
        trapped = page.evaluate("""() => [...document.querySelectorAll('#chat *, #sources *')].filter(e => {
            const s = getComputedStyle(e);
            return /(auto|scroll)/.test(s.overflowY) && e.scrollHeight > e.clientHeight + 2; }).length""")
        assert trapped == 0
        page.locator("#pane-tabs [data-pane-target='sources']").tap()
        assert page.locator("#sources").is_visible() and not page.locator("#chat-col").is_visible()
        assert "Sources for answer 2" in page.locator("#sources").inner_text()
        screenshot(page, "12-6-phone-sources-tab.png")
        page.locator("#pane-tabs [data-pane-target='chat']").tap()
        assert page.locator("#chat-col").is_visible()
        # The tab bar never covers the input: the page leaves room for it.
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        bar = page.locator("#pane-tabs").bounding_box()
        field = page.locator("#question textarea").bounding_box()
        assert field["y"] + field["height"] <= bar["y"] + 1
        screenshot(page, "12-6-phone-chat.png")
    finally:
        context.close()


# -- 8. keyboard and screen readers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("screen_page", ["desktop", "phone"], indirect=True)
def test_keyboard_only_path(screen_page):
    screen, page = screen_page
    field = page.locator("#question textarea")
    assert field.get_attribute("aria-label")
    assert page.locator("#sources").get_attribute("aria-live") == "polite"
    field.focus()
    page.keyboard.type(Q_DEFENSE)
    before = page.locator(BOT).count()
    page.keyboard.press("Enter")
    page.wait_for_function("""([sel, n]) => { const m = document.querySelectorAll(sel), last = m[m.length - 1];
        return m.length > n && !last.innerText.includes('▌') && last.querySelector('a.cite'); }""",
                           arg=[BOT, before], timeout=120_000)
    page.evaluate("window.ragUi.prepareAll()")
    field.focus()
    page.keyboard.press("Tab")  # input -> the first marker
    label = page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert page.evaluate("document.activeElement.matches('a.cite')")
    assert re.fullmatch(r"Citation 1: .+", label), label
    first_id = page.evaluate("document.activeElement.id")
    chips = page.locator(BOT).last.locator("a.cite").count()
    for _ in range(chips - 1):
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.matches('a.cite')")
    page.keyboard.press("Tab")  # markers -> sources
    assert page.evaluate("!!document.activeElement.closest('#sources')")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.matches('a.cite')")
    page.locator(f"#{first_id}").focus()

    before = open_count(page)
    page.keyboard.press("Enter")  # opens the viewer at the span, with focus there
    opened(page, before)
    assert page.evaluate("document.activeElement.id") == "viewer-current"
    screenshot(page, f"12-8-keyboard-viewer-{screen}.png")
    page.keyboard.press("Escape")  # back to the marker
    assert page.evaluate("document.activeElement.id") == first_id
    assert page.evaluate("document.body.dataset.view") == "sources"


# -- 9. evaluation tab ----------------------------------------------------------------------------------------------
def test_evaluation_failures_wrap_and_link_the_report(desktop):
    desktop.get_by_role("tab", name="Evaluation").click()
    desktop.locator("#run-eval").wait_for()
    desktop.get_by_label("test").check()
    desktop.click("#run-eval")
    desktop.locator("#eval-report-open").wait_for(timeout=300_000)
    settle(desktop)
    table = desktop.locator("#eval-failures")
    assert table.evaluate("e => e.getBoundingClientRect().right <= window.innerWidth")
    assert desktop.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    wide = desktop.evaluate("""() => [...document.querySelectorAll('#eval-failures *')].filter(e =>
        e.scrollWidth > e.clientWidth + 2 && getComputedStyle(e).overflowX !== 'visible').length""")
    assert wide == 0
    href = desktop.locator("#eval-report-open").get_attribute("href")
    response = desktop.request.get(desktop.url.split("?")[0].rstrip("/") + "/" + href)
    assert response.ok and "<html" in response.text().lower()
    screenshot(desktop, "12-9-evaluation.png")
