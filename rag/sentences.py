"""Sentence spans with document offsets, so quoted sentences can be cited and highlighted exactly."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import pysbd

from index.chunking import hard_wrapped, indent

_local = threading.local()


@dataclass(frozen=True)
class Sentence:
    source: str
    start: int
    end: int
    text: str


_LEANS_BACK = re.compile(r"^[“\"‘]?((This|These|That|Those|It|Its|They|Their|Such|Thus|Hence|He|She|His|Her|"
                         r"Consequently|Accordingly|Moreover|Additionally|Therefore|Similarly|Likewise|Instead|"
                         r"Otherwise)\b|(Despite|Because of|Due to|After|Before|Besides|Beyond|Given|In|For|With|"
                         r"Without|Like|Unlike|Apart from|As a result of|In addition to)\s+(all\s+)?(this|that|these|"
                         r"those|it|them)\b)")


def _segmenter() -> pysbd.Segmenter:
    """One per thread: a Segmenter keeps the text it is working on in itself, so sharing one across threads
    mixes up concurrent requests' sentences."""
    seg = getattr(_local, "segmenter", None)
    if seg is None:
        seg = _local.segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return seg


_FINAL = ".!?:;\"”’)]…"
# A line ending in one of these words (or a comma) cannot end a sentence or a heading, so the next line goes on
# with it whatever its case: "by Ken Thompson and" / "Dennis Ritchie." in the GNU ed manual.
_JOINING = frozenset("""a an the and or nor but of to by with for from in on at as into onto than that which who
whose whom is are was were be been its their his her our your this these those each every any if when while
because""".split())
_LAST_WORD = re.compile(r"([A-Za-z]+)\W*$")
_OPENERS = "'\"“‘([<*`"


# A line that starts a list item or a block of its own ("* item", "- item", "1. step", "(a) case", "| cell").
_NEW_ITEM = re.compile(r"^([*•·|>+-]\s|\d{1,3}[.)]\s|\(?[a-z0-9]{1,3}\)\s)")
# A line at least this share of the text's wrap width (its longest lines) was broken by the wrapper, not by the
# author: hard-wrapped prose fills its lines to the width, a heading or a list's last line stops short.
FULL_LINE_SHARE = 0.75
FULL_LINE_MIN = 50


def wrap_width(lines: list[str]) -> int:
    """The width a hard-wrapped text was filled to: the 90th percentile of its non-blank line lengths. In a text
    with a paragraph per line it is a paragraph's length, so no line counts as full there."""
    lengths = sorted(len(line.rstrip()) for line in lines if line.strip())
    return lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0


def _full(line: str, width: int) -> bool:
    n = len(line.rstrip())
    return n >= FULL_LINE_MIN and n >= FULL_LINE_SHARE * width


def _text_column(line: str) -> int:
    """Where a line's text starts: after its indentation and, in a list item, after the item's marker, where the
    item's wrapped lines go on ("         2. The Foundation Documents are the works entitled …" /
    "            Contract" and …" in the Debian constitution's text dump)."""
    body = line.lstrip()
    item = _NEW_ITEM.match(body)
    return indent(line) + (len(item.group(0)) if item else 0)


def _open_quote(body: str) -> bool:
    """A line that leaves a double quotation open ('…the works entitled "Debian Social') cannot end a sentence."""
    return body.count('"') % 2 == 1 or body.count("“") > body.count("”")


