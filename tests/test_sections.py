"""How documents are cut into sections and what BM25 counts as a word: the structure every passage inherits.

Real parts: the real loaders (BeautifulSoup for HTML), the real chunker and a real index with the real embedding
model for the search checks. The manual text below is hard-wrapped the way GNU Info files are.
"""

from __future__ import annotations

from pathlib import Path

from index import HybridIndex, IndexConfig, SearchConfig
from index.chunking import Chunker, sections
from index.spans import own_heading
from index.documents import load_document

WRAPPED = """\
File: tool.info,  Node: History,  Next: Options,  Prev: Top,  Up: Top

2 History
*********

'tool' was written, along with the first release of the suite, by Ada Marsh and
Bruno Keel. It is the refinement of its larger, scriptable predecessor, 'QTOOL',
which had no pattern matching at all.

   For the purposes of this tutorial, a working knowledge of the shell is
recommended, since 'tool' is designed to interact closely with it.

   When an input command, such as 'a' (append), 'i' (insert) or 'c'
(change), is given, 'tool' enters input mode. Input mode ends at a line
holding a single period.

3 Options
*********

An address represents the number of a line in the buffer. 'tool' keeps a
"current address" which is the default for most commands.

     # Select line 2 for editing.
     2
"""


def _headings(text: str, kind: str = "text") -> list[str]:
    return [h for _, _, h in sections(text, kind)]


def test_hard_wrapped_text_is_not_cut_at_a_line_that_merely_looks_like_a_heading():
    spans = sections(WRAPPED)
    assert [h for _, _, h in spans] == ["2 History", "3 Options"]
    history = next(WRAPPED[a:b] for a, b, h in spans if h == "2 History")
    assert "Ada Marsh and\nBruno Keel. It is the refinement" in history
    assert "(change), is given" in history


def test_every_section_covers_its_text_once_and_in_order():
    spans = sections(WRAPPED)
    assert spans[0][0] == 0 and spans[-1][1] == len(WRAPPED)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


def test_one_line_paragraphs_keep_short_lines_as_headings():
    text = ("An opening paragraph that ends with a stop.\nThe First Part\nIts paragraph is one long line. It runs on.\n"
            "The Second Part\nMore text here, in one line.\n")
    assert _headings(text) == ["", "The First Part", "The Second Part"]


def test_underlined_headings_are_headings_whatever_their_first_character():
    text = "Intro text.\n\n1.2 setup and use\n=================\n\nBody of the section.\n"
    assert _headings(text) == ["", "1.2 setup and use"]


def test_markdown_code_is_never_a_heading():
    text = ("# Guide\n\nSome text.\n\n```python\n# a comment in code\nx = 1\n```\n\n    # indented code\n\n"
            "## Next\n\nMore.\n")
    assert _headings(text, "markdown") == ["Guide", "Guide › Next"]


def test_a_section_is_named_by_its_heading_path():
    """A numbered heading sits under the headings whose numbers prefix its own; an unnumbered plain-text heading's
    level cannot be read, so it stands alone; Markdown nests by '#' level."""
    text = ("6. Technical committee\n\n6.1. Powers\n\nIt may decide.\n\n6.3. Procedure\n\nThere is a quorum of two.\n"
            "\n7. The Secretary\n\n7.1. Powers\n\nIt counts votes.\n\nA. Standard Resolution Procedure\n\nText here.\n"
            "\nA.1. Discussion\n\nMore text.\n\nChapter 4. History\n\nOld times.\n\n4.1. The 0.x Releases\n\nFirst.\n"
            "\nLicence\n\nFree to copy.\n\n2.1. Orphan\n\nNo parent.\n")
    assert _headings(text) == [
        "6. Technical committee › 6.1. Powers", "6. Technical committee › 6.3. Procedure",
        "7. The Secretary › 7.1. Powers", "A. Standard Resolution Procedure",
        "A. Standard Resolution Procedure › A.1. Discussion", "Chapter 4. History",
        "Chapter 4. History › 4.1. The 0.x Releases", "Licence", "2.1. Orphan"]
    assert own_heading("6. Technical committee › 6.3. Procedure") == "6.3. Procedure"
    md = "# Guide\n\nIntro.\n\n## Setup\n\nA.\n\n### Linux\n\nB.\n\n## Use\n\nC.\n"
    assert _headings(md, "markdown") == ["Guide", "Guide › Setup", "Guide › Setup › Linux", "Guide › Use"]


