"""What each citation marker of an answer points at: its number, the claim it ends and the exact supporting
sentence(s) of that claim.

One marker number can back several claims ("Russia refused [1]. It feared a war [1]."): the citation's
`highlights` then hold the supporting sentences of both claims. A reviewer found the two told apart only by
shade (contrast 1.2:1) and highlighted in the reverse order, so here every *occurrence* of a number (a "chip")
gets the highlights of its own claim: the popover quotes them, and the document viewer marks them as the current
span while the claim's other highlights stay secondary.

Chips are numbered `k` = 0, 1, … in answer order (a marker naming two passages, `[1, 2]`, is two chips). The
browser sends back only (turn, k); the server recomputes the chips from the stored answer with the same function,
so nothing the page sends is trusted beyond two small integers. Marker syntax is `rag.markers`' alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rag import Answer, Citation, markers

# A highlight backs a claim when at least this share of its words occur in the claim. Extractive answers quote
# their sentences verbatim (share 1.0); an LLM's paraphrase of two sentences shares roughly half of each. Below
# it, only the best-matching highlight is taken, so every chip has at least one sentence to show.
CLAIM_SHARE = 0.6


@dataclass(frozen=True)
class Chip:
    """One citation number at one place in the answer."""

    k: int                              # position among the answer's chips (0-based)
    n: int                              # the citation number shown, `Citation.n`
    claim: str                          # the answer text the marker ends (markers removed)
    claim_index: int                    # which claim (several chips can share one: "[1][2]")
    spans: tuple[tuple[int, int], ...]  # document offsets of this claim's supporting sentences
    quote: str                          # those sentences as a reader sees them


def _norm_words(text: str) -> set[str]:
    return set(re.sub(r"\W+", " ", text).lower().split())


def claims(text: str) -> list[tuple[markers.Marker, str, int]]:
    """Each marker of `text` with the claim it is attached to and that claim's index: the plain text before it,
    back to the previous marker (adjacent markers, as in "… wars [2][3].", share one claim)."""
    found = markers.find(text)
    out, claim_start, index = [], 0, 0
    for i, m in enumerate(found):
        segment = markers.replace(text[claim_start:m.start], lambda _: " ")
        claim = " ".join(markers.unescape(segment).split()).lstrip(".,;:!? ").strip()
        out.append((m, claim, index))
        adjacent = i + 1 < len(found) and not text[m.end:found[i + 1].start].strip()
        if not adjacent:
            claim_start = m.end
            index += 1
    return out


def sentence(c: Citation, span: tuple[int, int]) -> str:
    a, b = max(span[0] - c.start, 0), min(span[1] - c.start, len(c.text))
    return " ".join(c.text[a:b].split()) if b > a else ""


def claim_spans(c: Citation, claim: str) -> tuple[tuple[int, int], ...]:
    """The highlights of `c` that back `claim`, in document order (see CLAIM_SHARE)."""
    words = _norm_words(claim)
    scored = []
    for span in sorted(set(map(tuple, c.highlights))):
        own = _norm_words(sentence(c, span))
        if own:
            scored.append((len(own & words) / len(own), span))
    if not scored:
        return ()
    chosen = [span for share, span in scored if share >= CLAIM_SHARE]
    if not chosen:
        chosen = [max(scored, key=lambda item: item[0])[1]]
    return tuple(sorted(chosen))


def chips(answer: Answer | None, text: str | None = None) -> list[Chip]:
    """Every chip of `answer` (or of a partial `text` while it streams, without spans), in answer order."""
    text = answer.answer if answer is not None and text is None else (text or "")
    by_n = {c.n: c for c in answer.citations} if answer is not None else {}
    out: list[Chip] = []
    for marker, claim, index in claims(text):
        for n in marker.numbers:
            c = by_n.get(n)
            spans = claim_spans(c, claim) if c is not None else ()
            quote = " … ".join(s for s in (sentence(c, span) for span in spans) if s) if c is not None else ""
            out.append(Chip(len(out), n, claim, index, spans, quote))
    return out


def parse_request(value: str) -> tuple[str, int, int, int] | None:
    """A viewer request from the page: "c:<turn>:<k>" (chip k of answer `turn`) or "p:<turn>:<n>" (passage n),
    optionally followed by "|<counter>" (the page's count of requests, echoed back so it knows which rendering
    answers which click). (kind, turn, number, counter), or None when malformed."""
    match = re.fullmatch(r"([cp]):(\d{1,6}):(\d{1,6})(?:\|(\d{1,12}))?", (value or "").strip())
    if not match:
        return None
    return match[1], int(match[2]), int(match[3]), int(match[4] or 0)
