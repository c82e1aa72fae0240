"""The one interface every index backend serves, and the one place that picks the backend from settings.

Nothing above `index` knows which backend serves it: `rag`, `eval` and `ui` call `open_index` (or
`new_index`, for commands that check or repair before opening) and use the `SearchIndex` methods.
`index.backend = "faiss"` is `HybridIndex` (FAISS + BM25 files under `index.dir`, one machine);
`"postgres"` is `index.pg.PostgresIndex` (PostgreSQL + pgvector, shared by processes and machines).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from index.chunking import Chunk
from index.config import IndexConfig, SearchConfig
from index.embedding import Embedder
from index.errors import IndexStoreError
from index.manifest import DocumentRecord, Manifest
from index.search import SearchHit
from index.writer import UpdateReport


class Searches(Protocol):
    def search(self, query: str, k: int) -> list[SearchHit]: ...


class SearchIndex(Protocol):
    """A persisted index of documents, chunked and embedded, searched by meaning and by words.

    `snapshot` is what a reader sees now (`generation`, `manifest`, `chunks`, `dense.search(vector, k)`);
    `refresh()` picks up another process's writes; writers wait for each other (`on_wait` is told)."""

    config: IndexConfig
    recovered: str | None

    @classmethod
    def open(cls, config: IndexConfig, embedder: Embedder | None = None,
             on_wait: Callable[[str], None] | None = None) -> "SearchIndex": ...

    def refresh(self) -> bool: ...

    def has_generations(self) -> bool: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def snapshot(self) -> Any: ...

    @property
    def chunks(self) -> list[Chunk]: ...

    @property
    def manifest(self) -> Manifest | None: ...

    def __len__(self) -> int: ...

    def documents(self) -> list[DocumentRecord]: ...

    def document_text(self, source: str) -> str: ...

    def searcher(self, config: SearchConfig) -> Searches: ...

    def info(self) -> Any: ...

    def update(self, paths: Iterable[Path | str] | None = None, titles: dict[str, str] | None = None,
               remove: Iterable[Path | str] = (), progress: bool = True,
               on_embedded: Callable[[int, int], None] | None = None) -> UpdateReport: ...

    def rebuild(self, reason: str = "requested", progress: bool = True) -> UpdateReport: ...

    def check(self) -> Any: ...

    def repair(self, progress: bool = True) -> UpdateReport: ...


def _backend(config: IndexConfig) -> type:
    if config.backend == "postgres":
        try:
            from index.pg import PostgresIndex
        except ImportError as exc:
            raise IndexStoreError(f"index.backend is 'postgres', but {exc.name or 'psycopg'} is not installed. "
                                  f"Fix: pip install 'essay-rag[postgres]', or set index.backend = "
                                  f"\"faiss\".") from None
        return PostgresIndex
    from index.hybrid import HybridIndex

    return HybridIndex


def new_index(config: IndexConfig, embedder: Embedder | None = None,
              on_wait: Callable[[str], None] | None = None) -> SearchIndex:
    """The configured backend's index, not yet loaded (for `check`, `repair`, or `refresh` then `info`)."""
    return _backend(config)(config, embedder, on_wait)


def open_index(config: IndexConfig, embedder: Embedder | None = None,
               on_wait: Callable[[str], None] | None = None) -> SearchIndex:
    """The configured backend's index, loaded and verified; rebuilt if it was built with other settings."""
    return _backend(config).open(config, embedder, on_wait)
