"""Sentence spans with document offsets, so quoted sentences can be cited and highlighted exactly."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pysbd

_local = threading.local()


@dataclass(frozen=True)
class Sentence:
    source: str
    start: int
    end: int
    text: str


def _segmenter() -> pysbd.Segmenter:
    """One per thread: a Segmenter keeps the text it is working on in itself, so sharing one across threads
    mixes up concurrent requests' sentences."""
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return seg


_FINAL = ".!?:;\"”’)]…"


def _segments(text: str) -> list[tuple[int, str]]:
    """(offset, text) of each run of lines that belong together. A line break is a soft wrap (hard-wrapped
    manuals, plain-text books) when the line does not end a sentence and the next line goes on in lower case;
    otherwise it ends the sentence, as each line of the bundled essay is a paragraph or a heading. A soft break
    is read as a space (one character for one, so offsets stay exact)."""
    lines = text.split("\n")
    out: list[tuple[int, str]] = []
    pos, start, parts = 0, 0, []
    for i, line in enumerate(lines):
        if not parts:
            start = pos
        parts.append(line)
        nxt = lines[i + 1].lstrip() if i + 1 < len(lines) else ""
        soft = bool(line.strip()) and line.rstrip()[-1] not in _FINAL and nxt[:1].islower()
        if not soft:
            out.append((start, " ".join(parts)))
            parts = []
        pos += len(line) + 1
    return out


def split_sentences(text: str, offset: int = 0, source: str = "") -> list[Sentence]:
    """pysbd sentence boundaries, trimmed of surrounding whitespace, with document offsets. A sentence never runs
    over a line break unless the break is a soft wrap (see `_segments`); `Sentence.text` is always the document's
    own characters (`text[start:end]`), soft breaks included."""
    out: list[Sentence] = []
    for seg_start, segment in _segments(text):
        if not segment.strip():
            continue
        for span in _segmenter().segment(segment):
            raw = segment[span.start:span.end]
            lead = len(raw) - len(raw.lstrip())
            body = raw.strip()
            if body:
                a = seg_start + span.start + lead
                out.append(Sentence(source, offset + a, offset + a + len(body), text[a:a + len(body)]))
    return out


def display(text: str) -> str:
    """A sentence as a reader sees it quoted: soft line breaks and indentation become single spaces."""
    return " ".join(text.split())
