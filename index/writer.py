"""Carrying out a plan: load and chunk the changed files, embed their chunks, commit a new generation.

Documents the plan keeps are copied from the previous generation with their stored vectors, row for row, so
only new or edited files are embedded. Every update is written as a new generation (see `index.storage`), so
readers never see a half-written index. A file that cannot be loaded or chunked is reported (`DocumentError`)
and skipped; if it was indexed before, its last good version stays.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from index import storage
from index.chunking import Chunk, Chunker, embedding_text
from index.config import IndexConfig
from index.documents import Document, DocumentError, load_document
from index.embedding import Embedder
from index.manifest import DocumentRecord, Manifest
from index.planner import Plan
from index.snapshot import Snapshot
from index.stores import DenseStore, LexicalStore

log = logging.getLogger(__name__)


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


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class IndexWriter:
    """Writes new generations of the index in `root`. `embedder` is called only when vectors are needed, so an
    update that embeds nothing never loads the model."""

    def __init__(self, root: Path, config: IndexConfig, embedder: Callable[[], Embedder]) -> None:
        self.root = root
        self.config = config
        self.embedder = embedder
        self.chunker = Chunker.from_config(config)

    def apply(self, previous: Snapshot, plan: Plan, progress: bool,
              on_embedded: Callable[[int, int], None] | None = None) -> tuple[Snapshot | None, UpdateReport]:
        """Carry out `plan` on top of `previous`. Returns the new snapshot, or None when nothing had to be
        written (then the report says what was checked)."""
        report = UpdateReport(unchanged=list(plan.unchanged), removed=list(plan.to_remove), errors=list(plan.errors))
        records = previous.manifest.documents if previous.manifest else {}
        keep = {s: records[s] for s in plan.carried}
        max_bytes = int(self.config.max_file_mb * 1e6)
        changed: dict[str, tuple[Document, list[Chunk]]] = {}
        for source in plan.to_load:
            try:
                doc = load_document(Path(source), title=plan.title_overrides.get(source), max_bytes=max_bytes)
                changed[source] = (doc, self.chunker.split(doc))
            except (DocumentError, OSError) as exc:
                if not isinstance(exc, DocumentError):
                    exc = DocumentError(source, f"cannot be read ({exc.strerror or exc})")
                report.errors.append(exc)
                if source in records:  # a file that turns bad keeps its last good version
                    keep[source] = records[source]
                continue
            (report.updated if source in records else report.added).append(source)

        if previous.manifest is not None and not report.changed and not plan.roots_changed:
            report.chunk_count = previous.manifest.chunk_count
            return None, report
        snapshot = self._write(previous, changed, keep, list(plan.roots), dict(plan.title_overrides), report,
                               progress, on_embedded)
        return snapshot, report

    def rebuild(self, previous: Snapshot, reason: str, progress: bool) -> tuple[Snapshot, UpdateReport]:
        """Re-chunk and re-embed every stored document (their text is kept in the index, so nothing is lost)."""
        report = UpdateReport(rebuilt=reason)
        manifest = previous.manifest
        changed: dict[str, tuple[Document, list[Chunk]]] = {}
        for source, rec in (manifest.documents if manifest else {}).items():
            text = previous.texts.get(source)
            try:
                if text is None:  # an index of another format version: read the file again
                    doc = load_document(Path(source), title=rec.title, max_bytes=int(self.config.max_file_mb * 1e6))
                else:
                    doc = Document(source, rec.title, text, rec.kind, rec.size, rec.sha256)
                changed[source] = (doc, self.chunker.split(doc))
            except DocumentError as exc:
                log.warning("Dropping %s from the rebuilt index: %s", source, exc.reason)
                report.errors.append(exc)
                continue
            report.updated.append(source)
        roots = list(manifest.roots) if manifest else []
        overrides = dict(manifest.title_overrides) if manifest else {}
        return self._write(previous, changed, {}, roots, overrides, report, progress, None), report

    def _embed(self, chunks: list[Chunk], progress: bool,
               on_embedded: Callable[[int, int], None] | None) -> np.ndarray:
        embedder = self.embedder()
        with tqdm(total=len(chunks), desc="Embedding chunks", unit="chunk", disable=not progress) as bar:
            def on_batch(n: int) -> None:
                bar.update(n)
                if on_embedded:
                    on_embedded(bar.n, len(chunks))

            return embedder.embed([embedding_text(c, self.config.embed_headings) for c in chunks], on_batch=on_batch)

    def _write(self, previous: Snapshot, changed: dict[str, tuple[Document, list[Chunk]]],
               keep: dict[str, DocumentRecord], roots: list[str], overrides: dict[str, str], report: UpdateReport,
               progress: bool, on_embedded: Callable[[int, int], None] | None) -> Snapshot:
        """Embed the changed documents' chunks, reuse the kept documents' rows, and commit the result."""
        old_rows: dict[str, list[int]] = {}
        for row, chunk in enumerate(previous.chunks):
            old_rows.setdefault(chunk.source, []).append(row)
        old_vectors = previous.vectors() if keep else None

        to_embed = [c for _, chunks in changed.values() for c in chunks]
        dim = self.embedder().dimension if (to_embed or old_vectors is None) else old_vectors.shape[1]
        vectors_new = np.zeros((0, dim), dtype=np.float32)
        if to_embed:
            vectors_new = self._embed(to_embed, progress, on_embedded)
            report.chunks_embedded = len(to_embed)
        new_rows: dict[str, tuple[int, int]] = {}
        offset = 0
        for source, (_, chunks) in changed.items():
            new_rows[source] = (offset, offset + len(chunks))
            offset += len(chunks)

        all_chunks: list[Chunk] = []
        parts: list[np.ndarray] = []
        texts: dict[str, str] = {}
        records: dict[str, DocumentRecord] = {}
        for source in sorted(set(keep) | set(changed)):
            if source in changed:
                doc, chunks = changed[source]
                a, b = new_rows[source]
                all_chunks.extend(chunks)
                parts.append(vectors_new[a:b])
                texts[source] = doc.text
                records[source] = DocumentRecord(source=source, title=doc.title, kind=doc.kind, size=doc.size,
                                                 sha256=doc.sha256, chunks=b - a, indexed_at=_now())
            else:
                rows = old_rows.get(source, [])
                all_chunks.extend(previous.chunks[r] for r in rows)
                parts.append(np.asarray(old_vectors[rows], dtype=np.float32) if rows
                             else np.zeros((0, dim), dtype=np.float32))
                texts[source] = previous.texts[source]
                records[source] = keep[source]
        vectors = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)

        snapshot = write_generation(self.root, self.config, all_chunks, vectors, texts, records, roots, overrides)
        report.chunk_count = len(all_chunks)
        return snapshot


def write_generation(root: Path, config: IndexConfig, chunks: list[Chunk], vectors: np.ndarray,
                     texts: dict[str, str], records: dict[str, DocumentRecord], roots: list[str],
                     overrides: dict[str, str]) -> Snapshot:
    """Build both stores over final chunks and vectors (row i of `vectors` is `chunks[i]`) and publish them as
    a new generation of the index in `root`; returns it loaded."""
    dense = DenseStore.build(vectors, config)
    lexical = LexicalStore.build([embedding_text(c, config.embed_headings) for c in chunks])
    manifest = Manifest(embedding_model=config.embedding_model, dimension=vectors.shape[1],
                        chunker=config.chunker_signature(), index_type=dense.kind, chunk_count=len(chunks),
                        roots=roots, documents=records, title_overrides=overrides, built_at=_now())

    staging = storage.new_generation_dir(root)
    try:
        storage.write_jsonl(staging / "chunks.jsonl", (c.to_dict() for c in chunks))
        storage.write_jsonl(staging / "documents.jsonl", ({"source": s, "text": t} for s, t in texts.items()))
        np.save(staging / "embeddings.npy", vectors)
        dense.save(staging / "dense.faiss")
        lexical.save(staging / "bm25")
        (staging / "manifest.json").write_text(manifest.model_dump_json(indent=2), "utf-8")
        generation = storage.commit_generation(root, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    storage.prune(root)
    return Snapshot(generation, manifest, chunks, texts, dense, lexical)
