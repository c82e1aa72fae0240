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

Runs a bundled evaluation set (default: the essay; dev and test splits) unless FILE is given, and prints a
metric table with the targets (checked on the test split). Each bundled set (eval/data/<set>/) is evaluated on
an index of its own that holds only its document (<index dir>/../eval-sets/<set>/); your index is not touched.
FILE is evaluated on your configured index. Examples:

  rag eval                                  # the essay set, default settings, both splits
  rag eval --set python-tutorial            # another bundled set
  rag eval --set all --split test           # every set, a table per set and a summary across sets
  rag eval --split test --out default.json --report default.html
  rag eval --baseline --out baseline.json   # the LangChain tutorial configuration
  rag eval --compare baseline.json default.json --report compare.html
  rag eval --set all --split test --check   # quality gate: fail on a regression (eval/quality_gate.toml)
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
        set_name: Optional[str] = typer.Option(None, "--set",
                                               help="Bundled evaluation set: essay (the default), another folder "
                                                    "of eval/data/ with a set.toml, or 'all' (every set, each on "
                                                    "its own index).", show_default=False),
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
                                           help="Write every per-question record and the metrics to this JSON file "
                                                "(with several sets, one file per set: NAME.SET.json)."),
        report: Optional[Path] = typer.Option(None, "--report", "-r",
                                              help="Write a self-contained HTML report (one per set, as --out)."),
        compare: Optional[tuple[Path, Path]] = typer.Option(
            None, "--compare", help="Compare two --out files (A B) instead of running; shows B relative to A.",
            show_default=False),
        label: Optional[str] = typer.Option(None, "--label", help="Name of this run in reports and comparisons."),
        check: bool = typer.Option(False, "--check",
                                   help="Quality gate: exit with status 1 when a metric of a set's test split "
                                        "regressed beyond the tolerance in that set's section of "
                                        "eval/quality_gate.toml (needs the whole test split)."),
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
        if file is not None and set_name is not None:
            raise _fail(console, "Give a question FILE or --set, not both (FILE is evaluated on your own index).")
        gates = _load_gates(console, gate_file) if check else None
        runs = _run(console, lambda: load(ctx), file, split, "baseline" if baseline else config, limit, qtype, qid,
                    label, progress, gates, set_name, str(gate_file or "eval/quality_gate.toml"))
        for run in runs:
            print_run(run, console, show_failures=show_failures)
            if out:
                console.print(f"Results: [bold]{run.save(_per_set(out, run, len(runs)))}[/]")
            if report:
                from eval.report import write_html

                console.print(f"Report:  [bold]{write_html(run, _per_set(report, run, len(runs)))}[/]")
        if len(runs) > 1:
            print_sets_summary(runs, console)
        if not out and not report:
            console.print("[dim]Add --report report.html for the full report (curves, failing questions with their "
                          "evidence) and --out results.json to keep the records for --compare.[/]")
        if gates is not None:
            passed = True
            for run in runs:
                gate_report = _gate_for(gates, run).check(run.metrics)
                _print_gate(console, gate_report)
                passed = passed and gate_report.passed
            if not passed:
                raise typer.Exit(1)


def _per_set(path: Path, run: "EvalRun", n_runs: int) -> Path:
    """With several sets, `results.json` becomes `results.essay.json`, `results.python-tutorial.json`, … (one
    run per file, so --compare and the report work on a set at a time, as they should)."""
    name = run.meta.get("set")
    return path.with_name(f"{path.stem}.{name}{path.suffix}") if n_runs > 1 and name else path


def _gate_for(gates: dict, run: "EvalRun"):
    """The gate section for a run: its set's (a question file of one's own is compared with the essay's, as before
    there were sets; `_run` has checked that the section exists)."""
    from eval.dataset import DEFAULT_SET

    return gates[run.meta.get("set") or DEFAULT_SET]


def _load_gates(console: "Console", path: Path | None) -> dict:
    """Every set's section of the gate file, by set name."""
    from eval.gate import GATE_FILE, GateError, load_gates

    try:
        return load_gates(path or GATE_FILE)
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


def _select(questions: list, qtype: list[str] | None, qid: list[str] | None, limit: int | None) -> list:
    from eval.dataset import sample

    if qtype:
        questions = [q for q in questions if q.type in qtype]
    if qid:
        questions = [q for q in questions if q.id in qid]
    return sample(questions, limit)


