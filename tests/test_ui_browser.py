"""The chat UI in a real browser: real RAG (embedding model + FAISS/BM25 index), real Gradio server, headless
Chromium driven by Playwright.

Screenshots land in test-artifacts/ (git-ignored): first open, an answer with citations, after an upload.
"""

from __future__ import annotations

import re

import pytest
from tiny_model import tiny_chat_model  # noqa: E402
from ui_support import (  # noqa: F401 (the shared fixtures are imported to be used)
    BOT, ask, app_url, browser, chromium, make_settings, screenshot, serve, ui_rag, ui_root, ui_settings)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

USER = "#chat [data-testid='user']"
Q_DEFENSE = "Why did Russia avoid a mutual defense clause with Iran?"


def open_page(browser, url: str):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    # A Gradio page never goes network-idle (it keeps a connection open): wait for the element instead.
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector("#question textarea")
    return context, page


@pytest.fixture
def page(browser, app_url):
    context, page = open_page(browser, app_url)
    yield page
    context.close()


# -- helpers --------------------------------------------------------------------------------------------------------


def record_stream(page) -> None:
    """Remember every text the last bot message shows, to prove the answer arrives in pieces."""
    page.evaluate("""() => { window.__seen = [];
        new MutationObserver(() => { const m = document.querySelectorAll("#chat [data-testid='bot']");
            if (m.length) window.__seen.push(m[m.length - 1].innerText); })
          .observe(document.querySelector('#chat'), {subtree: true, childList: true, characterData: true}); }""")


def settle(page) -> None:
    """Wait until no Gradio event is pending (every status tracker hidden), e.g. before a screenshot."""
    page.wait_for_function("""() => ![...document.querySelectorAll('[data-testid=status-tracker]')]
                                   .some(e => !e.classList.contains('hide'))""")
    page.wait_for_timeout(300)


def no_traceback(page) -> None:
    body = page.locator("body").inner_text()
    assert "Traceback" not in body and 'File "' not in body


# -- tests ----------------------------------------------------------------------------------------------------------
def test_first_open_offers_examples_and_shows_backend(page):
    examples = page.locator("#chat button.example")
    examples.first.wait_for()
    texts = examples.all_inner_texts()
    assert any("mutual defense clause" in t for t in texts) and len(texts) >= 4
    status = page.locator("#status-line").inner_text()
    assert "Answers:" in status and "extractive" in status and "default index" in status.lower()
    assert "highlighted" in page.locator("#sources").inner_text()
    settle(page)
    screenshot(page, "01-first-open.png")


def test_streamed_answer_links_citations_to_highlighted_sources(page):
    record_stream(page)
    answer = ask(page, Q_DEFENSE)
    assert answer.locator(".note-refusal, .note-error").count() == 0
    # It streamed: the message grew through several partial texts with the cursor before the final one.
    seen = page.evaluate("window.__seen")
    partial = {s for s in seen if "▌" in s and len(s.strip()) > 2}
    assert len(partial) >= 3, seen[:10]

    # Markers are links into the sources panel, which shows the cited passage with the sentence highlighted.
    page.evaluate("window.ragUi.prepareAll()")
    links = answer.locator("a[href^='#src-0-']")
    assert links.count() >= 1
    for i in range(links.count()):  # every marker: a chip whose card highlights what its popover quotes
        link = links.nth(i)
        assert re.fullmatch(r"\[\d+\]", link.inner_text())
        target = link.get_attribute("href")
        marks = [" ".join(m.split()) for m in page.locator(f"#sources {target} mark").all_inner_texts()]
        assert marks, f"the card {target} highlights no supporting sentence"
        quote = " ".join((link.get_attribute("data-quote") or "").split())
        assert any(m[:40] in quote for m in marks), (quote, marks)
    link = links.first
    target = link.get_attribute("href")
    card = page.locator(f"#sources {target}")
    assert "§" in card.inner_text() or card.locator(".title").inner_text()  # section heading or document title
    assert re.search(r"characters [\d,]+–[\d,]+", card.inner_text())
    assert "Other retrieved passages" in page.locator("#sources details summary").inner_text()
    assert not page.locator("#sources details").evaluate("d => d.open")  # uncited ones stay secondary
    settle(page)
    screenshot(page, "02-answer-with-citations.png")

    link.click()  # opens the whole document at the passage (tests/test_ui_checking.py checks the viewer)
    page.wait_for_function("() => window.ragUi.opened >= 1")
    assert page.locator("#viewer-current").is_visible()
    no_traceback(page)
    screenshot(page, "02b-citation-clicked.png")


