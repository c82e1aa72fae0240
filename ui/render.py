"""Turn answers into what the chat shows: the answer with linked citation markers, and the sources panel.

Rendering is kept apart from the Gradio wiring so it can be read and tested on its own. Everything here returns
strings: inline HTML inside the chat's markdown, or the sources panel's HTML. Every piece of document or answer
text is escaped, because uploaded documents are untrusted.

How a reader connects a claim to its evidence: each citation number gets a colour; the marker `[n]` in the answer
is a coloured chip that links (plain `#anchor`) to the card `src-<turn>-<n>` in the sources panel, and that card
has the same colour on its edge and on the `<mark>` over the exact supporting sentences. Hovering a chip shows the
supporting sentence as a tooltip (the link's title).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Iterable, Sequence

from rag import Answer, Citation, Passage, markers

# Distinct hues (blue, amber, green, rose, violet, cyan), used translucently so they read in light and dark themes.
PALETTE = ["37, 99, 235", "217, 119, 6", "5, 150, 105", "190, 24, 93", "124, 58, 237", "8, 145, 178"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~$])")

# Scoped to the sources panel by gr.HTML(css_template=...).
PANEL_CSS = """
.sources { font-size: 0.92rem; line-height: 1.5; }
.sources h3 { margin: 0 0 0.25rem 0; font-size: 1.05rem; }
.sources .hint { opacity: 0.75; font-size: 0.85rem; margin: 0 0 0.75rem 0; }
.sources .card { border: 1px solid rgba(128, 128, 128, 0.3); border-left-width: 5px; border-radius: 8px;
  padding: 0.55rem 0.75rem; margin: 0 0 0.75rem 0; scroll-margin-top: 1rem; }
.sources .card:target { box-shadow: 0 0 0 3px rgba(250, 204, 21, 0.8); }
.sources .head { display: flex; gap: 0.5rem; align-items: baseline; flex-wrap: wrap; }
.sources .num { font-weight: 700; border-radius: 6px; padding: 0 0.4rem; }
.sources .title { font-weight: 600; }
.sources .meta { opacity: 0.7; font-size: 0.8rem; margin: 0.1rem 0 0.35rem 0; }
.sources .text { white-space: pre-wrap; margin: 0; }
.sources .text .dim { opacity: 0.72; }
.sources mark { color: inherit; border-radius: 3px; padding: 0 1px; }
.sources .cited-for { font-size: 0.85rem; margin: 0 0 0.35rem 0; }
.sources details { margin-top: 0.5rem; }
.sources summary { cursor: pointer; font-weight: 600; opacity: 0.85; }
.sources .other { opacity: 0.8; border-left-color: rgba(128, 128, 128, 0.45) !important; }
.sources .refused { border-left: 5px solid rgb(220, 38, 38); background: rgba(220, 38, 38, 0.07);
  border-radius: 8px; padding: 0.55rem 0.75rem; margin-bottom: 0.75rem; }
.sources .footer { opacity: 0.65; font-size: 0.8rem; margin-top: 0.75rem; }
"""


def colour(n: int) -> str:
    """The r, g, b of citation number `n` (cycling through the palette)."""
    return PALETTE[(max(n, 1) - 1) % len(PALETTE)]


def anchor(turn: int, n: int) -> str:
    """The element id of citation `n` of answer `turn`: unique per turn, so links in older answers never point
    at the wrong passage."""
    return f"src-{turn}-{n}"


def md_escape(text: str) -> str:
    """Text shown literally inside the chat's markdown (no emphasis, links or HTML from document text)."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def _attr(text: str) -> str:
    return html.escape(text, quote=True)


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _where(item: Citation | Passage) -> str:
    return f"{item.title} — {item.section}" if item.section else item.title


def supporting_text(citation: Citation) -> str:
    """The highlighted sentences of a citation, in document order."""
    parts = []
    for start, end in sorted(citation.highlights):
        a, b = max(start - citation.start, 0), min(end - citation.start, len(citation.text))
        if b > a:
            parts.append(citation.text[a:b])
    return " … ".join(" ".join(p.split()) for p in parts)


