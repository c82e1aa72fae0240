"""The decision stage: typed features, a model that checks the features it names, evidence drawn from the
retrieved passages, a per-index calibration computed once, and the invariants that hold whatever the model
says. Real embedding model and index; answer quality itself is held by the eval quality gate (no test here
asserts a particular probability)."""

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
    assert decision.answerable == (decision.probability >= essay_rag.settings.answer.refusal_threshold
                                   or decision.covered)
    scores = [s.score for s in decision.scored]
    assert scores == sorted(scores, reverse=True)
    if not decision.answerable:
        assert decision.evidence == ()
    for s in decision.evidence:
        assert s in decision.scored
        assert s.passage.start <= s.sentence.start < s.sentence.end <= s.passage.end
    assert len(decision.evidence) <= essay_rag.settings.answer.max_sentences


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


# -- answer types -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("question, kind", [
    ("How many Su-35s did Iran order?", "quantity"), ("How long did the war last?", "quantity"),
    ("What is the population of Iran?", "quantity"), ("In what year was the agreement signed?", "date"),
    ("When did the corridor open?", "date"), ("Which Python version added the match statement?", "version"),
    ("Who wrote the manual?", "name"), ("Which official announced the offer?", "name"),
    ("Why did Russia refuse?", None), ("When are default argument values evaluated?", None),
    ("Can it be switched off again? (Context: How many lines does the buffer hold?)", None),
    ("What is Iran's GDP?", "quantity"), ("What share of exports goes to China?", "quantity"),
    ("And what about its population? (Context: Which Israeli leader does Putin admire?)", None),
    ("What other consideration about that country's population must Russia weigh?", None),
    ("What does the population think of the war?", None), ("On what date was 5.4-rc1 released?", "day"),
    ("Which date is the deadline?", "day"), ("With which version control tool can you check out the code?", None),
    ("What release cycle does Python follow?", None), ("Which release added the match statement?", "version")])
def test_answer_type_comes_from_the_question_itself(question, kind):
    from rag.decide import answer_type

    assert answer_type(question) == kind


@pytest.mark.parametrize("question, sentence, missing", [
    ("How many jets did Russia offer India?", "Russia has offered India 117 Su-35Ms.", False),
    ("How many jets did Russia offer India?", "Russia offered India jets and technology transfer.", True),
    ("How many of the 117 jets were delivered?", "Russia has offered India 117 Su-35Ms.", True),  # asked already
    ("How much does entry cost for a 10-year-old?", "Children under 12 enter free.", False),
    ("In what year did Iran sign the protocol?", "Iran signed a protocol with Moscow in 1989.", False),
    ("In what year did Iran sign the protocol?", "Iran signed a protocol with Moscow.", True),
    ("Which version of GNU ed is this manual for?", "This manual is for GNU ed (version 1.19).", False),
    ("Who created ed?", "'ed' was created by Ken Thompson and Dennis Ritchie.", False),
    ("Who wrote PEP 636?", "You can look into PEP 636 which is written in a tutorial format.", True),
    ("Why did Russia refuse the clause?", "No number and no name here at all.", False),
    # A date or a model's name holds digits but is no count; a span of time may be given by its dates.
    ("How many people attended the first DebConf?", "It took place from the 5th to the 9th of July 2000.", True),
    ("How many developers worked on Debian 10?", "Debian 10.0 (Buster) was released July 6th, 2019.", True),
    ("How many jets did Iran order?", "Iran sought equipment like Su-35 jets and S-400 systems in 2023.", True),
    ("How many packages did Debian 1.2 Rex have?", "Released December 1996, it had 848 packages.", False),
    ("How long did the war last?", "The war lasted from 1980 to 1988.", False),
    # "one" standing for a thing and "free" that is no price are no count.
    ("How many Developers does the Project have?", "It is an association that makes a free operating system.", True),
    ("What salary does the Leader receive?", "Donations go to any one of a set of organisations.", True),
    ("How long does the Leader serve?", "The Leader serves for one year from their election.", False),
    # A population, a GDP or a budget is a figure, not a small count in words.
    ("What is the population of Iran?", "Iran relies on the two powers of Russia and China.", True),
    ("What is the population of Iran?", "Iran has a population of about 90 million.", False),
    ("What is the GDP of the town?", "The town's GDP is two billion euros.", False),
    # "On what date" asks for a day: a year alone does not give one.
    ("On what date was the 5.6 kernel released?", "The 5.2 kernel's history looked like this (all dates in 2019):",
     True),
    ("On what date in 2019 was 5.4-rc1 released?", "September 30\t5.4-rc1, merge window closes", False),
    ("On what date did Stormix declare bankruptcy?", "Stormix declared bankruptcy on January 17th 2001.", False),
    ("What date was the treaty signed?", "It was signed on 17 January 2001.", False),
    ("What date was the release?", "It was released on 2019-09-30.", False)])