def test_example_click_asks_it(page):
    page.locator("#chat button.example", has_text="Russian-speaking Jews").click()
    page.wait_for_function("""sel => { const m = document.querySelectorAll(sel);
        return m.length === 1 && !m[0].innerText.includes('▌'); }""", arg=BOT)
    answer = page.locator(BOT).last
    assert answer.locator(".note-refusal, .note-error").count() == 0
    assert answer.locator("a[href^='#src-0-']").count() >= 1
    assert page.locator("#sources [id^='src-0-'] mark").count() >= 1


def test_follow_up_uses_the_conversation_and_new_chat_clears_it(page):
    ask(page, Q_DEFENSE)
    follow = ask(page, "Why did Moscow refuse?")
    assert follow.locator("a[href^='#src-1-']").count() >= 1
    assert follow.locator(".note-refusal").count() == 0
    panel = page.locator("#sources").inner_text()
    assert "Sources for answer 2" in panel
    assert "searched as" in panel and "mutual defense" in panel  # the follow-up was resolved with the history

    # Clicking the first answer brings its sources back.
    page.locator(BOT).first.click()
    page.wait_for_function("() => document.querySelector('#sources').innerText.includes('Sources for answer 1')")
    assert page.locator("#sources [id^='src-0-'] mark").count() >= 1

    page.click("#new-chat")
    page.wait_for_function("sel => document.querySelectorAll(sel).length === 0", arg=BOT)
    assert page.locator(USER).count() == 0
    page.locator("#chat button.example").first.wait_for()
    assert "Ask a question and the passages" in page.locator("#sources").inner_text()
    # The new conversation does not inherit the old one.
    fresh = ask(page, "What is the population of Iran?")
    assert fresh.locator(".note-refusal").count() == 1


def test_each_browser_session_has_its_own_conversation(browser, app_url, page):
    ask(page, Q_DEFENSE)
    other_context, other = open_page(browser, app_url)
    try:
        assert other.locator(BOT).count() == 0 and other.locator("#chat button.example").count() >= 4
        ask(other, "Why did Moscow refuse?")
        panel = other.locator("#sources").inner_text()
        # This session has no history, so the question is searched as typed (not joined to the other's).
        assert "Sources for answer 1" in panel or "Not answered" in other.locator(BOT).last.inner_text()
        assert "searched as" not in panel
    finally:
        other_context.close()
    assert page.locator(BOT).count() == 1

def test_unanswerable_question_is_shown_as_a_refusal(page):
    answer = ask(page, "What is the population of Iran?")
    assert answer.locator(".note-refusal").count() == 1
    assert "Not answered" in answer.inner_text()
    assert answer.locator("a[href^='#src-']").count() == 0
    assert page.locator("#sources .refused").count() == 1
    assert page.locator("#sources details").evaluate("d => d.open")  # the closest passages, for checking


def test_empty_question_gets_a_hint_not_an_error(page):
    page.click("#ask")
    page.wait_for_selector(f"{BOT} .note-hint")
    assert "Type a question" in page.locator(BOT).last.inner_text()
    assert page.locator(USER).count() == 0


def _open_uploads(page) -> None:
    page.get_by_text("Add your own documents").click()
    page.locator("#upload-files input[type=file]").wait_for(state="attached")


def _add_files(page, paths, new_set: str | None = None) -> str:
    page.locator("#upload-files input[type=file]").set_input_files([str(p) for p in paths])
    # Wait until every chosen file is uploaded (listed; the name and extension are separate elements).
    for p in paths:
        page.locator("#upload-files").get_by_text(p.stem, exact=True).first.wait_for()
    if new_set is not None:
        page.locator("#upload-target").get_by_text("A new document set").click()
        page.fill("#new-set-name textarea, #new-set-name input", new_set)
    else:
        page.locator("#upload-target").get_by_text("The current document set").click()
    previous = page.locator("#upload-status").inner_text()
    page.click("#add-files")
    # While indexing, the status shows Gradio's progress tracker; wait for the final report instead.
    page.wait_for_function(
        """prev => { const e = document.querySelector('#upload-status'); const t = e ? e.innerText : '';
                     return t !== prev && /(Added|Not added|Already in|upload failed)/.test(t)
                            && !e.querySelector('.progress-text, .eta-bar'); }""",
        arg=previous, timeout=120_000)
    return page.locator("#upload-status").inner_text()


