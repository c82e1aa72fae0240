"""Turn answers into what the chat shows: the answer with citation markers, and the sources panel.

Rendering is kept apart from the Gradio wiring so it can be read and tested on its own. Everything here returns
strings: inline HTML inside the chat's markdown, or the sources panel's HTML. Every piece of document or answer
text is escaped, because uploaded documents are untrusted.

How a reader connects a claim to its evidence: each citation number gets a colour; the marker `[n]` in the answer
is a chip (`a.cite`, still a plain `#src-<turn>-<n>` link without script) labelled "Citation n: <document>,
<section>" and carrying its own claim's supporting sentences (`ui.citations`) for the popover. The page script
(`ui.assets`) opens the document viewer (`ui.viewer`) on click or Enter and shows the popover on hover, focus and
tap; the claim the marker ends is a `span.claim` it highlights. Colours are Okabe–Ito hues, darkened where needed
so every one is at least 3:1 against a white page (WCAG's contrast for non-text marks; tests/test_ui_viewer.py
computes it), and colour is never the only cue: marks are underlined, the current one also outlined.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence

from rag import Answer, Citation, Passage, markers
from ui import citations

# Okabe–Ito blue, vermillion, bluish green, reddish purple and orange; green, purple and orange darkened so each is
# >= 3:1 against white (5.2, 3.9, 5.3, 6.1, 4.7). Tints of them sit behind text; the solid colour draws the lines.
PALETTE = ["0, 114, 178", "213, 94, 0", "0, 122, 90", "170, 51, 119", "166, 100, 0"]

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~$])")

# Scoped to the sources panel by gr.HTML(css_template=...).
PANEL_CSS = """
.sources { font-size: 0.92rem; line-height: 1.5; }
.sources h3 { margin: 0 0 0.25rem 0; font-size: 1.05rem; }
.sources .hint { opacity: 0.75; font-size: 0.85rem; margin: 0 0 0.75rem 0; }
.sources .card { border: 1px solid rgba(128, 128, 128, 0.3); border-left-width: 5px; border-radius: 8px;
  padding: 0.55rem 0.75rem; margin: 0 0 0.75rem 0; scroll-margin-top: 1rem; }
.sources .card:target { box-shadow: 0 0 0 2px rgba(100, 116, 139, 0.7); }
.sources .head { display: flex; gap: 0.5rem; align-items: baseline; flex-wrap: wrap; }
.sources .num { font-weight: 700; border-radius: 6px; padding: 0 0.4rem; }
.sources .title { font-weight: 600; }
.sources .meta { opacity: 0.7; font-size: 0.8rem; margin: 0.1rem 0 0.35rem 0; }
.sources .text { white-space: pre-wrap; margin: 0; }
.sources .text .dim { opacity: 0.72; }
.sources mark { color: inherit; border-radius: 3px; padding: 0 1px; text-underline-offset: 3px; }
.sources .show { margin-top: 0.4rem; border: 1px solid rgba(100, 116, 139, 0.6); border-radius: 6px;
  padding: 0.1rem 0.55rem; background: transparent; color: inherit; font: inherit; font-size: 0.85rem;
  cursor: pointer; }
.sources .show:focus-visible { outline: 3px solid rgb(0, 114, 178); outline-offset: 1px; }
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


# Separates the fields of a chip's title (see `chip`); a character no document is expected to contain.
CHIP_FIELDS = "\u241e"


