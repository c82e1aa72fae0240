"""One browser session's conversation, and the streaming handler that answers a question in it.

The chat shows rendered messages (linked markers, refusal notes); the pipeline needs the plain conversation
(`rag.types.Turn`s), so the session keeps both. Nothing here raises into Gradio: every failure becomes a
readable message in the chat.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import gradio as gr

from rag import Answer, BackendError, DocumentError, RagError
from rag.types import Turn
from ui import citations, render, viewer
from ui.engines import ChatConfig, Engines

log = logging.getLogger(__name__)

# Questions about the bundled essay, offered on a set that holds it (DocumentSets.holds_bundled_essay).
EXAMPLES = [
    "Why did Russia avoid a mutual defense clause with Iran?",
    "What did Zarif say about enrichment during the JCPOA talks?",
    "How many Russian-speaking Jews live in Israel?",
    "What is the ‘Look to the East’ policy?",
]


@dataclass
class Session:
    """Per-session state (held in gr.State, so each browser tab has its own)."""

    messages: list[dict] = field(default_factory=list)       # what the Chatbot shows
    message_turns: list[int | None] = field(default_factory=list)  # answer index behind each shown message
    history: list[Turn] = field(default_factory=list)        # the plain conversation, for the pipeline
    answers: list[Answer] = field(default_factory=list)
    answer_sets: list[str] = field(default_factory=list)     # the document set each answer came from

    def add(self, role: str, content: str, turn: int | None) -> None:
        self.messages.append({"role": role, "content": content})
        self.message_turns.append(turn)

    def remember(self, question: str, answer: Answer, max_chars: int, max_turns: int, set_key: str = "") -> None:
        """Keep a finished answer and its exchange: each turn capped at the question limit and only the newest
        `max_turns` turns kept, as in API history, so a session's conversation never outgrows what it is read for.
        `set_key` is the document set it was answered from, where the viewer reads its documents."""
        self.answers.append(answer)
        self.answer_sets.append(set_key)
        self.history += Turn.parse_history([Turn("user", question), Turn("assistant", answer.answer)],
                                           max_chars=max_chars)
        del self.history[:max(0, len(self.history) - max_turns)]


def clip_question(question: str, max_chars: int) -> tuple[str, str | None]:
    """`question` cut to `max_chars` (at a word boundary, as the guard cuts it) before anything stores or reads it,
    and the note that says so (None when it fits). Cutting first keeps a 1 MB paste out of the session and bounds
    the work the pipeline does on it."""
    if len(question) <= max_chars:
        return question, None
    cut = question[:max_chars].rsplit(" ", 1)[0].rstrip() or question[:max_chars]
    return cut, f"Your question was {len(question):,} characters long; only the first {len(cut):,} were used."


def with_note(answer: Answer, note: str | None) -> Answer:
    """`answer` with `note` first among its notes (shown under the answer and in the JSON)."""
    return dataclasses.replace(answer, notes=[note, *answer.notes]) if note else answer


Update = tuple[list[dict], str, str, Session]  # chat messages, sources panel, question box, session


def friendly_error(exc: BaseException) -> str:
    """A message a user can act on, never a traceback."""
    if isinstance(exc, BackendError):
        return f"{exc}\nTip: switch the generator to “Extractive” under Settings to answer without the LLM."
    if isinstance(exc, (RagError, DocumentError)):
        return str(exc)
    if isinstance(exc, FileNotFoundError):
        return f"The index could not be read ({exc}). Rebuild it with `rag index` or pick another document set."
    return f"Something went wrong while answering ({type(exc).__name__}: {exc}). Please try again."


def respond(engines: Engines, question: str, session: Session, config: ChatConfig) -> Iterator[Update]:
    """Stream the answer to `question` into the chat, then show its sources."""
    question = (question or "").strip()
    limits = engines.settings.answer
    question, clipped = clip_question(question, limits.max_question_chars)
    if not question:
        session.add("assistant", render.hint_message("Type a question about the documents first, or pick one of "
                                                     "the examples."), None)
        yield session.messages, render.message_panel("Sources", "Ask a question to see its sources."), "", session
        return
    turn = len(session.answers)
    session.add("user", render.md_escape(question) + (" …" if clipped else ""), turn)
    session.add("assistant", render.streaming_message("", turn), turn)
    yield session.messages, render.searching_panel(question), "", session

    answer: Answer | None = None
    partial = ""
    try:
        rag = engines.rag(config)
        for event in rag.stream(question, session.history[-limits.max_history_turns:] if limits.max_history_turns
                                else []):
            if event.kind == "passages":
                yield session.messages, render.searching_panel(question, event.passages), "", session
            elif event.kind == "token":
                partial += event.text
                session.messages[-1]["content"] = render.streaming_message(partial, turn)
                yield session.messages, gr.skip(), "", session
            elif event.kind == "answer":
                answer = event.answer
        if answer is None:
            raise RagError("The pipeline finished without an answer.")
    except Exception as exc:  # every failure becomes a message in the chat
        if not isinstance(exc, (RagError, DocumentError)):
            log.exception("Answering %r failed", question)
        session.messages[-1]["content"] = render.error_message(friendly_error(exc))
        session.message_turns[-2:] = [None, None]
        yield session.messages, render.message_panel("Sources", "No sources: the question could not be answered."), \
            "", session
        return

    answer = with_note(answer, clipped)
    session.remember(question, answer, limits.max_question_chars, limits.max_history_turns, config.set)
    session.messages[-1]["content"] = render.answer_message(answer, turn)
    yield session.messages, render.sources_panel(answer, turn, turn + 1), "", session


def sources_for_message(session: Session, index: int | None) -> str | None:
    """The sources panel of the answer behind chat message `index` (None when it has none)."""
    if index is None or not 0 <= index < len(session.message_turns):
        return None
    turn = session.message_turns[index]
    if turn is None or turn >= len(session.answers):
        return None
    return render.sources_panel(session.answers[turn], turn, turn + 1)



def open_document(engines: Engines, session: Session, request: str) -> tuple[str, str | None]:
    """The document viewer for a page request (`ui.citations.parse_request`: chip k or passage n of answer `turn`)
    and the sources panel of that answer (None when there is none), so a marker in an older answer shows its own
    sources behind the viewer. Every failure is a message in the viewer, never an exception."""
    parsed = citations.parse_request(request)
    if parsed is None:
        return viewer.message_html("Nothing to show", "That citation could not be read; click it again."), None
    kind, turn, number, open_id = parsed
    if turn >= len(session.answers):
        return viewer.message_html("Nothing to show", "This answer is no longer in the conversation (it was "
                                   "cleared, or it is still being written).", open_id), None
    answer = session.answers[turn]
    panel = render.sources_panel(answer, turn, turn + 1)
    chips = [ch for ch in citations.chips(answer) if any(c.n == ch.n for c in answer.citations)]
    spans: tuple[tuple[int, int], ...] = ()
    position = None
    neighbours: tuple[citations.Chip | None, citations.Chip | None] = (None, None)
    if kind == "c":
        chip = next((ch for ch in chips if ch.k == number), None)
        if chip is None:
            return viewer.message_html("Nothing to show", "This marker names no passage of the answer.", open_id), \
                panel
        current = next(c for c in answer.citations if c.n == chip.n)
        spans = chip.spans
        i = chips.index(chip)
        position = (i + 1, len(chips))
        neighbours = (chips[i - 1] if i > 0 else None, chips[i + 1] if i + 1 < len(chips) else None)
    else:
        passage = next((p for p in answer.passages if p.n == number), None)
        if passage is None:
            return viewer.message_html("Nothing to show", "This answer has no such passage.", open_id), panel
        current = next((c for c in answer.citations if c.n == number), None) or \
            _as_citation(passage)
        spans = tuple(map(tuple, current.highlights))
    set_key = session.answer_sets[turn] if turn < len(session.answer_sets) else ""
    try:
        rag = engines.sets.open(set_key or ChatConfig().set)
        text = rag.document_text(current.source)
        kind_of = next((d.kind for d in rag.documents() if d.source == current.source), "text")
    except KeyError:
        return viewer.message_html(current.title, "This document is no longer in the index, so it cannot be "
                                   "shown whole; its passage is still in the sources.", open_id), panel
    except Exception as exc:  # a set that cannot be opened: say so in the viewer
        log.warning("Viewer could not read %s: %s", current.source, exc)
        return viewer.message_html(current.title, f"The document could not be read ({exc}).", open_id), panel
    note = ""
    if not current.located_in(text):
        note = ("The document has changed since this answer was given; the marks may no longer line up with the "
                "cited text.")
    html_out = viewer.viewer_html(open_id=open_id, answer=answer, turn=turn, text=text, kind=kind_of,
                                  current=current, spans=spans, position=position, neighbours=neighbours, note=note)
    return html_out, panel


def _as_citation(passage):
    from rag import Citation

    return Citation.of(passage)
