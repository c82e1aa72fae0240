"""Run questions through a `rag.RAG` and score every answer: `run_eval(rag, questions) -> EvalRun`.

For each question the runner asks (`rag.ask`, timed by the pipeline), then separately ranks the top 10 chunks
(`rag.retrieve`) for the retrieval metrics, locates the expected evidence in the indexed documents, and returns
a typed `EvalRecord` carrying its `Scores` (eval.metrics.score). Nothing here prints; pass `progress=` for
feedback. Only rag's public API is used: `ask`, `retrieve`, `documents`, `document_text`, `settings`,
`with_settings`, and `index.update` to give each bundled set its own index (`rag_for_set`).
"""

from __future__ import annotations

import json
import platform
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.dataset import EvalSet, Question
from eval.metrics import compute_metrics, locate_evidence
from eval.records import FORMAT, EvalRecord, Expected

if TYPE_CHECKING:
    from rag import RAG, Settings

RETRIEVE_K = 10
WARMUP_QUESTION = "What is the main argument of the document?"

Progress = Callable[[int, int, "EvalRecord | None"], Any]

@dataclass
class EvalRun:
    """One evaluation: scored per-question records, the metrics over them, and what produced them."""

    records: list[EvalRecord]
    metrics: dict
    meta: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return str(self.meta.get("label") or self.meta.get("config") or "run")

    def failures(self) -> list[EvalRecord]:
        """Records whose answer is wrong: an answerable question refused, missing a key group, citing no evidence
        or with invalid citations; a no-answer question answered; or an error. Reasons are in
        `record.scores.failure_reasons`."""
        return [r for r in self.records if r.failed]

    def by_id(self) -> dict[str, EvalRecord]:
        return {r.id: r for r in self.records}

    @property
    def groups(self) -> list[str]:
        return list(self.metrics.get("groups", {}))

    def to_dict(self) -> dict:
        return {"format": FORMAT, "meta": self.meta, "metrics": self.metrics,
                "records": [r.to_dict() for r in self.records]}

    def save(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def from_records(cls, records: Iterable[EvalRecord | Mapping], meta: dict | None = None,
                     rescore: bool = True) -> "EvalRun":
        """A run over records (typed, or the dicts of a results file); `rescore` recomputes every record's scores
        with the current definitions (unscored records are scored either way)."""
        typed = [r if isinstance(r, EvalRecord) else EvalRecord.from_dict(r) for r in records]
        typed = [r.scored() if rescore or r.scores is None else r for r in typed]
        return cls(typed, compute_metrics(typed), dict(meta or {}))

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
        records = [EvalRecord.from_dict(r) for r in data["records"]]
        records = [r if r.scores is not None else r.scored() for r in records]
        return cls(records, data.get("metrics") or compute_metrics(records), meta)


class EvidenceLocator:
    """Finds evidence strings in the indexed documents (first occurrence, exact match), reading every document's
    text once (the essay set is one document; a user's index a few)."""

    def __init__(self, rag: "RAG") -> None:
        self.texts: dict[str, str] = {}
        for doc in rag.documents():
            try:
                self.texts[doc.source] = rag.document_text(doc.source)
            except Exception:  # removed from the index between listing and reading: nothing to find there
                self.texts[doc.source] = ""

    def locate(self, evidence: Sequence[str]) -> list[dict]:
        return locate_evidence(evidence, self.texts)


def _backend_error_types() -> tuple[type[BaseException], ...]:
    try:
        from rag import BackendError
    except Exception:  # pragma: no cover - rag is importable wherever a RAG exists
        return ()
    return (BackendError,)


def _stop_on_backend_error(answer) -> None:
    """The pipeline answers from the quotes when the LLM fails, which is right for a user but would score the
    extractive writer under the LLM's name: an evaluation stops at the first such failure instead."""
    if answer.validation.backend_error:
        from rag import RagError

        raise RagError(answer.validation.backend_error)


def evaluate_question(rag: "RAG", q: Question, locator: EvidenceLocator, k: int = RETRIEVE_K) -> EvalRecord:
    """Ask one question and return its scored record (see eval/METRICS.md for the fields)."""
    history = [dict(t) for t in q.history] or None
    error = trace = None
    started = time.perf_counter()
    result = None
    try:
        result = rag.ask(q.question, history=history)
        answer = result.to_dict()
    except _backend_error_types():
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        answer = {"question": q.question}
        trace = traceback.format_exc(limit=6)
    if result is not None:
        _stop_on_backend_error(result)
    wall_ms = (time.perf_counter() - started) * 1000
    retrieved: list[dict] = []
    if q.answerable:
        try:
            retrieved = [p.to_dict() for p in rag.retrieve(q.question, k=k, history=history)]
        except Exception as exc:
            error = error or f"retrieve failed: {type(exc).__name__}: {exc}"
    expected = Expected(q.answer, [list(g) for g in q.keys], locator.locate(q.evidence) if q.evidence else [])
    record = EvalRecord.from_answer(answer, id=q.id, type=q.type, split=q.split, history=list(q.history),
                                    set=q.set, wall_ms=wall_ms, retrieved=retrieved, expected=expected, error=error,
                                    traceback=trace)
    return record.scored()


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

    settings = settings if settings is not None else rag.settings
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
    records: list[EvalRecord] = []
    cancelled = False
    for i, q in enumerate(questions, start=1):
        if cancel is not None and cancel():
            cancelled = True
            break
        records.append(evaluate_question(rag, q, locator, k=k))
        if progress:
            progress(i, total, records[-1])
    sets = sorted({q.set for q in questions})
    meta = {
        "label": label or config or "run",
        "config": config,
        "set": sets[0] if len(sets) == 1 and sets[0] else None,   # the bundled set, when the run is one set
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


def set_index_dir(settings: "Settings", set_name: str) -> Path:
    """Where set `set_name` is indexed for `settings`: `<index dir>/../eval-sets/<set>/`, beside the user's index
    and never in it. A configuration with its own index folder (the baseline's `index-baseline`) gets its own
    copy (`eval-sets/<set>-baseline`), so two configurations never force each other's index to be rebuilt."""
    current = Path(settings.index.dir).expanduser()
    suffix = current.name[len("index"):] if current.name.startswith("index") else f"-{current.name}"
    return current.parent / "eval-sets" / f"{set_name}{suffix}"


def rag_for_set(eval_set: EvalSet, settings: "Settings", rag: "RAG | None" = None) -> "RAG":
    """A RAG with `settings` over an index that holds the set's document and nothing else.

    Why its own index: the numbers of a set must not depend on what else a user has indexed (other documents
    compete for the top passages), and evaluating must never add eval documents to the user's index. The index
    lives in `set_index_dir` and is updated incrementally, so after the first run nothing is embedded again.
    `rag`, when given, lends its loaded embedding model (`with_settings`), so a run over every set loads the
    model once. Documents that are not the set's (an old copy, e.g. from a moved checkout) are removed.
    """
    from rag import RagError

    set_settings = settings.updated(index={"dir": set_index_dir(settings, eval_set.name)})
    if rag is None:
        from rag import RAG

        rag = RAG.from_settings(set_settings, build_if_missing=False)
    else:
        rag = rag.with_settings(set_settings, build_if_missing=False)
    document = eval_set.document_path.resolve()
    others = [d.source for d in rag.documents() if d.source != str(document)]
    if _reads_differently(rag, eval_set):
        # The file is unchanged but this program reads it differently (a loader change): an index keeps the text
        # its documents were loaded with, so the document is dropped and read again. A kept tutorial index had
        # scored recall in 1,000 characters 0.775 on the HTML text of an older loader, 0.875 when fresh.
        rag.index.update(remove=[document], progress=False)
    report = rag.index.update([document], titles=eval_set.titles, remove=others, progress=False)
    if report.errors:
        raise RagError(f"Cannot index the document of evaluation set {eval_set.name!r}: "
                       + "; ".join(str(e) for e in report.errors))
    return rag


def _reads_differently(rag: "RAG", eval_set: EvalSet) -> bool:
    """Whether the set's document is indexed with a text other than the one its file reads as now."""
    from index.documents import load_document

    source = str(eval_set.document_path.resolve())
    if source not in {d.source for d in rag.documents()}:
        return False
    return rag.document_text(source) != load_document(eval_set.document_path).text


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
