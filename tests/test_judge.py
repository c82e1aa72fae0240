"""The judge stage (rag.judge) with real parts: the SmolLM2 GGUF in process through llama.cpp, sharing the compose
writer's model, over the real essay index. Invariants only (what a 135M model says is not an answer-quality
claim; the Qwen numbers are in the README): the log-odds do not depend on what the shared context held before,
the judge only refuses (never reorders, never answers what the decision refuses), a covered question is never
refused, a failing judge leaves the decision as it was, and the judge waits for a stream on the shared model.
The one fake is a judge that raises or gives fixed extremes: a real model does neither on demand.
"""

from __future__ import annotations

import math
import threading

import pytest

from rag.errors import BackendError
from rag.judge import JUDGE_REFUSAL_NOTE, JUDGE_REFUSE, LlamaCppJudge, make_judge

QUESTION = "Why did Russia avoid a mutual defense clause with Iran?"
SENTENCES = ["Russia has no interest in a mutual defense pact with Iran, which would draw it into a war with Israel.",
             "The North-South Transport Corridor has been delayed for years.",
             "Iran bought Su-35 fighter jets."]


@pytest.fixture(scope="module")
def judged_rag(essay_rag):
    pytest.importorskip("llama_cpp", reason="install the llamacpp extra (CI does)")
    settings = essay_rag.settings.updated(llm={"backend": "llamacpp", "model_path": "smollm2", "max_tokens": 40,
                                               "n_ctx": 2048, "judge_sentences": 3})
    return essay_rag.with_settings(settings)


def test_the_judge_is_chosen_from_the_settings(essay_rag, judged_rag):
    assert isinstance(judged_rag.decider.judge, LlamaCppJudge)
    assert judged_rag.decider.judge.writer is judged_rag.writer   # one loaded model for writing and judging
    off = judged_rag.with_settings(judged_rag.settings.updated(llm={"judge_sentences": 0}))
    assert off.decider.judge is None
    assert essay_rag.decider.judge is None                          # the extractive default has no model to ask
    api = essay_rag.settings.updated(llm={"backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1"})
    assert make_judge(api, None) is None                            # logits of a server cannot be read in process


def test_a_judge_asked_of_a_backend_that_cannot_judge_is_named(essay_rag, caplog):
    api = essay_rag.settings.updated(llm={"backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1",
                                          "judge_sentences": 3})
    with caplog.at_level("WARNING", logger="rag.judge"):
        assert make_judge(api, None) is None
    assert "llm.judge_sentences = 3 has no effect with llm.backend = 'openai-compatible'" in caplog.text
    assert "llm.judge_sentences = 0" in caplog.text                 # the fix is named
    caplog.clear()
    with caplog.at_level("WARNING", logger="rag.judge"):            # no model at all: nothing to say
        assert make_judge(essay_rag.settings.updated(llm={"judge_sentences": 3}), None) is None
    assert not caplog.records


@pytest.mark.slow
def test_log_odds_do_not_depend_on_what_the_shared_context_held_before(judged_rag):
    judge = judged_rag.decider.judge
    first = judge.judge(QUESTION, SENTENCES)
    assert len(first) == len(SENTENCES) and all(math.isfinite(v) for v in first)
    # Read from fresh logits: the answering sentence gets other odds than the unrelated ones (a judge reading a stale
    # or empty logits row gives every sentence the same value).
    assert max(abs(first[0] - v) for v in first[1:]) > 0.01, first
    # In reverse order, after another question, and after the writer used the context: the same values. A judge
    # that reused a cached prefix wrongly (kept the previous sentence's tokens) would read different logits.
    assert judge.judge("What did Russia offer India?", SENTENCES[:1]) != []
    reverse = judge.judge(QUESTION, SENTENCES[::-1])[::-1]
    list(judged_rag.writer.generator.stream_messages([("human", "Say hello.")]))
    again = judge.judge(QUESTION, SENTENCES)
    for a, b, c in zip(first, reverse, again):
        assert a == pytest.approx(b, abs=0.05) and a == pytest.approx(c, abs=0.05)


