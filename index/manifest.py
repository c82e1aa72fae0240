"""What an index was built from and how, so a reader can tell whether it still matches the settings."""

from __future__ import annotations

from pydantic import BaseModel, Field

FORMAT_VERSION = 1


class DocumentRecord(BaseModel):
    source: str
    title: str
    kind: str
    size: int
    sha256: str
    chunks: int
    indexed_at: str


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

    def mismatch(self, embedding_model: str, chunker: dict) -> str | None:
        """A human-readable reason why this index cannot serve the given settings, or None."""
        if self.format_version != FORMAT_VERSION:
            return f"index format version {self.format_version}, this program writes version {FORMAT_VERSION}"
        if self.embedding_model != embedding_model:
            return f"built with embedding model '{self.embedding_model}', settings ask for '{embedding_model}'"
        if self.chunker != chunker:
            return f"built with chunker settings {self.chunker}, settings ask for {chunker}"
        return None
