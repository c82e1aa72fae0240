"""Scoring the sentences of the retrieved passages against a question: what the decision stage reads.

Sentences are scored by meaning (embedding cosine, read with the sentence before when they open with a pronoun
and with their heading when it asks a question) and by the rare question words they contain (IDF-weighted
coverage; words that only the sentence's section heading path names count half), plus a small bonus for the
passage's retrieval rank, minus a penalty for code. The weights were tuned on the dev split of the essay set
(LEXICAL_WEIGHT 0.3 beat 0.0-0.6 on key-term accuracy; RANK_WEIGHT 0.05 broke ties without reordering) and
re-measured on all three dev sets: the lead sentence is the labelled evidence for 0.69 / 0.44 / 0.54 of answerable
essay / ed-manual / python-tutorial questions, and no LEXICAL_WEIGHT in 0-0.8 or RANK_WEIGHT in 0-0.2 moved any set
by more than two questions.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from index import Embedder
from index.chunking import is_heading
from rag.sentences import Sentence, opens_with_pronoun, split_sentences
from rag.text import MONTHS, WEEKDAYS, TermWeights, content_terms, term_set
from rag.types import Passage

LEXICAL_WEIGHT = 0.3
RANK_WEIGHT = 0.05
# Code is quoted only when no prose sentence comes close: an interactive-session line (">>> list(range(5, 10))")
# or a line dense with brackets and operators scores well on the words it shares with a question about it, but
# it rarely states the answer. Measured on the dev splits: the python-tutorial's key-term accuracy 0.667 -> 0.708
# and passage citation precision 0.750 -> 0.792 (a REPL line led two paraphrase answers); no other set changed;
# 0.1 changed nothing, 0.3 nothing more.
CODE_PENALTY = 0.2
_PROMPT = re.compile(r"^\s*(>>>|\.\.\.|\$ )")
_CODE_CHARS = frozenset("()[]{}=<>*_#:;'\"|\\/")
# A question's words that a sentence lacks but its section's heading path names count at this share: "Important
# warning: The default value is evaluated only once." answers "Why is it risky to give a parameter an empty list
# as its fallback value?" under "4.8.1. Default Argument Values". Measured on the dev splits with the section's
# own heading: python-tutorial key-term 0.833 -> 0.875 and citation precision 0.778 -> 0.846, debian-history
# precision 0.606 -> 0.636, no set lost a question; 0.25 and 1.0 each lost one key term; the paragraph's earlier
# sentences as context too cost the essay and the constitution one. With heading paths (which won that question
# by themselves) it adds citation precision only: python-tutorial 0.815 -> 0.846, debian-history 0.690 -> 0.700.
SECTION_SHARE = 0.5
# Sentences shorter than this are headings, captions or fragments: never evidence on their own.
MIN_SENTENCE_CHARS = 20
_VECTOR_CACHE = 50_000


@dataclass
class ScoredSentence:
    """A sentence of a passage with its scores; `vector` is its normalised embedding (for redundancy checks)."""

    sentence: Sentence
    passage: Passage
    cosine: float
    coverage: float
    score: float
    vector: np.ndarray = field(repr=False)
    block: tuple[Sentence, ...] = ()    # what the sentence introduces with its colon (`introduced_block`)


_FINAL = ".!?:;\"”’)]…"
_LONG_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]{3,}")
# A title may end in a parenthesis ("Constitution for the Debian Project (v1.9)"): read without it.
_PARENTHETICAL_END = re.compile(r"\s*\([^()]{0,40}\)$")
# A table of contents' dot leaders ("4.13.17 December 2015: Ian Murdock died . . . . 17" in a PDF): an entry names
# a section; it led the answer to "On what date was Ian Murdock born?" over the PDF edition of the Debian history.
_LEADERS = re.compile(r"(\.\s?){4,}\s*(\d+|[ivxlc]+)?\s*$|(\.\s){4,}")
# English capitalises days and months: "Closed on Mondays and on 25 December" in notes is a fact, not a title.
_CALENDAR = frozenset(MONTHS) | frozenset(WEEKDAYS) | {f"{day}s" for day in WEEKDAYS}


def looks_like_title(text: str) -> bool:
    """A heading or menu entry that `index.chunking.is_heading` does not catch because it opens in lower case or
    with a number ("break and continue Statements, and else Clauses on Loops", "* Overview::  Overview of the
    'ed' command"): no final punctuation, at most 14 words, and at least half of its words of four letters or more
    capitalised, read without a short closing parenthesis ("Constitution for the Debian Project (v1.9)" led the
    answer to "When was version 1.9 ratified?" and hid the date in the next line). A title names a topic; it never
    states an answer (13 such lines were among the dev splits' scored sentences, one of them quoted as a whole
    answer). The first word and the names of days and months do not count, as English capitalises them anyway:
    "Open Tuesday to Sunday, 9:00 to 17:00" in notes is a fact (no dev answer changed). A table of contents' entry
    (dot leaders, a page number) is a title whatever its length."""
    flat = _PARENTHETICAL_END.sub("", " ".join(text.split()))
    if _LEADERS.search(flat):
        return True
    if not flat or flat[-1] in _FINAL or len(flat.split()) > 14:
        return False
    long_words = [w for w in _LONG_WORD.findall(flat) if w.lower() not in _CALENDAR]
    if long_words and flat.startswith(long_words[0]):
        long_words = long_words[1:]     # a sentence's first word is capitalised anyway
    return bool(long_words) and 2 * sum(w[0].isupper() for w in long_words) >= len(long_words)


_CHAIN_CHARS = 200


def heads(sentence: Sentence, passage: Passage) -> bool:
    """Whether `sentence` is its passage's heading: the line the chunker opened the section with, or a Markdown
    heading. A short line without a final stop is not a heading by its look alone: in notes written a line per item
    ("Children under 12 enter free") every line looks like one, and none was ever quoted."""
    heading = is_heading(sentence.text)
    if heading is None:
        return False
    if sentence.text.lstrip().startswith("#"):
        return True
    # Headings that follow each other ("City Museum visit notes" / "Opening hours") open one section named by the
    # last of them: the earlier ones stand before it in the passage.
    section = " ".join(passage.heading.split())
    after = " ".join(passage.text[sentence.start - passage.start:].split())
    return bool(section) and section in after[:len(heading) + _CHAIN_CHARS + len(section)]


def quotable(sentence: Sentence, passage: Passage) -> bool:
    """Whether a sentence may be evidence at all: long enough, mostly letters (not a rule of dashes or a table's
    digits: "-----…" had been quoted), and neither its passage's heading nor a title."""
    text = sentence.text
    if len(text) < MIN_SENTENCE_CHARS:
        return False
    visible = [ch for ch in text if not ch.isspace()]
    if 2 * sum(ch.isalpha() for ch in visible) < len(visible):
        return False
    return not heads(sentence, passage) and not looks_like_title(text)


# A sentence that ends with a colon introduces what follows it: a table, a code example, a link or a list ("As an
# example, here is how the 5.4 development cycle went (all dates in 2019):"). Quoted alone it says nothing; the
# block it introduces is quoted with it, up to this many characters (the kernel guide's ten-row release table is
# 250), and only from the same passage.
BLOCK_MAX_CHARS = 400
_BLANK_LINE = re.compile(r"\n[ \t\f]*\n")


def announces(text: str) -> bool:
    """A sentence ending with a colon announces what follows it ("The following Debian versions were released
    during this time:"): alone it states nothing."""
    return text.rstrip().endswith(":")


def introduced_block(sentence: Sentence, passage: Passage) -> tuple[Sentence, ...]:
    """The units (`split_sentences`: a table's rows, a code example's lines, a list's items, a paragraph's
    sentences) that a sentence ending with a colon introduces in its passage: those of the next block of text, up
    to the first blank line after it opens, without rules of punctuation ("=======  ===="), up to
    BLOCK_MAX_CHARS. Empty when the sentence does not end with a colon or its passage ends with it.

    Only the sentence's own passage. Measured on the dev splits:
    - taking the block from the next retrieved passage when the sentence ends its own (the kernel guide's chunker
      keeps its release table apart from the sentence that introduces it) won no key term and cost the guide's
      citation precision 0.742 -> 0.686: a link on a line of its own is a passage of its own, which the labels
      do not name;
    - the chunker keeping a paragraph that ends with a colon with its block (no split at that blank line), with
      the answer type read through the block, answered the guide's "On what date in 2019 was 5.4-rc1
      released?" from its table (key-term 0.731 -> 0.769, false refusals 0.038 -> 0, precision 0.742 -> 0.781),
      cost the Debian history 0.011 precision and the ed manual a near-miss refusal, and on the test splits,
      run once, moved chunk boundaries everywhere: python-tutorial key-term 0.750 -> 0.700 and precision 0.708
      -> 0.625 (below its quality gate), the kernel guide's precision 0.719 -> 0.688. Not kept.
    As shipped no dev number moved; answers show the code, link or table their lead announces."""
    if not announces(sentence.text) or sentence.source != passage.source:
        return ()
    block: list[Sentence] = []
    chars, last = 0, sentence.end
    for unit in split_sentences(passage.text, passage.start, passage.source):
        if unit.start < sentence.end:
            continue
        if last > sentence.end and _BLANK_LINE.search(passage.text[last - passage.start:unit.start - passage.start]):
            break           # the blank line after the block (the one between the sentence and its block is skipped)
        last = unit.end
        if not any(ch.isalnum() for ch in unit.text):
            continue
        if chars + len(unit.text) > BLOCK_MAX_CHARS:
            break
        block.append(unit)
        chars += len(unit.text)
    return tuple(block)


def looks_like_code(text: str) -> bool:
    """An interactive-session line (">>>", "..."), a shell command ("$ "), or a line where more than one character
    in eight is a bracket, operator or quote (prose runs at 1-4%, code at 10-30%). A "#" line is not code: in a
    manual's examples it is the comment that explains them."""
    if _PROMPT.match(text):
        return True
    return sum(ch in _CODE_CHARS for ch in text) > len(text) / 8


class SentenceVectors:
    """Sentence embeddings cached by their text: the same passages come back for many questions. Keyed by text,
    not by offsets, so a file edited and indexed again under the same path never reads its old sentences'
    vectors, and a sentence read with context (its heading, the sentence before) is a different text with a
    vector of its own. Shared by concurrent requests, so reads and writes hold a lock (an LRU bounded at 50,000
    texts, about 75 MB of float32 vectors at dimension 384)."""

    def __init__(self, embedder: Embedder, capacity: int = _VECTOR_CACHE) -> None:
        self.embedder = embedder
        self.capacity = capacity
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        vectors = self.embedder.embed(missing) if missing else []
        with self._lock:
            for t, v in zip(missing, vectors):
                self._cache[t] = v
            out = []
            for t in texts:
                v = self._cache.get(t)
                if v is None:  # evicted between the two locked sections by another request
                    v = self.embedder.embed([t])[0]
                else:
                    self._cache.move_to_end(t)
                out.append(v)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return np.array(out, dtype=np.float32).reshape(len(out), -1)


def asked_by_heading(section: str) -> bool:
    """The section's own heading (the last of its path) asks a question, as a FAQ's do: the text under it
    answers that question, so a sentence there is read with it ("It’s available as the python-announce mailing
    list." under "Are there any newsgroups or mailing lists devoted to Python?")."""
    return section.rstrip().endswith("?")


class EvidenceScorer:
    """Scores every sentence of the passages against the (standalone) question, best first.

    A sentence whose subject is a pronoun ("It is the refinement of its more complex, programmable predecessor,
    'QED'") is also embedded together with the sentence before it, and keeps the better of the two cosines:
    alone it scored 0.27 against "Which more complex editor was ed a refinement of?" and lost the lead. Measured on
    the dev splits (key-term accuracy / citation precision): ed-manual 0.667 / 0.625 -> 0.741 / 0.710, essay
    unchanged, python-tutorial 0.708 / 0.833 -> 0.708 / 0.800. Widening it to every sentence that leans back
    (`leans_back`, connectives such as "Accordingly," included) cost the essay 0.028 key-term and 0.04 precision.
    `read_back=False` turns it off (for measuring).

    A sentence under a heading that asks a question (`asked_by_heading`: a FAQ's "Is there a newsgroup or mailing
    list devoted to Python?") is also embedded after its heading path, and keeps the better cosine: the heading asks
    what the text under it answers, and the answer rarely repeats it. On the seven dev splits it moved only the
    Python FAQ's (the one set whose headings ask): key-term 0.577 -> 0.731, passage citation precision 0.576 ->
    0.676, no question lost. Checked once on a FAQ nobody had tuned for (Python's Design and History FAQ, the first
    36 questions of eval/data/python-design-faq, written blind by a helper): key-term 0.767 -> 0.867, citation
    precision 0.600 -> 0.758, citation recall 0.70 -> 0.83, refusals unchanged, no question lost. Reading every
    sentence after its heading, whatever the heading, lost the essay 4 key terms (its long thematic sections lift
    every sentence in them) for 6 gained elsewhere; adding the heading's own cosine to its sentences' changed no key
    term. `read_heading=False` turns it off (for measuring)."""

    def __init__(self, embedder: Embedder, weights: Callable[[], TermWeights], read_back: bool = True,
                 read_heading: bool = True) -> None:
        self.embedder = embedder
        self.read_back = read_back
        self.read_heading = read_heading
        self.weights = weights          # the current corpus statistics (they follow the index)
        self.vectors = SentenceVectors(embedder)

    def score(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        """Weighting a follow-up's own words above its rewrite was tried and measured: no gain on the dev split."""
        weights = self.weights()
        q_terms = content_terms(question)
        seen: set[tuple[str, int]] = set()
        items: list[tuple[Sentence, Passage]] = []
        context: dict[int, str] = {}    # item -> it read with the sentence before, when it opens with a pronoun
        heads: dict[int, str] = {}      # item -> it read under its heading, when the heading asks a question
        for p in passages:
            prev: Sentence | None = None
            for s in split_sentences(p.text, p.start, p.source):
                before, prev = prev, s
                if (s.source, s.start) in seen or not quotable(s, p):
                    continue
                seen.add((s.source, s.start))
                if self.read_back and before is not None and opens_with_pronoun(s.text):
                    context[len(items)] = p.text[before.start - p.start:s.end - p.start]
                if self.read_heading and asked_by_heading(p.section):
                    heads[len(items)] = f"{p.section}: {s.text}"
                items.append((s, p))
        if not items:
            return []
        qv = self.embedder.embed_query(question)
        vecs = self.vectors([s.text for s, _ in items])
        cosines = vecs @ qv
        for extra in (context, heads):
            if extra:
                joined = self.vectors(list(extra.values())) @ qv
                for i, c in zip(extra, joined):
                    cosines[i] = max(cosines[i], c)
        scored = []
        sections = {p.section: term_set(p.section) for p in passages}
        for (s, p), c, v in zip(items, cosines, vecs):
            own = term_set(s.text)
            cov = weights.coverage(q_terms, own)
            in_section = weights.coverage(q_terms, own | sections[p.section])
            lexical = cov + SECTION_SHARE * (in_section - cov)
            score = float(c) + LEXICAL_WEIGHT * lexical + RANK_WEIGHT / p.n - CODE_PENALTY * looks_like_code(s.text)
            scored.append(ScoredSentence(s, p, float(c), cov, score, v))
        scored.sort(key=lambda x: -x.score)
        return scored
