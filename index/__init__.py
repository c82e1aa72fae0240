"""Documents in, searchable chunks with exact source offsets out (FAISS + BM25, persisted, incremental).

Modules, one job each: `documents` reads files, `chunking` cuts them into offset-exact chunks, `embedding`
turns text into vectors, `stores` holds the FAISS and BM25 stores, `planner` decides what an update must do,
`writer` carries it out as a new crash-safe generation (`storage`, `manifest`), `snapshot` loads one,
`search` searches it, and `hybrid.HybridIndex` is the facade over all of them. `pg.PostgresIndex` serves the
same interface from PostgreSQL + pgvector; `backends.open_index` picks one from `IndexConfig.backend`.
"""

from index.chunking import Chunk, Chunker
from index.config import DEFAULT_MODEL, IndexConfig, SearchConfig, default_index_dir
from index.spans import Span
from index.corpus import ESSAY_TITLE, default_corpus_path, default_titles, stale_bundled_copies
from index.documents import SUPPORTED_SUFFIXES, Document, DocumentError, load_document
from index.embedding import Embedder, ModelLoadError
from index.errors import IndexDamagedError, IndexStoreError
from index.hybrid import HybridIndex, IndexInfo
from index.backends import SearchIndex, new_index, open_index
from index.manifest import FORMAT_VERSION, DocumentRecord, Manifest
from index.planner import DiskProbe, FileProbe, Plan, plan_update
from index.search import RRF, Convex, Fusion, Searcher, SearchHit
from index.writer import UpdateReport

__all__ = [
    "Chunk", "Chunker", "DEFAULT_MODEL", "IndexConfig", "SearchConfig", "Span", "default_index_dir", "ESSAY_TITLE",
    "default_corpus_path", "default_titles", "stale_bundled_copies", "SUPPORTED_SUFFIXES", "Document",
    "DocumentError", "load_document", "Embedder", "ModelLoadError", "IndexDamagedError", "IndexStoreError",
    "HybridIndex", "IndexInfo", "SearchIndex", "new_index", "open_index", "FORMAT_VERSION",
    "DocumentRecord", "Manifest", "DiskProbe", "FileProbe", "Plan", "plan_update", "RRF", "Convex", "Fusion",
    "Searcher", "SearchHit", "UpdateReport",
]