def chip(n: int, turn: int, k: int = 0, info: citations.Chip | None = None, citation: Citation | None = None) -> str:
    """A citation marker: a coloured `[n]` link (to the passage card, so it works without script) that the page
    script turns into a popover and the document viewer.

    The Chatbot's HTML sanitizer keeps only `id`, `class`, `href`, `style` and `title` (it drops `data-*` and
    `aria-*`), so what the script needs travels in those: the id `cite-<turn>-<k>` names the chip, and the title
    holds the accessible name ("Citation 1: <document>, <section>"), where it is and the claim's quote, separated
    by CHIP_FIELDS. The script moves them into `aria-label` and data attributes and removes the title, so there is
    no native tooltip."""
    rgb = colour(n)
    title = ""
    if citation is not None:
        label = f"Citation {n}: " + (f"{citation.title}, {citation.section}" if citation.section else citation.title)
        where = f"{citation.title} — § {citation.section}" if citation.section else citation.title
        quote = _shorten(info.quote, 600) if info is not None and info.quote else ""
        fields = [" ".join(f.replace(CHIP_FIELDS, " ").split()) for f in (label, where, quote)]
        title = f' title="{_attr(CHIP_FIELDS.join(fields))}"'
    return (f'<a class="cite" id="cite-{turn}-{k}" href="#{anchor(turn, n)}"{title} '
            f'style="text-decoration:underline 2px rgb({rgb});text-underline-offset:2px;font-weight:600;'
            f'font-size:0.85em;padding:0 0.3em;border-radius:5px;color:inherit;background:rgba({rgb},0.16);'
            f'border:1px solid rgb({rgb})">[{n}]</a>')


def _claims(text: str) -> list[tuple[markers.Marker, str]]:
    """Each citation marker of `text` with the claim it is attached to (see `ui.citations.claims`)."""
    return [(m, claim) for m, claim, _ in citations.claims(text)]


def link_markers(text: str, turn: int, answer: Answer | None = None) -> str:
    """Escape answer text for markdown and turn each citation marker (`[1]`, `[1, 2]`, `[1; 2]`, `[1-3]`, see
    `rag.markers`) into chips. Document text quoted as a literal (`\\[2]`) is shown as "[2]" and never becomes
    a chip. With the finished `answer`, each chip carries its citation's document and its own claim's quote, and
    the claim text (when it lies within one line) is a `span.claim` the chip highlights: its id is
    `claim-<turn>-<k of the claim's first chip>`."""
    chip_list = citations.chips(answer, None if answer is not None else text)
    by_n = {c.n: c for c in answer.citations} if answer is not None else {}
    out, pos, k = [], 0, 0
    for m, claim, index in citations.claims(text):
        claim_id = f"claim-{turn}-{k}"
        segment = text[pos:m.start]
        if answer is not None and segment.strip() and "\n" not in segment.strip():
            lead = len(segment) - len(segment.lstrip())
            body = segment.strip()
            trail = segment[lead + len(body):]
            out.append(_md_text(segment[:lead]) + f'<span class="claim" id="{claim_id}">{_md_text(body)}</span>'
                       + _md_text(trail))
        else:
            out.append(_md_text(segment))
        for n in m.numbers:
            out.append(chip(n, turn, k, chip_list[k] if k < len(chip_list) else None, by_n.get(n)))
            k += 1
        pos = m.end
    out.append(_md_text(text[pos:]))
    return "".join(out)