def chip(n: int, turn: int, tooltip: str = "") -> str:
    """A citation marker: a coloured `[n]` that jumps to the passage card (plain anchor link, no script)."""
    title = f' title="{_attr(tooltip)}"' if tooltip else ""
    return (f'<a href="#{anchor(turn, n)}"{title} style="text-decoration:none;font-weight:600;font-size:0.85em;'
            f'padding:0 0.3em;border-radius:5px;color:inherit;background:rgba({colour(n)},0.22);'
            f'border:1px solid rgba({colour(n)},0.6)">[{n}]</a>')


def _claims(text: str) -> list[tuple[markers.Marker, str]]:
    """Each citation marker of `text` with the claim it is attached to: the plain text before it, back to the
    previous marker (adjacent markers, as in "… wars [2][3].", share one claim)."""
    found = markers.find(text)
    out, claim_start = [], 0
    for i, m in enumerate(found):
        segment = markers.replace(text[claim_start:m.start], lambda _: " ")
        claim = " ".join(markers.unescape(segment).split()).lstrip(".,;:!? ").strip()
        out.append((m, claim))
        adjacent = i + 1 < len(found) and not text[m.end:found[i + 1].start].strip()
        if not adjacent:
            claim_start = m.end
    return out


def link_markers(text: str, turn: int, tooltip: Callable[[int, str], str] | None = None) -> str:
    """Escape answer text for markdown and turn each citation marker (`[1]`, `[1, 2]`, `[1; 2]`, `[1-3]`, see
    `rag.markers`) into chips linking to the sources. Document text quoted as a literal (`\\[2]`) is shown as
    "[2]" and never becomes a chip.

    `tooltip(n, claim)` gives the hover text of marker `n` placed after the answer text `claim`."""
    out, pos = [], 0
    for m, claim in _claims(text):
        out.append(_md_text(text[pos:m.start]))
        out.append("".join(chip(n, turn, tooltip(n, claim) if tooltip else "") for n in m.numbers))
        pos = m.end
    out.append(_md_text(text[pos:]))
    return "".join(out)


def _md_text(text: str) -> str:
    """Answer text between markers, as markdown: literal document brackets restored, everything escaped."""
    return md_escape(markers.unescape(text))


def _best_highlight(c: Citation, claim: str) -> str:
    """The highlighted sentence of `c` that shares most words with `claim` (the one that backs it)."""
    words = set(_norm(claim).split())
    best, score = "", -1.0
    for start, end in c.highlights:
        a, b = max(start - c.start, 0), min(end - c.start, len(c.text))
        sentence = " ".join(c.text[a:b].split())
        overlap = len(words & set(_norm(sentence).split())) / (len(words) or 1)
        if sentence and overlap > score:
            best, score = sentence, overlap
    return best


def cited_claims(text: str) -> dict[int, list[str]]:
    """The answer sentence(s) each citation number is attached to: the text before a marker, back to the
    previous marker (adjacent markers, as in "… wars [2][3].", share one claim)."""
    claims: dict[int, list[str]] = {}
    for m, claim in _claims(text):
        if claim:
            for n in m.numbers:
                claims.setdefault(n, []).append(claim)
    return claims


def _html_text(text: str) -> str:
    """Text inside an HTML block of the chat's markdown: markdown is not parsed there, so escape as HTML and keep
    line breaks without ever leaving a blank line (which would end the block)."""
    return "<br>".join(html.escape(line) for line in text.strip().splitlines() if line.strip())


def _note(text: str, colour_rgb: str, kind: str) -> str:
    return (f'<div class="note-{kind}" style="border-left:4px solid rgb({colour_rgb});'
            f'background:rgba({colour_rgb},0.08);padding:0.4em 0.7em;border-radius:6px">{text}</div>')


