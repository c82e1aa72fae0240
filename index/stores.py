"""The two searchable stores over one list of chunks: FAISS for meaning, BM25 for exact words.

Both address chunks by row number, so the fused ranking can combine them without lookups.
"""

from __future__ import annotations

from pathlib import Path

import logging

import bm25s
import faiss
import numpy as np
import Stemmer


logging.getLogger("bm25s").setLevel(logging.WARNING)


class DenseStore:
    """Inner product over normalised vectors: exact Flat for small corpora, HNSW above a size threshold."""

    def __init__(self, index: faiss.Index, kind: str) -> None:
        self.index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, kind: str, m: int = 32, ef_construction: int = 100,
              ef_search: int = 128) -> "DenseStore":
        dim = vectors.shape[1]
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = ef_construction
            index.hnsw.efSearch = ef_search
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        return cls(index, kind)

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.index.ntotal)
        if k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        scores, ids = self.index.search(np.asarray(query, dtype=np.float32).reshape(1, -1), k)
        keep = ids[0] >= 0
        return ids[0][keep], scores[0][keep]

    def set_ef_search(self, ef: int) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = ef

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, ef_search: int = 128) -> "DenseStore":
        index = faiss.read_index(str(path))
        kind = "hnsw" if isinstance(index, faiss.IndexHNSW) or "HNSW" in type(index).__name__ else "flat"
        store = cls(index, kind)
        store.set_ef_search(ef_search)
        return store


class LexicalStore:
    """Okapi BM25 (bm25s) with English stop words and Snowball stemming."""

    def __init__(self, retriever: bm25s.BM25 | None, size: int) -> None:
        self.retriever = retriever
        self.size = size
        self.stemmer = Stemmer.Stemmer("english")

    def _tokenize(self, texts: list[str]) -> list[list[str]]:
        return bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False)

    @classmethod
    def build(cls, texts: list[str]) -> "LexicalStore":
        store = cls(None, len(texts))
        if texts:
            retriever = bm25s.BM25()
            retriever.index(store._tokenize(texts), show_progress=False)
            store.retriever = retriever
        return store

    def search(self, query: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, self.size)
        tokens = self._tokenize([query])
        if k <= 0 or self.retriever is None or not tokens[0]:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        ids, scores = self.retriever.retrieve(tokens, k=k, show_progress=False)
        keep = scores[0] > 0
        return ids[0][keep].astype(np.int64), scores[0][keep]

    def save(self, folder: Path) -> None:
        if self.retriever is not None:
            self.retriever.save(str(folder))
        else:
            folder.mkdir(parents=True, exist_ok=True)

    @classmethod
    def load(cls, folder: Path, size: int) -> "LexicalStore":
        retriever = bm25s.BM25.load(str(folder)) if size else None
        return cls(retriever, size)


def reciprocal_rank_fusion(rankings: list[list[int]], k: int = 60, weights: list[float] | None = None) -> dict[int, float]:
    """Cormack et al. (2009): rank-based, so BM25 and cosine scores need no calibration against each other."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, row in enumerate(ranking):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank + 1)
    return fused


def convex_fusion(scores: list[dict[int, float]], weights: list[float]) -> dict[int, float]:
    """Weighted sum of min-max normalised scores (Bruch et al., 2023): a result far ahead in one list keeps its
    lead, where rank fusion would let items ranked moderately in both lists overtake it."""
    fused: dict[int, float] = {}
    for table, weight in zip(scores, weights):
        if not table:
            continue
        lo, hi = min(table.values()), max(table.values())
        span = (hi - lo) or 1.0
        for row, value in table.items():
            fused[row] = fused.get(row, 0.0) + weight * (value - lo) / span
    return fused
