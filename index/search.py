"""Searching one index: dense (FAISS), lexical (BM25), or both fused into one ranking.

`Searcher` fixes how to search when it is made (`SearchConfig`: mode, candidates, fusion and its weights), so
a query is just `search(query, k)`. The fusion method is chosen once, in the constructor.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from index.chunking import Chunk
from index.config import SearchConfig

if TYPE_CHECKING:
    from index.hybrid import HybridIndex

Ranking = list[tuple[int, float]]  # (chunk row, retriever score), best first


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None


def reciprocal_rank_fusion(rankings: list[list[int]], k: int, weights: list[float]) -> dict[int, float]:
    """Cormack et al. (2009): rank-based, so BM25 and cosine scores need no calibration against each other."""
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


class Fusion(Protocol):
    """Combines the dense and BM25 rankings into one score per chunk row (higher is better)."""

    def fuse(self, dense: Ranking, bm25: Ranking) -> dict[int, float]: ...


@dataclass(frozen=True)
class RRF:
    """Reciprocal rank fusion: only the places count."""

    k: int
    dense_weight: float
    bm25_weight: float

    def fuse(self, dense: Ranking, bm25: Ranking) -> dict[int, float]:
        return reciprocal_rank_fusion([[row for row, _ in dense], [row for row, _ in bm25]], self.k,
                                      [self.dense_weight, self.bm25_weight])


@dataclass(frozen=True)
class Convex:
    """Convex combination of normalised scores: how far ahead a result is counts, not only its place."""

    dense_weight: float
    bm25_weight: float

    def fuse(self, dense: Ranking, bm25: Ranking) -> dict[int, float]:
        return convex_fusion([dict(dense), dict(bm25)], [self.dense_weight, self.bm25_weight])


def fusion_for(config: SearchConfig) -> Fusion:
    if config.fusion == "convex":
        return Convex(config.dense_weight, config.bm25_weight)
    if config.fusion == "rrf":
        return RRF(config.rrf_k, config.dense_weight, config.bm25_weight)
    raise ValueError(f"unknown fusion {config.fusion!r}")


def combine(mode: str, fusion: Fusion, dense: Ranking, bm25: Ranking) -> Ranking:
    """The order a search mode returns: one retriever's ranking, or both fused (ties broken by row, so both
    backends order alike)."""
    if mode == "dense":
        return dense
    if mode == "bm25":
        return bm25
    return sorted(fusion.fuse(dense, bm25).items(), key=lambda kv: (-kv[1], kv[0]))


def to_hits(order: Ranking, dense: Ranking, bm25: Ranking,
            chunk: Callable[[int], Chunk | None]) -> list[SearchHit]:
    """`SearchHit`s for the rows of `order` (already cut to k), with each retriever's score and rank; a row whose
    chunk is gone (None) is skipped and keeps its place in the numbering."""
    d_rank = {row: r for r, (row, _) in enumerate(dense)}
    b_rank = {row: r for r, (row, _) in enumerate(bm25)}
    d_score, b_score = dict(dense), dict(bm25)
    hits = []
    for rank, (row, score) in enumerate(order):
        c = chunk(row)
        if c is not None:
            hits.append(SearchHit(c, score, rank, d_score.get(row), b_score.get(row), d_rank.get(row),
                                  b_rank.get(row)))
    return hits


class Searcher:
    """Ranked chunks of one index. "hybrid" fuses the dense and BM25 results (`config.candidates` each, or k if
    larger); "dense" and "bm25" return one retriever's top k. Reads the index's current snapshot on every
    query, so a refreshed index is searched without making a new Searcher."""

    def __init__(self, index: "HybridIndex", config: SearchConfig) -> None:
        self.index = index
        self.config = config
        self.fusion: Fusion = fusion_for(config)

    def search(self, query: str, k: int) -> list[SearchHit]:
        snap = self.index.snapshot
        if not snap.chunks or not query.strip() or k <= 0:
            return []
        mode = self.config.mode
        pool = max(k, self.config.candidates) if mode == "hybrid" else k
        dense: Ranking = []
        bm25: Ranking = []
        if mode in ("hybrid", "dense"):
            ids, scores = snap.dense.search(self.index.embedder.embed_query(query), pool)
            dense = [(int(i), float(s)) for i, s in zip(ids, scores)]
        if mode in ("hybrid", "bm25"):
            ids, scores = snap.lexical.search(query, pool)
            bm25 = [(int(i), float(s)) for i, s in zip(ids, scores)]
        order = combine(mode, self.fusion, dense, bm25)[:k]
        return to_hits(order, dense, bm25, snap.chunks.__getitem__)
