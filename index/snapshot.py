"""One loaded generation: everything a search needs, swapped in one assignment so concurrent readers see a
consistent index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from index import storage
from index.chunking import Chunk
from index.config import IndexConfig
from index.manifest import FORMAT_VERSION, Manifest
from index.stores import DenseStore, LexicalStore


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
        """Read a generation folder written by `index.writer.write_generation` (None: no index yet)."""
        if generation is None:
            return cls.empty()
        manifest = Manifest.model_validate_json((generation / "manifest.json").read_text(encoding="utf-8"))
        if manifest.format_version != FORMAT_VERSION:
            # Unknown layout: keep only the manifest so open() can report it and rebuild from the files.
            return cls(generation, manifest, [], {}, None, None)
        chunks = [Chunk.from_dict(row) for row in storage.read_jsonl(generation / "chunks.jsonl")]
        texts = {row["source"]: row["text"] for row in storage.read_jsonl(generation / "documents.jsonl")}
        dense = DenseStore.load(generation / "dense.faiss", config)
        lexical = LexicalStore.load(generation / "bm25", len(chunks))
        return cls(generation, manifest, chunks, texts, dense, lexical)

    def vectors(self) -> np.ndarray | None:
        """The stored chunk vectors, row for row with `chunks` (memory-mapped), or None without a generation."""
        if self.generation is None or not (self.generation / "embeddings.npy").exists():
            return None
        return np.load(self.generation / "embeddings.npy", mmap_mode="r")
