"""The index: exact offsets, incremental updates, crash safety, mismatch rebuilds, bad input, search quality.

Everything here uses the real embedding model, real FAISS and real BM25 stores on disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from index import (DocumentError, HybridIndex, IndexConfig, default_corpus_path, default_titles, load_document)
from index import storage
from index.chunking import Chunker


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


def check_offsets(index: HybridIndex) -> None:
    assert len(index.chunks) > 0
    for chunk in index.chunks:
        assert index.document_text(chunk.source)[chunk.start:chunk.end] == chunk.text


def test_essay_chunks_round_trip_offsets_and_carry_headings(essay_text):
    doc = load_document(default_corpus_path())
    assert doc.text == essay_text  # the bundled copy is byte for byte the corpus
    chunks = Chunker(600, 100).split(doc)
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
    assert "Keepers" in md_sections
    hit = index.search("When was the Zorbian lighthouse built?", k=1)[0]
    assert "1873" in hit.chunk.text
    hit = index.search("copper exports Vandal Bay", k=1, mode="bm25")[0]
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
    assert "1990" in index.search("When was the lighthouse rebuilt?", k=1)[0].chunk.text

    docs["html"].unlink()
    report = index.update(progress=False)
    assert report.removed == [str(docs["html"].resolve())]
    assert not any(c.source.endswith("page.html") for c in index.chunks)
    assert all(h.chunk.source.endswith(("notes.md", "report.pdf")) for h in index.search("Quellport harbour", k=5))
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
    assert "1873" in index.search("Zorbian lighthouse", k=1)[0].chunk.text


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
    assert "1873" in reopened.search("Zorbian lighthouse built", k=1)[0].chunk.text
    # the next run finishes the job and cleans up the abandoned generation
    report = reopened.update(progress=False)
    assert report.updated and "2001" in reopened.search("lighthouse demolished", k=1)[0].chunk.text
    assert len(list(config.dir.glob("gen-*"))) == 1 and not list(config.dir.glob(".staging-*"))


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
    assert index.manifest.format_version == 1 and len(index.documents()) == 3
    check_offsets(index)


def test_unloadable_model_gives_one_clear_error(tmp_path):
    from index import Embedder, ModelLoadError

    with pytest.raises(ModelLoadError, match="offline"):
        Embedder("some-org/model-that-is-not-here")


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
        hits = index.search(question, k=3, mode=mode)
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
    approx = HybridIndex.open(IndexConfig(dir=tmp_path / "hnsw", index_type="auto", ann_threshold=100), embedder)
    approx.update([folder], progress=False)
    assert approx.manifest.index_type == "hnsw" and exact.manifest.index_type == "flat"
    overlap = []
    for question, _ in QUESTIONS:
        a = {h.chunk.id for h in exact.search(question, k=10, mode="dense")}
        b = {h.chunk.id for h in approx.search(question, k=10, mode="dense")}
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
    import os
    import subprocess
    import sys

    env = dict(os.environ, RAG_INDEX__DIR=str(config.dir))
    out = subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    sources = [d.source for d in HybridIndex.open(config, embedder).documents()]
    assert sources == [str(default_corpus_path().resolve())]