def test_type_missing_needs_something_of_the_asked_kind_beyond_the_question(question, sentence, missing):
    from rag.decide import type_missing

    assert type_missing(question, sentence) == float(missing)


# -- invariants ---------------------------------------------------------------------------------------------------

def test_a_question_whose_words_are_all_in_the_best_sentence_is_never_refused(essay_rag, essay_text):
    """Even a model that refuses everything answers it (with the low-confidence note): the invariant is the
    decider's, not the fitted model's. Questions are worded from the essay's own sentences, so the condition
    holds for many of them; for every one where it holds, the answer is not a refusal."""
    from rag import RAG
    from rag.decide import LOW_CONFIDENCE, covers_question
    from rag.sentences import split_sentences

    refuse_all = RAG(essay_rag.settings, essay_rag.index, essay_rag.embedder,
                     decision_model=DecisionModel((), (), -20.0, (), ()))
    sentences = [s.text for s in split_sentences(essay_text) if 60 <= len(s.text) <= 200][::12][:8]
    held = 0
    for sentence in sentences:
        question = f"{sentence.rstrip('.')}?"
        decision = refuse_all.decide(question)
        if decision.scored and covers_question(question, decision.scored[0].sentence.text):
            held += 1
            assert decision.covered and decision.answerable and decision.evidence
            answer = refuse_all.ask(question)
            assert not answer.refused and LOW_CONFIDENCE in answer.notes
        else:
            assert not decision.answerable
    assert held >= 3


def test_a_refusal_shows_the_closest_passages(essay_rag):
    question = "Which football club has won the most European Cup titles?"
    answer = essay_rag.ask(question)
    assert answer.refused
    assert answer.passages and answer.to_dict()["passages"]
    retrieved = essay_rag.retrieve(question, k=1)[0]
    assert (answer.passages[0].source, answer.passages[0].start) <= (retrieved.source, retrieved.end)
    assert answer.confidence is not None and answer.confidence < essay_rag.settings.answer.refusal_threshold


def test_an_off_topic_question_sits_far_below_an_on_topic_one_on_the_index_scale(essay_rag):
    off = essay_rag.decide("Which football club has won the most European Cup titles?").features
    on = essay_rag.decide("Why did Russia refuse to include a mutual defense clause with Iran?").features
    assert off.dense_lift < 0.5 < on.dense_lift
    assert off.dense_z < on.dense_z


def test_a_feature_that_was_not_computed_is_an_error_not_a_silent_zero():
    model = DecisionModel(("dense_lift",), (1.0,), 0.0, (0.0,), (1.0,))
    features = DecisionFeatures(**dict.fromkeys(DecisionFeatures.names(), 0.0) | {"dense_lift": float("nan")})
    with pytest.raises(RagError, match="dense_lift"):
        model.probability(features)


def test_a_decider_without_a_calibration_reads_the_default_scale(essay_rag):
    from rag.calibration import DEFAULT_CALIBRATION
    from rag.decide import Decider

    decider = Decider(essay_rag.decider.scorer, DecisionModel.load(), 0.3, 3)
    retrieved = essay_rag.retriever.retrieve("Why did Russia avoid a mutual defense clause with Iran?")
    decision = decider.decide("Why did Russia avoid a mutual defense clause with Iran?", retrieved.passages,
                              retrieved.hits)
    assert decision.features.dense_lift == pytest.approx(DEFAULT_CALIBRATION.lift(decision.features.dense_top))


# -- calibration --------------------------------------------------------------------------------------------------

def test_the_pipeline_calibrates_its_index_once_and_reuses_it(essay_rag):
    calibration = essay_rag.decider.calibration
    assert calibration is not None, "rag.pipeline must pass Decider(..., calibration=IndexCalibration(index))"
    for question in ("Why did Russia avoid a mutual defense clause with Iran?", "What is the GDP of Iran?",
                     "Which football club has won the most European Cup titles?"):
        essay_rag.decide(question)
    assert calibration.computed + calibration.loaded == 1  # loaded: another RAG over this index measured it first
    assert calibration() is calibration()


def _two_notes(folder):
    """Two short notes on unrelated topics: an index of the first, then of both, are two generations."""
    first, second = folder / "a.txt", folder / "b.txt"
    first.write_text("Lighthouse keepers\n\nThe keeper climbed the tower every evening to light the lamp. "
                     "Ships passing the rocks at night relied on the beam. The lamp burned whale oil until 1870, "
                     "when kerosene replaced it.\n", encoding="utf-8")
    second.write_text("Bread\n\nSourdough rises because wild yeast and bacteria ferment the dough over many hours. "
                      "Bakers keep a starter alive by feeding it flour and water.\n", encoding="utf-8")
    return first, second


