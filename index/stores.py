"""The two searchable stores over one list of chunks: FAISS for meaning, BM25 for exact words.

Both address chunks by row number, so the fused ranking can combine them without lookups.
"""

from __future__ import annotations

import logging
from pathlib import Path

import bm25s
import faiss
import numpy as np

from index.config import IndexConfig
from index.tokens import Tokenizer

# bm25s sets its own logger to DEBUG when imported (bm25s/__init__.py), which prints a line per index build
# through any application's root handler; this undoes that one change of bm25s's, right after the import.
logging.getLogger("bm25s").setLevel(logging.WARNING)



class DenseStore:
    """Inner product over normalised vectors: exact Flat for small corpora, HNSW above a size threshold."""

    def __init__(self, index: faiss.Index, kind: str) -> None:
        self.index = index
        self.kind = kind

    @classmethod
    def build(cls, vectors: np.ndarray, config: IndexConfig) -> "DenseStore":
        """`config.index_type` "auto" means exact search below `config.ann_threshold` vectors, HNSW above."""
        kind = config.index_type
        if kind == "auto":
            kind = "hnsw" if len(vectors) >= config.ann_threshold else "flat"
        dim = vectors.shape[1]
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = config.hnsw_ef_construction
            index.hnsw.efSearch = config.hnsw_ef_search
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

    def save(self, path: Path) -> None:
        faiss.write_index(self.index, str(path))

    @classmethod
    def load(cls, path: Path, config: IndexConfig) -> "DenseStore":
        """efSearch is not a build-time property: the current setting applies to an index built earlier."""
        index = faiss.read_index(str(path))
        kind = "hnsw" if isinstance(index, faiss.IndexHNSW) or "HNSW" in type(index).__name__ else "flat"
        if kind == "hnsw":
            index.hnsw.efSearch = config.hnsw_ef_search
        return cls(index, kind)


class LexicalStore:
    """Okapi BM25 (bm25s) over `index.tokens.Tokenizer`'s words."""

    def __init__(self, retriever: bm25s.BM25 | None, size: int) -> None:
        self.retriever = retriever
        self.size = size
        self._tokenize = Tokenizer()

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
