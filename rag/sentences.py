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


def split_sentences(text: str, offset: int = 0, source: str = "") -> list[Sentence]:
    """pysbd sentence boundaries, trimmed of surrounding whitespace; lines are never joined across newlines."""
    out: list[Sentence] = []
    line_start = 0
    for line in text.split("\n"):
        if line.strip():
            for span in _segmenter().segment(line):
                raw = line[span.start:span.end]
                lead = len(raw) - len(raw.lstrip())
                body = raw.strip()
                if body:
                    start = offset + line_start + span.start + lead
                    out.append(Sentence(source, start, start + len(body), body))
        line_start += len(line) + 1
    return out
