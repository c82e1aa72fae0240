"""The index: exact offsets, incremental updates, crash safety, mismatch rebuilds, bad input, search quality.

Everything that builds an index uses the real embedding model, real FAISS and real BM25 stores on disk; the
update planner and the fusion functions are pure and are tested without a model.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from index import (DocumentError, HybridIndex, IndexConfig, SearchConfig, default_corpus_path, default_titles,
                   load_document)
from index import storage
from index.chunking import Chunker
from index.manifest import FORMAT_VERSION, DocumentRecord
from index.planner import plan_update
from index.search import RRF, Convex, convex_fusion, fusion_for, reciprocal_rank_fusion


def make_pdf(path: Path, lines: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(8.5, 11))
    for i, line in enumerate(lines):
        fig.text(0.08, 0.92 - 0.04 * i, line, fontsize=9)
    fig.savefig(path)
    plt.close(fig)
    return path


def make_docs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    md = folder / "notes.md"
    md.write_text("# Lighthouse notes\n\nThe Zorbian lighthouse was built in 1873 by engineer Malia Terrow.\n\n"
                  "## Keepers\n\nIts last keeper, Odo Brenn, retired in 1961 after forty winters.\n", encoding="utf-8")
    html = folder / "page.html"
    html.write_text("<html><head><title>Harbour Guide</title><style>p{color:red}</style></head><body>"
                    "<h1>Harbour</h1><p>The harbour of Quellport freezes every February.</p>"
                    "<script>var x = 1;</script><p>Ferries to Ostrin leave at dawn.</p></body></html>",
                    encoding="utf-8")
    pdf = make_pdf(folder / "report.pdf", ["Quarterly Report", "Copper exports from Vandal Bay rose by 14 percent.",
                                           "The mine at Kettle Ridge closed in March."])
    return {"md": md, "html": html, "pdf": pdf}


@pytest.fixture
def config(tmp_path) -> IndexConfig:
    return IndexConfig(dir=tmp_path / "index")


def search(index: HybridIndex, query: str, k: int, **config):
    """Search with the shipped defaults (SearchConfig), overriding only what a test names (e.g. mode)."""
    return index.searcher(SearchConfig(**config)).search(query, k)


def check_offsets(index: HybridIndex) -> None:
    assert len(index.chunks) > 0
    for chunk in index.chunks:
        assert index.document_text(chunk.source)[chunk.start:chunk.end] == chunk.text


def test_essay_chunks_round_trip_offsets_and_carry_headings(essay_text):
    doc = load_document(default_corpus_path())
    assert doc.text == essay_text  # the bundled copy is byte for byte the corpus
    chunks = Chunker(600, 100, "sections").split(doc)
    assert all(essay_text[c.start:c.end] == c.text for c in chunks)
    assert all(len(c.text) <= 600 for c in chunks)
    sections = {c.section for c in chunks}
    assert "No Mutual Defense Clause in Iran-Russia Agreement" in sections
    assert "Balance in Moscow’s Middle East Policy" in sections
    # chunks end on sentence or paragraph boundaries, never mid-word
    assert all(c.text.rstrip()[-1] in ".”’\"?!)" or c.text == c.section for c in chunks)
    # the whole essay is covered: the gaps between chunks are only whitespace
    covered = sorted((c.start, c.end) for c in chunks)
    position = 0
    for start, end in covered:
        assert essay_text[position:start].strip() == ""
        position = max(position, end)
    assert essay_text[position:].strip() == ""


def test_shared_corpus_copy_is_identical(essay_text):
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "russia-iran-essay.txt"
    if not shared.exists():
        pytest.skip("../shared/corpus is not beside this checkout")
    assert shared.read_bytes() == default_corpus_path().read_bytes()


def test_markdown_html_pdf_offsets_titles_and_sections(tmp_path, config, embedder):
    docs = make_docs(tmp_path / "docs")
    index = HybridIndex.open(config, embedder)
    report = index.update([tmp_path / "docs"], progress=False)
    assert not report.errors and len(report.added) == 3
    check_offsets(index)
    titles = {Path(d.source).name: d.title for d in index.documents()}
    assert titles == {"notes.md": "Lighthouse notes", "page.html": "Harbour Guide", "report.pdf": "Report"}
    html_text = index.document_text(str(docs["html"].resolve()))
    assert "var x" not in html_text and "color:red" not in html_text
    md_sections = {c.section for c in index.chunks if c.source.endswith("notes.md")}
    assert "Lighthouse notes › Keepers" in md_sections   # a '##' heading sits under the '#' before it
    hit = search(index, "When was the Zorbian lighthouse built?", 1)[0]
    assert "1873" in hit.chunk.text
    hit = search(index, "copper exports Vandal Bay", 1, mode="bm25")[0]
    assert hit.chunk.source.endswith("report.pdf")


def test_unchanged_reindex_embeds_nothing_and_writes_nothing(tmp_path, config, embedder):
    make_docs(tmp_path / "docs")
    index = HybridIndex.open(config, embedder)
    index.update([tmp_path / "docs"], progress=False)
    generation = storage.current_generation(config.dir)
    before = embedder.texts_embedded
    report = HybridIndex.open(config, embedder).update(progress=False)
    assert embedder.texts_embedded == before
    assert report.chunks_embedded == 0 and len(report.unchanged) == 3 and not report.changed
    assert storage.current_generation(config.dir) == generation


def test_editing_one_file_reembeds_only_its_chunks_and_deleting_removes_it(tmp_path, config, embedder):
    docs = make_docs(tmp_path / "docs")
    index = HybridIndex.open(config, embedder)
    index.update([tmp_path / "docs"], progress=False)
    others_before = {c.id: c for c in index.chunks if not c.source.endswith("notes.md")}
    vectors_before = np.load(storage.current_generation(config.dir) / "embeddings.npy")
    rows_before = {c.id: i for i, c in enumerate(index.chunks)}

    docs["md"].write_text("# Lighthouse notes\n\nThe Zorbian lighthouse was rebuilt in 1990 by Ana Pell.\n", "utf-8")
    before = embedder.texts_embedded
    report = index.update(progress=False)
    md_chunks = [c for c in index.chunks if c.source.endswith("notes.md")]
    assert report.updated == [str(docs["md"].resolve())] and len(report.unchanged) == 2
    assert embedder.texts_embedded - before == len(md_chunks) == report.chunks_embedded
    others_after = {c.id: c for c in index.chunks if not c.source.endswith("notes.md")}
    assert others_after == others_before
    vectors_after = np.load(storage.current_generation(config.dir) / "embeddings.npy")
    rows_after = {c.id: i for i, c in enumerate(index.chunks)}
    for cid in others_before:  # untouched documents keep exactly their stored vectors
        assert np.array_equal(vectors_before[rows_before[cid]], vectors_after[rows_after[cid]])
    assert "1990" in search(index, "When was the lighthouse rebuilt?", 1)[0].chunk.text

    docs["html"].unlink()
    report = index.update(progress=False)
    assert report.removed == [str(docs["html"].resolve())]
    assert not any(c.source.endswith("page.html") for c in index.chunks)
    assert all(h.chunk.source.endswith(("notes.md", "report.pdf")) for h in search(index, "Quellport harbour", 5))
    check_offsets(HybridIndex.open(config, embedder))


def test_bad_inputs_get_specific_messages_and_do_not_block_good_files(tmp_path, config, embedder):
    folder = tmp_path / "mixed"
    make_docs(folder)
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "blank.md").write_text("   \n\n  ", encoding="utf-8")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    (folder / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me, na\xefve fa\xe7ade.".encode("latin-1"))
    make_pdf(folder / "scan.pdf", [])
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    unsupported = tmp_path / "slides.pptx"
    unsupported.write_bytes(b"PK\x03\x04")
    missing = tmp_path / "nowhere.txt"

    index = HybridIndex.open(config, embedder)
    report = index.update([folder, unsupported, missing], progress=False)
    messages = {Path(e.path).name: e.reason for e in report.errors}
    assert "empty" in messages["empty.txt"]
    assert "empty" in messages["blank.md"]
    assert "binary" in messages["binary.txt"]
    assert "UTF-8" in messages["latin1.txt"] and "0xe9" in messages["latin1.txt"]
    assert "no extractable text" in messages["scan.pdf"]
    assert "not a readable PDF" in messages["broken.pdf"]
    assert "unsupported file type '.pptx'" in messages["slides.pptx"]
    assert "no such file" in messages["nowhere.txt"]
    assert sorted(Path(s).name for s in report.added) == ["notes.md", "page.html", "report.pdf"]
    check_offsets(index)


def test_file_that_turns_bad_keeps_its_last_good_version(tmp_path, config, embedder):
    docs = make_docs(tmp_path / "docs")
    index = HybridIndex.open(config, embedder)
    index.update([tmp_path / "docs"], progress=False)
    docs["md"].write_bytes(b"")
    report = index.update(progress=False)
    assert [Path(e.path).name for e in report.errors] == ["notes.md"]
    assert not report.removed
    assert "1873" in search(index, "Zorbian lighthouse", 1)[0].chunk.text


def test_crash_before_pointer_flip_leaves_previous_index_usable(tmp_path, config, embedder, monkeypatch):
    docs = make_docs(tmp_path / "docs")
    index = HybridIndex.open(config, embedder)
    index.update([tmp_path / "docs"], progress=False)
    good = storage.current_generation(config.dir)

    docs["md"].write_text("# Lighthouse notes\n\nThe lighthouse was demolished in 2001.\n", "utf-8")

    def crash(*args, **kwargs):
        raise OSError("simulated power loss")

    monkeypatch.setattr(storage, "atomic_write_text", crash)
    with pytest.raises(OSError, match="power loss"):
        HybridIndex.open(config, embedder).update(progress=False)
    monkeypatch.undo()
    assert storage.current_generation(config.dir) == good
    reopened = HybridIndex.open(config, embedder)
    check_offsets(reopened)
    assert "1873" in search(reopened, "Zorbian lighthouse built", 1)[0].chunk.text
    # the next run finishes the job; pruning keeps two complete generations (the new one and the newest older
    # one that verifies, here the abandoned gen-000002) and deletes the rest
    report = reopened.update(progress=False)
    assert report.updated and "2001" in search(reopened, "lighthouse demolished", 1)[0].chunk.text
    assert sorted(p.name for p in config.dir.glob("gen-*")) == ["gen-000002", "gen-000003"]
    assert not list(config.dir.glob(".staging-*"))


def test_crash_while_writing_stores_leaves_no_partial_generation(tmp_path, config, embedder, monkeypatch):
    make_docs(tmp_path / "docs")
    index = HybridIndex.open(config, embedder)
    index.update([tmp_path / "docs"], progress=False)
    good = storage.current_generation(config.dir)
    (tmp_path / "docs" / "extra.txt").write_text("Brine shrimp thrive in the salt pans of Orlay.", "utf-8")
    from index import stores

    monkeypatch.setattr(stores.DenseStore, "save", lambda self, path: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        index.update(progress=False)
    monkeypatch.undo()
    assert storage.current_generation(config.dir) == good
    assert not list(config.dir.glob(".staging-*"))
    assert not any(c.source.endswith("extra.txt") for c in HybridIndex.open(config, embedder).chunks)


def test_settings_mismatch_triggers_rebuild_never_stale_results(tmp_path, config, embedder, caplog):
    make_docs(tmp_path / "docs")
    HybridIndex.open(config, embedder).update([tmp_path / "docs"], progress=False)

    smaller = config.model_copy(update={"chunk_size": 120, "chunk_overlap": 20})
    with caplog.at_level("WARNING"):
        index = HybridIndex.open(smaller, embedder)
    assert "rebuilding" in caplog.text and "chunk" in caplog.text
    assert index.manifest.chunker["chunk_size"] == 120 and all(len(c.text) <= 120 for c in index.chunks)
    check_offsets(index)

    # the same model under another name (a local path) counts as another model: rebuild, not reuse
    from index.embedding import resolve_model_path

    by_path = smaller.model_copy(update={"embedding_model": resolve_model_path("all-MiniLM-L6-v2")})
    caplog.clear()
    with caplog.at_level("WARNING"):
        index = HybridIndex.open(by_path)
    assert "embedding model" in caplog.text
    assert index.manifest.embedding_model == by_path.embedding_model

    # an index written by a future format version is rebuilt from the source files
    gen = storage.current_generation(config.dir)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["format_version"] = 99
    (gen / "manifest.json").write_text(json.dumps(manifest))
    caplog.clear()
    with caplog.at_level("WARNING"):
        index = HybridIndex.open(by_path, embedder)
    assert "format version 99" in caplog.text
    assert index.manifest.format_version == FORMAT_VERSION and len(index.documents()) == 3
    check_offsets(index)


def older_html_loader(monkeypatch):
    """Stand-in for an older release's HTML loader (a real loader change cannot be produced on demand): it kept a
    navigation line, and the index records the HTML loader's version as 0."""
    import index.documents as documents

    real = documents._LOADERS["html"]
    monkeypatch.setitem(documents._LOADERS, "html",
                        lambda path, data: ("Previous | Next | Index\n\n" + real(path, data)[0], None))
    monkeypatch.setitem(documents.LOADER_VERSIONS, "html", 0)


