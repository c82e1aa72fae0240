"""The values that cross the public API: passages, citations, answers and stream events.

`Answer.to_dict()` is the `rag ask --json` contract that the UI, the evaluation and outside tools read;
fields may be added, never renamed or removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Passage:
    """A span of a source document given to the generator, numbered as the answer cites it."""

    n: int
    source: str
    title: str
    section: str
    start: int
    end: int
    text: str
    score: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Citation:
    """A passage the answer cites, with the document spans of the answer sentences it supports."""

    n: int
    source: str
    title: str
    section: str
    start: int
    end: int
    text: str
    highlights: list[tuple[int, int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["highlights"] = [list(h) for h in self.highlights]
        return data


@dataclass
class Validation:
    """What citation checking did to a generated answer (all empty for extractive answers, which quote)."""

    removed: list[int] = field(default_factory=list)       # cited numbers that name no passage
    flagged: list[str] = field(default_factory=list)       # sentences that share too little with what they cite
    uncited: list[str] = field(default_factory=list)       # sentences with no citation at all
    fallback: str | None = None                            # why the extractive answer replaced the LLM's

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Answer:
    question: str
    answer: str
    refused: bool
    backend: str
    citations: list[Citation]
    passages: list[Passage]
    timings_ms: dict[str, float]
    standalone_question: str = ""
    validation: Validation = field(default_factory=Validation)
    notes: list[str] = field(default_factory=list)

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
