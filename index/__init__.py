"""Documents in, searchable chunks with exact source offsets out (FAISS + BM25, persisted, incremental)."""

from index.chunking import Chunk, Chunker
from index.config import DEFAULT_MODEL, IndexConfig, SearchConfig, default_index_dir
from index.spans import Span
from index.corpus import ESSAY_TITLE, default_corpus_path, default_titles, stale_bundled_copies
from index.documents import SUPPORTED_SUFFIXES, Document, DocumentError, load_document
from index.embedding import Embedder, ModelLoadError
from index.hybrid import HybridIndex, IndexInfo, IndexMismatchError, SearchHit, SearchMode, UpdateReport
from index.manifest import FORMAT_VERSION, DocumentRecord, Manifest

__all__ = [
    "Chunk", "Chunker", "DEFAULT_MODEL", "IndexConfig", "SearchConfig", "Span", "default_index_dir", "ESSAY_TITLE", "default_corpus_path",
    "default_titles", "stale_bundled_copies", "SUPPORTED_SUFFIXES", "Document", "DocumentError", "load_document", "Embedder",
    "ModelLoadError", "HybridIndex", "IndexInfo", "IndexMismatchError", "SearchHit", "SearchMode", "UpdateReport",
    "FORMAT_VERSION", "DocumentRecord", "Manifest",
]