def answer_message(answer: Answer, turn: int) -> str:
    """The chat message for a finished answer: linked markers, or a clearly marked refusal."""
    if answer.refused:
        return _note(f"<b>Not answered from the documents.</b><br>{_html_text(answer.answer)}", "220, 38, 38",
                     "refusal")
    by_n = {c.n: c for c in answer.citations}

    def tooltip(n: int, claim: str) -> str:
        c = by_n.get(n)
        if c is None:
            return ""
        where = f"§ {c.section}" if c.section else c.title
        return _shorten(f"[{n}] {where}: “{_best_highlight(c, claim)}”", 400)

    text = link_markers(answer.answer, turn, tooltip)
    extras = []
    if answer.validation.fallback:
        extras.append(f"Note: {answer.validation.fallback}.")
    extras.extend(answer.notes)
    if extras:
        text += "\n\n" + "<br>".join(f"<small><i>{md_escape(e)}</i></small>" for e in extras)
    return text


def streaming_message(partial: str, turn: int) -> str:
    """The chat message while tokens arrive (markers linked already; a cursor shows it is still going)."""
    return link_markers(partial, turn) + " ▌"


def error_message(message: str) -> str:
    """A failure shown in the chat instead of a traceback."""
    return _note(f"<b>Could not answer.</b><br>{_html_text(message)}", "217, 119, 6", "error")


def hint_message(message: str) -> str:
    return _note(_html_text(message), "100, 116, 139", "hint")


# -- sources panel ------------------------------------------------------------------------------------------------
def highlighted(text: str, offset: int, spans: Iterable[tuple[int, int]], rgb: str) -> str:
    """Passage text with the document spans `spans` (absolute offsets; the passage starts at `offset`) marked."""
    cuts = []
    for start, end in sorted(spans):
        a, b = max(start - offset, 0), min(end - offset, len(text))
        if b <= a:
            continue
        if cuts and a < cuts[-1][1]:  # overlapping highlights merge
            cuts[-1] = (cuts[-1][0], max(cuts[-1][1], b))
        else:
            cuts.append((a, b))
    out, pos = [], 0
    for i, (a, b) in enumerate(cuts):
        if a > pos:
            out.append(f'<span class="dim">{html.escape(text[pos:a])}</span>')
        # Neighbouring highlights alternate in strength, so two supporting sentences never read as one.
        alpha = 0.30 if i % 2 == 0 else 0.16
        out.append(f'<mark style="background:rgba({rgb},{alpha});border-bottom:2px solid rgb({rgb})">'
                   f'{html.escape(text[a:b])}</mark>')
        pos = b
    rest = html.escape(text[pos:])
    out.append(f'<span class="dim">{rest}</span>' if cuts and rest else rest)
    return "".join(out)


def _span_label(item: Citation | Passage) -> str:
    return f"characters {item.start:,}–{item.end:,}"


def _card_head(item: Citation | Passage, style: str = "") -> str:
    """Section heading first (it says what the passage is about), then document, file and character span."""
    heading = item.section or item.title
    meta = [html.escape(item.title)] if item.section else []
    meta += [html.escape(_source_name(item.source)), _span_label(item)]
    if isinstance(item, Passage):
        meta.append(f"score {item.score:.3f}")
    return (f'<div class="head"><span class="num"{style}>[{item.n}]</span>'
            f'<span class="title">{"§ " if item.section else ""}{html.escape(heading)}</span></div>'
            f'<div class="meta">{" · ".join(meta)}</div>')


def citation_card(c: Citation, turn: int, claims: Sequence[str] = ()) -> str:
    """A cited passage: same colour as its marker, supporting sentences marked, the rest dimmed."""
    rgb = colour(c.n)
    supports = supporting_text(c)
    cited_for = ""
    # An LLM paraphrases: say which answer sentence this passage backs. Extractive answers quote the highlight.
    shown = [x for x in claims if _norm(x) not in _norm(supports)]
    if shown:
        cited_for = ('<p class="cited-for"><b>Supports:</b> ' + html.escape(_shorten(" / ".join(shown), 400))
                     + "</p>")
    head = _card_head(c, f' style="background:rgba({rgb},0.22)"')
    return (f'<div class="card" id="{anchor(turn, c.n)}" style="border-left-color:rgb({rgb})">{head}{cited_for}'
            f'<p class="text">{highlighted(c.text, c.start, c.highlights, rgb)}</p></div>')


