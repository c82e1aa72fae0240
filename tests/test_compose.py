"""Compose mode and the verify stage for composed answers, with real parts: the real essay index and embedding
model for the evidence, and llama.cpp's own OpenAI-compatible server (`python -m llama_cpp.server`, the SmolLM2
GGUF) on 127.0.0.1 for the API path. Drafts are written by hand where the test needs a known sentence (a wrong
number, an unsupported claim): a model cannot produce those on demand.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from rag import markers
from rag.verify import Claim, Draft, verify

QUESTION = "Why did Russia avoid a mutual defense clause with Iran?"
QUESTIONS = [QUESTION, "What did Russia offer India?", "How many Russian-speaking Jews live in Israel?",
             "What happened to the North-South Transport Corridor?", "Why does Russia not trust Iran?"]


@pytest.fixture(scope="module")
def decided(essay_rag):
    """The passages and the decision stage's evidence for QUESTION, as the compose writer receives them."""
    retrieved = essay_rag.retriever.retrieve(QUESTION)
    decision = essay_rag.decider.decide(QUESTION, retrieved.passages, retrieved.hits)
    assert decision.answerable and decision.evidence and len(retrieved.passages) > 1
    evidence = tuple(Claim(" ".join(s.sentence.text.split()), (s.passage.n,), ((s.sentence.start, s.sentence.end),))
                     for s in decision.evidence)
    return retrieved.passages, evidence


def test_a_supported_sentence_is_kept_and_highlights_its_evidence(decided):
    passages, evidence = decided
    first = evidence[0]
    n = first.cites[0]
    verified = verify(Draft(f"{first.text} [{n}]", evidence=evidence), passages)
    assert markers.cited(verified.text) == [n] and [c.n for c in verified.citations] == [n]
    assert first.support[0] in verified.citations[0].highlights
    spans = {s for c in evidence if c.cites == (n,) for s in c.support}
    assert set(verified.citations[0].highlights) <= spans     # only evidence sentences are highlighted
    assert not verified.validation.dropped and not verified.validation.recited


def test_a_wrong_or_missing_number_is_recited_to_the_evidence_that_supports_it(decided):
    passages, evidence = decided
    first = evidence[0]
    n = first.cites[0]
    other = next(p.n for p in passages if p.n != n)
    for text in (f"{first.text} [{other}]", first.text):
        verified = verify(Draft(text, evidence=evidence), passages)
        assert markers.cited(verified.text) == [n], text
        assert verified.validation.recited and not verified.validation.dropped


def test_unsupported_sentences_are_dropped_and_nothing_left_means_no_citation(decided):
    passages, evidence = decided
    first = evidence[0]
    n = first.cites[0]
    bad = [f"Russia signed a defense pact with Iran in 1854 and sent 99,000 troops [{n}].",     # numbers not given
           f"Rusia se negó a incluir una cláusula de defensa mutua en su acuerdo [{n}].",      # another language
           f"Penguins cannot fly and bananas are yellow [{n}]."]
    for text in bad:
        verified = verify(Draft(text, evidence=evidence), passages)
        assert verified.text == "" and verified.citations == [] and verified.validation.dropped, text
        # a name or number that no passage holds marks the sentence as invented (what the close-call judge reads)
        assert bool(verified.validation.invented) == ("1854" in text), text
    mixed = verify(Draft(f"{first.text} [{n}] {bad[0]}", evidence=evidence), passages)
    assert markers.cited(mixed.text) == [n] and "1854" not in mixed.text and len(mixed.validation.dropped) == 1


def test_a_number_not_in_the_evidence_is_never_kept(decided):
    passages, evidence = decided
    first = evidence[0]
    verified = verify(Draft(f"{first.text.rstrip('.')} in 2031. [{first.cites[0]}]", evidence=evidence), passages)
    assert "2031" not in verified.text


def test_a_sentence_that_only_restates_the_question_is_dropped(decided):
    passages, evidence = decided
    n = evidence[0].cites[0]
    echo = verify(Draft(f"Russia avoided a mutual defense clause with Iran for a reason [{n}].", evidence=evidence,
                        question=QUESTION), passages)
    assert echo.text == "" and echo.validation.dropped
    answer = verify(Draft(f"{evidence[0].text} [{n}]", evidence=evidence, question=QUESTION), passages)
    assert markers.cited(answer.text) == [n] and not answer.validation.dropped


def test_a_claim_ends_at_its_marker_not_at_an_abbreviation():
    """Hand-written evidence and drafts: a sentence splitter cuts "the U.S." and Qwen writes "U. S."."""
    from rag.types import Passage

    text = "After the war began, Russia offered to mediate between Iran, Israel, and the U.S. Nobody accepted."
    passage = Passage(source="doc", title="", section="", start=0, end=len(text), text=text, n=1, score=1.0)
    evidence = (Claim(text, (1,), ((0, len(text)),)),)
    question = "Between which parties did Russia offer to mediate?"
    for draft in ("Russia offered to mediate between Iran, Israel, and the U.S. [1]",
                  "Russia offered to mediate between Iran, Israel, and the U. S. [1]"):
        verified = verify(Draft(draft, evidence=evidence, question=question), [passage])
        assert verified.text == "Russia offered to mediate between Iran, Israel, and the U.S. [1]", draft
        assert not verified.validation.dropped and not verified.validation.recited


