"""The write stage: turn the decision's evidence (or the passages) into a draft answer with `[n]` markers.

Every writer has one interface, `Writer.write(question, passages, decision)`: a generator that yields text as it
is produced and returns the finished `Draft`. The pipeline never asks which writer it holds; `make_writer`
chooses one from settings, once.

- `ExtractiveWriter` (offline, milliseconds): quotes the evidence sentences the decision stage selected, each
  followed by the number of its passage. It cannot invent facts, and it knows the exact span behind every claim.
- `ComposeWriter` (the default for an LLM, `llm.mode = "compose"`): the chat model phrases the evidence sentences
  the decision stage selected (numbered by their passages) in 1-3 sentences citing them; verify checks every
  sentence against the evidence sentences it cites. Answerability stays with the decision stage, so a
  model that declines gets the extractive answer, not a refusal (`declines = False`).
- `LLMWriter` (`llm.mode = "read"`): the chat model reads the passages, writes 1-3 cited sentences and may
  decline; verify then checks them.
When verify keeps nothing, or the LLM fails (`rag.errors.BackendError`), the pipeline uses `fallback` (the
extractive writer) and says so in `backend` and `validation.fallback`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Protocol

from rag import markers
from rag.decide import Decision
from rag.evidence import ScoredSentence
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


def evidence_claim(s: ScoredSentence) -> Claim:
    """An evidence sentence as a claim citing its passage: its text as a reader sees it (`display`) and its span;
    a block it introduces (a table's rows, a code example's lines: `rag.evidence.introduced_block`) follows it a
    line each, with their spans."""
    units = (s.sentence, *s.block)
    return Claim("\n".join(display(u.text) for u in units), (s.passage.n,), tuple((u.start, u.end) for u in units))


class Writer(Protocol):
    label: str                      # what `Answer.backend` reports
    fallback: "Writer | None"       # used when verify finds nothing to keep or the LLM fails
    declines: bool                  # whether the writer's "the document does not say" is taken as a refusal

    def write(self, question: str, passages: Sequence[Passage], decision: Decision) -> Generator[str, None, Draft]:
        ...


class ExtractiveWriter:
    label = "extractive"
    fallback = None
    declines = False

    def write(self, question: str, passages: Sequence[Passage], decision: Decision) -> Generator[str, None, Draft]:
        claims = tuple(evidence_claim(s) for s in decision.evidence)
        # Marker-like text quoted from a document ("sounded [2] during storms") is escaped, never a citation.
        text = " ".join(f"{markers.escape_literal(c.text)} {markers.format_marker(c.cites)}" for c in claims)
        yield from tokens(text)
        return Draft(text, claims)


class LLMWriter:
    """Read mode: streams an answer from a chat model that reads the passages. The model is loaded on first use,
    once per writer (thread-safe); `RAG.with_settings` hands the writer on while the LLM settings are unchanged,
    so a process loads a local model once."""

    declines = True

    def __init__(self, settings: Settings, chat_model=None) -> None:
        from rag.llm import backend_label

        self.settings = self._llm_settings(settings)
        self.label = backend_label(settings.llm)
        self.fallback: Writer | None = ExtractiveWriter()
        self._chat_model = chat_model
        self._generator: LLMGenerator | None = None
        self._lock = threading.Lock()

    @staticmethod
    def _llm_settings(settings: Settings):
        return settings.llm

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


# 1-3 sentences from the evidence: Qwen 1.5B's compose answers on the dev splits were at most ~70 tokens; the
# bound stops a model that rambles from costing seconds (about 12 tokens/s on 2 cores).
COMPOSE_MAX_TOKENS = 160


class ComposeWriter(LLMWriter):
    """Compose mode: the LLM phrases the decision's evidence sentences (numbered by passage) and cites them.

    The draft carries the evidence as claims with their document spans, so verify can check each answer sentence
    against exactly the sentences it cites and highlight those. The prompt holds ~5 sentences instead of 2,500
    characters of passages: prompt length is the cost on a CPU (Qwen 1.5B: ~2 s vs 10-20 s).

    Measured and not kept (eight dev splits, Qwen 1.5B, 30 November 2026): the selection followed by the next
    best-scored sentences up to six, with verify's omitted-lead check off so the model may answer from any of
    them. The best six hold the key terms for 168 of 189 answered dev questions against 146 for the selection,
    but the model did not find them: key terms fell on three sets (essay 0.889 -> 0.750, General Python FAQ
    0.731 -> 0.692, Debian history 0.714 -> 0.679) and rose on one (design FAQ 0.786 -> 0.821); citation
    precision rose on five (history 0.667 -> 0.812, tutorial 0.846 -> 0.958) and the median answer took
    3.2-4.4 s instead of 1.7-2.5 s."""

    declines = False

    @staticmethod
    def _llm_settings(settings: Settings):
        llm = settings.llm
        return llm.model_copy(update={"max_tokens": min(llm.max_tokens, COMPOSE_MAX_TOKENS)})

    def write(self, question: str, passages: Sequence[Passage], decision: Decision) -> Generator[str, None, Draft]:
        from rag.prompt import build_compose_messages

        evidence = tuple(evidence_claim(s) for s in decision.evidence)
        parts: list[str] = []
        for token in self.generator.stream_messages(build_compose_messages(question, [(c.cites[0], c.text) for c in evidence])):
            parts.append(token)
            yield token
        return Draft("".join(parts).strip(), evidence=evidence, question=question)


def make_writer(settings: Settings) -> Writer:
    """The writer the settings ask for: extractive, or an LLM behind LangChain in compose or read mode."""
    if settings.llm.backend == "extractive":
        return ExtractiveWriter()
    return ComposeWriter(settings) if settings.llm.mode == "compose" else LLMWriter(settings)
