"""The Gradio app: layout and event wiring only (rendering is in `ui.render`, answering in `ui.chat`, upload
reports in `ui.documents`, the RAG of each session configuration in `ui.engines`, document sets and stored uploads
in `rag.docsets`).

`build_app()` constructs the Blocks without launching it, so tests can start it on a free port; `launch()` is
what `rag chat` runs. The RAG (embedding model + index) is created once per process and shared by every session;
each browser session keeps its own conversation and settings in gr.State.

API: `/ask` (see ui/README_SECTION.md) answers one question and returns `Answer.to_dict()`; its history is parsed
once, into `rag.types.Turn`s, each capped at the question limit (`answer.max_question_chars`).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

import gradio as gr

from rag import RAG, RagError, Settings
from rag.types import Turn
from ui import render
from ui.chat import EXAMPLES, Session, respond, sources_for_message
from ui.documents import CURRENT_SET, NEW_SET, add_documents
from ui.engines import DEFAULT_SET, ChatConfig, Engines
from ui.evaluation import build_eval_tab

log = logging.getLogger(__name__)

TITLE = "Ask the documents"
ANSWERING = "answering"
INTRO = ("Answers come only from the indexed documents. Every claim carries a numbered citation: click it to see "
         "the passage, with the supporting sentences highlighted. If the documents don't say, you get a refusal, "
         "not a guess.")


def status_line(engines: Engines, config: ChatConfig) -> str:
    """The line above the chat: which generator answers, over which documents, with what retrieval budget."""
    try:
        rag = engines.rag(config)
        docs = rag.documents()
        chunks = sum(d.chunks for d in docs)
        where = render.md_escape(render.cap(engines.set_label(config.set)))
        return (f"**Generator:** `{rag.backend}` · **Documents:** {where} ("
                f"{render.plural(len(docs), 'document')}, {render.plural(chunks, 'chunk')}) · "
                f"**Retrieval:** top {config.k} passages, ≤ {config.budget:,} characters")
    except Exception as exc:  # the status line must render even when a set cannot be opened
        log.warning("Status line failed: %s", exc)
        return f"**Cannot use these settings:** {render.md_escape(str(exc))}"


def documents_md(engines: Engines, config: ChatConfig) -> str:
    try:
        return render.documents_markdown(engines.sets.documents(config.set), engines.set_label(config.set))
    except Exception as exc:
        return f"**Cannot use these settings:** {render.md_escape(str(exc))}"


def chat_look(engines: Engines, config: ChatConfig) -> dict:
    """Example questions only where they can be answered: on a set that holds the bundled essay."""
    try:
        essay = engines.sets.holds_bundled_essay(config.set)
    except Exception:
        essay = False
    if essay:
        return {"examples": [{"text": q} for q in EXAMPLES],
                "placeholder": "**Ask about the documents** — or start with one of these questions:"}
    return {"examples": None,
            "placeholder": f"**Ask about the documents in {render.md_escape(engines.set_label(config.set))}.**"}


def guarded(outputs: int):
    """Wrap a handler so a failure becomes a readable toast and leaves its `outputs` outputs as they are, never a
    traceback in the page. (functools.wraps keeps the signature Gradio inspects for SelectData and Progress.)"""

    def wrap(fn):
        @functools.wraps(fn)
        def handler(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                log.exception("UI handler %s failed", fn.__name__)
                message = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
                gr.Warning(f"That did not work: {message}")
                skips = tuple(gr.skip() for _ in range(outputs))
                return skips[0] if outputs == 1 else skips

        return handler

    return wrap


def _parse_history(history: Any, max_chars: int | None = None) -> list[Turn]:
    """API history: a JSON string, or a list of {"role": "user"|"assistant", "content": str} (each turn capped at
    `max_chars`). What is wrong with it becomes a readable gr.Error."""
    if isinstance(history, str):
        try:
            history = json.loads(history) if history.strip() else []
        except json.JSONDecodeError as exc:
            raise gr.Error(f"history must be JSON: a list of {{\"role\", \"content\"}} objects ({exc.msg}).")
    try:
        return Turn.parse_history(history, max_chars=max_chars)
    except ValueError as exc:
        raise gr.Error(str(exc).rstrip(".") + ".") from None


def build_app(settings: Settings, rag: RAG | None = None) -> gr.Blocks:
    """The chat UI and the `/ask` API over `rag` (created from `settings` when not given)."""
    rag = rag or RAG.from_settings(settings)
    engines = Engines(settings, rag)
    start = engines.default_config()

    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:  # no calls home
        session = gr.State(Session())
        config = gr.State(start)

        gr.Markdown(f"# {TITLE}\n{INTRO}")
        status = gr.Markdown(status_line(engines, start), elem_id="status-line")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat-tab", elem_id="chat-tab"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=420):
                        chatbot = gr.Chatbot(value=[], label="Conversation", elem_id="chat", height=560, autoscroll=True,
                                             buttons=["copy"], **chat_look(engines, start))
                        with gr.Row(equal_height=True):
                            question = gr.Textbox(placeholder="Ask a question about the documents…", show_label=False,
                                                  container=False, scale=6, max_lines=5, autofocus=True,
                                                  elem_id="question")
                            ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                            new_chat = gr.Button("New chat", variant="secondary", scale=1, min_width=120, elem_id="new-chat")

                    with gr.Column(scale=2, min_width=360):
                        sources = gr.HTML(render.empty_panel(), css_template=render.PANEL_CSS, elem_id="sources",
                                          max_height=760, container=True, padding=True)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=360):
                        with gr.Accordion("Settings: documents, generator, retrieval", open=False, elem_id="settings"):
                            set_choice = gr.Dropdown(engines.set_choices(), value=start.set, label="Document set",
                                                     info="The default index, or a set you created by uploading.",
                                                     elem_id="set-choice")
                            generator = gr.Radio(engines.generator_choices(), value=start.generator, label="Answer generator",
                                                 info="The LLM option appears when settings configure one (llm.backend).",
                                                 elem_id="generator")
                            with gr.Row():
                                k = gr.Slider(1, 20, value=start.k, step=1, label="Passages given to the generator (k)",
                                              elem_id="k")
                                budget = gr.Slider(500, 10000, value=start.budget, step=100,
                                                   label="Context budget (characters)", elem_id="budget")

                    with gr.Column(scale=1, min_width=360):
                        with gr.Accordion("Add your own documents", open=False, elem_id="upload"):
                            gr.Markdown(f"Text, Markdown, HTML or PDF, up to {settings.ui.max_upload_mb:g} MB each. Files "
                                        "are indexed into the chosen set; then ask about them in the chat.")
                            files = gr.File(label="Files", file_count="multiple", type="filepath", height=140,
                                            elem_id="upload-files")
                            with gr.Row():
                                target = gr.Radio([CURRENT_SET, NEW_SET], value=CURRENT_SET, label="Add to",
                                                  elem_id="upload-target")
                                new_name = gr.Textbox(label="New set name", placeholder="e.g. my-notes",
                                                      elem_id="new-set-name")
                            add = gr.Button("Add to index", variant="primary", elem_id="add-files")
                            upload_status = gr.Markdown(elem_id="upload-status")
                            documents = gr.Markdown(documents_md(engines, start), elem_id="documents")
            with gr.Tab("Evaluation", id="eval-tab", elem_id="eval-tab"):
                build_eval_tab(engines, config, guarded, ANSWERING)

        # -- chat ----------------------------------------------------------------------------------------------
        def on_ask(text: str, state: Session, cfg: ChatConfig):
            yield from respond(engines, text, state, cfg)

        # All answering (chat, examples, API) shares one concurrency group: at most ui.concurrency_limit at once.
        chat_io = dict(fn=on_ask, inputs=[question, session, config], outputs=[chatbot, sources, question, session],
                       api_visibility="private", show_progress="minimal", concurrency_id=ANSWERING)
        # One event for Enter and the button, so a session never answers two questions at once.
        gr.on([question.submit, ask.click], api_name="chat", **chat_io)

        @guarded(1)
        def on_example(evt: gr.SelectData) -> str:
            value = evt.value if isinstance(evt.value, dict) else {}
            return str(value.get("text", ""))

        chatbot.example_select(on_example, None, question, api_name="example", api_visibility="private").then(
            api_name="chat_example", **chat_io)

        @guarded(4)
        def on_new_chat():
            fresh = Session()
            return fresh.messages, render.empty_panel(), "", fresh

        new_chat.click(on_new_chat, None, [chatbot, sources, question, session], api_name="new_chat",
                       api_visibility="private")

        @guarded(1)
        def on_select(evt: gr.SelectData, state: Session):
            index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
            panel = sources_for_message(state, index)
            return panel if panel is not None else gr.skip()

        chatbot.select(on_select, [session], sources, api_name="show_sources", api_visibility="private")

        # -- settings ------------------------------------------------------------------------------------------
        @guarded(4)
        def on_settings(set_key: str, gen: str, k_value: float, budget_value: float, cfg: ChatConfig):
            new = ChatConfig(set_key or DEFAULT_SET, gen if gen in ("extractive", "llm") else cfg.generator,
                             int(k_value), int(budget_value))
            look = gr.Chatbot(**chat_look(engines, new))
            return new, status_line(engines, new), documents_md(engines, new), look

        settings_io = dict(fn=on_settings, inputs=[set_choice, generator, k, budget, config],
                           outputs=[config, status, documents, chatbot], api_visibility="private")
        set_choice.change(api_name="set_change", **settings_io)
        generator.change(api_name="generator_change", **settings_io)
        k.release(api_name="k_change", **settings_io)
        budget.release(api_name="budget_change", **settings_io)

        # -- uploads -------------------------------------------------------------------------------------------
        @guarded(7)
        def on_add(paths: list[str] | None, where: str, name: str, cfg: ChatConfig, progress=gr.Progress()):
            result = add_documents(engines, paths, where, name, cfg,
                                   lambda frac, desc: progress(frac, desc=desc))
            if result.problems:
                gr.Warning("Some files were not added: " + "; ".join(p.replace("**", "") for p in result.problems))
            return (result.message, result.config, gr.update(choices=engines.set_choices(), value=result.config.set),
                    status_line(engines, result.config), documents_md(engines, result.config),
                    None if result.added else gr.skip(), gr.Chatbot(**chat_look(engines, result.config)))

        add.click(on_add, [files, target, new_name, config],
                  [upload_status, config, set_choice, status, documents, files, chatbot],
                  api_name="add_documents", api_visibility="private", show_progress="full",
                  show_progress_on=[upload_status])

        # -- API -----------------------------------------------------------------------------------------------
        def ask_api(question: str, history: str = "", document_set: str = "") -> dict:
            """Answer `question` from the documents; returns Answer.to_dict() (answer, refused, citations with
            highlights, passages, timings). `history`: optional JSON list of {"role", "content"} turns for
            follow-ups. `document_set`: optional name of an uploaded set (default: the default index)."""
            turns = _parse_history(history, settings.answer.max_question_chars)
            cfg = engines.default_config()
            if document_set:
                cfg = ChatConfig(document_set, cfg.generator, cfg.k, cfg.budget)
            try:
                return engines.rag(cfg).ask(question or "", turns).to_dict()
            except (RagError, OSError) as exc:
                raise gr.Error(str(exc)) from None
            except Exception as exc:
                log.exception("API /ask failed")
                raise gr.Error(f"Answering failed ({type(exc).__name__}: {exc}).") from None

        gr.api(ask_api, api_name="ask", concurrency_id=ANSWERING)

    demo.queue(default_concurrency_limit=settings.ui.concurrency_limit)
    return demo


def launch_options(settings: Settings) -> dict:
    """The launch() arguments that come from settings.ui (besides host, port and share)."""
    auth = []
    for entry in settings.ui.auth:
        user, sep, password = entry.partition(":")
        if not sep or not user or not password:
            raise RagError(f"ui.auth entry {entry!r} must look like 'user:password'.")
        auth.append((user, password))
    return {
        "auth": auth or None,
        "max_file_size": int(settings.ui.max_upload_mb * 1_000_000),
        "theme": gr.themes.Soft(),
        "footer_links": ["api", "gradio"],
    }


def launch(settings: Settings, rag: RAG | None = None, **overrides: Any) -> gr.Blocks:
    """Build and serve the app. `overrides`: host, port, share, or any gr.Blocks.launch() argument."""
    host = overrides.pop("host", None) or settings.ui.host
    port = overrides.pop("port", None) or settings.ui.port
    share = overrides.pop("share", None)
    share = settings.ui.share if share is None else share
    options = launch_options(settings)
    if share and not options["auth"]:
        log.warning("Sharing a public link without ui.auth: anyone with the link can use the app and upload files.")
    demo = build_app(settings, rag)
    demo.launch(server_name=host, server_port=port, share=share, **{**options, **overrides})
    return demo
