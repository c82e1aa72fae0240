"""The condense stage: a follow-up ("and why did Moscow refuse?") becomes a question retrieval can answer alone.

Input: the checked question and the conversation (`Turn`s). Output: the standalone question. Without an LLM the
previous question is carried along (`RuleCondenser`). With `llm.rewrite_followups` the LLM rewrites follow-ups
(`LLMCondenser`), falling back to the rule when the rewrite fails; it is off by default (measured in
rag/settings.py).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from rag.text import content_terms
from rag.types import Turn

if TYPE_CHECKING:
    from rag.writers import LLMWriter

log = logging.getLogger(__name__)

# A follow-up needs the conversation: it asks "what about…" of a new subject ("And what about the radical
# factions?"), or points back with a pronoun or a demonstrative ("What did he insist on?", "Despite that slogan,
# …"), or is an ellipsis ("Why?", "And how many?"). An opening "And" / "But" alone does not make one.
# A question that names its own subject is self-contained and is never rewritten: carrying the previous question
# into "What is the GDP of Iran?" made retrieval answer the previous question instead.
_FOLLOWUP_START = re.compile(r"^(and|but|so|then|also|besides)\b[\s,]*", re.I)
_ELLIPTIC_START = re.compile(r"^(what about|how about|what else|why not|how come|despite that|in that case|same for)\b",
                             re.I)
_PERSONAL = re.compile(r"\b(it|its|they|them|their|theirs|he|him|his|she|her|hers)\b", re.I)
_PERSON = {"he", "him", "his", "she", "her", "hers"}
_DEMONSTRATIVE = re.compile(r"\b(the same|such|the matter|the latter|the former|the above|the previous)\b|"
                            r"\b(this|these|those)\b(?!\s+(essay|document|text|article|chapter|tutorial|manual|book|"
                            r"report|paper|guide|section|page|file)s?\b)", re.I)
# "that" points back when a noun or nothing follows ("that slogan", "prompted that?"), not when it joins a
# clause ("say that Moscow refused", "that the", "that it").
_THAT = re.compile(r"\bthat\b(?=\s*(?:[?.!,;]|$)|\s+(?!(?:the|a|an|it|he|she|they|we|you|i|this|these|those|"
                   r"there|is|was|are|were|be|been|has|had|have|will|would|can|could|should|may|might|must|did|"
                   r"does|do|not|no|if|when|its|his|her|their|our|my|your)\b)(?-i:[a-z]))", re.I)
# "Why did Moscow refuse?", "How did Iran respond?": a short question whose verb has lost its object.
_BARE_VERB = re.compile(r"^(why|how|when|where)\s+(did|does|do|was|were|is|are|would|will|can|could|should|has|have|"
                        r"had)\s+[\w’'-]+(\s+[\w’'-]+)?\s*[?.!]*$", re.I)
_DEFINITION = re.compile(r"^(what|who)\s+(is|are|was|were)\s+(a|an|the)?\s*\w|"
                         r"^what\s+(does|do|did)\s+(a|an|the)?\s*[\w.()-]+\s+(do|mean|return|stand for)\b", re.I)
_NAME = re.compile(r"(?<!^)(?<![.?!]\s)\b[A-Z][\w’'-]+")


def _refers_back(question: str) -> bool:
    """A pronoun or demonstrative whose referent is not named earlier in the question itself."""
    for pattern in (_PERSONAL, _DEMONSTRATIVE, _THAT):
        for m in pattern.finditer(question):
            if pattern is _PERSONAL and m.group(0).lower() in _PERSON and _NAME.search(question[:m.start()]):
                continue  # "What did Putin say about his meeting?": the referent is in the question
            return True
    return False


def last_user_question(history: Sequence[Turn]) -> str | None:
    for turn in reversed(history):
        if turn.role == "user" and turn.content.strip():
            return turn.content.strip()
    return None


def looks_like_followup(question: str) -> bool:
    """Whether the question needs the conversation to be understood (see the patterns above)."""
    q = question.strip()
    connector = _FOLLOWUP_START.match(q)
    if connector:
        # "And what about the radical factions?" leans on the conversation; "And what does continue do?" names
        # its own subject: the connector alone does not make a question need the previous one (carrying "What
        # does the break statement do?" along made retrieval answer about break).
        q = q[connector.end():]
        if not q.strip(" ?.!"):
            return True
    if _ELLIPTIC_START.search(q) or _refers_back(q) or _BARE_VERB.search(q):
        return True
    # An ellipsis: at most one content word and no name ("Why?", "How many?", "The population?"); a definition
    # question ("What is recursion?") names its subject.
    return len(content_terms(q)) <= 1 and not _NAME.search(q) and not _DEFINITION.search(q)


# The rule's rewrite: the follow-up, then the previous question it leans on. Defined once here; the decision stage
# reads a rewrite back with `split_context`.
_CONTEXT_OPEN = " (Context: "
_CONTEXT = re.compile(r"^(?P<own>.*?)\s*\(Context: (?P<previous>.*)\)\s*$", re.S)


def condense_by_rule(question: str, history: Sequence[Turn]) -> str:
    """Without an LLM: carry the previous question along, so its subject reaches retrieval.

    The follow-up comes first, so its own words lead; the previous question adds the subject it refers to.
    """
    previous = last_user_question(history)
    if not previous or not looks_like_followup(question):
        return question
    return f"{question.rstrip()}{_CONTEXT_OPEN}{previous.rstrip()})"


def split_context(standalone: str) -> tuple[str, str | None]:
    """(the question's own words, the previous question carried along by the rule, or None)."""
    m = _CONTEXT.match(standalone)
    return (m.group("own"), m.group("previous")) if m else (standalone, None)


CONDENSE_PROMPT = (
    "Rewrite the last user question as one standalone question that can be understood without the "
    "conversation. Replace pronouns with what they refer to. Keep it short. Reply with the question only.\n\n"
    "Conversation:\n{conversation}\n\nLast user question: {question}\n\nStandalone question:"
)


class Condenser(Protocol):
    def condense(self, question: str, history: Sequence[Turn]) -> str:
        ...


class RuleCondenser:
    def condense(self, question: str, history: Sequence[Turn]) -> str:
        return condense_by_rule(question, history) if history else question


class LLMCondenser:
    """The LLM rewrites a follow-up; a failed or unusable rewrite falls back to the rule (it is an optimisation)."""

    def __init__(self, writer: "LLMWriter") -> None:
        self.writer = writer

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        if not history:
            return question
        if looks_like_followup(question):
            try:
                return self.writer.generator.condense(question, history) or condense_by_rule(question, history)
            except Exception as exc:
                log.warning("Follow-up rewrite failed (%s); using the rule.", exc)
        return condense_by_rule(question, history)
