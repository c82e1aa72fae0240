"""Document sets: the default index plus sets of a user's own uploaded files, each an index of its own.

One `DocumentSets` per process owns everything about sets, so the chat UI (and the CLI) never spell out a
folder, a file name or an upload rule themselves:

- where sets live: the default set is the configured index directory; a set named `notes` lives in
  `<index dir>/../sets/notes/`, with the files uploaded into it under `<set>/uploads/` (`UPLOADS`);
- set names: `sanitise_set_name` makes a folder-safe key; `DEFAULT_SET` is reserved;
- listing, creating, and discarding a set that ended up empty;
- opening the `RAG` of a set once, sharing the loaded embedding model (`RAG.with_settings`);
- storing an upload (`save_upload`: type, size, empty file, safe name, atomic copy) and indexing it
  (`add_files`: a stored upload that cannot be indexed is deleted, so it does not fail again on every update);
- whether a set holds the bundled essay (`holds_bundled_essay`), which the essay's example questions need.

It is shared by every browser session, so it is thread-safe: one lock guards the registry of open sets, and a
lock per set serialises the changes to that set (uploads, indexing, discarding), while answering never waits.
"""

from __future__ import annotations

import functools
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from index import SUPPORTED_SUFFIXES, DocumentError, DocumentRecord, UpdateReport, default_corpus_path
from index.corpus import ESSAY_FILE
from index.documents import sha256_of_file
from rag.errors import RagError
from rag.pipeline import RAG
from rag.settings import Settings

DEFAULT_SET = "default"       # the key of the configured index
UPLOADS = "uploads"           # the folder, inside a set's index directory, that holds the files uploaded into it
SETS = "sets"                 # the folder, next to the configured index directory, that holds the other sets
MAX_NAME = 60

Progress = Callable[[float, str], None]


def sanitise_set_name(name: str) -> str:
    """A folder-safe set key ('' when nothing usable is left): letters, digits, '.', '_' and '-', lower case."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", (name or "").strip()).strip("._-")
    return cleaned[:MAX_NAME].lower().strip("._-")


def safe_file_name(filename: str) -> tuple[str, str]:
    """(stem, suffix) of an uploaded file's name, made safe for storing: no folders, only plain characters."""
    name = Path(str(filename).replace("\\", "/")).name
    stem, suffix = Path(name).stem, Path(name).suffix.lower()
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "upload", suffix


@functools.lru_cache(maxsize=1)
def _essay_sha256() -> str | None:
    try:
        return sha256_of_file(default_corpus_path())
    except OSError:
        return None


def is_bundled_essay(record: DocumentRecord) -> bool:
    """Whether an indexed document is the bundled essay: the same bytes, or (a copy from another install or an
    older version) the same file name."""
    return record.sha256 == _essay_sha256() or record.source.replace("\\", "/").rsplit("/", 1)[-1] == ESSAY_FILE