def test_calibration_is_computed_once_per_index_generation_even_under_concurrency(tmp_path, embedder):
    """Eight threads ask at once: one computation. `RAG.with_settings` over the same index shares the calibrator
    (so it computes nothing again); a new generation is calibrated again."""
    from concurrent.futures import ThreadPoolExecutor

    from index import IndexConfig
    from rag import RAG, Settings
    from rag.calibration import IndexCalibration

    first, second = _two_notes(tmp_path)
    settings = Settings(index=IndexConfig(dir=tmp_path / "index"))
    rag = RAG.from_settings(settings, embedder=embedder, build_if_missing=False)
    rag.index.update([first], progress=False)
    calibrator = IndexCalibration(rag.index)
    with ThreadPoolExecutor(8) as pool:
        values = list(pool.map(lambda _: calibrator(), range(8)))
    assert calibrator.computed == 1 and all(v is values[0] for v in values)
    assert values[0].probes >= 40 and values[0].null_mean < values[0].own_mean

    shared = RAG(settings, rag.index, embedder, calibration=calibrator)
    derived = shared.with_settings(settings.updated(retrieval={"k": 3}))
    assert derived.calibration is calibrator and derived.calibration() is values[0] and calibrator.computed == 1

    rag.index.update([second], progress=False)
    assert calibrator() is not values[0] and calibrator.computed == 2
    calibrator()
    assert calibrator.computed == 2


def test_a_new_process_reads_the_calibration_kept_beside_the_index_and_never_trusts_a_stale_or_damaged_one(
        tmp_path, embedder):
    """A second calibrator over an unchanged index (as a new `rag ask` process makes) reads the value the first
    one measured; one over a changed index, or over a damaged cache file, measures again and rewrites the file."""
    import json
    from dataclasses import asdict

    from index import IndexConfig
    from rag import RAG, Settings
    from rag.calibration import CACHE_FILE, IndexCalibration

    doc, more = _two_notes(tmp_path)
    rag = RAG.from_settings(Settings(index=IndexConfig(dir=tmp_path / "index")), embedder=embedder,
                            build_if_missing=False)
    rag.index.update([doc], progress=False)
    first = IndexCalibration(rag.index)
    measured = first()
    cache = tmp_path / "index" / CACHE_FILE
    assert first.computed == 1 and cache.is_file()

    second = IndexCalibration(rag.index)
    assert asdict(second()) == asdict(measured) and (second.computed, second.loaded) == (0, 1)

    rag.index.update([more], progress=False)  # a new generation: the kept value no longer applies
    third = IndexCalibration(rag.index)
    changed = third()
    assert (third.computed, third.loaded) == (1, 0) and asdict(changed) != asdict(measured)
    assert json.loads(cache.read_text(encoding="utf-8"))["value"] == asdict(changed)

    def scale(value: dict) -> dict:  # what was measured, without how long measuring took
        return {k: v for k, v in value.items() if k != "seconds"}

    for damage in ("{not json", json.dumps({"key": "something else", "value": {}}), ""):
        cache.write_text(damage, encoding="utf-8")
        fresh = IndexCalibration(rag.index)
        assert scale(asdict(fresh())) == scale(asdict(changed)) and (fresh.computed, fresh.loaded) == (1, 0)
        assert scale(json.loads(cache.read_text(encoding="utf-8"))["value"]) == scale(asdict(changed))


def test_the_probe_bank_is_varied_and_no_evaluation_question():
    from eval.dataset import eval_sets
    from rag.calibration import load_probes

    probes = load_probes()
    assert len(probes) >= 40 and len(set(probes)) == len(probes)
    asked = {q.question.strip().lower() for s in eval_sets().values() for q in s.questions("all")}
    assert not [p for p in probes if p.strip().lower() in asked]
    assert len({p.split()[0].lower() for p in probes}) >= 5  # how, what, which, who, when, why...


# -- evidence selection (pure: synthetic sentences, no model) ----------------------------------------------------

def _scored(passages: list[str], scores: dict[str, float]):
    """ScoredSentences for the sentences of `passages` (one document, passages numbered from 1), best first. Each
    sentence gets its own orthogonal vector, so none is redundant with another."""
    import numpy as np

    from rag.evidence import ScoredSentence
    from rag.sentences import split_sentences
    from rag.types import Passage

    doc, out, offset = "", [], 0
    for n, text in enumerate(passages, 1):
        p = Passage(source="doc", title="", section="", start=offset, end=offset + len(text), text=text, n=n,
                    score=1.0)
        for s in split_sentences(text, offset, "doc"):
            v = np.zeros(64, dtype=np.float32)
            v[len(out)] = 1.0
            out.append(ScoredSentence(s, p, scores.get(s.text, 0.0), 0.0, scores.get(s.text, 0.0), v))
        doc += text + "\n"
        offset += len(text) + 1
    return sorted(out, key=lambda s: -s.score)


def _weights():
    from rag.text import TermWeights

    return TermWeights(["Lamps burned oil.", "Keepers climbed towers.", "Ships passed rocks.", "Bread rises."])