def test_a_changed_loader_reads_unchanged_files_again_and_keeps_the_rest(tmp_path, config, embedder, monkeypatch):
    """An improved loader reaches a kept index: opening it rebuilds, and each unchanged file of that kind is read
    again; a file that has gone keeps its stored text (nothing is lost), a text file is only re-chunked."""
    from index.documents import load_document

    docs = tmp_path / "docs"
    docs.mkdir()
    page = docs / "page.html"
    page.write_text("<html><head><title>Ferries</title></head><body><h1>Timetable</h1><p>The first ferry leaves "
                    "the harbour at seven and the last returns at ten.</p></body></html>", encoding="utf-8")
    gone = docs / "gone.html"
    gone.write_text("<html><body><p>The lighthouse keeper logs every passing ship by name.</p></body></html>",
                    encoding="utf-8")
    plain = docs / "plain.txt"
    plain.write_text("Tickets are sold at the pier kiosk from six in the morning.\n", encoding="utf-8")
    older_html_loader(monkeypatch)
    old = HybridIndex.open(config, embedder)
    old.update([docs], progress=False)
    keep = old.document_text(str(gone.resolve()))
    assert keep.startswith("Previous | Next") and old.manifest.chunker["loaders"]["html"] == 0
    gone.unlink()
    monkeypatch.undo()
    index = HybridIndex.open(config, embedder)
    assert index.manifest.chunker["loaders"]["html"] == 1
    sources = {Path(d.source).name for d in index.documents()}
    assert sources == {"page.html", "gone.html", "plain.txt"}
    assert index.document_text(str(page.resolve())) == load_document(page).text       # read again
    assert index.document_text(str(gone.resolve())) == keep                           # file gone: stored text
    assert index.document_text(str(plain.resolve())) == load_document(plain).text
    assert not any("Previous | Next" in c.text for c in index.chunks if c.source == str(page.resolve()))
    check_offsets(index)


