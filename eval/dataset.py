"""Evaluation questions: the bundled essay set (dev and test splits) or any JSONL file in the same format.

One JSON object per line (the format is stable; fields may be added, never renamed):

    {"id": "fact-01", "type": "fact", "question": "...", "answer": "reference answer",
     "keys": [["Ukraine"], ["priority"]], "evidence": ["verbatim substring of the document", ...],
     "history": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

type is one of fact, synthesis, paraphrase, followup (answerable: need keys and evidence) and unanswerable,
adversarial (should be refused: empty keys and evidence). history is optional and only meaningful for followup.
An optional "split" field names the split; otherwise a file's split is its name (bundled: dev, test).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eval.records import NO_ANSWER_TYPES, QUESTION_TYPES

DATA_DIR = Path(__file__).with_name("data")
BUNDLED_SPLITS = {"dev": DATA_DIR / "essay_dev.jsonl", "test": DATA_DIR / "essay_test.jsonl"}
SPLIT_CHOICES = ("dev", "test", "all")


class DatasetError(ValueError):
    """A question file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    question: str
    answer: str
    keys: list[list[str]]
    evidence: list[str]
    history: list[dict] = field(default_factory=list)
    split: str = ""

    @property
    def answerable(self) -> bool:
        return self.type not in NO_ANSWER_TYPES

    def to_dict(self) -> dict:
        return asdict(self)


def _fail(path: Path, lineno: int, message: str) -> DatasetError:
    return DatasetError(f"{path}:{lineno}: {message}")


def _parse(obj: object, path: Path, lineno: int, split: str) -> Question:
    if not isinstance(obj, dict):
        raise _fail(path, lineno, "expected a JSON object")
    for name in ("id", "type", "question"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise _fail(path, lineno, f"'{name}' must be a non-empty string")
    qtype = obj["type"]
    if qtype not in QUESTION_TYPES:
        raise _fail(path, lineno, f"unknown type {qtype!r}; expected one of {', '.join(QUESTION_TYPES)}")
    keys = obj.get("keys") or []
    if not isinstance(keys, list) or not all(isinstance(g, list) and g and all(isinstance(t, str) and t.strip()
                                                                               for t in g) for g in keys):
        raise _fail(path, lineno, "'keys' must be a list of non-empty lists of strings, e.g. [[\"Ukraine\"], "
                                  "[\"U.S.\", \"United States\"]]")
    evidence = obj.get("evidence") or []
    if not isinstance(evidence, list) or not all(isinstance(e, str) and e.strip() for e in evidence):
        raise _fail(path, lineno, "'evidence' must be a list of non-empty strings (verbatim quotes)")
    history = obj.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)
            for t in history):
        raise _fail(path, lineno, "'history' must be a list of {\"role\": \"user\"|\"assistant\", \"content\": str}")
    if qtype not in NO_ANSWER_TYPES and not (keys and evidence):
        raise _fail(path, lineno, f"a {qtype} question needs 'keys' and 'evidence' (only unanswerable and "
                                  "adversarial questions have neither)")
    answer = obj.get("answer", "")
    if not isinstance(answer, str):
        raise _fail(path, lineno, "'answer' must be a string")
    return Question(obj["id"], qtype, obj["question"], answer, [list(g) for g in keys], list(evidence),
                    [{"role": t["role"], "content": t["content"]} for t in history],
                    str(obj.get("split") or split))


def read_jsonl(path: str | Path, split: str | None = None) -> list[Question]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"Question file not found: {path}")
    split = split or path.stem
    questions: list[Question] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            q = _parse(obj, path, lineno, split)
            if q.id in seen:
                raise _fail(path, lineno, f"duplicate id {q.id!r} (first on line {seen[q.id]})")
            seen[q.id] = lineno
            questions.append(q)
    if not questions:
        raise DatasetError(f"{path}: no questions")
    return questions


def load_questions(path: str | Path | None = None, split: str = "all") -> list[Question]:
    """The bundled essay set (split "dev", "test" or "all"), or the questions in `path`.

    For a file, `split` filters on the records' "split" field when they carry one; "all" keeps everything.
    """
    if split not in SPLIT_CHOICES and path is None:
        raise DatasetError(f"Unknown split {split!r}; choose one of {', '.join(SPLIT_CHOICES)}")
    if path is None:
        names = ["dev", "test"] if split == "all" else [split]
        questions = [q for name in names for q in read_jsonl(BUNDLED_SPLITS[name], split=name)]
        ids = [q.id for q in questions]
        if len(ids) != len(set(ids)):
            raise DatasetError("Bundled eval set has ids shared between splits")
        return questions
    questions = read_jsonl(path)
    if split != "all":
        chosen = [q for q in questions if q.split == split]
        if not chosen:
            available = ", ".join(sorted({q.split for q in questions}))
            raise DatasetError(f"{path}: no questions in split {split!r} (splits in the file: {available})")
        return chosen
    return questions


def sample(questions: Iterable[Question], limit: int | None) -> list[Question]:
    """A deterministic sample of `limit` questions that cycles over (split, type) in file order, so even a
    small run sees every split and every question type. The sample keeps the file order."""
    questions = list(questions)
    if limit is None or limit >= len(questions):
        return questions
    if limit <= 0:
        return []
    buckets: dict[tuple[str, str], list[int]] = {}
    for i, q in enumerate(questions):
        buckets.setdefault((q.split, q.type), []).append(i)
    splits = list(dict.fromkeys(q.split for q in questions))
    types = [t for t in QUESTION_TYPES if any(q.type == t for q in questions)]
    types += sorted({q.type for q in questions} - set(types))
    # One question of each type first, alternating splits (fact from dev, synthesis from test, ...), then the
    # other split, then the next question of each bucket.
    order = [(splits[(i + j) % len(splits)], t) for j in range(len(splits)) for i, t in enumerate(types)]
    order = [key for key in order if key in buckets]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for key in order:
            if depth < len(buckets[key]):
                chosen.append(buckets[key][depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return [questions[i] for i in sorted(chosen)]


def describe(questions: Iterable[Question]) -> str:
    questions = list(questions)
    splits = dict.fromkeys(q.split for q in questions)
    per = ", ".join(f"{s}: {sum(1 for q in questions if q.split == s)}" for s in splits)
    return f"{len(questions)} questions ({per})"
