"""The Gradio app: layout and event wiring only (rendering is in `ui.render`, answering and opening documents in
`ui.chat`, the document viewer in `ui.viewer`, the page's CSS and script in `ui.assets`, upload reports in
`ui.documents`, the RAG of each session configuration in `ui.engines`, document sets and stored uploads in
`rag.docsets`).

One reset: "New chat" and the Chatbot's own Clear (trash) run the same handler, which replaces the whole session
(messages, answers and the follow-up history) and empties the sources and the viewer; before, Clear emptied only
the messages and the next question still carried the cleared conversation as follow-up context. The viewer is
opened by the page script through a hidden textbox and button (`open_document`, not queued: it only reads memory,
so it never waits behind answers being written).

`build_app()` constructs the Blocks without launching it, so tests can start it on a free port; `launch()` is
what `rag chat` runs. The RAG (embedding model + index) is created once per process and shared by every session;
each browser session keeps its own conversation and settings in gr.State.

API: `/ask` (see ui/README_SECTION.md) answers one question and returns `Answer.to_dict()`. Its arguments are
checked here, each wrong one a readable gr.Error naming it; the question is cut to the question limit
(`answer.max_question_chars`) before anything reads it, and the history is parsed once, into the newest
`answer.max_history_turns` `rag.types.Turn`s, each cut to the same limit, so the cost of a call is bounded.

Serving: `launch()` refuses to serve beyond this machine (a non-loopback host, or a share link) without a login
unless told `insecure_no_auth`; logins are checked in constant time and failed ones are throttled per client
address (`LoginThrottle`, an ASGI middleware on Gradio's `/login`, because Gradio's auth callable is given only the
username and password, never the request).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import inspect
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from rag import RAG, IndexStoreError, RagError, Settings
from rag.types import Turn
from ui import assets, render
from ui.chat import EXAMPLES, Session, clip_question, open_document, respond, sources_for_message, with_note
from ui.documents import CURRENT_SET, NEW_SET, add_documents
from ui.engines import DEFAULT_SET, ChatConfig, Engines
from ui.evaluation import build_eval_tab

log = logging.getLogger(__name__)

TITLE = "Ask the documents"
ANSWERING = "answering"
INTRO = ("Answers come only from the documents. Every claim carries a numbered citation: point at it for the quote, "
         "click it to open the whole document at that spot. If the documents don't say, you get “Not answered”, "
         "not a guess.")
# Shown only on phones (<= 480 px, see ui.assets): the chat and its sources as two tabs of one pane.
PANE_TABS = ('<div role="tablist" aria-label="Chat or sources">'
             '<button type="button" role="tab" data-pane-target="chat" aria-selected="true">Chat</button>'
             '<button type="button" role="tab" data-pane-target="sources" aria-selected="false">Sources</button>'
             "</div>")


def titles_phrase(docs, limit: int = 3) -> str:
    """The documents named by title, for the first thing a reader sees: “A”, “B” and 3 more."""
    titles = list(dict.fromkeys(d.title for d in docs))
    named = ", ".join(f"“{render.md_escape(t)}”" for t in titles[:limit])
    return named + (f" and {len(titles) - limit} more" if len(titles) > limit else "")


def status_line(engines: Engines, config: ChatConfig) -> str:
    """The line above the chat, in plain words: which documents (by title) and who writes the answers."""
    try:
        rag = engines.rag(config)
        docs = rag.documents()
        where = render.md_escape(engines.set_label(config.set))
        writer = ("quoted word for word from the documents (extractive, no AI model)"
                  if config.generator == "extractive" or not engines.llm_configured
                  else f"written by a language model (`{rag.backend}`), checked against the documents")
        named = titles_phrase(docs) if docs else "none yet: add your own under “Add your own documents”"
        return (f"**Documents** ({where}, {render.plural(len(docs), 'document')}): {named} · "
                f"**Answers:** {writer}")
    except Exception as exc:  # the status line must render even when a set cannot be opened
        log.warning("Status line failed: %s", exc)
        return f"**Cannot use these settings:** {render.md_escape(str(exc))}"


def documents_md(engines: Engines, config: ChatConfig) -> str:
    try:
        return render.documents_markdown(engines.sets.documents(config.set), engines.set_label(config.set))
    except Exception as exc:
        return f"**Cannot use these settings:** {render.md_escape(str(exc))}"


def chat_look(engines: Engines, config: ChatConfig) -> dict:
    """The empty chat names the documents by title; example questions only where they can be answered (on a set
    that holds the bundled essay)."""
    try:
        essay = engines.sets.holds_bundled_essay(config.set)
        docs = engines.sets.documents(config.set)
    except Exception:
        essay, docs = False, []
    about = f"**Ask about {titles_phrase(docs)}.**" if docs else \
        f"**Ask about the documents in {render.md_escape(engines.set_label(config.set))}.**"
    if essay:
        return {"examples": [{"text": q} for q in EXAMPLES], "placeholder": f"{about} Or try one of these:"}
    return {"examples": None, "placeholder": about}


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
                known = isinstance(exc, (RagError, IndexStoreError))
                message = str(exc) if known else f"{type(exc).__name__}: {exc}"
                gr.Warning(f"That did not work: {message}")
                skips = tuple(gr.skip() for _ in range(outputs))
                return skips[0] if outputs == 1 else skips

        return handler

    return wrap


# -- the /ask API's arguments ------------------------------------------------------------------------------------------
HISTORY_SHAPE = 'a JSON string holding a list of {"role": "user" | "assistant", "content": "..."} objects'


def _kind(value: Any) -> str:
    """How a JSON value's type is named in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return f"a {type(value).__name__}"