LIGHTHOUSE = ["The lamp burned whale oil until 1870. This changed when kerosene became cheap. Keepers lived in "
              "the tower.", "Ships passing the rocks relied on the beam. Storms often broke the glass."]


def test_the_lead_is_the_best_sentence_and_the_one_leaning_on_it_follows():
    from rag.decide import select_evidence

    scored = _scored(LIGHTHOUSE, {"The lamp burned whale oil until 1870.": 0.9,
                                  "This changed when kerosene became cheap.": 0.5,
                                  "Keepers lived in the tower.": 0.4,
                                  "Ships passing the rocks relied on the beam.": 0.3})
    chosen = select_evidence("What did the lamp burn until 1870?", scored, _weights(), 4)
    assert chosen[0] is scored[0]
    assert [c.sentence.text for c in chosen] == ["The lamp burned whale oil until 1870.",
                                                 "This changed when kerosene became cheap."]


def test_a_lead_that_opens_with_a_pronoun_is_quoted_right_after_its_antecedent():
    """Item 5 of issue 9: no unrelated sentence leads. A lead whose subject is a pronoun ("This changed when…")
    does not say what it is about, so the sentence it points back to comes right before it, in text order; the
    year the question asks for is there. A lead that names its subject opens the answer."""
    from rag.decide import select_evidence

    scored = _scored(LIGHTHOUSE, {"This changed when kerosene became cheap.": 0.9,
                                  "The lamp burned whale oil until 1870.": 0.3})
    chosen = select_evidence("When did kerosene replace whale oil?", scored, _weights(), 4)
    assert [c.sentence.text for c in chosen[:2]] == ["The lamp burned whale oil until 1870.",
                                                     "This changed when kerosene became cheap."]
    assert select_evidence("When did kerosene replace whale oil?", scored, _weights(), 1)[0] is scored[0]
    named = _scored(LIGHTHOUSE, {"The lamp burned whale oil until 1870.": 0.9,
                                 "This changed when kerosene became cheap.": 0.3})
    assert select_evidence("Which oil did the lamp burn?", named, _weights(), 4)[0].sentence.text == \
        "The lamp burned whale oil until 1870."


def test_the_answer_type_is_read_with_a_pronoun_leads_antecedent():
    """The lead "This changed when kerosene became cheap." holds no year; the sentence it is quoted after does, so a
    "when" question is not refused for a missing date. A lead that names its subject is read alone."""
    from rag.decide import features_of

    scored = _scored(LIGHTHOUSE, {"This changed when kerosene became cheap.": 0.9,
                                  "The lamp burned whale oil until 1870.": 0.3})
    assert features_of("When did kerosene replace whale oil?", [], [], scored, _weights()).type_missing == 0.0
    alone = _scored(LIGHTHOUSE, {"Keepers lived in the tower.": 0.9, "The lamp burned whale oil until 1870.": 0.3})
    assert features_of("When did keepers live in the tower?", [], [], alone, _weights()).type_missing == 1.0


def test_a_sentence_from_another_passage_joins_only_when_close_and_covering_new_question_words():
    from rag.decide import OTHER_PASSAGE_MARGIN, select_evidence

    lead, other = "Keepers lived in the tower.", "Ships passing the rocks relied on the beam."
    question = "Where did keepers live near ships passing the rocks?"
    far = _scored(LIGHTHOUSE, {lead: 0.9, other: 0.9 - OTHER_PASSAGE_MARGIN - 0.05})
    assert [c.sentence.text for c in select_evidence(question, far, _weights(), 4)] == [lead]
    close = _scored(LIGHTHOUSE, {lead: 0.9, other: 0.9 - OTHER_PASSAGE_MARGIN / 2})
    assert [c.sentence.text for c in select_evidence(question, close, _weights(), 4)] == [lead, other]
    # A sentence as close that covers none of the question's words still left uncovered stays out.
    unrelated = _scored(LIGHTHOUSE, {lead: 0.9, "Storms often broke the glass.": 0.9 - OTHER_PASSAGE_MARGIN / 2})
    assert [c.sentence.text for c in select_evidence(question, unrelated, _weights(), 4)] == [lead]


def test_a_two_part_question_may_take_one_sentence_for_its_second_part():
    from rag.decide import SECOND_PART_MARGIN, asks_two_things, select_evidence

    assert asks_two_things("How do the q and Q commands differ?")
    assert asks_two_things("What became of his government, and why could Moscow not save it?")
    assert not asks_two_things("Why did Russia and Iran sign the agreement?")
    scores = {"The lamp burned whale oil until 1870.": 0.9,
              "Ships passing the rocks relied on the beam.": 0.9 - SECOND_PART_MARGIN / 2,
              "Storms often broke the glass.": 0.9 - SECOND_PART_MARGIN / 2 - 0.01}
    chosen = select_evidence("What did the lamp burn, and how did storms matter?", _scored(LIGHTHOUSE, scores),
                             _weights(), 4)
    assert [c.passage.n for c in chosen] == [1, 1, 2]  # lead, the sentence leaning on it, one for the second part
    one_part = select_evidence("What did the lamp burn until 1870?", _scored(LIGHTHOUSE, scores), _weights(), 4)
    assert [c.passage.n for c in one_part] == [1, 1]


