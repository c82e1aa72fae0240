"""Document sets and uploads (`rag.docsets.DocumentSets`) with the real embedding model in a temporary index dir:
storing and indexing an upload into a new set, the messages for files that cannot be used, cleaning up after a
file that fails to index, set names, discarding an empty set, and uploads from several threads at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from index import DocumentError
from rag import RAG, RagError, Settings
from rag.docsets import DEFAULT_SET, UPLOADS, DocumentSets, sanitise_set_name

LIGHTHOUSE = ("The Zorbian Lighthouse\n\nThe Zorbian lighthouse was built in 1873 by engineer Malia Terrow. "
              "It stands on the northern cape and its lamp can be seen for twenty nautical miles.\n")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("docsets")


@pytest.fixture(scope="module")
def settings(root) -> Settings:
    return Settings(index={"dir": root / "index"})


@pytest.fixture(scope="module")
def default_rag(settings, embedder) -> RAG:
    # An empty default index: these tests are about the other sets, and embedding the essay costs seconds.
    return RAG.from_settings(settings, embedder=embedder, build_if_missing=False)


@pytest.fixture(scope="module")
def sets(settings, default_rag) -> DocumentSets:
    return DocumentSets(settings, default_rag)


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_upload_into_a_new_set_is_stored_indexed_and_answerable(sets, default_rag, root, tmp_path):
    key = sets.create("  Lighthouse Notes! ")
    assert key == "lighthouse-notes"
    assert sets.directory(key) == root / "sets" / key  # <index dir>/../sets/<name>/
    assert key not in sets.names()  # nothing uploaded yet, so not offered

    src = write(tmp_path / "Zorbian Lighthouse.txt", LIGHTHOUSE)
    stored = sets.save_upload(key, src.name, src)
    assert stored == sets.uploads_dir(key) / "Zorbian_Lighthouse.txt" and stored.parent.name == UPLOADS
    assert stored.read_text(encoding="utf-8") == LIGHTHOUSE
    assert not list(stored.parent.glob(".upload-*"))  # the atomic copy leaves no temporary file

    steps: list[float] = []
    report = sets.add_files(key, [stored], progress=lambda frac, msg: steps.append(frac))
    assert report.added == [str(stored.resolve())] and not report.errors
    assert steps == sorted(steps) and steps[-1] == pytest.approx(1.0)
    assert key in sets.names()
    assert [d.source for d in sets.documents(key)] == [str(stored.resolve())]
    assert sets.documents(DEFAULT_SET) == []  # the upload went into its own set only

    rag = sets.open(key)
    assert sets.open(key) is rag  # opened once
    calibrated = rag.calibration.computed
    assert calibrated == 1  # measured with the upload, not left to the first question
    assert rag.embedder is default_rag.embedder  # the model is shared, not loaded again
    answer = rag.ask("When was the Zorbian lighthouse built?")
    assert not answer.refused and answer.citations and rag.calibration.computed == calibrated
    text = rag.document_text(answer.citations[0].source)
    assert all(c.source == str(stored.resolve()) and c.text == text[c.start:c.end] for c in answer.citations)
    assert not sets.holds_bundled_essay(key)

    # The same file again is the same stored file; another file with the same name is stored beside it.
    assert sets.save_upload(key, src.name, src) == stored
    (tmp_path / "other").mkdir()
    other = write(tmp_path / "other" / "Zorbian Lighthouse.txt", "A different text.\n")
    assert sets.save_upload(key, other.name, other).name == "Zorbian_Lighthouse-2.txt"


@pytest.mark.parametrize("name, content, message", [
    ("setup.exe", b"MZ\x90\x00binary", "unsupported file type '.exe'"),
    ("notes", b"no suffix", "unsupported file type '(none)'"),
    ("empty.txt", b"", "is empty; there is no text to index"),
])
def test_unusable_uploads_are_refused_with_a_reason(sets, tmp_path, name, content, message):
    key = sets.create("refusals")
    src = write(tmp_path / name, content)
    with pytest.raises(DocumentError) as caught:
        sets.save_upload(key, name, src)
    assert message in caught.value.reason and caught.value.path == name
    uploads = sets.uploads_dir(key)
    assert not uploads.exists() or not any(uploads.iterdir())


def test_oversized_upload_is_refused_with_the_limit(root, default_rag, tmp_path):
    settings = Settings(index={"dir": root / "index"}, ui={"max_upload_mb": 0.001})  # 1,000 bytes
    small = DocumentSets(settings, default_rag.with_settings(settings))
    key = small.create("big")
    src = write(tmp_path / "big.txt", "word " * 2000)
    with pytest.raises(DocumentError, match=r"is 0\.0 MB; uploads are limited to 0\.001 MB"):
        small.save_upload(key, "big.txt", src)
    assert not (small.uploads_dir(key) / "big.txt").exists()
    assert small.discard_if_empty(key)


def test_a_file_that_fails_to_index_is_removed_from_uploads(sets, tmp_path):
    key = sets.create("failing")
    good = sets.save_upload(key, "good.md",
                            write(tmp_path / "good.md", "# Good\n\nThe Quorvian bridge opened in 1911.\n"))
    bad = sets.save_upload(key, "bad.txt", write(tmp_path / "bad.txt", b"\x00\x01binary\x00data"))
    assert bad.is_file()  # it passed the upload checks; only reading it shows it is not text
    report = sets.add_files(key, [good, bad])
    assert [e.path for e in report.errors] == [str(bad.resolve())] and "binary" in report.errors[0].reason
    assert not bad.exists() and good.exists()
    assert [d.source for d in sets.documents(key)] == [str(good.resolve())]


def test_set_names_are_sanitised_and_never_paths(sets, tmp_path):
    assert sanitise_set_name("  My Notes (2024)! ") == "my-notes-2024"
    assert sanitise_set_name("../etc") == "etc" and sanitise_set_name("///") == ""
    assert len(sanitise_set_name("x" * 200)) == 60
    for bad in ("../etc", "a/b", "Upper", ""):
        with pytest.raises(RagError, match="not a valid document set name"):
            sets.open(bad)
    with pytest.raises(RagError, match="Give the new document set a name"):
        sets.create("  ///  ")
    with pytest.raises(RagError, match="reserved for the default index"):
        sets.create("Default")
    with pytest.raises(RagError, match="no document set named 'nope'"):
        sets.open("nope")
    with pytest.raises(RagError, match="no document set named 'gone'"):
        sets.save_upload("gone", "a.txt", write(tmp_path / "a.txt", "text"))

    # A file name is reduced to a plain name inside the set's uploads folder.
    key = sets.create("names")
    stored = sets.save_upload(key, "..\\../evil name?.TXT", write(tmp_path / "evil.txt", "Some text.\n"))
    assert stored == sets.uploads_dir(key) / "evil_name.txt"


def test_an_empty_set_is_discarded_and_a_used_one_kept(sets, tmp_path):
    key = sets.create("Empty Set")
    assert sets.open(key).documents() == []  # a new set starts empty: the essay is not copied in
    assert key not in sets.names()
    assert sets.discard_if_empty(key) is True
    assert not sets.directory(key).exists()
    with pytest.raises(RagError, match="no document set named"):
        sets.open(key)
    assert sets.discard_if_empty(DEFAULT_SET) is False

    used = sets.create("kept")
    stored = sets.save_upload(used, "kept.txt", write(tmp_path / "kept.txt", "The kept set holds this sentence.\n"))
    assert sets.discard_if_empty(used) is False  # a stored upload not yet indexed counts
    sets.add_files(used, [stored])
    assert sets.discard_if_empty(used) is False and sets.directory(used).is_dir()


def test_concurrent_uploads_of_the_same_name_never_overwrite_each_other(sets, tmp_path):
    key = sets.create("busy")
    sources = [write(tmp_path / f"src-{i}.txt", f"Upload number {i}.\n") for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        stored = list(pool.map(lambda src: sets.save_upload(key, "same.txt", src), sources))
    assert len(set(stored)) == 8
    assert sorted(p.read_text(encoding="utf-8") for p in stored) == sorted(s.read_text(encoding="utf-8")
                                                                          for s in sources)


def test_the_bundled_essay_is_recognised(essay_settings, essay_rag):
    assert DocumentSets(essay_settings, essay_rag).holds_bundled_essay(DEFAULT_SET)


def test_the_default_rag_must_read_the_configured_index(settings, default_rag, tmp_path):
    with pytest.raises(ValueError, match="not the configured index"):
        DocumentSets(Settings(index={"dir": tmp_path / "elsewhere"}), default_rag)