def _api_question(question: Any, max_chars: int) -> tuple[str, str | None]:
    """The question argument, checked and cut to the question limit (with the note saying so)."""
    if question is None:
        raise gr.Error("question is missing: /ask needs the question as a string, its first argument.")
    if not isinstance(question, str):
        raise gr.Error(f"question must be a string (the text of the question), not {_kind(question)}.")
    return clip_question(question, max_chars)


def _api_document_set(document_set: Any) -> str:
    if document_set is None:
        return ""
    if not isinstance(document_set, str):
        raise gr.Error(f"document_set must be a string (the name of a document set, or \"\" for the default "
                       f"index), not {_kind(document_set)}.")
    return document_set.strip()


def _parse_history(history: Any, max_chars: int | None = None, max_turns: int | None = None) -> list[Turn]:
    """API history: a JSON string, or a list of {"role": "user"|"assistant", "content": str}. Only the newest
    `max_turns` turns are read (older ones are dropped unread) and each is cut to `max_chars`. What is wrong with it
    becomes a readable gr.Error naming the argument."""
    if history is None:
        return []
    if isinstance(history, str):
        try:
            history = json.loads(history) if history.strip() else []
        except RecursionError:
            raise gr.Error(f"history is nested too deeply: expected {HISTORY_SHAPE}.") from None
        except json.JSONDecodeError as exc:
            raise gr.Error(f"history must be JSON: a list of {{\"role\", \"content\"}} objects ({exc.msg}).") \
                from None
        except ValueError as exc:  # e.g. an integer with more digits than Python converts
            raise gr.Error(f"history is not usable JSON ({exc}): expected {HISTORY_SHAPE}.") from None
    elif not isinstance(history, (list, tuple)):
        raise gr.Error(f"history must be {HISTORY_SHAPE}, not {_kind(history)}.")
    try:
        return Turn.parse_history(history, max_chars=max_chars, max_turns=max_turns)
    except RecursionError:
        raise gr.Error(f"history is nested too deeply: expected {HISTORY_SHAPE}.") from None
    except ValueError as exc:  # items are numbered from the start of what was sent
        raise gr.Error(str(exc).rstrip(".") + ".") from None


def standalone_limit(max_question_chars: int) -> int:
    """The longest `standalone_question` /ask returns: a follow-up carries at most the previous question along
    (`rag.followup`), each within the question limit."""
    return 2 * max_question_chars + 32