def test_evidence_on_the_bundled_questions_keeps_its_shape(essay_rag):
    """Whatever the question: the lead is the best-scoring usable sentence (right after the sentence it points
    back to when its subject is a pronoun), the rest follow in text order, every sentence lies inside the passage
    it will cite, and a sentence from a passage other than the lead's is close to the lead's score."""
    from eval import load_questions
    from rag.decide import SECOND_PART_MARGIN
    from rag.sentences import opens_with_pronoun

    answered = 0
    for q in load_questions(split="dev")[::2]:
        decision = essay_rag.decide(q.question, q.history)
        if not decision.evidence:
            continue
        answered += 1
        usable = [s for s in decision.scored if s not in decision.planted]
        lead, rest = decision.evidence[0], decision.evidence[1:]
        if lead is not usable[0]:
            antecedent, (lead, *rest) = lead, rest
            assert lead is usable[0] and opens_with_pronoun(lead.sentence.text)
            assert 0 <= lead.sentence.start - antecedent.sentence.end <= 2
        assert [(s.sentence.source, s.sentence.start) for s in rest] == \
            sorted((s.sentence.source, s.sentence.start) for s in rest)
        assert len(decision.evidence) <= essay_rag.settings.answer.max_sentences
        for s in decision.evidence:
            assert s.passage.start <= s.sentence.start < s.sentence.end <= s.passage.end
            assert s.passage.text[s.sentence.start - s.passage.start:s.sentence.end - s.passage.start] == \
                s.sentence.text
            if s.passage.n != lead.passage.n:
                assert lead.score - s.score <= SECOND_PART_MARGIN + 1e-9
    assert answered >= 10


def test_a_sentence_opening_with_a_pronoun_is_read_with_the_sentence_before_it(embedder):
    """The real embedding model: "It is the refinement of…" alone says nothing about what "it" is, so a question
    about the editor's predecessor used to be answered by another sentence about the editor (ed-manual fact-21)."""
    from rag.evidence import EvidenceScorer
    from rag.text import TermWeights
    from rag.types import Passage

    text = ("The tool was written by Ada Marsh and Bruno Keel. It is the refinement of its larger, scriptable "
            "predecessor, QTOOL. The tool is the standard editor of the suite, and it is widely available. "
            "Editing with the tool requires forethought.")
    passage = Passage(source="doc", title="", section="", start=0, end=len(text), text=text, n=1, score=1.0)
    weights = TermWeights([text, "Ships passed rocks.", "Bread rises."])
    question = "Which larger program was the tool a refinement of?"
    with_context = EvidenceScorer(embedder, lambda: weights).score(question, [passage])
    alone = EvidenceScorer(embedder, lambda: weights, read_back=False).score(question, [passage])
    target = "It is the refinement of its larger, scriptable predecessor, QTOOL."
    cos = {s.sentence.text: s.cosine for s in with_context}
    cos_alone = {s.sentence.text: s.cosine for s in alone}
    assert cos[target] > cos_alone[target]
    assert all(cos[t] == pytest.approx(cos_alone[t]) for t in cos if t != target)  # only pronoun openings change
    assert with_context[0].sentence.text == target


@pytest.mark.parametrize("text, title", [
    ("Constitution for the Debian Project (v1.9)", True),
    ("break and continue Statements, and else Clauses on Loops", True),
    ("Version 1.9 ratified on March 26th, 2022.", False),
    ("It returns a list of the lines (see below)", False),
    ("the value is returned to the caller (see below)", False),
    # A contents entry, and a numbered heading with one long word; notes' days and months are no title.
    ("4.13.17 December 2015: Ian Murdock died . . . . . . . . 17", True),
    ("1.1 In the Beginning . . . . . . . . . . . . . . . . . . 1", True),
    ("4.2 The 1.x Releases", True),
    ("Open Tuesday to Sunday, 9:00 to 17:00", False),
    ("Closed on Mondays and on 25 December", False),
])
def test_a_title_is_never_evidence_even_with_a_closing_parenthesis(text, title):
    """A title names a topic and never states an answer; the constitution's title led the answer to "When was
    version 1.9 ratified?" and the date on the next line was not quoted."""
    from rag.evidence import looks_like_title

    assert looks_like_title(text) is title


