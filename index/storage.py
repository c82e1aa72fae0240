"""Crash-safe persistence: each build writes a complete new generation folder, then flips one pointer file.

A reader only ever follows `CURRENT`, which is replaced atomically (write temp file, fsync, rename), so a crash
at any point leaves either the old or the new generation in force, never a mix of the two.

This module knows folders, files, bytes and the lock; what a generation must contain (the manifest and its
checksums) is `index.snapshot`'s business, and which generations may be deleted is `index.writer`'s.

- `read_pointer` says what is wrong with a pointer (missing while generations exist, empty, not UTF-8, not a
  generation name, naming a folder that is gone) instead of raising, so the caller can recover from it.
- `index_lock` serialises writers across processes (`filelock`) and records who holds it (PID, since when, the
  command) in `.lock.owner`, so a second writer can say whom it waits for, and gives up after a timeout.
- `check_root` turns an index directory that is a file, lies inside a file or cannot be written into one
  `IndexDirError` naming it, instead of a traceback from wherever the first write happens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from filelock import FileLock, Timeout

from index.errors import IndexDirError, IndexLockTimeout

POINTER = "CURRENT"
LOCK = ".lock"
LOCK_OWNER = ".lock.owner"
GEN_PREFIX = "gen-"
_GEN_NAME = re.compile(r"^gen-(\d{6,})$")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sha256_file(path: Path) -> tuple[int, str]:
    """(size, SHA-256) of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def generation_files(generation: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Paths (relative, '/'-separated) of every file in a generation folder, sorted."""
    return sorted(p.relative_to(generation).as_posix() for p in generation.rglob("*")
                  if p.is_file() and p.relative_to(generation).as_posix() not in skip)


# -- generations and the pointer ----------------------------------------------------------------------------------

def generation_number(path: Path) -> int | None:
    match = _GEN_NAME.match(path.name)
    return int(match.group(1)) if match else None


def list_generations(root: Path) -> list[Path]:
    """The generation folders in `root`, newest (highest number) first."""
    try:
        found = [p for p in root.iterdir() if generation_number(p) is not None and p.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(found, key=lambda p: generation_number(p), reverse=True)


def read_pointer(root: Path) -> tuple[Path | None, str | None]:
    """(generation the pointer names, None) when it is sound; (None, what is wrong with it) when it is not;
    (None, None) for an index that has no generation and no pointer yet (a new index)."""
    pointer = root / POINTER
    try:
        data = pointer.read_bytes()
    except FileNotFoundError:
        return None, ("is missing" if list_generations(root) else None)
    except NotADirectoryError:
        return None, None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    try:
        name = data.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        return None, f"is not UTF-8 text (byte 0x{data[exc.start]:02x} at position {exc.start})"
    if not name:
        return None, "is empty"
    if not _GEN_NAME.match(name):
        shown = name if len(name) <= 40 else name[:40] + "…"
        return None, f"does not name a generation (it reads {shown!r})"
    gen = root / name
    if not gen.is_dir():
        return None, f"names {name}, which does not exist"
    return gen, None


def current_generation(root: Path) -> Path | None:
    """The generation the pointer names, or None when it names none (see `read_pointer` for why)."""
    return read_pointer(root)[0]


def write_pointer(root: Path, generation: Path) -> None:
    atomic_write_text(root / POINTER, generation.name + "\n")
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_generation_dir(root: Path) -> Path:
    """A private staging folder; it becomes visible only through `commit_generation`."""
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".staging-", dir=root))


def commit_generation(root: Path, staging: Path) -> Path:
    existing = [generation_number(p) for p in root.glob("gen-*") if generation_number(p) is not None]
    final = root / f"gen-{max(existing, default=0) + 1:06d}"
    for file in staging.rglob("*"):
        if file.is_file():
            with open(file, "rb") as fh:
                os.fsync(fh.fileno())
    os.replace(staging, final)
    _fsync_dir(root)
    atomic_write_text(root / POINTER, final.name + "\n")
    _fsync_dir(root)
    return final


def remove_staging(root: Path) -> None:
    """Abandoned staging folders of crashed builds (call only while holding the lock: a writer's own staging
    folder is private to it, and writers are serialised by the lock)."""
    for path in root.glob(".staging-*"):
        shutil.rmtree(path, ignore_errors=True)


def remove_generation(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- the index directory ------------------------------------------------------------------------------------------

def check_root(root: Path, write: bool) -> None:
    """Raise `IndexDirError` when `root` cannot serve as an index directory: it is a file, lies inside a file,
    or (with `write`) cannot be created or written."""
    fix = "give --index-dir (or index.dir / RAG_INDEX__DIR) a folder you can write, or leave it unset for the default"
    if root.exists() and not root.is_dir():
        raise IndexDirError(f"The index directory {root} is a file, not a folder. Fix: {fix}.")
    ancestor = root
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise IndexDirError(f"The index directory {root} cannot be created: {ancestor} is a file, not a folder. "
                            f"Fix: {fix}.")
    if not write:
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-", delete=True)
        probe.close()
    except OSError as exc:
        what = "created" if not root.exists() else "written"
        raise IndexDirError(f"The index directory {root} cannot be {what} ({exc.strerror or exc}). "
                            f"Fix: {fix}.") from None


# -- the writers' lock --------------------------------------------------------------------------------------------

def _describe_holder(root: Path) -> tuple[str, int | None]:
    """Who holds the lock, from the owner file it wrote: ("PID 123 (`rag index`), since 12:00:01, 40 s ago", 123)."""
    try:
        owner = json.loads((root / LOCK_OWNER).read_text(encoding="utf-8"))
        pid = int(owner["pid"])
        since = datetime.fromisoformat(owner["since"])
    except (OSError, ValueError, KeyError, TypeError):
        return "another process (it has not said which)", None
    ago = max(0.0, (datetime.now(since.tzinfo) - since).total_seconds())
    command = f" (`{owner['command']}`)" if owner.get("command") else ""
    return f"PID {pid}{command}, since {since.strftime('%Y-%m-%d %H:%M:%S')} ({ago:.0f} s ago)", pid


@contextlib.contextmanager
def index_lock(root: Path, timeout: float, on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold the index's writer lock. When another process holds it, say whom we wait for (through `on_wait`)
    and give up after `timeout` seconds with an `IndexLockTimeout` that names the holder.

    `filelock` uses an OS lock (fcntl on Linux), so a holder that dies releases it; the owner file can then be
    stale, which is harmless: it is only read while the lock is held by someone, and every holder rewrites it."""
    check_root(root, write=True)
    lock = FileLock(str(root / LOCK), thread_local=False)
    started = time.monotonic()
    try:
        lock.acquire(timeout=0)
    except Timeout:
        holder, pid = _describe_holder(root)
        if on_wait is not None:
            on_wait(f"Waiting for the index lock of {root}: held by {holder}; giving up after {timeout:.0f} s.")
        try:
            lock.acquire(timeout=max(0.0, timeout - (time.monotonic() - started)))
        except Timeout:
            holder, pid = _describe_holder(root)
            stop = f"if it hangs, stop it (kill {pid}); " if pid else ""
            raise IndexLockTimeout(
                f"Gave up waiting for the index lock of {root} after {timeout:.0f} s: it is held by {holder}. "
                f"Fix: let that process finish and try again; {stop}or wait longer with "
                f"index.lock_timeout_s (RAG_INDEX__LOCK_TIMEOUT_S).") from None
    try:
        owner = {"pid": os.getpid(), "since": datetime.now().astimezone().isoformat(timespec="seconds"),
                 "command": " ".join([Path(sys.argv[0]).name] + sys.argv[1:])[:200] if sys.argv else ""}
        with contextlib.suppress(OSError):
            atomic_write_text(root / LOCK_OWNER, json.dumps(owner))
        yield
    finally:
        with contextlib.suppress(OSError):
            (root / LOCK_OWNER).unlink()
        lock.release()


@contextlib.contextmanager
def try_index_lock(root: Path) -> Iterator[bool]:
    """The writer lock if it is free right now (True), else nothing (False): for small fix-ups by readers, such
    as rewriting a damaged pointer, which must never make a reader wait for a writer."""
    try:
        check_root(root, write=True)
    except IndexDirError:
        yield False
        return
    lock = FileLock(str(root / LOCK), thread_local=False)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
