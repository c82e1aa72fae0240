"""Connections, the schema and its migrations, and the writers' advisory lock.

One index is one PostgreSQL schema: every table below lives in it, so separate index folders (each evaluation
set has its own) never see each other's rows, and dropping an index is `DROP SCHEMA ... CASCADE`. The schema's
name comes from `index.postgres_schema`, or else from the index folder (`schema_for`).

Tables (version 1):

- `schema_version(version, applied_at, program)`: one row per applied migration. A newer version than this
  program knows stops it with `SchemaTooNew` (it would misread the tables), never a silent downgrade.
- `state`: one row. `generation` grows with every committed write, so `refresh()` is one primary-key read;
  the settings the vectors were made with (model, dimension, chunker), the followed roots, title overrides,
  removed documents, and the chunk and term counts BM25 needs.
- `documents(source, title, kind, size, checksum, text_checksum, chunk_count, indexed_at, text)`: the
  extracted text whose offsets every chunk refers to; `checksum` is the file's SHA-256, `text_checksum` the
  text's.
- `chunks(id, chunk_id, source, seq, start_offset, end_offset, section, context, text, embedding, terms, tsv)`:
  `embedding` is a pgvector `vector(d)` under an HNSW index (inner product), `tsv` a generated tsvector
  (English) under a GIN index for full-text queries, `terms` the chunk's BM25 length.
- `postings(term, chunk, tf, len)`: BM25's inverted index, with the same tokens as the FAISS path's bm25s store
  (see `index.pg.search` for why BM25 and not `ts_rank_cd`).

Deleting a document cascades to its chunks and postings, so one document's update is one transaction: delete,
insert, commit; readers see the old or the new version, never a mix (MVCC), with no generation folders.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from index.errors import IndexLockTimeout
from index.pg.errors import PgvectorMissing, SchemaTooNew, translate

SCHEMA_VERSION = 1
PROGRAM = "essay-rag"

# version -> statements that bring the schema from version-1 to version (run in one transaction)
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE schema_version (version int PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now(),
                                        program text NOT NULL)""",
        """CREATE TABLE state (id boolean PRIMARY KEY DEFAULT true CHECK (id), generation bigint NOT NULL DEFAULT 0,
                               built_at text, embedding_model text, dimension int, chunker jsonb,
                               roots jsonb NOT NULL DEFAULT '[]', title_overrides jsonb NOT NULL DEFAULT '{}',
                               dropped jsonb NOT NULL DEFAULT '{}', chunk_count bigint NOT NULL DEFAULT 0,
                               total_terms bigint NOT NULL DEFAULT 0)""",
        "INSERT INTO state DEFAULT VALUES",
        """CREATE TABLE documents (source text PRIMARY KEY, title text NOT NULL, kind text NOT NULL,
                                   size bigint NOT NULL, checksum text NOT NULL, text_checksum text NOT NULL,
                                   chunk_count int NOT NULL, indexed_at text NOT NULL, text text NOT NULL)""",
        """CREATE TABLE chunks (id bigserial PRIMARY KEY, chunk_id text NOT NULL,
                                source text NOT NULL REFERENCES documents (source) ON DELETE CASCADE,
                                seq int NOT NULL, start_offset int NOT NULL, end_offset int NOT NULL,
                                section text NOT NULL, context text NOT NULL, text text NOT NULL,
                                embedding vector, terms int NOT NULL,
                                tsv tsvector GENERATED ALWAYS AS
                                    (to_tsvector('english'::regconfig, context || ' ' || text)) STORED)""",
        # The vector stays in the row (1.5 kB at 384 dimensions): TOASTed beside the text it cost an exact scan of
        # 3,000 chunks 18,441 buffer reads instead of about 700 (EXPLAIN ANALYZE).
        "ALTER TABLE chunks ALTER COLUMN embedding SET STORAGE PLAIN",
        "CREATE INDEX chunks_source ON chunks (source, seq)",
        "CREATE INDEX chunks_tsv ON chunks USING gin (tsv)",
        # BM25 reads only this table: the chunk's length is repeated here and the key covers tf and length, so a
        # query term is one index range scan (joining `chunks` for the length scanned every chunk per query).
        """CREATE TABLE postings (term text NOT NULL, chunk bigint NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
                                  tf int NOT NULL, len int NOT NULL, PRIMARY KEY (term, chunk) INCLUDE (tf, len))""",
        "CREATE INDEX postings_chunk ON postings (chunk)",
    ],
}
HNSW_INDEX = "chunks_embedding"


def schema_for(index_dir: Path, explicit: str = "") -> str:
    """`explicit`, or `rag_<folder name>_<hash of the resolved folder>`: separate folders get separate schemas,
    and the name still tells a DBA which folder it belongs to."""
    if explicit:
        return explicit
    resolved = str(Path(index_dir).expanduser().resolve())
    stem = re.sub(r"[^a-z0-9_]+", "_", Path(resolved).name.lower()).strip("_")[:30] or "index"
    return f"rag_{stem}_{hashlib.sha1(resolved.encode()).hexdigest()[:10]}"


def lock_key(schema: str) -> int:
    """The advisory lock of one index: a signed 64-bit number from the schema's name."""
    return int.from_bytes(hashlib.sha1(f"{PROGRAM}:{schema}".encode()).digest()[:8], "big", signed=True)


