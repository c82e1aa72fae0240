"""Moving a FAISS index into PostgreSQL without embedding anything again.

The FAISS index's current generation is loaded and verified (`index.snapshot`: sizes and SHA-256 of every file),
then its documents, texts, chunks and stored vectors are written in one transaction. The vectors are used only
if they were made with the settings the Postgres index will serve (same embedding model and chunker), else the
move stops with a message: mixing them would silently search vectors of another model.
"""

from __future__ import annotations

from pathlib import Path

from index.config import IndexConfig
from index.errors import IndexStoreError
from index.hybrid import HybridIndex
from index.pg.store import PostgresIndex
from index.writer import UpdateReport


def migrate_from_faiss(target: PostgresIndex, source_dir: Path | str) -> UpdateReport:
    """Replace `target`'s contents with the FAISS index in `source_dir`."""
    source_dir = Path(source_dir).expanduser()
    faiss_config = IndexConfig.model_validate({**target.config.model_dump(), "dir": source_dir, "backend": "faiss"})
    faiss = HybridIndex(faiss_config)
    faiss.refresh()
    snap = faiss.snapshot
    m = snap.manifest
    if m is None:
        raise IndexStoreError(f"There is no FAISS index at {source_dir} to move. Fix: give --from the folder of an "
                              f"index built by `rag index` (its index.dir).")
    reason = m.mismatch(target.config.embedding_model, target.config.chunker_signature())
    if reason:
        raise IndexStoreError(f"The FAISS index at {source_dir} was {reason}, so its vectors do not fit these "
                              f"settings. Fix: use the settings it was built with (see `rag info`), or index the "
                              f"files into PostgreSQL afresh with `rag index` (which embeds them).")
    vectors = snap.vectors()
    return target.import_snapshot(snap.chunks, vectors, dict(snap.texts), dict(m.documents), list(m.roots),
                                  dict(m.title_overrides), dict(m.dropped))
