"""The one configuration object: defaults, overridden by a TOML file, overridden by `RAG_*` environment variables.

Nested sections use a double underscore in the environment, e.g. `RAG_LLM__BACKEND=ollama`,
`RAG_INDEX__CHUNK_SIZE=800`, `RAG_RETRIEVAL__K=8`. The TOML file is `rag.toml` in the working directory, or the
path in `RAG_CONFIG`, or the one given to `load_settings` / `rag --config`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from index import IndexConfig, SearchConfig

Backend = Literal["extractive", "openai", "openai-compatible", "ollama", "llamacpp", "hf"]


class RetrievalSettings(SearchConfig):
    """Search (mode, fusion, weights: index.SearchConfig) plus how hits become the writer's passages."""

    # Six passages, not five: a paraphrase that avoids the document's words often finds its sentence in the sixth
    # (dev key-term accuracy essay 0.889 -> 0.917, ed-manual 0.778 -> 0.815, debian-history 0.643 -> 0.679; no
    # refusal changed; history citation precision 0.700 -> 0.677). Seven cost the history an off-topic refusal.
    # The 2,500-character budget did not bind at six (the same answers at 3,000).
    k: int = Field(6, ge=1, le=50, description="Passages given to the generator.")
    budget_chars: int = Field(2500, ge=200, description="Most characters of passage text given to the generator.")
    merge_adjacent: bool = True
    reranker: str | None = Field(None, description="Optional sentence-transformers CrossEncoder name or path.")


class LLMSettings(BaseModel):
    backend: Backend = "extractive"
    # Compose (the default for every LLM): the model phrases the evidence sentences the decision stage selected.
    # Read: it reads all passages and judges answerability itself (Qwen 1.5B, essay test split: key-term 0.14,
    # 69% false refusals, 22 s median; compose: see README "LLM backends").
    mode: Literal["compose", "read"] = Field("compose", description="compose: phrase the selected evidence; "
                                             "read: answer from the whole passages.")
    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    model_path: Path | None = None
    temperature: float = 0.0
    max_tokens: int = Field(400, ge=16)
    timeout_s: float = Field(60.0, gt=0)
    n_ctx: int = 4096
    n_threads: int | None = None
    # Prompt tokens llama.cpp reads per batch. ChatLlamaCpp's default is 8, which made reading a compose prompt
    # (140-200 tokens) the larger part of an answer; see rag.llm._llamacpp for the measurement.
    n_batch: int = Field(512, ge=8)
    # Let the LLM rewrite follow-ups instead of the rule (rag.followup). Off: on the 11 dev follow-ups Qwen 1.5B's
    # rewrites dropped the referent ("What happens if only one address is given to it?" lost "the j command")
    # or kept the pronoun in 4 and won no key term the rule missed; it lost one, and it costs a model call.
    rewrite_followups: bool = False
    # The in-process model judges this many of the best-scored sentences (rag.judge) and a question none of them
    # answers is refused. Off: on the dev splits it refused 3 more of 111 unanswerable questions and no answerable
    # one, but took Qwen compose answers from 1.7-2.5 to 5.3-6.6 s median. Only llamacpp can judge (another LLM
    # backend logs a warning).
    judge_sentences: int = Field(0, ge=0, le=12, description="Best sentences the local LLM judges (0: no judge).")


class AnswerSettings(BaseModel):
    max_question_chars: int = Field(1000, ge=20)
    max_history_turns: int = Field(20, ge=0, description="Most conversation turns a follow-up reads (the newest); "
                                   "older ones are dropped. Each turn is cut to max_question_chars.")
    max_sentences: int = Field(4, ge=1, le=12)
    # Calibrated on the dev split by `python -m eval.calibrate`; see README "Refusals".
    # The highest threshold whose leave-one-out false-refusal rate on the dev split meets the 0.05 target.
    refusal_threshold: float = Field(0.3, ge=0, le=1, description="Refuse below this answerable probability.")
    close_call_margin: float = Field(0.15, ge=0, le=1, description="An answer whose probability is less than this "
                                     "above the threshold carries a low-confidence note instead of being refused.")


class UISettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 7860
    auth: list[str] = Field(default_factory=list, description='"user:password" pairs; empty means no login.')
    share: bool = False
    max_upload_mb: float = Field(20.0, gt=0)
    concurrency_limit: int = Field(4, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_nested_delimiter="__", toml_file="rag.toml",
                                      extra="ignore")

    index: IndexConfig = Field(default_factory=IndexConfig)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    ui: UISettings = Field(default_factory=UISettings)

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource):
        toml_path = settings_cls.model_config.get("toml_file")
        if toml_path == "rag.toml" and os.environ.get("RAG_CONFIG"):
            toml_path = os.environ["RAG_CONFIG"]
            if not Path(toml_path).expanduser().is_file():  # a typo must not silently fall back to defaults
                raise FileNotFoundError(f"Config file not found: {toml_path} (named by RAG_CONFIG)")
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=toml_path)

    def updated(self, **sections: dict) -> "Settings":
        """A validated copy with some fields of some sections replaced, e.g. `updated(llm={"backend": "ollama"})`."""
        data = {}
        for name, changes in sections.items():
            current = getattr(self, name)
            data[name] = type(current).model_validate({**current.model_dump(), **changes})
        return self.model_copy(update=data)


def load_settings(config: str | Path | None = None, **overrides) -> Settings:
    """Read settings; an explicit `config` file must exist (a typo should not silently fall back to defaults)."""
    if config is not None:
        path = Path(config).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Config file not found: {path}")

        class _FromFile(Settings):
            model_config = SettingsConfigDict(toml_file=str(path))

        return _FromFile(**overrides)
    return Settings(**overrides)