def _soft_break(line: str, nxt: str, then: str = "", width: int = 0) -> bool:
    """Whether the line break between `line` and the next line `nxt` is a soft wrap inside one sentence.

    Hard-wrapped manuals and plain-text books break lines anywhere; the bundled essay puts each paragraph or heading
    on a line of its own. A break is soft when the line does not end a sentence (no final punctuation) and
    - the next line goes on in lower case, after any opening quote or bracket ("to the file" / "'ed.hup' or, ..."),
    - or the line ends in a comma or a word that cannot end a sentence ("and", "of", "the", ...),
    - or the line is a short term whose definition follows indented below it (a definition list, as in GNU info
      manuals and man pages: "'--strip-trailing-cr'" / "     Strip the carriage returns ..."): the term is what
      names the thing the definition describes, and alone it is too short to quote;
    - or the line is one of several terms of one definition, each on its own line ("'-v'" / "'--verbose'" /
      "     Turn help mode on; …"): the short option was a sentence of its own, so an answer quoting the
      definition named only the long one (ed-manual dev para-03);
    - or the line is full (filled to the text's wrap `width`, see `_full`) and the next line goes on where its
      text starts (`_text_column`: a list item's wrapped lines hang under its text) without opening a list item:
      "Stormix declared bankruptcy on January" / "17th 2001" in the Debian history's text dump was cut into two
      sentences, neither of which gave the date;
    - or the line leaves a double quotation open and the next line does not open a list item."""
    body, after = line.strip(), nxt.strip()
    if not body or not after or body[-1] in _FINAL:
        return False
    if after.lstrip(_OPENERS)[:1].islower():
        return True
    last = _LAST_WORD.search(body)
    if body[-1] == "," or (last and body[-1].isalpha() and last.group(1).lower() in _JOINING):
        return True
    if not _NEW_ITEM.match(after) and (_open_quote(body) or
                                       (width and _full(line, width) and indent(nxt) == _text_column(line))):
        return True
    if len(body) > 40:
        return False
    if indent(nxt) > indent(line):
        return True
    return len(after) <= 40 and after[-1] not in _FINAL and indent(nxt) == indent(line) and \
        bool(then.strip()) and indent(then) > indent(nxt)


# A PDF's page break, as the loader writes it: a form feed on a line of its own.
_PAGE_BREAK = re.compile(r"^[ \t]*\f[ \t]*$")


def _segments(text: str) -> list[tuple[int, str]]:
    """(offset, text) of each run of lines that belong together (`_soft_break`). A soft break is read as a space
    (one character for one, so offsets stay exact). A sentence runs over a PDF's page break when the line before
    the break runs on into the line after it ("…led it until March" / form feed / "1996.")."""
    lines = text.split("\n")
    width = wrap_width(lines) if hard_wrapped(lines) else 0
    out: list[tuple[int, str]] = []
    pos, start, parts = 0, 0, []
    over_page = False
    for i, line in enumerate(lines):
        if not parts:
            start = pos
        parts.append(line)
        pos += len(line) + 1
        if over_page:   # the page break inside a sentence: it goes on on the next page
            over_page = False
            continue
        j = i + 2 if i + 2 < len(lines) and _PAGE_BREAK.match(lines[i + 1]) and line.strip() else i + 1
        nxt = lines[j] if j < len(lines) else ""
        if _soft_break(line, nxt, lines[j + 1] if j + 1 < len(lines) else "", width):
            over_page = j == i + 2
        else:
            out.append((start, " ".join(parts)))
            parts = []
    if parts:
        out.append((start, " ".join(parts)))
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


def leans_back(text: str) -> bool:
    """A sentence that opens by leaning on the sentence before it ("This tests whether…", "It is the refinement
    of…", "Despite this, the foreign policy approach was…"): read alone, it does not say what it is about."""
    return bool(_LEANS_BACK.match(text.lstrip()))


_PRONOUN_OPENING = re.compile(r"^[“\"‘]?(This|These|That|Those|It|Its|They|Their|Them|Such|He|She|His|Her)\b")


def opens_with_pronoun(text: str) -> bool:
    """A sentence whose subject is a pronoun ("It is the refinement of…"): what it is about is in the sentence
    before. Narrower than `leans_back`: a connective ("Accordingly, Moscow…") still names its subject."""
    return bool(_PRONOUN_OPENING.match(text.lstrip()))