def test_html_headings_come_from_tags_and_page_furniture_is_dropped(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><html><head><title>Guide</title></head><body>"
        "<!-- Created by a generator -->"
        "<nav><p>Previous topic</p><p>Next topic</p></nav>"
        "<div role='main'><h1>4. Control Flow<a class='headerlink' href='#x'>¶</a></h1>"
        "<p>Python has the usual statements.</p>"
        "<h2>4.1. if Statements</h2><p>An <code>if</code> statement picks a branch.</p>"
        "<pre>&gt;&gt;&gt; # Measure some strings:\n... words = ['cat']\nTrue\n    indented()</pre>"
        "<h2>4.2. for Statements</h2><p>It iterates over items.</p></div>"
        "<div role='navigation'><p>Show Source</p></div></body></html>", "utf-8")
    doc = load_document(page)
    assert "Previous topic" not in doc.text and "Show Source" not in doc.text and "¶" not in doc.text
    assert "DOCTYPE" not in doc.text and "PUBLIC" not in doc.text and "generator" not in doc.text
    assert "An if statement picks a branch." in doc.text
    assert "    >>> # Measure some strings:\n    ... words = ['cat']\n    True\n        indented()" in doc.text
    assert _headings(doc.text, doc.kind) == ["4. Control Flow", "4. Control Flow › 4.1. if Statements",
                                             "4. Control Flow › 4.2. for Statements"]
    chunks = Chunker(800, 0, "sections").split(doc)
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)
    plain = tmp_path / "plain.html"   # no main element: the whole page, still without declarations or comments
    plain.write_text("<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\"><html><body><!-- Created by Texinfo -->"
                     "<h2>2.1 The Basics</h2><p>It assumes a pointer.</p></body></html>", "utf-8")
    assert load_document(plain).text == "## 2.1 The Basics\n\nIt assumes a pointer."


def test_bm25_matches_one_character_commands_and_options(tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "manual.txt").write_text(
        "Commands\n\nThe p command prints the addressed lines of the buffer to standard output.\n\n"
        "The q command quits the editor and warns when the buffer holds unsaved changes.\n\n"
        "The w command writes the buffer to a file and prints the number of bytes written.\n\n"
        "Lines of the buffer may be printed with a line number before each of them.\n", "utf-8")
    index = HybridIndex.open(IndexConfig(dir=tmp_path / "index", chunk_size=120, chunk_overlap=0), embedder)
    index.update([docs], progress=False)
    assert len(index.chunks) >= 4
    hits = index.searcher(SearchConfig(mode="bm25")).search("What does q do?", 1)
    assert hits and "The q command quits" in hits[0].chunk.text


def test_html_text_from_the_older_loader_still_gets_its_headings_guessed():
    """An index built before the loader wrote '#' headings is re-chunked from its stored text, not the file."""
    old_text = "Intro paragraph of the page.\nDefining Functions\nWe can create a function that writes numbers.\n"
    assert _headings(old_text, "html") == ["", "Defining Functions"]



DUMP = """\
                   Constitution for the Test Club (v1.0)

   Version 1.0 ratified on March 1st, 2020.

1. Introduction

   The Club is an association of people who have made common cause to keep
   bees. This document describes how it makes decisions.

  2.1. General rules

    1. Nothing in this constitution imposes an obligation on anyone to do
       work for the Club. A person who does not want to do a task need not
       do it.
    2. A person may hold several posts, except that the Leader and the
       Secretary must be distinct.
"""


def test_a_text_dump_of_a_web_page_has_numbered_headings_indented_less_than_their_paragraphs():
    """lynx-style dumps (the Debian constitution) indent headings less than paragraphs and number them; a
    numbered list item that starts in lower case or ends a sentence is not a heading."""
    assert _headings(DUMP) == ["", "1. Introduction", "2.1. General rules"]
    assert _headings("Intro.\n\n    1. make any decision about their own work\n") == [""]


def test_hard_wrapped_text_is_cut_into_passages_at_sentence_ends(tmp_path):
    """A passage of hard-wrapped prose starts where a sentence starts, not at the line break the wrapper chose
    ("17th 2001, and Progeny…")."""
    sentences = [f"Sentence number {i} of the history was written by a volunteer in the year {1990 + i}, "
                 "and it runs on" for i in range(40)]
    words = " ".join(s + " over more than one line of the text." for s in sentences).split()
    lines, line = [], ""
    for w in words:                      # wrap at 72 columns, indented four spaces, the way text dumps are
        if len(line) + len(w) + 1 > 68:
            lines.append("    " + line)
            line = w
        else:
            line = f"{line} {w}".strip()
    lines.append("    " + line)
    path = tmp_path / "history.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    doc = load_document(path)
    chunks = Chunker(400, 50, "sections").split(doc)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text.startswith("Sentence number"), c.text[:60]
        assert c.text.rstrip().endswith("."), c.text[-60:]



def test_notes_written_a_line_per_item_keep_their_items_as_the_body_of_a_heading(museum_notes):
    """A list of short lines under a heading is the heading's body, not a chain of headings (the whole of such a
    note was once one section named by its last line)."""
    assert _headings(museum_notes) == ["Opening hours", "Tickets"]


def test_notes_written_a_line_per_item_are_a_sentence_a_line(museum_notes):
    """Notes are not hard-wrapped (no line runs on in lower case), so a line filled to their width does not join
    the next: "…with a valid card" and "Guided tours cost…" had been one sentence."""
    from rag.sentences import split_sentences

    lines = [line for line in museum_notes.splitlines() if line]
    assert [s.text for s in split_sentences(museum_notes)] == lines

