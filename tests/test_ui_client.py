"""The app's API through gradio_client, against a real server over a real RAG (model + FAISS/BM25 index):
one client, follow-ups, errors, and several clients at once. Plus the rendering the chat is built from.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor, as_completed

import pytest
from ui_support import make_settings, serve

pytestmark = pytest.mark.timeout(600)

Q_DEFENSE = "Why did Russia avoid a mutual defense clause with Iran?"

# (question, words of which at least one must be in the answer)
FACTS = [
    (Q_DEFENSE, ("dragged", "regional wars")),
    ("What did Zarif say about enrichment during the JCPOA talks?", ("enrichment",)),
    ("How many Russian-speaking Jews live in Israel?", ("2 million",)),
    ("What is the ‘Look to the East’ policy?", ("Look to the East",)),
]


@pytest.fixture(scope="module")
def ui_settings(tmp_path_factory):
    return make_settings(tmp_path_factory.mktemp("ui-client"))


@pytest.fixture(scope="module")
def ui_rag(ui_settings):
    from rag import RAG

    return RAG.from_settings(ui_settings)


@pytest.fixture(scope="module")
def app_url(ui_settings, ui_rag):
    from ui.app import build_app

    with serve(build_app(ui_settings, ui_rag), ui_settings) as url:
        yield url


@pytest.fixture(scope="module")
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def assert_complete(result: dict, expect: tuple[str, ...]) -> None:
    """A correct and complete answer: the fact, valid citations with highlights inside their passage."""
    assert result["refused"] is False, result["answer"]
    assert any(word in result["answer"] for word in expect), result["answer"]
    assert result["citations"], result
    numbers = {p["n"] for p in result["passages"]}
    for c in result["citations"]:
        assert f"[{c['n']}]" in result["answer"] and c["n"] in numbers
        assert c["highlights"] and all(c["start"] <= a < b <= c["end"] for a, b in c["highlights"])
    assert result["answer"].rstrip().endswith("]")  # not cut off mid-stream


def test_api_offers_ask(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/ask" in endpoints
    params = [p["parameter_name"] for p in endpoints["/ask"]["parameters"]]
    assert params[:3] == ["question", "history", "document_set"]
    assert not any(name.startswith("/chat") for name in endpoints)  # UI-internal handlers stay private


def test_ask_returns_answer_and_citations(client):
    result = client.predict(Q_DEFENSE, api_name="/ask")
    assert_complete(result, ("dragged", "regional wars"))
    assert result["backend"] == "extractive"
    assert result["citations"][0]["section"] == "No Mutual Defense Clause in Iran-Russia Agreement"
    assert set(result) >= {"question", "answer", "refused", "backend", "citations", "passages", "timings_ms"}


def test_follow_up_with_history(client):
    first = client.predict(Q_DEFENSE, api_name="/ask")
    history = [{"role": "user", "content": Q_DEFENSE}, {"role": "assistant", "content": first["answer"]}]
    result = client.predict("Why did Moscow refuse?", json.dumps(history), api_name="/ask")
    assert "mutual defense" in result["standalone_question"]
    assert_complete(result, ("dragged", "regional"))


def test_unanswerable_and_empty_questions_are_refusals(client):
    result = client.predict("What is the population of Iran?", api_name="/ask")
    assert result["refused"] is True and result["citations"] == []
    empty = client.predict("   ", api_name="/ask")
    assert empty["refused"] is True and "question" in empty["answer"].lower()


def test_bad_inputs_are_readable_errors(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="history must be JSON"):
        client.predict(Q_DEFENSE, "not json", api_name="/ask")
    with pytest.raises(AppError, match="not a valid document set"):
        client.predict(Q_DEFENSE, "", "../etc", api_name="/ask")
    with pytest.raises(AppError, match="no document set named 'nope'"):
        client.predict(question=Q_DEFENSE, document_set="nope", api_name="/ask")


def test_unreachable_backend_is_a_readable_error(ui_settings, ui_rag):
    from gradio_client import Client
    from gradio_client.exceptions import AppError
    from ui.app import build_app

    settings = ui_settings.updated(llm={"backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                        "timeout_s": 5})
    with serve(build_app(settings, ui_rag.with_settings(settings)), settings) as url:
        with pytest.raises(AppError, match="openai-compatible.*cannot connect"):
            Client(url, verbose=False).predict(Q_DEFENSE, api_name="/ask")


def test_concurrent_clients_all_get_complete_answers(app_url):
    """Six clients at once (more than the queue's concurrency limit of 4): every one gets its own right answer."""
    from gradio_client import Client

    def one(i: int) -> tuple[int, dict, float]:
        question, _ = FACTS[i % len(FACTS)]
        started = time.perf_counter()
        result = Client(app_url, verbose=False).predict(question, api_name="/ask")
        return i, result, time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(one, i) for i in range(6)]
        results = [f.result(timeout=120) for f in as_completed(futures, timeout=180)]
    elapsed = time.perf_counter() - started
    assert len(results) == 6
    for i, result, _ in results:
        question, expect = FACTS[i % len(FACTS)]
        assert result["question"] == question  # no answer crossed over to another client
        assert_complete(result, expect)
    assert elapsed < 120