def test_notes_without_full_stops_are_evidence_and_their_headings_are_not(tmp_path, embedder, museum_notes):
    """Notes written a line per item look like headings line by line (short, no final stop). Only the line that
    heads the passage's section stays out of the evidence, so the item that answers leads the answer."""
    from index import IndexConfig
    from rag import RAG, Settings

    notes = tmp_path / "museum-notes.txt"
    notes.write_text(museum_notes, encoding="utf-8")
    rag = RAG.from_settings(Settings(index=IndexConfig(dir=tmp_path / "index")), embedder=embedder,
                            build_if_missing=False)
    rag.index.update([notes], progress=False)
    items = {line for line in museum_notes.splitlines()[3:] if line and line != "Tickets"}
    for question, lead in [("How much does entry cost for a 10-year-old?", "Children under 12 enter free"),
                           ("How much do students pay?", "Students and seniors pay 8 euros with a valid card")]:
        decision = rag.decide(question)
        assert decision.answerable and decision.evidence[0].sentence.text == lead
        quoted = {s.sentence.text for s in decision.scored}
        assert quoted <= items and not quoted & {"Tickets", "Opening hours", "City Museum visit notes"}
    overview = rag.ask("What are these notes about?")    # a whole-document question: the notes' first items
    assert not overview.refused and overview.answer.startswith("Open Tuesday to Sunday, 9:00 to 17:00")



@pytest.mark.parametrize("question, terms", [
    ("How long is the voting period for a General Resolution?", ["vote", "period", "general", "resolut"]),
    ("How often does the committee meet?", ["committe", "meet"]),
    ("Which long options does ed accept?", ["long", "option", "ed", "accept"])])
def test_the_form_of_a_how_question_is_not_its_topic(question, terms):
    """"long" in "how long" is in no sentence that says "2 weeks": counted, it made a third of the question's
    words unknown to a constitution that never says "long"."""
    from rag.text import content_terms

    assert content_terms(question) == terms


def test_a_version_number_is_one_word():
    """Split at its dot, "Debian 2.1" matched every sentence naming "1.2" or "2.0", and a "5.4-rc1" question any
    "5" (debian-history dev citation precision 0.647 -> 0.667 with versions kept whole; no other dev answer moved).
    A sentence's closing full stop still ends its last number."""
    from rag.text import TermWeights, content_terms, term_set

    question = content_terms("Which architectures did Debian 2.1 add?")
    assert "2.1" in question and not {"1", "2"} & set(question)
    assert "5.4-rc1" in content_terms("On what date in 2019 was 5.4-rc1 released?")
    assert {"0.93r6", "2019"} <= term_set("Debian 0.93R6 was released in 2019.")
    older, asked = "Debian 1.2 Rex shipped 848 packages.", "Debian 2.1 Slink added Alpha and Sparc."
    weights = TermWeights([older, asked])
    assert weights.coverage(question, term_set(older)) == weights.coverage(question, {"debian"})
    assert weights.coverage(question, term_set(asked)) > weights.coverage(question, term_set(older))


# -- questions about the whole document ---------------------------------------------------------------------------

@pytest.mark.parametrize("question, overview", [
    ("What is this essay about?", True), ("Summarize the document.", True), ("tl;dr?", True),
    ("What is the main argument of the essay?", True), ("What did the author write about the essay's thesis?", True),
    ("What does the author conclude?", True), ("Give me a short summary of the text", True),
    ("What is the main argument about Russia's role in Syria?", False), ("What is the thesis of Zarif's interview?", False),
    ("Why did Russia avoid a mutual defense clause with Iran?", False), ("What does the -s option do?", False),
    ("Summarize what the essay says about Syria.", False)])
def test_a_question_about_the_whole_document_is_told_from_one_about_a_topic(question, overview):
    from rag.overview import asks_for_overview

    assert asks_for_overview(question) is overview


def test_a_question_about_the_whole_document_is_answered_from_its_opening_and_conclusion(essay_rag, essay_text):
    """No passage is similar to "What is this essay about?": it was refused. Now the answer quotes the opening's
    first sentence and the conclusion's, each citation an exact span of the essay, with a note saying so."""
    from rag.overview import OVERVIEW_NOTE

    for question in ("What is this essay about?", "Summarize the document."):
        answer = essay_rag.ask(question)
        assert not answer.refused and OVERVIEW_NOTE in answer.notes
        assert len(answer.citations) == 2               # the opening, and the last paragraph ("Overall, …")
        quoted = sorted(h for c in answer.citations for h in c.highlights)
        assert quoted[0][0] == 0 and any(essay_text[a:b].startswith("Overall") for a, b in quoted)
        for c in answer.citations:
            assert essay_text[c.start:c.end] == c.text


def test_a_rule_of_dashes_or_digits_is_never_evidence():
    from rag.evidence import quotable
    from rag.sentences import Sentence
    from rag.types import Passage

    passage = Passage(n=1, source="d", title="t", section="", start=0, end=100, text="x" * 100, score=1.0)
    assert not quotable(Sentence("d", 0, 30, "-" * 30), passage)
    assert not quotable(Sentence("d", 0, 24, "12 34 56 78 90 12 34 56"), passage)
    assert quotable(Sentence("d", 0, 36, "Open Tuesday to Sunday, 9:00 to 17:00"), passage)


