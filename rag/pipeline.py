"""The answer path as typed stages, composed once from settings:

    guard     rag.guard.QuestionGuard    question: str                  -> CheckedQuestion (text, refusal, notes)
    condense  rag.followup.Condenser     question, history: [Turn]      -> standalone question: str
    retrieve  rag.retrieval.PassageRetriever  standalone question    -> Retrieved (hits, passages)
    decide    rag.decide.Decider         question, passages, hits       -> Decision (answerable, features, evidence)
              (with a local LLM, rag.judge.SentenceJudge reorders the best sentences and may refuse)
              (a question about the whole document, rag.overview: its opening and conclusion passages instead)
    write     rag.writers.Writer         question, passages, Decision   -> streamed text, then a Draft
    verify    rag.verify.verify          Draft, passages                -> Verified (text, citations, validation)

`RAG` holds the embedding model and the index and is shared by every caller (CLI, UI sessions, evaluation);
per-conversation state lives in the `history` each call receives. No stage is chosen by comparing strings at
answer time: `RAG.__init__` builds them from the settings, and the pipeline only calls their interfaces.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence

from index import DocumentRecord, Embedder, IndexInfo, SearchIndex, default_corpus_path, default_titles, open_index
from rag.calibration import IndexCalibration
from rag.decide import Decider, Decision, DecisionModel
from rag.errors import BackendError
from rag.evidence import EvidenceScorer
from rag.followup import Condenser, LLMCondenser, RuleCondenser
from rag.guard import CheckedQuestion, QuestionGuard
from rag.judge import make_judge
from rag.overview import asks_for_overview, overview_passages
from rag.retrieval import PassageRetriever, Reranker, Retrieved
from rag.settings import Settings
from rag.text import TermWeights
from rag.types import Answer, Passage, StreamEvent, Turn, Validation
from rag.verify import Draft, Verified, number_by_appearance, verify
from rag.writers import LLMWriter, Writer, make_writer, tokens

REFUSAL_TEXT = ("The document does not say. The closest passages retrieved (shown with this answer) do not "
                "answer this question, so I won't guess.")


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


class CorpusWeights:
    """IDF weights over the indexed chunks, rebuilt when the index changes (another process may update it)."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index
        self._key: object = None
        self._weights = TermWeights(())
        self._lock = threading.Lock()

    def __call__(self) -> TermWeights:
        manifest = self.index.manifest
        key = (manifest.built_at if manifest else None, len(self.index))
        with self._lock:
            if key != self._key:
                self._weights = TermWeights(c.text for c in self.index.chunks)
                self._key = key
            return self._weights


