"""Load benchmark: `python -m eval.bench_load` prints a table and writes bench-results/load.json.

Starts `rag chat` as its own process on 127.0.0.1 and a free port (over a fresh index of the bundled essay in a
temporary folder, unless `--index-dir` names one), then for 1, 4 and 16 concurrent API clients (`--clients`) each
client asks a fixed number of questions (`--questions`, 10 by default) through `gradio_client`'s `/ask`, all
clients starting together. For each level it reports throughput (answers per second of wall time), median, p95
and worst latency per call, errors, and the server process's resident memory before and after.

The server is a separate process, as in use, and is reached only over HTTP: this module imports neither `ui` nor
`rag` internals (the `rag chat` command is found through the `rag` CLI). The clients run in this process, so on a
small machine they compete with the server for CPU; the numbers are what one machine serving itself gets.
Everything is bounded: a fixed number of calls, a start-up timeout, a per-call timeout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Why did Russia avoid a mutual defense clause with Iran?",
    "What did Zarif say about enrichment during the JCPOA talks?",
    "How many Russian-speaking Jews live in Israel?",
    "What is the ‘Look to the East’ policy?",
    "What is the population of Iran?",  # refused: the decision stage runs, the writer does not
]
START_TIMEOUT_S = 240
CALL_TIMEOUT_S = 120


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process `pid` (Linux /proc), None where it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@contextmanager
def chat_server(index_dir: Path | None, log_path: Path):
    """`rag chat` on 127.0.0.1 and a free port; yields (url, pid); stopped afterwards."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("RAG_UI__AUTH", None)
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        env["RAG_INDEX__DIR"] = str(index_dir or Path(tmp) / "index")
        with open(log_path, "w", encoding="utf-8") as log:
            proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "chat", "--host", "127.0.0.1", "--port",
                                     str(port), "--no-share"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=tmp)
            try:
                url = f"http://127.0.0.1:{port}/"
                wait_until_up(url, proc, log_path)
                yield url, proc.pid
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)


def wait_until_up(url: str, proc: subprocess.Popen, log_path: Path) -> None:
    import httpx

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"`rag chat` exited with code {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"`rag chat` did not answer on {url} within {START_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")


def percentile(values: list[float], q: float) -> float | None:
    from eval.metrics import percentile as pct

    return pct(values, q)


def run_level(url: str, pid: int, clients: int, per_client: int) -> dict:
    """`clients` API clients, started together, each asking `per_client` questions one after another."""
    from gradio_client import Client

    sessions = [Client(url, verbose=False) for _ in range(clients)]  # connecting is not timed
    latencies: list[float] = []
    errors: list[str] = []
    refused = 0
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def work(c: int) -> None:
        nonlocal refused
        start.wait()
        for i in range(per_client):
            question = QUESTIONS[(c + i) % len(QUESTIONS)]
            t0 = time.perf_counter()
            try:
                job = sessions[c].submit(question, api_name="/ask")
                result = job.result(timeout=CALL_TIMEOUT_S)
                ok = isinstance(result, dict) and result.get("question") == question
            except Exception as exc:  # counted, not fatal: the benchmark reports errors
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                continue
            elapsed = time.perf_counter() - t0
            with lock:
                latencies.append(elapsed * 1000)
                refused += bool(result.get("refused"))
                if not ok:
                    errors.append(f"wrong answer for {question!r}")

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    before = rss_mb(pid)
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join(timeout=CALL_TIMEOUT_S * per_client + 60)
    wall = time.perf_counter() - t0
    answered = len(latencies)
    return {
        "clients": clients,
        "calls": clients * per_client,
        "answered": answered,
        "refused": refused,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:5],
        "wall_s": round(wall, 3),
        "throughput_per_s": round(answered / wall, 2) if wall > 0 else None,
        "latency_ms": {
            "median": round(statistics.median(latencies), 1) if latencies else None,
            "p95": round(percentile(latencies, 95), 1) if latencies else None,
            "max": round(max(latencies), 1) if latencies else None,
        },
        "server_rss_mb": {"before": round(before, 1) if before else None,
                          "after": round(rss_mb(pid) or 0, 1) or None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="concurrency levels")
    parser.add_argument("--questions", type=int, default=10, help="questions per client at each level")
    parser.add_argument("--index-dir", type=Path, default=None, help="serve this index (default: a fresh one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results" / "load.json")
    args = parser.parse_args()
    if min(args.clients) < 1 or args.questions < 1:
        parser.error("--clients and --questions must be at least 1")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from rag import load_settings

    settings = load_settings()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    log_path = args.out.with_suffix(".server.log")
    levels = []
    started = time.perf_counter()
    with chat_server(args.index_dir, log_path) as (url, pid):
        startup_s = time.perf_counter() - started
        run_level(url, pid, 2, 2)  # warm-up: first answers fill caches (sentence vectors, IDF weights)
        for clients in args.clients:
            levels.append(run_level(url, pid, clients, args.questions))
    results = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "server": {"command": "rag chat", "startup_s": round(startup_s, 2),
                   "concurrency_limit": settings.ui.concurrency_limit, "generator": settings.llm.backend},
        "questions_per_client": args.questions,
        "levels": levels,
    }
    args.out.write_text(json.dumps(results, indent=2))
    from rich.console import Console
    from rich.table import Table

    table = Table("clients", "answered", "errors", "answers/s", "median ms", "p95 ms", "max ms", "server RSS MB",
                  title=f"/ask under load (concurrency limit {settings.ui.concurrency_limit}, "
                        f"{os.cpu_count()} CPUs, {settings.llm.backend})")
    for r in levels:
        lat, rss = r["latency_ms"], r["server_rss_mb"]
        table.add_row(str(r["clients"]), f"{r['answered']}/{r['calls']}", str(r["errors"]),
                      f"{r['throughput_per_s']}", f"{lat['median']}", f"{lat['p95']}", f"{lat['max']}",
                      f"{rss['before']} → {rss['after']}")
    Console(width=max(110, Console().width)).print(table)
    for r in levels:
        for example in r["error_examples"]:
            print(f"  {r['clients']} clients: {example}")
    print(f"wrote {args.out}")
    if any(r["errors"] for r in levels):
        sys.exit(1)


if __name__ == "__main__":
    main()
