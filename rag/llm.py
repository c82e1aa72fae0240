"""LLM generators behind LangChain's chat-model interface, so any LangChain chat model can be plugged in.

Each backend's failure modes (server down, model missing, bad key, timeout) become one `BackendError` naming the
backend, what failed and how to fix it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

from rag.errors import BackendError, RagError
from rag.followup import CONDENSE_PROMPT
from rag.prompt import build_messages
from rag.settings import LLMSettings
from rag.types import Passage, Turn

_FIXES = {
    "openai": "Set OPENAI_API_KEY (or llm.api_key) and check the model name.",
    "openai-compatible": "Start the server (llama.cpp server, vLLM, LM Studio) and check llm.base_url, e.g. "
                         "http://127.0.0.1:8080/v1.",
    "ollama": "Start Ollama (`ollama serve`) and pull the model (`ollama pull MODEL`); check llm.base_url.",
    "llamacpp": "Install the extra (pip install 'essay-rag[llamacpp]') and give llm.model_path: a .gguf file, or "
                "'smollm2' / 'qwen'.",
    "hf": "Give llm.model as a local transformers folder (or a model already in the Hugging Face cache); "
          "install the extra: pip install 'essay-rag[hf]'.",
}


_MARKS_FINISH = frozenset({"openai", "openai-compatible", "llamacpp", "ollama"})


def backend_label(llm: LLMSettings) -> str:
    if llm.backend == "extractive":
        return "extractive"
    if llm.backend == "llamacpp":
        from rag.models import resolve_model_path

        try:
            name = resolve_model_path(llm.model_path).name if llm.model_path else "?"
        except RagError:
            name = str(llm.model_path)
        return f"llamacpp:{name}"
    if llm.backend == "openai-compatible":
        return f"openai-compatible:{llm.model or 'default'}@{llm.base_url}"
    return f"{llm.backend}:{llm.model or 'default'}"


def _fail(llm: LLMSettings, problem: str) -> BackendError:
    return BackendError(llm.backend, problem, _FIXES.get(llm.backend, ""))


def make_chat_model(llm: LLMSettings):
    """Build the LangChain chat model for the configured backend (no network call yet)."""
    key = llm.api_key.get_secret_value() if llm.api_key else None
    try:
        if llm.backend in ("openai", "openai-compatible"):
            from langchain_openai import ChatOpenAI

            if llm.backend == "openai-compatible" and not llm.base_url:
                raise _fail(llm, "no base_url given")
            kwargs = dict(model=llm.model or ("gpt-4o-mini" if llm.backend == "openai" else "local-model"),
                          temperature=llm.temperature, max_tokens=llm.max_tokens, timeout=llm.timeout_s,
                          max_retries=1)
            if llm.base_url:
                kwargs["base_url"] = llm.base_url
            if key:
                kwargs["api_key"] = key
            elif llm.backend == "openai-compatible":
                kwargs["api_key"] = "not-needed"
            return ChatOpenAI(**kwargs)
        if llm.backend == "ollama":
            from langchain_ollama import ChatOllama

            if not llm.model:
                raise _fail(llm, "no model given (e.g. --model qwen2.5:0.5b)")
            kwargs = dict(model=llm.model, temperature=llm.temperature, num_predict=llm.max_tokens,
                          client_kwargs={"timeout": llm.timeout_s})
            if llm.base_url:
                kwargs["base_url"] = llm.base_url
            return ChatOllama(**kwargs)
        if llm.backend == "llamacpp":
            return _llamacpp(llm)
        if llm.backend == "hf":
            return _huggingface(llm)
    except BackendError:
        raise
    except RagError as exc:
        raise _fail(llm, str(exc)) from None
    except ImportError as exc:
        raise _fail(llm, f"a required package is missing ({exc.name})") from None
    except Exception as exc:
        raise _fail(llm, f"could not be set up ({type(exc).__name__}: {str(exc)[:200]})") from None
    raise _fail(llm, "is not an LLM backend")


def _llamacpp(llm: LLMSettings):
    """In-process GGUF through langchain-community's ChatLlamaCpp. langchain-community is archived (July 2026) and
    no maintained LangChain package for llama.cpp replaces it, so it stays, pinned below 0.5 (pyproject); the
    maintained route to the same model is llama.cpp's own OpenAI-compatible server (`python -m llama_cpp.server`)
    with `backend = "openai-compatible"` (langchain-openai), tested in tests/test_compose.py."""
    import os
    import warnings

    from rag.models import resolve_model_path

    if not llm.model_path:
        raise _fail(llm, "no model_path given")
    path = resolve_model_path(llm.model_path)
    if not path.is_file():
        raise _fail(llm, f"model file not found: {path}")
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        raise _fail(llm, "llama-cpp-python is not installed") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.chat_models import ChatLlamaCpp
    try:
        return ChatLlamaCpp(model_path=str(path), n_ctx=llm.n_ctx, n_threads=llm.n_threads or os.cpu_count() or 2,
                            n_batch=llm.n_batch, temperature=llm.temperature, max_tokens=llm.max_tokens,
                            verbose=False, streaming=True)
    except Exception as exc:
        raise _fail(llm, f"could not load {path.name} ({type(exc).__name__}: {str(exc)[:200]})") from None


def _huggingface(llm: LLMSettings):
    from langchain_huggingface import ChatHuggingFace, HuggingFacePipeline
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    if not llm.model:
        raise _fail(llm, "no model given (a local folder or a cached model id)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(llm.model, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(llm.model, local_files_only=True)
    except Exception as exc:
        raise _fail(llm, f"cannot load '{llm.model}' offline ({type(exc).__name__})") from None
    pipe = pipeline("text-generation", model=model, tokenizer=tokenizer, max_new_tokens=llm.max_tokens,
                    do_sample=False, return_full_text=False)
    return ChatHuggingFace(llm=HuggingFacePipeline(pipeline=pipe), tokenizer=tokenizer)


def _text_of(chunk) -> str:
    content = getattr(chunk, "content", chunk)
    if isinstance(content, list):
        return "".join(b.get("text", "") if isinstance(b, dict) else str(b) for b in content)
    return str(content)


class LLMGenerator:
    """Streams a grounded answer from a chat model; wraps every failure into a BackendError."""

    def __init__(self, llm: LLMSettings, chat_model=None) -> None:
        self.settings = llm
        self.model = chat_model or make_chat_model(llm)
        # These backends mark the last chunk of a complete answer (finish_reason / done_reason); checked per stream.
        self.reports_finish = chat_model is None and llm.backend in _MARKS_FINISH
        # One llama.cpp context serves one caller at a time: an in-process model is driven under this lock by
        # every stream, rewrite and judgement (rag.judge shares it); a server or API serialises on its own side. A
        # plain Lock, not an RLock: a UI may resume a stream from another worker thread, which then releases it.
        self.lock = threading.Lock() if llm.backend == "llamacpp" else contextlib.nullcontext()

    def _translate(self, exc: Exception) -> BackendError:
        if isinstance(exc, BackendError):
            return exc
        name = type(exc).__name__
        text = str(exc).splitlines()[0][:200] if str(exc) else name
        if "Timeout" in name or "timed out" in text.lower():
            return _fail(self.settings, f"timed out after {self.settings.timeout_s:g} s")
        if "Connect" in name or "Connection" in text or "refused" in text.lower():
            return _fail(self.settings, f"cannot connect ({text})")
        if "Authentication" in name or "401" in text:
            return _fail(self.settings, f"authentication failed ({text})")
        if "NotFound" in name or "404" in text:
            return _fail(self.settings, f"model or endpoint not found ({text})")
        return _fail(self.settings, f"request failed ({name}: {text})")

    def stream(self, question: str, passages: list[Passage], flagged: set[int] = frozenset()) -> Iterator[str]:
        """`flagged`: passages holding text addressed to an assistant; the prompt marks them as such."""
        yield from self.stream_messages(build_messages(question, passages, flagged))

    def stream_messages(self, messages: list[tuple[str, str]]) -> Iterator[str]:
        """Any prompt's tokens as they come, every failure translated. A stream that stops without the server's
        end-of-answer mark (a server that died midway: the OpenAI client just sees the stream end) is a failure
        too, for the backends whose chunks carry that mark, instead of a truncated answer."""
        finished = False
        try:
            with self.lock:
                for chunk in self.model.stream(messages):
                    metadata = getattr(chunk, "response_metadata", None) or {}
                    finished = finished or bool(metadata.get("finish_reason") or metadata.get("done_reason"))
                    text = _text_of(chunk)
                    if text:
                        yield text
        except Exception as exc:
            raise self._translate(exc) from None
        if self.reports_finish and not finished:
            raise _fail(self.settings, "the answer stream ended before the model finished (did the server stop?)")

    def condense(self, question: str, history: Sequence[Turn]) -> str:
        lines = [f"{turn.role}: {turn.content[:500]}" for turn in history[-6:]]
        prompt = CONDENSE_PROMPT.format(conversation="\n".join(lines), question=question)
        try:
            with self.lock:
                out = _text_of(self.model.invoke([("human", prompt)])).strip().splitlines()
        except Exception as exc:
            raise self._translate(exc) from None
        rewritten = out[0].strip().strip('"') if out else ""
        return rewritten if 5 <= len(rewritten) <= 500 else ""