class RAG:
    """Grounded Q&A over one index. Thread-safe for concurrent `ask`/`stream` calls."""

    def __init__(self, settings: Settings, index: SearchIndex, embedder: Embedder,
                 decision_model: DecisionModel | None = None, writer: Writer | None = None,
                 calibration: IndexCalibration | None = None) -> None:
        self.settings = settings
        self.index = index
        self.embedder = embedder
        self.guard = QuestionGuard(settings.answer.max_question_chars)
        self.writer = writer or make_writer(settings)
        self.condenser: Condenser = LLMCondenser(self.writer) \
            if isinstance(self.writer, LLMWriter) and settings.llm.rewrite_followups else RuleCondenser()
        reranker = Reranker(settings.retrieval.reranker) if settings.retrieval.reranker else None
        self.retriever = PassageRetriever(index, settings.retrieval, reranker)
        self.weights = CorpusWeights(index)
        self.calibration = calibration or IndexCalibration(index)  # one per open index: shared by with_settings
        self.decider = Decider(EvidenceScorer(embedder, self.weights), decision_model or DecisionModel.load(),
                               settings.answer.refusal_threshold, settings.answer.max_sentences,
                               settings.answer.close_call_margin, calibration=self.calibration,
                               judge=make_judge(settings, self.writer), judge_sentences=settings.llm.judge_sentences)

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None,
                      build_if_missing: bool = True, writer: Writer | None = None) -> "RAG":
        """Open the configured index; a new one (nothing ever published in its folder) is built from the bundled
        essay so the default just works.

        The index is opened (and verified) before the embedding model loads, so a damaged or unusable index
        fails in milliseconds with its `index.errors.IndexStoreError` message. Only a folder that holds no
        generation at all is seeded: a lost or damaged pointer is recovered by the index's `open`, never taken
        for an empty index (seeding it used to publish an essay-only generation and prune the user's files)."""
        index = open_index(settings.index, embedder)
        if index.manifest is None and build_if_missing and not index.has_generations():
            index.update([default_corpus_path()], titles=default_titles(), progress=False)
        return cls(settings, index, index.embedder, writer=writer)

    def with_settings(self, settings: Settings, build_if_missing: bool = True) -> "RAG":
        """Another configuration (backend, k, index) that reuses the loaded embedding model and, if the index
        settings are unchanged, the open index. `build_if_missing=False` leaves a new index empty (for a
        document set of the user's own) instead of seeding it with the bundled essay."""
        if settings.index.embedding_model != self.settings.index.embedding_model:
            return RAG.from_settings(settings, build_if_missing=build_if_missing)
        # The writer (and a local model it loaded, ~5 s for Qwen 1.5B) is handed on while the LLM settings hold.
        writer = self.writer if settings.llm == self.settings.llm else None
        if settings.index == self.settings.index:
            return RAG(settings, self.index, self.embedder, self.decider.model, writer=writer,
                       calibration=self.calibration)
        return RAG.from_settings(settings, embedder=self.embedder, build_if_missing=build_if_missing, writer=writer)

    @property
    def backend(self) -> str:
        return self.writer.label

    # -- stages exposed for evaluation and calibration ----------------------------------------------------------
    def condense(self, question: str, history: Sequence[Turn | dict] | None = None) -> str:
        """A standalone version of a follow-up question (LLM rewrite when one is configured, else a rule)."""
        return self.condenser.condense(question, self._turns(history))

    def retrieve(self, question: str, k: int = 10, history: Sequence[Turn | dict] | None = None) -> list[Passage]:
        """Ranked chunk-level passages (no merging or budget): what retrieval metrics score."""
        self.index.refresh()
        hits = self.retriever.ranked(self.condense(question, history), k)
        return [Passage(n=i + 1, **h.chunk.span_dict(), score=float(h.score)) for i, h in enumerate(hits[:k])]

    def decide(self, question: str, history: Sequence[Turn | dict] | None = None) -> Decision:
        """The decision stage's verdict and features for a question (what calibration fits)."""
        self.index.refresh()
        return self._retrieve_and_decide(self.condense(question, history))[1]

    def _retrieve_and_decide(self, standalone: str) -> tuple[Retrieved, Decision]:
        """Retrieval and the decision; a question about the whole document is answered from its opening and
        conclusion (`rag.overview`), which no similarity search finds."""
        retrieved = self.retriever.retrieve(standalone)
        if asks_for_overview(standalone):
            passages = overview_passages(self.index, retrieved.hits)
            if passages:
                retrieved = Retrieved(retrieved.hits, passages)
                return retrieved, self.decider.overview(standalone, passages)
        return retrieved, self.decider.decide(standalone, retrieved.passages, retrieved.hits)

    def _turns(self, history: Sequence[Turn | dict] | None) -> list[Turn]:
        """The conversation as typed turns, bounded like the question (`answer.max_history_turns` newest turns,
        each cut to `answer.max_question_chars`)."""
        limits = self.settings.answer
        return Turn.parse_history(history, limits.max_question_chars, limits.max_history_turns)

    # -- answering --------------------------------------------------------------------------------------------
    def ask(self, question: str, history: Sequence[Turn | dict] | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    def stream(self, question: str, history: Sequence[Turn | dict] | None = None) -> Iterator[StreamEvent]:
        """Yield `passages`, then answer `token`s as they are produced, then the verified `answer`."""
        t0 = time.perf_counter()
        turns = self._turns(history)
        checked = self.guard.check(question)
        if checked.refusal:
            yield from self._finish(checked, checked.refusal, refused=True, started=t0)
            return
        self.index.refresh()
        standalone = self.condenser.condense(checked.text, turns)
        retrieved, decision = self._retrieve_and_decide(standalone)
        t1 = time.perf_counter()
        timings = {"retrieve": _ms(t1 - t0)}
        yield StreamEvent("passages", passages=tuple(retrieved.passages))
        notes = decision.notes
        confidence = round(decision.probability, 3)
        if not decision.answerable:
            yield from self._finish(checked, REFUSAL_TEXT, refused=True, started=t0, retrieved=retrieved,
                                    standalone=standalone, timings=timings, notes=notes, confidence=confidence)
            return
        writer = self.writer
        verified, reason, error = None, None, None
        try:
            draft = yield from self._write(writer, standalone, retrieved, decision)
            verified = verify(draft, retrieved.passages)
            if verified.declined and not writer.declines:
                reason = "the LLM declined, but the decision stage found the evidence answers; showing the quotes"
            elif not verified.declined and not verified.citations:
                reason = "the LLM answer had no valid citation; showing the extractive answer"
            elif verified.validation.omitted:
                reason = "the LLM answer left out what the best evidence sentence says; showing the quotes"
        except BackendError as exc:
            if writer.fallback is None:
                raise
            error = str(exc)
            reason = f"{exc} Showing the extractive answer."
        backend = writer.label
        validation = verified.validation if verified else Validation()
        if reason and writer.fallback is not None:
            validation.fallback, validation.backend_error = reason, error
            backend = f"{writer.fallback.label} (fallback from {writer.label})"
            draft = _drain(writer.fallback.write(standalone, retrieved.passages, decision))
            verified = verify(draft, retrieved.passages)
            verified.validation = validation
        timings["generate"] = _ms(time.perf_counter() - t1)
        if verified.declined:
            yield from self._finish(checked, REFUSAL_TEXT, refused=True, started=t0, retrieved=retrieved,
                                    standalone=standalone, timings=timings, validation=validation, backend=backend,
                                    stream_text=False, notes=notes, confidence=confidence)
            return
        verified, passages = number_by_appearance(verified, retrieved.passages)
        yield from self._finish(checked, verified.text, refused=False, started=t0, retrieved=retrieved,
                                standalone=standalone, timings=timings, verified=verified, validation=validation,
                                backend=backend, stream_text=False, notes=notes, confidence=confidence,
                                passages=passages)

    @staticmethod
    def _write(writer: Writer, question: str, retrieved: Retrieved,
               decision: Decision) -> Generator[StreamEvent, None, Draft]:
        """Stream the writer's tokens as events and return its draft."""
        gen = writer.write(question, retrieved.passages, decision)
        while True:
            try:
                token = next(gen)
            except StopIteration as stop:
                return stop.value
            yield StreamEvent("token", text=token)

    def _finish(self, checked: CheckedQuestion, text: str, *, refused: bool, started: float,
                retrieved: Retrieved | None = None, standalone: str | None = None,
                timings: dict[str, float] | None = None, verified: Verified | None = None,
                validation: Validation | None = None, backend: str | None = None,
                stream_text: bool = True, notes: Sequence[str] = (), confidence: float | None = None,
                passages: Sequence[Passage] | None = None) -> Iterator[StreamEvent]:
        """The one place an `Answer` is built; a text not streamed yet (a refusal) is streamed first.
        `passages`: the retrieved passages as the answer numbers them (by first citation), when renumbered."""
        timings = dict(timings or {"retrieve": 0.0})
        timings.setdefault("generate", 0.0)
        timings["total"] = _ms(time.perf_counter() - started)
        answer = Answer(
            question=checked.text or str(checked.original or ""), answer=text, refused=refused,
            backend=backend or self.backend, citations=verified.citations if verified and not refused else [],
            passages=list(passages if passages is not None else retrieved.passages if retrieved else []),
            timings_ms=timings,
            standalone_question=standalone if standalone is not None else checked.text,
            validation=validation or Validation(), notes=[*checked.notes, *notes], confidence=confidence)
        if stream_text:
            for token in tokens(text):
                yield StreamEvent("token", text=token)
        yield StreamEvent("answer", answer=answer)

    # -- documents --------------------------------------------------------------------------------------------
    def documents(self) -> list[DocumentRecord]:
        self.index.refresh()
        return self.index.documents()

    def document_text(self, source: str) -> str:
        return self.index.document_text(source)

    def index_info(self) -> IndexInfo:
        return self.index.info()


def _drain(gen: Generator[str, None, Draft]) -> Draft:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value