def test_unloadable_model_gives_one_clear_error_and_leaves_process_settings_alone(monkeypatch):
    from index import Embedder, ModelLoadError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(ModelLoadError, match="offline"):
        Embedder("some-org/model-that-is-not-here")
    assert "HF_HUB_OFFLINE" not in os.environ  # library code sets no process-wide switches; main() does


QUESTIONS = [
    ("Why did Russia refuse a mutual defense clause with Iran?", "dragged into Iran’s regional wars"),
    ("How many Russian-speaking Jews live in Israel?", "Around 2 million Russian-speaking Jews"),
    ("What did Zarif say about indigenous enrichment?", "Moscow refused to accept this"),
    ("Which drones did Iran license to Russia?", "Shahed suicide drones"),
    ("What did Russia offer India?", "117 Su-35Ms"),
    ("In what year did Iran sign a comprehensive economic protocol with the Soviet Union?", "in 1989"),
]


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_finds_the_right_chunk(essay_rag, mode):
    index = essay_rag.index
    for question, fact in QUESTIONS:
        hits = search(index, question, 3, mode=mode)
        assert any(fact in h.chunk.text for h in hits), (mode, question, [h.chunk.text[:60] for h in hits])
        assert [h.rank for h in hits] == list(range(len(hits)))
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)


