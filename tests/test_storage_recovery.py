"""Never lose a document, never serve damage: the pointer cases, the damage matrix, repair, the lock, bad dirs.

Every index here is real (the real embedding model, FAISS and BM25 files on disk) and every command is the real
`rag` Typer app, run in process so the loaded model is shared (`Embedder.from_config` returns the session's
model); one test runs `rag ask` as a real process to see that no traceback reaches the user. The base index holds
the bundled essay (gen-000001) and then one extra document of the user's (gen-000002), as after an upload.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index import Embedder, HybridIndex, IndexConfig, SearchConfig, default_corpus_path, default_titles
from index import storage
from index.errors import IndexDamagedError, IndexStoreError
from index.manifest import FORMAT_VERSION
from index.writer import prune_generations

EXTRA = ("# Lighthouse notes\n\nThe Zorbian lighthouse was built in 1873 by engineer Malia Terrow.\n\n"
         "## Keepers\n\nIts last keeper, Odo Brenn, retired in 1961 after forty winters on the rock.\n")
EXTRA_QUESTION = "When was the Zorbian lighthouse built and by whom?"
THIRD = "Brine shrimp thrive in the salt pans of Orlay, where the water is nine times saltier than the sea.\n"

runner = CliRunner()


@pytest.fixture(autouse=True)
def shared_model(monkeypatch, embedder):
    """Commands load the model through `Embedder.from_config`: give them the session's instead of a new one."""
    monkeypatch.setattr(Embedder, "from_config", classmethod(lambda cls, config, device="cpu": embedder))
    for name in list(os.environ):
        if name.startswith("RAG_"):
            monkeypatch.delenv(name)


def build(root: Path, docs: Path, embedder: Embedder) -> tuple[Path, Path]:
    """The essay, then the user's extra file: two generations, the second holding both documents."""
    docs.mkdir(parents=True, exist_ok=True)
    extra = docs / "lighthouse.md"
    extra.write_text(EXTRA, encoding="utf-8")
    index = HybridIndex.open(IndexConfig(dir=root), embedder)
    index.update([default_corpus_path()], titles=default_titles(), progress=False)
    index.update([extra], progress=False)
    return root, extra.resolve()


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder):
    """Built once; every test works on a copy (`fresh`). The source files stay where they are."""
    top = tmp_path_factory.mktemp("recovery-base")
    root, extra = build(top / "ix", top / "docs", embedder)
    assert [g.name for g in storage.list_generations(root)] == ["gen-000002", "gen-000001"]
    return root, extra


@pytest.fixture
def fresh(base, tmp_path) -> tuple[Path, Path]:
    root, extra = base
    copy = tmp_path / "ix"
    shutil.copytree(root, copy)
    return copy, extra


def rag(*args: str) -> tuple[int, str]:
    from rag.cli import app

    result = runner.invoke(app, list(args))
    out = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"rag {' '.join(args)} raised {result.exception!r}\n{out}") from result.exception
    return result.exit_code, out


def flat(text: str) -> str:
    """Output without whitespace: rich wraps long lines, even inside a path."""
    return re.sub(r"\s+", "", text)


def sources(root: Path, embedder: Embedder) -> set[str]:
    return {d.source for d in HybridIndex.open(IndexConfig(dir=root), embedder).documents()}


def finds_extra(root: Path, embedder: Embedder, extra: Path) -> bool:
    index = HybridIndex.open(IndexConfig(dir=root), embedder)
    hits = index.searcher(SearchConfig()).search(EXTRA_QUESTION, 3)
    return bool(hits) and hits[0].chunk.source == str(extra) and "1873" in hits[0].chunk.text


def generations(root: Path) -> list[str]:
    return sorted(g.name for g in storage.list_generations(root))


def essay_source() -> str:
    return str(default_corpus_path().resolve())


# -- the pointer ------------------------------------------------------------------------------------------------

