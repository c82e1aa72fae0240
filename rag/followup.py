"""Turning a follow-up ("and why did Moscow refuse?") into a question that retrieval can answer alone."""

from __future__ import annotations

import re

from rag.text import content_terms

_FOLLOWUP_START = re.compile(r"^(and|but|so|then|also|what about|how about|what else|why|why not|how come|"
                             r"who said|besides|despite that|in that case)\b", re.I)
_REFERENCE = re.compile(r"\b(it|its|they|them|their|theirs|he|him|his|she|her|that|this|those|these|there|"
                        r"the same|such|the matter|the latter|the former)\b", re.I)


def last_user_question(history: list[dict] | None) -> str | None:
    for turn in reversed(history or []):
        if turn.get("role") == "user":
            content = turn.get("content")
            if isinstance(content, list):  # Gradio-style content blocks
                content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
            if isinstance(content, str) and content.strip():
                return content.strip()
    return None


def looks_like_followup(question: str) -> bool:
    return bool(_FOLLOWUP_START.search(question.strip()) or _REFERENCE.search(question)
                or len(content_terms(question)) <= 2)


def condense_by_rule(question: str, history: list[dict] | None) -> str:
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
