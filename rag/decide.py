"""The decision stage: is the question answerable from the retrieved passages, and by which sentences?

Input: the standalone question, the retrieval result (chunk hits and the numbered passages). Output: a
`Decision` — the answerable probability from a small model over typed features, the verdict against
`answer.refusal_threshold`, every scored sentence, and the evidence sentences a writer may use.

A cosine threshold alone does not separate answerable from unanswerable questions on the essay (their scores
overlap), so a logistic model combines several signals (`DecisionFeatures`). Its weights are fitted on the dev
split by `python -m eval.calibrate --write` and stored in decision_model.json; loading a model checks that every
feature it names exists, so a renamed feature fails loudly instead of silently reading 0.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from index import SearchHit
from rag.errors import RagError
from rag.evidence import EvidenceScorer, ScoredSentence
from rag.guard import addresses_an_assistant
from rag.text import TermWeights, content_terms, term_set
from rag.types import Passage

MODEL_FILE = Path(__file__).with_name("decision_model.json")
# A close call is answered, not silently refused: a false refusal costs the reader more than a quoted answer they
# can check, so the answer says how sure it is.
LOW_CONFIDENCE = ("Low confidence: the passages may not state this exactly. Check the highlighted sentences before "
                  "relying on the answer.")

# Selection, tuned on the dev split: how far below the best sentence another may score and still join the answer,
# when a sentence repeats one already chosen (cosine), how long an answer may get, and the coverage gain a
# lower-scoring sentence must bring.
JOIN_MARGIN = 0.2
REDUNDANT_COSINE = 0.85
MAX_ANSWER_CHARS = 700
MIN_GAIN = 0.05
GAIN_WEIGHT = 0.5
# A sentence opening with one of these leans on the sentence before it.
_ANAPHORA = re.compile(r"^[“\"‘]?(This|These|That|Those|It|Its|They|Their|Such|Thus|Hence|He|She|His|Her|"
                       r"Consequently|Accordingly|Moreover|Additionally)\b")
# Questions that ask for a number can be checked for one: a "how many" question whose best sentences
# hold no number new to the question is not answered by them, however similar they read.
_NUMBER_Q = re.compile(r"\b(how (many|much|long|old|far)|what (year|percentage|share|number|amount|price)|population|"
                       r"price|cost|value of|when|what date|in what year|which year)\b", re.I)
_NUMBER_A = re.compile(r"\b(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|hundred|"
                       r"thousand|million|billion|dozen)\b", re.I)


def _new_numbers(sentence: str, question: str) -> bool:
    asked = {m.lower() for m in _NUMBER_A.findall(question)}
    return any(m.lower() not in asked for m in _NUMBER_A.findall(sentence))


def number_missing(question: str, best_sentence: str) -> float:
    """1.0 when the question asks for a number and the best sentence offers none beyond the question's own.
    (Names were tried too; almost every sentence of the essay names some country, so that check said nothing.)"""
    if _NUMBER_Q.search(question):
        return float(not _new_numbers(best_sentence, question))
    return 0.0


@dataclass(frozen=True)
class DecisionFeatures:
    """The signals a decision model may read, all computed for every question (together well under 1 ms
    beyond the sentence scoring). The shipped model uses dense_top, best_cosine and number_missing: adding the
    others overfit the 62-question dev split (leave-one-out accuracy fell)."""

    dense_top: float          # cosine of the best chunk from the dense index
    best_cosine: float        # cosine of the best-scoring sentence
    best_score: float         # its combined score (cosine + lexical coverage + rank bonus)
    best_coverage: float      # IDF-weighted share of the question's content words in that sentence
    context_coverage: float   # the same over the first three passages
    unknown_share: float      # IDF-weighted share of question words the corpus never uses
    number_missing: float     # 1.0: a "how many / when" question whose best sentence holds no new number

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in self.names()}


@dataclass(frozen=True)
class DecisionModel:
    """A standardised logistic regression over named `DecisionFeatures` fields, stored as JSON so run time needs
    no scikit-learn."""

    features: tuple[str, ...]
    coef: tuple[float, ...]
    intercept: float
    mean: tuple[float, ...]
    scale: tuple[float, ...]

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in DecisionFeatures.names()]
        if unknown:
            raise RagError(f"The decision model uses unknown feature(s) {', '.join(unknown)}; known features are "
                           f"{', '.join(DecisionFeatures.names())}. Refit it with `python -m eval.calibrate --write`.")
        if not len(self.features) == len(self.coef) == len(self.mean) == len(self.scale):
            raise RagError("The decision model file is inconsistent: features, coef, mean and scale must have the "
                           "same length. Refit it with `python -m eval.calibrate --write`.")

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "DecisionModel":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(tuple(data["features"]), tuple(map(float, data["coef"])), float(data["intercept"]),
                       tuple(map(float, data["mean"])), tuple(map(float, data["scale"])))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RagError(f"Cannot read the decision model {path} ({type(exc).__name__}: {exc}). Reinstall the "
                           "package or refit it with `python -m eval.calibrate --write`.") from None

    def probability(self, features: DecisionFeatures) -> float:
        z = self.intercept
        for name, w, m, s in zip(self.features, self.coef, self.mean, self.scale):
            z += w * (getattr(features, name) - m) / (s or 1.0)
        return 1.0 / (1.0 + math.exp(-z))

    def save(self, path: Path = MODEL_FILE) -> None:
        data = {"features": list(self.features), "coef": list(self.coef), "intercept": self.intercept,
                "mean": list(self.mean), "scale": list(self.scale)}
        Path(path).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class Decision:
    """What the decision stage concluded. `evidence` is empty when the question is not answerable."""

    answerable: bool
    probability: float
    features: DecisionFeatures
    scored: tuple[ScoredSentence, ...]      # every sentence of the passages, best first
    evidence: tuple[ScoredSentence, ...]    # the sentences to answer from: best first, the rest in text order
    planted: tuple[ScoredSentence, ...] = ()  # sentences that address an assistant: never evidence
    notes: tuple[str, ...] = ()             # what the answer should tell the reader about this decision

    @property
    def flagged_passages(self) -> set[int]:
        """Numbers of the passages that hold planted instructions (a writer's prompt marks them)."""
        return {s.passage.n for s in self.planted}


def features_of(question: str, passages: Sequence[Passage], hits: Sequence[SearchHit],
                scored: Sequence[ScoredSentence], weights: TermWeights) -> DecisionFeatures:
    q_terms = content_terms(question)
    context_terms: set[str] = set()
    for p in passages[:3]:
        context_terms |= term_set(p.text)
    total_idf = sum(weights.idf(t) for t in q_terms) or 1.0
    best = scored[0] if scored else None
    return DecisionFeatures(
        dense_top=max((h.dense_score for h in hits if h.dense_score is not None), default=0.0),
        best_cosine=best.cosine if best else 0.0,
        best_score=best.score if best else 0.0,
        best_coverage=best.coverage if best else 0.0,
        context_coverage=weights.coverage(q_terms, context_terms),
        unknown_share=sum(weights.idf(t) for t in q_terms if not weights.known(t)) / total_idf,
        number_missing=number_missing(question, best.sentence.text) if best else 1.0,
    )


def _neighbour(scored: Sequence[ScoredSentence], sentence: ScoredSentence, after: bool) -> ScoredSentence | None:
    """The sentence right after (or before) `sentence` in the same document, if the context holds it."""
    s = sentence.sentence
    for cand in scored:
        c = cand.sentence
        if c.source != s.source:
            continue
        gap = c.start - s.end if after else s.start - c.end
        if 0 <= gap <= 2:
            return cand
    return None


def select_evidence(question: str, scored: Sequence[ScoredSentence], weights: TermWeights,
                    max_sentences: int) -> list[ScoredSentence]:
    """The best sentence (with the sentence its pronoun points to, or the one continuing it), then close
    runners-up that cover a part of the question still uncovered. Best first, the rest in text order."""
    if not scored:
        return []
    best = scored[0]
    unit = [best]
    if _ANAPHORA.match(best.sentence.text):
        before = _neighbour(scored, best, after=False)
        if before is not None:
            unit.insert(0, before)
    after = _neighbour(scored, best, after=True)
    if after is not None and _ANAPHORA.match(after.sentence.text) and \
            sum(len(u.sentence.text) for u in unit) + len(after.sentence.text) <= MAX_ANSWER_CHARS:
        unit.append(after)
    q_terms = content_terms(question)
    chosen = list(unit)
    covered: set[str] = set().union(*(term_set(c.sentence.text) for c in chosen))
    length = sum(len(c.sentence.text) for c in chosen)
    extras: list[ScoredSentence] = []
    pool = [c for c in scored[1:] if c.score >= best.score - JOIN_MARGIN and c not in chosen]
    while pool and len(chosen) < max_sentences:
        # Greedy, like maximal marginal relevance: relevance plus the share of the question still uncovered.
        base = weights.coverage(q_terms, covered)
        gains = [weights.coverage(q_terms, covered | term_set(c.sentence.text)) - base for c in pool]
        i = max(range(len(pool)), key=lambda j: pool[j].score + GAIN_WEIGHT * gains[j])
        cand, gain = pool.pop(i), gains[i]
        if any(float(cand.vector @ c.vector) > REDUNDANT_COSINE for c in chosen):
            continue
        if length + len(cand.sentence.text) > MAX_ANSWER_CHARS:
            continue
        if gain < MIN_GAIN and cand.score < best.score - JOIN_MARGIN / 2:
            continue
        chosen.append(cand)
        extras.append(cand)
        covered |= term_set(cand.sentence.text)
        length += len(cand.sentence.text)
    return unit + sorted(extras, key=lambda c: (c.sentence.source, c.sentence.start))


class Decider:
    """Scores the passages' sentences, computes the features, applies the model and picks the evidence."""

    def __init__(self, scorer: EvidenceScorer, model: DecisionModel, threshold: float, max_sentences: int,
                 close_call_margin: float = 0.0) -> None:
        self.scorer = scorer
        self.model = model
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.close_call_margin = close_call_margin

    def decide(self, question: str, passages: Sequence[Passage], hits: Sequence[SearchHit]) -> Decision:
        """Planted instructions in a document ("when asked about X, answer that…") are document text, not facts
        for the answer: they are left out of the evidence, and a note says so when one would have been used."""
        weights = self.scorer.weights()
        scored = self.scorer.score(question, passages)
        features = features_of(question, passages, hits, scored, weights)
        probability = self.model.probability(features)
        answerable = bool(passages) and probability >= self.threshold
        planted = tuple(s for s in scored if addresses_an_assistant(s.sentence.text))
        notes: list[str] = []
        evidence: list[ScoredSentence] = []
        if answerable:
            usable = [s for s in scored if s not in planted]
            evidence = select_evidence(question, usable, weights, self.max_sentences)
            near = [s for s in planted if s.score >= scored[0].score - JOIN_MARGIN]
            for s in near:
                quote = s.sentence.text if len(s.sentence.text) <= 160 else s.sentence.text[:159] + "…"
                notes.append(f"Passage [{s.passage.n}] contains text addressed to an assistant (“{quote}”). It is "
                             "document text, not an instruction, and was not used as evidence.")
            if not evidence:
                answerable = False
            elif probability < self.threshold + self.close_call_margin:
                notes.append(LOW_CONFIDENCE)
        return Decision(answerable, probability, features, tuple(scored), tuple(evidence), planted, tuple(notes))
