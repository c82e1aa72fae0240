"""Scoring the sentences of the retrieved passages against a question: what the decision stage reads.

Sentences are scored by meaning (embedding cosine) and by the rare question words they contain (IDF-weighted
coverage), plus a small bonus for the passage's retrieval rank. The weights were tuned on the dev split of the
essay set (LEXICAL_WEIGHT 0.3 beat 0.0-0.6 on key-term accuracy; RANK_WEIGHT 0.05 broke ties without reordering).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from index import Embedder
from index.chunking import is_heading
from rag.sentences import Sentence, split_sentences
from rag.text import TermWeights, content_terms, term_set
from rag.types import Passage

LEXICAL_WEIGHT = 0.3
RANK_WEIGHT = 0.05
# Sentences shorter than this are headings, captions or fragments: never evidence on their own.
MIN_SENTENCE_CHARS = 20
_VECTOR_CACHE = 50_000


@dataclass
class ScoredSentence:
    """A sentence of a passage with its scores; `vector` is its normalised embedding (for redundancy checks)."""

    sentence: Sentence
    passage: Passage
    cosine: float
    coverage: float
    score: float
    vector: np.ndarray = field(repr=False)


class SentenceVectors:
    """Sentence embeddings cached by (source, start, end): the same passages come back for many questions.
    Shared by concurrent requests, so reads and writes hold a lock (an LRU bounded at 50,000 sentences, about
    75 MB of float32 vectors at dimension 384)."""

    def __init__(self, embedder: Embedder, capacity: int = _VECTOR_CACHE) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._cache: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, sentences: Sequence[Sentence]) -> np.ndarray:
        keys = [(s.source, s.start, s.end) for s in sentences]
        with self._lock:
            missing = [s for s, key in zip(sentences, keys) if key not in self._cache]
        vectors = self.embedder.embed([s.text for s in missing]) if missing else []
        with self._lock:
            for s, v in zip(missing, vectors):
                self._cache[(s.source, s.start, s.end)] = v
            out = []
            for key, s in zip(keys, sentences):
                v = self._cache.get(key)
                if v is None:  # evicted between the two locked sections by another request
                    v = self.embedder.embed([s.text])[0]
                else:
                    self._cache.move_to_end(key)
                out.append(v)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return np.array(out, dtype=np.float32).reshape(len(out), -1)


class EvidenceScorer:
    """Scores every sentence of the passages against the (standalone) question, best first."""

    def __init__(self, embedder: Embedder, weights: Callable[[], TermWeights]) -> None:
        self.embedder = embedder
        self.weights = weights          # the current corpus statistics (they follow the index)
        self.vectors = SentenceVectors(embedder)

    def score(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        """Weighting a follow-up's own words above its rewrite was tried and measured: no gain on the dev split."""
        weights = self.weights()
        q_terms = content_terms(question)
        seen: set[tuple[str, int]] = set()
        items: list[tuple[Sentence, Passage]] = []
        for p in passages:
            for s in split_sentences(p.text, p.start, p.source):
                if (s.source, s.start) in seen or len(s.text) < MIN_SENTENCE_CHARS or is_heading(s.text):
                    continue
                seen.add((s.source, s.start))
                items.append((s, p))
        if not items:
            return []
        qv = self.embedder.embed_query(question)
        vecs = self.vectors([s for s, _ in items])
        scored = []
        for (s, p), c, v in zip(items, vecs @ qv, vecs):
            cov = weights.coverage(q_terms, term_set(s.text))
            scored.append(ScoredSentence(s, p, float(c), cov, float(c) + LEXICAL_WEIGHT * cov + RANK_WEIGHT / p.n, v))
        scored.sort(key=lambda x: -x.score)
        return scored
