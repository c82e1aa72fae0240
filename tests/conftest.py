"""Shared fixtures: one real embedding model and one real essay index per test session.

Loading the model takes seconds, so it is shared; every test that changes an index builds its own in tmp_path.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

from index import Embedder, IndexConfig  # noqa: E402


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def essay_settings(tmp_path_factory):
    from rag import Settings

    return Settings(index=IndexConfig(dir=tmp_path_factory.mktemp("essay-index")))


@pytest.fixture(scope="session")
def essay_rag(essay_settings, embedder):
    from rag import RAG

    return RAG.from_settings(essay_settings, embedder=embedder)


@pytest.fixture(scope="session")
def essay_text() -> str:
    from index import default_corpus_path

    return default_corpus_path().read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def museum_notes() -> str:
    """Notes as people type them, a line per item and no full stops: every line looks like a heading alone."""
    return ("City Museum visit notes\n\nOpening hours\nOpen Tuesday to Sunday, 9:00 to 17:00\n"
            "Closed on Mondays and on 25 December\n\nTickets\nAdults pay 12 euros\nChildren under 12 enter free\n"
            "Students and seniors pay 8 euros with a valid card\n"
            "Guided tours cost 5 euros extra and start at 11:00 and 15:00\n")