def test_hnsw_index_agrees_with_exact_search(tmp_path, embedder):
    folder = tmp_path / "many"
    folder.mkdir()
    text = default_corpus_path().read_text("utf-8")
    for i in range(6):  # enough chunks that the approximate graph has real work to do
        (folder / f"copy{i}.txt").write_text(f"Copy {i}\n" + text, "utf-8")
    exact = HybridIndex.open(IndexConfig(dir=tmp_path / "flat", index_type="flat"), embedder)
    exact.update([folder], progress=False)
    approx_config = IndexConfig(dir=tmp_path / "hnsw", index_type="auto", ann_threshold=100, hnsw_ef_search=300)
    approx = HybridIndex.open(approx_config, embedder)
    approx.update([folder], progress=False)
    assert approx.manifest.index_type == "hnsw" and exact.manifest.index_type == "flat"
    # efSearch comes from the settings, at build and at load (it is a search-time knob: no rebuild needed)
    assert approx.snapshot.dense.index.hnsw.efSearch == 300
    wider = HybridIndex.open(approx_config.model_copy(update={"hnsw_ef_search": 512}), embedder)
    assert wider.snapshot.dense.index.hnsw.efSearch == 512 and wider.snapshot.generation == approx.snapshot.generation
    overlap = []
    for question, _ in QUESTIONS:
        a = {h.chunk.id for h in search(exact, question, 10, mode="dense")}
        b = {h.chunk.id for h in search(approx, question, 10, mode="dense")}
        overlap.append(len(a & b) / 10)
    assert np.mean(overlap) >= 0.95


