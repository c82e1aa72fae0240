"""Word-level text helpers shared by sentence scoring, refusal features and citation checks.

Stemming (Snowball) lets "refused" match "refusing"; stop words come from bm25s so lexical scoring agrees with
the BM25 index.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

import Stemmer
from bm25s.stopwords import STOPWORDS_EN

# Underscores belong to words ("http_error", Python's "_"), as in BM25's tokens (index/tokens.py). A dot between
# digits does too: a version or a decimal ("2.1", "5.4-rc1", "0.93R6", "3.14") is one word, not "2" and "1" that
# every other version and count shares (debian-history dev citation precision 0.647 -> 0.667).
_WORD = re.compile(r"[A-Za-z0-9_\u00C0-\u024F]+(?:(?:[-'’]|(?<=\d)\.(?=\d))[A-Za-z0-9_]+)*")
# Words that carry no topic in a question about a document.
_QUESTION_NOISE = {
    "what", "which", "who", "whom", "whose", "why", "how", "when", "where", "does", "did", "do", "is", "are", "was",
    "were", "essay", "document", "text", "author", "according", "say", "says", "said", "tell", "explain", "describe",
    "mention", "mentioned", "give", "also", "about", "much", "many", "main", "reason", "reasons", "kind", "i",
}
_STOP = set(STOPWORDS_EN) | _QUESTION_NOISE
# Calendar names, read by the date check (rag/decide.py) and the title check (rag/evidence.py).
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_HOW = re.compile(r"\bhow\s+(long|old|far|big|large|often|soon|fast|high|tall|wide|deep|heavy|well|early|late)\b", re.I)
_stemmer = Stemmer.Stemmer("english")
# A word as a name is written: "U.S.", "Su-35", "Khamenei's".
NAME_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'’.-]*")


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


@lru_cache(maxsize=50_000)
def stem(word: str) -> str:
    return _stemmer.stemWord(word.split("'")[0])


def names(sentence: str) -> set[str]:
    """Capitalised words that do not open the sentence or follow a full stop or colon: names, as far as plain
    text shows them (lower-cased, possessive dropped). Read by the answer-type check (`rag.decide`) and by
    verify, which looks for a name a composed answer states that its passages do not hold."""
    out = set()
    for i, m in enumerate(NAME_WORD.finditer(sentence)):
        before = sentence[:m.start()].rstrip(" “\"‘(")
        if i == 0 or not before or before[-1] in ".!?:" or not m.group(0)[0].isupper():
            continue
        out.add(bare_name(m.group(0)))
    return out


def bare_name(word: str) -> str:
    word = word.lower().replace("’", "'").rstrip(".-")
    return word[:-2] if word.endswith("'s") else word


def content_terms(text: str) -> list[str]:
    """Stemmed content words in order, duplicates removed: what a question is actually about. One-character
    words count: in a manual they name commands and options ("the q and Q commands", "-s"). The word after "how"
    ("how long", "how often") is the question's form, not its topic: "long" is in no sentence that says "2 weeks"."""
    seen: dict[str, None] = {}
    for w in words(_HOW.sub("how", text)):
        if w in _STOP:
            continue
        seen.setdefault(stem(w), None)
    return list(seen)


def term_set(text: str) -> set[str]:
    return {stem(w) for w in words(text) if w not in _STOP}


class TermWeights:
    """Inverse document frequency over the indexed chunks: rare words matter more when matching a question."""

    def __init__(self, texts: Iterable[str]) -> None:
        df: Counter[str] = Counter()
        n = 0
        for text in texts:
            n += 1
            df.update(term_set(text))
        self.n = max(n, 1)
        self.df = df

    def idf(self, term: str) -> float:
        return math.log(1 + (self.n + 1) / (self.df.get(term, 0) + 0.5))

    def known(self, term: str) -> bool:
        return term in self.df

    def coverage(self, terms: list[str], present: set[str]) -> float:
        """IDF-weighted share of `terms` that occur in `present` (1.0 when there are no terms)."""
        total = sum(self.idf(t) for t in terms)
        if total == 0:
            return 1.0
        return sum(self.idf(t) for t in terms if t in present) / total
