"""The app's API through gradio_client, against a real server over a real RAG (model + FAISS/BM25 index):
one client, follow-ups, errors, and several clients at once. Plus the rendering the chat is built from.
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
from ui_support import (  # noqa: F401 (the shared fixtures are imported to be used)
    app_url, make_settings, serve, ui_rag, ui_root, ui_settings)

pytestmark = pytest.mark.timeout(600)

Q_DEFENSE = "Why did Russia avoid a mutual defense clause with Iran?"
# Questions of the essay's main topic (its example questions): each must be answered, not refused.
ON_TOPIC = [
    Q_DEFENSE,
    "What did Zarif say about enrichment during the JCPOA talks?",
    "How many Russian-speaking Jews live in Israel?",
    "What is the ‘Look to the East’ policy?",
    "How do Russia and Iran cooperate?",
]
OFF_TOPIC = ["What is the population of Iran?", "What is the boiling point of tungsten?"]


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def assert_grounded(result: dict, rag) -> None:
    """The invariants of every answer: a refusal cites nothing; any other answer cites at least one retrieved
    passage, every marker names a citation and every citation is marked, each citation's text is exactly the
    document's characters at its offsets, and each highlight lies inside its citation."""
    from rag import markers

    if result["refused"]:
        assert result["citations"] == [] and markers.cited(result["answer"]) == [], result
        return
    assert result["citations"], result
    cited = {c["n"] for c in result["citations"]}
    assert set(markers.cited(result["answer"])) == cited, result["answer"]
    passages = {p["n"]: p for p in result["passages"]}
    for item in [*result["citations"], *result["passages"]]:
        text = rag.document_text(item["source"])
        assert 0 <= item["start"] < item["end"] <= len(text) and text[item["start"]:item["end"]] == item["text"]
    for c in result["citations"]:
        assert c["n"] in passages and passages[c["n"]]["text"] == c["text"]
        assert c["highlights"] and all(c["start"] <= a < b <= c["end"] for a, b in c["highlights"])


def assert_answered(result: dict, rag) -> None:
    assert result["refused"] is False, result["answer"]
    assert_grounded(result, rag)


