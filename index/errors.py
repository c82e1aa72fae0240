"""Errors of the stored index whose `str()` is the whole message for the user: what, where, and the fix.

They derive from `OSError` because they are problems of the index on disk, and callers that already show an
`OSError` as a readable message (the UI's API handler, `rag eval`) then show these as they are, without knowing
this module. The CLI exits with code 1 on any `IndexStoreError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPAIR = "rag index --repair"
REPAIR_FIX = (f"run `{REPAIR}` (with the same --index-dir / --set options); it rebuilds the index from the "
              f"stored document texts, or from the last good generation, and loses no document")


class IndexStoreError(OSError):
    """Any problem with the index on disk that the user has to act on. `str(exc)` is the full message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Damage:
    """One thing wrong with one file of the index: which file, what is wrong with it, how to fix it."""

    path: str
    problem: str
    fix: str = REPAIR_FIX

    def line(self) -> str:
        return f"{self.path} {self.problem}"


class IndexDamagedError(IndexStoreError):
    """The index on disk is damaged. `path`, `problem`, `fix` describe the first damage; `damages` all of them."""

    def __init__(self, path: str | Path, problem: str, fix: str = REPAIR_FIX,
                 damages: list[Damage] | None = None, root: str | Path | None = None) -> None:
        self.path, self.problem, self.fix = str(path), problem, fix
        self.damages = list(damages) if damages else [Damage(self.path, problem, fix)]
        self.root = str(root) if root is not None else None
        where = f"The index at {self.root} is damaged" if self.root else "The index is damaged"
        if len(self.damages) == 1:
            text = f"{where}: {self.damages[0].line()}."
        else:
            text = f"{where}:\n" + "\n".join(f"  - {d.line()}" for d in self.damages)
            text += "\n"
        fixes = list(dict.fromkeys(d.fix for d in self.damages))
        super().__init__(text + (" " if len(self.damages) == 1 else "") + "Fix: " + "; ".join(fixes) + ".")

    def __reduce__(self):  # OSError would rebuild it from the message alone
        return (type(self), (self.path, self.problem, self.fix, self.damages, self.root))

    @classmethod
    def of(cls, damages: list[Damage], root: str | Path | None = None) -> "IndexDamagedError":
        first = damages[0]
        return cls(first.path, first.problem, first.fix, damages, root)


class IndexLockTimeout(IndexStoreError):
    """Another process held the index lock for longer than `IndexConfig.lock_timeout_s`."""


class IndexDirError(IndexStoreError):
    """The index directory cannot be used (it is a file, lies inside a file, or cannot be written)."""
