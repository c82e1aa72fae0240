"""The write stage: turn the decision's evidence (or the passages) into a draft answer with `[n]` markers.

Every writer has one interface, `Writer.write(question, passages, decision)`: a generator that yields text as it
is produced and returns the finished `Draft`. The pipeline never asks which writer it holds; `make_writer`
chooses one from settings, once.

- `ExtractiveWriter` (offline, milliseconds): quotes the evidence sentences the decision stage selected, each
  followed by the number of its passage. It cannot invent facts, and it knows the exact span behind every claim.
- `LLMWriter`: a LangChain chat model reads the passages and writes 1-3 cited sentences; verify then checks them.
  When verify finds no valid citation, the pipeline uses `fallback` (the extractive writer).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Protocol

from rag import markers
from rag.decide import Decision
from rag.sentences import display
from rag.settings import Settings
from rag.types import Passage
from rag.verify import Claim, Draft

if TYPE_CHECKING:
    from rag.llm import LLMGenerator

_TOKEN = re.compile(r"\S+\s*")


def tokens(text: str) -> list[str]:
    """Words with their trailing space: how a finished text is streamed."""
    return _TOKEN.findall(text)


class Writer(Protocol):
    label: str                      # what `Answer.backend` reports
    fallback: "Writer | None"       # used when verify finds nothing to keep

    def write(self, question: str, passages: Sequence[Passage], decision: Decision) -> Generator[str, None, Draft]:
        ...


class ExtractiveWriter:
    label = "extractive"
    fallback = None

    def write(self, question: str, passages: Sequence[Passage], decision: Decision) -> Generator[str, None, Draft]:
        claims = tuple(Claim(display(s.sentence.text), (s.passage.n,), ((s.sentence.start, s.sentence.end),))
                       for s in decision.evidence)
        # Marker-like text quoted from a document ("sounded [2] during storms") is escaped, never a citation.
        text = " ".join(f"{markers.escape_literal(c.text)} {markers.format_marker(c.cites)}" for c in claims)
        yield from tokens(text)
        return Draft(text, claims)


class LLMWriter:
    """Streams an answer from a chat model; the model is loaded on first use, once per writer (thread-safe)."""

    def __init__(self, settings: Settings, chat_model=None) -> None:
        from rag.llm import backend_label

        self.settings = settings.llm
        self.label = backend_label(settings.llm)
        self.fallback: Writer | None = ExtractiveWriter()
        self._chat_model = chat_model
        self._generator: LLMGenerator | None = None
        self._lock = threading.Lock()

    @property
    def generator(self) -> "LLMGenerator":
        from rag.llm import LLMGenerator

        with self._lock:
            if self._generator is None:
                self._generator = LLMGenerator(self.settings, self._chat_model)
            return self._generator

    def write(self, question: str, passages: Sequence[Passage], decision: Decision) -> Generator[str, None, Draft]:
        parts: list[str] = []
        for token in self.generator.stream(question, list(passages), flagged=decision.flagged_passages):
            parts.append(token)
            yield token
        return Draft("".join(parts).strip())


def make_writer(settings: Settings) -> Writer:
    """The writer the settings ask for (`llm.backend`): extractive, or an LLM behind LangChain."""
    return ExtractiveWriter() if settings.llm.backend == "extractive" else LLMWriter(settings)