def _with_coverage(scored, coverage: dict[str, float]):
    from dataclasses import replace

    return [replace(s, coverage=coverage.get(s.sentence.text, 0.0)) for s in scored]


NEXT_TREE = ["The next tree collects patches for testing before each merge window. It was first assembled in 2008. "
             "The next tree is maintained by Stephen Rothwell."]
COLLECTS, ROTHWELL = NEXT_TREE[0].split(". ")[0] + ".", "The next tree is maintained by Stephen Rothwell."


@pytest.mark.parametrize("question, rothwell_score, rothwell_coverage, leads", [
    ("Who maintains the next tree?", 0.8, 1.0, ROTHWELL),        # close, names someone, covers more: it leads
    ("Who maintains the next tree?", 0.6, 1.0, COLLECTS),        # beyond the margin: the score's order stands
    ("Who maintains the next tree?", 0.8, 0.55, COLLECTS),       # covers hardly more of the question
    ("How many patches does the next tree collect?", 0.8, 1.0, COLLECTS),  # not a name question
])
def test_a_close_sentence_naming_the_asked_for_person_leads_only_when_it_covers_more(
        question, rothwell_score, rothwell_coverage, leads):
    """`typed_lead`: a "who" question whose best sentence names no one is led by a sentence just below it that
    names someone and covers more of the question; numbers and dates are too common to move the lead for."""
    from rag.decide import type_missing, typed_lead

    scored = _with_coverage(_scored(NEXT_TREE, {COLLECTS: 0.9, ROTHWELL: rothwell_score,
                                                "It was first assembled in 2008.": 0.85}),
                            {COLLECTS: 0.5, ROTHWELL: rothwell_coverage, "It was first assembled in 2008.": 0.9})
    lead = typed_lead(question, scored)
    assert lead[0].sentence.text == leads
    assert sorted(s.sentence.text for s in lead) == sorted(s.sentence.text for s in scored)
    if leads == ROTHWELL:
        assert type_missing(question, lead[0].sentence.text) == 0.0


def test_a_lead_that_already_names_someone_is_kept():
    from rag.decide import typed_lead

    scored = _with_coverage(_scored(NEXT_TREE, {ROTHWELL: 0.9, COLLECTS: 0.85}), {ROTHWELL: 0.5, COLLECTS: 1.0})
    assert typed_lead("Who maintains the next tree?", scored)[0].sentence.text == ROTHWELL


# -- a sentence that introduces a block -------------------------------------------------------------------------

RELEASES = ("Releases go out every nine weeks. Here is how the 5.4 cycle went (all dates in\n2019):\n\n"
            "\t========  ==================\n\tSeptember 15\t5.3 stable release\n\tSeptember 30\t5.4-rc1, merge window "
            "closes\n\tNovember 24\t5.4 stable release\n\t========  ==================\n\n"
            "How do the developers decide when to close the cycle? They watch the regressions.")


def test_a_sentence_ending_with_a_colon_carries_the_block_it_introduces_and_no_more():
    from rag.evidence import introduced_block
    from rag.sentences import split_sentences
    from rag.types import Passage

    p = Passage(source="doc", title="", section="", start=100, end=100 + len(RELEASES), text=RELEASES, n=1,
                score=1.0)
    units = split_sentences(p.text, p.start, p.source)
    intro = next(u for u in units if u.text.endswith(":"))
    block = introduced_block(intro, p)
    assert [" ".join(u.text.split()) for u in block] == [
        "September 15 5.3 stable release", "September 30 5.4-rc1, merge window closes",
        "November 24 5.4 stable release"]                      # no rules of "=", nothing after the blank line
    for u in block:
        assert RELEASES[u.start - p.start:u.end - p.start] == u.text     # exact spans
    assert introduced_block(units[0], p) == ()                 # no colon, no block
    last = Passage(source="doc", title="", section="", start=100, end=100 + intro.end - 100,
                   text=RELEASES[:intro.end - 100], n=1, score=1.0)
    assert introduced_block(intro, last) == ()                 # the passage ends with it


def test_a_long_block_is_cut_at_a_whole_unit():
    from rag.evidence import BLOCK_MAX_CHARS, introduced_block
    from rag.sentences import split_sentences
    from rag.types import Passage

    text = "The options are:\n" + "\n".join(f"- option {i} does something rather useful here" for i in range(40))
    p = Passage(source="doc", title="", section="", start=0, end=len(text), text=text, n=1, score=1.0)
    intro = split_sentences(text, 0, "doc")[0]
    block = introduced_block(intro, p)
    assert block and sum(len(u.text) for u in block) <= BLOCK_MAX_CHARS
    assert all(u.text.endswith("here") for u in block)