def test_document_titles_and_default_corpus(tmp_path, embedder):
    index = HybridIndex.open(IndexConfig(dir=tmp_path / "ix"), embedder)
    index.update([default_corpus_path()], titles=default_titles(), progress=False)
    (doc,) = index.documents()
    assert doc.title == "Russia and Iran: The Limits of a Strategic Partnership"
    assert doc.sha256 and doc.size == default_corpus_path().stat().st_size


def test_document_error_names_the_file():
    err = DocumentError("/tmp/x.txt", "is empty")
    assert str(err) == "/tmp/x.txt: is empty"


def test_moved_install_replaces_the_old_bundled_essay_instead_of_duplicating_it(tmp_path, embedder):
    old = tmp_path / "old-checkout" / "index" / "corpus" / "russia-iran-essay.txt"
    old.parent.mkdir(parents=True)
    old.write_bytes(default_corpus_path().read_bytes())
    config = IndexConfig(dir=tmp_path / "ix")
    HybridIndex.open(config, embedder).update([old], progress=False)
    import subprocess
    import sys

    env = dict(os.environ, RAG_INDEX__DIR=str(config.dir))
    out = subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    sources = [d.source for d in HybridIndex.open(config, embedder).documents()]
    assert sources == [str(default_corpus_path().resolve())]


# -- the update planner: pure, tested on an in-memory file system without a model ----------------------------

class FakeFiles:
    """An in-memory file system for the planner (path -> bytes; a folder is a path prefix). Nothing here exists
    on disk, so a planner that touched the disk would see no files at all and plan differently."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.unreadable: set[str] = set()

    def resolve(self, path: str) -> str:
        return str(path).rstrip("/")

    def _is_dir(self, path: str) -> bool:
        return any(f.startswith(path + "/") for f in self.files)

    def exists(self, path: str) -> bool:
        p = self.resolve(path)
        return p in self.files or self._is_dir(p)

    def discover(self, paths):
        found, errors = [], []
        for raw in paths:
            p = self.resolve(raw)
            if p in self.files:
                found.append(p)
            elif self._is_dir(p):
                found.extend(sorted(f for f in self.files if f.startswith(p + "/")))
            else:
                errors.append(DocumentError(p, "no such file or folder"))
        return list(dict.fromkeys(found)), errors

    def _read(self, path: str) -> bytes:
        if path in self.unreadable:
            raise PermissionError(13, "Permission denied", path)
        if path not in self.files:
            raise FileNotFoundError(2, "No such file or directory", path)
        return self.files[path]

    def size(self, path: str) -> int:
        return len(self._read(path))

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self._read(path)).hexdigest()


def records_of(fs: FakeFiles, *paths: str, title: str = "T") -> dict[str, DocumentRecord]:
    """Manifest records as an earlier update would have written them for the files' current bytes."""
    return {p: DocumentRecord(source=p, title=title, kind="text", size=len(fs.files[p]),
                              sha256=hashlib.sha256(fs.files[p]).hexdigest(), chunks=1, indexed_at="-")
            for p in paths}


def assert_partition(plan, known) -> None:
    """Every indexed document lands in exactly one bucket; new files only in to_add."""
    buckets = [plan.to_update, plan.unchanged, plan.to_remove, plan.kept_on_error]
    for source in known:
        assert sum(source in b for b in buckets) == 1, source
    assert not set(plan.to_add) & set(known)


@pytest.fixture
def no_model(monkeypatch):
    """Any attempt to load the embedding model fails the test."""
    import index.embedding

    def refuse(*args, **kwargs):
        raise AssertionError("the planner must not load a model")

    monkeypatch.setattr(index.embedding, "load_sentence_transformer", refuse)


def test_planner_sorts_new_edited_unchanged_and_deleted_files(no_model):
    fs = FakeFiles({"/docs/a.txt": b"alpha", "/docs/b.txt": b"bravo", "/docs/c.txt": b"charlie"})
    known = records_of(fs, "/docs/a.txt", "/docs/b.txt", "/docs/c.txt")
    fs.files["/docs/b.txt"] = b"BRAVO"          # same size, other bytes: only the hash can tell
    del fs.files["/docs/c.txt"]
    fs.files["/docs/d.txt"] = b"delta"
    plan = plan_update(known, ["/docs"], {}, probe=fs)
    assert plan.to_add == ("/docs/d.txt",)
    assert plan.to_update == ("/docs/b.txt",)
    assert plan.unchanged == ("/docs/a.txt",)
    assert plan.to_remove == ("/docs/c.txt",)
    assert not plan.errors and not plan.kept_on_error
    assert plan.roots == ("/docs",) and not plan.roots_changed and plan.has_changes
    assert_partition(plan, known)

    # nothing changed on disk: nothing to do
    fs = FakeFiles({"/docs/a.txt": b"alpha"})
    plan = plan_update(records_of(fs, "/docs/a.txt"), ["/docs"], {}, probe=fs)
    assert plan.unchanged == ("/docs/a.txt",) and not plan.has_changes and not plan.to_load


