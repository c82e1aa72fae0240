"""The words BM25 indexes and searches: one tokenizer for the FAISS-side bm25s store and the PostgreSQL postings,
so both backends rank alike (tests/test_postgres.py compares them).

Why single characters count: bm25s's default pattern keeps words of two or more characters, so a manual's
commands and options ("How do the q and Q commands differ?", "-q and -s", "w compared with W") and Python's
"_" vanished from the query and BM25 ranked the answer 7th or not at all (ed-manual dev); with them, the
evidence of all three ed "how do X and Y differ" dev questions ranks first. The possessive "s" that now
becomes a token is common enough that its IDF is near zero.
"""

from __future__ import annotations

import bm25s
import Stemmer
from bm25s.stopwords import STOPWORDS_EN

TOKEN_PATTERN = r"(?u)\b\w+\b"
# bm25s's English list, plus the pronoun "I": kept as a word, a question's "If I leave the program…" matched
# every "'i' (insert)" of the ed manual and pushed the answer out of the top 10 (ed-manual dev para-01).
STOPWORDS = sorted(set(STOPWORDS_EN) | {"i"})


class Tokenizer:
    """Lower-case words (`TOKEN_PATTERN`), `STOPWORDS` out, Snowball stems."""

    def __init__(self) -> None:
        self.stemmer = Stemmer.Stemmer("english")

    def __call__(self, texts: list[str]) -> list[list[str]]:
        if not texts:
            return []
        return bm25s.tokenize(texts, token_pattern=TOKEN_PATTERN, stopwords=STOPWORDS, stemmer=self.stemmer,
                              return_ids=False, show_progress=False)