POINTERS = {
    "missing": None,
    "empty": b"",
    "garbage": b"\x00garbage that names nothing\n",
    "non-utf8": b"\xff\xfe\xfa gen-000002",
    "dangling": b"gen-000009\n",
}


def spoil_pointer(root: Path, case: str) -> None:
    pointer = root / storage.POINTER
    pointer.unlink()
    if POINTERS[case] is not None:
        pointer.write_bytes(POINTERS[case])


@pytest.mark.parametrize("case", list(POINTERS))
def test_lost_pointer_recovers_the_newest_generation_and_keeps_the_users_document(fresh, embedder, case, caplog):
    root, extra = fresh
    spoil_pointer(root, case)
    # what `rag ask` and the chat do first: before, this seeded an essay-only index and pruned gen-000002
    from rag import RAG, Settings

    with caplog.at_level("WARNING"):
        rag_ = RAG.from_settings(Settings(index=IndexConfig(dir=root)), embedder=embedder)
    assert "recovered generation gen-000002" in caplog.text
    assert rag_.index.recovered.startswith("recovered generation gen-000002: the pointer")
    assert {d.source for d in rag_.documents()} == {essay_source(), str(extra)}
    assert generations(root) == ["gen-000001", "gen-000002"]  # nothing written, nothing deleted
    assert (root / storage.POINTER).read_text().strip() == "gen-000002"  # the pointer is rewritten
    answer = rag_.ask(EXTRA_QUESTION)
    assert not answer.refused and any(c.source == str(extra) for c in answer.citations)

    spoil_pointer(root, case)
    code, out = rag("--index-dir", str(root), "info")
    assert code == 0, out
    assert "recoveredgenerationgen-000002:thepointer" in flat(out)
    assert "Lighthousenotes" in flat(out) and "Traceback" not in out  # the extra document is listed

    spoil_pointer(root, case)
    code, out = rag("--index-dir", str(root), "ask", "--json", EXTRA_QUESTION)
    assert code == 0, out
    answer, _ = json.JSONDecoder().raw_decode(out[out.index("{"):])
    assert any(c["source"] == str(extra) for c in answer["citations"])
    assert generations(root) == ["gen-000001", "gen-000002"]


@pytest.mark.parametrize("case", ["missing", "dangling"])
def test_rebuild_with_a_lost_pointer_keeps_every_document(fresh, embedder, case):
    root, extra = fresh
    spoil_pointer(root, case)
    code, out = rag("--index-dir", str(root), "index", "--rebuild")
    assert code == 0, out
    assert "recoveredgenerationgen-000002" in flat(out)
    assert sources(root, embedder) == {essay_source(), str(extra)}
    assert finds_extra(root, embedder, extra)
    # the rebuilt generation and the newest older one are kept; the one without the user's file may go
    assert generations(root) == ["gen-000002", "gen-000003"]


def test_update_with_a_lost_pointer_builds_on_the_recovered_generation(fresh, embedder, tmp_path):
    root, extra = fresh
    spoil_pointer(root, "empty")
    third = tmp_path / "shrimp.txt"
    third.write_text(THIRD, encoding="utf-8")
    code, out = rag("--index-dir", str(root), "index", str(third))
    assert code == 0, out
    assert sources(root, embedder) == {essay_source(), str(extra), str(third.resolve())}


def test_every_generation_damaged_and_pointer_lost_is_an_error_not_an_empty_index(fresh, embedder):
    root, _ = fresh
    for gen in storage.list_generations(root):
        (gen / "dense.faiss").write_bytes(b"")
    spoil_pointer(root, "missing")
    from rag import RAG, Settings

    with pytest.raises(IndexDamagedError) as caught:
        RAG.from_settings(Settings(index=IndexConfig(dir=root)), embedder=embedder)
    assert "CURRENT is missing" in str(caught.value) and "dense.faiss" in str(caught.value)
    assert generations(root) == ["gen-000001", "gen-000002"] and not (root / storage.POINTER).exists()


