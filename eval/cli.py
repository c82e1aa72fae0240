"""`rag eval`: run the evaluation set and print, save, report or compare the results.

Loaded by the `rag` console script through the entry-point group "rag.commands" (eval = "eval.cli:register").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from eval.records import EvalRecord
    from eval.runner import EvalRun
    from rag import Settings

HELP = """Evaluate retrieval, answers, citations and refusals on a question set.

Runs the bundled essay set (dev and test splits) unless FILE is given, and prints a metric table with the
targets (checked on the test split). Examples:

  rag eval                                  # default settings, both splits
  rag eval --split test --out default.json --report default.html
  rag eval --baseline --out baseline.json   # the LangChain tutorial configuration
  rag eval --compare baseline.json default.json --report compare.html
  rag eval --split test --check             # quality gate: fail on a regression (eval/quality_gate.toml)
  rag eval my_questions.jsonl --limit 10
  RAG_LLM__BACKEND=ollama RAG_LLM__MODEL=qwen2.5:3b rag eval --label ollama-qwen
"""


def _fail(console: "Console", message: str, code: int = 2) -> typer.Exit:
    """Print the message on stderr (no traceback: it says what is wrong) and return the Exit to raise."""
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False).print(f"[bold red]Error:[/] {escape(message)}")
    return typer.Exit(code)


def register(app: typer.Typer, load: Callable[[typer.Context], "Settings"]) -> None:
    """Add the `eval` command to the `rag` Typer app; `load(ctx)` returns the settings (TOML + environment + the
    global options of this invocation, such as --index-dir)."""

    @app.command("eval", help=HELP, no_args_is_help=False)
    def eval_command(
        ctx: typer.Context,
        file: Optional[Path] = typer.Argument(None, help="A JSONL question file (default: the bundled essay set).",
                                              show_default=False),
        split: str = typer.Option("all", "--split", "-s", help="Which split: dev, test or all."),
        config: str = typer.Option("default", "--config",
                                   help="Configuration to evaluate: 'default' (your settings), 'baseline' (the "
                                        "LangChain tutorial setup), or a TOML settings file."),
        baseline: bool = typer.Option(False, "--baseline", help="Same as --config baseline."),
        limit: Optional[int] = typer.Option(None, "--limit", "-n", min=1,
                                            help="Only N questions, cycling over splits and types (quick check)."),
        qtype: Optional[list[str]] = typer.Option(None, "--type", "-t",
                                                  help="Only questions of this type (repeatable)."),
        qid: Optional[list[str]] = typer.Option(None, "--id", help="Only the question with this id (repeatable)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o",
                                           help="Write every per-question record and the metrics to this JSON file."),
        report: Optional[Path] = typer.Option(None, "--report", "-r", help="Write a self-contained HTML report."),
        compare: Optional[tuple[Path, Path]] = typer.Option(
            None, "--compare", help="Compare two --out files (A B) instead of running; shows B relative to A.",
            show_default=False),
        label: Optional[str] = typer.Option(None, "--label", help="Name of this run in reports and comparisons."),
        check: bool = typer.Option(False, "--check",
                                   help="Quality gate: exit with status 1 when a metric of the test split regressed "
                                        "beyond the tolerance in eval/quality_gate.toml (needs the whole test "
                                        "split)."),
        gate_file: Optional[Path] = typer.Option(None, "--gate",
                                                 help="Thresholds for --check (default: eval/quality_gate.toml).",
                                                 show_default=False),
        show_failures: int = typer.Option(20, "--show-failures", min=0, help="Failing questions to list."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    ) -> None:
        from rich.console import Console

        console = Console(highlight=False)
        if compare:
            _compare(console, compare, report, out)
            return
        gate = _load_gate(console, gate_file) if check else None
        run = _run(console, lambda: load(ctx), file, split, "baseline" if baseline else config, limit, qtype, qid,
                   label, progress, gate)
        print_run(run, console, show_failures=show_failures)
        if out:
            console.print(f"Results: [bold]{run.save(out)}[/]")
        if report:
            from eval.report import write_html

            console.print(f"Report:  [bold]{write_html(run, report)}[/]")
        if not out and not report:
            console.print("[dim]Add --report report.html for the full report (curves, failing questions with their "
                          "evidence) and --out results.json to keep the records for --compare.[/]")
        if gate is not None:
            report = gate.check(run.metrics)
            _print_gate(console, report)
            if not report.passed:
                raise typer.Exit(1)


def _load_gate(console: "Console", path: Path | None):
    from eval.gate import GATE_FILE, Gate, GateError

    try:
        return Gate.load(path or GATE_FILE)
    except GateError as exc:
        raise _fail(console, str(exc)) from None


def _print_gate(console: "Console", report) -> None:
    from rich.markup import escape

    colour = "green" if report.passed else "red"
    head, *rest = report.summary().splitlines()
    console.print(f"[bold {colour}]{escape(head)}[/]")
    for line in rest:
        console.print(f"[{'green' if line.lstrip().startswith('↑') else 'red'}]{escape(line)}[/]")


def _compare(console: "Console", paths: tuple[Path, Path], report: Path | None, out: Path | None) -> None:
    import json

    from eval.compare import compare_runs, print_comparison, write_compare_html
    from eval.runner import EvalRun

    try:
        a, b = EvalRun.load(paths[0]), EvalRun.load(paths[1])
    except (OSError, ValueError) as exc:
        raise _fail(console, str(exc)) from None
    if a.label == b.label:  # two runs of the same config: tell them apart by file name
        a.meta["label"], b.meta["label"] = Path(paths[0]).stem, Path(paths[1]).stem
    cmp = compare_runs(a, b)
    print_comparison(cmp, console)
    if report:
        console.print(f"\nReport: [bold]{write_compare_html(a, b, report, cmp)}[/]")
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(cmp, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        console.print(f"Comparison: [bold]{out}[/]")


def _settings_for(console: "Console", load: Callable[[], "Settings"], config: str) -> tuple["Settings", str]:
    from eval.configs import CONFIG_NAMES, resolve_config

    try:
        if config in CONFIG_NAMES:
            return resolve_config(config, load()), config
        path = Path(config).expanduser()
        if path.suffix.lower() == ".toml" or path.is_file():
            from rag import load_settings

            return load_settings(path), path.stem
    except (typer.Exit, typer.Abort, SystemExit):  # load() has already said what is wrong
        raise
    except Exception as exc:  # invalid TOML or environment values: pydantic says which field
        raise _fail(console, f"Cannot load settings: {exc}") from None
    raise _fail(console, f"Unknown --config {config!r}: use 'default', 'baseline' or a path to a .toml file.")


def _run(console: "Console", load, file: Path | None, split: str, config: str, limit: int | None,
         qtype: list[str] | None, qid: list[str] | None, label: str | None, show_progress: bool,
         gate=None) -> "EvalRun":
    from rich.markup import escape

    from eval.configs import describe_settings
    from eval.dataset import DatasetError, describe, load_questions, sample
    from eval.metrics import QUESTION_TYPES
    from eval.runner import run_eval

    if file is None and split not in ("dev", "test", "all"):
        raise _fail(console, f"--split must be dev, test or all (got {split!r}).")
    bad = [t for t in qtype or [] if t not in QUESTION_TYPES]
    if bad:
        raise _fail(console, f"Unknown --type {', '.join(bad)}; types are {', '.join(QUESTION_TYPES)}.")
    try:
        questions = load_questions(file, split=split)
    except DatasetError as exc:
        raise _fail(console, str(exc)) from None
    if qtype:
        questions = [q for q in questions if q.type in qtype]
    if qid:
        missing = set(qid) - {q.id for q in questions}
        if missing:
            raise _fail(console, f"No question with id {', '.join(sorted(missing))} in the selection.")
        questions = [q for q in questions if q.id in qid]
    questions = sample(questions, limit)
    if not questions:
        raise _fail(console, "No questions left to evaluate after filtering.")
    if gate is not None and gate.questions is not None:  # say so now, not after a run that cannot be compared
        n = sum(1 for q in questions if q.split == gate.split)
        if n != gate.questions:
            raise _fail(console, f"--check compares the {gate.questions} questions of the {gate.split} split with "
                                 f"{gate.source}; this selection has {n} of them. Run `rag eval --split "
                                 f"{gate.split} --check` without --limit, --type or --id.")
    settings, config_name = _settings_for(console, load, config)
    dataset = str(file) if file else f"bundled essay set ({split})"
    console.print(f"[bold]rag eval[/] · {escape(config_name)} · {describe(questions)} · {escape(dataset)}")
    console.print(f"[dim]{escape(describe_settings(settings))}[/]")

    from rag import RAG, RagError

    try:
        with console.status("Loading the embedding model and the index (the first run builds it)…"):
            rag = RAG.from_settings(settings)
    except (RagError, OSError, RuntimeError, ValueError) as exc:
        raise _fail(console, f"Cannot start the pipeline: {exc}") from None
    run_label = label or config_name
    try:
        if show_progress and console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                          transient=True) as bar:
                task = bar.add_task("Evaluating", total=len(questions))

                def on_progress(done: int, total: int, record: "EvalRecord | None") -> None:
                    text = f"Evaluating {record.id}" if record else "Warming up"
                    if record and record.failed:
                        text += " [red]✗[/]"
                    bar.update(task, completed=done, description=text)

                run = run_eval(rag, questions, progress=on_progress, settings=settings, label=run_label,
                               config=config_name, dataset=dataset)
        else:
            run = run_eval(rag, questions, settings=settings, label=run_label, config=config_name, dataset=dataset)
    except RagError as exc:  # BackendError: the LLM is unreachable or cannot load; every question would fail
        raise _fail(console, str(exc)) from None
    return run


def _short(value, kind: str) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if kind == "ms" else f"{value:.2f}"


def print_run(run: "EvalRun", console: "Console | None" = None, show_failures: int = 20) -> None:
    """The metric table with targets, the per-type breakdown and the failing questions, with rich."""
    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from eval.metrics import TYPE_METRICS, format_value, metrics_table

    console = console or Console()
    groups = run.groups
    targets = run.metrics["targets"]
    table = Table(title=f"{escape(run.label)}: {len(run.records)} questions, {run.meta.get('duration_s', '?')} s",
                  title_justify="left")
    table.add_column("Metric")
    for g in groups:
        table.add_column(g, justify="right")
    table.add_column("Target", justify="right")
    table.add_row("[dim]questions (answerable)[/]",
                  *[f"[dim]{run.metrics['groups'][g]['n']} ({run.metrics['groups'][g]['n_answerable']})[/]"
                    for g in groups], "")
    table.add_row("[dim]failing[/]", *[f"[dim]{run.metrics['groups'][g]['failed']}[/]" for g in groups], "")
    section = None
    for row in metrics_table(run):
        if row["section"] != section:
            section = row["section"]
            table.add_section()
            table.add_row(f"[bold]{section}[/]", *[""] * (len(groups) + 1))
        cells = []
        for g in groups:
            cell = format_value(row["values"][g], row["kind"])
            met = row["met"][g]
            if met is not None:
                mark = "[green]✓[/]" if met else "[red]✗[/]"
                cell = f"[bold]{cell}[/] {mark}" if g == targets["split"] else f"{cell} {mark}"
            cells.append(cell)
        table.add_row(f"  {row['label']}", *cells, row["target"] or "")
    console.print(table)
    missed = [r for r in targets["results"] if r["met"] is False]
    verdict = "[green]all targets met[/]" if targets["all_met"] else \
        f"[red]{len(missed)} target(s) missed:[/] " + ", ".join(r["label"] for r in missed)
    console.print(f"Targets (goals; --check gates on eval/quality_gate.toml instead) on the "
                  f"[bold]{targets['split']}[/] split: {verdict}")

    by_type = run.metrics["by_type"].get("all" if "all" in groups else groups[0], {})
    if by_type:  # types as columns: six of them fit an 80-column terminal, ten metrics would not
        t = Table(title="By question type" + (" (all splits)" if "all" in groups and len(groups) > 1 else ""),
                  caption="Refused: share refused — right for unanswerable/adversarial, wrong for the others",
                  title_justify="left", caption_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
        t.add_column("", no_wrap=True, min_width=12)
        for qtype in by_type:
            t.add_column(qtype, justify="right", no_wrap=True)
        t.add_row("questions", *[str(m["n"]) for m in by_type.values()])
        t.add_row("failing", *[str(m["failed"]) for m in by_type.values()])
        for spec in TYPE_METRICS:
            t.add_row(spec.abbrev, *[_short(m.get(spec.key), spec.kind) for m in by_type.values()])
        console.print(t)

    failures = run.failures()
    errors = [r for r in run.records if r.error]
    if errors:
        console.print(f"[red]{len(errors)} question(s) raised an error[/], e.g. {escape(errors[0].id)}: "
                      f"{escape(errors[0].error)}")
    not_found = [r.id for r in run.records if r.scores and any("not found" in w for w in r.scores.warnings)]
    if not_found:
        console.print(f"[yellow]Evidence not found verbatim in the index for {len(not_found)} question(s)[/] "
                      f"({', '.join(not_found[:8])}{' …' if len(not_found) > 8 else ''}): "
                      "is the right document indexed?")
    if failures and show_failures:
        t = Table(title=f"Failing questions ({len(failures)} of {len(run.records)})", title_justify="left")
        t.add_column("Id", no_wrap=True)
        t.add_column("Type")
        t.add_column("Question", max_width=50, no_wrap=True, overflow="ellipsis")
        t.add_column("Why", max_width=60)
        for r in failures[:show_failures]:
            t.add_row(escape(r.id), escape(r.type), escape(r.question), escape("; ".join(r.failure_reasons)))
        console.print(t)
        if len(failures) > show_failures:
            console.print(f"[dim]… and {len(failures) - show_failures} more (see --report or --out).[/]")
    elif not failures:
        console.print("[green]Every question passed.[/]")
