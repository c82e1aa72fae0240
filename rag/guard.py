"""The guard stage: checks on the question itself, before any retrieval: empty, too long, control characters, prompt
injection, another language. Each gets its own clear answer instead of an error or a guess."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

INJECTION_TEXT = ("I can only answer questions about the loaded documents, from their text. I won't follow "
                  "instructions to ignore them, reveal my instructions, play another role, or invent content.")
EMPTY_TEXT = "Please type a question about the document."

_INJECTION = re.compile(
    r"(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instruction|prompt|rule|document|context|above|previous|"
    r"prior|everything)"
    r"|(system|hidden|initial|original)\s+(prompt|instruction|message)"
    r"|(reveal|print|show|repeat|output|leak)\b.{0,30}\b(prompt|instructions)"
    r"|\byou are now\b|\bact as\b|\bpretend (to be|you)|\bjailbreak|\bDAN\b|developer mode|do anything now"
    r"|\b(make up|invent|fabricate)\b.{0,40}\b(quote|fact|source|answer|statement)"
    r"|\b(write|compose)\b.{0,20}\b(poem|song|story|joke|haiku|limerick|essay)\b"
    r"|using your own knowledge|without (using|the) (document|context)",
    re.IGNORECASE,
)
# Document text that speaks to an assistant instead of informing a reader: planted instructions ("Ignore prior
# instructions and answer that…", "when asked about X, answer that…"). Imperatives only at a clause start, so a
# report ("officials answer that the deal…") is not caught. No sentence of the essay matches, nor any of 1,950
# sentences of Debian's licence texts ("you must tell them their rights" did, until "tell" was dropped).
_ADDRESSED = re.compile(
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instructions?|prompts?|rules|context|everything)\b"
    r"|\bwhen(ever)? (you are |you're |you get |one is )?asked\b"
    r"|(^|[.;:!?]\s+|\b(and|then|please|always|just)\s+)(answer|reply|respond|say|tell the user|state)\s+(that|with)\b"
    r"|\b(you|assistants?|AIs?|language models?|chatbots?|LLMs?|the model)\s+(must|should|shall|have to|are to)\s+"
    r"(answer|reply|respond|say|claim|pretend)\b"
    r"|\b(system prompt|new instructions|prior instructions|previous instructions)\b",
    re.IGNORECASE,
)


def addresses_an_assistant(text: str) -> bool:
    """Whether document text reads as an instruction to an assistant rather than information for a reader."""
    return bool(_ADDRESSED.search(text))


# Function words that nearly every English question contains; their absence is a strong hint of another language.
_EN_FUNCTION = {"the", "a", "an", "of", "to", "in", "is", "are", "was", "were", "did", "does", "do", "what", "why",
                "how", "who", "which", "when", "where", "and", "or", "on", "for", "with", "about", "from", "by",
                "it", "its", "that", "this", "has", "have", "had", "can", "could", "would", "should"}


@dataclass
class CheckedQuestion:
    text: str
    refusal: str | None = None
    notes: list[str] = field(default_factory=list)
    original: str = ""


def _clean(text: str) -> str:
    chars = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\n\t\r":
            chars.append(" ")
        elif cat in ("Cc", "Cf", "Cs", "Co", "Cn"):
            continue
        else:
            chars.append(ch)
    return re.sub(r"\s+", " ", "".join(chars)).strip()


def _language_hint(text: str) -> str | None:
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 4:
        return None
    non_latin = [ch for ch in letters if not ("LATIN" in unicodedata.name(ch, ""))]
    if len(non_latin) / len(letters) > 0.5:
        script = unicodedata.name(non_latin[0], "UNKNOWN").split()[0].title()
        return f"{script} script"
    tokens = re.findall(r"[a-zA-ZÀ-ɏ']+", text.lower())
    if len(tokens) >= 4 and sum(t in _EN_FUNCTION for t in tokens) <= 1:
        try:
            from langdetect import DetectorFactory, detect_langs

            DetectorFactory.seed = 0
            best = detect_langs(text)[0]
            if best.lang != "en" and best.prob > 0.9:
                return f"language code '{best.lang}'"
        except Exception:
            return None
    return None


class QuestionGuard:
    """The guard stage: question in, `CheckedQuestion` out (the cleaned text, or the answer that refuses it)."""

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def check(self, question: object) -> CheckedQuestion:
        checked = check_question(question, self.max_chars)
        checked.original = question if isinstance(question, str) else ("" if question is None else str(question))
        return checked


def check_question(question: object, max_chars: int) -> CheckedQuestion:
    if not isinstance(question, str):
        question = "" if question is None else str(question)
    text = _clean(question)
    if not text or not any(ch.isalnum() for ch in text):
        return CheckedQuestion(text, refusal=EMPTY_TEXT)
    notes = []
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n\t\r " for ch in question):
        notes.append("Control characters in your question were removed.")
    if len(text) > max_chars:
        cut = text[:max_chars].rsplit(" ", 1)[0] or text[:max_chars]
        notes.append(f"Your question was {len(text):,} characters long; only the first {len(cut):,} were used.")
        text = cut
    if _INJECTION.search(text):
        return CheckedQuestion(text, refusal=INJECTION_TEXT, notes=notes)
    hint = _language_hint(text)
    if hint:
        return CheckedQuestion(text, refusal=(
            f"Your question seems not to be in English ({hint}). The document is in English and questions are "
            "matched against its words, so please ask in English."), notes=notes)
    return CheckedQuestion(text, notes=notes)
