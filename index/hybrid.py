"""The persisted hybrid index: sync documents in, search chunks out.

`HybridIndex` is the facade over the modules that do the work: `index.planner` decides what an update must do
(unchanged documents are recognised by SHA-256 and keep their stored vectors), `index.writer` chunks, embeds and
commits it as a new generation (`index.storage`: readers never see a half-written index), `index.snapshot`
loads and verifies a generation and `index.search` searches it.

Recovery and checks (all of them end in a message for the user, never a traceback):

- A damaged `CURRENT` pointer (missing while generations exist, empty, garbage, not UTF-8, naming a folder that
  is gone) is not an empty index: opening recovers the newest generation that verifies, says so (a logged
  warning and `recovered`, which the CLI prints) and rewrites the pointer. Before this, a lost pointer made
  `rag ask` seed an essay-only index and prune the generation that held the user's files.
- A damaged generation is never served: `open` and `refresh` raise `IndexDamagedError` naming each damaged file,
  what is wrong and the fix. `check` verifies everything without raising (`rag index --check`); `repair` writes a
  new generation from the stored texts (verified by SHA-256), reusing intact vectors, and takes a damaged text
  from another generation or the source file (`rag index --repair`), never dropping a document a good
  generation holds.
- Writers wait for each other through a lock that names its holder; a waiting writer says whom it waits for
  (`on_wait`) and gives up after `IndexConfig.lock_timeout_s`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from index import storage
from index.chunking import Chunk
from index.config import IndexConfig, SearchConfig
from index.documents import DocumentError, load_document, sha256_of_file
from index.embedding import Embedder
from index.errors import REPAIR, Damage, IndexDamagedError, IndexStoreError
from index.manifest import FORMAT_VERSION, MANIFEST, DocumentRecord, Manifest
from index.planner import DiskProbe, plan_update
from index.search import Searcher
from index.snapshot import (Inspection, Snapshot, StoredDocument, inspect, known_sources, salvage_documents,
                            salvage_vectors)
from index.writer import Carried, IndexWriter, UpdateReport, prune_generations

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
    generation: str = ""
    recovered: str | None = None


@dataclass
class CheckReport:
    """What `rag index --check` found: every problem (file, what is wrong, fix) and what is fine."""

    root: str
    current: str | None = None
    problems: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def _lacking(found: Inspection, manifest: Manifest) -> set[str] | None:
    """Documents a generation holds that `manifest` neither holds nor records as removed on purpose (None when
    what it holds cannot be told)."""
    sources = known_sources(found)
    return None if sources is None else sources - set(manifest.documents) - set(manifest.dropped)


class SnapshotReads:
    """The read accessors both backends share (`HybridIndex`, `index.pg.store.PostgresIndex`): each keeps the
    generation in use in `_snap` (with `chunks` and `manifest`) and its embedding model in `_embedder`."""

    config: IndexConfig
    _embedder: Embedder | None

    @property
    def embedder(self) -> Embedder:
        """Loaded on first use: `rag index` with nothing to do and `rag info` never pay for the model."""
        if self._embedder is None:
            self._embedder = Embedder.from_config(self.config)
        return self._embedder

    @property
    def snapshot(self):
        """The generation in use; read it once per operation, as `refresh` and updates replace it whole."""
        return self._snap

    @property
    def chunks(self) -> list[Chunk]:
        return self._snap.chunks

    @property
    def manifest(self) -> Manifest | None:
        return self._snap.manifest

    def documents(self) -> list[DocumentRecord]:
        return list(self._snap.manifest.documents.values()) if self._snap.manifest else []

    def _rebuild_if_built_otherwise(self, where: str) -> None:
        """On open: an index built with another model or chunker is rebuilt from its stored texts, never
        searched."""
        manifest = self._snap.manifest
        reason = manifest.mismatch(self.config.embedding_model, self.config.chunker_signature()) if manifest \
            else None
        if reason:
            log.warning("Index at %s %s; rebuilding it.", where, reason)
            self.rebuild(reason)


class HybridIndex(SnapshotReads):
    """Dense (FAISS) + lexical (BM25) search over chunks with exact source offsets.

    `on_wait(message)` is told when an update has to wait for another process's lock (default: a logged
    warning). `recovered` says what opening did about a damaged pointer (None when nothing was wrong)."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.root = Path(config.dir).expanduser()
        self._embedder = embedder
        self._snap = Snapshot.empty()
        self.on_wait = on_wait or (lambda message: log.warning("%s", message))
        self.recovered: str | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, config: IndexConfig, embedder: Embedder | None = None,
             on_wait: Callable[[str], None] | None = None) -> "HybridIndex":
        """Load and verify the current generation; an index built with other settings is rebuilt, never
        searched. Raises `IndexDamagedError` for damage and `IndexDirError` for an unusable directory."""
        index = cls(config, embedder, on_wait)
        storage.check_root(index.root, write=False)
        index._snap = Snapshot.load(index._current(), config)
        index._rebuild_if_built_otherwise(str(index.root))
        return index

    def refresh(self) -> bool:
        """Pick up a generation written by another process (e.g. `rag index` while the UI runs). Verifies it
        before use: raises `IndexDamagedError` rather than serve damage."""
        if self._snap.generation is None:
            storage.check_root(self.root, write=False)
        gen, problem = storage.read_pointer(self.root)
        if problem is not None:
            loaded = self._snap.generation
            newest = storage.list_generations(self.root)[:1]
            if loaded is not None and newest and newest[0] == loaded:  # still the newest: keep serving it
                self._rewrite_pointer(loaded)
                return False
            gen = self._recover(problem)
        current = self._snap.generation
        if gen is not None and (current is None or gen.resolve() != current.resolve()):
            self._snap = Snapshot.load(gen, self.config)
            return True
        return False

    def has_generations(self) -> bool:
        """Whether anything was ever published here (an index with no manifest and no generation is new)."""
        return bool(storage.list_generations(self.root))

    def _current(self) -> Path | None:
        gen, problem = storage.read_pointer(self.root)
        return gen if problem is None else self._recover(problem)

    def _recover(self, problem: str) -> Path:
        """The newest generation that verifies, when the pointer cannot be followed; the pointer is rewritten
        to name it (when no writer holds the lock: a writer will write the pointer itself)."""
        pointer = self.root / storage.POINTER
        skipped: list[Inspection] = []
        for gen in storage.list_generations(self.root):
            found = inspect(gen)
            if found.ok or (found.legacy and found.manifest is not None):
                break
            skipped.append(found)
        else:
            damages = [Damage(str(pointer), problem)] + [d for f in skipped[:1] for d in f.damages]
            raise IndexDamagedError.of(damages, root=self.root)
        message = f"recovered generation {gen.name}: the pointer {pointer} {problem}"
        if skipped:
            message += (f"; newer generation(s) {', '.join(f.generation.name for f in skipped)} are damaged and may "
                        f"hold newer documents: run `{REPAIR}`")
        log.warning("Index at %s: %s.", self.root, message, extra={"index_recovered": True})
        self.recovered = message
        self._rewrite_pointer(gen)
        return gen

    def _rewrite_pointer(self, gen: Path) -> None:
        with storage.try_index_lock(self.root) as held:
            if held and storage.read_pointer(self.root)[1] is not None:
                storage.write_pointer(self.root, gen)

    # -- reading ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._snap.chunks)

    def document_text(self, source: str) -> str:
        return self._snap.texts[source]

    def searcher(self, config: SearchConfig) -> Searcher:
        """A searcher over this index (it follows `refresh` and updates) with mode and fusion from `config`."""
        return Searcher(self, config)

    def info(self) -> IndexInfo:
        snap = self._snap
        m = snap.manifest
        if m is None:
            raise FileNotFoundError(f"No index at {self.root}; run `rag index` to build it.")
        return IndexInfo(str(self.root), list(m.documents.values()), m.chunk_count, m.embedding_model, m.dimension,
                         m.chunker, m.index_type, m.format_version, storage.folder_size(snap.generation), m.built_at,
                         snap.generation.name, self.recovered)

    # -- writing ---------------------------------------------------------------------------------------------
    def _lock(self):
        return storage.index_lock(self.root, self.config.lock_timeout_s, self.on_wait)

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
            if m is None and self.has_generations():  # never build over generations that could not be read
                self._snap = snap = Snapshot.load(self._current(), self.config)
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
            if self._snap.manifest is None and self.has_generations():
                self._snap = Snapshot.load(self._current(), self.config)
            self._snap, report = self._writer().rebuild(self._snap, reason, progress)
        report.seconds = time.perf_counter() - started
        return report

    # -- checking and repairing ------------------------------------------------------------------------------
    def _inspect_all(self) -> dict[Path, Inspection]:
        """Every generation verified, newest first, including what only parsing finds (counts, texts)."""
        found = {}
        for gen in storage.list_generations(self.root):
            insp = inspect(gen)
            if insp.ok:
                try:
                    Snapshot.load(gen, self.config)
                except IndexDamagedError as exc:
                    insp.damages.extend(exc.damages)
            found[gen] = insp
        return found

    def check(self) -> CheckReport:
        """Verify the pointer and every generation (manifest seal, size and SHA-256 of each file, then that
        everything parses and agrees); raises nothing but `IndexDirError`."""
        storage.check_root(self.root, write=False)
        report = CheckReport(str(self.root))
        gen, problem = storage.read_pointer(self.root)
        generations = self._inspect_all()
        if problem is not None:
            report.problems.append(Damage(str(self.root / storage.POINTER), problem,
                                          f"run `{REPAIR}` (any command also recovers the newest generation that "
                                          f"verifies and rewrites the pointer)"))
        elif gen is None:
            report.notes.append(f"no index yet at {self.root}: `rag index` builds it")
        report.current = gen.name if gen is not None else None
        for path, found in generations.items():
            role = "current" if path == gen else "kept"
            if found.legacy:
                report.problems.append(Damage(
                    str(path / MANIFEST), f"was written by index format version {found.manifest.format_version}, "
                    f"which has no checksums (this program writes version {FORMAT_VERSION})",
                    f"run `{REPAIR}` or any `rag index`: it rebuilds the index from the stored texts"))
            elif found.damages and path != gen and gen is not None and generations[gen].ok:
                # an older generation: repair deletes it if the current one holds all its documents
                lacking = _lacking(found, generations[gen].manifest)
                held = "its document list cannot be read" if lacking is None else ", ".join(sorted(lacking)[:3])
                fix = (f"run `{REPAIR}`: it deletes {path.name}, whose documents the current generation holds"
                       if lacking == set() else
                       f"{path.name} is kept because it may hold documents the current index lacks ({held}): index "
                       f"those files again if you have them, then delete {path} by hand")
                report.problems.extend(Damage(d.path, d.problem, fix) for d in found.damages)
            elif found.damages:
                report.problems.extend(found.damages)
            else:
                m = found.manifest
                report.notes.append(f"{path.name} ({role}): verified; documents {len(m.documents)}, chunks "
                                    f"{m.chunk_count}, files checked by size and SHA-256 {len(m.files) + 1}")
        staging = list(self.root.glob(".staging-*")) if self.root.is_dir() else []
        if staging:
            report.notes.append(f"{len(staging)} unfinished build folder(s) from an interrupted run; the next "
                                f"update removes them")
        return report

    def repair(self, progress: bool = True) -> UpdateReport:
        """Write a new, verified generation holding every document of the newest generation (the one the
        pointer names, else the newest on disk).

        Each document's text comes from the first of: its stored text in that generation, the same text (same
        SHA-256) in another generation, the source file when its bytes still match the record, the newest other
        stored version, the source file as it is now. Chunks and vectors are reused when they verified and the
        settings match; otherwise the text is re-chunked and re-embedded. A document none of these can restore
        is listed in `report.lost`, and the generation that holds it is kept. Old damaged generations whose
        documents are all in the new one are deleted; the newest older one that verifies is kept."""
        started = time.perf_counter()
        report = UpdateReport(rebuilt="repair")
        with self._lock():
            generations = self._inspect_all()
            if not generations:
                raise IndexStoreError(f"There is no index at {self.root} to repair. Fix: run `rag index` to build it.")
            pointed, problem = storage.read_pointer(self.root)
            base = pointed if pointed is not None else next(iter(generations))
            if problem is not None:
                report.notes.append(f"the pointer {self.root / storage.POINTER} {problem}; using {base.name}, the "
                                    f"newest generation")
            if generations[base].ok and problem is None:  # the current generation is sound: no need to rewrite it
                report.rebuilt = None
                self._snap = Snapshot.load(base, self.config)
                report.chunk_count = len(self._snap.chunks)
                damaged = [g for g, f in generations.items() if not f.ok]
                deleted = prune_generations(self.root, base, self._snap.manifest) if damaged else []
                for gen in deleted:
                    report.notes.append(f"deleted the damaged generation {gen.name}: {base.name} holds all its "
                                        f"documents")
                for gen in damaged:
                    if gen not in deleted:
                        report.notes.append(f"kept the damaged generation {gen.name}: it may hold documents "
                                            f"{base.name} lacks (see `rag index --check`)")
                        report.lost.extend(sorted(_lacking(generations[gen], self._snap.manifest) or [gen.name]))
                if not damaged:
                    report.notes.append(f"nothing to repair: {base.name} and every kept generation verify")
                report.seconds = time.perf_counter() - started
                return report
            for found in generations.values():
                for d in found.damages:
                    report.notes.append(f"{d.path} {d.problem}")
            if generations[base].legacy:  # an older format: rebuild from its stored texts, as opening would
                self._snap = Snapshot.load(base, self.config)
                self._snap, rebuilt = self._writer().rebuild(self._snap, "repair of an older index format", progress)
                rebuilt.notes = report.notes + rebuilt.notes
                rebuilt.seconds = time.perf_counter() - started
                return rebuilt
            records, roots, overrides, dropped = self._repair_target(base, generations, report)
            documents = self._repair_texts(base, records, generations, report)
            self._snap = self._writer().repair(documents, roots, overrides, dropped, report, progress)
        report.seconds = time.perf_counter() - started
        return report

    def _repair_target(self, base: Path, generations: dict[Path, Inspection], report: UpdateReport
                       ) -> tuple[dict[str, DocumentRecord], list[str], dict[str, str], dict[str, str]]:
        """The documents the repaired index must hold, with the roots, title overrides and removals to keep."""
        found = generations[base]
        if found.manifest is not None:
            m = found.manifest
            return dict(m.documents), list(m.roots), dict(m.title_overrides), dict(m.dropped)
        # The manifest cannot be trusted: the documents are those written beside their texts in this generation,
        # plus those of the newest older manifest that were not removed on purpose (never fewer than before).
        older = next((f.manifest for g, f in generations.items() if g != base and f.manifest is not None), None)
        records: dict[str, DocumentRecord] = {}
        roots, overrides, dropped = ([], {}, {}) if older is None else \
            (list(older.roots), dict(older.title_overrides), dict(older.dropped))
        if older is not None:
            records.update({s: r for s, r in older.documents.items() if s not in older.dropped})
        stored = salvage_documents(base, None)
        records.update({s: d.record for s, d in stored.items()})
        for source in stored:  # keep following a salvaged file that no known root covers
            if not any(source == r or source.startswith(r.rstrip("/") + "/") for r in roots):
                roots.append(source)
        report.notes.append(f"the manifest of {base.name} cannot be trusted; its documents were read from the "
                            f"records stored beside their texts ({len(stored)})"
                            + (f" and from the manifest of an older generation" if older is not None else ""))
        return records, roots, overrides, dropped

    def _repair_texts(self, base: Path, records: dict[str, DocumentRecord], generations: dict[Path, Inspection],
                      report: UpdateReport) -> dict[str, tuple[DocumentRecord, str, Carried | None]]:
        order = [base] + [g for g in generations if g != base]
        stored = {g: salvage_documents(g, generations[g].manifest) for g in order}
        vectors: dict[Path, tuple[list[Chunk], object] | None] = {}
        documents: dict[str, tuple[DocumentRecord, str, Carried | None]] = {}
        for source, record in records.items():
            chosen: StoredDocument | None = None
            if record.text_sha256:
                chosen = next((stored[g][source] for g in order if source in stored[g]
                               and stored[g][source].record.text_sha256 == record.text_sha256), None)
            if chosen is not None:
                documents[source] = (record, chosen.text, self._carry(chosen, generations, vectors))
                continue
            text = self._reread(source, record, match=True)
            if text is not None:
                report.notes.append(f"{source}: stored text damaged; read again from the file (unchanged since)")
                documents[source] = (record, text, None)
                continue
            older = next((stored[g][source] for g in order if source in stored[g]), None)
            if older is not None:
                report.notes.append(f"{source}: stored text damaged; restored the version indexed at "
                                    f"{older.record.indexed_at} from {older.generation.name}")
                documents[source] = (older.record, older.text, self._carry(older, generations, vectors))
                continue
            text = self._reread(source, record, match=False)
            if text is not None:
                report.notes.append(f"{source}: stored text damaged; read again from the file, which has changed "
                                    f"since it was indexed")
                documents[source] = (record, text, None)
                continue
            report.lost.append(source)
            report.errors.append(DocumentError(source, "its stored text is damaged and no generation or file holds "
                                                       "another copy; the damaged generation is kept"))
        return documents

    def _reread(self, source: str, record: DocumentRecord, match: bool) -> str | None:
        """The text of the source file, if it can be loaded (and, with `match`, if its bytes are the indexed ones)."""
        try:
            if match and sha256_of_file(source) != record.sha256:
                return None
            doc = load_document(Path(source), title=record.title, max_bytes=int(self.config.max_file_mb * 1e6))
        except (DocumentError, OSError):
            return None
        return doc.text

    def _carry(self, doc: StoredDocument, generations: dict[Path, Inspection], cache: dict) -> Carried | None:
        """The document's stored chunks and vectors, when its generation's chunks and vectors verified, were
        made with the current settings and still match the text exactly; else None (re-embed)."""
        found = generations[doc.generation]
        m = found.manifest
        if m is None or m.mismatch(self.config.embedding_model, self.config.chunker_signature()):
            return None
        if doc.generation not in cache:
            cache[doc.generation] = salvage_vectors(found)
        stored = cache[doc.generation]
        if stored is None:
            return None
        chunks, vectors = stored
        rows = [i for i, c in enumerate(chunks) if c.source == doc.record.source]
        if len(rows) != doc.record.chunks or any(doc.text[chunks[i].start:chunks[i].end] != chunks[i].text
                                                 for i in rows):
            return None
        return Carried(doc.record, doc.text, [chunks[i] for i in rows], vectors[rows])
