"""Per-index self-calibration: what an off-topic question and an on-topic one score against *this* index.

Why: the raw cosine of the best chunk means different things on different documents. Measured on the dev sets
(each document alone in its index), off-topic questions score 0.08 on the essay, 0.17 on the GNU ed manual and
0.14 on the Python tutorial chapter, and answerable ones 0.66, 0.60 and 0.51: a threshold fitted to the essay's
scale refused 22% of the ed manual's and 38% of the tutorial's answerable dev questions. So the decision reads
the best chunk's cosine on a scale each index sets for itself:

    dense_lift = (dense_top - null_mean) / (own_mean - null_mean)

- `null_mean` (and `null_sd`): the best dense cosine of a fixed bank of general off-topic questions
  (rag/probes.json, 60 questions written for this and in no evaluation set). 0 on the lift scale.
- `own_mean`: the best dense cosine of pseudo-questions made from the index's own sentences ("What about" +
  the first half of a sentence's content words), 64 of them spread over the index (one per chunk, or several
  per chunk in an index of fewer chunks).
  1 on the lift scale. Measured on the dev sets: answerable questions average 1.03 / 1.12 / 1.22 lift on the
  three documents (±7%), where the probes' z-score (dense_top - null_mean) / null_sd leaves them at 8.8 / 8.9 /
  6.2 (±15%): the pseudo-questions carry the document's own "how well do questions match here" scale, the
  probes alone do not. Off-topic dev questions stay at or below 0.24 lift, the probes at or below 0.53.

Computed lazily, once per index generation (keyed like the corpus weights), under a lock so concurrent first
questions wait for one computation instead of racing; a `RAG.with_settings` copy over the same generation reuses
it. The probe bank is embedded once per process and embedding model; per generation it costs one embedding batch
of at most 64 pseudo-questions plus 124 top-1 searches (`Calibration.seconds`): measured on 2 CPU cores, 0.2 s
to embed the probes once, then 0.2-0.65 s per generation on the bundled documents (the first question after an
index change pays it; warm answers stay at a 36-48 ms median).

The result is also kept beside the index (`CACHE_FILE` in its folder, keyed by the generation, the embedding model,
the probe bank and `CACHE_VERSION`), so a new process over an unchanged index reads it instead of measuring again:
a cold `rag ask` was 6.25-6.31 s with 0.51-0.64 s of it this measurement (three runs and two profiles, 2 cores).
It is a cache: unreadable, stale or unwritable, it is measured again and nothing fails.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from index import SearchIndex
from index.chunking import is_heading
from index.storage import atomic_write_text
from rag.sentences import split_sentences
from rag.text import content_terms, stem, words

PROBES_FILE = Path(__file__).with_name("probes.json")
PSEUDO_QUESTIONS = 64
MIN_PSEUDO_WORDS = 6
# The lift's denominator never falls below this: an index whose own sentences barely beat the probes (a tiny or
# odd document) must not turn small cosine differences into large lifts.
MIN_SPAN = 0.15
# The cached calibration, in the index's folder. Raise CACHE_VERSION whenever what `calibrate` measures changes
# (the pseudo-questions, the probes' use, the fields), so no process reads a value measured the old way.
CACHE_FILE = "calibration.json"
CACHE_VERSION = 1


@dataclass(frozen=True)
class Calibration:
    """How this index scores off-topic questions (`null_*`) and questions worded from its own text (`own_*`)."""

    null_mean: float
    null_sd: float
    own_mean: float
    own_sd: float
    probes: int = 0
    pseudo: int = 0
    seconds: float = 0.0

    @property
    def span(self) -> float:
        return max(self.own_mean - self.null_mean, MIN_SPAN)

    def lift(self, score: float) -> float:
        """0 where an off-topic question scores on this index, 1 where a question worded from it does."""
        return (score - self.null_mean) / self.span

    def z(self, score: float) -> float:
        """Standard deviations above the off-topic probes."""
        return (score - self.null_mean) / max(self.null_sd, 1e-3)


# Used only when an index has nothing to calibrate on (no chunks, no usable sentences): the average of the three
# bundled documents' calibrations.
DEFAULT_CALIBRATION = Calibration(null_mean=0.13, null_sd=0.06, own_mean=0.55, own_sd=0.125)


def load_probes(path: Path = PROBES_FILE) -> list[str]:
    return [q for q in json.loads(Path(path).read_text(encoding="utf-8"))["questions"] if q.strip()]


def pseudo_question(sentence: str) -> str | None:
    """"What about" + the first half (at least three) of a sentence's content words, in their order."""
    terms = set(content_terms(sentence))
    kept = [w for w in words(sentence) if len(w) >= 2 and stem(w) in terms]
    if len(words(sentence)) < MIN_PSEUDO_WORDS or len(kept) < 3:
        return None
    return "What about " + " ".join(kept[:max(3, len(kept) // 2)]) + "?"


def pseudo_questions(chunk_texts: list[str], limit: int = PSEUDO_QUESTIONS) -> list[str]:
    """Up to `limit` pseudo-questions spread evenly over the index: from the longest sentence of each of `limit`
    evenly spaced chunks, or, in an index of fewer chunks, from the longest few sentences of every chunk (a
    one-chunk note still gets a scale of its own), so a large index costs no more than a small one."""
    n = len(chunk_texts)
    if n == 0:
        return []
    picks = sorted({int(i * n / limit) for i in range(limit)}) if n > limit else list(range(n))
    per_chunk = -(-limit // len(picks))
    out: list[str] = []
    for i in picks:
        sentences = [s.text for s in split_sentences(chunk_texts[i]) if not is_heading(s.text)]
        made = [q for q in map(pseudo_question, sorted(sentences, key=len, reverse=True)) if q]
        out.extend(made[:per_chunk])
    return out[:limit]


def calibrate(snapshot, embedder, probes: list[str], probe_vectors: np.ndarray | None = None) -> Calibration:
    """Measure one index snapshot (see the module docstring); `probe_vectors` are the probes' embeddings when the
    caller keeps them (they do not change with the index)."""
    started = time.perf_counter()
    chunks = snapshot.chunks
    if not chunks or snapshot.dense is None:
        return DEFAULT_CALIBRATION

    def best(vectors: np.ndarray) -> np.ndarray:
        scores = [snapshot.dense.search(v, 1)[1] for v in vectors]
        return np.array([float(s[0]) for s in scores if len(s)], dtype=np.float64)

    null = best(probe_vectors if probe_vectors is not None else embedder.embed(probes))
    if len(null) == 0:
        return DEFAULT_CALIBRATION
    pseudo = pseudo_questions([c.text for c in chunks])
    own = best(embedder.embed(pseudo)) if pseudo else np.zeros(0)
    if len(own) >= 3:
        own_mean, own_sd = float(own.mean()), float(own.std())
    else:  # too little text to word questions from: the bundled documents' average distance above the null
        own_mean = float(null.mean()) + DEFAULT_CALIBRATION.own_mean - DEFAULT_CALIBRATION.null_mean
        own_sd = DEFAULT_CALIBRATION.own_sd
    return Calibration(float(null.mean()), float(null.std()), own_mean, own_sd, len(null), len(own),
                       time.perf_counter() - started)


class IndexCalibration:
    """The current index generation's `Calibration`, computed on first use and whenever the index changes.
    Shared by concurrent requests; `computed` counts the computations (tests check it stays at one), `loaded` the
    values read from the index folder's cache (`CACHE_FILE`)."""

    def __init__(self, index: SearchIndex, probes: list[str] | None = None) -> None:
        self.index = index
        self.probes = probes if probes is not None else load_probes()
        self._probes_sha = hashlib.sha256("\n".join(self.probes).encode("utf-8")).hexdigest()
        self._key: tuple | None = None
        self._value: Calibration | None = None
        self._lock = threading.Lock()
        self._probe_vectors: np.ndarray | None = None
        self.computed = 0
        self.loaded = 0  # read from the index folder's cache instead of computed

    def _index_key(self, snapshot) -> tuple:
        manifest = snapshot.manifest
        return (str(self.index.root), str(snapshot.generation), manifest.built_at if manifest else None,
                len(snapshot.chunks), getattr(self.index.embedder, "model_name", None) if snapshot.chunks else None,
                len(self.probes))

    def __call__(self) -> Calibration:
        """The calibration of the index as it is now. One object per open index, shared by every RAG over it
        (`RAG.with_settings` passes it on), so no cache outlives the objects that own it."""
        snapshot = self.index.snapshot
        key = self._index_key(snapshot)
        with self._lock:
            if key == self._key and self._value is not None:
                return self._value
            stored = self._stored_key(snapshot)
            value = self._read(stored) if snapshot.chunks else None
            if value is not None:
                self.loaded += 1
            elif not snapshot.chunks:
                value = DEFAULT_CALIBRATION
                self.computed += 1
            else:
                if self._probe_vectors is None:  # the probes are embedded once per index object (~0.2 s)
                    self._probe_vectors = self.index.embedder.embed(self.probes)
                value = calibrate(snapshot, self.index.embedder, self.probes, self._probe_vectors)
                self.computed += 1
                self._write(stored, value)
            self._key, self._value = key, value
            return value

    def _stored_key(self, snapshot) -> dict:
        """What the cached value must have been measured on: everything `calibrate` reads."""
        manifest = snapshot.manifest
        return {"version": CACHE_VERSION, "generation": getattr(snapshot.generation, "name", str(snapshot.generation)),
                "built_at": str(manifest.built_at) if manifest else None, "seal": manifest.seal if manifest else None,
                "chunks": len(snapshot.chunks),
                "model": getattr(self.index.embedder, "model_name", None), "probes": self._probes_sha}

    def _cache_path(self) -> Path | None:
        root = getattr(self.index, "root", None)
        return Path(root) / CACHE_FILE if root is not None else None

    def _read(self, stored: dict) -> Calibration | None:
        path = self._cache_path()
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
            return Calibration(**data["value"]) if data and data.get("key") == stored else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a cache: a damaged or foreign file is measured again (and replaced)

    def _write(self, stored: dict, value: Calibration) -> None:
        path = self._cache_path()
        if path is None or not path.parent.is_dir():
            return
        try:
            atomic_write_text(path, json.dumps({"key": stored, "value": asdict(value)}, indent=1) + "\n")
        except OSError:
            pass  # a read-only index folder: every process measures again, as before the cache
