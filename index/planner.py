"""Deciding what an update must do, before any of it is done.

`plan_update` compares the files under the index's roots (plus the paths asked for) with the manifest's records:
a file whose size and SHA-256 match its record, under the same title, is unchanged and keeps its stored vectors,
so only new or edited files are embedded. Everything else is to be added, updated or removed.

The planner is pure: it reads file listings, sizes and hashes through a `FileProbe` (`DiskProbe` in use, an
in-memory fake in tests), loads no model and writes nothing. Loading and chunking the planned files is the
writer's job (`index.writer`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from index.documents import DocumentError, discover_files, sha256_of_file
from index.manifest import DocumentRecord


class FileProbe(Protocol):
    """What the planner may ask of a file system. `size` and `sha256` raise OSError for an unreadable file."""

    def resolve(self, path: str) -> str: ...

    def exists(self, path: str) -> bool: ...

    def discover(self, paths: Sequence[str]) -> tuple[list[str], list[DocumentError]]: ...

    def size(self, path: str) -> int: ...

    def sha256(self, path: str) -> str: ...


class DiskProbe:
    """The real file system: absolute resolved paths, supported files found beneath folders."""

    def resolve(self, path: str) -> str:
        return str(Path(path).expanduser().resolve())

    def exists(self, path: str) -> bool:
        return Path(path).expanduser().exists()

    def discover(self, paths: Sequence[str]) -> tuple[list[str], list[DocumentError]]:
        files, errors = discover_files([Path(p) for p in paths])
        return [str(f) for f in files], errors

    def size(self, path: str) -> int:
        return Path(path).stat().st_size

    def sha256(self, path: str) -> str:
        return sha256_of_file(path)


@dataclass(frozen=True)
class Plan:
    """What an update will do, by source path (resolved), in the order the files were found."""

    roots: tuple[str, ...]                      # folders and files the index follows after this update
    title_overrides: Mapping[str, str]          # source -> title, after this update
    to_add: tuple[str, ...] = ()                # files not in the index yet: load, chunk, embed
    to_update: tuple[str, ...] = ()             # indexed files whose bytes or title changed: the same
    unchanged: tuple[str, ...] = ()             # indexed files that match their record: keep chunks and vectors
    to_remove: tuple[str, ...] = ()             # indexed files that are gone or were asked to be removed
    kept_on_error: tuple[str, ...] = ()         # indexed files that could not be read now: keep the last good version
    errors: tuple[DocumentError, ...] = ()      # one per path that cannot be indexed, naming it and saying why
    roots_changed: bool = False

    @property
    def to_load(self) -> tuple[str, ...]:
        return self.to_add + self.to_update

    @property
    def carried(self) -> tuple[str, ...]:
        """Indexed documents whose stored chunks and vectors go into the next generation as they are."""
        return self.unchanged + self.kept_on_error

    @property
    def has_changes(self) -> bool:
        return bool(self.to_add or self.to_update or self.to_remove or self.roots_changed)


def _under(source: str, root: str) -> bool:
    return source == root or source.startswith(root.rstrip("/") + "/")


def plan_update(documents: Mapping[str, DocumentRecord], roots: Sequence[str], title_overrides: Mapping[str, str],
                *, probe: FileProbe, add: Iterable[str | Path] = (), remove: Iterable[str | Path] = (),
                titles: Mapping[str, str] | None = None) -> Plan:
    """Plan making the index (its `documents`, `roots` and `title_overrides`, from the manifest) match the files.

    `add` are files or folders to follow from now on, `remove` files or folders to drop (their documents leave
    the index and a removed root is no longer followed), `titles` title overrides by path.
    """
    add = [str(p) for p in add]
    removed_roots = {probe.resolve(str(p)) for p in remove}
    overrides = dict(title_overrides)
    overrides.update({probe.resolve(k): v for k, v in (titles or {}).items()})

    new_roots = [r for r in roots if r not in removed_roots]
    for p in add:
        resolved = probe.resolve(p)
        if resolved not in new_roots and probe.exists(p):
            new_roots.append(resolved)

    files, errors = probe.discover(add)
    found, _ = probe.discover([r for r in new_roots if probe.exists(r)])
    candidates = list(dict.fromkeys(files + found))
    seen = set(candidates)
    for source in documents:  # files indexed earlier but no longer under a root still get checked
        if source not in seen and probe.exists(source):
            candidates.append(source)
    dropped = {s for s in documents if any(_under(s, r) for r in removed_roots)}

    to_add: list[str] = []
    to_update: list[str] = []
    unchanged: list[str] = []
    kept: list[str] = []
    for source in candidates:
        if source in dropped:
            continue
        rec = documents.get(source)
        try:
            same = (rec is not None and probe.size(source) == rec.size and probe.sha256(source) == rec.sha256
                    and rec.title == overrides.get(source, rec.title))
        except OSError as exc:
            errors.append(DocumentError(source, f"cannot be read ({exc.strerror or exc})"))
            if rec is not None:  # a file that became unreadable keeps its last good version
                kept.append(source)
            continue
        if same:
            unchanged.append(source)
        else:
            (to_update if rec is not None else to_add).append(source)

    staying = set(unchanged) | set(to_update) | set(kept)
    to_remove = [s for s in documents if s not in staying]
    return Plan(roots=tuple(new_roots), title_overrides=overrides, to_add=tuple(to_add), to_update=tuple(to_update),
                unchanged=tuple(unchanged), to_remove=tuple(to_remove), kept_on_error=tuple(kept),
                errors=tuple(errors), roots_changed=list(new_roots) != list(roots))
