"""Grounded question answering over an index, with citations checked against the source spans.

Public API (what `ui/` and `eval/` use):

    settings = load_settings()                 # TOML + RAG_* environment
    rag = RAG.from_settings(settings)          # opens the index (builds the bundled essay if empty)
    answer = rag.ask("Why ...?", history=[])   # Answer; answer.to_dict() is the `rag ask --json` contract
    for event in rag.stream("Why ...?"): ...   # StreamEvent: passages, token..., answer
    rag.retrieve("Why ...?", k=10)             # ranked chunk-level passages, for retrieval metrics
    rag.decide("Why ...?")                     # the decision stage's verdict and typed features
    from rag import markers                    # the one definition of the `[n]` citation syntax

The answer path's stages and their types are listed in `rag.pipeline`. Names resolve lazily, so importing
`rag.markers` (as eval's metrics do) loads no model, index or ML library.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "RAG": "rag.pipeline", "REFUSAL_TEXT": "rag.pipeline",
    "Settings": "rag.settings", "load_settings": "rag.settings", "AnswerSettings": "rag.settings",
    "LLMSettings": "rag.settings", "RetrievalSettings": "rag.settings", "UISettings": "rag.settings",
    "Answer": "rag.types", "Citation": "rag.types", "Passage": "rag.types", "StreamEvent": "rag.types",
    "Validation": "rag.types", "Turn": "rag.types",
    "Decision": "rag.decide", "DecisionFeatures": "rag.decide", "DecisionModel": "rag.decide",
    "RagError": "rag.errors", "BackendError": "rag.errors",
    "DocumentError": "index", "DocumentRecord": "index", "IndexInfo": "index", "ModelLoadError": "index",
    "UpdateReport": "index", "Span": "index", "IndexStoreError": "index", "IndexDamagedError": "index",
    "DocumentSets": "rag.docsets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rag' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