class Connections:
    """A small pool of connections to one schema, shared by the threads of one process (the UI answers
    questions concurrently); each connection has the schema on its search path and pgvector's types."""

    def __init__(self, dsn: str, schema: str, ef_search: int, size: int = 8) -> None:
        self.dsn, self.schema, self.ef_search = dsn, schema, ef_search
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._size = size
        self._closed = False
        self._lock = threading.Lock()

    def connect(self, register: bool = True):
        import psycopg

        try:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10,
                                   application_name=f"{PROGRAM} pid {os.getpid()} on {socket.gethostname()}"[:63])
        except psycopg.Error as exc:
            raise translate(exc, self.dsn) from None
        try:
            conn.execute(f'SET search_path = "{self.schema}", public')
            if register:
                conn.execute(f"SET hnsw.ef_search = {int(self.ef_search)}")
                from pgvector.psycopg import register_vector

                register_vector(conn)
        except psycopg.ProgrammingError as exc:  # pgvector's types are not in this database
            db = conn.info.dbname
            conn.close()
            raise PgvectorMissing(
                f"The PostgreSQL database {db!r} has no pgvector extension ({exc}). Fix: run "
                f"`CREATE EXTENSION vector;` in it as its owner or a superuser.") from None
        except psycopg.Error as exc:
            conn.close()
            raise translate(exc, self.dsn) from None
        return conn

    @contextmanager
    def borrow(self) -> Iterator:
        """A connection for one operation; returned to the pool afterwards, or dropped if it broke."""
        import psycopg

        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self.connect()
        try:
            yield conn
        except psycopg.Error as exc:
            conn.close()
            if isinstance(exc, psycopg.OperationalError):
                raise translate(exc, self.dsn) from None
            raise
        else:
            if conn.closed or conn.info.transaction_status != 0:  # a broken or mid-transaction connection
                conn.close()
            elif self._closed or self._idle.qsize() >= self._size:
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        self._closed = True
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


def current_version(conn, schema: str) -> int | None:
    """The schema's version, or None when pgvector or the schema's tables are missing (reads only)."""
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone() is None:
        return None
    if conn.execute("SELECT to_regclass(%s)", (f'"{schema}".schema_version',)).fetchone()[0] is None:
        return None
    return conn.execute(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_version').fetchone()[0]


def ensure_schema(conn, schema: str) -> None:
    """Create pgvector, the schema and its tables, or migrate them to `SCHEMA_VERSION`, under a transaction
    advisory lock so concurrent first openers do not race. Raises `SchemaTooNew` and `PgvectorMissing`.

    A schema already at this version is only read, so replicas can open it on a read-only standby."""
    import psycopg

    found = current_version(conn, schema)
    if found == SCHEMA_VERSION:
        return
    if found is not None and found > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"The index in PostgreSQL schema {schema!r} (database {conn.info.dbname!r}) has schema version "
            f"{found}, written by a newer {PROGRAM}; this program knows versions up to {SCHEMA_VERSION} and "
            f"would misread it. Fix: upgrade {PROGRAM} (pip install -U essay-rag), or point "
            f"index.postgres_schema at another schema.")
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key(schema + ":schema"),))
        have = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        if have is None:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.Error as exc:
                db = conn.info.dbname
                raise PgvectorMissing(
                    f"The PostgreSQL database {db!r} has no pgvector extension, and this user cannot add it "
                    f"({str(exc).strip().splitlines()[0]}). Fix: install pgvector on the server "
                    f"(https://github.com/pgvector/pgvector) and run `CREATE EXTENSION vector;` in database {db!r} "
                    f"as its owner or a superuser.") from None
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        version = 0
        if exists:
            table = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".schema_version',)).fetchone()[0]
            if table is not None:
                version = conn.execute(f'SELECT coalesce(max(version), 0) FROM "{schema}".schema_version').fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"The index in PostgreSQL schema {schema!r} (database {conn.info.dbname!r}) has schema version "
                f"{version}, written by a newer {PROGRAM}; this program knows versions up to {SCHEMA_VERSION} and "
                f"would misread it. Fix: upgrade {PROGRAM} (pip install -U essay-rag), or point "
                f"index.postgres_schema at another schema.")
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'SET LOCAL search_path = "{schema}", public')
        for v in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[v]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version, program) VALUES (%s, %s)", (v, PROGRAM))


@contextmanager
def advisory_lock(conn, schema: str, timeout_s: float, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the index's writer lock (a session advisory lock on `conn`) for the block. Waits up to `timeout_s`,
    telling `on_wait` once whom it waits for; then raises `IndexLockTimeout` naming the holder."""
    key = lock_key(schema)
    deadline = time.monotonic() + timeout_s
    told = False
    while not conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()[0]:
        holder = _holder(conn, key)
        if time.monotonic() >= deadline:
            raise IndexLockTimeout(f"Another writer ({holder}) has held the index in PostgreSQL schema {schema!r} "
                                   f"for over {timeout_s:.0f} s. Fix: wait for it to finish, or end it; raise "
                                   f"index.lock_timeout_s to wait longer.")
        if not told:
            on_wait(f"Waiting for another writer of the index in schema {schema!r} ({holder}) to finish...")
            told = True
        time.sleep(0.2)
    try:
        yield
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


def _holder(conn, key: int) -> str:
    high, low = (key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF
    row = conn.execute(
        """SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket')
           FROM pg_locks l JOIN pg_stat_activity a USING (pid)
           WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %s AND l.objid::bigint = %s""",
        (high, low)).fetchone()
    return "unknown" if row is None else f"{row[1] or 'a client'}, server pid {row[0]}, from {row[2]}"

