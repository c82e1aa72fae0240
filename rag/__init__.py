"""Grounded question answering over an index, with citations checked against the source spans.

Public API (what `ui/` and `eval/` use):

    settings = load_settings()                 # TOML + RAG_* environment
    rag = RAG.from_settings(settings)          # opens the index (builds the bundled essay if empty)
    answer = rag.ask("Why ...?", history=[])   # Answer; answer.to_dict() is the `rag ask --json` contract
    for event in rag.stream("Why ...?"): ...   # StreamEvent: passages, token..., answer
    rag.retrieve("Why ...?", k=10)             # ranked chunk-level passages, for retrieval metrics
"""

from index import DocumentError, DocumentRecord, IndexInfo, ModelLoadError, UpdateReport
from rag.errors import BackendError, RagError
from rag.pipeline import RAG
from rag.settings import AnswerSettings, LLMSettings, RetrievalSettings, Settings, UISettings, load_settings
from rag.types import Answer, Citation, Passage, StreamEvent, Validation

__all__ = [
    "RAG", "Settings", "load_settings", "AnswerSettings", "LLMSettings", "RetrievalSettings", "UISettings",
    "Answer", "Citation", "Passage", "StreamEvent", "Validation", "RagError", "BackendError", "DocumentError",
    "DocumentRecord", "IndexInfo", "ModelLoadError", "UpdateReport",
]
