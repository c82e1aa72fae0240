"""Carrying out a plan: load and chunk the changed files, embed their chunks, commit a new generation.

Documents the plan keeps are copied from the previous generation with their stored vectors, row for row, so
only new or edited files are embedded. Every update is written as a new generation (see `index.storage`), so
readers never see a half-written index. A file that cannot be loaded or chunked is reported (`DocumentError`)
and skipped; if it was indexed before, its last good version stays.

Every generation records the size and SHA-256 of each of its files in its manifest, and each stored document
text carries its own SHA-256 and record beside it (`documents.jsonl`), so a reader can verify everything and a
repair can rescue texts even without the manifest (`index.snapshot`).

After publishing, old generations are pruned (`prune_generations`), but never one that holds a document the new
generation lacks unless that document was removed on purpose (`Manifest.dropped`: `--remove`, or its file was
deleted); the newest older generation that verifies is always kept as well, so two complete generations remain.
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
from index.documents import Document, DocumentError, load_document, reread
from index.embedding import Embedder
from index.manifest import MANIFEST, DocumentRecord, FileDigest, Manifest
from index.planner import Plan
from index.snapshot import BM25, CHUNKS, DENSE, DOCUMENTS, VECTORS, Snapshot, inspect, known_sources, text_sha256
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
    notes: list[str] = field(default_factory=list)   # what a repair or recovery did, for the user
    lost: list[str] = field(default_factory=list)    # documents a repair could not restore (their generation stays)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt)

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
                f"{len(self.unchanged)} unchanged, {len(self.errors)} failed; {self.chunks_embedded} chunks "
                f"embedded, {self.chunk_count} chunks in index; {self.seconds:.2f} s")


@dataclass(frozen=True)
class Carried:
    """A document going into the next generation with its stored chunks and vectors (row i is chunks[i])."""

    record: DocumentRecord
    text: str
    chunks: list[Chunk]
    vectors: np.ndarray


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
        dropped = dict(previous.manifest.dropped) if previous.manifest else {}
        dropped.update({s: _now() for s in plan.to_remove})
        snapshot = self._write(changed, carried_from(previous, keep), list(plan.roots), dict(plan.title_overrides),
                               dropped, report, progress, on_embedded, previous.manifest)
        return snapshot, report

    def rebuild(self, previous: Snapshot, reason: str, progress: bool) -> tuple[Snapshot, UpdateReport]:
        """Re-chunk and re-embed every stored document (their text is kept in the index, so nothing is lost)."""
        report = UpdateReport(rebuilt=reason)
        manifest = previous.manifest
        changed: dict[str, tuple[Document, list[Chunk]]] = {}
        max_bytes = int(self.config.max_file_mb * 1e6)
        for source, rec in (manifest.documents if manifest else {}).items():
            text = previous.texts.get(source)
            try:
                if text is None:  # an index of a newer format version: read the file again
                    doc = load_document(Path(source), title=rec.title, max_bytes=max_bytes)
                else:
                    doc = Document(source, rec.title, text, rec.kind, rec.size, rec.sha256)
                    again = reread(doc, manifest.chunker.get("loaders"), max_bytes)
                    if again is not None:
                        doc = again
                        report.notes.append(f"{source}: read again from the file (the {rec.kind} loader has "
                                            "changed since it was indexed)")
                changed[source] = (doc, self.chunker.split(doc))
            except DocumentError as exc:
                log.warning("Dropping %s from the rebuilt index: %s (the previous generation, which holds it, is "
                            "kept)", source, exc.reason)
                report.errors.append(exc)
                continue
            report.updated.append(source)
        roots = list(manifest.roots) if manifest else []
        overrides = dict(manifest.title_overrides) if manifest else {}
        dropped = dict(manifest.dropped) if manifest else {}
        return self._write(changed, {}, roots, overrides, dropped, report, progress, None, manifest), report

    def repair(self, documents: dict[str, tuple[DocumentRecord, str, Carried | None]], roots: list[str],
               overrides: dict[str, str], dropped: dict[str, str], report: UpdateReport,
               progress: bool) -> Snapshot:
        """Write a generation of `documents` (record, verified text, and its chunks and vectors when they are
        intact): documents without intact vectors are re-chunked and re-embedded, the rest are copied."""
        changed: dict[str, tuple[Document, list[Chunk]]] = {}
        carried: dict[str, Carried] = {}
        for source, (rec, text, kept) in documents.items():
            if kept is not None:
                carried[source] = kept
                continue
            doc = Document(source, rec.title, text, rec.kind, rec.size, rec.sha256)
            try:
                changed[source] = (doc, self.chunker.split(doc))
            except DocumentError as exc:
                report.errors.append(exc)
                report.lost.append(source)
                continue
            report.updated.append(source)
        report.unchanged.extend(carried)
        return self._write(changed, carried, roots, overrides, dropped, report, progress, None, None)

    def _embed(self, chunks: list[Chunk], progress: bool,
               on_embedded: Callable[[int, int], None] | None) -> np.ndarray:
        embedder = self.embedder()
        with tqdm(total=len(chunks), desc="Embedding chunks", unit="chunk", disable=not progress) as bar:
            def on_batch(n: int) -> None:
                bar.update(n)
                if on_embedded:
                    on_embedded(bar.n, len(chunks))

            return embedder.embed([embedding_text(c, self.config.embed_headings) for c in chunks], on_batch=on_batch)

    def _write(self, changed: dict[str, tuple[Document, list[Chunk]]], carried: dict[str, Carried],
               roots: list[str], overrides: dict[str, str], dropped: dict[str, str], report: UpdateReport,
               progress: bool, on_embedded: Callable[[int, int], None] | None,
               previous: Manifest | None) -> Snapshot:
        """Embed the changed documents' chunks, reuse the carried documents' rows, and commit the result."""
        to_embed = [c for _, chunks in changed.values() for c in chunks]
        if carried:
            dim = next(iter(carried.values())).vectors.shape[1]
        elif not to_embed and previous is not None and previous.embedding_model == self.config.embedding_model:
            dim = previous.dimension  # an index emptied by removals: no need to load the model for its width
        else:
            dim = self.embedder().dimension
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
        for source in sorted(set(carried) | set(changed)):
            if source in changed:
                doc, chunks = changed[source]
                a, b = new_rows[source]
                all_chunks.extend(chunks)
                parts.append(vectors_new[a:b])
                texts[source] = doc.text
                records[source] = DocumentRecord(source=source, title=doc.title, kind=doc.kind, size=doc.size,
                                                 sha256=doc.sha256, chunks=b - a, indexed_at=_now())
            else:
                kept = carried[source]
                all_chunks.extend(kept.chunks)
                parts.append(np.asarray(kept.vectors, dtype=np.float32).reshape(-1, dim))
                texts[source] = kept.text
                records[source] = kept.record
        vectors = np.vstack(parts) if parts else np.zeros((0, dim), dtype=np.float32)
        dropped = {s: when for s, when in dropped.items() if s not in records}

        snapshot = write_generation(self.root, self.config, all_chunks, vectors, texts, records, roots, overrides,
                                    dropped)
        report.chunk_count = len(all_chunks)
        return snapshot


def carried_from(previous: Snapshot, keep: dict[str, DocumentRecord]) -> dict[str, Carried]:
    """The kept documents of `previous` with their stored chunks and vectors."""
    if not keep:
        return {}
    vectors = previous.vectors()
    rows: dict[str, list[int]] = {}
    for row, chunk in enumerate(previous.chunks):
        rows.setdefault(chunk.source, []).append(row)
    carried = {}
    for source, record in keep.items():
        mine = rows.get(source, [])
        carried[source] = Carried(record, previous.texts[source], [previous.chunks[r] for r in mine],
                                  np.asarray(vectors[mine], dtype=np.float32))
    return carried


def write_generation(root: Path, config: IndexConfig, chunks: list[Chunk], vectors: np.ndarray,
                     texts: dict[str, str], records: dict[str, DocumentRecord], roots: list[str],
                     overrides: dict[str, str], dropped: dict[str, str] | None = None) -> Snapshot:
    """Build both stores over final chunks and vectors (row i of `vectors` is `chunks[i]`) and publish them as
    a new generation of the index in `root`, with the checksums of every file; returns it loaded."""
    dense = DenseStore.build(vectors, config)
    lexical = LexicalStore.build([embedding_text(c, config.embed_headings) for c in chunks])
    records = {s: r.model_copy(update={"text_sha256": text_sha256(texts[s])}) for s, r in records.items()}

    staging = storage.new_generation_dir(root)
    try:
        storage.write_jsonl(staging / CHUNKS, (c.to_dict() for c in chunks))
        storage.write_jsonl(staging / DOCUMENTS, ({"source": s, "text": t, "record": records[s].model_dump()}
                                                  for s, t in texts.items()))
        np.save(staging / VECTORS, vectors)
        dense.save(staging / DENSE)
        lexical.save(staging / BM25)
        files = {rel: FileDigest(size=size, sha256=sha)
                 for rel in storage.generation_files(staging)
                 for size, sha in [storage.sha256_file(staging / rel)]}
        manifest = Manifest(embedding_model=config.embedding_model, dimension=vectors.shape[1],
                            chunker=config.chunker_signature(), index_type=dense.kind, chunk_count=len(chunks),
                            roots=roots, documents=records, title_overrides=overrides, built_at=_now(),
                            files=files, dropped=dict(dropped or {})).sealed()
        (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2), "utf-8")
        generation = storage.commit_generation(root, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    prune_generations(root, generation, manifest)
    return Snapshot(generation, manifest, chunks, texts, dense, lexical)


def prune_generations(root: Path, current: Path, manifest: Manifest) -> list[Path]:
    """Delete abandoned staging folders and old generations, keeping the current one, the newest other one that
    verifies (the fallback), and any that holds a document `manifest` neither has nor records as removed on
    purpose, or whose documents cannot be told. Call while holding the index lock. Returns what was deleted."""
    storage.remove_staging(root)
    accounted = set(manifest.documents) | set(manifest.dropped)
    fallback: Path | None = None
    deleted = []
    for gen in storage.list_generations(root):
        if gen == current:
            continue
        found = inspect(gen)
        if fallback is None and found.ok:
            fallback = gen
            continue
        sources = known_sources(found)
        if sources is None:
            log.warning("Keeping %s: what it holds cannot be read, so it may hold documents the index lacks "
                        "(`rag index --check` says more).", gen)
            continue
        if not sources <= accounted:
            log.warning("Keeping %s: it holds %d document(s) the current index lacks (%s).", gen,
                        len(sources - accounted), ", ".join(sorted(sources - accounted)[:3]))
            continue
        storage.remove_generation(gen)
        deleted.append(gen)
    return deleted
