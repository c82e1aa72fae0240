"""The persisted hybrid index: sync documents in, search chunks out.

`update()` does the least work that makes the index match the files: unchanged documents are recognised by
SHA-256 and keep their stored vectors, so only new or edited files are embedded. Every update is written as a
new generation (see `index.storage`), so readers never see a half-written index.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from filelock import FileLock
from tqdm.auto import tqdm

from index import storage
from index.chunking import Chunk, Chunker, embedding_text
from index.config import IndexConfig
from index.documents import Document, DocumentError, discover_files, load_document, sha256_of_file
from index.embedding import Embedder
from index.manifest import FORMAT_VERSION, DocumentRecord, Manifest
from index.stores import DenseStore, LexicalStore, convex_fusion, reciprocal_rank_fusion

log = logging.getLogger(__name__)

SearchMode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60


@dataclass(frozen=True)
class SearchHit:
    chunk: Chunk
    score: float
    rank: int
    dense_score: float | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    bm25_rank: int | None = None


@dataclass
class UpdateReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    chunks_embedded: int = 0
    chunk_count: int = 0
    seconds: float = 0.0
    rebuilt: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{len(self.unchanged)} unchanged, {len(self.errors)} failed; {self.chunks_embedded} chunks "
                f"embedded, {self.chunk_count} chunks in index; {self.seconds:.2f} s")


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


@dataclass(frozen=True)
class _Snapshot:
    """Everything a search needs, swapped in one assignment so concurrent readers see a consistent index."""

    generation: Path | None
    manifest: Manifest | None
    chunks: list[Chunk]
    texts: dict[str, str]
    dense: DenseStore | None
    lexical: LexicalStore | None


class IndexMismatchError(RuntimeError):
    pass


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class HybridIndex:
    """Dense (FAISS) + lexical (BM25) search over chunks with exact source offsets."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None) -> None:
        self.config = config
        self.root = Path(config.dir).expanduser()
        self._embedder = embedder
        self._snap = _Snapshot(None, None, [], {}, None, None)

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: IndexConfig, embedder: Embedder | None = None, rebuild_on_mismatch: bool = True) -> "HybridIndex":
        """Load the current generation; an index built with other settings is rebuilt, never searched."""
        index = cls(config, embedder)
        index._load()
        manifest = index._snap.manifest
        if manifest is not None:
            reason = manifest.mismatch(config.embedding_model, config.chunker_signature())
            if reason:
                if not rebuild_on_mismatch:
                    raise IndexMismatchError(f"Index at {index.root} does not match the settings: {reason}")
                log.warning("Index at %s %s; rebuilding it.", index.root, reason)
                index.rebuild(reason)
        return index

    def _load(self) -> None:
        gen = storage.current_generation(self.root)
        if gen is None:
            self._snap = _Snapshot(None, None, [], {}, None, None)
            return
        manifest = Manifest.model_validate_json((gen / "manifest.json").read_text(encoding="utf-8"))
        if manifest.format_version != FORMAT_VERSION:
            # Unknown layout: keep only the manifest so open() can report it and rebuild from the files.
            self._snap = _Snapshot(gen, manifest, [], {}, None, None)
            return
        chunks = [Chunk.from_dict(row) for row in storage.read_jsonl(gen / "chunks.jsonl")]
        texts = {row["source"]: row["text"] for row in storage.read_jsonl(gen / "documents.jsonl")}
        dense = DenseStore.load(gen / "dense.faiss", self.config.hnsw_ef_search)
        lexical = LexicalStore.load(gen / "bm25", len(chunks))
        self._snap = _Snapshot(gen, manifest, chunks, texts, dense, lexical)

    def refresh(self) -> bool:
        """Pick up a generation written by another process (e.g. `rag index` while the UI runs)."""
        gen = storage.current_generation(self.root)
        if gen is not None and (self._snap.generation is None or gen.resolve() != self._snap.generation.resolve()):
            self._load()
            return True
        return False

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: `rag index` with nothing to do and `rag info` never pay for the model."""
        if self._embedder is None:
            self._embedder = Embedder(self.config.embedding_model, self.config.batch_size)
        return self._embedder

    # -- reading ---------------------------------------------------------------------------------------------
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

    def search(self, query: str, k: int = 10, mode: SearchMode = "hybrid", candidates: int | None = None,
               weights: tuple[float, float] = (1.0, 1.0), rrf_k: int = RRF_K,
               fusion: Literal["rrf", "convex"] = "rrf") -> list[SearchHit]:
        """Ranked chunks. Hybrid fuses the dense and BM25 results (`candidates` each) with `weights` =
        (dense, bm25): by reciprocal rank ("rrf"), or by a weighted sum of min-max normalised scores ("convex"),
        which keeps how far ahead a result is, not only its place."""
        snap = self._snap
        if not snap.chunks or not query.strip():
            return []
        pool = max(k, candidates or 50)
        dense_ids = dense_scores = bm25_ids = bm25_scores = np.zeros(0)
        if mode in ("hybrid", "dense"):
            dense_ids, dense_scores = snap.dense.search(self.embedder.embed_query(query), pool if mode == "hybrid" else k)
        if mode in ("hybrid", "bm25"):
            bm25_ids, bm25_scores = snap.lexical.search(query, pool if mode == "hybrid" else k)
        d_rank = {int(i): r for r, i in enumerate(dense_ids)}
        d_score = {int(i): float(s) for i, s in zip(dense_ids, dense_scores)}
        b_rank = {int(i): r for r, i in enumerate(bm25_ids)}
        b_score = {int(i): float(s) for i, s in zip(bm25_ids, bm25_scores)}
        if mode == "dense":
            order = [(int(i), float(s)) for i, s in zip(dense_ids, dense_scores)]
        elif mode == "bm25":
            order = [(int(i), float(s)) for i, s in zip(bm25_ids, bm25_scores)]
        else:
            if fusion == "convex":
                fused = convex_fusion([d_score, b_score], list(weights))
            else:
                fused = reciprocal_rank_fusion([list(d_rank), list(b_rank)], k=rrf_k, weights=list(weights))
            order = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        hits = []
        for rank, (row, score) in enumerate(order[:k]):
            hits.append(SearchHit(snap.chunks[row], score, rank, d_score.get(row), b_score.get(row),
                                  d_rank.get(row), b_rank.get(row)))
        return hits

    def info(self) -> IndexInfo:
        m = self._snap.manifest
        if m is None:
            raise FileNotFoundError(f"No index at {self.root}; run `rag index` to build it.")
        return IndexInfo(str(self.root), list(m.documents.values()), m.chunk_count, m.embedding_model, m.dimension,
                         m.chunker, m.index_type, m.format_version, storage.folder_size(self._snap.generation),
                         m.built_at)

    # -- writing ---------------------------------------------------------------------------------------------
    def _lock(self) -> FileLock:
        self.root.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.root / ".lock"), timeout=600)

    def update(self, paths: Iterable[Path | str] | None = None, titles: dict[str, str] | None = None,
               remove: Iterable[Path | str] = (), progress: bool = True,
               on_embedded: Callable[[int, int], None] | None = None) -> UpdateReport:
        """Make the index match the files under its roots plus `paths`; embed only what changed.
        `progress` shows a terminal bar; `on_embedded(done, total)` reports the same to a caller (e.g. a UI)."""
        started = time.perf_counter()
        with self._lock():
            self.refresh()
            report = self._update_locked(list(paths or []), titles or {}, list(remove), progress, on_embedded)
        report.seconds = time.perf_counter() - started
        return report

    def rebuild(self, reason: str = "requested", progress: bool = True) -> UpdateReport:
        """Re-chunk and re-embed every stored document (their text is kept in the index, so nothing is lost)."""
        started = time.perf_counter()
        with self._lock():
            old = self._snap
            docs = []
            texts = old.texts
            records = old.manifest.documents if old.manifest else {}
            for source, rec in records.items():
                text = texts.get(source)
                if text is None:
                    try:
                        doc = load_document(Path(source), title=rec.title)
                    except DocumentError as exc:
                        log.warning("Dropping %s from the rebuilt index: %s", source, exc.reason)
                        continue
                else:
                    doc = Document(source, rec.title, text, rec.kind, rec.size, rec.sha256)
                docs.append(doc)
            roots = old.manifest.roots if old.manifest else []
            overrides = dict(old.manifest.title_overrides) if old.manifest else {}
            report = UpdateReport(updated=[d.source for d in docs], rebuilt=reason)
            self._write({d.source: d for d in docs}, {}, roots, overrides, report, progress)
        report.seconds = time.perf_counter() - started
        return report

    def _update_locked(self, paths: list, titles: dict[str, str], remove: list, progress: bool,
                       on_embedded: Callable[[int, int], None] | None = None) -> UpdateReport:
        report = UpdateReport()
        snap = self._snap
        manifest = snap.manifest
        known = dict(manifest.documents) if manifest else {}
        overrides = dict(manifest.title_overrides) if manifest else {}
        overrides.update({str(Path(k).resolve()): v for k, v in titles.items()})
        removed_roots = {str(Path(p).expanduser().resolve()) for p in remove}
        roots = [r for r in (manifest.roots if manifest else []) if r not in removed_roots]
        for p in paths:
            resolved = str(Path(p).expanduser().resolve())
            if resolved not in roots and Path(p).expanduser().exists():
                roots.append(resolved)
        files, errors = discover_files([Path(p) for p in paths])
        report.errors.extend(errors)
        more, _ = discover_files([Path(r) for r in roots if Path(r).exists()])
        candidates = list(dict.fromkeys([str(f) for f in files + more]))
        for source in known:  # files indexed earlier but no longer under a root still get checked
            if source not in candidates and Path(source).exists():
                candidates.append(source)
        removed_sources = {s for s in known if any(s == r or s.startswith(r.rstrip("/") + "/") for r in removed_roots)}

        changed: dict[str, Document] = {}
        keep: dict[str, DocumentRecord] = {}
        max_bytes = int(self.config.max_file_mb * 1e6)
        for source in candidates:
            if source in removed_sources:
                continue
            rec = known.get(source)
            try:
                size = Path(source).stat().st_size
                if rec is not None and size == rec.size and sha256_of_file(source) == rec.sha256 \
                        and rec.title == overrides.get(source, rec.title):
                    keep[source] = rec
                    report.unchanged.append(source)
                    continue
                doc = load_document(Path(source), title=overrides.get(source), max_bytes=max_bytes)
            except DocumentError as exc:
                report.errors.append(exc)
                if rec is not None:  # a file that became unreadable keeps its last good version
                    keep[source] = rec
                continue
            except OSError as exc:
                report.errors.append(DocumentError(source, f"cannot be read ({exc.strerror or exc})"))
                if rec is not None:
                    keep[source] = rec
                continue
            changed[source] = doc
            (report.updated if rec is not None else report.added).append(source)
        for source in known:
            if source not in keep and source not in changed and not any(e.path == source for e in report.errors):
                report.removed.append(source)

        if not report.changed and manifest is not None:
            report.chunk_count = manifest.chunk_count
            roots_changed = roots != manifest.roots
            if not roots_changed:
                return report
        self._write(changed, keep, roots, overrides, report, progress, on_embedded)
        return report

    def _write(self, changed: dict[str, Document], keep: dict[str, DocumentRecord], roots: list[str],
               overrides: dict[str, str], report: UpdateReport, progress: bool,
               on_embedded: Callable[[int, int], None] | None = None) -> None:
        old = self._snap
        chunker = Chunker(self.config.chunk_size, self.config.chunk_overlap, self.config.chunker)
        old_rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(old.chunks):
            old_rows.setdefault(chunk.source, []).append(row)
        old_vectors = None
        if keep and old.generation is not None and (old.generation / "embeddings.npy").exists():
            old_vectors = np.load(old.generation / "embeddings.npy", mmap_mode="r")

        new_chunks: dict[str, list[Chunk]] = {s: chunker.split(d) for s, d in changed.items()}
        to_embed = [c for chunks in new_chunks.values() for c in chunks]
        dim = self.embedder.dimension if (to_embed or old_vectors is None) else old_vectors.shape[1]
        vectors_new = np.zeros((0, dim), dtype=np.float32)
        if to_embed:
            with tqdm(total=len(to_embed), desc="Embedding chunks", unit="chunk", disable=not progress) as bar:
                def on_batch(n: int) -> None:
                    bar.update(n)
                    if on_embedded:
                        on_embedded(bar.n, len(to_embed))

                vectors_new = self.embedder.embed([embedding_text(c, self.config.embed_headings) for c in to_embed],
                                                  on_batch=on_batch)
            report.chunks_embedded = len(to_embed)
        new_rows = {}
        offset = 0
        for source, chunks in new_chunks.items():
            new_rows[source] = (offset, offset + len(chunks))
            offset += len(chunks)

        all_chunks: list[Chunk] = []
        parts: list[np.ndarray] = []
        texts: dict[str, str] = {}
        records: dict[str, DocumentRecord] = {}
        for source in sorted(set(keep) | set(changed)):
            if source in changed:
                a, b = new_rows[source]
                all_chunks.extend(new_chunks[source])
                parts.append(vectors_new[a:b])
                doc = changed[source]
                texts[source] = doc.text
                records[source] = DocumentRecord(source=source, title=doc.title, kind=doc.kind, size=doc.size,
                                                 sha256=doc.sha256, chunks=b - a, indexed_at=_now())
            else:
                rows = old_rows.get(source, [])
                all_chunks.extend(old.chunks[r] for r in rows)
                parts.append(np.asarray(old_vectors[rows], dtype=np.float32) if rows else np.zeros((0, dim), np.float32))
                texts[source] = old.texts[source]
                records[source] = keep[source]
        vectors = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)

        self._commit(all_chunks, vectors, texts, records, roots, overrides)
        report.chunk_count = len(all_chunks)

    def _commit(self, all_chunks: list[Chunk], vectors: np.ndarray, texts: dict[str, str],
                records: dict[str, DocumentRecord], roots: list[str], overrides: dict[str, str]) -> None:
        """Build both stores over final chunks and vectors and publish them as a new generation."""
        dim = vectors.shape[1]
        kind = self.config.index_type
        if kind == "auto":
            kind = "hnsw" if len(all_chunks) >= self.config.ann_threshold else "flat"
        dense = DenseStore.build(vectors, kind, self.config.hnsw_m, self.config.hnsw_ef_construction,
                                 self.config.hnsw_ef_search)
        lexical = LexicalStore.build([embedding_text(c, self.config.embed_headings) for c in all_chunks])
        manifest = Manifest(embedding_model=self.config.embedding_model, dimension=dim,
                            chunker=self.config.chunker_signature(), index_type=kind, chunk_count=len(all_chunks),
                            roots=roots, documents=records, title_overrides=overrides, built_at=_now())

        staging = storage.new_generation_dir(self.root)
        try:
            storage.write_jsonl(staging / "chunks.jsonl", (c.to_dict() for c in all_chunks))
            storage.write_jsonl(staging / "documents.jsonl", ({"source": s, "text": t} for s, t in texts.items()))
            np.save(staging / "embeddings.npy", vectors)
            dense.save(staging / "dense.faiss")
            lexical.save(staging / "bm25")
            (staging / "manifest.json").write_text(manifest.model_dump_json(indent=2), "utf-8")
            generation = storage.commit_generation(self.root, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._snap = _Snapshot(generation, manifest, all_chunks, texts, dense, lexical)
        storage.prune(self.root)