def test_planner_first_update_follows_requested_paths_and_reports_missing_ones(no_model):
    fs = FakeFiles({"/docs/a.txt": b"alpha", "/docs/sub/b.md": b"# B", "/one.txt": b"one"})
    plan = plan_update({}, [], {}, probe=fs, add=["/docs", "/one.txt", "/nowhere.txt"],
                       titles={"/one.txt": "One"})
    assert set(plan.to_add) == {"/docs/a.txt", "/docs/sub/b.md", "/one.txt"}
    assert [e.path for e in plan.errors] == ["/nowhere.txt"]
    assert plan.roots == ("/docs", "/one.txt") and plan.roots_changed  # a missing path is not followed
    assert plan.title_overrides["/one.txt"] == "One"


def test_planner_changed_title_reindexes_the_file(no_model):
    fs = FakeFiles({"/docs/a.txt": b"alpha"})
    known = records_of(fs, "/docs/a.txt", title="Old")
    assert plan_update(known, ["/docs"], {}, probe=fs, titles={"/docs/a.txt": "Old"}).unchanged == ("/docs/a.txt",)
    plan = plan_update(known, ["/docs"], {}, probe=fs, titles={"/docs/a.txt": "New"})
    assert plan.to_update == ("/docs/a.txt",) and plan.title_overrides["/docs/a.txt"] == "New"


def test_planner_removed_root_drops_its_documents_and_is_no_longer_followed(no_model):
    fs = FakeFiles({"/docs/a.txt": b"alpha", "/docs/b.txt": b"bravo", "/other/x.txt": b"x-ray"})
    known = records_of(fs, "/docs/a.txt", "/docs/b.txt", "/other/x.txt")
    plan = plan_update(known, ["/docs", "/other/x.txt"], {}, probe=fs, remove=["/docs/"])
    assert set(plan.to_remove) == {"/docs/a.txt", "/docs/b.txt"}
    assert plan.unchanged == ("/other/x.txt",)
    assert plan.roots == ("/other/x.txt",) and plan.roots_changed
    assert not plan.to_load and not plan.errors
    assert_partition(plan, known)
    # removing something that was never indexed changes nothing
    plan = plan_update(known, ["/docs", "/other/x.txt"], {}, probe=fs, remove=["/elsewhere"])
    assert not plan.has_changes and len(plan.unchanged) == 3


def test_planner_unreadable_file_keeps_its_last_good_version(no_model):
    fs = FakeFiles({"/docs/a.txt": b"alpha", "/docs/b.txt": b"bravo"})
    known = records_of(fs, "/docs/a.txt", "/docs/b.txt")
    fs.files["/docs/a.txt"] = b"alpha, edited"
    fs.files["/docs/new.txt"] = b"new"
    fs.unreadable = {"/docs/a.txt", "/docs/new.txt"}
    plan = plan_update(known, ["/docs"], {}, probe=fs)
    assert [e.path for e in plan.errors] == ["/docs/a.txt"]
    assert plan.kept_on_error == ("/docs/a.txt",) and "/docs/a.txt" in plan.carried
    assert "/docs/a.txt" not in plan.to_remove + plan.to_update
    # a new file is not read to be planned: the writer reports it when loading fails; there is nothing to keep
    assert plan.to_add == ("/docs/new.txt",) and "/docs/new.txt" not in plan.kept_on_error
    assert plan.unchanged == ("/docs/b.txt",)
    assert_partition(plan, known)


# -- fusion: pure functions over rankings -------------------------------------------------------------------

