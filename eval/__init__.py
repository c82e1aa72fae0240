"""Evaluation of the RAG pipeline: retrieval, answers, citations, refusals and latency, without an LLM judge.

    from rag import RAG, load_settings
    from eval import Gate, load_questions, run_eval, write_html, metrics_table
    from eval.metrics import KEY_ACCURACY                      # each metric is a MetricSpec constant

    rag = RAG.from_settings(load_settings())
    run = run_eval(rag, load_questions(split="test"), progress=lambda done, total, record: ...)
    run.metrics["groups"]["test"][KEY_ACCURACY.key]; run.failures(); run.save("results.json")
    write_html(run, "report.html")
    Gate.load().check(run.metrics).passed      # the regression gate of `rag eval --check` (the essay's section)

    settings, rag = load_settings(), None
    for s in eval_sets().values():             # every bundled set (eval/data/<set>/), each on its own index
        rag = rag_for_set(s, settings, rag)    # reuses the loaded embedding model
        run = run_eval(rag, s.questions("test"))
        load_gates()[s.name].check(run.metrics)

A run's records are typed (`EvalRecord`, scored by the pure `score(record) -> Scores`) and saved as the flat
JSON of format "essay-rag-eval/1"; `EvalRun.load` reads and re-scores such a file.

Importing `eval` loads nothing heavy (no model, no index); the names below are resolved lazily. Scoring needs
only `rag.markers` (the one definition of the `[n]` citation syntax). The command line is `rag eval`
(eval/cli.py); metric definitions are in eval/METRICS.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_questions": "eval.dataset", "Question": "eval.dataset", "DatasetError": "eval.dataset",
    "sample": "eval.dataset", "EvalSet": "eval.dataset", "eval_sets": "eval.dataset", "get_set": "eval.dataset",
    "resolve_sets": "eval.dataset", "rag_for_set": "eval.runner", "load_gates": "eval.gate",
    "run_eval": "eval.runner", "EvalRun": "eval.runner", "rag_for_config": "eval.runner",
    "compute_metrics": "eval.metrics", "metrics_table": "eval.metrics", "formatted_table": "eval.metrics",
    "TARGETS": "eval.metrics", "METRICS": "eval.metrics", "METRIC_BY_KEY": "eval.metrics", "score": "eval.metrics",
    "EvalRecord": "eval.records", "Scores": "eval.records", "Expected": "eval.records",
    "Gate": "eval.gate", "GateError": "eval.gate",
    "write_html": "eval.report", "render_html": "eval.report",
    "compare_runs": "eval.compare", "print_comparison": "eval.compare", "write_compare_html": "eval.compare",
    "baseline_settings": "eval.configs", "resolve_config": "eval.configs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eval' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
