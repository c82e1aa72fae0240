"""The bundled essay, shipped as package data so the default index works wherever the package is installed."""

from __future__ import annotations

from pathlib import Path

ESSAY_FILE = "russia-iran-essay.txt"
ESSAY_TITLE = "Russia and Iran: The Limits of a Strategic Partnership"


def default_corpus_path() -> Path:
    return Path(__file__).with_name(ESSAY_FILE)


def default_titles() -> dict[str, str]:
    """Readable titles for bundled files, keyed by resolved path."""
    return {str(default_corpus_path().resolve()): ESSAY_TITLE}


def stale_bundled_copies(sources: list[str]) -> list[str]:
    """Bundled-essay paths from another install of this package (a moved checkout, a reinstall): the same
    document under an old path, which would otherwise sit in the index twice."""
    current = str(default_corpus_path().resolve())
    tail = ("index", "corpus", ESSAY_FILE)
    return [s for s in sources if s != current and Path(s).parts[-3:] == tail]
