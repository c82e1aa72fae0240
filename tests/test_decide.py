"""The decision stage: typed features, a model that checks the features it names, evidence drawn from the
retrieved passages. Real embedding model and index; answer quality itself is held by the eval quality gate."""

from __future__ import annotations

import json

import pytest

from rag import DecisionFeatures, DecisionModel, RagError


def test_the_shipped_model_loads_and_names_only_known_features():
    model = DecisionModel.load()
    assert model.features and set(model.features) <= set(DecisionFeatures.names())


def test_a_model_naming_a_missing_feature_fails_loudly(tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps({"features": ["dense_top", "no_such_signal"], "coef": [1.0, 1.0], "intercept": 0.0,
                                "mean": [0.0, 0.0], "scale": [1.0, 1.0]}), encoding="utf-8")
    with pytest.raises(RagError, match="no_such_signal"):
        DecisionModel.load(path)


@pytest.mark.parametrize("content", ["{not json", json.dumps({"features": ["dense_top"], "coef": [1.0, 2.0],
                                                              "intercept": 0, "mean": [0], "scale": [1]})])
def test_a_damaged_model_file_gets_a_message_not_a_traceback(tmp_path, content):
    path = tmp_path / "model.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(RagError, match="calibrate"):
        DecisionModel.load(path)


def test_probability_rises_with_a_positively_weighted_feature():
    model = DecisionModel(("best_cosine",), (2.0,), 0.0, (0.5,), (0.1,))
    low = DecisionFeatures(**{**dict.fromkeys(DecisionFeatures.names(), 0.0), "best_cosine": 0.3})
    high = DecisionFeatures(**{**dict.fromkeys(DecisionFeatures.names(), 0.0), "best_cosine": 0.7})
    assert 0.0 < model.probability(low) < 0.5 < model.probability(high) < 1.0


@pytest.mark.parametrize("question", ["Why did Russia avoid a mutual defense clause with Iran?",
                                      "What is the population of Iran?"])
def test_decision_evidence_comes_from_the_scored_sentences_of_the_passages(essay_rag, question):
    decision = essay_rag.decide(question)
    assert isinstance(decision.features, DecisionFeatures)
    assert 0.0 <= decision.probability <= 1.0
    assert decision.answerable == (decision.probability >= essay_rag.settings.answer.refusal_threshold)
    scores = [s.score for s in decision.scored]
    assert scores == sorted(scores, reverse=True)
    if not decision.answerable:
        assert decision.evidence == ()
    for s in decision.evidence:
        assert s in decision.scored
        assert s.passage.start <= s.sentence.start < s.sentence.end <= s.passage.end
    assert len(decision.evidence) <= essay_rag.settings.answer.max_sentences + 2  # + a pronoun's antecedent pair


def test_the_decision_is_the_same_for_every_writer(essay_rag):
    """The gate is one stage: an LLM-configured pipeline reaches the same verdict (nothing is computed inside
    a writer)."""
    llm = essay_rag.with_settings(essay_rag.settings.updated(llm={"backend": "openai-compatible",
                                                                   "base_url": "http://127.0.0.1:9/v1"}))
    question = "How many Russian-speaking Jews live in Israel?"
    a, b = essay_rag.decide(question), llm.decide(question)
    assert a.features == b.features and a.answerable == b.answerable


def test_a_close_call_is_answered_with_a_low_confidence_note(essay_rag):
    """Constant decision models put the probability just above the threshold, then far above it."""
    import math

    from rag import RAG
    from rag.decide import LOW_CONFIDENCE

    threshold = essay_rag.settings.answer.refusal_threshold
    margin = essay_rag.settings.answer.close_call_margin
    question = "How many Russian-speaking Jews live in Israel?"
    for p, noted in [(threshold + margin / 2, True), (min(threshold + margin + 0.1, 0.99), False)]:
        model = DecisionModel((), (), math.log(p / (1 - p)), (), ())
        answer = RAG(essay_rag.settings, essay_rag.index, essay_rag.embedder, decision_model=model).ask(question)
        assert not answer.refused and abs(answer.confidence - p) < 1e-3
        assert (LOW_CONFIDENCE in answer.notes) == noted
        assert answer.to_dict()["confidence"] == answer.confidence
