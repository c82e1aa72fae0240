"""The values that cross the public API: passages, citations, answers and stream events.

`Answer.to_dict()` is the `rag ask --json` contract that the UI, the evaluation and outside tools read;
fields may be added, never renamed or removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from index.spans import Span


@dataclass(frozen=True, kw_only=True)
class Passage(Span):
    """A span of a source document given to the writer, numbered as the answer cites it."""

    n: int
    score: float

    def to_dict(self) -> dict:
        return {"n": self.n, **self.span_dict(), "score": self.score}


@dataclass(frozen=True, kw_only=True)
class Citation(Span):
    """A passage the answer cites, with the document spans of the answer sentences it supports."""

    n: int
    highlights: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, passage: Passage, highlights: list[tuple[int, int]] | None = None) -> "Citation":
        return cls(n=passage.n, **passage.span_dict(), highlights=list(highlights or []))

    def to_dict(self) -> dict:
        return {"n": self.n, **self.span_dict(), "highlights": [list(h) for h in self.highlights]}


Role = Literal["user", "assistant"]


@dataclass(frozen=True)
class Turn:
    """One message of a conversation, as the pipeline reads it (a UI's rich messages are flattened once,
    by `Turn.parse_history`, at the edge)."""

    role: Role
    content: str

    def to_dict(self) -> dict:
        return {"role": self.role, "content": self.content}

    @staticmethod
    def parse_history(history: object, max_chars: int | None = None,
                      max_turns: int | None = None) -> list["Turn"]:
        """Turns from plain data: a list of `Turn`s or of {"role": "user"|"assistant", "content": str | [blocks]}
        (Gradio-style content blocks are joined). Anything else raises ValueError naming what is wrong.
        Only the newest `max_turns` turns are read (older ones are dropped unread) and `max_chars` caps each, so a
        huge history cannot cost more than the question limit allows."""
        if history is None or history == "" or history == []:
            return []
        if not isinstance(history, (list, tuple)):
            raise ValueError('history must be a list of {"role": "user" | "assistant", "content": "..."} objects')
        offset = max(len(history) - max_turns, 0) if max_turns is not None else 0
        turns = []
        for i, item in enumerate(history[offset:], start=offset):
            if isinstance(item, Turn):
                role, content = item.role, item.content
            elif isinstance(item, dict):
                role, content = item.get("role"), item.get("content")
                if isinstance(content, list):
                    content = " ".join(b.get("text", "") for b in content if isinstance(b, dict)
                                       and isinstance(b.get("text", ""), str))
            else:
                raise ValueError(f"history item {i} is a {type(item).__name__}, not a {{\"role\", \"content\"}} object")
            if role not in ("user", "assistant") or not isinstance(content, str):
                raise ValueError(f'history item {i} needs "role": "user" or "assistant" and a text "content"')
            turns.append(Turn(role, content[:max_chars] if max_chars else content))
        return turns


@dataclass
class Validation:
    """What citation checking did to a generated answer (all empty for extractive answers, which quote)."""

    removed: list[int] = field(default_factory=list)       # cited numbers that name no passage
    flagged: list[str] = field(default_factory=list)       # sentences that share too little with what they cite
    uncited: list[str] = field(default_factory=list)       # sentences with no citation at all
    fallback: str | None = None                            # why the extractive answer replaced the LLM's
    backend_error: str | None = None                       # the LLM failed (unreachable, not loadable, died
                                                           # mid-stream): its message; the answer is extractive
    # Compose mode only (each sentence is checked against the evidence sentences it cites):
    dropped: list[str] = field(default_factory=list)       # sentences no evidence supports: removed from the answer
    recited: list[str] = field(default_factory=list)       # sentences whose marker was missing or wrong, now citing
                                                           # the evidence that supports them
    invented: list[str] = field(default_factory=list)      # dropped sentences stating a name or number that neither
                                                           # the question nor any passage holds
    omitted: str | None = None                             # the lead evidence sentence the answer left out (the
                                                           # quotes are shown instead)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(kw_only=True)
class Answer:
    """A finished answer. Built by keyword only, in one place (`rag.pipeline`)."""

    question: str
    answer: str
    refused: bool
    backend: str
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    standalone_question: str = ""
    validation: Validation = field(default_factory=Validation)
    notes: list[str] = field(default_factory=list)
    # The decision stage's answerable probability (None when the guard answered before retrieval).
    confidence: float | None = None

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "backend": self.backend,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [p.to_dict() for p in self.passages],
            "timings_ms": dict(self.timings_ms),
            "standalone_question": self.standalone_question,
            "validation": self.validation.to_dict(),
            "notes": list(self.notes),
            "confidence": self.confidence,
        }


@dataclass(frozen=True)
class StreamEvent:
    """One step of a streamed answer: `passages` once retrieval is done, `token`s, then the final `answer`.

    The final answer's text can differ from the concatenated tokens when validation removed citations or fell
    back to the extractive answer; a UI should show `answer.answer` at the end.
    """

    kind: Literal["passages", "token", "answer"]
    text: str = ""
    passages: tuple[Passage, ...] = ()
    answer: Answer | None = None
