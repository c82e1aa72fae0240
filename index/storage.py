"""Crash-safe persistence: each build writes a complete new generation folder, then flips one pointer file.

A reader only ever follows `CURRENT`, which is replaced atomically (write temp file, fsync, rename), so a crash
at any point leaves either the old or the new generation in force, never a mix of the two.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

POINTER = "CURRENT"


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


def current_generation(root: Path) -> Path | None:
    pointer = root / POINTER
    if not pointer.exists():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    gen = root / name
    return gen if name and gen.is_dir() else None


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
    existing = [int(p.name.split("-")[1]) for p in root.glob("gen-*") if p.name.split("-")[1].isdigit()]
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


def prune(root: Path) -> None:
    """Remove stale generations and abandoned staging folders (from crashed builds); keep the current one."""
    current = current_generation(root)
    for path in list(root.glob("gen-*")) + list(root.glob(".staging-*")):
        if current is not None and path.resolve() == current.resolve():
            continue
        shutil.rmtree(path, ignore_errors=True)


def folder_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