def test_reciprocal_rank_fusion_sums_weighted_reciprocal_ranks():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=10, weights=[1.0, 1.0])
    assert fused[1] == pytest.approx(1 / 11 + 1 / 12)
    assert fused[2] == pytest.approx(1 / 12)
    assert fused[3] == pytest.approx(1 / 13 + 1 / 11)
    assert max(fused, key=fused.get) == 1  # high in both lists beats first in one
    # only places count: rescaling a retriever's scores changes nothing
    dense, bm25 = [(1, 0.9), (2, 0.5), (3, 0.1)], [(3, 40.0), (1, 2.0)]
    rrf = RRF(k=10, dense_weight=1.0, bm25_weight=1.0)
    assert rrf.fuse(dense, bm25) == rrf.fuse([(r, s * 100) for r, s in dense], [(r, s / 7) for r, s in bm25])
    # a heavier BM25 weight lets BM25's first result win
    heavy = RRF(k=10, dense_weight=1.0, bm25_weight=3.0).fuse(dense, bm25)
    assert max(heavy, key=heavy.get) == 3
    # a smaller constant favours top ranks more
    sharp, flat = reciprocal_rank_fusion([[1, 2]], 1, [1.0]), reciprocal_rank_fusion([[1, 2]], 100, [1.0])
    assert sharp[1] / sharp[2] > flat[1] / flat[2] > 1


def test_convex_fusion_normalises_each_list_and_keeps_a_clear_lead():
    scores = [{0: 0.9, 1: 0.5, 2: 0.1}, {1: 12.0, 3: 3.0}]
    fused = convex_fusion(scores, [1.0, 2.0])
    assert fused[0] == pytest.approx(1.0) and fused[2] == pytest.approx(0.0)  # min-max: best 1, worst 0
    assert fused[1] == pytest.approx(0.5 + 2.0) and fused[3] == pytest.approx(0.0)
    assert all(0.0 <= v <= 3.0 for v in fused.values())
    assert convex_fusion([{}, {5: 1.0}], [1.0, 1.0]) == {5: 0.0}  # an empty list adds nothing, one item no span
    # the documented difference: far ahead in one list beats moderately placed in both (rank fusion disagrees)
    dense, bm25 = [(10, 1.0), (11, 0.5), (12, 0.0)], [(20, 1.0), (11, 0.3), (12, 0.0)]
    convex = Convex(dense_weight=1.0, bm25_weight=1.0).fuse(dense, bm25)
    rrf = RRF(k=60, dense_weight=1.0, bm25_weight=1.0).fuse(dense, bm25)
    assert convex[10] > convex[11] and convex[20] > convex[11]
    assert rrf[11] > rrf[10] and rrf[11] > rrf[20]


def test_fusion_is_chosen_from_the_settings_once(tmp_path):
    default = fusion_for(SearchConfig())
    assert isinstance(default, Convex)
    assert (default.dense_weight, default.bm25_weight) == (SearchConfig().dense_weight, SearchConfig().bm25_weight)
    rrf = fusion_for(SearchConfig(fusion="rrf", rrf_k=7, bm25_weight=0.5))
    assert isinstance(rrf, RRF) and rrf.k == 7 and rrf.bm25_weight == 0.5
    searcher = HybridIndex(IndexConfig(dir=tmp_path / "none")).searcher(SearchConfig(fusion="rrf"))
    assert isinstance(searcher.fusion, RRF)
    assert searcher.search("anything", 5) == []  # an empty index finds nothing, and loads no model for it


# -- per-file failures and removal, on a real index ------------------------------------------------------------