def test_api_offers_ask(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/ask" in endpoints
    params = [p["parameter_name"] for p in endpoints["/ask"]["parameters"]]
    assert params[:3] == ["question", "history", "document_set"]
    assert not any(name.startswith("/chat") for name in endpoints)  # UI-internal handlers stay private


def test_ask_returns_answer_and_citations(client, ui_rag):
    result = client.predict(Q_DEFENSE, api_name="/ask")
    assert_answered(result, ui_rag)
    assert result["backend"] == "extractive" and result["question"] == Q_DEFENSE
    assert set(result) >= {"question", "answer", "refused", "backend", "citations", "passages", "timings_ms",
                           "standalone_question", "validation", "notes"}
    # The API gives exactly what the pipeline gives (nothing lost or cut off on the way).
    direct = ui_rag.ask(Q_DEFENSE).to_dict()
    assert {k: result[k] for k in ("answer", "citations", "passages")} == \
        {k: direct[k] for k in ("answer", "citations", "passages")}


@pytest.mark.parametrize("question", ON_TOPIC[1:])
def test_questions_on_the_essays_topic_are_answered(client, ui_rag, question):
    assert_answered(client.predict(question, api_name="/ask"), ui_rag)


def test_follow_up_with_history(client, ui_rag):
    first = client.predict(Q_DEFENSE, api_name="/ask")
    history = [{"role": "user", "content": Q_DEFENSE}, {"role": "assistant", "content": first["answer"]}]
    result = client.predict("And why did they refuse?", json.dumps(history), api_name="/ask")
    assert "mutual defense" in result["standalone_question"]  # the follow-up was resolved with the history
    assert_answered(result, ui_rag)
    # Gradio-style content blocks are accepted too.
    blocks = [{"role": "user", "content": [{"type": "text", "text": Q_DEFENSE}]}]
    again = client.predict("And why did they refuse?", json.dumps(blocks), api_name="/ask")
    assert again["standalone_question"] == result["standalone_question"]


def test_huge_history_turns_are_capped_at_the_question_limit(client, ui_settings):
    limit = ui_settings.answer.max_question_chars
    history = [{"role": "user", "content": "mutual defense " * 20_000},  # 300,000 characters
               {"role": "assistant", "content": "x " * 100_000}]
    started = time.perf_counter()
    result = client.predict("And why did they refuse?", json.dumps(history), api_name="/ask")
    assert time.perf_counter() - started < 30
    assert "mutual defense" in result["standalone_question"]
    assert len(result["standalone_question"]) <= limit + len("And why did they refuse?") + 20


def test_unanswerable_and_empty_questions_are_refusals(client, ui_rag):
    for question in OFF_TOPIC:
        result = client.predict(question, api_name="/ask")
        assert result["refused"] is True, result["answer"]
        assert_grounded(result, ui_rag)
    empty = client.predict("   ", api_name="/ask")
    assert empty["refused"] is True and empty["citations"] == [] and "question" in empty["answer"].lower()


def test_bad_inputs_are_readable_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="history must be JSON"):
        client.predict(Q_DEFENSE, "not json", api_name="/ask")
    with pytest.raises(AppError, match="history must be a list"):
        client.predict(Q_DEFENSE, json.dumps({"role": "user", "content": "hi"}), api_name="/ask")
    with pytest.raises(AppError, match="history item 1"):
        client.predict(Q_DEFENSE, json.dumps([{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]),
                       api_name="/ask")
    with pytest.raises(AppError, match="not a valid document set"):
        client.predict(Q_DEFENSE, "", "../etc", api_name="/ask")
    with pytest.raises(AppError, match="no document set named 'nope'"):
        client.predict(question=Q_DEFENSE, document_set="nope", api_name="/ask")


def test_history_is_parsed_into_capped_turns():
    from gradio import Error
    from rag.types import Turn
    from ui.app import _parse_history

    assert _parse_history("") == [] and _parse_history("  ") == [] and _parse_history(None) == []
    turns = _parse_history(json.dumps([{"role": "user", "content": "a" * 3_000_000},
                                       {"role": "assistant", "content": "b"}]), max_chars=1000)
    assert turns == [Turn("user", "a" * 1000), Turn("assistant", "b")]
    with pytest.raises(Error, match="history item 0"):
        _parse_history([{"role": "user", "content": 3}])


def test_unreachable_backend_answers_by_quoting_with_a_readable_message(ui_settings, ui_rag):
    from gradio_client import Client
    from ui.app import build_app

    settings = ui_settings.updated(llm={"backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                        "timeout_s": 5})
    with serve(build_app(settings, ui_rag.with_settings(settings)), settings) as url:
        result = Client(url, verbose=False).predict(Q_DEFENSE, api_name="/ask")
    # The API still answers, by quoting, and says why in `validation` (the same JSON as `rag ask --json`).
    assert not result["refused"] and result["citations"]
    assert result["backend"].startswith("extractive (fallback from openai-compatible")
    assert re.search("openai-compatible.*cannot connect", result["validation"]["backend_error"])


def test_concurrent_clients_all_get_complete_answers(app_url, ui_rag):
    """Six clients at once (more than the queue's concurrency limit of 4): every one gets its own answer, the same
    one the pipeline gives that question alone."""
    from gradio_client import Client

    questions = [*ON_TOPIC, OFF_TOPIC[0]]
    expected = {q: ui_rag.ask(q).answer for q in questions}

    def one(i: int) -> tuple[int, dict]:
        return i, Client(app_url, verbose=False).predict(questions[i % len(questions)], api_name="/ask")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(one, i) for i in range(6)]
        results = [f.result(timeout=120) for f in as_completed(futures, timeout=180)]
    elapsed = time.perf_counter() - started
    assert len(results) == 6
    for i, result in results:
        question = questions[i % len(questions)]
        assert result["question"] == question  # no answer crossed over to another client
        assert result["answer"] == expected[question]  # complete, not cut off
        assert_grounded(result, ui_rag)
        assert result["refused"] is (question in OFF_TOPIC)
    assert elapsed < 120


# -- rendering (no server) ------------------------------------------------------------------------------------------
def test_markers_become_escaped_links(ui_rag):
    import html

    from ui import render

    answer = ui_rag.ask(Q_DEFENSE)
    message = render.answer_message(answer, turn=3)
    for c in answer.citations:
        assert f'href="#src-3-{c.n}"' in message and f">[{c.n}]</a>" in message
    panel = render.sources_panel(answer, turn=3)
    marked = [part.split("</mark>", 1)[0].split(">", 1)[1] for part in panel.split("<mark")[1:]]
    for c in answer.citations:
        assert f'id="src-3-{c.n}"' in panel
        for a, b in c.highlights:  # every supporting sentence is marked, at its document offsets
            assert any(html.escape(c.text[a - c.start:b - c.start]) in m for m in marked)

    hostile = render.link_markers("<script>alert(1)</script> *x* [2]", turn=0)
    assert "<script>" not in hostile and 'href="#src-0-2"' in hostile


def _chips(rendered: str) -> list[int]:
    import re

    return [int(n) for n in re.findall(r'href="#src-\d+-(\d+)"', rendered)]


@pytest.mark.parametrize("text, numbers", [
    ("Russia refused [1].", [1]),
    ("Russia refused [1, 2].", [1, 2]),
    ("Russia refused [1; 2].", [1, 2]),
    ("Russia refused [1-3].", [1, 2, 3]),
    ("Russia refused [1–3] and feared wars [4][5].", [1, 2, 3, 4, 5]),
    ("No citation here.", []),
])
def test_every_marker_form_becomes_chips(text, numbers):
    from ui import render

    assert _chips(render.link_markers(text, turn=0)) == numbers
    assert _chips(render.streaming_message(text, turn=0)) == numbers  # linked while streaming too
    assert sorted(render.cited_claims(text)) == sorted(set(numbers))


def test_escaped_document_brackets_stay_literal_text():
    from rag import markers
    from ui import render

    quoted = markers.escape_literal("The siren sounded [2] during storms.")  # document text, not a citation
    text = f"{quoted} [1]"
    rendered = render.link_markers(text, turn=0)
    assert _chips(rendered) == [1]
    assert "\\[2\\]" in rendered  # markdown for a literal "[2]"
    assert "\\\\" not in rendered  # the escaping backslash itself is not shown
    assert render.cited_claims(text) == {1: ["The siren sounded [2] during storms."]}
    assert _chips(render.streaming_message(quoted, turn=0)) == []


def test_highlight_offsets_are_document_offsets():
    from ui import render

    text = "Alpha beta. Gamma delta. Epsilon."
    out = render.highlighted(text, 100, [(112, 124)], render.colour(1))
    assert ">Gamma delta.</mark>" in out and out.count("<mark") == 1
    assert "&lt;" in render.highlighted("a < b", 0, [(0, 1)], render.colour(1))


def test_claims_follow_their_markers():
    from ui import render

    claims = render.cited_claims("Russia refused. [1] It feared wars [2][3]. Done.")
    assert claims[1] == ["Russia refused."] and claims[2] == claims[3] == ["It feared wars"]
    claims = render.cited_claims("Russia refused [1; 2]. It feared wars [2-3].")
    assert claims[1] == ["Russia refused"] and claims[2] == ["Russia refused", "It feared wars"]
    assert claims[3] == ["It feared wars"]


# -- shared RAG objects (no server) ---------------------------------------------------------------------------------
def test_engines_share_the_model_and_index_across_configurations(ui_settings, ui_rag):
    from ui.engines import DEFAULT_SET, ChatConfig, Engines

    engines = Engines(ui_settings, ui_rag)
    start = engines.default_config()
    assert engines.rag(start) is ui_rag  # the configured settings are the RAG itself
    tuned = engines.rag(ChatConfig(DEFAULT_SET, "extractive", 3, 1200))
    assert tuned.settings.retrieval.k == 3 and tuned.settings.retrieval.budget_chars == 1200
    assert tuned.index is ui_rag.index and tuned.embedder is ui_rag.embedder
    assert engines.rag(ChatConfig(DEFAULT_SET, "extractive", 3, 1200)) is tuned  # cached
    assert len(tuned.ask(Q_DEFENSE).passages) <= 3
    assert engines.generator_choices() == [("Extractive — quotes the documents (no LLM)", "extractive")]
    assert engines.sets.holds_bundled_essay(DEFAULT_SET)
    assert engines.set_choices()[0][1] == DEFAULT_SET

    key = engines.sets.create("Empty Set")
    empty = engines.rag(ChatConfig(key, "extractive", 3, 1200))
    assert empty.documents() == [] and empty.embedder is ui_rag.embedder
    assert not engines.sets.holds_bundled_essay(key)
    assert engines.discard_set_if_empty(key)
    assert not engines.sets.directory(key).exists()
    # The discarded set's configurations are forgotten: a set made again under that name starts afresh.
    again = engines.sets.create("Empty Set")
    assert engines.rag(ChatConfig(again, "extractive", 3, 1200)) is not empty
    engines.discard_set_if_empty(again)


def test_uploading_the_same_file_twice_reports_it_unchanged(ui_settings, ui_rag, tmp_path):
    from ui.documents import NEW_SET, add_documents
    from ui.engines import Engines

    engines = Engines(ui_settings, ui_rag)
    doc = tmp_path / "notes.md"
    doc.write_text("# Notes\n\nThe Quorvian bridge opened in 1911.\n", encoding="utf-8")
    steps: list[float] = []
    first = add_documents(engines, [str(doc)], NEW_SET, "twice", engines.default_config(),
                          lambda frac, desc: steps.append(frac))
    assert first.added == ["notes.md"] and first.config.set == "twice" and not first.problems
    assert steps == sorted(steps) and steps[-1] == pytest.approx(1.0)  # progress only moves forward
    again = add_documents(engines, [str(doc)], "The current document set", "", first.config, lambda f, d: None)
    assert "Already in set “twice”" in again.message and again.added == []
    assert "twice" in engines.sets.names() and ("Set: twice", "twice") in engines.set_choices()
    answer = engines.rag(first.config).ask("When did the Quorvian bridge open?")
    assert "1911" in answer.answer and answer.citations[0].source.endswith("notes.md")

    # A new set whose every file is refused is not created, and the session stays where it was.
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    junk = add_documents(engines, [str(empty)], NEW_SET, "junk", first.config, lambda f, d: None)
    assert "is empty" in junk.message and "was not created" in junk.message and junk.config == first.config
    assert "junk" not in engines.sets.names() and not engines.sets.directory("junk").exists()


# -- no process-wide side effects -----------------------------------------------------------------------------------
def test_importing_the_ui_leaves_the_environment_alone():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "GRADIO_ANALYTICS_ENABLED"}
    code = "import os, ui, ui.app; print(os.environ.get('GRADIO_ANALYTICS_ENABLED'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"


def test_the_app_turns_analytics_off_itself(ui_settings, ui_rag, monkeypatch):
    from ui.app import build_app

    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")  # even where the environment would allow them
    assert build_app(ui_settings, ui_rag).analytics_enabled is False