# -- rendering (no server) ------------------------------------------------------------------------------------------
def test_markers_become_escaped_links(ui_rag):
    from ui import render

    answer = ui_rag.ask(Q_DEFENSE)
    message = render.answer_message(answer, turn=3)
    assert 'href="#src-3-1"' in message and ">[1]</a>" in message
    panel = render.sources_panel(answer, turn=3)
    assert 'id="src-3-1"' in panel and "<mark" in panel
    marked = [part.split("</mark>", 1)[0] for part in panel.split("<mark")[1:]]
    assert any("dragged into Iran’s regional wars" in m for m in marked)

    hostile = render.link_markers("<script>alert(1)</script> *x* [2]", turn=0)
    assert "<script>" not in hostile and 'href="#src-0-2"' in hostile


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


# -- shared RAG objects (no server) ---------------------------------------------------------------------------------
def test_engines_share_the_model_and_index_across_configurations(ui_settings, ui_rag):
    from rag import RagError
    from ui.engines import DEFAULT_SET, ChatConfig, Engines, sanitise_set_name

    engines = Engines(ui_settings, ui_rag)
    start = engines.default_config()
    assert engines.rag(start) is ui_rag  # the configured settings are the RAG itself
    tuned = engines.rag(ChatConfig(DEFAULT_SET, "extractive", 3, 1200))
    assert tuned.settings.retrieval.k == 3 and tuned.settings.retrieval.budget_chars == 1200
    assert tuned.index is ui_rag.index and tuned.embedder is ui_rag.embedder
    assert engines.rag(ChatConfig(DEFAULT_SET, "extractive", 3, 1200)) is tuned  # cached
    assert len(tuned.ask(Q_DEFENSE).passages) <= 3
    assert engines.generator_choices() == [("Extractive — quotes the documents (no LLM)", "extractive")]

    assert sanitise_set_name("  My Notes (2024)! ") == "my-notes-2024"
    with pytest.raises(RagError, match="no document set named"):
        engines.for_set("missing")
    with pytest.raises(RagError, match="Give the new document set a name"):
        engines.create_set("  ///  ")
    key = engines.create_set("Empty Set")
    assert engines.for_set(key).documents() == []  # a new set starts empty: the essay is not copied in
    assert key not in engines.set_names()  # nothing uploaded yet, so not offered
    engines.discard_set_if_empty(key)
    assert not engines.set_dir(key).exists()


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
    assert "twice" in engines.set_names()
    answer = engines.rag(first.config).ask("When did the Quorvian bridge open?")
    assert "1911" in answer.answer and answer.citations[0].source.endswith("notes.md")
