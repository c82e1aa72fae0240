"""Where an answer is lost: `python -m eval.ranking [--split dev] [--set NAME] [--out ranking.json]`.

Key-term accuracy asks whether the answer holds the key terms; this asks where along the path they were lost, per
set, for the answerable questions: are they in the passages retrieval gave the decision stage at all (those with
a sentence it could quote), in the top 1 / 2 / 3 / 5 sentences it scored, and in the evidence it selected (what
the extractive answer quotes and what compose mode gives the LLM)? A key group counts as found by the first k sentences when one of its terms is
in one of them (each sentence matched on its own, so two sentences never make a term between them), so the
columns never decrease from left to right except the last, which is the selection.

Why it exists: the key-term and citation-precision targets of issue 9 (0.85-0.9 and 0.9) need the sentence that
states the answer ranked first for most questions, and this is the number that says how far the ranking is from
that. Measured on the eight dev splits on 30 November (222 answerable questions): the key terms are in the
retrieved passages for 0.923 of them, in the best-scored sentence for 0.586, in the best three for 0.784, in the
best five for 0.865, and in the selected evidence for 0.784 (test splits, 202 questions, reported only: 0.931,
0.520, 0.738, 0.822, 0.693). Every ranking signal measured since (learning to rank over ten features, the
local Qwen as a selector, a hypothetical answer written by Qwen embedded beside the question, a question written
by Qwen for every sentence, BM25-style length normalisation of the lexical score) moved the best-sentence share by
at most 5 of 222; Qwen's yes/no log-odds for each of the six best sentences, added to their scores, moved it by 17
(129 -> 146), at about 0.75 s a sentence (README, "Where answers are lost").

It reads the same code path that answers (`RAG.decide`), each set on its own index (`rag_for_set`), and never
fits anything, so it may be run on a test split to report, not to choose.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eval.dataset import SPLIT_CHOICES, Question, eval_sets, load_questions
from eval.metrics import key_groups_matched

TOP = (1, 2, 3, 5)


@dataclass
class QuestionRank:
    """One answerable question: the number of its key groups and, for each stage, how many of them it holds."""

    id: str
    type: str
    groups: int
    in_passages: int
    top: dict[int, int]       # k -> key groups found in the k best-scored sentences
    selected: int
    answerable: bool          # the decision stage's verdict (a refused question's selection is still counted)


@dataclass
class SetRanking:
    name: str
    questions: list[QuestionRank] = field(default_factory=list)

    def share(self, found: Sequence[bool]) -> float | None:
        return round(sum(found) / len(found), 3) if found else None

    def summary(self) -> dict[str, float | int | None]:
        qs = self.questions
        row: dict[str, float | int | None] = {"answerable": len(qs)}
        row["in_passages"] = self.share([q.in_passages == q.groups for q in qs])
        for k in TOP:
            row[f"top{k}"] = self.share([q.top[k] == q.groups for q in qs])
        row["selected"] = self.share([q.selected == q.groups for q in qs])
        return row


def _found(keys: Sequence[Sequence[str]], texts: Sequence[str]) -> int:
    """How many key groups have a term in one of `texts` (each text matched alone)."""
    hit = [False] * len(keys)
    for text in texts:
        for i, ok in enumerate(key_groups_matched(text, keys)):
            hit[i] = hit[i] or ok
    return sum(hit)


def rank_question(rag, q: Question) -> QuestionRank:
    """Where `q`'s key terms are along the answer path of `rag` (a `rag.RAG`)."""
    decision = rag.decide(q.question, q.history)
    scored = [s.sentence.text for s in decision.scored]
    passages = list(dict.fromkeys(s.passage.text for s in decision.scored))
    return QuestionRank(
        id=q.id, type=q.type, groups=len(q.keys),
        in_passages=_found(q.keys, passages),
        top={k: _found(q.keys, scored[:k]) for k in TOP},
        selected=_found(q.keys, [s.sentence.text for s in decision.evidence]),
        answerable=decision.answerable)


def rank_set(rag, name: str, questions: Sequence[Question]) -> SetRanking:
    out = SetRanking(name)
    for q in questions:
        if q.keys:
            out.questions.append(rank_question(rag, q))
    return out


def _table(rankings: Sequence[SetRanking]) -> str:
    cols = ["answerable", "in_passages", *(f"top{k}" for k in TOP), "selected"]
    lines = ["set".ljust(22) + "".join(c.rjust(12) for c in cols)]
    rows = list(rankings)
    if len(rows) > 1:
        rows.append(SetRanking("all", [q for r in rankings for q in r.questions]))
    for r in rows:
        row = r.summary()
        lines.append(r.name.ljust(22) + "".join(("-" if row[c] is None else str(row[c])).rjust(12) for c in cols))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    from eval.runner import rag_for_set
    from rag import Settings

    parser = argparse.ArgumentParser(prog="python -m eval.ranking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", default="dev", choices=SPLIT_CHOICES,
                        help="dev (default), test or all: reported, never fitted")
    parser.add_argument("--set", action="append", dest="sets", metavar="NAME",
                        help="a bundled set (repeatable; default: every set)")
    parser.add_argument("--out", type=Path, help="also write the per-question ranks as JSON here")
    args = parser.parse_args(argv)
    available = eval_sets()
    unknown = [s for s in args.sets or [] if s not in available]
    if unknown:
        parser.error(f"unknown set {', '.join(unknown)}; the bundled sets are {', '.join(available)}")
    if args.out:   # checked before the minutes of work, not after
        try:
            args.out.touch()
        except OSError as exc:
            parser.error(f"cannot write --out {args.out}: {exc.strerror}; choose a writable path")
    settings = Settings()
    rag = None
    rankings = []
    for name in args.sets or list(available):
        rag = rag_for_set(available[name], settings, rag)
        rankings.append(rank_set(rag, name, load_questions(set=name, split=args.split)))
    print(f"Key terms of the answerable {args.split} questions found along the answer path (share of questions):")
    print(_table(rankings))
    if args.out:
        args.out.write_text(json.dumps({r.name: {"summary": r.summary(), "questions": [asdict(q) for q in
                                                                                         r.questions]}
                                        for r in rankings}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
