"""The condense stage: only a question that needs the conversation is rewritten (pure rules, no model)."""

from __future__ import annotations

import pytest

from rag.followup import RuleCondenser, looks_like_followup
from rag.types import Turn

HISTORY = [Turn("user", "What did Putin say Russia had once offered Iran?"),
           Turn("assistant", "Cooperation in the field of air defense systems [1].")]

SELF_CONTAINED = [
    "What is the GDP of Iran?",
    "Why did Russia avoid a mutual defense clause with Iran?",
    "What did Zarif say that Moscow refused?",
    "What did Putin say about his meeting with Netanyahu?",
    "What does this essay argue about Russia?",
    "How many Russian-speaking Jews live in Israel?",
    "What is a list comprehension?",
    "Is there a break statement in Python?",
    "What is recursion?",
    "Who won the 2018 FIFA World Cup?",
]
FOLLOW_UPS = [
    "Why was the matter dropped?",
    "What did he insist on?",
    "And what about the radical factions?",
    "Despite that slogan, how did Tehran view the Soviet Union?",
    "What prompted them to use that term?",
    "Why?",
    "The population?",
    "Why did Moscow refuse?",
    "Why did Moscow refuse it?",
    "How did Iran respond?",
]


@pytest.mark.parametrize("question", SELF_CONTAINED)
def test_a_self_contained_question_is_never_rewritten(question):
    assert not looks_like_followup(question)
    assert RuleCondenser().condense(question, HISTORY) == question


@pytest.mark.parametrize("question", FOLLOW_UPS)
def test_a_follow_up_carries_the_previous_question(question):
    standalone = RuleCondenser().condense(question, HISTORY)
    assert standalone.startswith(question) and HISTORY[0].content in standalone


def test_without_history_nothing_is_rewritten():
    for question in FOLLOW_UPS:
        assert RuleCondenser().condense(question, []) == question