class DocumentSets:
    """The document sets of one configuration; thread-safe, shared by every session of a process.

    `default` is the already open RAG over `settings.index.dir` (opened on first use when not given); every other
    set's RAG reuses its embedding model."""

    def __init__(self, settings: Settings, default: RAG | None = None) -> None:
        self.settings = settings
        self.default_dir = Path(settings.index.dir).expanduser()
        if default is not None and Path(default.settings.index.dir).expanduser() != self.default_dir:
            raise ValueError(f"The default RAG reads {default.settings.index.dir}, not the configured index "
                             f"{self.default_dir}.")
        self.root = self.default_dir.parent / SETS
        self._open: dict[str, RAG] = {DEFAULT_SET: default} if default is not None else {}
        self._lock = threading.RLock()                      # the registry: _open and _set_locks
        self._set_locks: dict[str, threading.RLock] = {}    # per set: uploads, indexing, discarding

    # -- where sets live ----------------------------------------------------------------------------------------
    def check_key(self, key: str) -> str:
        """`key` if it can name a set, else a RagError (a key is never a path: '../x' is refused)."""
        if key == DEFAULT_SET:
            return key
        if not key or key != sanitise_set_name(key):
            raise RagError(f"'{key}' is not a valid document set name.")
        return key

    def directory(self, key: str) -> Path:
        """The index directory of set `key`."""
        return self.default_dir if self.check_key(key) == DEFAULT_SET else self.root / key

    def uploads_dir(self, key: str) -> Path:
        """Where files uploaded into set `key` are stored."""
        return self.directory(key) / UPLOADS

    def names(self) -> list[str]:
        """The sets created by uploads that hold at least one uploaded file, by name (the default set excluded)."""
        if not self.root.is_dir():
            return []
        names = []
        for child in sorted(self.root.iterdir()):
            uploads = child / UPLOADS
            if (child.is_dir() and child.name == sanitise_set_name(child.name) and child.name != DEFAULT_SET
                    and uploads.is_dir() and any(p.is_file() and not p.name.startswith(".")
                                                 for p in uploads.iterdir())):
                names.append(child.name)
        return names

    def exists(self, key: str) -> bool:
        try:
            return key == DEFAULT_SET or self.directory(key).is_dir()
        except RagError:
            return False

    # -- opening ------------------------------------------------------------------------------------------------
    def open(self, key: str) -> RAG:
        """The RAG (with the configured settings) over set `key`, opened once and shared."""
        with self._lock:
            rag = self._open.get(key)
            if rag is not None:
                return rag
            if key == DEFAULT_SET:
                rag = RAG.from_settings(self.settings)
            else:
                folder = self.directory(key)
                if not folder.is_dir():
                    known = ", ".join([DEFAULT_SET, *self.names()])
                    raise RagError(f"There is no document set named '{key}' (available: {known}).")
                # A new set starts empty instead of being seeded with the bundled essay.
                rag = self.open(DEFAULT_SET).with_settings(self.settings.updated(index={"dir": folder}),
                                                           build_if_missing=False)
            self._open[key] = rag
            return rag

    def documents(self, key: str) -> list[DocumentRecord]:
        return self.open(key).documents()

    def holds_bundled_essay(self, key: str) -> bool:
        """Whether set `key` holds the bundled essay (the example questions are about it)."""
        return any(is_bundled_essay(d) for d in self.documents(key))

    # -- creating and discarding --------------------------------------------------------------------------------
    def create(self, name: str) -> str:
        """Make (or reuse) the set called `name`; returns its key."""
        key = sanitise_set_name(name)
        if not key:
            raise RagError("Give the new document set a name (letters, digits, '-', '_' or '.').")
        if key == DEFAULT_SET:
            raise RagError(f"'{DEFAULT_SET}' is reserved for the default index; choose another name.")
        with self._set_lock(key):
            self.directory(key).mkdir(parents=True, exist_ok=True)
            self.open(key)
        return key

    def discard_if_empty(self, key: str) -> bool:
        """Remove set `key` when it holds no document and no stored upload (e.g. every file of a new set was
        rejected); returns whether it was removed. The default set is never removed."""
        if key == DEFAULT_SET or not self.exists(key):
            return False
        with self._set_lock(key):
            folder = self.directory(key)
            if not folder.is_dir():
                return False
            uploads = folder / UPLOADS
            if uploads.is_dir() and any(p.is_file() and not p.name.startswith(".") for p in uploads.iterdir()):
                return False
            if self.open(key).documents():
                return False
            with self._lock:
                self._open.pop(key, None)
            shutil.rmtree(folder, ignore_errors=True)
            return True

    # -- uploads ------------------------------------------------------------------------------------------------
    def save_upload(self, key: str, filename: str, src_path: str | Path) -> Path:
        """Copy an uploaded file into set `key`'s uploads folder under a safe name; a DocumentError (naming the
        file) for a type that cannot be indexed, a file over `ui.max_upload_mb`, or an empty file. A different
        file with the same name is stored beside it (`name-2.txt`); the same file again replaces itself."""
        name = Path(str(filename).replace("\\", "/")).name
        safe_stem, suffix = safe_file_name(name)
        if suffix not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            raise DocumentError(name or "upload",
                                f"unsupported file type '{suffix or '(none)'}'; upload one of {kinds}")
        src = Path(src_path)
        size = src.stat().st_size
        limit_mb = self.settings.ui.max_upload_mb
        if size > limit_mb * 1e6:
            raise DocumentError(name, f"is {size / 1e6:.1f} MB; uploads are limited to {limit_mb:g} MB")
        if size == 0:
            raise DocumentError(name, "is empty; there is no text to index")
        with self._set_lock(key):
            if not self.exists(key):
                self.open(key)  # raises the readable "no document set named ..." error
            folder = self.uploads_dir(key)
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / f"{safe_stem}{suffix}"
            counter = 2
            while dest.exists() and not _same_bytes(dest, src):
                dest = folder / f"{safe_stem}-{counter}{suffix}"
                counter += 1
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=suffix)
            try:
                with open(fd, "wb") as out, open(src, "rb") as inp:
                    shutil.copyfileobj(inp, out)
                Path(tmp).replace(dest)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            return dest

    def add_files(self, key: str, paths: Iterable[str | Path], progress: Progress | None = None) -> UpdateReport:
        """Index files (usually just saved by `save_upload`) into set `key`; the set's open index is updated in
        place. A stored upload that cannot be indexed is deleted, so it does not fail again on every update.
        `progress(fraction, message)` reports reading and embedding."""
        paths = [Path(p) for p in paths]
        with self._set_lock(key):
            rag = self.open(key)
            if progress:
                progress(0.0, f"Reading {len(paths)} file(s)…")

            def on_embedded(done: int, total: int) -> None:
                if progress:
                    progress(0.05 + 0.9 * done / max(total, 1), f"Embedding chunks: {done}/{total}")

            report = rag.index.update(paths, progress=False, on_embedded=on_embedded)
            if report.chunks_embedded and len(rag.index):
                # The new version's scale (rag.calibration, 0.2-0.7 s) is measured now, while the user watches an
                # upload, rather than on the first question after it.
                rag.calibration()
            uploads = self.uploads_dir(key).resolve()
            for error in report.errors:
                bad = Path(error.path).resolve()
                if bad.parent == uploads and bad.is_file():
                    bad.unlink()
            if progress:
                progress(1.0, report.summary())
            return report

    # -- helpers ------------------------------------------------------------------------------------------------
    def _set_lock(self, key: str) -> threading.RLock:
        self.check_key(key)
        with self._lock:
            return self._set_locks.setdefault(key, threading.RLock())


def _same_bytes(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    return sha256_of_file(a) == sha256_of_file(b)