def test_the_extractive_answer_quotes_an_introduced_block_under_its_sentences_citation():
    from rag.decide import with_blocks
    from rag.writers import evidence_claim

    scored = _scored([RELEASES], {"Here is how the 5.4 cycle went (all dates in\n2019):": 0.9,
                                  "September 30\t5.4-rc1, merge window closes": 0.5})
    lead = scored[0]
    row = next(s for s in scored if s.sentence.text.startswith("September 30"))
    evidence = with_blocks([lead, row], lead)
    assert len(evidence) == 1                                   # the row is quoted once, in the block
    claim = evidence_claim(evidence[0])
    assert claim.cites == (1,) and len(claim.support) == 4
    assert claim.text.splitlines()[0] == "Here is how the 5.4 cycle went (all dates in 2019):"
    assert "September 30 5.4-rc1, merge window closes" in claim.text.splitlines()


def test_a_sentence_ending_with_a_colon_never_joins_an_answer_it_does_not_lead():
    """"The later keepers were these:" states nothing by itself; close to the lead in the same passage, it would
    otherwise join (SAME_PASSAGE_MARGIN) and take an answer's place, as a list's intro did over the Debian history."""
    from rag.decide import select_evidence

    keepers = ["Anna Brandt kept the lamp from 1873 until 1890. The later keepers were these:\n- Ilsa Roth\n- Per Lund"]
    scored = _scored(keepers, {"Anna Brandt kept the lamp from 1873 until 1890.": 0.9,
                               "The later keepers were these:": 0.85})
    chosen = [s.sentence.text for s in select_evidence("Who kept the lamp from 1873?", scored, _weights(), 4)]
    assert chosen[0] == "Anna Brandt kept the lamp from 1873 until 1890."
    assert "The later keepers were these:" not in chosen


def test_a_sentence_under_a_question_heading_is_read_with_it(embedder):
    """The real embedding model: in a FAQ the heading asks the question and the text under it answers without
    repeating it ("It’s available as the python-announce mailing list."), so the sentence is also read under its
    heading. A heading that asks nothing changes no score."""
    from rag.evidence import EvidenceScorer
    from rag.text import TermWeights
    from rag.types import Passage

    faq = "It is available as the lighthouse-notes mailing list, which carries about five postings a month."
    other = "The keepers kept a newsletter about the station and posted notices at the harbour."
    plain = "Storms often broke the lamp's glass, and the keepers replaced it within a day."
    asks = "General › Is the newsletter also sent by email?"
    passages = [Passage(source="doc", title="Lighthouse FAQ", section=asks, start=0, end=len(faq), text=faq, n=1,
                        score=1.0),
                Passage(source="doc", title="Lighthouse FAQ", section="General › The station",
                        start=200, end=200 + len(other), text=other, n=2, score=1.0),
                Passage(source="doc", title="Lighthouse FAQ", section="General › Repairs",
                        start=400, end=400 + len(plain), text=plain, n=3, score=1.0)]
    weights = TermWeights([faq, other, plain, "Bread rises."])
    question = "Can I receive the station newsletter by email?"
    read = EvidenceScorer(embedder, lambda: weights).score(question, passages)
    alone = EvidenceScorer(embedder, lambda: weights, read_heading=False).score(question, passages)
    cos = {s.sentence.text: s.cosine for s in read}
    cos_alone = {s.sentence.text: s.cosine for s in alone}
    assert cos[faq] > cos_alone[faq]
    assert cos[other] == cos_alone[other] and cos[plain] == cos_alone[plain]   # their headings ask nothing
    assert read[0].sentence.text == faq
    assert alone[0].sentence.text != faq


def test_a_replaced_document_never_reads_its_old_sentences_vectors(embedder):
    """The scorer's vector cache lives as long as the process: a file edited and indexed again under the same
    path (`rag index` reports it updated) while the chat keeps running must be scored on its new text, even where
    a new sentence has an old one's offsets (the cache was keyed by source and offsets)."""
    from rag.evidence import EvidenceScorer
    from rag.text import TermWeights
    from rag.types import Passage

    old = "The ferry leaves the harbour at nine, every morning."
    new = "The lighthouse was rebuilt in stone after the storm."
    assert len(old) == len(new)     # same source, same offsets: only the text tells them apart
    weights = TermWeights([old, new, "Bread rises."])
    question = "When was the lighthouse rebuilt?"
    shared = EvidenceScorer(embedder, lambda: weights)
    before = shared.score(question, [Passage(source="notes.txt", title="", section="", start=0, end=len(old),
                                             text=old, n=1, score=1.0)])
    assert before[0].sentence.end == len(new)
    passage = Passage(source="notes.txt", title="", section="", start=0, end=len(new), text=new, n=1, score=1.0)
    after = shared.score(question, [passage])
    fresh = EvidenceScorer(embedder, lambda: weights).score(question, [passage])
    assert after[0].cosine == pytest.approx(fresh[0].cosine)
    assert after[0].cosine != pytest.approx(before[0].cosine)
