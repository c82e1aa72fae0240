"""Run questions through a `rag.RAG` and score every answer: `run_eval(rag, questions) -> EvalRun`.

For each question the runner asks (`rag.ask`, timed by the pipeline), then separately ranks the top 10 chunks
(`rag.retrieve`) for the retrieval metrics, locates the expected evidence in the indexed documents, and scores the
record (eval.metrics.score_record). Nothing here prints; pass `progress=` for feedback.
"""

from __future__ import annotations

import json
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.dataset import Question
from eval.metrics import compute_metrics, locate_evidence, score_record

if TYPE_CHECKING:
    from rag import RAG, Settings

FORMAT = "essay-rag-eval/1"
RETRIEVE_K = 10
WARMUP_QUESTION = "What is the main argument of the document?"

Progress = Callable[[int, int, "dict | None"], Any]


@dataclass
class EvalRun:
    """One evaluation: scored per-question records, the metrics over them, and what produced them."""

    records: list[dict]
    metrics: dict
    meta: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or self.meta.get("config") or "run")

    def failures(self) -> list[dict]:
        """Records whose answer is wrong: an answerable question refused, missing a key group, citing no evidence
        or with invalid citations; a no-answer question answered; or an error. Reasons are in failure_reasons."""
        return [r for r in self.records if r.get("failed")]

    def by_id(self) -> dict[str, dict]:
        return {r["id"]: r for r in self.records}

    @property
    def groups(self) -> list[str]:
        return list(self.metrics.get("groups", {}))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "meta": self.meta, "metrics": self.metrics, "records": self.records}

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_records(cls, records: list[dict], meta: dict | None = None, rescore: bool = True) -> "EvalRun":
        if rescore:
            for r in records:
                score_record(r)
        return cls(records, compute_metrics(records), dict(meta or {}))

    @classmethod
    def load(cls, path: str | Path, rescore: bool = True) -> "EvalRun":
        """Read a `--out` file. Records are re-scored with the current metric definitions, so two runs saved
        by different versions compare on equal terms."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Results file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not a JSON results file ({exc.msg})") from None
        if not isinstance(data, dict) or not isinstance(data.get("records"), list):
            raise ValueError(f"{path}: not an evaluation results file (expected the JSON written by `rag eval --out`)")
        meta = dict(data.get("meta") or {})
        meta.setdefault("path", str(path))
        if rescore:
            return cls.from_records(data["records"], meta)
        return cls(data["records"], data.get("metrics") or compute_metrics(data["records"]), meta)


class EvidenceLocator:
    """Finds evidence strings in the indexed documents (first occurrence, exact match), caching document texts."""

    def __init__(self, rag: "RAG") -> None:
        self.rag = rag
        self.texts: dict[str, str] = {}
        for source in _indexed_sources(rag):
            self._add(source)

    def _add(self, source: str) -> None:
        if source and source not in self.texts:
            try:
                self.texts[source] = self.rag.document_text(source)
            except Exception:  # a source that vanished from the index: nothing to find there
                self.texts[source] = ""

    def locate(self, evidence: Sequence[str], hint_sources: Sequence[str] = ()) -> list[dict]:
        for source in hint_sources:
            self._add(source)
        located = locate_evidence(evidence, self.texts)
        missing = [ev["text"] for ev in located if not ev["spans"]]
        if missing:  # the document list was not available: search for the evidence itself to find its document
            before = len(self.texts)
            for text in missing:
                try:
                    for p in self.rag.retrieve(text, k=3):
                        self._add(p.source)
                except Exception:
                    pass
            if len(self.texts) > before:
                located = locate_evidence(evidence, self.texts)
        return located


def _indexed_sources(rag: "RAG") -> list[str]:
    """Sources of every indexed document, from whatever listing the RAG offers (documents(), info(), index)."""
    candidates: list = []
    for attr in ("documents", "sources"):
        value = getattr(rag, attr, None)
        try:
            value = value() if callable(value) else value
        except Exception:
            value = None
        if value:
            candidates = list(value.values()) if isinstance(value, dict) else list(value)
            break
    if not candidates:
        info = getattr(rag, "info", None)
        try:
            info = info() if callable(info) else info
            candidates = list(getattr(info, "documents", None) or [])
        except Exception:
            candidates = []
    sources = []
    for item in candidates:
        if isinstance(item, str):
            sources.append(item)
        elif isinstance(item, dict) and item.get("source"):
            sources.append(item["source"])
        elif getattr(item, "source", None):
            sources.append(item.source)
    return list(dict.fromkeys(sources))


def _backend_error_types() -> tuple[type[BaseException], ...]:
    try:
        from rag import BackendError
    except Exception:  # pragma: no cover - rag is importable wherever a RAG exists
        return ()
    return (BackendError,)


def _expected(q: Question, located: list[dict]) -> dict:
    return {"answer": q.answer, "keys": q.keys, "evidence": located}


def evaluate_question(rag: "RAG", q: Question, locator: EvidenceLocator, k: int = RETRIEVE_K) -> dict:
    """Ask one question and return its scored record (see eval/METRICS.md for the fields)."""
    history = [dict(t) for t in q.history] or None
    record: dict = {"id": q.id, "type": q.type, "split": q.split, "history": q.history}
    error = None
    started = time.perf_counter()
    try:
        answer = rag.ask(q.question, history=history)
        record.update(answer.to_dict())
    except _backend_error_types():
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        record.update({"question": q.question, "answer": "", "refused": False, "backend": "", "citations": [],
                       "passages": [], "timings_ms": {}, "standalone_question": "",
                       "validation": {"removed": [], "flagged": [], "uncited": [], "fallback": None}, "notes": [],
                       "traceback": traceback.format_exc(limit=6)})
    record["wall_ms"] = (time.perf_counter() - started) * 1000
    retrieved: list[dict] = []
    if q.answerable:
        try:
            retrieved = [p.to_dict() for p in rag.retrieve(q.question, k=k, history=history)]
        except Exception as exc:
            error = error or f"retrieve failed: {type(exc).__name__}: {exc}"
    record["retrieved"] = retrieved
    hints = [p["source"] for p in retrieved] + [p["source"] for p in record.get("passages") or []]
    record["expected"] = _expected(q, locator.locate(q.evidence, hints) if q.evidence else [])
    record["error"] = error
    return score_record(record)


def run_eval(rag: "RAG", questions: Sequence[Question], progress: Progress | None = None, *,
             settings: "Settings | None" = None, label: str | None = None, config: str | None = None,
             dataset: str | None = None, k: int = RETRIEVE_K, warmup: bool = True,
             cancel: Callable[[], bool] | None = None) -> EvalRun:
    """Evaluate `questions` on `rag`.

    progress(done, total, record) is called before the first question (record None) and after each one;
    cancel() returning True stops early (the run then holds the questions done so far and meta["cancelled"]).
    A `rag.BackendError` (LLM unreachable or not loadable) is raised at once; any other exception while
    answering one question is recorded in that record's "error" and the run goes on.
    """
    from eval.configs import settings_summary

    settings = settings if settings is not None else getattr(rag, "settings", None)
    started_at = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    total = len(questions)
    if progress:
        progress(0, total, None)
    if warmup and total:  # the first call pays for lazy loading; keep it out of the latency percentiles
        try:
            rag.ask(WARMUP_QUESTION, history=None)
        except _backend_error_types():
            raise
        except Exception:
            pass
    locator = EvidenceLocator(rag)
    records: list[dict] = []
    cancelled = False
    for i, q in enumerate(questions, start=1):
        if cancel is not None and cancel():
            cancelled = True
            break
        records.append(evaluate_question(rag, q, locator, k=k))
        if progress:
            progress(i, total, records[-1])
    meta = {
        "label": label or config or "run",
        "config": config,
        "settings": settings_summary(settings) if settings is not None else None,
        "dataset": dataset or "bundled essay set",
        "questions": total,
        "evaluated": len(records),
        "cancelled": cancelled,
        "retrieve_k": k,
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.perf_counter() - t0, 2),
        "documents": sorted(locator.texts),
        "versions": _versions(),
    }
    return EvalRun(records, compute_metrics(records), meta)


def rag_for_config(rag: "RAG", name: str) -> "RAG":
    """The RAG for a named configuration ("default" or "baseline"), sharing `rag`'s loaded embedding model
    (the baseline opens, or on first use builds, its own index)."""
    from eval.configs import resolve_config

    settings = resolve_config(name, rag.settings)
    return rag if settings is rag.settings else rag.with_settings(settings)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("essay-rag", "sentence-transformers", "faiss-cpu", "langchain-core"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            pass
    return out
