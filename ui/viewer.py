"""The document viewer: a citation opens its whole source document, scrolled to the cited span.

The viewer shows the text the index holds for the document (`RAG.document_text`): plain text and Markdown as
written, HTML as the text the loader extracted, PDF as its extracted text with a "Page n" divider wherever the
loader put a form feed between pages. On that text it marks, by exact document offsets:

- the current citation's passage (a tinted band),
- the supporting sentence(s) of the claim whose marker was clicked (strong tint, underline and outline; the
  first of them is focused, so a keyboard or screen-reader user lands on the evidence),
- the same citation's other supporting sentences (tint and underline),
- the answer's other citations in this document (a dashed underline and their number).

Why render on the server: the page would otherwise have to fetch and keep every cited document. Rendering is a
single pass over sorted boundaries plus `html.escape`; a 1 MB document renders in about 10 ms here
(`python -m ui.bench_viewer` prints the measurement, and the browser time from click to focused span).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag import Answer, Citation
from ui.citations import Chip
from ui.render import colour

PAGE_BREAK = "\f"  # index.documents' PDF loader separates pages with "\n\f\n" (the pdftotext convention)

VIEWER_CSS = """
.viewer { font-size: 0.92rem; line-height: 1.55; }
.viewer .vbar { display: flex; flex-wrap: wrap; gap: 0.4rem; align-items: center; margin-bottom: 0.4rem; }
.viewer .vbar button { border: 1px solid rgba(100, 116, 139, 0.6); border-radius: 6px; padding: 0.15rem 0.6rem;
  background: transparent; color: inherit; cursor: pointer; font: inherit; font-size: 0.85rem; }
.viewer .vbar button:disabled { opacity: 0.45; cursor: default; }
.viewer .vbar button:focus-visible { outline: 3px solid rgb(0, 114, 178); outline-offset: 1px; }
.viewer .vpos { margin-left: auto; font-size: 0.85rem; opacity: 0.85; }
.viewer .vtitle { font-weight: 650; font-size: 1.02rem; margin: 0.1rem 0 0 0; }
.viewer .vmeta { opacity: 0.75; font-size: 0.82rem; margin: 0 0 0.4rem 0; }
.viewer .vnote { font-size: 0.85rem; border-left: 4px solid rgb(213, 94, 0); padding: 0.2rem 0.5rem;
  margin: 0 0 0.4rem 0; }
.viewer .vtext { position: relative; white-space: pre-wrap; overflow-wrap: anywhere; overflow-y: auto;
  max-height: 62vh; border: 1px solid rgba(128, 128, 128, 0.35); border-radius: 8px; padding: 0.6rem 0.75rem;
  margin: 0; font-family: inherit; }
.viewer .vtext:focus-visible { outline: 3px solid rgb(0, 114, 178); }
.viewer .blk { content-visibility: auto; }
.viewer .blk.near { content-visibility: visible; }
.viewer .band { background: rgba(var(--c), 0.07); }
.viewer .hl { background: rgba(var(--c), 0.16); text-decoration: underline 2px rgb(var(--c));
  text-underline-offset: 3px; }
.viewer .focus { background: rgba(var(--c), 0.30); text-decoration: underline 3px rgb(var(--c));
  text-underline-offset: 3px; outline: 2px solid rgb(var(--c)); border-radius: 2px; }
.viewer .focus:focus { outline-width: 3px; }
.viewer .cited { text-decoration: underline dashed 2px rgb(var(--c)); text-underline-offset: 3px; }
.viewer .cnum { font-weight: 700; font-size: 0.8em; border: 1px solid rgb(var(--c)); border-radius: 4px;
  padding: 0 0.25em; margin-right: 0.2em; }
.viewer .page { display: block; text-align: center; font-size: 0.78rem; opacity: 0.7; margin: 0.6rem 0;
  border-top: 1px dashed rgba(128, 128, 128, 0.6); white-space: normal; }
