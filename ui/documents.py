"""Adding a user's files to a document set, reported in plain words. Checking, storing and indexing the files
is `rag.docsets.DocumentSets`' job (`save_upload`, `add_files`); this module turns its results into the upload
status a user reads, and switches the session to a new set once something is in it.

Every problem (wrong type, too big, empty, unreadable) is collected into the report the user sees; nothing here
raises a traceback into the UI.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rag import DocumentError, RagError
from ui.engines import ChatConfig, Engines
from ui.render import plural

log = logging.getLogger(__name__)

NEW_SET = "A new document set"
CURRENT_SET = "The current document set"
Progress = Callable[[float, str], None]


@dataclass
class UploadResult:
    message: str                     # markdown for the upload status
    config: ChatConfig               # the session's configuration afterwards (switched to the new set)
    problems: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def _name(path: str) -> str:
    return Path(str(path)).name


def add_documents(engines: Engines, files: Sequence[str] | None, target: str, new_name: str, config: ChatConfig,
                  progress: Progress) -> UploadResult:
    """Store and index `files` into the current set or a new one named `new_name`."""
    if not files:
        return UploadResult("Choose one or more files first (txt, md, html or pdf).", config,
                            ["no files were chosen"])
    try:
        sets = engines.sets
        key = sets.create(new_name) if target == NEW_SET else config.set
        rag = sets.open(key)
        label = engines.set_label(key)
        progress(0.02, f"Checking {len(files)} file(s)…")
        saved: list[Path] = []
        problems: list[str] = []
        for i, f in enumerate(files):
            try:
                saved.append(sets.save_upload(key, _name(f), Path(f)))
            except DocumentError as exc:
                problems.append(f"**{_name(f)}** — {exc.reason}")
            except OSError as exc:
                problems.append(f"**{_name(f)}** — could not be read ({exc.strerror or exc})")
            progress(0.02 + 0.08 * (i + 1) / len(files), f"Checked {_name(f)}")
        added: list[str] = []
        unchanged: list[str] = []
        if saved:
            report = sets.add_files(key, saved, progress=lambda frac, msg: progress(0.1 + 0.9 * frac, msg))
            # (add_files deletes a stored upload that cannot be indexed, so it is not retried on every update.)
            for exc in report.errors:
                problems.append(f"**{_name(exc.path)}** — {exc.reason}")
            saved_names = {str(p.resolve()): p.name for p in saved}
            added = [saved_names.get(s, _name(s)) for s in report.added + report.updated if s in saved_names]
            unchanged = [saved_names[s] for s in report.unchanged if s in saved_names]
        chunks = {d.source: d.chunks for d in rag.documents()}
        lines = []
        if target == NEW_SET and key != " ".join((new_name or "").split()):
            lines.append(f"The set name “{(new_name or '').strip()}” was changed to **{key}**: set names keep only "
                         "lower-case letters, digits, '.', '_' and '-'.")
        if added:
            details = ", ".join(f"**{p.name}** ({plural(chunks.get(str(p.resolve()), 0), 'passage')})"
                                for p in saved if p.name in added)
            them = "it" if len(added) == 1 else "them"
            lines.append(f"**Added** {details} to {label}. Ask about {them} in the chat.")
        if unchanged:
            lines.append(f"**Already in {label}**, unchanged: " + ", ".join(f"**{n}**" for n in unchanged) + ".")
        if problems:
            lines.append("**Not added:**\n" + "\n".join(f"- {p}" for p in problems))
        usable = bool(added or unchanged) or (key == config.set)
        new_config = ChatConfig(key, config.generator, config.k, config.budget) if usable else config
        if not usable:
            engines.discard_set_if_empty(key)
            lines.append("The new set was not created because none of its files could be indexed.")
        return UploadResult("\n\n".join(lines) or "Nothing to add.", new_config, problems, added)
    except (RagError, DocumentError) as exc:
        return UploadResult(f"**Not added:** {exc}", config, [str(exc)])
    except Exception as exc:  # never a traceback in the UI
        log.exception("Upload failed")
        return UploadResult(f"**The upload failed** ({type(exc).__name__}: {exc}).", config, [str(exc)])
