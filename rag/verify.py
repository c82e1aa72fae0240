"""The verify stage: check a writer's draft against the passages instead of trusting it.

Input: a `Draft` (the text with `[n]` markers, and for a writer that quotes, the exact document span behind each
claim) and the numbered passages. Output: `Verified` — the cleaned text, one `Citation` per cited passage with the
document spans to highlight, and a `Validation` report.

For a quoting (extractive) draft the claims are checked to lie inside the passages they cite and become the
highlights as they are. For free text (an LLM's) markers naming no passage are removed; a sentence that shares
too few content words with every passage it cites is flagged (MIN_SUPPORT 0.5: below it, hand-checked dev answers
were paraphrases of another passage more often than not); sentences without a marker are listed; the passage
sentence sharing most words with each answer sentence is highlighted; and an answer whose every sentence
declines ("The document does not say") is a refusal.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag import markers
from rag.sentences import split_sentences
from rag.text import term_set
from rag.types import Citation, Passage, Validation

MIN_SUPPORT = 0.5
_REFUSAL = re.compile(r"(does not|doesn't|do not|don't|did not)\s+(say|mention|contain|provide|specify|state|"
                      r"include|answer)|not (mentioned|stated|specified|provided)|no information|"
                      r"(cannot|can't|unable to) (answer|find|determine)|not enough information", re.I)


@dataclass(frozen=True)
class Claim:
    """One sentence of a draft: its text (no markers), the passages it cites, and the document spans known to
    support it (a quoting writer knows them; free text leaves them for verify to find)."""

    text: str
    cites: tuple[int, ...]
    support: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Draft:
    """What a writer produced. `claims` is None for free text, whose claims verify parses from `text`."""

    text: str
    claims: tuple[Claim, ...] | None = None


@dataclass
class Verified:
    text: str
    citations: list[Citation]
    validation: Validation = field(default_factory=Validation)
    declined: bool = False      # the writer said the passages do not answer


def looks_like_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(markers.strip(text)))


def is_refusal_answer(text: str) -> bool:
    """Every sentence with content declines; an answer that also states facts is an answer, not a refusal."""
    sentences = [markers.strip(s.text) for s in split_sentences(text)]
    content = [s for s in sentences if re.search(r"[A-Za-z]", s)]
    return bool(content) and all(looks_like_refusal(s) for s in content)


def support(sentence: str, passage_text: str) -> float:
    """Share of the sentence's content words found in the passage."""
    words = term_set(markers.plain(sentence))
    if not words:
        return 1.0
    return len(words & term_set(passage_text)) / len(words)


def verify(draft: Draft, passages: Sequence[Passage]) -> Verified:
    if draft.claims is not None:
        return _verify_quotes(draft, passages)
    return _verify_free_text(draft.text, passages)


def _citations(by_n: dict[int, Passage], highlights: dict[int, list[tuple[int, int]]]) -> list[Citation]:
    return [Citation.of(by_n[n], highlights[n]) for n in sorted(highlights)]


def _verify_quotes(draft: Draft, passages: Sequence[Passage]) -> Verified:
    by_n = {p.n: p for p in passages}
    validation = Validation()
    highlights: dict[int, list[tuple[int, int]]] = {}
    for claim in draft.claims or ():
        for n in claim.cites:
            p = by_n.get(n)
            if p is None:
                validation.removed.append(n)
                continue
            spans = highlights.setdefault(n, [])
            for a, b in claim.support:
                if p.start <= a < b <= p.end and (a, b) not in spans:
                    spans.append((a, b))
    return Verified(draft.text, _citations(by_n, highlights), validation)


def _verify_free_text(text: str, passages: Sequence[Passage]) -> Verified:
    by_n = {p.n: p for p in passages}
    validation = Validation()
    if is_refusal_answer(text):
        return Verified(text, [], validation, declined=True)

    def keep_valid(m: markers.Marker) -> str:
        validation.removed.extend(n for n in m.numbers if n not in by_n)
        return markers.format_marker(n for n in m.numbers if n in by_n)

    cleaned = markers.tidy(markers.replace(text, keep_valid))
    highlights: dict[int, list[tuple[int, int]]] = {}
    for sentence in split_sentences(markers.move_inside(cleaned)):
        cited = markers.cited(sentence.text)
        body = markers.strip(sentence.text)
        if not cited:
            if len(term_set(body)) >= 2 and not looks_like_refusal(body):
                validation.uncited.append(body)
            continue
        if max(support(body, by_n[n].text) for n in cited) < MIN_SUPPORT:
            validation.flagged.append(body)
        words = term_set(markers.plain(body))
        for n in cited:
            p = by_n[n]
            spans = highlights.setdefault(n, [])
            candidates = split_sentences(p.text, p.start, p.source)
            if not candidates:
                continue
            match = max(candidates, key=lambda s: len(words & term_set(s.text)))
            if words & term_set(match.text) and (match.start, match.end) not in spans:
                spans.append((match.start, match.end))
    return Verified(cleaned, _citations(by_n, highlights), validation)
