"""LLM backends: the in-process llama.cpp backend with the SmolLM2 GGUF, a tiny random transformers model for the
`hf` path, and an OpenAI-compatible HTTP server on 127.0.0.1 returning scripted completions.

The scripted server is a stand-in for a real LLM only for what a real model cannot produce on demand: known
outputs (good, invalid and missing citations, a decline), a 500, a timeout and a stream cut off midway. The
`openai-compatible` path against a real server (llama.cpp's own) is in tests/test_compose.py.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rag import markers
from tiny_model import tiny_chat_model

QUESTION = "Why did Russia avoid a mutual defense clause with Iran?"
SCRIPTS = {
    "good": "Russia refused the clause to avoid being dragged into Iran’s regional wars [1]. "
            "Putin said Iran never made such a request [1].",
    "invalid": "Russia refused a mutual defense clause to avoid being dragged into regional wars [1][7]. "
               "It also feared the moon [12].",
    "unsupported": "Russia refused the clause because bananas are yellow and penguins cannot fly [1].",
    "none": "Russia is a large country with many interests and a long history.",
    "refuse": "The document does not say.",
    # supported by the second evidence sentence only; says nothing of the lead, which answers
    "secondary": "Iranian conservatives and hardliners exaggerate the strategic nature of Iran-Russia relations [1].",
    "cut": "Russia refused the clause to avoid being dragged",
}


class ScriptedLLM(BaseHTTPRequestHandler):
    mode = "good"
    requests: list[dict] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        prompt = body["messages"][-1]["content"]
        if "Standalone question:" in prompt:
            return self._reply(body, "Why did Russia refuse to include a mutual defense clause with Iran?")
        mode = type(self).mode
        if mode == "error":
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "model crashed", "type": "server_error"}}')
            return
        if mode == "slow":
            time.sleep(3)
        self._reply(body, SCRIPTS.get(mode, SCRIPTS["good"]), cut=mode == "cut")

    def _reply(self, body: dict, text: str, cut: bool = False) -> None:
        base = {"id": "x", "created": 0, "model": body.get("model", "m")}
        if not body.get("stream"):
            payload = dict(base, object="chat.completion", choices=[{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": text}}])
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        words = text.split(" ")
        for i, word in enumerate(words):
            delta = {"content": word + (" " if i < len(words) - 1 else "")}
            chunk = dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": delta,
                                                                          "finish_reason": None}])
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        if cut:  # the server dies mid-stream: the connection closes with no end of stream
            self.wfile.write(b'data: {"id": "x", "choi')
            self.wfile.flush()
            self.close_connection = True
            return
        end = dict(base, object="chat.completion.chunk", choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}])
        self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedLLM)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def _scripted(essay_rag, server, mode: str):
    ScriptedLLM.requests.clear()
    settings = essay_rag.settings.updated(llm={"backend": "openai-compatible", "base_url": server,
                                               "model": "scripted", "timeout_s": 1.0, "mode": mode})
    return essay_rag.with_settings(settings)


@pytest.fixture
def compat_rag(essay_rag, server):
    """Read mode: the LLM reads the passages and may decline."""
    return _scripted(essay_rag, server, "read")


@pytest.fixture
def compose_rag(essay_rag, server):
    """Compose mode (the default): the LLM phrases the evidence sentences the decision stage selected."""
    return _scripted(essay_rag, server, "compose")


def test_good_citations_are_kept_and_highlighted(compat_rag, essay_text):
    ScriptedLLM.mode = "good"
    events = list(compat_rag.stream(QUESTION))
    tokens = [e.text for e in events if e.kind == "token"]
    answer = events[-1].answer
    assert len(tokens) > 5, "the answer must arrive token by token"
    assert not answer.refused and answer.backend.startswith("openai-compatible")
    assert [c.n for c in answer.citations] == [1]
    cit = answer.citations[0]
    assert essay_text[cit.start:cit.end] == cit.text
    assert cit.highlights and all(cit.start <= a < b <= cit.end for a, b in cit.highlights)
    assert any("dragged" in essay_text[a:b] for a, b in cit.highlights)
    assert answer.validation.removed == [] and answer.validation.fallback is None
    prompt = ScriptedLLM.requests[-1]["messages"][-1]["content"]
    assert prompt.index("<passage n=\"1\"") < prompt.index("Question:") < prompt.index("square brackets")
    assert ScriptedLLM.requests[-1]["messages"][0]["role"] == "system"


def test_invalid_citation_numbers_are_removed_and_reported(compat_rag):
    ScriptedLLM.mode = "invalid"
    answer = compat_rag.ask(QUESTION)
    assert "[7]" not in answer.answer and "[12]" not in answer.answer and "[1]" in answer.answer
    assert sorted(answer.validation.removed) == [7, 12]
    assert "It also feared the moon." in answer.validation.uncited
    assert answer.to_dict()["validation"]["removed"] == answer.validation.removed


def test_sentence_unsupported_by_its_citation_is_flagged(compat_rag):
    ScriptedLLM.mode = "unsupported"
    answer = compat_rag.ask(QUESTION)
    assert answer.validation.flagged and "bananas" in answer.validation.flagged[0]


def test_answer_without_citations_falls_back_to_extractive(compat_rag):
    ScriptedLLM.mode = "none"
    answer = compat_rag.ask(QUESTION)
    assert answer.backend.startswith("extractive (fallback from openai-compatible")
    assert answer.validation.fallback and "dragged" in answer.answer and answer.citations


def test_llm_refusal_is_a_refusal_in_read_mode(compat_rag):
    ScriptedLLM.mode = "refuse"
    answer = compat_rag.ask(QUESTION)
    assert answer.refused and answer.citations == []


def _assert_quoted_fallback(answer, backend: str) -> None:
    assert not answer.refused and answer.citations
    assert answer.backend.startswith(f"extractive (fallback from {backend}")
    assert answer.validation.fallback and set(markers.cited(answer.answer)) == {c.n for c in answer.citations}


def test_compose_decline_falls_back_to_quotes_not_a_refusal(compose_rag):
    """In compose mode answerability belongs to the decision stage: a model that declines anyway is overruled by
    the evidence, quoted."""
    ScriptedLLM.mode = "refuse"
    answer = compose_rag.ask(QUESTION)
    _assert_quoted_fallback(answer, "openai-compatible")
    assert "declined" in answer.validation.fallback and answer.validation.backend_error is None


def test_compose_answer_that_leaves_out_the_lead_evidence_falls_back_to_quotes(compose_rag):
    """Each sentence is supported by the evidence, but the answer phrases only a secondary sentence: the quotes,
    led by the sentence that answers, are shown instead, and `validation` says why."""
    ScriptedLLM.mode = "secondary"
    answer = compose_rag.ask(QUESTION)
    _assert_quoted_fallback(answer, "openai-compatible")
    assert "left out" in answer.validation.fallback and answer.validation.omitted
    assert "dragged" in answer.answer and "dragged" in answer.validation.omitted


def test_compose_prompt_holds_the_evidence_sentences_not_the_passages(compose_rag):
    ScriptedLLM.mode = "good"
    answer = compose_rag.ask(QUESTION)
    prompt = ScriptedLLM.requests[-1]["messages"][-1]["content"]
    assert "<passage" not in prompt and prompt.index("Evidence:") < prompt.index("Question:")
    assert len(prompt) < sum(len(p.text) for p in answer.passages) / 2
    assert answer.backend.startswith("openai-compatible") and not answer.validation.fallback
    assert set(markers.cited(answer.answer)) == {c.n for c in answer.citations}
    # Highlights are the evidence sentences the answer cites: whole sentences inside their passages.
    for c in answer.citations:
        assert c.highlights and all(c.start <= a < b <= c.end for a, b in c.highlights)


@pytest.mark.parametrize("mode", ["read", "compose"])
def test_server_error_timeout_and_cut_stream_answer_by_quoting_with_one_message(essay_rag, server, mode):
    """A 500, a timeout or a stream that dies midway: one clear message (naming the backend and the fix) in
    `validation`, and the extractive answer instead of a traceback."""
    rag = _scripted(essay_rag, server, mode)
    for script, problem in [("error", "request failed"), ("slow", "timed out|connect"), ("cut", "")]:
        ScriptedLLM.mode = script
        started = time.perf_counter()
        answer = rag.ask(QUESTION)
        assert time.perf_counter() - started < 15
        _assert_quoted_fallback(answer, "openai-compatible")
        error = answer.validation.backend_error
        assert error and "openai-compatible" in error and "Start the server" in error, (script, error)
        if problem:
            assert re.search(problem, error), (script, error)


def test_unreachable_server_names_backend_and_fix(essay_rag):
    settings = essay_rag.settings.updated(llm={"backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                               "timeout_s": 2.0})
    answer = essay_rag.with_settings(settings).ask(QUESTION)
    _assert_quoted_fallback(answer, "openai-compatible")
    assert re.search("cannot connect.*Start the server", answer.validation.backend_error)


def test_followup_is_rewritten_by_the_llm_only_when_the_settings_ask(compat_rag):
    ScriptedLLM.mode = "good"
    history = [{"role": "user", "content": "What did the long-term agreement between Iran and Russia lack?"},
               {"role": "assistant", "content": "A mutual defense clause [1]."}]
    answer = compat_rag.ask("Why did Moscow refuse it?", history)   # default: the rule carries the context
    assert answer.standalone_question.startswith("Why did Moscow refuse it?") and \
        "What did the long-term agreement between Iran and Russia lack?" in answer.standalone_question
    assert not any("Standalone question:" in r["messages"][-1]["content"] for r in ScriptedLLM.requests)
    rewriting = compat_rag.with_settings(compat_rag.settings.updated(llm={"rewrite_followups": True}))
    answer = rewriting.ask("Why did Moscow refuse it?", history)
    assert answer.standalone_question == "Why did Russia refuse to include a mutual defense clause with Iran?"
    assert any("Standalone question:" in r["messages"][-1]["content"] for r in ScriptedLLM.requests)


def test_missing_or_unknown_backends_fail_clearly(essay_rag, tmp_path):
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF" + b"\0" * 4096)
    cases = [({"backend": "llamacpp", "model_path": "/nowhere/model.gguf"}, "model file not found"),
             ({"backend": "ollama", "model": None}, "no model given"),
             ({"backend": "hf", "model": "/nowhere/model"}, "cannot load"),
             ({"backend": "openai-compatible", "base_url": None}, "no base_url")]
    if importlib.util.find_spec("llama_cpp"):
        cases.append(({"backend": "llamacpp", "model_path": str(truncated)}, "could not load truncated.gguf"))
    for llm, match in cases:
        answer = essay_rag.with_settings(essay_rag.settings.updated(llm=llm)).ask(QUESTION)
        _assert_quoted_fallback(answer, llm["backend"])
        assert re.search(match, answer.validation.backend_error), answer.validation.backend_error


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["compose", "read"])
def test_llamacpp_smollm2_loads_streams_and_is_validated(essay_rag, mode):
    pytest.importorskip("llama_cpp", reason="install the llamacpp extra (CI does)")
    settings = essay_rag.settings.updated(llm={"backend": "llamacpp", "model_path": "smollm2", "max_tokens": 60,
                                               "n_ctx": 2048, "mode": mode})
    rag = essay_rag.with_settings(settings)
    assert rag.backend == "llamacpp:SmolLM2-135M-Instruct.Q4_1.gguf"
    # llama.cpp reads the prompt in batches of llm.n_batch, not ChatLlamaCpp's default of 8 (README "LLM backends")
    assert rag.writer.generator.model.client.context_params.n_batch == settings.llm.n_batch == 512
    events = list(rag.stream(QUESTION))
    tokens = [e.text for e in events if e.kind == "token"]
    answer = events[-1].answer
    assert tokens, "llama.cpp produced no tokens"
    assert answer.answer.strip()
    # Whatever a 135M model writes, what survives verification is grounded: a refusal without citations, or an
    # answer whose markers are exactly its citations (the extractive answer stands in when none was valid).
    assert {c.n for c in answer.citations} <= {p.n for p in answer.passages}
    assert set(markers.cited(answer.answer)) == {c.n for c in answer.citations}
    assert answer.refused or answer.citations
    assert bool(answer.validation.fallback) == answer.backend.startswith("extractive (fallback from llamacpp")


def test_hf_backend_loads_a_local_model_and_streams(essay_rag, tmp_path):
    folder = tiny_chat_model(tmp_path / "tiny-llama")
    settings = essay_rag.settings.updated(llm={"backend": "hf", "model": str(folder), "max_tokens": 16})
    rag = essay_rag.with_settings(settings)
    events = list(rag.stream(QUESTION))
    tokens = [e.text for e in events if e.kind == "token"]
    answer = events[-1].answer
    assert len(tokens) >= 2, "the hf backend must stream tokens"
    assert answer.backend.startswith(("hf:", "extractive (fallback from hf"))
    if answer.backend.startswith("extractive"):  # random weights rarely produce a valid citation
        assert answer.validation.fallback and answer.citations
