"""The persisted hybrid index: sync documents in, search chunks out.

`HybridIndex` is the facade over the modules that do the work: `index.planner` decides what an update must do
(unchanged documents are recognised by SHA-256 and keep their stored vectors), `index.writer` chunks, embeds and
commits it as a new generation (`index.storage`: readers never see a half-written index), `index.snapshot`
loads a generation and `index.search` searches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from index import storage
from index.chunking import Chunk
from index.config import IndexConfig, SearchConfig
from index.embedding import Embedder
from index.manifest import DocumentRecord, Manifest
from index.planner import DiskProbe, plan_update
from index.search import Searcher
from index.snapshot import Snapshot
from index.writer import IndexWriter, UpdateReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexInfo:
    directory: str
    documents: list[DocumentRecord]
    chunk_count: int
    embedding_model: str
    dimension: int
    chunker: dict
    index_type: str
    format_version: int
    size_bytes: int
    built_at: str


class HybridIndex:
    """Dense (FAISS) + lexical (BM25) search over chunks with exact source offsets."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None) -> None:
        self.config = config
        self.root = Path(config.dir).expanduser()
        self._embedder = embedder
        self._snap = Snapshot.empty()

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: IndexConfig, embedder: Embedder | None = None) -> "HybridIndex":
        """Load the current generation; an index built with other settings is rebuilt, never searched."""
        index = cls(config, embedder)
        index._snap = Snapshot.load(storage.current_generation(index.root), config)
        manifest = index._snap.manifest
        if manifest is not None:
            reason = manifest.mismatch(config.embedding_model, config.chunker_signature())
            if reason:
                log.warning("Index at %s %s; rebuilding it.", index.root, reason)
                index.rebuild(reason)
        return index

    def refresh(self) -> bool:
        """Pick up a generation written by another process (e.g. `rag index` while the UI runs)."""
        gen = storage.current_generation(self.root)
        current = self._snap.generation
        if gen is not None and (current is None or gen.resolve() != current.resolve()):
            self._snap = Snapshot.load(gen, self.config)
            return True
        return False

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: `rag index` with nothing to do and `rag info` never pay for the model."""
        if self._embedder is None:
            self._embedder = Embedder.from_config(self.config)
        return self._embedder

    # -- reading ---------------------------------------------------------------------------------------------
    @property
    def snapshot(self) -> Snapshot:
        """The generation in use; read it once per operation, as `refresh` and updates replace it whole."""
        return self._snap

    @property
    def chunks(self) -> list[Chunk]:
        return self._snap.chunks

    @property
    def manifest(self) -> Manifest | None:
        return self._snap.manifest

    def __len__(self) -> int:
        return len(self._snap.chunks)

    def document_text(self, source: str) -> str:
        return self._snap.texts[source]

    def documents(self) -> list[DocumentRecord]:
        return list(self._snap.manifest.documents.values()) if self._snap.manifest else []

    def searcher(self, config: SearchConfig) -> Searcher:
        """A searcher over this index (it follows `refresh` and updates) with mode and fusion from `config`."""
        return Searcher(self, config)

    def info(self) -> IndexInfo:
        snap = self._snap
        m = snap.manifest
        if m is None:
            raise FileNotFoundError(f"No index at {self.root}; run `rag index` to build it.")
        return IndexInfo(str(self.root), list(m.documents.values()), m.chunk_count, m.embedding_model, m.dimension,
                         m.chunker, m.index_type, m.format_version, storage.folder_size(snap.generation), m.built_at)

    # -- writing ---------------------------------------------------------------------------------------------
    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=600)

    def _writer(self) -> IndexWriter:
        return IndexWriter(self.root, self.config, lambda: self.embedder)

    def update(self, paths: Iterable[Path | str] | None = None, titles: dict[str, str] | None = None,
               remove: Iterable[Path | str] = (), progress: bool = True,
               on_embedded: Callable[[int, int], None] | None = None) -> UpdateReport:
        """Make the index match the files under its roots plus `paths`, without those under `remove` (which are
        no longer followed); embed only what changed. `progress` shows a terminal bar; `on_embedded(done,
        total)` reports the same to a caller (e.g. a UI)."""
        started = time.perf_counter()
        with self._lock():
            self.refresh()
            snap = self._snap
            m = snap.manifest
            plan = plan_update(m.documents if m else {}, m.roots if m else [], m.title_overrides if m else {},
                               probe=DiskProbe(), add=list(paths or []), remove=list(remove), titles=titles)
            new, report = self._writer().apply(snap, plan, progress, on_embedded)
            if new is not None:
                self._snap = new
        report.seconds = time.perf_counter() - started
        return report

    def rebuild(self, reason: str = "requested", progress: bool = True) -> UpdateReport:
        """Re-chunk and re-embed every stored document (their text is kept in the index, so nothing is lost)."""
        started = time.perf_counter()
        with self._lock():
            self._snap, report = self._writer().rebuild(self._snap, reason, progress)
        report.seconds = time.perf_counter() - started
        return report
