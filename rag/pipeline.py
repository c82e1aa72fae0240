"""The question → answer pipeline: check, condense, retrieve, gate, generate, validate.

One `RAG` object holds the embedding model and the index and is shared by every caller (CLI, UI sessions,
evaluation); per-conversation state lives in the `history` each call receives.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from index import (SUPPORTED_SUFFIXES, DocumentError, DocumentRecord, Embedder, HybridIndex, IndexInfo,
                   UpdateReport, default_corpus_path, default_titles)
from rag.extractive import ExtractiveAnswerer, ScoredSentence
from rag.followup import condense_by_rule
from rag.guard import check_question
from rag.refusal import REFUSAL_TEXT, RefusalModel
from rag.retrieval import PassageRetriever, Reranker
from rag.settings import Settings
from rag.text import TermWeights
from rag.types import Answer, Citation, Passage, StreamEvent, Validation

log = logging.getLogger(__name__)
_TOKEN = re.compile(r"\S+\s*")


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 2)


def citations_from_sentences(chosen: list[ScoredSentence]) -> list[Citation]:
    """One citation per cited passage, highlighting exactly the quoted sentences."""
    by_n: dict[int, Citation] = {}
    for c in chosen:
        p = c.passage
        cit = by_n.get(p.n)
        span = (c.sentence.start, c.sentence.end)
        if cit is None:
            by_n[p.n] = Citation(p.n, p.source, p.title, p.section, p.start, p.end, p.text, [span])
        elif span not in cit.highlights:
            cit.highlights.append(span)
    return [by_n[n] for n in sorted(by_n)]


class RAG:
    """Grounded Q&A over one index. Thread-safe for concurrent `ask`/`stream` calls."""

    def __init__(self, settings: Settings, index: HybridIndex, embedder: Embedder) -> None:
        self.settings = settings
        self.index = index
        self.embedder = embedder
        reranker = Reranker(settings.retrieval.reranker) if settings.retrieval.reranker else None
        self.retriever = PassageRetriever(index, settings.retrieval, reranker)
        self.refusal_model = RefusalModel.load()
        self._weights_key: object = None
        self._extractive: ExtractiveAnswerer | None = None
        self._generator = None
        self._lock = threading.Lock()

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_settings(cls, settings: Settings, embedder: Embedder | None = None,
                      build_if_missing: bool = True) -> "RAG":
        """Open the configured index; an empty one is built from the bundled essay so the default just works."""
        embedder = embedder or Embedder(settings.index.embedding_model, settings.index.batch_size)
        index = HybridIndex.open(settings.index, embedder)
        if index.manifest is None and build_if_missing:
            index.update([default_corpus_path()], titles=default_titles(), progress=False)
        return cls(settings, index, embedder)

    def with_settings(self, settings: Settings, build_if_missing: bool = True) -> "RAG":
        """Another configuration (backend, k, index) that reuses the loaded embedding model and, if the index
        settings are unchanged, the open index. `build_if_missing=False` leaves a new index empty (for a
        document set of the user's own) instead of seeding it with the bundled essay."""
        if settings.index.embedding_model != self.settings.index.embedding_model:
            return RAG.from_settings(settings, build_if_missing=build_if_missing)
        if settings.index == self.settings.index:
            return RAG(settings, self.index, self.embedder)
        return RAG.from_settings(settings, embedder=self.embedder, build_if_missing=build_if_missing)

    @property
    def backend(self) -> str:
        from rag.llm import backend_label

        return backend_label(self.settings.llm)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _answerer(self) -> ExtractiveAnswerer:
        """IDF weights follow the index contents, so they are rebuilt when the index changes."""
        self.index.refresh()
        key = (self.index.manifest.built_at if self.index.manifest else None, len(self.index))
        with self._lock:
            if self._extractive is None or key != self._weights_key:
                weights = TermWeights(c.text for c in self.index.chunks)
                self._extractive = ExtractiveAnswerer(self.embedder, weights, self.settings.answer.max_sentences)
                self._weights_key = key
            return self._extractive

    def _llm(self):
        from rag.llm import LLMGenerator

        with self._lock:
            if self._generator is None:
                self._generator = LLMGenerator(self.settings.llm)
            return self._generator

    def condense(self, question: str, history: list[dict] | None) -> str:
        """A standalone version of a follow-up question (LLM rewrite when one is configured, else a rule)."""
        if not history:
            return question
        if self.settings.llm.backend != "extractive":
            from rag.followup import looks_like_followup

            if looks_like_followup(question):
                try:
                    return self._llm().condense(question, history) or condense_by_rule(question, history)
                except Exception as exc:  # rewriting is an optimisation: fall back to the rule
                    log.warning("Follow-up rewrite failed (%s); using the rule.", exc)
        return condense_by_rule(question, history)

    # -- answering --------------------------------------------------------------------------------------------
    def retrieve(self, question: str, k: int = 10, history: list[dict] | None = None) -> list[Passage]:
        """Ranked chunk-level passages (no merging or budget): what retrieval metrics score."""
        query = self.condense(question, history)
        hits = self.retriever.ranked(query, k)
        return [Passage(i + 1, h.chunk.source, h.chunk.title, h.chunk.section, h.chunk.start, h.chunk.end,
                        h.chunk.text, float(h.score)) for i, h in enumerate(hits[:k])]

    def ask(self, question: str, history: list[dict] | None = None) -> Answer:
        answer = None
        for event in self.stream(question, history):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    def stream(self, question: str, history: list[dict] | None = None) -> Iterator[StreamEvent]:
        """Yield `passages`, then answer `token`s as they are produced, then the validated `answer`."""
        t0 = time.perf_counter()
        checked = check_question(question, self.settings.answer.max_question_chars)
        backend = self.backend
        if checked.refusal:
            yield from self._emit(Answer(checked.text or str(question or ""), checked.refusal, True, backend, [], [],
                                         {"retrieve": 0.0, "generate": 0.0, "total": _ms(time.perf_counter() - t0)},
                                         checked.text, notes=checked.notes))
            return
        answerer = self._answerer()
        standalone = self.condense(checked.text, history)
        retrieved = self.retriever.retrieve(standalone)
        evidence = answerer.analyse(standalone, retrieved.passages, retrieved.hits)
        t1 = time.perf_counter()
        passages = retrieved.passages
        yield StreamEvent("passages", passages=tuple(passages))
        probability = self.refusal_model.answerable_probability(evidence.features)
        timings = {"retrieve": _ms(t1 - t0)}
        if not passages or probability < self.settings.answer.refusal_threshold:
            timings.update(generate=0.0, total=_ms(time.perf_counter() - t0))
            answer = Answer(checked.text, REFUSAL_TEXT, True, backend, [], passages, timings, standalone,
                            notes=checked.notes)
            yield from self._emit(answer)
            return
        if self.settings.llm.backend == "extractive":
            chosen = answerer.select(evidence)
            text = answerer.compose(chosen)
            for token in _TOKEN.findall(text):
                yield StreamEvent("token", text=token)
            timings.update(generate=_ms(time.perf_counter() - t1), total=_ms(time.perf_counter() - t0))
            yield StreamEvent("answer", answer=Answer(checked.text, text, False, backend,
                                                      citations_from_sentences(chosen), passages, timings, standalone,
                                                      notes=checked.notes))
            return
        yield from self._stream_llm(checked.text, standalone, passages, evidence, answerer, timings, t0, t1,
                                    checked.notes)

    def _stream_llm(self, question, standalone, passages, evidence, answerer, timings, t0, t1, notes):
        from rag.citations import is_refusal_answer, validate

        generator = self._llm()
        parts: list[str] = []
        for token in generator.stream(standalone, passages):
            parts.append(token)
            yield StreamEvent("token", text=token)
        raw = "".join(parts).strip()
        result = validate(raw, passages)
        timings.update(generate=_ms(time.perf_counter() - t1))
        backend = self.backend
        if is_refusal_answer(raw):
            answer = Answer(question, REFUSAL_TEXT, True, backend, [], passages, timings, standalone,
                            result.validation, notes)
        elif result.citations:
            answer = Answer(question, result.text, False, backend, result.citations, passages, timings, standalone,
                            result.validation, notes)
        else:
            chosen = answerer.select(evidence)
            result.validation.fallback = "the LLM answer had no valid citation; showing the extractive answer"
            answer = Answer(question, answerer.compose(chosen), False, f"extractive (fallback from {backend})",
                            citations_from_sentences(chosen), passages, timings, standalone, result.validation,
                            notes)
        answer.timings_ms["total"] = _ms(time.perf_counter() - t0)
        yield StreamEvent("answer", answer=answer)

    @staticmethod
    def _emit(answer: Answer) -> Iterator[StreamEvent]:
        for token in _TOKEN.findall(answer.answer):
            yield StreamEvent("token", text=token)
        yield StreamEvent("answer", answer=answer)

    # -- documents --------------------------------------------------------------------------------------------
    def add_files(self, paths: list[Path], progress: Callable[[float, str], None] | None = None) -> UpdateReport:
        """Index more files (or re-sync changed ones); the loaded index is updated in place. An uploaded copy
        that cannot be indexed is deleted, so it does not fail again on every later update."""
        if progress:
            progress(0.0, f"Reading {len(paths)} file(s)…")

        def on_embedded(done: int, total: int) -> None:
            if progress:
                progress(0.05 + 0.9 * done / max(total, 1), f"Embedding chunks: {done}/{total}")

        report = self.index.update(paths, progress=False, on_embedded=on_embedded)
        uploads = (Path(self.settings.index.dir).expanduser() / "uploads").resolve()
        for error in report.errors:
            bad = Path(error.path).resolve()
            if bad.parent == uploads and bad.is_file():
                bad.unlink()
        if progress:
            progress(1.0, report.summary())
        return report

    def save_upload(self, filename: str, src_path: Path) -> Path:
        """Copy an uploaded file under <index dir>/uploads with a safe name; reject bad types and sizes."""
        name = Path(str(filename).replace("\\", "/")).name
        stem, suffix = Path(name).stem, Path(name).suffix.lower()
        if suffix not in SUPPORTED_SUFFIXES:
            kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
            raise DocumentError(name or "upload", f"unsupported file type '{suffix or '(none)'}'; upload one of {kinds}")
        safe_stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:80] or "upload"
        src = Path(src_path)
        size = src.stat().st_size
        limit = self.settings.ui.max_upload_mb * 1e6
        if size > limit:
            raise DocumentError(name, f"is {size / 1e6:.1f} MB; uploads are limited to {self.settings.ui.max_upload_mb:g} MB")
        if size == 0:
            raise DocumentError(name, "is empty; there is no text to index")
        folder = Path(self.settings.index.dir).expanduser() / "uploads"
        folder.mkdir(parents=True, exist_ok=True)
        dest = folder / f"{safe_stem}{suffix}"
        counter = 2
        while dest.exists() and dest.read_bytes() != src.read_bytes():
            dest = folder / f"{safe_stem}-{counter}{suffix}"
            counter += 1
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-", suffix=suffix)
        try:
            with open(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out)
            Path(tmp).replace(dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def documents(self) -> list[DocumentRecord]:
        self.index.refresh()
        return self.index.documents()

    def document_text(self, source: str) -> str:
        return self.index.document_text(source)

    def index_info(self) -> IndexInfo:
        return self.index.info()