@media (max-width: 480px) { .viewer .vtext { max-height: calc(100dvh - 12rem); } }
"""


@dataclass(frozen=True)
class Layer:
    """One marked stretch of the document: `kind` is band, hl, focus or cited; `n` the citation number."""

    start: int
    end: int
    kind: str
    n: int


_RANK = {"cited": 0, "band": 1, "hl": 2, "focus": 3}  # the strongest layer gives a stretch its class and colour


def layers_for(answer: Answer, source: str, current: Citation, spans: Sequence[tuple[int, int]]) -> list[Layer]:
    """What to mark in `source`: the current citation (band, its highlights, `spans` in focus) and every other
    citation of `answer` in the same document."""
    out = [Layer(current.start, current.end, "band", current.n)]
    focus = set(map(tuple, spans))
    for a, b in current.highlights:
        out.append(Layer(a, b, "focus" if (a, b) in focus else "hl", current.n))
    for a, b in focus - {tuple(h) for h in current.highlights}:
        out.append(Layer(a, b, "focus", current.n))
    for c in answer.citations:
        if c.source == source and c.n != current.n:
            out.append(Layer(c.start, c.end, "cited", c.n))
    return out


BLOCK_CHARS = 4000  # text per block (see render_text)


def block_cuts(text: str, size: int = BLOCK_CHARS) -> list[int]:
    """Where the text is cut into blocks: just after the first line break at or beyond every `size` characters
    (so a block never ends inside a line)."""
    cuts, pos = [], size
    while pos < len(text):
        nl = text.find("\n", pos)
        if nl < 0:
            break
        cuts.append(nl + 1)
        pos = nl + 1 + size
    return cuts


def _block_open(text: str, start: int, end: int, near: bool) -> str:
    """A block that the browser lays out only when it comes near the screen (content-visibility: auto), with its
    estimated height (about 70 characters a line) standing in until then. The blocks `near` the cited span are
    laid out at once: they are what the viewer scrolls to, so their height must be real when it does."""
    piece = text[start:end]
    lines = piece.count("\n") + len(piece) // 70 + 1
    cls = "blk near" if near else "blk"
    return f'<div class="{cls}" style="contain-intrinsic-size:auto {lines * 1.55:.0f}em">'


def render_text(text: str, layers: Sequence[Layer], pages: bool) -> str:
    """`text` as HTML with `layers` marked. Elementary stretches between layer boundaries each get the class of
    their strongest layer; the first focus stretch is `#viewer-current` (focusable), and every other citation's
    passage starts with its number. Form feeds become "Page n" dividers when `pages`.

    The text is cut into blocks of about BLOCK_CHARS that the browser lays out only near the screen. Measured
    in headless Chromium on a 1 MB document: laying out one pre-wrapped text box took 110–440 ms, over the 300 ms
    the viewer may take to open; in blocks it takes a few milliseconds. A block boundary is also a stretch
    boundary, so a mark never spans two blocks (it is split in two instead)."""
    length = len(text)
    layers = [Layer(max(0, lay.start), min(length, lay.end), lay.kind, lay.n) for lay in layers]
    layers = [lay for lay in layers if lay.end > lay.start]
    blocks = block_cuts(text)
    block_starts = set(blocks)
    cuts = sorted({0, length, *blocks, *(lay.start for lay in layers), *(lay.end for lay in layers)})
    starts_of_cited = {(lay.start, lay.n) for lay in layers if lay.kind == "cited"}
    page = [1]
    out = ['<span class="page" data-page="1">Page 1</span>'] if pages else []
    focused = False

    def esc(piece: str) -> str:
        if not pages or PAGE_BREAK not in piece:
            return html.escape(piece)
        parts = piece.split(PAGE_BREAK)
        rendered = [html.escape(parts[0])]
        for part in parts[1:]:
            page[0] += 1
            rendered.append(f'<span class="page" data-page="{page[0]}">Page {page[0]}</span>{html.escape(part)}')
        return "".join(rendered)

    ends = [*blocks, length]
    focus_at = min((lay.start for lay in layers if lay.kind == "focus"), default=0)
    target = sum(1 for cut in blocks if cut <= focus_at)  # the block holding the focused span

    def near(i: int) -> bool:
        return abs(i - target) <= 1

    out.insert(0, _block_open(text, 0, ends[0], near(0)))
    block = 0
    for a, b in zip(cuts, cuts[1:]):
        if a in block_starts:
            block += 1
            out.append("</div>" + _block_open(text, a, ends[block], near(block)))
        active = [lay for lay in layers if lay.start <= a and b <= lay.end]
        piece = esc(text[a:b])
        if not active:
            out.append(piece)
            continue
        top = max(active, key=lambda lay: _RANK[lay.kind])
        label = "".join(f'<span class="cnum" style="--c:{colour(n)}" aria-hidden="true">[{n}]</span>'
                        for (s, n) in sorted(starts_of_cited) if s == a)
        attrs = f'class="{top.kind}" style="--c:{colour(top.n)}"'
        if top.kind == "focus" and not focused:
            focused = True
            attrs += ' id="viewer-current" tabindex="-1" aria-label="Cited sentence"'
        out.append(f"{label}<span {attrs}>{piece}</span>")
    out.append("</div>")
    return "".join(out)


def page_of(text: str, offset: int) -> int:
    return text.count(PAGE_BREAK, 0, max(0, offset)) + 1


def _button(label: str, request: str | None, ret: str | None, aria: str) -> str:
    if request is None:
        return f'<button type="button" disabled aria-label="{html.escape(aria)}">{label}</button>'
    return (f'<button type="button" data-cite="{request}" data-return="{ret or ""}" '
            f'aria-label="{html.escape(aria)}">{label}</button>')


def viewer_html(*, open_id: int, answer: Answer, turn: int, text: str, kind: str, current: Citation,
                spans: Sequence[tuple[int, int]], position: tuple[int, int] | None = None,
                neighbours: tuple[Chip | None, Chip | None] = (None, None), note: str = "") -> str:
    """The whole document with the citation marked, a bar with Back / Previous / Next, and where it is.
    `open_id` is the page's request counter: the page acts (scroll, focus) once per new id."""
    pages = kind == "pdf" or PAGE_BREAK in text
    focus = spans or [(current.start, current.end)]
    body = render_text(text, layers_for(answer, current.source, current, focus), pages)
    prev_chip, next_chip = neighbours
    bar = ['<button type="button" data-action="back" class="vback">← Back to the answer</button>',
           _button("‹ Previous", f"c:{turn}:{prev_chip.k}" if prev_chip else None,
                   f"cite-{turn}-{prev_chip.k}" if prev_chip else None, "Previous citation"),
           _button("Next ›", f"c:{turn}:{next_chip.k}" if next_chip else None,
                   f"cite-{turn}-{next_chip.k}" if next_chip else None, "Next citation")]
    if position:
        bar.append(f'<span class="vpos">Citation [{current.n}] · {position[0]} of {position[1]}</span>')
    where = [html.escape(re.split(r"[\\/]", current.source)[-1])]
    if pages:
        where.append(f"page {page_of(text, focus[0][0])}")
    where.append(f"characters {current.start:,}–{current.end:,} of {len(text):,}")
    section = f"§ {html.escape(current.section)} · " if current.section else ""
    note_html = f'<p class="vnote">{html.escape(note)}</p>' if note else ""
    return (f'<div class="viewer" data-open-id="{open_id}" role="region" '
            f'aria-label="Document viewer: {html.escape(current.title)}">'
            f'<div class="vbar">{"".join(bar)}</div>'
            f'<p class="vtitle">{html.escape(current.title)}</p><p class="vmeta">{section}{" · ".join(where)}</p>'
            f'{note_html}<div class="vtext" tabindex="0" aria-label="Document text">{body}</div></div>')


def message_html(title: str, message: str, open_id: int = 0) -> str:
    """The viewer when there is nothing to show (the answer is gone, the document left the index)."""
    return (f'<div class="viewer" data-open-id="{open_id}" role="region" aria-label="Document viewer">'
            '<div class="vbar"><button type="button" data-action="back" class="vback">← Back to the answer'
            f'</button></div><p class="vtitle">{html.escape(title)}</p>'
            f'<p class="vmeta" id="viewer-current" tabindex="-1">{html.escape(message)}</p></div>')
