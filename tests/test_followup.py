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
    "And what does continue do?",          # a connector alone: the question names its own subject
    "But what does the pass statement do?",
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
    "And what about its population?",
    "And how many?",
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


def test_the_rules_rewrite_reads_back_as_own_words_and_previous_question():
    """The decision stage reads a follow-up's own words apart from the question carried along (the kind of answer
    it asks for is its own, not the previous question's)."""
    from rag.followup import split_context

    question = "And what about its population?"
    standalone = RuleCondenser().condense(question, HISTORY)
    assert split_context(standalone) == (question, HISTORY[0].content)
    assert split_context("What is the GDP of Iran?") == ("What is the GDP of Iran?", None)


@pytest.mark.parametrize("question", ["And what about its population?",
                                      "Besides that tie, what other concern about that country's population "
                                      "must Russia weigh?"])
def test_a_follow_up_that_mentions_a_quantity_word_does_not_ask_for_a_number(question):
    """The known bug: "population" anywhere in a follow-up made it a quantity question, so a best sentence without a
    number counted against answering it. The type comes from what the question asks ("What is the population
    of …?"), not from a noun it mentions."""
    from rag.decide import answer_type, type_missing

    standalone = RuleCondenser().condense(question, HISTORY)
    assert answer_type(standalone) is None
    assert type_missing(standalone, "Russian-speaking Jews in Israel are a concern Russia must consider.") == 0.0
