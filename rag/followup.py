"""The condense stage: a follow-up ("and why did Moscow refuse?") becomes a question retrieval can answer alone.

Input: the checked question and the conversation (`Turn`s). Output: the standalone question. Without an LLM the
previous question is carried along (`RuleCondenser`); with one, the LLM rewrites follow-ups (`LLMCondenser`),
falling back to the rule when the rewrite fails.
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

_FOLLOWUP_START = re.compile(r"^(and|but|so|then|also|what about|how about|what else|why|why not|how come|"
                             r"who said|besides|despite that|in that case)\b", re.I)
_REFERENCE = re.compile(r"\b(it|its|they|them|their|theirs|he|him|his|she|her|that|this|those|these|there|"
                        r"the same|such|the matter|the latter|the former)\b", re.I)


def last_user_question(history: Sequence[Turn]) -> str | None:
    for turn in reversed(history):
        if turn.role == "user" and turn.content.strip():
            return turn.content.strip()
    return None


def looks_like_followup(question: str) -> bool:
    return bool(_FOLLOWUP_START.search(question.strip()) or _REFERENCE.search(question)
                or len(content_terms(question)) <= 2)


def condense_by_rule(question: str, history: Sequence[Turn]) -> str:
    """Without an LLM: carry the previous question along, so its subject reaches retrieval.

    The follow-up comes first, so its own words lead; the previous question adds the subject it refers to.
    """
    previous = last_user_question(history)
    if not previous or not looks_like_followup(question):
        return question
    return f"{question.rstrip()} (Context: {previous.rstrip()})"


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
