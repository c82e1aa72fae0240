"""One loaded generation: everything a search needs, swapped in one assignment so concurrent readers see a
consistent index; and the checks that a generation on disk is what was written.

Loading verifies before it parses: the manifest must parse and match its own seal, and every file it lists
must have the recorded size and SHA-256 (`inspect`); only then are the files read, and whatever still fails to
parse, or disagrees with the manifest (chunk count, document texts, vector count), is damage too. Damage is
never served and never a traceback: it is an `IndexDamagedError` naming each file, what is wrong with it and
the fix (`rag index --repair`).

Cost of hashing every file at open, measured on the 2-core development machine (warm page cache; two runs,
the machine shared with other jobs; `inspect` alone, then the whole `Snapshot.load` that includes it):

- the essay (66 chunks; 9 files plus the manifest, 0.29 MB): hashing 0.4-0.6 ms of a 1.4-1.9 ms load;
- 20,000 synthetic chunks (HNSW; 91 MB): hashing 59-121 ms of a 242-542 ms load, about a quarter of it; the rest
  is parsing chunks.jsonl and reading the FAISS and BM25 files, which loading does anyway.

So every file is hashed at every open; nothing is verified lazily. (`refresh` loads a generation only when the
pointer has moved, not per question; pruning after a write hashes the older generations it keeps or deletes.)

The same checks, without raising, are `inspect` (for `rag index --check`), and `salvage_documents` /
`salvage_vectors` read what is still good from a damaged generation (for `rag index --repair`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from index import storage
from index.chunking import Chunk
from index.config import IndexConfig
from index.errors import Damage, IndexDamagedError
from index.manifest import FORMAT_VERSION, MANIFEST, DocumentRecord, Manifest
from index.stores import DenseStore, LexicalStore

CHUNKS, DOCUMENTS, VECTORS, DENSE, BM25 = "chunks.jsonl", "documents.jsonl", "embeddings.npy", "dense.faiss", "bm25"
REQUIRED = (CHUNKS, DOCUMENTS, VECTORS, DENSE)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    generation: Path | None
    manifest: Manifest | None
    chunks: list[Chunk]
    texts: dict[str, str]
    dense: DenseStore | None
    lexical: LexicalStore | None

    @classmethod
    def empty(cls) -> "Snapshot":
        return cls(None, None, [], {}, None, None)

    @classmethod
    def load(cls, generation: Path | None, config: IndexConfig) -> "Snapshot":
        """Read and verify a generation folder written by `index.writer.write_generation` (None: no index yet).

        An index of another format version keeps only its manifest (and, for an older version, its stored texts)
        so that `HybridIndex.open` reports it and rebuilds it from them. Raises `IndexDamagedError`."""
        if generation is None:
            return cls.empty()
        found = inspect(generation)
        if found.manifest is None or (not found.legacy and found.damages):
            raise IndexDamagedError.of(found.damages, root=generation.parent)
        manifest = found.manifest
        if found.legacy:
            texts = _legacy_texts(generation) if manifest.format_version < FORMAT_VERSION else {}
            return cls(generation, manifest, [], texts, None, None)
        return _parse(generation, manifest, config)

    def vectors(self) -> np.ndarray | None:
        """The stored chunk vectors, row for row with `chunks` (memory-mapped), or None without a generation."""
        if self.generation is None or not (self.generation / VECTORS).exists():
            return None
        return np.load(self.generation / VECTORS, mmap_mode="r")


# -- verifying ------------------------------------------------------------------------------------------------------

@dataclass
class Inspection:
    """What is wrong with one generation on disk (nothing raised): its manifest if it can be trusted, the damage
    found, and the files whose size and SHA-256 match."""

    generation: Path
    manifest: Manifest | None
    damages: list[Damage] = field(default_factory=list)
    good: set[str] = field(default_factory=set)
    legacy: bool = False  # another format version: no checksums to verify against

    @property
    def ok(self) -> bool:
        return self.manifest is not None and not self.damages and not self.legacy


def read_manifest(generation: Path) -> tuple[Manifest | None, Damage | None]:
    """The manifest, or what is wrong with it. A manifest of this format version must match its own seal."""
    path = generation / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, Damage(str(path), "is missing")
    except OSError as exc:
        return None, Damage(str(path), f"cannot be read ({exc.strerror or exc})")
    if not data.strip():
        return None, Damage(str(path), "is empty")
    try:
        raw = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return None, Damage(str(path), f"is garbled (not UTF-8 text at byte {exc.start})")
    except json.JSONDecodeError as exc:
        return None, Damage(str(path), f"is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})")
    if not isinstance(raw, dict):
        return None, Damage(str(path), "is not a JSON object")
    try:
        manifest = Manifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        return None, Damage(str(path), f"does not have the manifest's fields ({where}: {first['msg']})")
    if manifest.format_version == FORMAT_VERSION and not manifest.seal_ok():
        return None, Damage(str(path), "fails its own checksum (it was edited or garbled after it was written)")
    return manifest, None


def describe_file(path: Path, size: int, sha256: str, actual: tuple[int, str] | None) -> str | None:
    """What is wrong with a file, given what was written (`size`, `sha256`) and what is there (None: missing)."""
    if actual is None:
        return "is missing"
    got_size, got_sha = actual
    if got_size == 0 and size:
        return f"is empty (0 bytes; {size:,} were written)"
    if got_size < size:
        return f"is shorter than when it was written ({got_size:,} of {size:,} bytes: truncated, or rows lost)"
    if got_size > size:
        return f"is longer than when it was written ({got_size:,} bytes; {size:,} were written)"
    if got_sha != sha256:
        return "is garbled (its size is right but its SHA-256 is not the one recorded when it was written)"
    return None


def inspect(generation: Path) -> Inspection:
    """Verify a generation without raising: the manifest, then the size and SHA-256 of every file it lists."""
    manifest, damage = read_manifest(generation)
    if manifest is None:
        return Inspection(generation, None, [damage])
    if manifest.format_version != FORMAT_VERSION:
        return Inspection(generation, manifest, legacy=True)
    found = Inspection(generation, manifest)
    for name in REQUIRED:
        if name not in manifest.files:
            found.damages.append(Damage(str(generation / MANIFEST), f"does not list {name}"))
    for rel, digest in manifest.files.items():
        path = generation / rel
        try:
            actual = storage.sha256_file(path) if path.stat().st_size == digest.size else (path.stat().st_size, "")
        except FileNotFoundError:
            actual = None
        except OSError as exc:
            found.damages.append(Damage(str(path), f"cannot be read ({exc.strerror or exc})"))
            continue
        problem = describe_file(path, digest.size, digest.sha256, actual)
        if problem:
            found.damages.append(Damage(str(path), problem))
        else:
            found.good.add(rel)
    return found


def _parse(generation: Path, manifest: Manifest, config: IndexConfig) -> Snapshot:
    """Read verified files; anything that still fails, or disagrees with the manifest, is damage."""
    def damaged(name: str, problem: str) -> IndexDamagedError:
        return IndexDamagedError(generation / name, problem, root=generation.parent)

    def unreadable(name: str, exc: Exception) -> IndexDamagedError:
        return damaged(name, f"cannot be read although its checksum matches ({type(exc).__name__}: {exc})")

    try:
        chunks = [Chunk.from_dict(row) for row in storage.read_jsonl(generation / CHUNKS)]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise unreadable(CHUNKS, exc) from None
    if len(chunks) != manifest.chunk_count:
        raise damaged(CHUNKS, f"holds {len(chunks)} chunks; the manifest records {manifest.chunk_count}")
    try:
        rows = storage.read_jsonl(generation / DOCUMENTS)
        texts = {row["source"]: row["text"] for row in rows}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise unreadable(DOCUMENTS, exc) from None
    if set(texts) != set(manifest.documents):
        raise damaged(DOCUMENTS, f"holds {len(texts)} documents; the manifest records {len(manifest.documents)}")
    for source, text in texts.items():
        if text_sha256(text) != manifest.documents[source].text_sha256:
            raise damaged(DOCUMENTS, f"holds a text of {source} that is not the one indexed")
    try:
        dense = DenseStore.load(generation / DENSE, config)
    except Exception as exc:  # faiss raises RuntimeError with its C++ message
        raise unreadable(DENSE, exc) from None
    if dense.index.ntotal != len(chunks) or (len(chunks) and dense.index.d != manifest.dimension):
        raise damaged(DENSE, f"holds {dense.index.ntotal} vectors of dimension {dense.index.d}; the manifest "
                             f"records {len(chunks)} of dimension {manifest.dimension}")
    try:
        lexical = LexicalStore.load(generation / BM25, len(chunks))
    except Exception as exc:  # bm25s raises whatever numpy or json raise
        raise unreadable(BM25, exc) from None
    return Snapshot(generation, manifest, chunks, texts, dense, lexical)


def _legacy_texts(generation: Path) -> dict[str, str]:
    """The stored texts of an older-format generation (no checksums then), whatever of them still parses."""
    texts: dict[str, str] = {}
    for row in _rows(generation / DOCUMENTS):
        if isinstance(row.get("source"), str) and isinstance(row.get("text"), str):
            texts[row["source"]] = row["text"]
    return texts


# -- salvaging from a damaged generation ----------------------------------------------------------------------------

def _rows(path: Path) -> Iterable[dict]:
    """The JSON objects of a JSON-lines file, skipping any line that is damaged."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    for line in data.splitlines():
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if isinstance(row, dict):
            yield row


