"""How fast a citation opens its document in the viewer, for a 1 MB document (the issue asks for <= 300 ms).

    python -m ui.bench_viewer [--mb 1.0] [--opens 5]

Builds a fresh index in a temporary folder (the bundled essay plus one generated document of `--mb` megabytes,
added the way an upload is), serves the chat on a free local port, asks a question whose answer cites the
generated document, and in headless Chromium (`/usr/bin/chromium`) clicks the marker `--opens` times. For each
open it reads the page's own clock (`window.ragUi.lastOpenMs`: from the click to the cited sentence scrolled into
view and focused, server round trip and 1 MB of HTML laid out included), and separately times the server-side
rendering alone. Prints both and writes bench-results/viewer.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FACT = "The Zorbian lighthouse was built in 1873 by the engineer Malia Terrow."
QUESTION = "When was the Zorbian lighthouse built?"
WORDS = ("harbour quay ferry tide copper ledger winter market northern island council bridge granite river "
         "orchard mill lantern cargo customs ledger season storm archive street square chapel vineyard").split()


def make_document(path: Path, megabytes: float, seed: int = 7) -> Path:
    """A plain-text document of about `megabytes` MB: generated paragraphs, with FACT in the middle."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    paragraphs, size, placed = [], 0, False
    while size < target:
        sentences = []
        for _ in range(rng.randint(3, 6)):
            words = [rng.choice(WORDS) for _ in range(rng.randint(8, 16))]
            sentences.append(" ".join(words).capitalize() + ".")
        paragraph = " ".join(sentences)
        if not placed and size >= target // 2:
            paragraph, placed = f"{paragraph} {FACT}", True
        paragraphs.append(paragraph)
        size += len(paragraph) + 2
    path.write_text("Harbour records\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=1.0, help="size of the generated document (MB)")
    parser.add_argument("--opens", type=int, default=5, help="how many times to open the citation")
    parser.add_argument("--out", default="bench-results/viewer.json")
    parser.add_argument("--root", help="a folder to keep the index in and reuse on the next run (default: a new "
                                       "temporary folder; indexing 1 MB takes minutes on a small CPU)")
    args = parser.parse_args(argv)

    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        print(f"{chromium} is missing: apt-get install -y chromium", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    from rag import RAG, DocumentSets, Settings
    from ui import citations, viewer
    from ui.app import build_app, launch_options
    from ui.engines import DEFAULT_SET

    root = Path(args.root) if args.root else Path(tempfile.mkdtemp(prefix="rag-bench-viewer-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(index={"dir": root / "index"})
    rag = RAG.from_settings(settings)
    big = make_document(root / "harbour-records.txt", args.mb)
    sets = DocumentSets(settings, rag)
    if not any(d.title == "Harbour records" for d in rag.documents()):
        t0 = time.perf_counter()
        sets.add_files(DEFAULT_SET, [sets.save_upload(DEFAULT_SET, big.name, big)])
        print(f"indexed {big.stat().st_size / 1e6:.2f} MB in {time.perf_counter() - t0:.1f} s")

    # Server-side rendering alone.
    answer = rag.ask(QUESTION)
    cited = [c for c in answer.citations if c.source.endswith(big.name)]
    if not cited:
        print(f"The answer did not cite the generated document: {answer.answer!r}", file=sys.stderr)
        return 1
    text = rag.document_text(cited[0].source)
    chip = next(ch for ch in citations.chips(answer) if ch.n == cited[0].n)
    render_ms = []
    for _ in range(args.opens):
        t1 = time.perf_counter()
        viewer.viewer_html(open_id=1, answer=answer, turn=0, text=text, kind="text", current=cited[0],
                           spans=chip.spans)
        render_ms.append((time.perf_counter() - t1) * 1000)

    demo = build_app(settings, rag)
    demo.launch(server_name="127.0.0.1", prevent_thread_lock=True, quiet=True,
                **launch_options(settings))
    open_ms = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium),
                                        args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.set_default_timeout(120_000)
            page.goto(demo.local_url, wait_until="domcontentloaded")
            page.wait_for_selector("#question textarea")
            page.fill("#question textarea", QUESTION)
            page.click("#ask")
            page.wait_for_function("""() => { const m = document.querySelectorAll("#chat [data-testid='bot']");
                const last = m[m.length - 1];
                return last && !last.innerText.includes('▌') && last.querySelector('a.cite'); }""")
            marker = page.locator(f"#chat a.cite[href$='-{cited[0].n}']").first
            for i in range(args.opens):
                marker.click()
                page.wait_for_function("n => window.ragUi.opened >= n", arg=i + 1)
                open_ms.append(page.evaluate("window.ragUi.lastOpenMs"))
                shown = page.locator("#viewer-current").inner_text()
                assert "Zorbian" in shown or "1873" in shown, shown
                page.keyboard.press("Escape")
                page.wait_for_function("() => document.body.dataset.view === 'sources'")
            browser.close()
    finally:
        demo.close()

    result = {"document_mb": round(len(text) / 1e6, 3), "opens": args.opens,
              "render_ms": {"median": round(statistics.median(render_ms), 1), "max": round(max(render_ms), 1)},
              "click_to_focused_span_ms": {"median": round(statistics.median(open_ms), 1),
                                           "max": round(max(open_ms), 1), "all": [round(x, 1) for x in open_ms]}}
    print(f"viewer on a {result['document_mb']} MB document: server rendering median "
          f"{result['render_ms']['median']} ms; click to focused span median "
          f"{result['click_to_focused_span_ms']['median']} ms, max {result['click_to_focused_span_ms']['max']} ms")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
