"""Questions about a document as a whole ("What is this essay about?", "Summarize the document", "What is the
author's main argument?"): no passage is similar to them, so retrieval by meaning finds nothing to quote and the
decision stage refused every one of them (dense lift 0.04-0.18 on the essay; "What did the author write about the
essay's thesis?" was one of the questions a tester expected answered).

Such a question is answered from where documents state what they are about: the opening (or an "Abstract" /
"Summary" / "Introduction" section near the start) and the conclusion (a section named so, or a last paragraph
that opens like one: "Overall, …", "In conclusion, …"). The answer quotes their first sentences, cited like any
other, with a note that says where they come from. Which document: the only one, or the one the question's
ordinary retrieval ranks first.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from index import Chunk, SearchHit, SearchIndex
from rag.evidence import looks_like_code, quotable
from rag.sentences import split_sentences
from rag.text import content_terms, stem, words
from rag.types import Passage

OVERVIEW_NOTE = ("An overview: the first sentences of the document's opening and of its conclusion, quoted. Ask about "
                 "a topic for an answer from the passages that discuss it.")
# What a whole-document question asks for, and the words that only name the document or the asking.
_ASKS = re.compile(
    r"\b(summar(y|ies|ise|ize|ised|ized)|overview|tl;?dr|gist|thesis|synopsis|abstract|"
    r"main (point|idea|argument|message|takeaway|claim|conclusion|topic|theme|thrust)s?|"
    r"key (point|takeaway|idea|message|argument|finding)s?|central (argument|claim|idea|point)s?|"
    r"(what|which) (is|are|was|were) (this|the|that|these|those) (essay|document|text|article|paper|report|book|chapter|manual|"
    r"file|guide|note|page|piece)s? (about|on)|what (is|was) it about|"
    r"what does (this|the) (essay|document|text|article|paper|report|book|chapter|manual|guide|author) "
    r"(argue|conclude|claim|say overall|cover)|what (does|did) the author (argue|conclude|claim))\b", re.I)
_FORM = frozenset(stem(w) for w in words(
    "summary summarise summarize summarised summarized summaries overview tldr tl dr gist thesis synopsis abstract "
    "main key central point points idea ideas argument arguments message messages takeaway takeaways claim claims "
    "conclusion conclusions conclude concludes topic topics theme themes thrust finding findings cover covers "
    "essay document text article paper report book chapter manual file guide note notes page piece author "
    "authors write wrote written writes argue argues overall please briefly short give me us whole entire "
    "this that the it its in a few sentences words"))
# A section that states what the document is about, near its start; one that closes it.
_OPENING = re.compile(r"\b(abstract|summary|overview|introduction|preface|about this)\b", re.I)
_CLOSING = re.compile(r"\b(conclusions?|concluding|in summary|summary and|final (thoughts|remarks|words)|outlook|"
                      r"closing remarks|wrap-?up)\b", re.I)
_CONCLUDES = re.compile(r"^\W*(overall|in conclusion|to conclude|in sum|in summary|in short|ultimately|to sum up|"
                        r"all in all|taken together|in the end)\b", re.I)
_FRONT_MATTER = re.compile(r"copyright|\(c\)|©|licen[cs]e[ds]? |all rights reserved|redistribut|permission is granted|"
                           r"\bISBN\b|[\w.-]+@[\w-]+\.[\w.]+", re.I)
STATEMENT_WORDS = 4
# An opening section counts when it starts in the first quarter of the document.
OPENING_SHARE = 0.25


def asks_for_overview(question: str) -> bool:
    """A question about the whole document: it asks for a summary, the main point or what the document is about,
    and names nothing else ("What is the main argument about Russia's role?" asks about a topic)."""
    if not _ASKS.search(question):
        return False
    return not [t for t in content_terms(question) if t not in _FORM]


def _states(chunk: Chunk) -> bool:
    """Whether the passage holds a sentence an answer may quote (an Info file's first passages hold only its node
    line and menu) and is not front matter (a PDF's or web page's copyright, licence and credits)."""
    if _FRONT_MATTER.search(chunk.text):
        return False
    passage = _passage(chunk, 0)
    return any(quotable(s, passage) and states(s.text) for s in split_sentences(chunk.text, chunk.start, chunk.source))


def states(text: str) -> bool:
    """A sentence that states something: several words, not a question (a contents line, "1. Introduction -- What
    is the Debian Project?") and not code. A note's line without a full stop states something too."""
    return not text.rstrip().endswith("?") and len(text.split()) >= STATEMENT_WORDS and not looks_like_code(text)


def _passage(chunk: Chunk, n: int) -> Passage:
    return Passage(n=n, source=chunk.source, title=chunk.title, section=chunk.section, start=chunk.start,
                   end=chunk.end, text=chunk.text, score=1.0)


def overview_passages(index: SearchIndex, hits: Sequence[SearchHit]) -> list[Passage]:
    """The opening passage and, when the document has one, its conclusion, numbered 1 and 2. The document is the
    first that `hits` rank whose passages state something (a web site's contents page does not); empty when there
    is none. Passages are read lazily, from the start for the opening and from the end for the closing, so a long
    document costs a few passages' sentence splitting."""
    chunks = index.chunks
    ranked = list(dict.fromkeys(h.chunk.source for h in hits)) or sorted({c.source for c in chunks})
    by_source: dict[str, list[Chunk]] = {source: [] for source in ranked}
    for c in chunks:
        if c.source in by_source:
            by_source[c.source].append(c)
    for source in ranked:
        own = sorted(by_source[source], key=lambda c: c.start)
        length = len(index.document_text(source)) or 1
        first = [c for c in own if c.section and _OPENING.search(c.heading) and c.start < OPENING_SHARE * length]
        opening = next((c for c in first + own if _states(c)), None)
        if opening is None:
            continue
        closing = next((c for c in own if c.section and _CLOSING.search(c.heading) and c is not opening and
                        _states(c)), None)
        if closing is None:
            last = next((c for c in reversed(own) if _states(c)), None)
            closing = last if last is not None and last is not opening and _CONCLUDES.search(last.text) else None
        picked = [opening] + ([closing] if closing is not None else [])
        return [_passage(c, i) for i, c in enumerate(picked, start=1)]
    return []