def _run(console: "Console", load, file: Path | None, split: str, config: str, limit: int | None,
         qtype: list[str] | None, qid: list[str] | None, label: str | None, show_progress: bool,
         gates: dict | None = None, set_name: str | None = None,
         gate_label: str = "eval/quality_gate.toml") -> list["EvalRun"]:
    """One run per set (one run for a FILE). Everything that can be wrong with the selection is said before the
    model loads."""
    from rich.markup import escape

    from eval.configs import describe_settings
    from eval.dataset import DEFAULT_SET, DatasetError, describe, load_questions, resolve_sets
    from eval.gate import GateError, gate_for_set
    from eval.metrics import QUESTION_TYPES

    if split not in ("dev", "test", "all") and file is None:
        raise _fail(console, f"--split must be dev, test or all (got {split!r}).")
    bad = [t for t in qtype or [] if t not in QUESTION_TYPES]
    if bad:
        raise _fail(console, f"Unknown --type {', '.join(bad)}; types are {', '.join(QUESTION_TYPES)}.")
    try:
        if file is not None:
            plan = [(None, _select(load_questions(file, split=split), qtype, qid, limit))]
        else:
            plan = [(s, _select(s.questions(split), qtype, qid, limit))
                    for s in resolve_sets(set_name or DEFAULT_SET)]
    except DatasetError as exc:
        raise _fail(console, str(exc)) from None
    if qid:
        missing = set(qid) - {q.id for _, qs in plan for q in qs}
        if missing:
            raise _fail(console, f"No question with id {', '.join(sorted(missing))} in the selection.")
    if len(plan) > 1 and (qtype or qid or limit):  # a set with nothing left is skipped, not an error
        plan = [(s, qs) for s, qs in plan if qs]
    if not plan or not all(qs for _, qs in plan):
        raise _fail(console, "No questions left to evaluate after filtering.")
    if gates is not None:  # say so now, not after a run that cannot be compared
        for s, qs in plan:
            try:
                gate = gate_for_set(gates, s.name if s else DEFAULT_SET, gate_label)
            except GateError as exc:
                raise _fail(console, str(exc)) from None
            if gate.questions is not None:
                n = sum(1 for q in qs if q.split == gate.split)
                if n != gate.questions:
                    where = f"set {s.name}" if s else str(file)
                    raise _fail(console, f"--check compares the {gate.questions} questions of the {gate.split} "
                                         f"split of {gate.source} with {where}; this selection has {n} of them. "
                                         f"Run `rag eval --set {s.name if s else DEFAULT_SET} --split "
                                         f"{gate.split} --check` without --limit, --type or --id.")
    settings, config_name = _settings_for(console, load, config)
    console.print(f"[dim]{escape(describe_settings(settings))}[/]")

    from rag import RAG, RagError
    from eval.runner import rag_for_set

    runs: list["EvalRun"] = []
    rag = None
    for s, questions in plan:
        dataset = str(file) if file else f"{s.name} set ({split})"
        console.print(f"[bold]rag eval[/] · {escape(config_name)} · {describe(questions)} · {escape(dataset)}"
                      + (f" · [dim]{escape(s.title)}[/]" if s else ""))
        try:
            with console.status("Loading the embedding model and the index (the first run builds it)…"):
                rag = RAG.from_settings(settings) if s is None else rag_for_set(s, settings, rag)
        except (RagError, OSError, RuntimeError, ValueError) as exc:
            raise _fail(console, f"Cannot start the pipeline: {exc}") from None
        runs.append(_evaluate(console, rag, questions, settings, config_name, label or config_name, dataset,
                              show_progress))
    return runs


def _evaluate(console: "Console", rag, questions: list, settings, config_name: str, run_label: str, dataset: str,
              show_progress: bool) -> "EvalRun":
    from rag import RagError
    from eval.runner import run_eval

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

                return run_eval(rag, questions, progress=on_progress, settings=settings, label=run_label,
                                config=config_name, dataset=dataset)
        return run_eval(rag, questions, settings=settings, label=run_label, config=config_name, dataset=dataset)
    except RagError as exc:  # BackendError: the LLM is unreachable or cannot load; every question would fail
        raise _fail(console, str(exc)) from None


# The headline numbers compared across sets (the targets, the refusal kinds and the warm latency).
def _summary_metrics():
    from eval.metrics import (CITATION_PRECISION, CORRECT_REFUSAL_RATE, FALSE_REFUSAL_RATE, KEY_ACCURACY,
                              LATENCY_TOTAL_MEDIAN, NEAR_MISS_REFUSAL_RATE, OFF_TOPIC_REFUSAL_RATE, RECALL_1000C)

    return (RECALL_1000C, KEY_ACCURACY, CITATION_PRECISION, CORRECT_REFUSAL_RATE, OFF_TOPIC_REFUSAL_RATE,
            NEAR_MISS_REFUSAL_RATE, FALSE_REFUSAL_RATE, LATENCY_TOTAL_MEDIAN)


def sets_summary_rows(runs: list["EvalRun"]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): one column per set, on the split the targets are read from (test when run), so a
    number that only one document holds up shows at a glance. Pure: reads the runs' metrics."""
    from eval.metrics import TARGETS, format_value, target_group

    targets = {t.metric.key: t for t in TARGETS}
    names = [run.meta.get("set") or run.label for run in runs]
    groups = [target_group(run.metrics) for run in runs]
    headers = ["Metric", *[f"{n} ({g})" for n, g in zip(names, groups)], "Target"]
    rows = [["questions", *[str(run.metrics["groups"][g]["n"]) for run, g in zip(runs, groups)], ""]]
    for spec in _summary_metrics():
        target = targets.get(spec.key)
        cells = []
        for run, g in zip(runs, groups):
            value = run.metrics["groups"][g].get(spec.key)
            cell = format_value(value, spec.kind)
            if target is not None and target.met(value) is not None:
                cell += " ✓" if target.met(value) else " ✗"
            cells.append(cell)
        rows.append([spec.label, *cells, target.describe() if target else ""])
    return headers, rows


def print_sets_summary(runs: list["EvalRun"], console: "Console") -> None:
    from rich.markup import escape
    from rich.table import Table

    headers, rows = sets_summary_rows(runs)
    table = Table(title="Per set (targets are read on the test split)", title_justify="left")
    for i, h in enumerate(headers):
        table.add_column(escape(h), justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[escape(c) for c in row])
    console.print(table)


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
    where = f" on the {run.meta['set']} set" if run.meta.get("set") else ""
    table = Table(title=f"{escape(run.label)}{escape(where)}: {len(run.records)} questions, "
                        f"{run.meta.get('duration_s', '?')} s", title_justify="left")
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
                  caption="Refused: share refused — right for unanswerable (off-topic), nearmiss and adversarial, "
                          "wrong for the others",
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