@dataclass(frozen=True)
class StoredDocument:
    """A document text read back from a generation and verified against its recorded SHA-256."""

    record: DocumentRecord
    text: str
    generation: Path


def salvage_documents(generation: Path, manifest: Manifest | None) -> dict[str, StoredDocument]:
    """Every document text in `generation`'s documents.jsonl that matches its recorded SHA-256: the manifest's
    record when the manifest can be trusted, else the record written beside the text. Damaged lines are skipped."""
    found: dict[str, StoredDocument] = {}
    for row in _rows(generation / DOCUMENTS):
        source, text = row.get("source"), row.get("text")
        if not isinstance(source, str) or not isinstance(text, str):
            continue
        record = manifest.documents.get(source) if manifest is not None else None
        if record is None:
            try:
                record = DocumentRecord.model_validate(row.get("record"))
            except ValidationError:
                continue
            if record.source != source:
                continue
        if record.text_sha256 and text_sha256(text) == record.text_sha256:
            found[source] = StoredDocument(record, text, generation)
    return found


def salvage_vectors(found: Inspection) -> tuple[list[Chunk], np.ndarray] | None:
    """The chunks and their vectors of a generation whose chunks.jsonl and embeddings.npy both verified."""
    if found.manifest is None or found.legacy or not {CHUNKS, VECTORS} <= found.good:
        return None
    try:
        chunks = [Chunk.from_dict(row) for row in storage.read_jsonl(found.generation / CHUNKS)]
        vectors = np.load(found.generation / VECTORS, mmap_mode="r")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if vectors.ndim != 2 or len(vectors) != len(chunks):
        return None
    return chunks, vectors


def known_sources(found: Inspection) -> set[str] | None:
    """The documents a generation holds, as far as can be told for certain: from its manifest (trusted or of
    another format version), else from its document texts when every line of them reads; None otherwise (then it
    may hold anything, and must not be deleted on the strength of it)."""
    if found.manifest is not None:
        return set(found.manifest.documents)
    try:
        rows = storage.read_jsonl(found.generation / DOCUMENTS)
    except (OSError, ValueError):
        return None
    sources = [row.get("source") if isinstance(row, dict) else None for row in rows]
    if not all(isinstance(s, str) for s in sources):
        return None
    return set(sources)