def passage_card(p: Passage, turn: int | None) -> str:
    """A retrieved passage the answer does not cite (kept for checking, visually secondary)."""
    ident = f' id="{anchor(turn, p.n)}"' if turn is not None else ""
    return f'<div class="card other"{ident}>{_card_head(p)}<p class="text">{html.escape(p.text)}</p></div>'


def _source_name(source: str) -> str:
    return re.split(r"[\\/]", source)[-1]


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text).strip().lower()


def _wrap(inner: str) -> str:
    return f'<div class="sources">{inner}</div>'


def empty_panel() -> str:
    """What the sources panel says before the first question: how to read it."""
    return _wrap(
        "<h3>Sources</h3>"
        '<p class="hint">Ask a question and the passages the answer cites appear here. Each '
        f'{_demo_chip(1)} in an answer links to its passage (click it to jump, hover for a preview); the exact '
        'sentences that support the answer are <mark style="background:rgba(37,99,235,0.28)">highlighted</mark> '
        "in the same colour.</p>")


def _demo_chip(n: int) -> str:
    return (f'<span class="num" style="background:rgba({colour(n)},0.22);border-radius:5px;padding:0 0.3em">'
            f"[{n}]</span>")


def searching_panel(question: str, passages: Sequence[Passage] = ()) -> str:
    """Shown while an answer is being written: the passages retrieved so far, to be narrowed to the cited ones."""
    head = f"<h3>Sources</h3><p class=\"hint\">Answering “{html.escape(_shorten(question, 120))}”…"
    if not passages:
        return _wrap(head + " searching the documents.</p>")
    cards = "".join(passage_card(p, None) for p in passages)
    return _wrap(head + f" read {len(passages)} passages.</p>{cards}")


def sources_panel(answer: Answer, turn: int, answer_number: int | None = None) -> str:
    """The sources for one answer: cited passages first (highlighted), the other retrieved ones collapsed."""
    label = f"answer {answer_number}" if answer_number else "this answer"
    question = html.escape(_shorten(answer.question, 160))
    parts = [f"<h3>Sources for {label}</h3>", f'<p class="hint">“{question}”</p>']
    cited = {c.n for c in answer.citations}
    if answer.refused:
        parts.append('<div class="refused"><b>Not answered.</b> None of the retrieved passages answers this '
                     "question, so no answer was given rather than a guess.</div>")
    claims = cited_claims(answer.answer)
    parts.extend(citation_card(c, turn, claims.get(c.n, ())) for c in sorted(answer.citations, key=lambda c: c.n))
    others = [p for p in answer.passages if p.n not in cited]
    if others:
        title = "Closest passages retrieved" if answer.refused else "Other retrieved passages (not cited)"
        cards = "".join(passage_card(p, turn) for p in others)
        parts.append(f"<details{' open' if answer.refused and not cited else ''}><summary>{title} "
                     f"({len(others)})</summary>{cards}</details>")
    total = answer.timings_ms.get("total")
    footer = [f"Generator: {html.escape(answer.backend)}"]
    if total is not None:
        footer.append(f"{total / 1000:.2f} s")
    if answer.standalone_question and _norm(answer.standalone_question) != _norm(answer.question):
        footer.append(f"searched as: “{html.escape(_shorten(answer.standalone_question, 200))}”")
    parts.append(f'<div class="footer">{" · ".join(footer)}</div>')
    return _wrap("".join(parts))


def message_panel(title: str, message: str) -> str:
    return _wrap(f"<h3>{html.escape(title)}</h3><p class=\"hint\">{html.escape(message)}</p>")


def cap(text: str) -> str:
    """Sentence case for a label that starts a sentence."""
    return text[:1].upper() + text[1:]


def plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def documents_markdown(records: Sequence, set_label: str) -> str:
    """The documents of the current set, as a short markdown list."""
    if not records:
        return f"**{md_escape(cap(set_label))}** holds no documents yet."
    rows = [f"**{md_escape(cap(set_label))}** holds {plural(len(records), 'document')}:", ""]
    for r in records:
        rows.append(f"- **{md_escape(r.title)}** — {md_escape(_source_name(r.source))} ({r.kind}, "
                    f"{r.size / 1024:.1f} KB, {plural(r.chunks, 'chunk')})")
    return "\n".join(rows)
