"""Settings precedence (defaults < TOML < RAG_* environment < command line) and the index commands of the CLI,
run as a user runs them: `python -m rag.cli ...` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rag import load_settings


def _cli(*args: str, env: dict | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], env={**os.environ, "COLUMNS": "300", **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def test_precedence_defaults_toml_env_and_explicit(tmp_path, monkeypatch):
    default_k = load_settings().retrieval.k
    config = tmp_path / "rag.toml"
    config.write_text(f"[retrieval]\nk = {default_k + 2}\nbudget_chars = 3000\n", encoding="utf-8")
    monkeypatch.setenv("RAG_CONFIG", str(config))
    from_file = load_settings()
    assert from_file.retrieval.k == default_k + 2 and from_file.retrieval.budget_chars == 3000
    monkeypatch.setenv("RAG_RETRIEVAL__K", str(default_k + 3))
    from_env = load_settings()
    assert from_env.retrieval.k == default_k + 3 and from_env.retrieval.budget_chars == 3000
    explicit = from_env.updated(retrieval={"k": default_k + 4})
    assert explicit.retrieval.k == default_k + 4 and explicit.retrieval.budget_chars == 3000


def test_a_missing_config_file_is_an_error_from_either_source(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "nope.toml")
    monkeypatch.setenv("RAG_CONFIG", str(tmp_path / "nope.toml"))
    with pytest.raises(FileNotFoundError, match="RAG_CONFIG"):
        load_settings()


def test_cli_index_dir_beats_the_environment(tmp_path):
    """`--index-dir` on the command line wins over RAG_INDEX__DIR; `rag info` on an empty place says so."""
    out = _cli("--index-dir", str(tmp_path / "cli"), "info", env={"RAG_INDEX__DIR": str(tmp_path / "env")})
    assert out.returncode == 1
    assert str(tmp_path / "cli") in out.stderr and str(tmp_path / "env") not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_cli_index_add_info_remove(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "museum.txt").write_text("Opening hours\n\nThe city museum opens at nine and closes at five. "
                                      "Children under 12 enter free.\n", encoding="utf-8")
    env = {"RAG_INDEX__DIR": str(tmp_path / "index")}
    added = _cli("index", str(notes), env=env)
    assert added.returncode == 0, added.stderr
    # The new generation's calibration is measured while the model is loaded, for the next process to read.
    from rag.calibration import CACHE_FILE
    kept = json.loads((tmp_path / "index" / CACHE_FILE).read_text(encoding="utf-8"))
    assert kept["key"]["generation"] == (tmp_path / "index" / "CURRENT").read_text(encoding="utf-8").strip()
    info = _cli("info", env=env)
    assert info.returncode == 0 and "museum.txt" in info.stdout
    removed = _cli("index", "--remove", str(notes), env=env)
    assert removed.returncode == 0, removed.stderr
    assert "1 removed" in removed.stdout
    assert "museum.txt" not in _cli("info", env=env).stdout


def test_a_running_rag_sees_an_update_made_by_another_process(tmp_path, embedder):
    from index import IndexConfig
    from rag import RAG, Settings

    doc = tmp_path / "tides.txt"
    doc.write_text("Tides\n\nThe harbour of Port Ellis has two high tides a day, six hours apart.\n",
                   encoding="utf-8")
    settings = Settings(index=IndexConfig(dir=tmp_path / "index"))
    rag = RAG.from_settings(settings, embedder=embedder)
    assert str(doc.resolve()) not in {d.source for d in rag.documents()}
    out = _cli("index", str(doc), env={"RAG_INDEX__DIR": str(tmp_path / "index")})
    assert out.returncode == 0, out.stderr
    assert str(doc.resolve()) in {d.source for d in rag.documents()}
    assert any(p.source == str(doc.resolve()) for p in rag.retrieve("How many high tides does Port Ellis have?", k=3))


def test_cli_document_sets(tmp_path):
    """`rag --set NAME` works on a set of the user's own (no bundled essay in it); bad or unknown names get a
    message, not a traceback."""
    import json

    doc = tmp_path / "museum.txt"
    doc.write_text("Opening hours\n\nThe city museum opens at nine and closes at five. Children under 12 enter "
                   "free.\n", encoding="utf-8")
    env = {"RAG_INDEX__DIR": str(tmp_path / "index")}
    made = _cli("--set", "notes", "index", str(doc), env=env)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "sets" / "notes").is_dir() and not (tmp_path / "index").exists()
    info = _cli("--set", "notes", "info", env=env)
    assert "museum.txt" in info.stdout and "russia-iran" not in info.stdout
    asked = _cli("--set", "notes", "ask", "--json", "When does the city museum open?", env=env)
    assert asked.returncode == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert all(p["source"] == str(doc.resolve()) for p in data["passages"]) and data["passages"]
    for args in (["--set", "nope", "ask", "When does the museum open?"], ["--set", "../x", "info"]):
        out = _cli(*args, env=env)
        assert out.returncode == 2 and "set" in out.stderr and "Traceback" not in out.stderr
