"""The RAG objects behind the chat: one per document set and configuration, all sharing one embedding model.

Loading the embedding model and opening an index are the expensive parts, so they happen once per process and
are shared by every browser session; a session only holds a small `ChatConfig` naming which set, generator, k and
budget it wants. Document sets other than the default index live as sibling folders of the index directory
(`<index dir>/../sets/<name>`), created when a user uploads into a new set.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rag import RAG, RagError, Settings

DEFAULT_SET = "default"
Generator = Literal["extractive", "llm"]
_MAX_CACHED = 32


@dataclass(frozen=True)
class ChatConfig:
    """What one browser session asks with; small and immutable so it can live in gr.State."""

    set: str = DEFAULT_SET
    generator: Generator = "extractive"
    k: int = 5
    budget: int = 2500


def sanitise_set_name(name: str) -> str:
    """A folder-safe set name ('' when nothing usable is left)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", (name or "").strip()).strip("._-")
    return cleaned[:60].lower()


class Engines:
    """Creates and caches RAG objects; thread-safe, shared by all sessions of one app."""

    def __init__(self, settings: Settings, rag: RAG) -> None:
        self.settings = settings
        self.base = rag
        self.sets_root = Path(settings.index.dir).expanduser().parent / "sets"
        self._sets: dict[str, RAG] = {DEFAULT_SET: rag}
        self._derived: OrderedDict[tuple, RAG] = OrderedDict()
        self._lock = threading.RLock()

    # -- configuration ------------------------------------------------------------------------------------------
    @property
    def llm_configured(self) -> bool:
        return self.settings.llm.backend != "extractive"

    def default_config(self) -> ChatConfig:
        """The configured backend (an LLM if settings name one), k and budget, on the default index."""
        return ChatConfig(DEFAULT_SET, "llm" if self.llm_configured else "extractive", self.settings.retrieval.k,
                          self.settings.retrieval.budget_chars)

    def generator_choices(self) -> list[tuple[str, str]]:
        """(label, value) pairs for the generator picker; the LLM only when settings configure one."""
        choices = [("Extractive — quotes the documents (no LLM)", "extractive")]
        if self.llm_configured:
            choices.append((f"LLM — {self.llm_label()}", "llm"))
        return choices

    def llm_label(self) -> str:
        rag = self._derive(self.base, "llm", self.settings.retrieval.k, self.settings.retrieval.budget_chars)
        return rag.backend

    # -- document sets ------------------------------------------------------------------------------------------
    def set_dir(self, key: str) -> Path:
        if key == DEFAULT_SET:
            return Path(self.base.settings.index.dir).expanduser()
        return self.sets_root / key

    def set_names(self) -> list[str]:
        """Sets created by uploads (folders with an uploads/ folder holding at least one file)."""
        if not self.sets_root.is_dir():
            return []
        names = []
        for child in sorted(self.sets_root.iterdir()):
            uploads = child / "uploads"
            if child.is_dir() and uploads.is_dir() and any(p.is_file() for p in uploads.iterdir()):
                names.append(child.name)
        return names

    def set_label(self, key: str) -> str:
        """How a set is named inside a sentence ("Added x to the default index")."""
        return "the default index" if key == DEFAULT_SET else f"set “{key}”"

    def set_choices(self) -> list[tuple[str, str]]:
        titles = ", ".join(sorted({d.title for d in self.base.documents()}))
        default = f"Default index ({titles})" if titles else "Default index"
        return [(default, DEFAULT_SET)] + [(f"Set: {name}", name) for name in self.set_names()]

    def for_set(self, key: str) -> RAG:
        """The RAG (with the configured settings) over set `key`, opened once."""
        with self._lock:
            rag = self._sets.get(key)
            if rag is None:
                if key != sanitise_set_name(key) or not key:
                    raise RagError(f"'{key}' is not a valid document set name.")
                if not self.set_dir(key).is_dir():
                    known = ", ".join([DEFAULT_SET, *self.set_names()])
                    raise RagError(f"There is no document set named '{key}' (available: {known}).")
                settings = self.base.settings.updated(index={"dir": self.set_dir(key)})
                # A new set starts empty instead of being seeded with the bundled essay.
                rag = self.base.with_settings(settings, build_if_missing=False)
                self._sets[key] = rag
            return rag

    def create_set(self, name: str) -> str:
        """Make (or reuse) the folder of set `name`; returns its key."""
        key = sanitise_set_name(name)
        if not key:
            raise RagError("Give the new document set a name (letters, digits, '-', '_' or '.').")
        if key == DEFAULT_SET:
            raise RagError(f"'{DEFAULT_SET}' is reserved for the default index; choose another name.")
        self.set_dir(key).mkdir(parents=True, exist_ok=True)
        self.for_set(key)
        return key

    def discard_set_if_empty(self, key: str) -> None:
        """Remove a set that ended up with no documents (e.g. every file of a new set was rejected)."""
        if key == DEFAULT_SET:
            return
        with self._lock:
            rag = self._sets.get(key)
            if rag is not None and rag.documents():
                return
            self._sets.pop(key, None)
            folder = str(self.set_dir(key))
            for cached in [c for c in self._derived if c[0] == folder]:
                del self._derived[cached]
            shutil.rmtree(self.set_dir(key), ignore_errors=True)

    # -- answering ----------------------------------------------------------------------------------------------
    def rag(self, config: ChatConfig) -> RAG:
        """The RAG for a session's configuration; derived ones share the set's open index and the model."""
        return self._derive(self.for_set(config.set), config.generator, config.k, config.budget)

    def _derive(self, base: RAG, generator: Generator, k: int, budget: int) -> RAG:
        llm = {"backend": "extractive"} if generator == "extractive" or not self.llm_configured else \
            {"backend": self.settings.llm.backend}
        target = base.settings.updated(retrieval={"k": k, "budget_chars": budget}, llm=llm)
        if target == base.settings:
            return base
        key = (str(base.settings.index.dir), generator, k, budget)
        with self._lock:
            rag = self._derived.get(key)
            if rag is None:
                rag = base.with_settings(target)
                self._derived[key] = rag
                while len(self._derived) > _MAX_CACHED:
                    self._derived.popitem(last=False)
            else:
                self._derived.move_to_end(key)
            return rag