def test_upload_into_a_new_set_then_ask_about_it(page, tmp_path):
    doc = tmp_path / "Zorbian Lighthouse.txt"
    doc.write_text("The Zorbian Lighthouse\n\nThe Zorbian lighthouse was built in 1873 by engineer Malia Terrow. "
                   "It stands on the northern cape and its lamp can be seen for twenty nautical miles.\n",
                   encoding="utf-8")
    _open_uploads(page)
    status = _add_files(page, [doc], new_set="Lighthouse notes")
    assert "Added" in status and "Zorbian_Lighthouse.txt" in status  # stored under a sanitised name
    page.wait_for_function("() => document.querySelector('#status-line').innerText.includes('lighthouse-notes')")
    assert "1 document" in page.locator("#status-line").inner_text()
    settle(page)
    assert page.locator("#chat button.example").count() == 0  # essay examples make no sense for this set
    screenshot(page, "03-after-upload.png")

    answer = ask(page, "When was the Zorbian lighthouse built?")
    assert "1873" in answer.inner_text()
    cards = page.locator("#sources .card:not(.other)")
    assert any("Zorbian_Lighthouse.txt" in t for t in cards.all_inner_texts())
    assert any("1873" in t for t in page.locator("#sources mark").all_inner_texts())

    # A second file into the current (new) set; both are listed.
    keeper = tmp_path / "keeper.md"
    keeper.write_text("# Keepers\n\nThe first keeper of the Zorbian lighthouse was Ilsa Brandt.\n", encoding="utf-8")
    status = _add_files(page, [keeper])
    assert "Added" in status and "keeper.md" in status
    page.wait_for_function("() => document.querySelector('#status-line').innerText.includes('2 documents')")
    answer = ask(page, "Who was the first keeper of the Zorbian lighthouse?")
    assert "Ilsa Brandt" in answer.inner_text()
    no_traceback(page)
    settle(page)
    screenshot(page, "04-answer-from-upload.png")


def test_a_table_an_answer_quotes_is_shown_a_row_per_line_and_highlighted(page, tmp_path):
    """An answer led by "here is how the 5.4 cycle went:" quotes the table after it (rag.evidence.introduced_block):
    in the chat each row is a line of its own, and the cited card highlights the rows."""
    from test_answer import RELEASE_GUIDE

    doc = tmp_path / "release-guide.txt"
    doc.write_text(RELEASE_GUIDE, encoding="utf-8")
    _open_uploads(page)
    status = _add_files(page, [doc], new_set="Release guide")
    assert "Added" in status
    page.wait_for_function("() => document.querySelector('#status-line').innerText.includes('release-guide')")
    answer = ask(page, "How did the 5.4 development cycle go?")
    lines = [" ".join(line.split()) for line in answer.inner_text().splitlines()]
    assert "September 15 5.3 stable release" in lines and "November 17 5.4-rc8" in lines
    marks = [" ".join(m.split()) for m in page.locator("#sources mark").all_inner_texts()]
    assert any("5.4-rc8" in m for m in marks) and not any("=====" in m for m in marks)
    no_traceback(page)
    settle(page)
    screenshot(page, "04b-answer-quoting-a-table.png")