def _splitter_with_wrong_offsets(monkeypatch, marker: str) -> None:
    """Make the text splitter report a start offset one character off for pieces containing `marker`."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    original = RecursiveCharacterTextSplitter.create_documents

    def shifted(self, *args, **kwargs):
        pieces = original(self, *args, **kwargs)
        for piece in pieces:
            if marker in piece.page_content:
                piece.metadata["start_index"] += 1
        return pieces

    monkeypatch.setattr(RecursiveCharacterTextSplitter, "create_documents", shifted)


def test_chunker_reports_an_offset_mismatch_as_the_files_document_error(tmp_path, monkeypatch):
    """The fault is faked: a monkeypatched splitter returns a wrong offset (the real one has not been seen to)."""
    path = tmp_path / "a.txt"
    path.write_text("Heading\n\nThe Zorbian lighthouse was built in 1873.\n", "utf-8")
    doc = load_document(path)
    _splitter_with_wrong_offsets(monkeypatch, "Zorbian")
    with pytest.raises(DocumentError) as caught:
        Chunker(400, 50, "sections").split(doc)
    assert caught.value.path == doc.source


def test_a_file_that_fails_chunking_is_reported_and_the_rest_indexed(tmp_path, config, embedder, monkeypatch):
    """The fault is faked: a monkeypatched text splitter returns a wrong offset for the pieces of one document
    (page.html), which is what the offset check at chunking exists to catch. That file must be reported like
    any other bad file, the other files indexed, and an indexed version of it kept."""
    docs = make_docs(tmp_path / "docs")
    html = str(docs["html"].resolve())
    _splitter_with_wrong_offsets(monkeypatch, "Quellport")
    index = HybridIndex.open(config, embedder)
    report = index.update([tmp_path / "docs"], progress=False)
    assert [e.path for e in report.errors] == [html]
    assert sorted(Path(s).name for s in report.added) == ["notes.md", "report.pdf"]
    assert html not in {d.source for d in index.documents()} and not any(c.source == html for c in index.chunks)
    check_offsets(index)

    monkeypatch.undo()  # the splitter works again: the next update indexes the file
    report = index.update(progress=False)
    assert report.added == [html] and not report.errors
    html_chunks = [c for c in index.chunks if c.source == html]
    html_text = index.document_text(html)

    # an edit whose chunking fails keeps the last good version in the index
    docs["html"].write_text("<html><body><p>The harbour of Quellport never freezes now.</p></body></html>", "utf-8")
    _splitter_with_wrong_offsets(monkeypatch, "Quellport")
    report = index.update(progress=False)
    assert [e.path for e in report.errors] == [html] and not report.removed and not report.updated
    reopened = HybridIndex.open(config, embedder)
    assert [c for c in reopened.chunks if c.source == html] == html_chunks
    assert reopened.document_text(html) == html_text
    check_offsets(reopened)


def test_update_remove_drops_a_folder_and_stops_following_it(tmp_path, config, embedder):
    docs = make_docs(tmp_path / "docs")
    extra = tmp_path / "extra.txt"
    extra.write_text("Brine shrimp thrive in the salt pans of Orlay.", "utf-8")
    index = HybridIndex.open(config, embedder)
    index.update([tmp_path / "docs", extra], progress=False)
    assert len(index.documents()) == 4

    before = embedder.texts_embedded
    report = index.update(remove=[tmp_path / "docs"], progress=False)
    assert sorted(report.removed) == sorted(str(p.resolve()) for p in docs.values())
    assert embedder.texts_embedded == before and report.chunks_embedded == 0  # removing embeds nothing
    assert [d.source for d in index.documents()] == [str(extra.resolve())]
    assert {c.source for c in index.chunks} == {str(extra.resolve())} and report.chunk_count == len(index)
    assert str((tmp_path / "docs").resolve()) not in index.manifest.roots
    assert all(h.chunk.source == str(extra.resolve()) for h in search(index, "Zorbian lighthouse", 5))
    check_offsets(index)

    # the folder is no longer followed: a later update (another process) does not bring it back
    report = HybridIndex.open(config, embedder).update(progress=False)
    assert not report.added and not report.changed

    # removing the last document leaves an empty index that searches to nothing
    report = index.update(remove=[extra], progress=False)
    assert report.removed == [str(extra.resolve())]
    assert len(index) == 0 and index.documents() == [] and index.manifest.roots == []
    assert search(index, "Brine shrimp", 5) == []


def test_a_pdf_loses_its_running_headers_and_footers_but_not_its_pages(tmp_path):
    """A line that opens or closes most pages once its page number is set aside is page furniture: left in, it
    lands inside the sentence that runs over the page break and among a passage's words. Real PDF (matplotlib),
    read by the real loader (pypdf)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    from index.documents import load_document

    bodies = [["The harbour of Quellport freezes every February.", "Ferries to Ostrin leave at dawn."],
              ["The lighthouse was built in 1873 by Malia Terrow.", "Its lamp burned whale oil."],
              ["Odo Brenn kept the light for forty winters.", "He retired in 1961."],
              ["The museum opens at nine.", "Children under 12 enter free."]]
    path = tmp_path / "almanac.pdf"
    with PdfPages(path) as pdf:
        for n, body in enumerate(bodies, 1):
            fig = plt.figure(figsize=(8.5, 11))
            fig.text(0.08, 0.95, f"Harbour Almanac {n} / 4", fontsize=9)
            for i, line in enumerate(body):
                fig.text(0.08, 0.85 - 0.04 * i, line, fontsize=9)
            fig.text(0.08, 0.04, "Printed by the Quellport Press", fontsize=9)
            pdf.savefig(fig)
            plt.close(fig)
    text = load_document(path).text
    assert "Harbour Almanac" not in text and "Quellport Press" not in text
    assert text.count("\f") == 3
    for body in bodies:
        assert all(line in text for line in body)
