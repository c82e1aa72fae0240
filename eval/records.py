"""Typed evaluation records: what one question produced (`EvalRecord`) and how it scored (`Scores`).

A record used to be a dict of some 25 string keys that the scorer filled in place, so a typo in a key read as
"missing" (None) instead of failing, and nothing said which keys were inputs and which were derived. Now the
inputs are an `EvalRecord` and the derived numbers a separate `Scores`, computed by the pure function
`eval.metrics.score(record)`; `record.scored()` returns a copy carrying them.

The saved form is unchanged: `to_dict()` writes the flat JSON object of format "essay-rag-eval/1" (the record's
fields, the `Answer.to_dict()` fields, then the score fields), and `from_dict()` reads it back, including files
written before this module existed. Fields may be added to the format, never renamed: keys this version does not
know (e.g. a field a later `Answer.to_dict()` adds) are kept in `extra` and written back as they were.

Importing this module loads nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

FORMAT = "essay-rag-eval/1"

QUESTION_TYPES = ("fact", "synthesis", "paraphrase", "followup", "unanswerable", "nearmiss", "adversarial")
# These should be refused: they have no keys and no evidence; every other type has an answer in the text.
# "unanswerable" is off-topic (the document is not about it at all); "nearmiss" names things the document names
# but asks what it does not state (a wrong attribute, swapped entities, a number it does not give) — the hard
# kind, since retrieval finds the right passage; "adversarial" is prompt injection or a request to invent.
NO_ANSWER_TYPES = frozenset({"unanswerable", "nearmiss", "adversarial"})
OFF_TOPIC, NEAR_MISS, ADVERSARIAL = "unanswerable", "nearmiss", "adversarial"


def is_answerable(qtype: str) -> bool:
    """Unanswerable, near-miss and adversarial questions should be refused; every other type has an answer in
    the text."""
    return qtype not in NO_ANSWER_TYPES


# The fields of `rag.Answer.to_dict()` a record carries as attributes (the `rag ask --json` contract). A field
# the contract gains later lands in `EvalRecord.extra` until it is named here.
ANSWER_FIELDS = ("question", "answer", "refused", "backend", "citations", "passages", "timings_ms",
                 "standalone_question", "validation", "notes", "confidence")


def _empty_validation() -> dict:
    return {"removed": [], "flagged": [], "uncited": [], "fallback": None}


@dataclass(frozen=True)
class Expected:
    """What the question set says the answer should contain.

    `evidence` holds the *located* evidence strings, one plain dict each: {"text", "source", "start", "end",
    "spans": [{"source", "start", "end"}, ...]} (see `eval.metrics.locate_evidence`). They stay dicts because
    the metrics are pure functions of the saved JSON, and a span is the same shape as a passage.
    """

    answer: str = ""
    keys: list[list[str]] = field(default_factory=list)
    evidence: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"answer": self.answer, "keys": [list(g) for g in self.keys], "evidence": list(self.evidence)}

    @classmethod
    def from_dict(cls, data: Mapping | None) -> "Expected":
        data = data or {}
        return cls(str(data.get("answer") or ""), [list(g) for g in data.get("keys") or []],
                   [dict(e) for e in data.get("evidence") or []])


@dataclass(frozen=True)
class Scores:
    """The per-question scores (eval/METRICS.md defines each). Derived, never edited: `eval.metrics.score`.

    `retrieval` is None for questions with nothing to retrieve (unanswerable, adversarial); otherwise it maps the
    retrieval metric keys of the registry ("recall@5", "rr", "recall@1000c", …) to this question's value, plus
    "hit_ranks". Answer and citation fields are None where they do not apply (e.g. `f1` of an unanswerable
    question).
    """

    retrieval: dict | None = None
    context_recall: float | None = None
    context_chars: int = 0
    key_correct: bool | None = None
    key_groups: list[bool] = field(default_factory=list)
    f1: float | None = None
    cited_evidence: bool | None = None
    citations_total: int = 0
    citations_relevant: int = 0
    citation_precision: float | None = None
    cited_sentences_total: int = 0
    cited_sentences_relevant: int = 0
    markers: int = 0
    invalid_markers: int = 0
    refusal_correct: bool = False
    failed: bool = False
    failure_reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Scores":
        return cls(**{name: data[name] for name in SCORE_FIELDS if name in data})


SCORE_FIELDS = tuple(f.name for f in fields(Scores))


@dataclass(frozen=True)
class EvalRecord:
    """One evaluated question: the question's identity, what the pipeline answered, what it retrieved, what was
    expected, and (once scored) its `Scores`.

    The answer fields mirror `rag.Answer.to_dict()` as plain JSON data (citations and passages are dicts of
    {"n", "source", "start", "end", "text", …}), because the metrics read them from saved files as well as
    from fresh runs.
    """

    id: str
    type: str
    split: str = ""
    history: list[dict] = field(default_factory=list)
    set: str = ""           # the bundled set (eval/data/<set>/) the question came from; "" for a file of one's own
    # -- the answer (rag.Answer.to_dict())
    question: str = ""
    answer: str = ""
    refused: bool = False
    backend: str = ""
    citations: list[dict] = field(default_factory=list)
    passages: list[dict] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    standalone_question: str = ""
    validation: dict = field(default_factory=_empty_validation)
    notes: list[str] = field(default_factory=list)
    confidence: float | None = None     # the decision stage's answerable probability (None: not given)
    # -- what the runner added
    wall_ms: float | None = None
    retrieved: list[dict] = field(default_factory=list)     # the top-k ranked chunks of rag.retrieve
    expected: Expected = field(default_factory=Expected)
    error: str | None = None
    traceback: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)     # saved keys this version does not know
    scores: Scores | None = None

    @property
    def answerable(self) -> bool:
        return is_answerable(self.type)

    @property
    def failed(self) -> bool:
        """Whether the question failed (see METRICS.md "Failing questions"); False until scored."""
        return bool(self.scores and self.scores.failed)

    @property
    def failure_reasons(self) -> list[str]:
        return list(self.scores.failure_reasons) if self.scores else []

    def scored(self) -> "EvalRecord":
        """A copy with fresh scores under the current metric definitions (the record itself is not changed)."""
        from eval.metrics import score

        return replace(self, scores=score(self))

    def to_dict(self) -> dict:
        """The flat JSON object of the results file (format "essay-rag-eval/1")."""
        out: dict[str, Any] = {"id": self.id, "type": self.type, "split": self.split,
                               "history": [dict(t) for t in self.history]}
        if self.set:
            out["set"] = self.set
        for name in ANSWER_FIELDS:
            out[name] = getattr(self, name)
        out.update(self.extra)
        if self.traceback is not None:
            out["traceback"] = self.traceback
        out["wall_ms"] = self.wall_ms
        out["retrieved"] = list(self.retrieved)
        out["expected"] = self.expected.to_dict()
        out["error"] = self.error
        if self.scores is not None:
            out.update(self.scores.to_dict())
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "EvalRecord":
        """Read a saved record. Score fields, when present, are read into `scores` (re-score with `scored()`);
        keys that are neither record nor score fields are kept in `extra`."""
        known = {f.name for f in fields(cls)} - {"extra", "scores"}
        values: dict[str, Any] = {k: data[k] for k in known if k in data and data[k] is not None}
        values["id"] = str(data.get("id", ""))
        values["type"] = str(data.get("type", ""))
        values["error"] = data.get("error")
        values["wall_ms"] = data.get("wall_ms")
        values["expected"] = Expected.from_dict(data.get("expected"))
        values["refused"] = bool(data.get("refused"))
        extra = {k: v for k, v in data.items() if k not in known and k not in SCORE_FIELDS}
        scores = Scores.from_dict(data) if "failed" in data else None
        return cls(**values, extra=extra, scores=scores)

    @classmethod
    def from_answer(cls, answer: Mapping, **fields_: Any) -> "EvalRecord":
        """A record from `Answer.to_dict()` plus the runner's fields (id, type, split, history, …)."""
        extra = {k: v for k, v in answer.items() if k not in ANSWER_FIELDS}
        values = {k: answer[k] for k in ANSWER_FIELDS if k in answer}
        return cls(**values, **fields_, extra=extra)
