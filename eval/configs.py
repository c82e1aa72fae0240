"""Named configurations to evaluate: the project's settings as loaded, and the LangChain tutorial baseline."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing rag loads the index layer; keep `eval` light until something runs
    from rag import Settings

BASELINE_CHUNK_SIZE = 1000
BASELINE_CHUNK_OVERLAP = 200
BASELINE_K = 4

CONFIG_NAMES = ("default", "baseline")


def baseline_index_dir(settings: Settings) -> Path:
    """The baseline keeps its own index beside the configured one (…/index → …/index-baseline), since a
    different chunker would otherwise force a rebuild of the user's index."""
    current = Path(settings.index.dir).expanduser()
    return current.with_name(f"{current.name}-baseline")


def baseline_settings(settings: Settings) -> Settings:
    """The LangChain RAG tutorial's setup on the same embedding model: RecursiveCharacterTextSplitter with
    chunk_size 1000 / overlap 200, no heading prefixes, plain dense similarity search for k=4 chunks, no merging,
    no reranker, and the extractive generator (so the comparison measures retrieval and chunking, not an LLM).

    budget_chars is raised to k * chunk_size so the project's context budget does not trim the tutorial's four
    chunks.
    """
    return settings.updated(
        index={"dir": baseline_index_dir(settings), "chunker": "recursive", "chunk_size": BASELINE_CHUNK_SIZE,
               "chunk_overlap": BASELINE_CHUNK_OVERLAP, "embed_headings": False},
        retrieval={"mode": "dense", "k": BASELINE_K, "merge_adjacent": False, "reranker": None,
                   "budget_chars": max(settings.retrieval.budget_chars, BASELINE_K * BASELINE_CHUNK_SIZE)},
        llm={"backend": "extractive"},
    )


def resolve_config(name: str, settings: Settings) -> Settings:
    if name == "default":
        return settings
    if name == "baseline":
        return baseline_settings(settings)
    raise ValueError(f"Unknown configuration {name!r}; choose one of {', '.join(CONFIG_NAMES)} or give a .toml file")


def settings_summary(settings: Settings) -> dict:
    """The settings that shape the results, as plain JSON (no secrets)."""
    idx, ret, llm = settings.index, settings.retrieval, settings.llm
    return {
        "index": {"dir": str(idx.dir), "embedding_model": idx.embedding_model, "chunker": idx.chunker,
                  "chunk_size": idx.chunk_size, "chunk_overlap": idx.chunk_overlap,
                  "embed_headings": idx.embed_headings},
        "retrieval": {"mode": ret.mode, "k": ret.k, "candidates": ret.candidates, "budget_chars": ret.budget_chars,
                      "merge_adjacent": ret.merge_adjacent, "reranker": ret.reranker},
        "llm": {"backend": llm.backend, "model": llm.model, "base_url": llm.base_url,
                "model_path": str(llm.model_path) if llm.model_path else None, "temperature": llm.temperature},
        "answer": settings.answer.model_dump(mode="json") if hasattr(settings, "answer") else {},
    }


def describe_settings(settings: Settings) -> str:
    s = settings_summary(settings)
    idx, ret, llm = s["index"], s["retrieval"], s["llm"]
    model = f" {llm['model'] or llm['model_path'] or ''}".rstrip()
    return (f"chunker {idx['chunker']} {idx['chunk_size']}/{idx['chunk_overlap']}"
            f"{' +headings' if idx['embed_headings'] else ''}; retrieval {ret['mode']} k={ret['k']}"
            f"{' merged' if ret['merge_adjacent'] else ''}{' rerank' if ret['reranker'] else ''}, "
            f"budget {ret['budget_chars']:,} chars; generator {llm['backend']}{model}")
