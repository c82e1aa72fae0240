"""`rag chat`: serve the web UI. Registered through the "rag.commands" entry-point group (chat = "ui.cli:register")."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from rag import Settings


def register(app: typer.Typer, load: Callable[[typer.Context], "Settings"]) -> None:
    """Add the `chat` command to the `rag` Typer app; `load(ctx)` returns the settings (TOML + environment +
    the global options of this invocation)."""

    @app.command("chat")
    def chat(
        ctx: typer.Context,
        host: Annotated[Optional[str], typer.Option("--host", help="Interface to bind (default: ui.host, "
                                                    "127.0.0.1).")] = None,
        port: Annotated[Optional[int], typer.Option("--port", help="Port (default: ui.port, 7860).")] = None,
        share: Annotated[Optional[bool], typer.Option("--share/--no-share", help="Also open a public Gradio link "
                                                      "(default: ui.share, off). Set ui.auth first.")] = None,
        insecure_no_auth: Annotated[bool, typer.Option(
            "--insecure-no-auth", help="Serve beyond this machine (a --host other than loopback, or --share) "
                                       "without ui.auth. Anyone who reaches it can read the documents and upload "
                                       "files.")] = False,
        llm: Annotated[Optional[str], typer.Option(help="The LLM the generator picker offers: openai | "
                                                   "openai-compatible | ollama | llamacpp | hf.")] = None,
        model: Annotated[Optional[str], typer.Option(help="Model name for the LLM backend.")] = None,
        base_url: Annotated[Optional[str], typer.Option(help="Server URL (openai-compatible, ollama).")] = None,
        model_path: Annotated[Optional[str], typer.Option(help="GGUF file for llamacpp, or 'smollm2' / "
                                                          "'qwen'.")] = None,
        mode: Annotated[Optional[str], typer.Option(help="LLM writer mode: compose (phrase the selected "
                                                    "evidence, the default) or read.")] = None,
    ) -> None:
        """Chat with the documents in the browser: streamed answers, highlighted sources, uploads.

        Only 127.0.0.1 without a login: another --host or --share needs ui.auth (or --insecure-no-auth)."""
        from rich.console import Console
        from rich.markup import escape

        err = Console(stderr=True)
        settings = load(ctx)
        changes = {k: v for k, v in {"backend": llm, "model": model, "base_url": base_url,
                                     "model_path": model_path, "mode": mode}.items() if v is not None}
        try:
            if changes:
                settings = settings.updated(llm=changes)
        except ValueError as exc:
            err.print(f"[red]Error:[/red] invalid LLM option: {escape(str(exc).splitlines()[0])} "
                      f"({escape('; '.join(str(exc).splitlines()[1:3]).strip())})", highlight=False)
            raise typer.Exit(2)
        try:
            from rag import IndexStoreError, ModelLoadError, RagError
            from ui.app import launch

            def warn(message: str) -> None:
                err.print(f"[bold red]WARNING:[/bold red] {escape(message)}", highlight=False)

            launch(settings, host=host, port=port, share=share, insecure_no_auth=insecure_no_auth, warn=warn)
        except (RagError, ModelLoadError) as exc:
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2)
        except IndexStoreError as exc:  # a damaged or locked index: its message names the file and the fix
            err.print(f"[red]Error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1)
        except OSError as exc:  # e.g. the port is taken
            err.print(f"[red]Error:[/red] cannot start the server: {escape(str(exc))}. Try another --port.",
                      highlight=False)
            raise typer.Exit(2)
