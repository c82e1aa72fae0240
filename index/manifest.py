"""What an index was built from and how, so a reader can tell whether it still matches the settings, and what
every file of a generation must look like, so a reader can tell whether it is intact.

Format version 2 (this one) adds, over version 1: `files` (size and SHA-256 of every file of the generation),
`text_sha256` on each document record (the SHA-256 of the stored text, also written beside the text in
`documents.jsonl`, so the texts can be verified and rescued without the manifest), `dropped` (documents the user
removed, so pruning can tell a removed document from a lost one) and `seal` (the manifest's own SHA-256, so a
manifest that still parses but was edited or garbled is not trusted). A version-1 index is rebuilt from its
stored texts when opened.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

FORMAT_VERSION = 2
MANIFEST = "manifest.json"


class DocumentRecord(BaseModel):
    source: str
    title: str
    kind: str
    size: int
    sha256: str
    chunks: int
    indexed_at: str
    text_sha256: str = ""  # SHA-256 of the stored (extracted) text; "" in indexes of format version 1


class FileDigest(BaseModel):
    size: int
    sha256: str


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    embedding_model: str
    dimension: int
    chunker: dict
    index_type: str
    chunk_count: int = 0
    roots: list[str] = Field(default_factory=list)
    documents: dict[str, DocumentRecord] = Field(default_factory=dict)
    title_overrides: dict[str, str] = Field(default_factory=dict)
    built_at: str
    files: dict[str, FileDigest] = Field(default_factory=dict)  # path relative to the generation -> digest
    dropped: dict[str, str] = Field(default_factory=dict)       # source removed on request -> when
    seal: str = ""

    def mismatch(self, embedding_model: str, chunker: dict) -> str | None:
        """A human-readable reason why this index cannot serve the given settings, or None."""
        if self.format_version != FORMAT_VERSION:
            return f"index format version {self.format_version}, this program writes version {FORMAT_VERSION}"
        if self.embedding_model != embedding_model:
            return f"built with embedding model '{self.embedding_model}', settings ask for '{embedding_model}'"
        if self.chunker != chunker:
            return f"built with chunker settings {self.chunker}, settings ask for {chunker}"
        return None

    def compute_seal(self) -> str:
        """SHA-256 of the manifest's JSON with an empty seal (pydantic writes fields in a fixed order)."""
        return hashlib.sha256(self.model_copy(update={"seal": ""}).model_dump_json().encode("utf-8")).hexdigest()

    def sealed(self) -> "Manifest":
        return self.model_copy(update={"seal": self.compute_seal()})

    def seal_ok(self) -> bool:
        return bool(self.seal) and self.seal == self.compute_seal()