@pytest.mark.slow
def test_judging_waits_for_a_stream_on_the_shared_model(judged_rag):
    judge = judged_rag.decider.judge
    alone = judge.judge(QUESTION, SENTENCES[:2])
    stream = judged_rag.writer.generator.stream_messages([("human", "Count from one to twenty in words.")])
    first_token = next(stream)                                      # the stream now holds the model
    result: list[float] = []
    worker = threading.Thread(target=lambda: result.extend(judge.judge(QUESTION, SENTENCES[:2])))
    worker.start()
    worker.join(timeout=2)
    assert worker.is_alive(), "the judge must wait while a stream holds the model"
    rest = list(stream)
    worker.join(timeout=120)
    assert not worker.is_alive() and first_token is not None and rest is not None
    assert result == pytest.approx(alone, abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("question", ["Why does Russia not trust Iran?", "What limits the partnership between Moscow "
                                      "and Tehran?", "What is the population of Iran?", "How many Russian-speaking "
                                      "Jews live in Israel?"])
def test_the_judge_only_refuses(essay_rag, judged_rag, question):
    retrieved = judged_rag.retriever.retrieve(question)
    plain = essay_rag.decider.decide(question, retrieved.passages, retrieved.hits)
    judged = judged_rag.decider.decide(question, retrieved.passages, retrieved.hits)
    assert judged.probability == plain.probability                 # the features are the judge's input, not output
    assert [s.sentence.start for s in judged.scored] == [s.sentence.start for s in plain.scored]
    if not plain.answerable or plain.covered:
        assert judged.answerable == plain.answerable and judged.judged == ()   # nothing to judge
        return
    assert len(judged.judged) == min(3, len(plain.scored))
    if judged.answerable:
        assert [s.sentence.start for s in judged.evidence] == [s.sentence.start for s in plain.evidence]
    else:
        assert max(judged.judged) < JUDGE_REFUSE and not judged.evidence and JUDGE_REFUSAL_NOTE in judged.notes


class _Says:
    """A judge with fixed verdicts, or one that fails: faults and extremes a real model gives only by chance."""

    def __init__(self, value: float | None) -> None:
        self.value = value

    def judge(self, question, sentences):
        if self.value is None:
            raise BackendError("llamacpp", "the judge failed (RuntimeError: decode returned -1)",
                               "Set llm.judge_sentences = 0.")
        return [self.value] * len(sentences)


def test_a_failing_judge_leaves_the_decision_as_it_was_and_says_so(essay_rag):
    question = "Why does Russia not trust Iran?"
    retrieved = essay_rag.retriever.retrieve(question)
    plain = essay_rag.decider.decide(question, retrieved.passages, retrieved.hits)
    failing = copy_decider(essay_rag.decider, _Says(None))
    decision = failing.decide(question, retrieved.passages, retrieved.hits)
    assert decision.answerable and decision.judged == ()
    assert [s.sentence.start for s in decision.evidence] == [s.sentence.start for s in plain.evidence]
    assert any("the judge failed" in n and "decided without it" in n for n in decision.notes)


def test_a_question_the_best_sentence_covers_is_never_refused_by_the_judge(essay_rag):
    covered = "Does the long-term agreement between Iran and Russia contain a clause on mutual defense?"
    retrieved = essay_rag.retriever.retrieve(covered)
    plain = essay_rag.decider.decide(covered, retrieved.passages, retrieved.hits)
    assert plain.covered
    decision = copy_decider(essay_rag.decider, _Says(-20.0)).decide(covered, retrieved.passages, retrieved.hits)
    assert decision.answerable and decision.covered and decision.judged == ()   # not even asked
    uncovered = "Why does Russia not trust Iran?"
    assert essay_rag.decide(uncovered).answerable and not essay_rag.decide(uncovered).covered
    refused = copy_decider(essay_rag.decider, _Says(-20.0)).decide(uncovered, *_retrieved(essay_rag, uncovered))
    assert not refused.answerable and not refused.evidence          # the same verdict refuses an uncovered one
    assert JUDGE_REFUSAL_NOTE in refused.notes


def _retrieved(rag, question):
    r = rag.retriever.retrieve(question)
    return r.passages, r.hits


def copy_decider(decider, judge, n: int = 3):
    from rag.decide import Decider

    return Decider(decider.scorer, decider.model, decider.threshold, decider.max_sentences, decider.close_call_margin,
                   calibration=decider.calibration, judge=judge, judge_sentences=n)


def test_a_judged_refusal_shows_the_closest_passages_and_says_why(essay_rag):
    rag = essay_rag.with_settings(essay_rag.settings)                # a RAG of its own over the same index
    rag.decider = copy_decider(rag.decider, _Says(-20.0))
    answer = rag.ask("Why does Russia not trust Iran?")
    assert answer.refused and not answer.citations and answer.passages
    assert JUDGE_REFUSAL_NOTE in answer.notes
    assert not essay_rag.ask("Why does Russia not trust Iran?").refused   # the shared RAG is not touched