def test_bad_uploads_get_clear_messages(page, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    program = tmp_path / "setup.exe"
    program.write_bytes(b"MZ\x90\x00binary")
    _open_uploads(page)
    status = _add_files(page, [empty, program], new_set="junk")
    assert "Not added" in status
    assert "empty.txt" in status and "empty" in status.split("empty.txt", 1)[1]
    assert "setup.exe" in status and "unsupported file type" in status
    assert "was not created" in status
    no_traceback(page)
    # The warning toast sits at the bottom of the window, never over the title and status line.
    toast = page.locator(".toast-wrap .toast-body, .toast-wrap [data-testid='toast-body']").first
    toast.wait_for()
    line = page.locator("#status-line").bounding_box()
    box = toast.bounding_box()
    assert box["y"] > line["y"] + line["height"] or box["y"] + box["height"] < line["y"]
    assert box["y"] + box["height"] > page.viewport_size["height"] / 2
    # The session stays on the default index, and the failed set is not offered.
    assert "default index" in page.locator("#status-line").inner_text().lower()
    settle(page)
    screenshot(page, "05-bad-upload.png")


def test_oversized_upload_is_refused_with_a_message(browser, ui_root, ui_rag, tmp_path):
    """ui.max_upload_mb reaches the server's upload limit: a too-big file is refused before it is stored."""
    from rag.docsets import DEFAULT_SET, DocumentSets
    from ui.app import build_app

    settings = make_settings(ui_root, ui={"max_upload_mb": 0.001})  # 1,000 bytes
    big = tmp_path / "big.txt"
    big.write_text("word " * 2000, encoding="utf-8")
    with serve(build_app(settings, ui_rag.with_settings(settings)), settings) as url:
        context, page = open_page(browser, url)
        try:
            _open_uploads(page)
            page.locator("#upload-files input[type=file]").set_input_files([str(big)])
            page.get_by_text("exceed the maximum allowed size").first.wait_for()
            assert "big.txt" in page.locator("body").inner_text()
            assert not (DocumentSets(settings, ui_rag).uploads_dir(DEFAULT_SET) / "big.txt").exists()
        finally:
            context.close()

def test_unreachable_llm_backend_is_a_message_in_the_chat(browser, ui_root, ui_rag):
    from ui.app import build_app

    settings = make_settings(ui_root, llm={"backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                           "timeout_s": 5})
    with serve(build_app(settings, ui_rag.with_settings(settings)), settings) as url:
        context, page = open_page(browser, url)
        try:
            assert "openai-compatible" in page.locator("#status-line").inner_text()
            # The LLM fails: one message naming it and the fix, and the question is still answered by quoting.
            answer = ask(page, Q_DEFENSE)
            text = answer.inner_text()
            assert "could not answer" in text and "openai-compatible" in text and "Extractive" in text
            assert answer.locator("a[href^='#src-']").count() >= 1
            no_traceback(page)

            # Switching the generator in Settings answers without the LLM.
            page.locator("#settings").get_by_text("Advanced").click()
            page.locator("#generator").get_by_text("Extractive").click()
            page.wait_for_function("() => document.querySelector('#status-line').innerText.includes('extractive')")
            answer = ask(page, Q_DEFENSE)
            assert answer.locator("a[href^='#src-']").count() >= 1
            assert answer.locator(".note-refusal, .note-error").count() == 0
        finally:
            context.close()


def test_llm_tokens_stream_then_the_validated_answer_replaces_them(browser, ui_root, ui_rag, tmp_path):
    """A real (tiny, random) transformers model behind the `hf` backend: its tokens stream into the chat, then the
    final answer from validation replaces them; here the extractive fallback, with a visible note."""
    pytest.importorskip("transformers")
    pytest.importorskip("langchain_huggingface")
    from ui.app import build_app

    folder = tiny_chat_model(tmp_path / "tiny-llama")
    settings = make_settings(ui_root, llm={"backend": "hf", "model": str(folder), "max_tokens": 16})
    with serve(build_app(settings, ui_rag.with_settings(settings)), settings) as url:
        context, page = open_page(browser, url)
        try:
            assert "hf:" in page.locator("#status-line").inner_text()
            record_stream(page)
            answer = ask(page, Q_DEFENSE)
            seen = [t for t in page.evaluate("window.__seen") if "▌" in t and len(t.strip()) > 2]
            assert seen, "no partial answer was shown while the model generated"
            final = answer.inner_text()
            assert "▌" not in final
            footer = page.locator("#sources .footer").inner_text()
            if "fallback" in footer:  # random weights rarely cite validly, or cite without saying what the lead says
                assert "no valid citation" in final or "left out what the best evidence sentence says" in final
                assert answer.locator("a[href^='#src-0-']").count() >= 1
            else:
                assert answer.locator("a[href^='#src-0-'], .note-refusal").count() >= 1
            no_traceback(page)
            settle(page)
            screenshot(page, "06-llm-answer.png")
        finally:
            context.close()


def test_evaluation_tab_runs_the_bundled_set_with_progress_and_shows_failures(page):
    page.get_by_role("tab", name="Evaluation").click()
    page.locator("#run-eval").wait_for()
    page.get_by_label("test").check()
    page.click("#run-eval")
    page.wait_for_function("() => (document.querySelector('#eval-summary')?.innerText || '').includes('questions')",
                           timeout=300_000)
    from eval import load_questions
    from eval.metrics import CITATION_PRECISION, KEY_ACCURACY, TARGETS

    # Structure, not numbers: as many questions as the test split holds, and a key-term accuracy that is a ratio.
    questions = load_questions(split="test")
    summary = " ".join(page.locator("#eval-summary").inner_text().split())
    counts = re.search(r"(\d+) questions \((\d+) answerable\)", summary)
    assert counts, summary
    assert int(counts[1]) == len(questions) and int(counts[2]) == sum(q.answerable for q in questions)
    accuracy = re.search(rf"{KEY_ACCURACY.label.lower()} (\d\.\d{{3}})", summary)
    assert accuracy and 0.0 <= float(accuracy[1]) <= 1.0, summary
    table = page.locator("#eval-table").inner_text()
    target = next(t for t in TARGETS if t.metric is KEY_ACCURACY)
    assert KEY_ACCURACY.label in table and CITATION_PRECISION.label in table and target.describe() in table
    failures = page.locator("#eval-failures").inner_text()
    assert "Why it fails" in failures
    no_traceback(page)
    settle(page)
    screenshot(page, "07-evaluation-tab.png")
    page.get_by_role("tab", name="Chat").click()
    page.locator("#question textarea").wait_for()
