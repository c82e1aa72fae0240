"""PostgreSQL + pgvector vs FAISS + BM25 at scale: `python -m eval.bench_pg` prints a table and writes
bench-results/pg.json.

One run builds the same synthetic corpus in both backends, through each backend's own bulk write path (FAISS:
`index.writer.write_generation`, a new generation folder; Postgres: `PostgresIndex.import_snapshot`, one
transaction with COPY and one HNSW build), then measures build time, search latency (hybrid, dense, BM25;
median and p95 of `--queries` queries), pgvector's HNSW recall@10 against exact search, refresh cost, memory
(peak RSS of the FAISS child process; PostgreSQL server processes' RSS plus its client) and size on disk.

The corpus: `--chunks` short texts (recombined essay sentences, as in `eval.bench_index`) in documents of 100
chunks, with random normalised 384-dimension vectors, so nothing is embedded (embedding 100,000 chunks takes
about 20 minutes on 2 cores). Queries get random vectors too, from a stand-in embedder shared by both
backends: latencies are the index's own, without the ~10-20 ms of embedding a real question.

Bounded by count (`--chunks`) and time (`--max-seconds`: phases not started by then are skipped and said so).
Each backend runs in its own child process so that one's memory does not count against the other's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DIM = 384
PER_DOC = 100


class StandInEmbedder:
    """Random normalised query vectors (the corpus vectors are random too): no model, no embedding time."""

    model_name = "bench-random"
    dimension = DIM
    texts_embedded = 0

    def __init__(self, seed: int = 1) -> None:
        self.rng = np.random.default_rng(seed)

    def embed_query(self, text: str) -> np.ndarray:
        v = self.rng.standard_normal(DIM).astype(np.float32)
        return v / np.linalg.norm(v)


def corpus(n: int, seed: int = 0):
    """Chunks with exact offsets in documents of PER_DOC chunks, their vectors, texts and records."""
    from eval.bench_index import synthetic_corpus
    from index.chunking import Chunk, chunk_id
    from index.documents import file_sha256
    from index.manifest import DocumentRecord

    texts = synthetic_corpus(n, seed)
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks, docs, records = [], {}, {}
    for d in range(0, n, PER_DOC):
        source = f"/bench/doc{d // PER_DOC:05d}.txt"
        parts, offset = [], 0
        for t in texts[d:d + PER_DOC]:
            chunks.append(Chunk(id=chunk_id(source, offset, offset + len(t)), source=source, title=source[7:],
                                section="", start=offset, end=offset + len(t), text=t))
            parts.append(t)
            offset += len(t) + 2
        docs[source] = "\n\n".join(parts)
        data = docs[source].encode()
        records[source] = DocumentRecord(source=source, title=source[7:], kind="text", size=len(data),
                                         sha256=file_sha256(data), chunks=len(parts), indexed_at="bench")
    queries = [" ".join(texts[int(i)].split()[2:6]) for i in rng.integers(0, n, 1000)]
    return chunks, vectors, docs, records, queries


def latencies(search, queries: list[str], k: int = 10) -> dict:
    for q in queries[:5]:
        search(q, k)
    lat = []
    for q in queries:
        t = time.perf_counter()
        search(q, k)
        lat.append((time.perf_counter() - t) * 1000)
    return {"p50_ms": statistics.median(lat), "p95_ms": float(np.percentile(lat, 95))}


def run_backend(backend: str, n: int, n_queries: int, deadline: float) -> dict:
    from index import IndexConfig, SearchConfig

    chunks, vectors, docs, records, queries = corpus(n)
    queries = queries[:n_queries]
    res: dict = {"backend": backend, "chunks": n}
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory(prefix=f"bench-{backend}-") as tmp:
        config = IndexConfig(dir=Path(tmp) / "index", backend=backend, embedding_model="bench-random")
        embedder = StandInEmbedder()
        t = time.perf_counter()
        if backend == "faiss":
            from index.hybrid import HybridIndex
            from index.writer import write_generation

            write_generation(config.dir, config, chunks, vectors, docs, records, [], {})
            res["build_s"] = time.perf_counter() - t
            index = HybridIndex(config, embedder)
            index.refresh()
            res["size_mb"] = sum(f.stat().st_size for f in Path(config.dir).rglob("*") if f.is_file()) / 1e6
        else:
            from index.pg import PostgresIndex

            index = PostgresIndex(config, embedder)
            index.connections  # start the embedded server and create the schema: not part of the build
            res["server_start_s"] = time.perf_counter() - t
            t = time.perf_counter()
            index.import_snapshot(chunks, vectors, docs, records, [], {}, {})
            res["build_s"] = time.perf_counter() - t
            index.refresh()
            with index.connections.borrow() as conn:
                res["size_mb"] = conn.execute(
                    "SELECT sum(pg_total_relation_size(c.oid))::float8 FROM pg_class c JOIN pg_namespace n ON "
                    "n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'", (index.schema,)
                ).fetchone()[0] / 1e6
            t = time.perf_counter()
            for _ in range(100):
                index.refresh()
            res["refresh_unchanged_ms"] = (time.perf_counter() - t) * 10
        print(f"  {backend}: built {n:,} chunks in {res['build_s']:.1f} s", file=sys.stderr, flush=True)
        for mode in ("hybrid", "dense", "bm25"):
            if time.time() > deadline:
                res[f"{mode}_skipped"] = "time limit reached"
                continue
            res[mode] = latencies(index.searcher(SearchConfig(mode=mode)).search, queries)
        if time.time() < deadline:  # approximate vs exact top 10 on random vectors (the hardest case for HNSW)
            search = index.searcher(SearchConfig(mode="dense")).search
            ids = {c.id: i for i, c in enumerate(chunks)}
            hits = []
            for q in range(50):
                embedder.rng = np.random.default_rng(1000 + q)
                v = embedder.embed_query("")
                embedder.rng = np.random.default_rng(1000 + q)
                exact = set(np.argsort(-(vectors @ v))[:10].tolist())
                hits.append(len(exact & {ids[h.chunk.id] for h in search("q", 10)}) / 10)
            res["dense_recall@10_vs_exact"] = float(np.mean(hits))
        res["client_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        res["client_rss_before_mb"] = rss0
        if backend == "postgres":
            res["server_rss_mb"] = server_rss(index._server.pgdata if index._server else None)
            index.close()
    return res


def server_rss(pgdata: Path | None) -> float | None:
    """Resident memory of the server's processes (shared buffers counted once per process that touched them,
    so an upper bound)."""
    try:
        import psutil
    except ImportError:
        return None
    total = 0
    for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
        if p.info["name"] == "postgres" and pgdata is not None:
            try:
                if p.parent() is None or (str(pgdata) not in " ".join(p.info["cmdline"] or [])
                                          and str(pgdata) not in " ".join(p.parent().cmdline())):
                    continue
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += p.info["memory_info"].rss
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=1200.0, help="skip phases that would start later")
    parser.add_argument("--backends", default="faiss,postgres", help="comma-separated: faiss, postgres")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "pg.json")
    parser.add_argument("--child", choices=["faiss", "postgres"], help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_backend(args.child, args.chunks, args.queries, args.deadline)))
        return
    started = time.time()
    deadline = started + args.max_seconds
    results: dict = {"chunks": args.chunks, "queries": args.queries, "cpus": os.cpu_count(),
                     "load_before": os.getloadavg()[0]}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        if time.time() > deadline:
            results[backend] = {"skipped": "time limit reached"}
            continue
        out = subprocess.run([sys.executable, "-m", "eval.bench_pg", "--child", backend, "--chunks",
                              str(args.chunks), "--queries", str(args.queries), "--deadline", str(deadline)],
                             cwd=ROOT, capture_output=True, text=True, timeout=max(60.0, deadline - time.time() + 600))
        sys.stderr.write(out.stderr[-2000:] if out.returncode else "")
        results[backend] = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else \
            {"failed": out.stderr.strip().splitlines()[-1:]}
    results["seconds"] = time.time() - started
    results["load_after"] = os.getloadavg()[0]
    f, p = results.get("faiss", {}), results.get("postgres", {})

    def cell(r: dict, *keys) -> str:
        v = r
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return "–" if v is None else (f"{v:,.1f}" if isinstance(v, float) else str(v))

    rows = [("build (s)", ("build_s",)), ("hybrid p50 (ms)", ("hybrid", "p50_ms")),
            ("hybrid p95 (ms)", ("hybrid", "p95_ms")), ("dense p50 (ms)", ("dense", "p50_ms")),
            ("dense p95 (ms)", ("dense", "p95_ms")), ("BM25 p50 (ms)", ("bm25", "p50_ms")),
            ("BM25 p95 (ms)", ("bm25", "p95_ms")), ("dense recall@10 vs exact", ("dense_recall@10_vs_exact",)),
            ("client peak RSS (MB)", ("client_peak_rss_mb",)), ("server RSS (MB)", ("server_rss_mb",)),
            ("size on disk (MB)", ("size_mb",)), ("refresh, unchanged (ms)", ("refresh_unchanged_ms",))]
    print(f"{args.chunks:,} chunks, {args.queries} queries, {os.cpu_count()} CPUs, load {results['load_before']:.1f}")
    print(f"{'':28} {'FAISS + BM25':>14} {'PostgreSQL':>14}")
    for label, keys in rows:
        print(f"{label:28} {cell(f, *keys):>14} {cell(p, *keys):>14}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
