"""Searching an index in PostgreSQL: dense (pgvector HNSW), lexical (BM25 over the `postings` table), fused in
the application with the very `index.search.Fusion` the FAISS path uses, so `SearchConfig` (mode, candidates,
fusion, weights, rrf_k) means the same on both backends.

Why BM25 in SQL and not PostgreSQL's own `ts_rank_cd` over the tsvector: `ts_rank_cd` has no inverse
document frequency, so on a question a common word counts as much as the rare name that identifies the
passage; and BM25 here uses the same tokens (`index.tokens.Tokenizer`, which the bm25s store uses too) and the
same formula (Lucene's, k1=1.5, b=0.75) as the FAISS path's bm25s store, so rankings agree (see README
"Scaling out" for the per-set evaluation of both backends). The tsvector and its GIN index stay for full-text
filters and ad-hoc SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from index.chunking import Chunk
from index.config import SearchConfig
from index.pg.errors import DimensionMismatch
from index.search import Fusion, Ranking, SearchHit, combine, fusion_for, to_hits
from index.tokens import Tokenizer

if TYPE_CHECKING:
    from index.pg.store import PostgresIndex

K1, B = 1.5, 0.75  # bm25s's defaults (method "lucene")


# Lucene's BM25 as bm25s computes it (no (k1 + 1) factor; a word the query repeats counts once per repeat), in one
# pass over the query terms' postings: the window count is each term's document frequency.
BM25_SQL = f"""
WITH q AS (SELECT term, count(*) AS qtf FROM unnest(%(terms)s::text[]) AS term GROUP BY term),
     s AS (SELECT chunk_count::float8 AS n, greatest(total_terms::float8 / greatest(chunk_count, 1), 1e-9) AS avgdl
           FROM state),
     m AS (SELECT p.chunk, p.tf, p.len, q.qtf, count(*) OVER (PARTITION BY p.term)::float8 AS df
           FROM q JOIN postings p USING (term))
SELECT m.chunk, sum(m.qtf * ln(1 + (s.n - m.df + 0.5) / (m.df + 0.5))
                    * m.tf / (m.tf + {K1} * (1 - {B} + {B} * m.len / s.avgdl)))::float8 AS score
FROM m CROSS JOIN s GROUP BY m.chunk ORDER BY score DESC, m.chunk LIMIT %(k)s
"""

DENSE_SQL = """SELECT id, (-(embedding <#> %(v)s))::float8 AS score FROM chunks
               ORDER BY embedding <#> %(v)s LIMIT %(k)s"""

HITS_SQL = """SELECT c.id, c.chunk_id, c.source, d.title, c.section, c.start_offset, c.end_offset, c.text
              FROM chunks c JOIN documents d USING (source) WHERE c.id = ANY(%s)"""


def chunk_of(row) -> Chunk:
    _, cid, source, title, section, start, end, text = row
    return Chunk(id=cid, source=source, title=title, section=section, start=start, end=end, text=text)


class PgDense:
    """Dense search of one index (the `snapshot.dense` the calibration reads): ids and scores, best first."""

    def __init__(self, index: "PostgresIndex") -> None:
        self.index = index

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        with self.index.connections.borrow() as conn:
            rows = dense(conn, query, k, self.index.config.hnsw_ef_search)
        return np.array([r for r, _ in rows], dtype=np.int64), np.array([s for _, s in rows], dtype=np.float32)


def dense(conn, query: np.ndarray, k: int, ef_search: int) -> Ranking:
    if k > ef_search:  # HNSW returns at most ef_search rows
        conn.execute(f"SET hnsw.ef_search = {min(int(k), 1000)}")
    try:
        return [(int(i), float(s)) for i, s in
                conn.execute(DENSE_SQL, {"v": np.asarray(query, dtype=np.float32), "k": k}).fetchall()]
    finally:
        if k > ef_search:
            conn.execute(f"SET hnsw.ef_search = {int(ef_search)}")


def bm25(conn, terms: list[str], k: int) -> Ranking:
    if not terms:
        return []
    return [(int(i), float(s)) for i, s in conn.execute(BM25_SQL, {"terms": terms, "k": k}).fetchall()]


class PgSearcher:
    """The same contract as `index.search.Searcher` (`search(query, k)` -> `SearchHit`s), answered by SQL.
    Every query reads the database as it is now, so another process's update is searched at once."""

    def __init__(self, index: "PostgresIndex", config: SearchConfig) -> None:
        self.index = index
        self.config = config
        self.fusion: Fusion = fusion_for(config)
        self.tokenize = Tokenizer()

    def search(self, query: str, k: int) -> list[SearchHit]:
        if not query.strip() or k <= 0 or len(self.index) == 0:
            return []
        mode = self.config.mode
        pool = max(k, self.config.candidates) if mode == "hybrid" else k
        vector = self.index.embedder.embed_query(query) if mode in ("hybrid", "dense") else None
        m = self.index.manifest
        if vector is not None and m is not None and len(vector) != m.dimension:
            raise DimensionMismatch(
                f"The index in {self.index.where} holds {m.dimension}-dimension vectors, but the embedding model "
                f"'{self.index.config.embedding_model}' makes {len(vector)}-dimension ones. Fix: run `rag index "
                f"--rebuild` to re-embed every document with this model, or use the model the index was built with.")
        with self.index.connections.borrow() as conn:
            d: Ranking = dense(conn, vector, pool, self.index.config.hnsw_ef_search) if vector is not None else []
            b: Ranking = bm25(conn, self.tokenize([query])[0], pool) if mode in ("hybrid", "bm25") else []
            order = combine(mode, self.fusion, d, b)[:k]
            rows = {r[0]: r for r in conn.execute(HITS_SQL, ([row for row, _ in order],)).fetchall()}
        return to_hits(order, d, b, lambda row: chunk_of(rows[row]) if row in rows else None)
