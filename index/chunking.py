"""Cutting documents into passages that keep exact character offsets and their section heading.

Chunks never cross a section boundary: a heading starts a new section, so every passage carries one heading
as context and the UI can show where in the document it sits.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from index.config import IndexConfig
from index.documents import Document, DocumentError
from index.spans import SECTION_SEPARATOR, Span

# Paragraphs, then lines, then sentence ends, then words: the splitter only falls back when a piece is too long.
_SEPARATORS = [r"\n\n", r"\n", r"(?<=[.!?…])\s+", r"(?<=[;:])\s+", r" ", r""]
# In hard-wrapped text (`hard_wrapped`) a line break is where the wrapper ran out of width, mid-sentence: a passage
# cut there opens with "10th to July 17th, 2005 with over three hundred participants." and loses what the sentence
# is about (the Debian history's text dump). There sentence ends come before line breaks.
_WRAPPED_SEPARATORS = [r"\n\n", r"(?<=[.!?…])\s+", r"\n", r"(?<=[;:])\s+", r" ", r""]
_MD_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$")
# A section number before a heading's first word ("1. Introduction", "2.1. General rules", "1.1 In the
# Beginning"): manuals, constitutions and papers number their headings; the word after it must still be capitalised.
_NUMBERING = re.compile(r"^\d{1,3}(\.\d{1,3})*\.?\s+")
# A heading's place in the document's outline: "6.3. Procedure" sits under "6. The Technical Committee",
# "A.1. Discussion" under "A. Standard Resolution Procedure", "4.1. The 0.x Releases" under "Chapter 4. …".
_OUTLINE = re.compile(r"^(?:(?:chapter|appendix|part|section)\s+)?(\d{1,3}|[A-Z](?=\.))((?:\.\d{1,3})*)\.?\s", re.I)
_MD_LEVEL = re.compile(r"^\s{0,3}(#{1,6})\s")


@dataclass(frozen=True, kw_only=True)
class Chunk(Span):
    """A span the index stores and searches; `id` is stable for the same source and offsets."""

    id: str

    def to_dict(self) -> dict:
        return {"id": self.id, **self.span_dict()}

    @classmethod
    def from_dict(cls, data: dict) -> "Chunk":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def is_heading(line: str, kind: str = "text") -> str | None:
    """Return the heading text when `line` is a heading (Markdown '#', or a short line with no final stop)."""
    stripped = line.strip()
    if not stripped or "\n" in stripped:
        return None
    md = _MD_HEADING.match(stripped)
    if md:
        return md.group(1)
    if kind == "markdown" and not md:
        return None
    words = stripped.split()
    if len(stripped) <= 100 and len(words) <= 14 and stripped[-1] not in ".!?:;,…\"”’)" and \
            _NUMBERING.sub("", stripped)[:1].isupper():
        return stripped
    return None


_UNDERLINE = re.compile(r"^\s*([=*\-~^#])\1{2,}\s*$")
_SENTENCE_INSIDE = re.compile(r"[a-z]{2}[.!?]\s+(['\"“‘(]\S|[A-Z])")
_CLAUSE_END = tuple(".!?:;…\"”’)")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
# Kinds whose text marks its headings with '#' (the HTML loader writes <h1>…<h6> that way).
_MARKED_KINDS = {"markdown", "html"}


def hard_wrapped(lines: list[str]) -> bool:
    """Whether the text is wrapped at a fixed width, read from how often a line runs on into a lower-case one:
    0.58 of the ed manual's adjacent line pairs do, 0 of the essay's (one line per paragraph), 0 of notes written
    a line per item."""
    pairs = [(a, b) for a, b in zip(lines, lines[1:]) if a.strip() and b.strip()]
    return bool(pairs) and sum(b.strip()[0].islower() for _, b in pairs) >= 0.2 * len(pairs)


def indent(line: str) -> int:
    """Leading whitespace, no-break spaces included (text dumps of web pages indent with them)."""
    return len(line) - len(line.lstrip())


def _outdented(lines: list[str], i: int) -> bool:
    """Whether the text after line `i` (past blank lines) is indented deeper than it: a text dump of a web page
    indents its headings less than their paragraphs ("  2.1. General rules" over "    1. Nothing in this …" in
    the Debian constitution), where a code line has code at its own depth below it."""
    for nxt in lines[i + 1:]:
        if nxt.strip():
            return indent(nxt) > indent(lines[i])
    return False


def _heading_in_context(lines: list[str], i: int, kind: str, prev_heading: bool, wrapped: bool) -> str | None:
    """`is_heading` read with its neighbours, so hard-wrapped prose is not cut at a line that merely looks short.

    A wrapped paragraph ("…by Ken Thompson and" / "Dennis Ritchie. It is the refinement…") has lines that start
    in upper case and end without a stop; read alone they look like headings, and the manual's answer was cut
    in two (ed-manual fact-01). A line is a continuation when the line before it runs on (no stop, not a
    heading), when the next line carries on in lower case, or when a sentence ends inside it. An underline of
    `=`, `*`, `-` or `~` (Markdown setext, reStructuredText, GNU Info) makes the line above a heading whatever
    its first character ("2 Introduction to line editing"). Outside Markdown an indented line is a paragraph
    opening or code, never a heading. A heading may follow a heading (an Info node line, then its title) only when
    a blank line or an underline comes after it: notes written a line per item ("Tickets" / "Adults pay 12 euros" /
    "Children under 12 enter free") are a heading and its body, and were one section named by their last line.
    """
    line = lines[i]
    stripped = line.strip()
    if not stripped or _UNDERLINE.match(stripped):
        return None
    if kind in _MARKED_KINDS:  # CommonMark: four spaces of indentation make a code line, never a heading
        return None if line.startswith("    ") else is_heading(line, "markdown")
    nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
    if _UNDERLINE.match(nxt):
        return stripped
    heading = is_heading(line, kind)
    if heading is None:
        return None
    prev = lines[i - 1].strip() if i > 0 else ""
    if line[:1].isspace() and (prev or not _outdented(lines, i)):
        return None     # an indented paragraph opening, a code or sample-session line ("     # The ',' means")
    if prev and not prev_heading and not prev.endswith(_CLAUSE_END):
        return None
    if prev_heading and prev and nxt and not _UNDERLINE.match(nxt):
        return None     # a list of short lines under a heading ("Tickets" / "Adults pay 12 euros" / …), not a chain
    if nxt and (wrapped or nxt[0].islower()):  # wrapped text sets its headings off with a blank line
        return None
    if _SENTENCE_INSIDE.search(stripped):
        return None
    return heading


def _outline_key(line: str, heading: str, kind: str) -> tuple[str, ...] | int | None:
    """Where a heading sits in the outline: its '#' level in Markdown, its number elsewhere ("6.3" -> ("6", "3"),
    "Chapter 4. Debian Releases" -> ("4",)), or None for an unnumbered plain-text heading, whose level is
    unknown."""
    if kind in _MARKED_KINDS:
        level = _MD_LEVEL.match(line)
        return len(level.group(1)) if level else None
    number = _OUTLINE.match(heading)
    if number is None:
        return None
    return (number.group(1).upper(), *[n for n in number.group(2).split(".") if n])


def _nested(parent: tuple[str, ...] | int | None, child: tuple[str, ...] | int | None) -> bool:
    """Whether a heading with outline key `parent` contains one with key `child`."""
    if isinstance(parent, int) and isinstance(child, int):
        return parent < child
    if isinstance(parent, tuple) and isinstance(child, tuple):
        return len(parent) < len(child) and child[:len(parent)] == parent
    return False


def sections(text: str, kind: str = "text", wrapped: bool | None = None) -> list[tuple[int, int, str]]:
    """(start, end, section) spans covering the whole text; the part before any heading has section ''.

    A section is named by its heading path, outermost first, joined by `SECTION_SEPARATOR`: a numbered heading sits
    under the headings whose numbers prefix its own, a Markdown heading under the headings of higher levels before
    it. "There is a quorum of two." had been filed under "6.3. Procedure" alone, and nothing in its passage said
    it was the Technical Committee's procedure (the constitution has five sections so named). An unnumbered
    plain-text heading stands alone: its level cannot be read.

    Headings that follow each other with no text between them (an Info node line, then its underlined title)
    open one section named by the last of them, not a passage holding only a heading.
    """
    spans: list[tuple[int, int, str]] = []
    current_start, current_heading = 0, ""
    outline: list[tuple[tuple[str, ...] | int | None, str]] = []   # the open headings, outermost first
    has_body = False
    prev_heading = False
    lines = text.split("\n")
    if kind == "html" and not any(_MD_HEADING.match(line) for line in lines):
        kind = "text"   # HTML text stored by the loader before it wrote '#' headings: guess them as in plain text
    if wrapped is None:
        wrapped = hard_wrapped(lines)
    offset = 0
    in_fence = False
    for i, line in enumerate(lines):
        if kind in _MARKED_KINDS and _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _heading_in_context(lines, i, kind, prev_heading, wrapped)
        if heading is not None:
            if offset > current_start and has_body:
                spans.append((current_start, offset, current_heading))
                current_start = offset
            key = _outline_key(line, heading, kind)
            outline = [(k, h) for k, h in outline if _nested(k, key)] + [(key, heading)]
            current_heading = SECTION_SEPARATOR.join(h for _, h in outline)
            has_body = False
        elif line.strip() and not _UNDERLINE.match(line.strip()):
            has_body = True
        prev_heading = heading is not None
        offset += len(line) + 1
    spans.append((current_start, len(text), current_heading))
    return [s for s in spans if text[s[0]:s[1]].strip()]


def chunk_id(source: str, start: int, end: int) -> str:
    return f"{hashlib.sha1(source.encode()).hexdigest()[:10]}:{start}-{end}"


class Chunker:
    """Section-aware recursive splitting (LangChain) with offsets verified against the source text."""

    def __init__(self, chunk_size: int, chunk_overlap: int, strategy: str) -> None:
        self.strategy = strategy
        if strategy == "recursive":  # the LangChain tutorial's splitter, used as the evaluation baseline
            self.splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                                                           add_start_index=True)
            return
        self.splitter = self._sections_splitter(_SEPARATORS, chunk_size, chunk_overlap)
        self.wrapped_splitter = self._sections_splitter(_WRAPPED_SEPARATORS, chunk_size, chunk_overlap)

    @staticmethod
    def _sections_splitter(separators: list[str], chunk_size: int, chunk_overlap: int) -> RecursiveCharacterTextSplitter:
        return RecursiveCharacterTextSplitter(
            separators=separators,
            is_separator_regex=True,
            keep_separator="end",
            chunk_size=chunk_size,
            chunk_overlap=chunk_overlap,
            add_start_index=True,
            strip_whitespace=True,
        )

    @classmethod
    def from_config(cls, config: IndexConfig) -> "Chunker":
        return cls(config.chunk_size, config.chunk_overlap, config.chunker)

    def split(self, doc: Document) -> list[Chunk]:
        """Chunks whose `text == doc.text[start:end]`, checked here: a splitter that loses track of offsets
        raises DocumentError for this document, so an update reports it and indexes the other files."""
        chunks: list[Chunk] = []
        wrapped = hard_wrapped(doc.text.split("\n"))
        spans = sections(doc.text, doc.kind, wrapped) if self.strategy == "sections" else [(0, len(doc.text), "")]
        splitter = self.wrapped_splitter if self.strategy == "sections" and wrapped else self.splitter
        for sec_start, sec_end, heading in spans:
            section_text = doc.text[sec_start:sec_end]
            for piece in splitter.create_documents([section_text]):
                local = piece.metadata["start_index"]
                if local < 0 or section_text[local:local + len(piece.page_content)] != piece.page_content:
                    raise DocumentError(doc.source, f"cannot be split into passages with exact offsets (the text "
                                        f"splitter placed a passage at character {sec_start + local} where the "
                                        "document's text differs); please report this file")
                start = sec_start + local
                end = start + len(piece.page_content)
                chunks.append(Chunk(id=chunk_id(doc.source, start, end), source=doc.source, title=doc.title,
                                    section=heading, start=start, end=end, text=piece.page_content))
        return chunks


def embedding_text(chunk: Chunk, with_headings: bool) -> str:
    """Title and section give short passages the context their own words lack."""
    if not with_headings:
        return chunk.text
    head = " — ".join(p for p in (chunk.title, chunk.section) if p and p != chunk.text)
    return f"{head}\n{chunk.text}" if head else chunk.text
