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
LEXICAL_WEIGHT = 0.5
RANK_WEIGHT = 0.05
JOIN_MARGIN = 0.12
REDUNDANT_COSINE = 0.85
MAX_ANSWER_CHARS = 700
_NUMBER_Q = re.compile(r"\b(how (many|much|long|old|far)|what (year|percentage|share|number|amount)|population|"
                       r"price|cost|value|when|what date|in what year|which year)\b", re.I)
_NUMBER_A = re.compile(r"\b(\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|twelve|hundred|thousand|"
                       r"million|billion|dozen)\b", re.I)


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
        top = scored[:3]
        wants_number = bool(_NUMBER_Q.search(question))
        has_number = any(_NUMBER_A.search(s.sentence.text) for s in top)
        return {
            "dense_top": max((h.dense_score for h in hits if h.dense_score is not None), default=0.0),
            "best_cosine": scored[0].cosine if scored else 0.0,
            "best_score": scored[0].score if scored else 0.0,
            "best_coverage": scored[0].coverage if scored else 0.0,
            "context_coverage": self.weights.coverage(q_terms, context_terms),
            "unknown_share": sum(self.weights.idf(t) for t in q_terms if not self.weights.known(t)) / total_idf,
            "number_missing": float(wants_number and not has_number),
        }

    def select(self, evidence: Evidence) -> list[ScoredSentence]:
        """The best sentence, then close runners-up that add a new point; best first, the rest in text order."""
        if not evidence.sentences:
            return []
        best = evidence.sentences[0]
        q_terms = content_terms(evidence.question)
        chosen = [best]
        covered = term_set(best.sentence.text)
        length = len(best.sentence.text)
        for cand in evidence.sentences[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if cand.score < best.score - JOIN_MARGIN:
                break
            if any(float(cand.vector @ c.vector) > REDUNDANT_COSINE for c in chosen):
                continue
            if length + len(cand.sentence.text) > MAX_ANSWER_CHARS:
                continue
            gain = self.weights.coverage(q_terms, covered | term_set(cand.sentence.text)) - \
                self.weights.coverage(q_terms, covered)
            if gain <= 0 and cand.score < best.score - JOIN_MARGIN / 2:
                continue
            chosen.append(cand)
            covered |= term_set(cand.sentence.text)
            length += len(cand.sentence.text)
        rest = sorted(chosen[1:], key=lambda c: (c.sentence.source, c.sentence.start))
        return [chosen[0]] + rest

    @staticmethod
    def compose(chosen: list[ScoredSentence]) -> str:
        return " ".join(f"{c.sentence.text} [{c.passage.n}]" for c in chosen)
