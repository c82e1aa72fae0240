"""The offline default generator: answer with the document's own sentences, each cited.

Every sentence of an extractive answer is a verbatim quote, so it cannot invent facts, and it needs no LLM.
Sentences are scored against the question by meaning (embedding cosine) and by the rare question words they
contain (IDF-weighted coverage); the same signals tell the refusal gate how strong the evidence is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from index import Embedder, SearchHit
from index.chunking import is_heading
from rag.sentences import Sentence, split_sentences
from rag.text import TermWeights, content_terms, term_set
from rag.types import Passage

# Tuned on the dev split (see rag/calibrate.py): weight of lexical coverage against cosine, and how far below the
# best sentence another sentence may score and still join the answer.
LEXICAL_WEIGHT = 0.3
RANK_WEIGHT = 0.05
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


@dataclass
class ScoredSentence:
    sentence: Sentence
    passage: Passage
    cosine: float
    coverage: float
    score: float
    vector: np.ndarray = field(repr=False)


@dataclass
class Evidence:
    """Scored sentences of the context plus the features the refusal gate reads."""

    question: str
    sentences: list[ScoredSentence]
    features: dict[str, float]

    @property
    def best(self) -> ScoredSentence | None:
        return self.sentences[0] if self.sentences else None


class ExtractiveAnswerer:
    def __init__(self, embedder: Embedder, weights: TermWeights, max_sentences: int = 4) -> None:
        self.embedder = embedder
        self.weights = weights
        self.max_sentences = max_sentences
        self._vectors: dict[tuple[str, int, int], np.ndarray] = {}

    def _sentence_vectors(self, sentences: list[Sentence]) -> np.ndarray:
        """Sentence embeddings are cached: the same passages come back for many questions."""
        missing = [s for s in sentences if (s.source, s.start, s.end) not in self._vectors]
        if missing:
            vecs = self.embedder.embed([s.text for s in missing])
            if len(self._vectors) > 50_000:
                self._vectors.clear()
            for s, v in zip(missing, vecs):
                self._vectors[(s.source, s.start, s.end)] = v
        return np.array([self._vectors[(s.source, s.start, s.end)] for s in sentences], dtype=np.float32)

    def analyse(self, question: str, passages: list[Passage], hits: list[SearchHit]) -> Evidence:
        """Score the context's sentences against the (standalone) question.

        Weighting a follow-up's own words above its rewrite was tried and measured: no gain on the dev split."""
        q_terms = content_terms(question)
        seen: set[tuple[str, int]] = set()
        items: list[tuple[Sentence, Passage]] = []
        for p in passages:
            for s in split_sentences(p.text, p.start, p.source):
                if (s.source, s.start) in seen or len(s.text) < 20 or is_heading(s.text):
                    continue
                seen.add((s.source, s.start))
                items.append((s, p))
        qv = self.embedder.embed_query(question)
        scored: list[ScoredSentence] = []
        if items:
            vecs = self._sentence_vectors([s for s, _ in items])
            cos = vecs @ qv
            for (s, p), c, v in zip(items, cos, vecs):
                cov = self.weights.coverage(q_terms, term_set(s.text))
                score = float(c) + LEXICAL_WEIGHT * cov + RANK_WEIGHT / p.n
                scored.append(ScoredSentence(s, p, float(c), cov, score, v))
        scored.sort(key=lambda x: -x.score)
        return Evidence(question, scored, self._features(question, q_terms, passages, hits, scored))

    def _features(self, question: str, q_terms: list[str], passages: list[Passage], hits: list[SearchHit],
                  scored: list[ScoredSentence]) -> dict[str, float]:
        context_terms: set[str] = set()
        for p in passages[:3]:
            context_terms |= term_set(p.text)
        total_idf = sum(self.weights.idf(t) for t in q_terms) or 1.0
        return {
            "dense_top": max((h.dense_score for h in hits if h.dense_score is not None), default=0.0),
            "best_cosine": scored[0].cosine if scored else 0.0,
            "best_score": scored[0].score if scored else 0.0,
            "best_coverage": scored[0].coverage if scored else 0.0,
            "context_coverage": self.weights.coverage(q_terms, context_terms),
            "unknown_share": sum(self.weights.idf(t) for t in q_terms if not self.weights.known(t)) / total_idf,
            "number_missing": number_missing(question, scored[0].sentence.text) if scored else 1.0,
        }

    @staticmethod
    def _neighbour(evidence: Evidence, sentence: ScoredSentence, after: bool) -> ScoredSentence | None:
        """The sentence right after (or before) `sentence` in the same document, if the context holds it."""
        s = sentence.sentence
        for cand in evidence.sentences:
            c = cand.sentence
            if c.source != s.source:
                continue
            gap = c.start - s.end if after else s.start - c.end
            if 0 <= gap <= 2:
                return cand
        return None

    def select(self, evidence: Evidence) -> list[ScoredSentence]:
        """The best sentence (with the sentence its pronoun points to, or the one continuing it), then close
        runners-up that cover a part of the question still uncovered. Best first, the rest in text order."""
        if not evidence.sentences:
            return []
        best = evidence.sentences[0]
        unit = [best]
        if _ANAPHORA.match(best.sentence.text):
            before = self._neighbour(evidence, best, after=False)
            if before is not None:
                unit.insert(0, before)
        after = self._neighbour(evidence, best, after=True)
        if after is not None and _ANAPHORA.match(after.sentence.text) and \
                sum(len(u.sentence.text) for u in unit) + len(after.sentence.text) <= MAX_ANSWER_CHARS:
            unit.append(after)
        q_terms = content_terms(evidence.question)
        chosen = list(unit)
        covered: set[str] = set().union(*(term_set(c.sentence.text) for c in chosen))
        length = sum(len(c.sentence.text) for c in chosen)
        extras: list[ScoredSentence] = []
        pool = [c for c in evidence.sentences[1:] if c.score >= best.score - JOIN_MARGIN and c not in chosen]
        while pool and len(chosen) < self.max_sentences:
            # Greedy, like maximal marginal relevance: relevance plus the share of the question still uncovered.
            base = self.weights.coverage(q_terms, covered)
            gains = [self.weights.coverage(q_terms, covered | term_set(c.sentence.text)) - base for c in pool]
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
        rest = sorted(extras, key=lambda c: (c.sentence.source, c.sentence.start))
        return unit + rest

    @staticmethod
    def compose(chosen: list[ScoredSentence]) -> str:
        return " ".join(f"{c.sentence.text} [{c.passage.n}]" for c in chosen)