def _md_text(text: str) -> str:
    """Answer text between markers, as markdown: literal document brackets restored, everything escaped."""
    return md_escape(markers.unescape(text))


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
    text = link_markers(answer.answer, turn, answer)
    if answer.validation.backend_error:  # the LLM failed: say so plainly above the quoted answer
        warning = (f"<b>The LLM could not answer; these are quotes from the documents instead.</b><br>"
                   f"{_html_text(answer.validation.backend_error)}<br>Tip: switch the generator to “Extractive” "
                   f"under Advanced to answer without the LLM.")
        text = _note(warning, "217, 119, 6", "error") + "\n\n" + text
    extras = []
    if answer.validation.fallback and not answer.validation.backend_error:
        extras.append(f"Note: {answer.validation.fallback.rstrip('.')}.")
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
        # Neighbouring highlights alternate between a solid and a dotted underline (not only in shade, which
        # read at 1.2:1), so two supporting sentences never read as one.
        line = "solid" if i % 2 == 0 else "dotted"
        out.append(f'<mark style="background:rgba({rgb},0.22);text-decoration:underline 2px {line} rgb({rgb})">'
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


def _body(item: Citation | Passage) -> tuple[str, int]:
    """The passage text a card shows and its document offset: a first line that only repeats the section heading
    (the chunk of "## Wildlife" starts with that line) is left out, since the card's head already names it."""
    text, offset = item.text, item.start
    first, sep, rest = text.partition("\n")
    heading = re.sub(r"^\s*#{1,6}\s+|\s*#*\s*$", "", first).strip()
    if sep and heading and item.section and " ".join(heading.split()) == " ".join(item.heading.split()):
        skipped = len(first) + 1 + (len(rest) - len(rest.lstrip()))
        return text[skipped:], offset + skipped
    return text, offset


def _show_button(turn: int, chip_k: int | None, n: int, passage: bool = False) -> str:
    """Opens the whole document at this passage (the viewer); for a cited passage, at its first marker."""
    request = f"p:{turn}:{n}" if passage or chip_k is None else f"c:{turn}:{chip_k}"
    return (f'<button type="button" class="show" id="show-{turn}-{n}" data-cite="{request}" '
            f'data-return="show-{turn}-{n}" aria-label="Show passage {n} in the whole document">'
            "Show in document</button>")


def citation_card(c: Citation, turn: int, claims: Sequence[str] = (), chip_k: int | None = None) -> str:
    """A cited passage: same colour as its marker, supporting sentences marked, the rest dimmed."""
    rgb = colour(c.n)
    supports = supporting_text(c)
    cited_for = ""
    # An LLM paraphrases: say which answer sentence this passage backs. Extractive answers quote the highlight.
    shown = [x for x in claims if _norm(x) not in _norm(supports)]
    if shown:
        cited_for = ('<p class="cited-for"><b>Supports:</b> ' + html.escape(_shorten(" / ".join(shown), 400))
                     + "</p>")
    head = _card_head(c, f' style="background:rgba({rgb},0.16);border:1px solid rgb({rgb})"')
    body, offset = _body(c)
    return (f'<div class="card" id="{anchor(turn, c.n)}" style="border-left-color:rgb({rgb})">{head}{cited_for}'
            f'<p class="text">{highlighted(body, offset, c.highlights, rgb)}</p>'
            f'{_show_button(turn, chip_k, c.n)}</div>')


def passage_card(p: Passage, turn: int | None) -> str:
    """A retrieved passage the answer does not cite (kept for checking, visually secondary)."""
    ident = f' id="{anchor(turn, p.n)}"' if turn is not None else ""
    show = _show_button(turn, None, p.n, passage=True) if turn is not None else ""
    body, _ = _body(p)
    return f'<div class="card other"{ident}>{_card_head(p)}<p class="text">{html.escape(body)}</p>{show}</div>'


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
        f'{_demo_chip(1)} in an answer is a citation: point at it (or tab to it, or tap it) to read the quote, and '
        "click it (or press Enter) to open the whole document at that spot, with the sentences that support the "
        'answer <mark style="background:rgba(0,114,178,0.22);text-decoration:underline 2px rgb(0,114,178)">'
        "highlighted</mark>.</p>")


def _demo_chip(n: int) -> str:
    return (f'<span class="num" style="background:rgba({colour(n)},0.16);border:1px solid rgb({colour(n)});'
            f'border-radius:5px;padding:0 0.3em">[{n}]</span>')


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
    first_chip: dict[int, int] = {}
    for ch in citations.chips(answer):
        first_chip.setdefault(ch.n, ch.k)
    parts.extend(citation_card(c, turn, claims.get(c.n, ()), first_chip.get(c.n))
                 for c in sorted(answer.citations, key=lambda c: c.n))
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
                    f"{r.size / 1024:.1f} KB, {plural(r.chunks, 'passage')})")
    return "\n".join(rows)
