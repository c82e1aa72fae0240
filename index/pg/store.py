"""`PostgresIndex`: the index in PostgreSQL + pgvector, with the interface of `index.hybrid.HybridIndex`.

Several processes (N `rag chat` replicas, `rag index`) share one index: every write commits in the database,
`refresh()` reads one row (`state.generation`, ~0.2 ms on a Unix socket) and reloads the document list only when
it moved, and searches read the tables as they are. Writers take a PostgreSQL advisory lock on the index
(`index.pg.schema.advisory_lock`), so two `rag index` runs never interleave; readers take no lock.

Writes: an update embeds the changed documents first, then commits each document in its own transaction
(delete its old rows, insert the new ones: readers see one version or the other). A first build, a rebuild and a
migration from FAISS replace everything in one transaction, with the HNSW index dropped during the insert and
built once after it, which pgvector's documentation advises and which measured faster here (see
`eval/bench_pg.py`): readers wait for that commit rather than see half an index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from index import storage
from index.chunking import Chunk, Chunker, embedding_text
from index.config import IndexConfig, SearchConfig
from index.documents import Document, DocumentError, load_document, reread, sha256_of_file
from index.embedding import Embedder
from index.errors import Damage, IndexStoreError
from index.hybrid import CheckReport, IndexInfo, SnapshotReads
from index.manifest import FORMAT_VERSION, DocumentRecord, Manifest
from index.pg.errors import DimensionMismatch, PostgresError, redact, translate
from index.pg.schema import HNSW_INDEX, SCHEMA_VERSION, Connections, advisory_lock, ensure_schema, schema_for
from index.pg.search import PgDense, PgSearcher, chunk_of
from index.pg.server import EmbeddedServer
from index.planner import DiskProbe, plan_update
from index.tokens import Tokenizer
from index.writer import UpdateReport

log = logging.getLogger(__name__)
REPAIR_FIX = "run `rag index --repair`: it re-chunks and re-embeds the document from its stored text"
TEXT_CACHE = 64  # documents whose text is kept in memory per process (passages are cut from them per answer)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PgGeneration:
    """Which committed state of the index a snapshot shows (the FAISS path's generation folder)."""

    schema: str
    number: int

    @property
    def name(self) -> str:
        return f"{self.schema} generation {self.number}"

    def __str__(self) -> str:
        return self.name


class PgSnapshot:
    """The index as of one generation: its manifest at once, its chunks when first asked for (the answer path
    never needs them all; corpus statistics and calibration read them once per generation)."""

    def __init__(self, index: "PostgresIndex", generation: PgGeneration | None, manifest: Manifest | None,
                 chunk_count: int) -> None:
        self._index = index
        self.generation = generation
        self.manifest = manifest
        self.chunk_count = chunk_count
        self.dense = PgDense(index)
        self.lexical = None

    @cached_property
    def chunks(self) -> list[Chunk]:
        if not self.chunk_count:
            return []
        with self._index.connections.borrow() as conn:
            rows = conn.execute("""SELECT c.id, c.chunk_id, c.source, d.title, c.section, c.start_offset,
                                          c.end_offset, c.text FROM chunks c JOIN documents d USING (source)
                                   ORDER BY c.source, c.seq""").fetchall()
        return [chunk_of(r) for r in rows]


@dataclass
class _Doc:
    """A document ready to be written: its record, text, chunks and their vectors (row i is chunks[i])."""

    record: DocumentRecord
    text: str
    chunks: list[Chunk]
    vectors: np.ndarray


class PostgresIndex(SnapshotReads):
    """Dense (pgvector HNSW) + BM25 (SQL) search over chunks with exact source offsets, in one schema of one
    PostgreSQL database. Same methods as `HybridIndex`; `close()` returns its connections (and lets go of the
    embedded server)."""

    def __init__(self, config: IndexConfig, embedder: Embedder | None = None,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.root = Path(config.dir).expanduser()
        self.schema = schema_for(self.root, config.postgres_schema)
        self._embedder = embedder
        self.on_wait = on_wait or (lambda message: log.warning("%s", message))
        self.recovered: str | None = None
        self._server = None if config.postgres_url else EmbeddedServer(self.root)
        self._dsn = config.postgres_url
        self._connections: Connections | None = None
        self._snap = PgSnapshot(self, None, None, 0)
        self._texts: OrderedDict[str, str] = OrderedDict()
        self.tokenize = Tokenizer()

    # -- connecting and opening ------------------------------------------------------------------------------
    @property
    def where(self) -> str:
        server = f"the embedded server in {self._server.pgdata}" if self._server else redact(self._dsn)
        return f"PostgreSQL ({server}), schema {self.schema}"

    @property
    def connections(self) -> Connections:
        """Connected (and the schema created or migrated) on first use."""
        if self._connections is None:
            if self._server is not None:
                storage.check_root(self.root, write=True)
                self._dsn = self._server.start()
            pool = Connections(self._dsn, self.schema, self.config.hnsw_ef_search)
            conn = pool.connect(register=False)
            try:
                ensure_schema(conn, self.schema)
            except Exception as exc:
                raise self._translated(exc) from None
            finally:
                conn.close()
            self._connections = pool
        return self._connections

    def _translated(self, exc: Exception) -> Exception:
        import psycopg

        return translate(exc, self._dsn) if isinstance(exc, psycopg.Error) else exc

    @classmethod
    def open(cls, config: IndexConfig, embedder: Embedder | None = None,
             on_wait: Callable[[str], None] | None = None) -> "PostgresIndex":
        """Connect, create or migrate the schema, load the document list; an index built with other settings
        is rebuilt from its stored texts, never searched."""
        index = cls(config, embedder, on_wait)
        index.refresh()
        index._rebuild_if_built_otherwise(index.where)
        return index

    def close(self) -> None:
        if self._connections is not None:
            self._connections.close()
            self._connections = None
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> "PostgresIndex":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def refresh(self) -> bool:
        """Pick up what another process committed: one row read; the document list is reloaded only when the
        index changed."""
        with self._reading() as conn:
            number = conn.execute("SELECT generation FROM state").fetchone()[0]
            if self._snap.generation is not None and number == self._snap.generation.number:
                return False
            self._snap = self._load(conn)
            self._texts.clear()
            return True

    @contextmanager
    def _reading(self):
        try:
            with self.connections.borrow() as conn:
                yield conn
        except PostgresError:
            raise
        except Exception as exc:
            raise self._translated(exc) from None

    def _load(self, conn) -> PgSnapshot:
        """State and document list from one consistent snapshot of the database (a repeatable-read read)."""
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            (number, built_at, model, dim, chunker, roots, overrides, dropped,
             count) = conn.execute("""SELECT generation, built_at, embedding_model, dimension, chunker, roots,
                                             title_overrides, dropped, chunk_count FROM state""").fetchone()
            rows = conn.execute("""SELECT source, title, kind, size, checksum, chunk_count, indexed_at,
                                          text_checksum FROM documents ORDER BY source""").fetchall()
        generation = PgGeneration(self.schema, number)
        if model is None:
            return PgSnapshot(self, generation, None, 0)
        documents = {r[0]: DocumentRecord(source=r[0], title=r[1], kind=r[2], size=r[3], sha256=r[4], chunks=r[5],
                                          indexed_at=r[6], text_sha256=r[7]) for r in rows}
        manifest = Manifest(format_version=FORMAT_VERSION, embedding_model=model, dimension=dim, chunker=chunker,
                            index_type="hnsw (pgvector)", chunk_count=count, roots=roots, documents=documents,
                            title_overrides=overrides, built_at=built_at or "", dropped=dropped)
        return PgSnapshot(self, generation, manifest, count)

    def has_generations(self) -> bool:
        """Whether anything was ever written to this index."""
        with self._reading() as conn:
            return conn.execute("SELECT generation > 0 FROM state").fetchone()[0]

    # -- reading ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._snap.chunk_count

    def document_text(self, source: str) -> str:
        """The stored text (KeyError if the index does not hold `source`), cached for the current generation."""
        text = self._texts.get(source)
        if text is None:
            with self._reading() as conn:
                row = conn.execute("SELECT text FROM documents WHERE source = %s", (source,)).fetchone()
            if row is None:
                raise KeyError(source)
            text = row[0]
            self._texts[source] = text
            while len(self._texts) > TEXT_CACHE:
                self._texts.popitem(last=False)
        return text

    def searcher(self, config: SearchConfig) -> PgSearcher:
        return PgSearcher(self, config)

    def info(self) -> IndexInfo:
        m = self._snap.manifest
        if m is None:
            raise FileNotFoundError(f"No index in {self.where}; run `rag index` to build it.")
        with self._reading() as conn:
            size = conn.execute("""SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c
                                   JOIN pg_namespace n ON n.oid = c.relnamespace
                                   WHERE n.nspname = %s AND c.relkind = 'r'""", (self.schema,)).fetchone()[0]
        return IndexInfo(self.where, list(m.documents.values()), m.chunk_count, m.embedding_model, m.dimension,
                         m.chunker, m.index_type, SCHEMA_VERSION, int(size), m.built_at,
                         self._snap.generation.name, self.recovered)

    # -- writing ---------------------------------------------------------------------------------------------
    @contextmanager
    def _writing(self):
        """A connection of its own holding the index's advisory lock, with the state re-read under the lock."""
        conn = self.connections.connect()
        try:
            with advisory_lock(conn, self.schema, self.config.lock_timeout_s, self.on_wait):
                self._snap = self._load(conn)
                self._texts.clear()
                yield conn
                self._snap = self._load(conn)
                self._texts.clear()
        except PostgresError:
            raise
        except IndexStoreError:
            raise
        except Exception as exc:
            raise self._translated(exc) from None
        finally:
            conn.close()

    def update(self, paths: Iterable[Path | str] | None = None, titles: dict[str, str] | None = None,
               remove: Iterable[Path | str] = (), progress: bool = True,
               on_embedded: Callable[[int, int], None] | None = None) -> UpdateReport:
        """Make the index match the files under its roots plus `paths`, without those under `remove`; embed only
        what changed (unchanged documents are recognised by size and SHA-256, as on the FAISS path)."""
        started = time.perf_counter()
        with self._writing() as conn:
            m = self._snap.manifest
            records = m.documents if m else {}
            plan = plan_update(records, m.roots if m else [], m.title_overrides if m else {}, probe=DiskProbe(),
                               add=list(paths or []), remove=list(remove), titles=titles)
            report = UpdateReport(unchanged=list(plan.unchanged), removed=list(plan.to_remove),
                                  errors=list(plan.errors))
            loaded: dict[str, tuple[Document, list[Chunk]]] = {}
            chunker = Chunker.from_config(self.config)
            for source in plan.to_load:
                try:
                    doc = load_document(Path(source), title=plan.title_overrides.get(source),
                                        max_bytes=int(self.config.max_file_mb * 1e6))
                    loaded[source] = (doc, chunker.split(doc))
                except (DocumentError, OSError) as exc:
                    if not isinstance(exc, DocumentError):
                        exc = DocumentError(source, f"cannot be read ({exc.strerror or exc})")
                    report.errors.append(exc)
                    continue
                (report.updated if source in records else report.added).append(source)
            if m is not None and not report.changed and not plan.roots_changed:
                report.chunk_count = m.chunk_count
                report.seconds = time.perf_counter() - started
                return report
            docs = self._embedded(loaded, report, progress, on_embedded)
            dropped = dict(m.dropped) if m else {}
            dropped.update({s: _now() for s in plan.to_remove})
            if m is None:  # a first build: one transaction, the HNSW index built once at the end
                self._replace_all(conn, docs, list(plan.roots), dict(plan.title_overrides), dropped)
            else:
                self._check_width(conn, docs)
                for doc in docs:
                    with conn.transaction():
                        self._delete(conn, doc.record.source)
                        self._insert(conn, [doc])
                        self._bump(conn)
                for source in plan.to_remove:
                    with conn.transaction():
                        self._delete(conn, source)
                        self._bump(conn)
                with conn.transaction():
                    present = {r[0] for r in conn.execute("SELECT source FROM documents")}
                    conn.execute("UPDATE state SET roots = %s, title_overrides = %s, dropped = %s",
                                 (json.dumps(list(plan.roots)), json.dumps(dict(plan.title_overrides)),
                                  json.dumps({s: w for s, w in dropped.items() if s not in present})))
                    self._bump(conn)
            report.chunk_count = conn.execute("SELECT chunk_count FROM state").fetchone()[0]
        report.seconds = time.perf_counter() - started
        return report

    def _embedded(self, loaded: dict[str, tuple[Document, list[Chunk]]], report: UpdateReport, progress: bool,
                  on_embedded: Callable[[int, int], None] | None) -> list[_Doc]:
        """Embed the chunks of every loaded document in one batch run; returns them ready to write."""
        every = [c for _, chunks in loaded.values() for c in chunks]
        vectors = np.zeros((0, 0), dtype=np.float32)
        if every:
            with tqdm(total=len(every), desc="Embedding chunks", unit="chunk", disable=not progress) as bar:
                def on_batch(n: int) -> None:
                    bar.update(n)
                    if on_embedded:
                        on_embedded(bar.n, len(every))

                vectors = self.embedder.embed([embedding_text(c, self.config.embed_headings) for c in every],
                                              on_batch=on_batch)
            report.chunks_embedded = len(every)
        docs, row = [], 0
        for source, (doc, chunks) in loaded.items():
            record = DocumentRecord(source=source, title=doc.title, kind=doc.kind, size=doc.size, sha256=doc.sha256,
                                    chunks=len(chunks), indexed_at=_now(), text_sha256=_sha(doc.text))
            docs.append(_Doc(record, doc.text, chunks, vectors[row:row + len(chunks)]))
            row += len(chunks)
        return docs

    def _width(self, conn) -> int | None:
        mod = conn.execute("""SELECT atttypmod FROM pg_attribute WHERE attrelid = 'chunks'::regclass
                              AND attname = 'embedding'""").fetchone()[0]
        return None if mod is None or mod < 0 else int(mod)

    def _check_width(self, conn, docs: list[_Doc]) -> None:
        width = self._width(conn)
        for doc in docs:
            if len(doc.chunks) and width is not None and doc.vectors.shape[1] != width:
                raise DimensionMismatch(
                    f"The index in {self.where} stores {width}-dimension vectors, but the embedding model "
                    f"'{self.config.embedding_model}' makes {doc.vectors.shape[1]}-dimension ones (the model "
                    f"behind that name changed). Fix: run `rag index --rebuild` to re-embed every document with "
                    f"this model, or set index.embedding_model to the model the index was built with.")

    def _delete(self, conn, source: str) -> None:
        n, terms = conn.execute("SELECT count(*), coalesce(sum(terms), 0) FROM chunks WHERE source = %s",
                                (source,)).fetchone()
        conn.execute("DELETE FROM documents WHERE source = %s", (source,))
        conn.execute("UPDATE state SET chunk_count = chunk_count - %s, total_terms = total_terms - %s",
                     (n, terms))

    def _insert(self, conn, docs: list[_Doc]) -> None:
        """Insert documents with their chunks, vectors and BM25 postings (COPY: a bulk path at any size)."""
        with conn.cursor() as cur:
            with cur.copy("""COPY documents (source, title, kind, size, checksum, text_checksum, chunk_count,
                                             indexed_at, text) FROM STDIN""") as copy:
                for d in docs:
                    r = d.record
                    copy.write_row((r.source, r.title, r.kind, r.size, r.sha256, r.text_sha256 or _sha(d.text),
                                    len(d.chunks), r.indexed_at, d.text))
            n = sum(len(d.chunks) for d in docs)
            if not n:
                return
            ids = [r[0] for r in cur.execute("SELECT nextval('chunks_id_seq') FROM generate_series(1, %s)",
                                             (n,)).fetchall()]
            texts = [embedding_text(c, self.config.embed_headings) for d in docs for c in d.chunks]
            tokens = self.tokenize(texts)
            total = 0
            with cur.copy("""COPY chunks (id, chunk_id, source, seq, start_offset, end_offset, section, context,
                                          text, embedding, terms) FROM STDIN""") as copy:
                i = 0
                for d in docs:
                    for seq, (c, v) in enumerate(zip(d.chunks, d.vectors)):
                        context = texts[i][:len(texts[i]) - len(c.text)].rstrip("\n")
                        copy.write_row((ids[i], c.id, c.source, seq, c.start, c.end, c.section, context, c.text,
                                        np.asarray(v, dtype=np.float32), len(tokens[i])))
                        total += len(tokens[i])
                        i += 1
            with cur.copy("COPY postings (term, chunk, tf, len) FROM STDIN") as copy:
                for chunk, toks in zip(ids, tokens):
                    counts: dict[str, int] = {}
                    for t in toks:
                        counts[t] = counts.get(t, 0) + 1
                    for term, tf in counts.items():
                        copy.write_row((term, chunk, tf, len(toks)))
            cur.execute("UPDATE state SET chunk_count = chunk_count + %s, total_terms = total_terms + %s",
                        (n, total))

    def _bump(self, conn, **settings) -> None:
        conn.execute("""UPDATE state SET generation = generation + 1, built_at = %s, embedding_model = %s,
                        dimension = coalesce(%s, dimension), chunker = %s""",
                     (_now(), self.config.embedding_model, settings.get("dimension"),
                      json.dumps(self.config.chunker_signature())))

    def _replace_all(self, conn, docs: list[_Doc], roots: list[str], overrides: dict[str, str],
                     dropped: dict[str, str], width: int | None = None) -> None:
        """Everything in one transaction: empty the tables, set the vector width, insert, build HNSW once."""
        width = width or next((d.vectors.shape[1] for d in docs if len(d.chunks)), None)
        if width is None:
            width = self.embedder.dimension if docs or self._width(conn) is None else self._width(conn)
        with conn.transaction():
            conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
            conn.execute("TRUNCATE documents, chunks, postings")
            conn.execute("UPDATE state SET chunk_count = 0, total_terms = 0")
            if width is not None and self._width(conn) != width:
                conn.execute(f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({int(width)})")
                conn.execute("ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN")
            self._insert(conn, docs)
            if width is not None:
                conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
                conn.execute(f"""CREATE INDEX {HNSW_INDEX} ON chunks USING hnsw (embedding vector_ip_ops)
                                 WITH (m = {int(self.config.hnsw_m)},
                                       ef_construction = {int(self.config.hnsw_ef_construction)})""")
            present = {d.record.source for d in docs}
            conn.execute("UPDATE state SET roots = %s, title_overrides = %s, dropped = %s",
                         (json.dumps(roots), json.dumps(overrides),
                          json.dumps({s: w for s, w in dropped.items() if s not in present})))
            self._bump(conn, dimension=width)
        # Fresh statistics and visibility map, so the planner picks the HNSW and covering indexes at once.
        conn.execute("VACUUM ANALYZE documents, chunks, postings")

    def _stored(self, conn) -> dict[str, tuple[DocumentRecord, str]]:
        rows = conn.execute("""SELECT source, title, kind, size, checksum, chunk_count, indexed_at, text_checksum,
                                      text FROM documents ORDER BY source""").fetchall()
        return {r[0]: (DocumentRecord(source=r[0], title=r[1], kind=r[2], size=r[3], sha256=r[4], chunks=r[5],
                                      indexed_at=r[6], text_sha256=r[7]), r[8]) for r in rows}

    def _rechunk(self, stored: dict[str, tuple[DocumentRecord, str]], report: UpdateReport,
                 progress: bool) -> list[_Doc]:
        chunker = Chunker.from_config(self.config)
        loaded: dict[str, tuple[Document, list[Chunk]]] = {}
        built = (self._snap.manifest.chunker or {}).get("loaders") if self._snap.manifest else None
        for source, (rec, text) in stored.items():
            doc = Document(source, rec.title, text, rec.kind, rec.size, rec.sha256)
            again = reread(doc, built, int(self.config.max_file_mb * 1e6))
            if again is not None:
                doc = again
                report.notes.append(f"{source}: read again from the file (the {rec.kind} loader has changed since "
                                    "it was indexed)")
            try:
                loaded[source] = (doc, chunker.split(doc))
            except DocumentError as exc:
                report.errors.append(exc)
                report.lost.append(source)
                continue
            report.updated.append(source)
        docs = self._embedded(loaded, report, progress, None)
        for doc in docs:  # keep when each document was indexed; only its chunks and vectors are new
            doc.record = doc.record.model_copy(update={"indexed_at": stored[doc.record.source][0].indexed_at})
        return docs

    def rebuild(self, reason: str = "requested", progress: bool = True) -> UpdateReport:
        """Re-chunk and re-embed every stored document, in one transaction (readers keep the old index until
        it commits)."""
        started = time.perf_counter()
        report = UpdateReport(rebuilt=reason)
        with self._writing() as conn:
            m = self._snap.manifest
            docs = self._rechunk(self._stored(conn), report, progress)
            if report.lost:  # never drop a document a rebuild cannot re-chunk: stop before writing anything
                raise IndexStoreError(f"Cannot rebuild the index in {self.where}: {report.errors[0]}. Nothing was "
                                      f"changed.")
            self._replace_all(conn, docs, list(m.roots) if m else [], dict(m.title_overrides) if m else {},
                              dict(m.dropped) if m else {}, width=self.embedder.dimension)
            report.chunk_count = sum(len(d.chunks) for d in docs)
        report.seconds = time.perf_counter() - started
        return report

    def import_snapshot(self, chunks: list[Chunk], vectors: np.ndarray, texts: dict[str, str],
                        records: dict[str, DocumentRecord], roots: list[str], overrides: dict[str, str],
                        dropped: dict[str, str]) -> UpdateReport:
        """Replace the index with these documents, chunks and vectors as they are (nothing is embedded): the
        move from a FAISS index (`index.pg.migrate`) and the benchmark's bulk load."""
        started = time.perf_counter()
        rows: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            rows.setdefault(c.source, []).append(i)
        docs = [_Doc(rec, texts[s], [chunks[i] for i in rows.get(s, [])],
                     np.asarray(vectors[rows.get(s, [])], dtype=np.float32).reshape(-1, vectors.shape[1]))
                for s, rec in records.items()]
        with self._writing() as conn:
            self._replace_all(conn, docs, roots, overrides, dropped, width=int(vectors.shape[1]))
        report = UpdateReport(added=list(records), chunk_count=len(chunks))
        report.seconds = time.perf_counter() - started
        return report

    # -- checking and repairing ------------------------------------------------------------------------------
    def _problems(self, conn) -> tuple[list[Damage], list[str], set[str]]:
        """Everything that disagrees, per document where it can be told: (damages, notes, damaged sources)."""
        damages: list[Damage] = []
        bad: set[str] = set()
        where = f"{self.where}"

        def add(source: str | None, problem: str, fix: str = REPAIR_FIX) -> None:
            damages.append(Damage(f"{where}, document {source}" if source else where, problem, fix))
            if source:
                bad.add(source)

        for source, text, checksum in conn.execute("SELECT source, text, text_checksum FROM documents"):
            if _sha(text) != checksum:
                add(source, "has a stored text whose SHA-256 does not match its record",
                    "run `rag index --repair`: it reads the file again if it is unchanged")
        for source, want, have in conn.execute(
                """SELECT d.source, d.chunk_count, count(c.id) FROM documents d LEFT JOIN chunks c USING (source)
                   GROUP BY d.source, d.chunk_count HAVING d.chunk_count <> count(c.id)"""):
            add(source, f"has {have} chunks where its record says {want}")
        for source, n in conn.execute(
                """SELECT c.source, count(*) FROM chunks c JOIN documents d USING (source)
                   WHERE substr(d.text, c.start_offset + 1, c.end_offset - c.start_offset) <> c.text
                   GROUP BY c.source"""):
            add(source, f"has {n} chunk(s) whose text is not the document's text at their offsets")
        for source, n in conn.execute(
                """SELECT source, count(*) FROM chunks WHERE embedding IS NULL
                   OR (terms > 0 AND NOT EXISTS (SELECT 1 FROM postings p WHERE p.chunk = chunks.id))
                   GROUP BY source"""):
            add(source, f"has {n} chunk(s) without a vector or without BM25 terms")
        count, terms = conn.execute("SELECT chunk_count, total_terms FROM state").fetchone()
        real = conn.execute("SELECT count(*), coalesce(sum(terms), 0) FROM chunks").fetchone()
        if (count, terms) != tuple(real):
            add(None, f"counts {count} chunks and {terms} terms in its state where the tables hold {real[0]} "
                      f"and {real[1]}", "run `rag index --repair`: it recounts them")
        notes = []
        if conn.execute("SELECT to_regclass(%s)", (HNSW_INDEX,)).fetchone()[0] is None and real[0]:
            add(None, "has no HNSW index on its vectors", "run `rag index --rebuild`")
        if not damages:
            notes.append(f"{self.where}: verified; documents {len(self.documents())}, chunks {real[0]}, schema "
                         f"version {SCHEMA_VERSION}")
        return damages, notes, bad

    def check(self) -> CheckReport:
        report = CheckReport(self.where)
        self.refresh()
        report.current = self._snap.generation.name if self._snap.manifest else None
        if self._snap.manifest is None:
            report.notes.append(f"no index yet in {self.where}: `rag index` builds it")
            return report
        with self._reading() as conn:
            report.problems, report.notes, _ = self._problems(conn)
        return report

    def repair(self, progress: bool = True) -> UpdateReport:
        """Re-chunk and re-embed each damaged document from its stored text (or its file, when the stored text
        fails its checksum and the file still matches the record), and recount the state."""
        started = time.perf_counter()
        report = UpdateReport(rebuilt="repair")
        with self._writing() as conn:
            if self._snap.manifest is None:
                raise IndexStoreError(f"There is no index in {self.where} to repair. Fix: run `rag index` to "
                                      f"build it.")
            damages, _, bad = self._problems(conn)
            if not damages:
                report.rebuilt = None
                report.notes.append(f"nothing to repair: {self.where} verifies")
                report.chunk_count = len(self)
                return report
            report.notes.extend(d.line() for d in damages)
            stored = {s: v for s, v in self._stored(conn).items() if s in bad}
            for source, (rec, text) in list(stored.items()):
                if _sha(text) == rec.text_sha256:
                    continue
                try:
                    if sha256_of_file(source) != rec.sha256:
                        raise OSError("changed")
                    doc = load_document(Path(source), title=rec.title)
                    stored[source] = (rec, doc.text)
                    report.notes.append(f"{source}: stored text damaged; read again from the file (unchanged)")
                except (OSError, DocumentError):
                    del stored[source]
                    report.lost.append(source)
                    report.errors.append(DocumentError(source, "its stored text is damaged and the file has "
                                                               "changed or is gone; it is kept as it is"))
            for doc in self._rechunk(stored, report, progress):
                with conn.transaction():
                    self._delete(conn, doc.record.source)
                    self._insert(conn, [doc])
                    self._bump(conn)
            with conn.transaction():
                conn.execute("""UPDATE state SET (chunk_count, total_terms) =
                                (SELECT count(*), coalesce(sum(terms), 0) FROM chunks)""")
                self._bump(conn)
            report.chunk_count = conn.execute("SELECT chunk_count FROM state").fetchone()[0]
        report.seconds = time.perf_counter() - started
        return report
