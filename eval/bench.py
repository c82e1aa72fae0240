"""Answer benchmark: `python -m eval.bench` prints a table and writes bench-results/answer.json.

Warm latency of `ask` with the extractive default (median and p95 of retrieve, generate, total over the bundled
eval questions, both splits, twice), cold start of the `rag ask` process, and for a local GGUF model
(`--llm smollm2 --llm qwen` or a path; `--mode compose --mode read` to compare the writer modes): load time,
time to first token, total time and tokens per second. Run `rag models qwen` first to include
Qwen2.5-Coder-1.5B. `--llm-only` skips the extractive and cold-start parts.

It lives in `eval` (it used to be `rag.bench`) because it needs the question set, which belongs to eval, and it
sits above `rag` like the rest of eval: questions come from `load_questions`, answers from `rag`'s public API
(`RAG.ask`, `RAG.stream`, `with_settings`), never from its internals. So the LLM numbers are read off the
answer stream:

- time to first token: from the `passages` event (retrieval and the decision done) to the first `token` event;
- tokens per second: tokens after the first over the time from the first token to the last;
- load time: the first answer's time to first token (it pays for loading the model) minus the median of the
  warm ones (which pay for reading the prompt and the first decode step, as the first one did too).

Questions the decision stage refuses stream no LLM tokens and are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eval.dataset import Question
    from rag import RAG, Settings

ROOT = Path(__file__).resolve().parents[1]
COLD_QUESTION = "Why did Russia avoid a mutual defense clause?"


def questions() -> list["Question"]:
    """Both splits of the bundled set, through eval's public API."""
    from eval import load_questions

    return load_questions(split="all")


def summarize(values: list[float]) -> dict:
    """Median, p95 (linear interpolation, as numpy's default) and count; None values when there are none."""
    from eval.metrics import percentile

    if not values:
        return {"median": None, "p95": None, "n": 0}
    return {"median": statistics.median(values), "p95": percentile(values, 95), "n": len(values)}


def bench_extractive(rag: "RAG", rows: list["Question"]) -> dict:
    rag.ask(rows[0].question)  # warm caches (sentence vectors, IDF weights)
    stages: dict[str, list[float]] = {"retrieve": [], "generate": [], "total": []}
    for _ in range(2):
        for q in rows:
            answer = rag.ask(q.question, q.history or None)
            for stage in stages:
                stages[stage].append(answer.timings_ms[stage])
    return {stage: summarize(v) for stage, v in stages.items()}


def bench_cold(settings: "Settings") -> dict:
    env = dict(os.environ, RAG_INDEX__DIR=str(settings.index.dir))
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag.cli", "ask", COLD_QUESTION], env=env, check=True,
                       capture_output=True)
        runs.append(time.perf_counter() - started)
    return summarize(runs)


def _stream_timing(rag: "RAG", question: str) -> tuple[float, float | None, float, float] | None:
    """(time to first token after retrieval, tokens per second after it, first token and total from the question)
    of one streamed answer; None when it was refused."""
    started = time.perf_counter()
    generating = first = last = None
    count = 0
    answer = None
    for event in rag.stream(question):
        now = time.perf_counter()
        if event.kind == "passages":
            generating = now
        elif event.kind == "token" and generating is not None:
            count += 1
            first = first if first is not None else now
            last = now
        elif event.kind == "answer":
            answer = event.answer
    if answer is None or answer.refused or first is None or generating is None:
        return None
    rate = (count - 1) / max(last - first, 1e-6) if count > 1 else None
    return first - generating, rate, first - started, time.perf_counter() - started


def bench_llm(rag: "RAG", model_path: str, rows: list["Question"], n: int, mode: str = "compose") -> dict:
    """One local model in one writer mode over the first `n` answered fact questions (the first answer, which
    loads the model, is kept apart)."""
    llm = rag.with_settings(rag.settings.updated(llm={"backend": "llamacpp", "model_path": model_path,
                                                      "n_threads": os.cpu_count(), "mode": mode}))
    cold = None
    ttft: list[float] = []
    first_token: list[float] = []
    totals: list[float] = []
    rates: list[float] = []
    skipped = 0
    for q in [r for r in rows if r.type == "fact"]:
        if len(ttft) >= n:
            break
        timing = _stream_timing(llm, q.question)
        if timing is None:
            skipped += 1
            continue
        if cold is None:  # the first answer loads the model
            cold = timing[0]
            continue
        ttft.append(timing[0])
        first_token.append(timing[2])
        totals.append(timing[3])
        if timing[1] is not None:
            rates.append(timing[1])
    warm = statistics.median(ttft) if ttft else 0.0
    return {"model": Path(str(model_path)).name, "mode": mode,
            "load_s": max(0.0, cold - warm) if cold is not None else None, "cold_ttft_s": cold,
            "ttft_s": summarize(ttft), "first_token_s": summarize(first_token), "total_s": summarize(totals),
            "tokens_per_s": summarize(rates), "refused_skipped": skipped}


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", action="append", default=[], help="GGUF path or 'smollm2' / 'qwen' (repeatable)")
    parser.add_argument("--llm-questions", type=int, default=5)
    parser.add_argument("--mode", action="append", choices=["compose", "read"], default=[],
                        help="LLM writer mode(s) to measure (repeatable; default: compose)")
    parser.add_argument("--llm-only", action="store_true", help="skip the extractive and cold-start measurements")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "answer.json")
    args = parser.parse_args()
    from rag import RAG, load_settings

    settings = load_settings()
    rows = questions()
    rag = RAG.from_settings(settings)
    results: dict = {}
    if not args.llm_only:
        results = {"extractive_warm_ms": bench_extractive(rag, rows), "cold_rag_ask_s": bench_cold(settings)}
    for model in args.llm:
        for mode in args.mode or ["compose"]:
            results.setdefault("llm", []).append(bench_llm(rag, model, rows, args.llm_questions, mode))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "median", "p95", "n", title="Answer benchmark")
    for stage, s in results.get("extractive_warm_ms", {}).items():
        table.add_row(f"extractive {stage} (ms, warm)", _fmt(s["median"], ".1f"), _fmt(s["p95"], ".1f"), str(s["n"]))
    if "cold_rag_ask_s" in results:
        c = results["cold_rag_ask_s"]
        table.add_row("cold `rag ask` (s)", _fmt(c["median"], ".2f"), _fmt(c["p95"], ".2f"), str(c["n"]))
    for r in results.get("llm", []):
        name = f"{r['model']} {r['mode']}"
        table.add_row(f"{name} load (s)", _fmt(r["load_s"], ".2f"), "", "1")
        for key, label in [("first_token_s", "first token from the question (s)"),
                           ("ttft_s", "first token after retrieval (s)"), ("total_s", "total (s)")]:
            table.add_row(f"{name} {label}", _fmt(r[key]["median"], ".2f"), _fmt(r[key]["p95"], ".2f"),
                          str(r[key]["n"]))
        table.add_row(f"{name} tokens/s", _fmt(r["tokens_per_s"]["median"], ".1f"),
                      _fmt(r["tokens_per_s"]["p95"], ".1f"), str(r["tokens_per_s"]["n"]))
    Console().print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