def test_an_answer_that_leaves_out_the_lead_evidence_is_marked_so_the_quotes_are_shown():
    """Hand-written evidence and drafts: each draft sentence is supported by some evidence sentence, but one draft
    phrases only the second sentence and says nothing of the lead, which answers the question."""
    from rag.types import Passage

    lead = "Among other things the NOC hosted satie.debian.org, which held the security archive."
    other = "Debian rebuilt these services on the host klecker, which had moved to the Netherlands."
    text = f"{lead} {other}"
    passage = Passage(source="doc", title="", section="", start=0, end=len(text), text=text, n=1, score=1.0)
    evidence = (Claim(lead, (1,), ((0, len(lead)),)), Claim(other, (1,), ((len(lead) + 1, len(text)),)))
    question = "Which Debian machine was hosted in the NOC that burned down?"
    secondary = verify(Draft("Debian rebuilt the services on klecker, which moved to the Netherlands [1].",
                             evidence=evidence, question=question), [passage])
    assert secondary.text and secondary.validation.omitted == lead
    answered = verify(Draft("The NOC hosted satie.debian.org, which held the security archive [1].",
                            evidence=evidence, question=question), [passage])
    assert answered.text and answered.validation.omitted is None


def test_citations_are_numbered_by_first_appearance_everywhere(essay_rag):
    """The answer, its citations and its passages use one numbering: 1..m in the order the answer first cites
    them, then the uncited passages in retrieval order; the passage list is in that order."""
    for q in QUESTIONS:
        answer = essay_rag.ask(q)
        if answer.refused:
            continue
        cited = markers.cited(answer.answer)
        assert cited == list(range(1, len(cited) + 1)), (q, answer.answer)
        assert [c.n for c in answer.citations] == cited
        assert [p.n for p in answer.passages] == list(range(1, len(answer.passages) + 1))
        by_n = {p.n: p for p in answer.passages}
        for c in answer.citations:
            assert (by_n[c.n].source, by_n[c.n].start, by_n[c.n].end) == (c.source, c.start, c.end)
        uncited = [p.score for p in answer.passages if p.n > len(cited)]
        assert uncited == sorted(uncited, reverse=True)


def test_the_writer_and_its_model_are_kept_while_the_llm_settings_hold(essay_rag):
    settings = essay_rag.settings.updated(llm={"backend": "llamacpp", "model_path": "smollm2"})
    rag = essay_rag.with_settings(settings)
    assert rag.with_settings(settings.updated(retrieval={"k": 3})).writer is rag.writer
    assert rag.with_settings(settings.updated(llm={"temperature": 0.5})).writer is not rag.writer


# -- the API path against a real OpenAI-compatible server ------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's own server with SmolLM2, on 127.0.0.1 only; stopped after the module."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
        pytest.skip("install the llamacpp extra (CI does): it includes llama-cpp-python[server]")
    from rag.models import smollm2_path

    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
                                 "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                                 "--n_threads", str(os.cpu_count() or 2)], stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"llama_cpp.server did not start in 120 s: {log.read_text()[-2000:]}")
    yield proc, url
    if proc.poll() is None:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.slow
def test_openai_compatible_backend_against_llama_cpp_server(essay_rag, llama_server):
    proc, url = llama_server
    settings = essay_rag.settings.updated(llm={"backend": "openai-compatible", "base_url": url, "model": "smollm2",
                                               "timeout_s": 60})
    rag = essay_rag.with_settings(settings)
    for q in QUESTIONS[:2]:
        events = list(rag.stream(q))
        tokens = [e.text for e in events if e.kind == "token"]
        answer = events[-1].answer
        assert len(tokens) >= 2, "the server's answer must stream"
        assert answer.validation.backend_error is None, answer.validation.backend_error
        # Whatever a 135M model writes, what is shown is verified: markers are exactly the citations, each within
        # its passage; a composed answer that kept nothing is replaced by the quotes, and `backend` says so.
        assert not answer.refused and answer.citations
        assert set(markers.cited(answer.answer)) == {c.n for c in answer.citations}
        assert answer.backend.startswith(("openai-compatible:", "extractive (fallback from openai-compatible"))
        assert bool(answer.validation.fallback) == answer.backend.startswith("extractive")
    # The server goes away: one clear message, and the question is still answered by quoting.
    proc.terminate()
    proc.wait(timeout=30)
    answer = rag.ask(QUESTION)
    assert answer.backend.startswith("extractive (fallback from openai-compatible") and answer.citations
    assert "cannot connect" in answer.validation.backend_error and "Start the server" in answer.validation.backend_error