# -- the damage matrix ------------------------------------------------------------------------------------------

FILES = ["manifest.json", "chunks.jsonl", "documents.jsonl", "embeddings.npy", "dense.faiss",
         "bm25/params.index.json", "bm25/vocab.index.json", "bm25/data.csc.index.npy",
         "bm25/indices.csc.index.npy", "bm25/indptr.csc.index.npy"]
JSON_FILES = ["manifest.json", "chunks.jsonl", "documents.jsonl", "bm25/params.index.json", "bm25/vocab.index.json"]


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif how in ("garbled", "garbled-body"):  # same size, bytes flipped in the middle (of the body)
        at = len(data) // 2 if how == "garbled" else max(64, len(data) // 3)
        n = max(1, min(64, len(data) // 8))
        path.write_bytes(data[:at] + bytes(b ^ 0xFF for b in data[at:at + n]) + data[at + n:])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "missing":
        path.unlink()
    elif how == "json":  # a syntax error, same size: the first key-value colon becomes a semicolon
        assert b'": ' in data or b'":' in data
        path.write_bytes(data.replace(b'":', b'";', 1))
    elif how == "ten-rows-dropped":
        lines = data.splitlines(keepends=True)
        path.write_bytes(b"".join(lines[:10] + lines[20:]))
    else:
        raise ValueError(how)


CASES = ([(f, how) for f in FILES for how in ("truncated", "garbled", "empty", "missing")]
         + [(f, "json") for f in JSON_FILES]
         + [("chunks.jsonl", "ten-rows-dropped"), ("dense.faiss", "garbled-body")])


@pytest.mark.parametrize("name,how", CASES, ids=[f"{f}-{h}" for f, h in CASES])
def test_damage_is_named_never_served_and_repair_restores_every_document(fresh, embedder, name, how):
    root, extra = fresh
    target = root / "gen-000002" / name
    damage(target, how)
    before = generations(root)
    named = flat(str(target))

    for args in (["ask", EXTRA_QUESTION], ["info"], ["index"], ["index", "--rebuild"], ["index", "--check"]):
        code, out = rag("--index-dir", str(root), *args)
        assert code == 1, (args, out)
        assert named in flat(out), (args, out)  # the file, by its full path
        assert "Traceback" not in out
        if args != ["index", "--check"]:
            assert flat("Fix: run `rag index --repair`") in flat(out), (args, out)
    assert generations(root) == before  # no command deleted (or added) a generation

    # what the chat does when it opens the index: a typed error whose text is the whole message
    from rag import RAG, Settings

    with pytest.raises(IndexStoreError) as caught:
        RAG.from_settings(Settings(index=IndexConfig(dir=root)), embedder=embedder)
    assert isinstance(caught.value, IndexDamagedError) and str(target) in str(caught.value)
    assert "rag index --repair" in str(caught.value) and caught.value.fix and caught.value.problem

    code, out = rag("--index-dir", str(root), "index", "--repair")
    assert code == 0, out
    assert sources(root, embedder) == {essay_source(), str(extra)}
    assert finds_extra(root, embedder, extra)
    code, out = rag("--index-dir", str(root), "index", "--check")
    assert code == 0 and "healthy" in out, out
    # the damaged generation is gone (the new one holds all its documents); the older good one is the fallback
    assert generations(root) == ["gen-000001", "gen-000003"]


def test_a_real_rag_process_shows_the_damage_message_without_a_traceback(fresh):
    root, _ = fresh
    (root / "gen-000002" / "dense.faiss").write_bytes(b"\x00" * 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    out = subprocess.run([sys.executable, "-m", "rag.cli", "--index-dir", str(root), "ask", "Why?"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr + out.stdout
    assert "dense.faiss" in flat(out.stderr) and "rag index --repair" in " ".join(out.stderr.split())


# -- repair when the texts themselves are damaged -----------------------------------------------------------------

@pytest.fixture
def three(tmp_path, embedder):
    """gen-000001: essay + lighthouse; gen-000002: + shrimp (each source file on disk)."""
    root, extra = build(tmp_path / "ix3", tmp_path / "docs", embedder)
    third = tmp_path / "docs" / "shrimp.txt"
    third.write_text(THIRD, encoding="utf-8")
    HybridIndex.open(IndexConfig(dir=root), embedder).update([third], progress=False)
    for gen in storage.list_generations(root)[2:]:  # keep only the last two, as pruning would
        shutil.rmtree(gen)
    return root, extra, third.resolve()


def test_damaged_texts_come_back_from_the_older_generation_and_the_files(three, embedder):
    root, extra, third = three
    newest = storage.list_generations(root)[0]
    extra.unlink()  # the user's file is gone: only the older generation still holds its text
    damage(newest / "documents.jsonl", "empty")
    code, out = rag("--index-dir", str(root), "index", "--repair")
    assert code == 0, out
    assert sources(root, embedder) == {essay_source(), str(extra), str(third)}
    assert finds_extra(root, embedder, extra)


def test_a_document_no_copy_is_left_of_is_reported_and_its_generation_kept(three, embedder):
    root, extra, third = three
    newest = storage.list_generations(root)[0]
    third.unlink()
    (newest / "documents.jsonl").write_bytes(b"")  # the only stored copy of shrimp.txt, and its file, are gone
    code, out = rag("--index-dir", str(root), "index", "--repair")
    assert code == 1
    assert "shrimp.txt" in flat(out) and "Notrestored" in flat(out)
    assert newest.is_dir()  # kept: it is the only generation that ever held shrimp.txt
    assert sources(root, embedder) == {essay_source(), str(extra)}
    code, out = rag("--index-dir", str(root), "index", "--check")  # and it stays visible, with what to do
    assert code == 1 and flat(f"{newest.name} is kept because it may hold documents") in flat(out)
    code, out = rag("--index-dir", str(root), "index", "--repair")  # repairing again deletes nothing either
    assert code == 1 and newest.is_dir()


# -- pruning and the format upgrade --------------------------------------------------------------------------------

def test_pruning_keeps_two_generations_and_never_one_holding_a_document_the_new_one_lacks(fresh, embedder, tmp_path):
    root, extra = fresh
    index = HybridIndex.open(IndexConfig(dir=root), embedder)
    third = tmp_path / "shrimp.txt"
    third.write_text(THIRD, encoding="utf-8")
    index.update([third], progress=False)
    assert generations(root) == ["gen-000002", "gen-000003"]
    # a removal the user asked for: the older generations holding the file may go
    index.update(remove=[third], progress=False)
    assert generations(root) == ["gen-000003", "gen-000004"]
    assert str(third.resolve()) in index.manifest.dropped

    # a generation written without the user's file (as a lost pointer once caused) prunes nothing that holds it
    from index.writer import write_generation

    import numpy as np

    essay_only = HybridIndex.open(IndexConfig(dir=tmp_path / "other"), embedder)
    essay_only.update([default_corpus_path()], titles=default_titles(), progress=False)
    snap = essay_only.snapshot
    gen = write_generation(root, IndexConfig(dir=root), snap.chunks, np.asarray(snap.vectors()), snap.texts,
                           dict(snap.manifest.documents), [], {})
    assert gen.generation.name == "gen-000005"
    assert generations(root) == ["gen-000003", "gen-000004", "gen-000005"]  # 4 is the fallback, 3 holds extra
    assert prune_generations(root, gen.generation, gen.manifest) == []


def test_an_index_of_format_version_1_is_rebuilt_from_its_stored_texts(fresh, embedder):
    root, extra = fresh
    gen = storage.current_generation(root)
    manifest = json.loads((gen / "manifest.json").read_text())
    for key in ("files", "dropped", "seal"):
        manifest.pop(key)
    manifest["format_version"] = 1
    for record in manifest["documents"].values():
        record.pop("text_sha256")
    (gen / "manifest.json").write_text(json.dumps(manifest))
    rows = [json.loads(line) for line in (gen / "documents.jsonl").read_text().splitlines()]
    (gen / "documents.jsonl").write_text("".join(json.dumps({"source": r["source"], "text": r["text"]}) + "\n"
                                                 for r in rows))
    moved = extra.with_suffix(".moved")
    extra.rename(moved)  # the file is gone: only the stored text can bring the document back
    try:
        code, out = rag("--index-dir", str(root), "index", "--check")
        assert code == 1 and "formatversion1" in flat(out)
        index = HybridIndex.open(IndexConfig(dir=root), embedder)
        assert index.manifest.format_version == FORMAT_VERSION
        assert {d.source for d in index.documents()} == {essay_source(), str(extra)}
        assert finds_extra(root, embedder, extra)
    finally:
        moved.rename(extra)


# -- the lock ---------------------------------------------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from index import storage
with storage.index_lock(Path(sys.argv[1]), 5):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""

HOLD_BARE = """
import sys, time
from filelock import FileLock
with FileLock(sys.argv[1] + "/.lock"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def hold_lock(root: Path, seconds: float, script: str = HOLD) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, str(root), str(seconds)], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parents[1])
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_index_says_whom_it_waits_for_and_gives_up_after_its_timeout(fresh, monkeypatch):
    root, _ = fresh
    holder = hold_lock(root, 60)
    try:
        monkeypatch.setenv("RAG_INDEX__LOCK_TIMEOUT_S", "1.5")
        started = time.monotonic()
        code, out = rag("--index-dir", str(root), "index")
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    text = flat(out)
    assert code == 1, out
    assert flat(f"Waiting for the index lock of {root}: held by PID {holder.pid}") in text
    assert "since" in text and flat("Gave up waiting for the index lock") in text and flat(f"kill {holder.pid}") in text
    assert "lock_timeout_s" in text and "Traceback" not in out
    assert 1.4 < waited < 30


def test_index_waits_for_a_lock_that_is_released_and_then_works(fresh, monkeypatch):
    root, _ = fresh
    holder = hold_lock(root, 2, HOLD_BARE)  # a holder that did not say who it is
    try:
        monkeypatch.setenv("RAG_INDEX__LOCK_TIMEOUT_S", "60")
        code, out = rag("--index-dir", str(root), "index")
    finally:
        holder.wait()
    assert code == 0, out
    assert flat("held by another process (it has not said which)") in flat(out)
    assert "2 unchanged" in out


# -- the index directory ----------------------------------------------------------------------------------------

def test_index_dir_that_is_a_file_or_inside_one_is_a_clear_error(tmp_path, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder", encoding="utf-8")
    for args in (["info"], ["index"], ["ask", "Why?"]):
        code, out = rag("--index-dir", str(a_file), *args)
        assert code == 2 and flat(f"{a_file} is a file, not a folder") in flat(out) and "Fix:" in out, out
        code, out = rag("--index-dir", str(a_file / "ix"), *args)
        assert code == 2 and flat(f"{a_file} is a file") in flat(out) and "cannotbecreated" in flat(out), out
        assert "Traceback" not in out
    monkeypatch.setenv("RAG_INDEX__DIR", str(a_file))  # the same through the settings
    for args in (["info"], ["index"], ["index", "--check"]):
        code, out = rag(*args)
        assert code == 1 and flat(f"{a_file} is a file, not a folder") in flat(out), out


def test_index_dir_that_cannot_be_written_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        place = Path("/sys/essay-rag-test-index")  # not writable even by root
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        place = locked / "ix"
    code, out = rag("--index-dir", str(place), "index")
    text = flat(out)
    assert code == 1 and flat(f"The index directory {place} cannot be created") in text and "Fix:" in out, out
    assert "Traceback" not in out
