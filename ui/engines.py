"""The RAG objects behind the chat: one per document set and session configuration, all sharing one model.

Document sets themselves (where they live, uploads, opening a set's RAG) belong to `rag.docsets.DocumentSets`;
this module only adds what a chat session picks on top of a set (generator, k, budget) and caches the RAG of
each such configuration, so a browser session holds nothing but a small `ChatConfig`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from rag import RAG, Settings
from rag.docsets import DEFAULT_SET, DocumentSets

__all__ = ["DEFAULT_SET", "ChatConfig", "Engines", "Generator"]

Generator = Literal["extractive", "llm"]
_MAX_CACHED = 32


@dataclass(frozen=True)
class ChatConfig:
    """What one browser session asks with; small and immutable so it can live in gr.State."""

    set: str = DEFAULT_SET
    generator: Generator = "extractive"
    k: int = 5
    budget: int = 2500


class Engines:
    """The document sets plus a cache of RAG objects per configuration; thread-safe, shared by all sessions."""

    def __init__(self, settings: Settings, rag: RAG) -> None:
        self.settings = settings
        self.sets = DocumentSets(settings, rag)
        self._derived: OrderedDict[tuple, RAG] = OrderedDict()
        self._lock = threading.Lock()

    # -- configuration ------------------------------------------------------------------------------------------
    @property
    def llm_configured(self) -> bool:
        return self.settings.llm.backend != "extractive"

    def default_config(self) -> ChatConfig:
        """The configured backend (an LLM if settings name one), k and budget, on the default index."""
        return ChatConfig(DEFAULT_SET, "llm" if self.llm_configured else "extractive", self.settings.retrieval.k,
                          self.settings.retrieval.budget_chars)

    def generator_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the generator picker; the LLM only when settings configure one."""
        choices = [("Extractive — quotes the documents (no LLM)", "extractive")]
        if self.llm_configured:
            choices.append((f"LLM — {self.llm_label()}", "llm"))
        return choices

    def llm_label(self) -> str:
        return self.rag(ChatConfig(DEFAULT_SET, "llm", self.settings.retrieval.k,
                                   self.settings.retrieval.budget_chars)).backend

    # -- how sets are named in the UI ---------------------------------------------------------------------------
    def set_label(self, key: str) -> str:
        """How a set is named inside a sentence ("Added x to the default index")."""
        return "the default index" if key == DEFAULT_SET else f"set “{key}”"

    def set_choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for the set picker: the default index (with its titles), then the uploaded sets."""
        titles = ", ".join(sorted({d.title for d in self.sets.documents(DEFAULT_SET)}))
        default = f"Default index ({titles})" if titles else "Default index"
        return [(default, DEFAULT_SET)] + [(f"Set: {name}", name) for name in self.sets.names()]

    def discard_set_if_empty(self, key: str) -> bool:
        """`DocumentSets.discard_if_empty`, also forgetting the cached configurations of a discarded set."""
        folder = str(self.sets.directory(key)) if self.sets.exists(key) else None
        discarded = self.sets.discard_if_empty(key)
        if discarded and folder:
            with self._lock:
                for cached in [c for c in self._derived if c[0] == folder]:
                    del self._derived[cached]
        return discarded

    # -- answering ----------------------------------------------------------------------------------------------
    def rag(self, config: ChatConfig) -> RAG:
        """The RAG for a session's configuration; derived ones share the set's open index and the model."""
        base = self.sets.open(config.set)
        llm = {"backend": "extractive"} if config.generator == "extractive" or not self.llm_configured else \
            {"backend": self.settings.llm.backend}
        target = base.settings.updated(retrieval={"k": config.k, "budget_chars": config.budget}, llm=llm)
        if target == base.settings:
            return base
        key = (str(base.settings.index.dir), config.generator, config.k, config.budget)
        with self._lock:
            rag = self._derived.get(key)
            if rag is None:
                rag = base.with_settings(target)
                self._derived[key] = rag
                while len(self._derived) > _MAX_CACHED:
                    self._derived.popitem(last=False)
            else:
                self._derived.move_to_end(key)
            return rag
