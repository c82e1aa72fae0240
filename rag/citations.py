"""Checking an LLM's citations instead of trusting them.

Markers naming passages that do not exist are removed; a sentence that shares too few words with the passage
it cites is flagged; the passage sentence that best matches each answer sentence is highlighted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rag.sentences import split_sentences
from rag.text import term_set
from rag.types import Citation, Passage, Validation

MARKER = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
MIN_SUPPORT = 0.5
_REFUSAL = re.compile(r"(does not|doesn't|do not|don't|did not)\s+(say|mention|contain|provide|specify|state|"
                      r"include|answer)|not (mentioned|stated|specified|provided)|no information|"
                      r"(cannot|can't|unable to) (answer|find|determine)|not enough information", re.I)


@dataclass
class Validated:
    text: str
    citations: list[Citation]
    validation: Validation = field(default_factory=Validation)


def looks_like_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(MARKER.sub("", text)))


def is_refusal_answer(text: str) -> bool:
    """Every sentence with content declines; an answer that also states facts is an answer, not a refusal."""
    sentences = [MARKER.sub("", s.text).strip() for s in split_sentences(text)]
    content = [s for s in sentences if re.search(r"[A-Za-z]", s)]
    return bool(content) and all(looks_like_refusal(s) for s in content)


def _markers_inside(text: str) -> str:
    """Move citation markers that follow a sentence's full stop in front of it ("Iran. [1]" -> "Iran [1]."), so
    a sentence splitter keeps each marker with the sentence it belongs to."""
    return re.sub(r"([.!?])(\s*)((?:\[\d+\])+)", r" \3\1", text)


def support(sentence: str, passage_text: str) -> float:
    """Share of the sentence's content words found in the passage."""
    words = term_set(MARKER.sub(" ", sentence))
    if not words:
        return 1.0
    return len(words & term_set(passage_text)) / len(words)


def validate(text: str, passages: list[Passage]) -> Validated:
    by_n = {p.n: p for p in passages}
    validation = Validation()

    def fix(match: re.Match) -> str:
        numbers = [int(x) for x in re.split(r"\s*[,;]\s*", match.group(1))]
        good = [n for n in numbers if n in by_n]
        validation.removed.extend(n for n in numbers if n not in by_n)
        return "".join(f"[{n}]" for n in dict.fromkeys(good))

    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", MARKER.sub(fix, text)).strip()
    cleaned = re.sub(r" {2,}", " ", cleaned)
    highlights: dict[int, list[tuple[int, int]]] = {}
    for sentence in split_sentences(_markers_inside(cleaned)):
        cited = [int(n) for n in re.findall(r"\[(\d+)\]", sentence.text)]
        body = MARKER.sub("", sentence.text).strip()
        if not cited:
            if len(term_set(body)) >= 2 and not looks_like_refusal(body):
                validation.uncited.append(body)
            continue
        best = max(support(body, by_n[n].text) for n in cited)
        if best < MIN_SUPPORT:
            validation.flagged.append(body)
        for n in cited:
            p = by_n[n]
            candidates = split_sentences(p.text, p.start, p.source)
            if candidates:
                match = max(candidates, key=lambda s: len(term_set(body) & term_set(s.text)))
                if term_set(body) & term_set(match.text):
                    spans = highlights.setdefault(n, [])
                    if (match.start, match.end) not in spans:
                        spans.append((match.start, match.end))
                else:
                    highlights.setdefault(n, [])
    citations = [Citation(n, by_n[n].source, by_n[n].title, by_n[n].section, by_n[n].start, by_n[n].end,
                          by_n[n].text, highlights[n]) for n in sorted(highlights)]
    return Validated(cleaned, citations, validation)