def bounded_result(result: dict, max_question_chars: int) -> dict:
    """`Answer.to_dict()` with its free-text fields held to their limits, whatever a condenser returned: the
    response of one call stays bounded (the passages are bounded by k and the context budget, the answer by the
    generator's sentence or token limit)."""
    limit = standalone_limit(max_question_chars)
    standalone = result.get("standalone_question") or ""
    if len(standalone) > limit:
        result["standalone_question"] = standalone[:limit - 1] + "…"
    question = result.get("question") or ""
    if len(question) > max_question_chars:
        result["question"] = question[:max_question_chars - 1] + "…"
    return result


_ANNOTATION_WORDS = {"str": "a string", str(str): "a string"}


class ChatBlocks(gr.Blocks):
    """gr.Blocks whose API endpoints answer a call with too few arguments readably. Gradio fills the defaults of
    the Python client's calls, but a raw call (`{"data": []}`) fails before the function runs, with
    `{"error": null}`; here the optional arguments get their defaults and a missing required one is a gr.Error
    naming it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_signatures: dict[str, inspect.Signature] = {}

    def validate_inputs(self, block_fn, inputs: list[Any]) -> None:
        signature = self.api_signatures.get(getattr(block_fn, "api_name", None) or "")
        if signature is not None and len(inputs) < len(signature.parameters):
            params = list(signature.parameters.values())
            missing = [p for p in params[len(inputs):] if p.default is inspect.Parameter.empty]
            if missing:
                wanted = ", ".join(p.name for p in params)
                needs = " and ".join(f"{p.name} ({_ANNOTATION_WORDS.get(str(p.annotation), p.annotation)})"
                                     for p in missing)
                verb = "is" if len(missing) == 1 else "are"
                raise gr.Error(f"{' and '.join(p.name for p in missing)} {verb} missing: /{block_fn.api_name} "
                               f"takes ({wanted}) and needs {needs}.")
            inputs.extend(p.default for p in params[len(inputs):])
        super().validate_inputs(block_fn, inputs)


def build_app(settings: Settings, rag: RAG | None = None) -> gr.Blocks:
    """The chat UI and the `/ask` API over `rag` (created from `settings` when not given)."""
    rag = rag or RAG.from_settings(settings)
    engines = Engines(settings, rag)
    start = engines.default_config()

    with ChatBlocks(title=TITLE, analytics_enabled=False) as demo:  # no calls home
        session = gr.State(Session())
        config = gr.State(start)

        gr.Markdown(f"# {TITLE}\n{INTRO}", elem_id="intro")
        status = gr.Markdown(status_line(engines, start), elem_id="status-line")
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat-tab", elem_id="chat-tab"):
                gr.HTML(PANE_TABS, elem_id="pane-tabs", padding=False)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=420, elem_id="chat-col"):
                        chatbot = gr.Chatbot(value=[], label="Conversation", show_label=False, elem_id="chat",
                                             height=560, autoscroll=True, buttons=["copy"],
                                             **chat_look(engines, start))
                        with gr.Row(equal_height=True):
                            question = gr.Textbox(placeholder="Ask a question…", label="Your question",
                                                  show_label=False, container=False, scale=6, max_lines=5,
                                                  elem_id="question")
                            ask = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                            new_chat = gr.Button("New chat", variant="secondary", scale=1, min_width=120,
                                                 elem_id="new-chat")

                    with gr.Column(scale=2, min_width=360, elem_id="sources-col"):
                        sources = gr.HTML(render.empty_panel(), css_template=render.PANEL_CSS, elem_id="sources",
                                          max_height=760, container=True, padding=True)
                        # The viewer's box never changes on the server: the page script fills #viewer-body with the
                        # rendering that arrives in the hidden #viewer-data (see on_open below for why).
                        gr.HTML('<div id="viewer-body"></div>', elem_id="viewer", container=True, padding=True)
                        viewer_data = gr.Textbox(visible="hidden", elem_id="viewer-data", label="Viewer data")
                        # The page script's way to a handler: it writes the request here and clicks the button.
                        viewer_request = gr.Textbox(visible="hidden", elem_id="viewer-request",
                                                    label="Viewer request")
                        viewer_open = gr.Button("Open", visible="hidden", elem_id="viewer-open")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300):
                        with gr.Accordion("Documents", open=False, elem_id="documents-panel"):
                            set_choice = gr.Dropdown(engines.set_choices(), value=start.set, label="Document set",
                                                     info="The default documents, or a set you created by "
                                                          "uploading.", elem_id="set-choice")
                            documents = gr.Markdown(documents_md(engines, start), elem_id="documents")
                    with gr.Column(scale=1, min_width=300):
                        with gr.Accordion("Add your own documents", open=False, elem_id="upload"):
                            gr.Markdown(f"Text, Markdown, HTML or PDF, up to {settings.ui.max_upload_mb:g} MB each. "
                                        "Files are added to the chosen set; then ask about them in the chat.")
                            files = gr.File(label="Files", file_count="multiple", type="filepath", height=140,
                                            elem_id="upload-files")
                            with gr.Row():
                                target = gr.Radio([CURRENT_SET, NEW_SET], value=CURRENT_SET, label="Add to",
                                                  elem_id="upload-target")
                                new_name = gr.Textbox(label="New set name", placeholder="e.g. my-notes",
                                                      elem_id="new-set-name")
                            add = gr.Button("Add to index", variant="primary", elem_id="add-files")
                            upload_status = gr.Markdown(elem_id="upload-status")
                    with gr.Column(scale=1, min_width=300):
                        with gr.Accordion("Advanced", open=False, elem_id="settings"):
                            generator = gr.Radio(engines.generator_choices(), value=start.generator,
                                                 label="Who writes the answer",
                                                 info="Quoting needs no AI model; a language model appears here "
                                                      "when one is configured.", elem_id="generator")
                            k = gr.Slider(1, 20, value=start.k, step=1, label="How many passages to read (k)",
                                          elem_id="k")
                            budget = gr.Slider(500, 10000, value=start.budget, step=100,
                                               label="How much text to read (characters, the context budget)",
                                               elem_id="budget")
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

        @guarded(5)
        def on_new_chat():
            """The one reset: the chat, the sources panel, the viewer and the follow-up context (the session's
            history) all start over, whichever control asked for it."""
            fresh = Session()
            return fresh.messages, render.empty_panel(), "", fresh, ""

        reset_io = dict(fn=on_new_chat, inputs=None, outputs=[chatbot, sources, question, session, viewer_data],
                        api_visibility="private")
        new_chat.click(api_name="new_chat", **reset_io)
        chatbot.clear(api_name="clear_chat", **reset_io)  # Gradio's trash button does exactly the same

        @guarded(2)
        def on_open(request: str, state: Session):
            html_out, panel = open_document(engines, state, request)
            return html_out, panel if panel is not None else gr.skip()

        # Not queued: opening a document must not wait behind answers being written (it reads memory only).
        # The rendering goes to a hidden textbox and the page script puts it in place, not through gr.HTML: Gradio's
        # HTML component updates by parsing the new HTML and diffing it node by node against the old, which for a
        # 1 MB document took 300–500 ms per open in headless Chromium (the first open 170 ms); set directly it is
        # parsed once.
        viewer_open.click(on_open, [viewer_request, session], [viewer_data, sources], api_name="open_document",
                          api_visibility="private", queue=False, show_progress="hidden").then(
            None, [viewer_data], None, js="(html) => { window.ragUi && window.ragUi.show(html); }",
            api_visibility="private", queue=False, show_progress="hidden")

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
            if result.problems:  # (toasts sit at the bottom of the page, see ui.assets: never over the status)
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
            limits = settings.answer
            text, clipped = _api_question(question, limits.max_question_chars)
            turns = _parse_history(history, limits.max_question_chars, limits.max_history_turns)
            set_name = _api_document_set(document_set)
            cfg = engines.default_config()
            if set_name:
                cfg = ChatConfig(set_name, cfg.generator, cfg.k, cfg.budget)
            try:
                answer = with_note(engines.rag(cfg).ask(text, turns), clipped)
                return bounded_result(answer.to_dict(), limits.max_question_chars)
            except (RagError, OSError) as exc:
                raise gr.Error(str(exc)) from None
            except Exception as exc:
                log.exception("API /ask failed")
                raise gr.Error(f"Answering failed ({type(exc).__name__}: {exc}).") from None

        gr.api(ask_api, api_name="ask", concurrency_id=ANSWERING)
        demo.api_signatures["ask"] = inspect.signature(ask_api)

    demo.queue(default_concurrency_limit=settings.ui.concurrency_limit)
    return demo


# -- serving safely ---------------------------------------------------------------------------------------------------
MIN_PASSWORD_CHARS = 12


def parse_auth(entries: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """`ui.auth` entries as (user, password) pairs, plus warnings about weak passwords. A malformed entry is an
    error that names the entry by position, never by content (it may hold a password)."""
    pairs: list[tuple[str, str]] = []
    warnings: list[str] = []
    for i, entry in enumerate(entries, 1):
        user, sep, password = entry.partition(":")
        user = user.strip()  # Gradio strips the user name typed at the login
        if not sep or not user or not password:
            raise RagError(f"ui.auth entry {i} of {len(entries)} must look like 'user:password' (a user name, a colon, "
                           "a password).")
        if any(user == known for known, _ in pairs):
            raise RagError(f"ui.auth names the user {user!r} twice; give each user one password.")
        if len(password) < MIN_PASSWORD_CHARS:
            warnings.append(f"ui.auth: the password of user {user!r} is {render.plural(len(password), 'character')} "
                            f"long; use at least {MIN_PASSWORD_CHARS}. A login page on a network gets guessed at.")
        pairs.append((user, password))
    return pairs, warnings


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def credentials_checker(pairs: list[tuple[str, str]]) -> Callable[[str, str], bool]:
    """Gradio's `auth` callable: compares the user name and password against every configured pair in constant time
    (fixed-length digests, no early exit), so timing tells neither which users exist nor how much of a password
    matched. Only the digests are kept."""
    digests = [(_digest(user), _digest(password)) for user, password in pairs]

    def check(username: str, password: str) -> bool:
        user, secret = _digest(username or ""), _digest(password or "")
        ok = False
        for known_user, known_secret in digests:
            ok |= hmac.compare_digest(user, known_user) & hmac.compare_digest(secret, known_secret)
        return ok

    return check


@dataclass
class _Failures:
    count: int
    last: float
    until: float = 0.0


class LoginThrottle:
    """Failed logins per client: the first `free` failures within `window_s` cost nothing; from then on each failure
    locks that client out of the login for `base_s`, then twice as long, and so on up to `max_s`. A successful login
    clears the client. IPv6 clients are counted per /64 network (what one host usually holds), so hopping addresses
    inside it does not start over. At most `max_clients` clients are remembered (the stalest are forgotten first).
    Thread-safe."""

    def __init__(self, free: int = 5, base_s: float = 1.0, max_s: float = 300.0, window_s: float = 900.0,
                 max_clients: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free, self.base_s, self.max_s, self.window_s = free, base_s, max_s, window_s
        self.max_clients = max_clients
        self.clock = clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    @staticmethod
    def client_key(host: str | None) -> str:
        """The client a login counts against: its IPv4 address, its IPv6 /64, or the host string as given."""
        if not host:
            return "unknown"
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return host
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)

    def retry_after(self, key: str) -> float:
        """Seconds `key` must still wait before it may try to log in (0: it may now)."""
        with self._lock:
            record = self._failures.get(key)
            return max(0.0, record.until - self.clock()) if record else 0.0

    def failed(self, key: str) -> float:
        """Count a failed login of `key`; returns the lockout it now has (0 while its free tries last)."""
        now = self.clock()
        with self._lock:
            record = self._failures.get(key)
            if record is None or now - record.last > self.window_s:
                record = self._failures[key] = _Failures(0, now)
            record.count += 1
            record.last = now
            if record.count >= self.free:
                record.until = now + min(self.max_s, self.base_s * 2 ** (record.count - self.free))
            if len(self._failures) > self.max_clients:
                self._forget(now)
            return max(0.0, record.until - now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def failures(self, key: str) -> int:
        with self._lock:
            record = self._failures.get(key)
            return record.count if record else 0

    def _forget(self, now: float) -> None:
        """Drop expired clients, then the stalest, down to `max_clients` (called with the lock held)."""
        for key in [k for k, r in self._failures.items() if r.until <= now and now - r.last > self.window_s]:
            del self._failures[key]
        excess = len(self._failures) - self.max_clients
        if excess > 0:
            for key in sorted(self._failures, key=lambda k: self._failures[k].last)[:excess]:
                del self._failures[key]


def _is_login(scope: dict) -> bool:
    return (scope.get("type") == "http" and scope.get("method") == "POST"
            and (scope.get("path") or "").rstrip("/").endswith("/login"))


class LoginThrottleMiddleware:
    """ASGI middleware around Gradio's `POST /login`: a client that is locked out gets 429 (with Retry-After) and
    its password is not even checked; otherwise the login runs and its outcome (400 wrong credentials, 2xx right)
    is counted. One login at a time per client, so a burst of parallel guesses is counted guess by guess.

    Why a middleware: Gradio calls an `auth` callable with the user name and password only, never the request,
    so the callable cannot know who is guessing; the login route itself is Gradio's. The client is the TCP peer
    (`X-Forwarded-For` is not trusted: anyone can send it). Behind a proxy or a share link every client is the
    proxy, so a guesser then locks the login for everyone for a while: it fails closed."""

    WAIT_FOR_TURN_S = 10.0

    def __init__(self, app: Any, throttle: LoginThrottle) -> None:
        self.app = app
        self.throttle = throttle
        self._turns: dict[str, list] = {}  # client -> [asyncio.Lock, number of requests using it]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if not _is_login(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        key = self.throttle.client_key(client[0] if client else None)
        turn = self._turns.setdefault(key, [asyncio.Lock(), 0])
        turn[1] += 1
        try:
            try:
                await asyncio.wait_for(turn[0].acquire(), self.WAIT_FOR_TURN_S)
            except asyncio.TimeoutError:
                await self._refuse(send, self.WAIT_FOR_TURN_S, "Too many logins at once from your address")
                return
            try:
                await self._login(key, scope, receive, send)
            finally:
                turn[0].release()
        finally:
            turn[1] -= 1
            if turn[1] == 0:
                self._turns.pop(key, None)

    async def _login(self, key: str, scope: dict, receive: Any, send: Any) -> None:
        wait = self.throttle.retry_after(key)
        if wait > 0:
            await self._refuse(send, wait, "Too many failed logins from your address")
            return
        status = 0

        async def capture(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, capture)
        if status in (400, 401, 403):
            locked = self.throttle.failed(key)
            if locked:
                log.warning("Login locked for %s for %.0f s after %d failed attempts.", key, locked,
                            self.throttle.failures(key))
        elif 200 <= status < 400:
            self.throttle.succeeded(key)

    @staticmethod
    async def _refuse(send: Any, wait: float, why: str) -> None:
        seconds = max(1, int(wait + 0.999))
        body = json.dumps({"detail": f"{why}: try again in {seconds} s."}).encode()
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", b"application/json"), (b"retry-after", str(seconds).encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def is_loopback(host: str | None) -> bool:
    """Whether binding `host` keeps the server on this machine: 127.0.0.0/8, ::1 or localhost."""
    name = (host or "").strip().strip("[]").lower()
    if name.rstrip(".") == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another name may resolve to any interface
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


@dataclass(frozen=True)
class Exposure:
    """Who could reach the server, and what that means for starting it."""

    public: bool                    # reachable from other machines (a non-loopback host, or a share link)
    refusal: str | None = None      # why it must not start (None: it may)
    warnings: tuple[str, ...] = ()  # what to say loudly when it starts


def exposure(host: str | None, share: bool, has_auth: bool, insecure_no_auth: bool = False,
             tls: bool = False) -> Exposure:
    """The decision `launch()` (and so `rag chat`) acts on: serving beyond this machine needs `ui.auth`, unless
    `insecure_no_auth` says the user means it (then it starts with a warning)."""
    where = []
    if not is_loopback(host):
        where.append(f"on {host!r} (reachable from other machines)" if host else "on every network interface")
    if share:
        where.append("through a public share link")
    if not where:
        return Exposure(False)
    place = " and ".join(where)
    if has_auth:
        plain = () if tls or is_loopback(host) else (
            f"Serving {place} over plain HTTP: passwords and answers cross the network unencrypted. Put a TLS proxy "
            "in front, or use --share (HTTPS).",)
        return Exposure(True, None, plain)
    if insecure_no_auth:
        return Exposure(True, None, (
            f"SERVING WITHOUT A LOGIN {place.upper()} (--insecure-no-auth): anyone who can reach it can read the "
            "documents, ask questions and upload files.",))
    return Exposure(True, (
        f"Refusing to serve {place} without a login: anyone who could reach it could read the documents and upload "
        "files. Set ui.auth (e.g. RAG_UI__AUTH='[\"me:a-long-password\"]'), or serve on 127.0.0.1, or pass "
        "--insecure-no-auth if you mean it."))


def launch_options(settings: Settings) -> dict:
    """The launch() arguments that come from settings.ui (besides host, port and share): the login (checked in
    constant time, failed attempts throttled per client) and the upload limit."""
    pairs, _ = parse_auth(settings.ui.auth)
    options: dict[str, Any] = {
        "auth": credentials_checker(pairs) if pairs else None,
        "max_file_size": int(settings.ui.max_upload_mb * 1_000_000),
        "theme": gr.themes.Soft(),
        "css": assets.CSS,
        "head": assets.HEAD,
        "footer_links": ["api", "gradio"],
    }
    if pairs:
        from starlette.middleware import Middleware

        options["app_kwargs"] = {"middleware": [Middleware(LoginThrottleMiddleware, throttle=LoginThrottle())]}
    return options


def launch(settings: Settings, rag: RAG | None = None, *, insecure_no_auth: bool = False,
           warn: Callable[[str], None] | None = None, **overrides: Any) -> gr.Blocks:
    """Build and serve the app. `overrides`: host, port, share, or any gr.Blocks.launch() argument.

    Refuses (RagError, before loading anything) to serve beyond this machine without `ui.auth` unless
    `insecure_no_auth`; `warn` (default: the log) receives what must be said loudly: weak passwords, a server
    open to the network."""
    warn = warn or log.warning
    host = overrides.pop("host", None) or settings.ui.host
    port = overrides.pop("port", None) or settings.ui.port
    share = overrides.pop("share", None)
    share = settings.ui.share if share is None else share
    options = launch_options(settings)
    _, weak = parse_auth(settings.ui.auth)
    decision = exposure(host, share, options["auth"] is not None, insecure_no_auth,
                        tls=bool(overrides.get("ssl_certfile")))
    if decision.refusal:
        raise RagError(decision.refusal)
    for message in [*decision.warnings, *weak]:
        warn(message)
    if "app_kwargs" in overrides and "app_kwargs" in options:  # keep the login throttle whatever else is passed
        extra = dict(overrides.pop("app_kwargs"))
        extra["middleware"] = [*options["app_kwargs"]["middleware"], *extra.get("middleware", [])]
        options["app_kwargs"] = {**options["app_kwargs"], **extra}
    demo = build_app(settings, rag)
    demo.launch(server_name=host, server_port=port, share=share, **{**options, **overrides})
    return demo
