"""Settings that decide how documents become an index.

They live here, not in `rag`, so that the index layer can be used (and tested) on its own; `rag.Settings`
embeds this model as its `index` section, keeping one configuration object for the whole application.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import platformdirs
from pydantic import BaseModel, Field, field_validator

from index.documents import LOADER_VERSIONS

DEFAULT_MODEL = "all-MiniLM-L6-v2"
# Bumped when `index.chunking.sections` finds headings differently, so an index built before is re-chunked:
# 2 reads hard-wrapped text, underlined headings and the HTML loader's '#' headings; 5 reads a list of short lines
# under a heading as its body, not as a chain of headings; 6 names a section by its heading path.
SECTIONS_VERSION = 6
# Bumped when `index.tokens` changes the words BM25 indexes: 2 keeps one-character words ("q", "_").
TOKENS_VERSION = 2


def default_index_dir() -> Path:
    """The user's data dir keeps the default index outside any source tree and shared by every cwd."""
    return Path(platformdirs.user_data_dir("essay-rag")) / "index"


class SearchConfig(BaseModel):
    """How a query is matched against the chunks: the one home of these defaults (rag's retrieval settings
    extend this model, so `rag` and `index` cannot disagree)."""

    mode: Literal["hybrid", "dense", "bm25"] = "hybrid"
    candidates: int = Field(30, ge=1, description="Chunks each retriever contributes before fusion.")
    # Fusion tuned on the dev split: exact words matter on a policy essay full of names, so BM25 counts double.
    fusion: Literal["rrf", "convex"] = Field("convex", description="Weighted normalised scores, or rank fusion.")
    rrf_k: int = Field(20, ge=1, description="Reciprocal rank fusion constant: lower favours top ranks.")
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(2.0, ge=0)


class IndexConfig(BaseModel):
    """How to chunk, embed and store documents. Changing a field that shapes chunks or vectors forces a rebuild."""

    dir: Path = Field(default_factory=default_index_dir, description="Index directory.")
    embedding_model: str = Field(DEFAULT_MODEL, description="sentence-transformers name or local path.")
    # 400/50 was chosen with `python -m eval.bench_index` (hybrid recall within a 1,000-character budget, dev split).
    chunk_size: int = Field(400, ge=50, le=20_000, description="Maximum chunk length in characters.")
    chunk_overlap: int = Field(50, ge=0, description="Characters shared by neighbouring chunks.")
    chunker: Literal["sections", "recursive"] = Field(
        "sections", description="'sections': split within headings on paragraphs and sentences; 'recursive': "
        "LangChain's RecursiveCharacterTextSplitter defaults (the tutorial baseline).")
    embed_headings: bool = Field(True, description="Prefix title and section to the text that gets embedded.")
    index_type: Literal["auto", "flat", "hnsw"] = "auto"
    ann_threshold: int = Field(20_000, ge=1, description="With index_type=auto, use HNSW from this many chunks.")
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_construction: int = Field(100, ge=8)
    hnsw_ef_search: int = Field(256, ge=8)
    batch_size: int = Field(32, ge=1, description="Chunks per embedding batch.")
    max_file_mb: float = Field(50.0, gt=0, description="Files larger than this are skipped with a message.")
    # Long enough for another process to embed a large batch of files (about 100 chunks/s on 2 cores).
    lock_timeout_s: float = Field(600.0, gt=0, description="How long an update waits for another process's "
                                  "lock on the index before giving up with a message naming that process.")

    # Where the index lives: files under `dir` (FAISS + BM25, one machine), or PostgreSQL + pgvector (shared by
    # every process and machine that reaches the database; see README "Scaling out").
    backend: Literal["faiss", "postgres"] = Field("faiss", description="'faiss': FAISS + BM25 files under dir; "
                                                  "'postgres': PostgreSQL with pgvector.")
    postgres_url: str = Field("", description="With backend=postgres: a libpq DSN or postgresql:// URL of the "
                              "server; empty starts an embedded server under dir (Unix socket only).")
    postgres_schema: str = Field("", pattern=r"^([a-z_][a-z0-9_]{0,62})?$", description="With backend=postgres: "
                                 "the schema holding this index; empty derives one from dir, so separate index "
                                 "folders never share data. Replicas on other machines set the same name.")

    @field_validator("chunk_overlap")
    @classmethod
    def _overlap_below_size(cls, v: int, info) -> int:
        size = info.data.get("chunk_size")  # absent when chunk_size itself failed validation
        if size is not None and v >= size:
            raise ValueError(f"chunk_overlap ({v}) must be smaller than chunk_size ({size})")
        return v

    def chunker_signature(self) -> dict:
        """The fields that change chunk boundaries or embedded text; a mismatch means re-chunking."""
        return {
            "chunker": self.chunker,
            "chunk_size": self.chunk_size,
            "chunk_overlap": self.chunk_overlap,
            "embed_headings": self.embed_headings,
            "sections": SECTIONS_VERSION,
            "tokens": TOKENS_VERSION,
            "loaders": dict(LOADER_VERSIONS),
        }
