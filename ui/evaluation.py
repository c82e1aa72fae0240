"""The Evaluation tab: run the bundled question set on the current settings, with a progress bar, and show the
metric table and the failing questions, so a user can see how far to trust the answers before relying on them.

It drives the `eval` package's public API (question sets, runner, metric table, HTML report); like the rest of
`ui`, it reaches the pipeline only through `rag`'s public API (via the shared `Engines`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from urllib.parse import quote

import gradio as gr

from ui.engines import ChatConfig, Engines

SPLITS = ["test", "dev", "all"]


def metric_rows(run, group: str) -> list[list[str]]:
    from eval.metrics import format_value, metrics_table

    rows = []
    for row in metrics_table(run):
        value = row["values"].get(group)
        met = row["met"].get(group)
        mark = "" if met is None else ("✓ met" if met else "✗ missed")
        rows.append([row["section"], row["label"], format_value(value, row["kind"]), row["target"] or "", mark])
    return rows


def failure_rows(run, limit: int = 200) -> list[list[str]]:
    """The failing questions with their answers as a person reads them (`rag.markers.plain`: no citation
    markers, quoted document brackets as the document wrote them)."""
    from rag import markers

    return [[r.id, r.type, r.question, markers.plain(r.answer)[:400], "; ".join(r.failure_reasons)]
            for r in run.failures()[:limit]]


def summary_text(run, group: str, split: str, backend: str) -> str:
    """The line above the table: question counts and the headline metrics, named and formatted by the registry."""
    from eval.metrics import CITATION_PRECISION, CORRECT_REFUSAL_RATE, FALSE_REFUSAL_RATE, KEY_ACCURACY, format_value

    m = run.metrics["groups"][group]
    headline = ", ".join(f"{spec.label.lower()} **{format_value(m.get(spec.key), spec.kind)}**"
                         for spec in (KEY_ACCURACY, CITATION_PRECISION, CORRECT_REFUSAL_RATE, FALSE_REFUSAL_RATE))
    return (f"**{m['n']} questions** ({m['n_answerable']} answerable) on the **{split}** split with `{backend}`: "
            f"{headline}; {len(run.failures())} failing.")


def run_evaluation(engines: Engines, config: ChatConfig, split: str, progress=None):
    """Ask every question of the split with the chat's current settings; returns (summary, metrics, failures,
    report path). Raises RagError-style exceptions with readable messages for the caller to show."""
    from eval.dataset import load_questions
    from eval.report import write_html
    from eval.runner import run_eval

    rag = engines.rag(config)
    if not engines.sets.holds_bundled_essay(config.set):
        raise ValueError("The bundled questions are about the Russia–Iran essay, which this document set does not "
                         "hold. Choose the default index in Settings first.")
    questions = load_questions(split=split)

    def on_progress(done: int, total: int, record) -> None:
        if progress is not None:
            progress((done, total), desc=f"Question {done} of {total}")

    run = run_eval(rag, questions, progress=on_progress)
    group = split if split in run.metrics["groups"] else "all"
    report = Path(tempfile.mkdtemp(prefix="rag-eval-")) / f"eval-{split}.html"
    write_html(run, report)
    return summary_text(run, group, split, rag.backend), metric_rows(run, group), failure_rows(run), str(report)


def build_eval_tab(engines: Engines, config: gr.State, guarded, concurrency_id: str) -> None:
    """Lay out the tab inside the current Blocks context and wire its button."""
    gr.Markdown("Run the bundled evaluation set (questions about the essay, with the expected evidence) against "
                "the settings chosen in the Chat tab. Targets are defined for the **test** split; see "
                "eval/METRICS.md for how each number is computed.")
    with gr.Row(equal_height=True):
        split = gr.Radio(SPLITS, value="test", label="Question split", elem_id="eval-split", scale=3)
        run = gr.Button("Run evaluation", variant="primary", elem_id="run-eval", scale=1)
    summary = gr.Markdown(elem_id="eval-summary")
    table = gr.Dataframe(headers=["Section", "Metric", "Value", "Target", ""], interactive=False,
                         elem_id="eval-table", wrap=True)
    gr.Markdown("### Failing questions")
    # Fixed column shares and wrapping cells (CSS in ui.assets): at 1440 px the answers used to run off-screen.
    failures = gr.Dataframe(headers=["Id", "Type", "Question", "Answer", "Why it fails"], interactive=False,
                            elem_id="eval-failures", wrap=True, column_widths=["9%", "10%", "24%", "35%", "22%"])
    report_link = gr.Markdown(elem_id="eval-report-link")
    report = gr.File(label="Full HTML report (answers, citations, expected evidence)", elem_id="eval-report")

    @guarded(4)
    def on_run(split_value: str, cfg: ChatConfig, progress=gr.Progress()):
        try:
            return run_evaluation(engines, cfg, split_value, progress)
        except ValueError as exc:
            return f"**Cannot evaluate:** {exc}", [], [], None

    def on_report(path: str | None) -> str:
        """A link that opens the report in the browser. `path` is the File component's copy in Gradio's cache,
        which Gradio serves (the file written by the run lies outside what it may serve)."""
        if not path:
            return ""
        return f'<a href="gradio_api/file={quote(str(path))}" target="_blank" rel="noopener" id="eval-report-open">' \
               "Open the full HTML report</a> (answers, citations and the expected evidence of every question)."

    run.click(on_run, [split, config], [summary, table, failures, report], api_visibility="private",
              concurrency_id=concurrency_id).then(on_report, report, report_link, api_visibility="private")
