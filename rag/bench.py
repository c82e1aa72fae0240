"""Answer benchmark: `python -m rag.bench` prints a table and writes bench-results/answer.json.

Warm latency of `ask` with the extractive default (median and p95 of retrieve, generate, total over the bundled
eval questions), cold start of the `rag ask` process, and for a local GGUF model: load time, time to first
token and tokens per second. Run `rag models qwen` first to include Qwen2.5-Coder-1.5B.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def questions() -> list[dict]:
    rows = []
    for split in ("dev", "test"):
        path = ROOT / "eval" / "data" / f"essay_{split}.jsonl"
        rows += [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return rows


def summarize(values: list[float]) -> dict:
    return {"median": statistics.median(values), "p95": float(np.percentile(values, 95)), "n": len(values)}


def bench_extractive(settings, rows: list[dict]) -> dict:
    from rag import RAG

    rag = RAG.from_settings(settings)
    rag.ask(rows[0]["question"])  # warm caches (sentence vectors, IDF weights)
    stages: dict[str, list[float]] = {"retrieve": [], "generate": [], "total": []}
    for _ in range(2):
        for row in rows:
            answer = rag.ask(row["question"], row.get("history") or None)
            for stage in stages:
                stages[stage].append(answer.timings_ms[stage])
    return {stage: summarize(v) for stage, v in stages.items()}


def bench_cold(settings) -> dict:
    env = dict(os.environ, RAG_INDEX__DIR=str(settings.index.dir))
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag.cli", "ask", "Why did Russia avoid a mutual defense clause?"],
                       env=env, check=True, capture_output=True)
        runs.append(time.perf_counter() - started)
    return summarize(runs)


def bench_llm(settings, model_path: str, rows: list[dict], n: int) -> dict:
    from rag import RAG
    from rag.llm import LLMGenerator

    rag = RAG.from_settings(settings)
    llm = settings.llm.model_copy(update={"backend": "llamacpp", "model_path": model_path, "max_tokens": 200,
                                          "n_threads": os.cpu_count()})
    started = time.perf_counter()
    generator = LLMGenerator(llm)
    generator.model.invoke([("human", "Hi")])  # forces the lazy load and a first decode
    load_s = time.perf_counter() - started
    ttft, rates = [], []
    for row in [r for r in rows if r["type"] == "fact"][:n]:
        passages = rag.retriever.retrieve(row["question"]).passages
        started = time.perf_counter()
        first = None
        count = 0
        for _token in generator.stream(row["question"], passages):
            count += 1
            if first is None:
                first = time.perf_counter() - started
        total = time.perf_counter() - started
        if first is not None and count > 1:
            ttft.append(first)
            rates.append((count - 1) / max(total - first, 1e-6))
    return {"model": Path(str(model_path)).name, "load_s": load_s, "ttft_s": summarize(ttft),
            "tokens_per_s": summarize(rates)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--llm", action="append", default=[], help="GGUF path or 'smollm2' / 'qwen' (repeatable)")
    parser.add_argument("--llm-questions", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "answer.json")
    args = parser.parse_args()
    from rag import load_settings

    settings = load_settings()
    rows = questions()
    results = {"extractive_warm_ms": bench_extractive(settings, rows), "cold_rag_ask_s": bench_cold(settings)}
    for model in args.llm:
        results.setdefault("llm", []).append(bench_llm(settings, model, rows, args.llm_questions))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "median", "p95", "n", title="Answer benchmark")
    for stage, s in results["extractive_warm_ms"].items():
        table.add_row(f"extractive {stage} (ms, warm)", f"{s['median']:.1f}", f"{s['p95']:.1f}", str(s["n"]))
    c = results["cold_rag_ask_s"]
    table.add_row("cold `rag ask` (s)", f"{c['median']:.2f}", f"{c['p95']:.2f}", str(c["n"]))
    for r in results.get("llm", []):
        table.add_row(f"{r['model']} load (s)", f"{r['load_s']:.2f}", "", "1")
        table.add_row(f"{r['model']} first token (s)", f"{r['ttft_s']['median']:.2f}", f"{r['ttft_s']['p95']:.2f}",
                      str(r["ttft_s"]["n"]))
        table.add_row(f"{r['model']} tokens/s", f"{r['tokens_per_s']['median']:.1f}",
                      f"{r['tokens_per_s']['p95']:.1f}", str(r["tokens_per_s"]["n"]))
    Console().print(table)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
