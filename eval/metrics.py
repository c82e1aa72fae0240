"""Scoring without an LLM judge: span overlap for retrieval and citations, key terms and token F1 for answers.

Everything here is a pure function of plain data (an `EvalRecord` holds the JSON of `Answer.to_dict()` and of
what the runner added), so a saved results file can be re-scored, compared and tested without loading any model.
The exact definitions are written out in eval/METRICS.md; keep the two in step.

Per-question scoring is `score(record) -> Scores`; `aggregate(records)` averages scored records into one flat
dict keyed by metric; `compute_metrics(records)` gives the per-split, overall and per-type numbers;
`metrics_table(run)` lays them out as rows with the targets.

Each aggregate metric is defined once, as a `MetricSpec` below: its key (in the results JSON), label, direction,
the questions it is averaged over and how it is computed. Every other module (the CLI, the HTML report, the
comparison, the quality gate, the UI) refers to a metric through these constants or `METRIC_BY_KEY`, never by
retyping its key, so a renamed or retired metric fails at import instead of showing "–".

Citation markers (`[1]`, `[1, 2]`, `[1-3]`, escaped literals `\\[2]`) are read by `rag.markers`, the one
definition of that syntax; it imports only `re`, so eval stays light.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from eval.records import (NEAR_MISS, NO_ANSWER_TYPES, OFF_TOPIC, QUESTION_TYPES, EvalRecord, Scores,  # noqa: F401
                          is_answerable)
from rag import markers

KS = (1, 3, 5, 10)
BUDGETS = (1000, 2000)
LATENCY_STAGES = ("retrieve", "generate", "total")

# --------------------------------------------------------------------------------------------------- spans


def overlap(a_start: int, a_end: int, b_start: int, b_end: int) -> int:
    """Characters shared by the half-open spans [a_start, a_end) and [b_start, b_end); touching spans share 0."""
    return max(0, min(a_end, b_end) - max(a_start, b_start))


def span_overlaps(span: dict, evidence: dict) -> bool:
    """True when a passage/citation span and a located evidence item share at least one character.

    `evidence` is an item of `expected.evidence`: {"text", "spans": [{"source", "start", "end"}, ...]} (an
    evidence string may occur in several documents; a hit on any occurrence counts), or a bare span dict.
    """
    spans = evidence.get("spans")
    if spans is None:
        spans = [evidence] if evidence.get("source") is not None and evidence.get("start", -1) >= 0 else []
    for ev in spans:
        if ev.get("source") == span.get("source") and overlap(span["start"], span["end"], ev["start"], ev["end"]) > 0:
            return True
    return False


def locate_evidence(evidence: Sequence[str], documents: dict[str, str]) -> list[dict]:
    """Find each evidence string (first occurrence, exact match) in every document that contains it.

    Returns one dict per evidence string: {"text", "source", "start", "end", "spans"}; "source"/"start"/"end"
    repeat the first location for readability (start = end = -1 and spans = [] when the text occurs nowhere).
    """
    located = []
    for text in evidence:
        spans = []
        for source, doc in documents.items():
            pos = doc.find(text) if text else -1
            if pos >= 0:
                spans.append({"source": source, "start": pos, "end": pos + len(text)})
        first = spans[0] if spans else {"source": None, "start": -1, "end": -1}
        located.append({"text": text, **first, "spans": spans})
    return located


# --------------------------------------------------------------------------------------------------- retrieval


def _passage_len(p: dict) -> int:
    return max(0, int(p["end"]) - int(p["start"]))


def within_budget(passages: Sequence[dict], budget: int) -> list[dict]:
    """The ranked passages a reader gets within `budget` characters: taken in rank order while the running
    total of their lengths stays <= budget, stopping at the first one that does not fit whole."""
    taken, used = [], 0
    for p in passages:
        used += _passage_len(p)
        if used > budget:
            break
        taken.append(p)
    return taken


def _evidence_recall(passages: Sequence[dict], evidence: Sequence[dict]) -> float:
    hit = sum(1 for ev in evidence if any(span_overlaps(p, ev) for p in passages))
    return hit / len(evidence)


def retrieval_scores(passages: Sequence[dict], evidence: Sequence[dict], ks: Iterable[int] = KS,
                     budgets: Iterable[int] = BUDGETS) -> dict | None:
    """Per-question retrieval scores for ranked passages (best first) against located evidence.

    recall@k: fraction of evidence items overlapped by any of the top k passages; rr: 1/rank of the first passage
    overlapping any evidence item (0 when none does); recall@Nc: recall over `within_budget(passages, N)`;
    hit_ranks: the 1-based ranks of passages that overlap some evidence. None when there is no evidence
    (an unanswerable question has nothing to retrieve).
    """
    if not evidence:
        return None
    passages = list(passages)
    hit_ranks = [i for i, p in enumerate(passages, start=1) if any(span_overlaps(p, ev) for ev in evidence)]
    scores: dict = {f"recall@{k}": _evidence_recall(passages[:k], evidence) for k in ks}
    scores["rr"] = 1.0 / hit_ranks[0] if hit_ranks else 0.0
    for b in budgets:
        scores[f"recall@{b}c"] = _evidence_recall(within_budget(passages, b), evidence)
    scores["hit_ranks"] = hit_ranks
    return scores


# --------------------------------------------------------------------------------------------------- answers

_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "‐": "-", "‑": "-", "–": "-", "—": "-",
                         "\u00a0": " "})


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", (text or "").translate(_QUOTES).casefold())


def key_groups_matched(answer_text: str, keys: Sequence[Sequence[str]]) -> list[bool]:
    """For each key group, whether any of its terms occurs in the answer (case-insensitive substring, citation
    markers removed, curly quotes and dashes folded to ASCII, runs of whitespace collapsed).

    The answer is read as a person reads it (`markers.plain`): markers gone, so "[1]" cannot satisfy a key "1",
    and a quoted literal "\\[2]" back to the document's "[2]"."""
    folded = _fold(markers.plain(answer_text or ""))
    return [any(_fold(term).strip() and _fold(term).strip() in folded for term in group) for group in keys]


def key_correct(answer_text: str, keys: Sequence[Sequence[str]]) -> bool | None:
    """True when every key group has a term in the answer; None when there are no keys (nothing to check)."""
    if not keys:
        return None
    return all(key_groups_matched(answer_text, keys))


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | set("’‘“”–—…«»")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace (citations removed first)."""
    text = markers.plain(text or "").lower()
    text = "".join(" " if ch in _PUNCT else ch for ch in text)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between normalised prediction and reference (1.0 when both are empty)."""
    pred = normalize_answer(prediction).split()
    ref = normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------------- citations


def cited_spans(record: EvalRecord) -> list[dict]:
    """The distinct passages an answer cites (by number): its `citations`, plus passages named by a marker in the
    text that the citations list lacks. A passage cited twice counts once."""
    cited: dict[int, dict] = {}
    for c in record.citations:
        cited.setdefault(int(c["n"]), c)
    passages = {int(p["n"]): p for p in record.passages}
    for n in markers.numbers(record.answer):
        if n not in cited and n in passages:
            cited[n] = passages[n]
    return [cited[n] for n in sorted(cited)]


def marker_counts(record: EvalRecord) -> tuple[int, int]:
    """(all markers, invalid markers): markers in the text naming no passage, plus numbers validation removed.

    A marker naming several passages (`[1, 2]`, `[1-3]`) counts once per number; an escaped literal (`\\[2]`,
    document text quoted in the answer) is no marker."""
    valid = {int(p["n"]) for p in record.passages}
    cited = markers.numbers(record.answer)
    removed = list((record.validation or {}).get("removed") or [])
    invalid = sum(1 for n in cited if n not in valid) + len(removed)
    return len(cited) + len(removed), invalid


# --------------------------------------------------------------------------------------------------- per question


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def score(record: EvalRecord) -> Scores:
    """The per-question scores of a record (see eval/METRICS.md). Pure: the record is not changed.

    Reads: type, answer, refused, citations, passages, validation, expected (answer, keys, located evidence),
    retrieved (ranked passages from `rag.retrieve`) and error.
    """
    expected = record.expected
    evidence, keys = expected.evidence, expected.keys
    answerable = record.answerable
    refused, error, text = record.refused, record.error, record.answer or ""

    retrieval = retrieval_scores(record.retrieved, evidence) if answerable else None
    context = record.passages
    context_chars = sum(_passage_len(x) for x in context)
    context_recall = _evidence_recall(context, evidence) if answerable and evidence else None

    groups = key_groups_matched(text, keys) if keys else []
    correct = (bool(all(groups)) and not refused and not error) if answerable and keys else None
    if answerable:
        f1 = 0.0 if (refused or error) else token_f1(text, expected.answer)
    else:
        f1 = None

    cited = cited_spans(record)
    relevant = [c for c in cited if any(span_overlaps(c, ev) for ev in evidence)]
    if answerable and not refused and not error:
        precision = len(relevant) / len(cited) if cited else None
        cited_evidence: bool | None = bool(relevant)
    else:
        precision = None
        cited_evidence = False if answerable else None
    sentences = [{"source": c.get("source"), "start": int(h[0]), "end": int(h[1])}
                 for c in cited for h in (c.get("highlights") or []) if len(h) == 2]
    sentences = list({(x["source"], x["start"], x["end"]): x for x in sentences}.values())
    n_markers, invalid = marker_counts(record)
    refusal_correct = (refused if not answerable else not refused) if not error else False

    reasons, warnings = [], []
    if error:
        reasons.append(f"error: {error}")
    elif answerable:
        if refused:
            reasons.append("refused an answerable question")
        else:
            missing = [g for g, ok in zip(keys, groups) if not ok]
            if missing:
                reasons.append("key terms missing: " + "; ".join(" / ".join(g) for g in missing))
            if not relevant:
                reasons.append("no cited passage overlaps the evidence" if cited else "answer cites no passage")
    elif not refused:
        qtype = record.type or "no-answer"
        reasons.append(f"answered {_article(qtype)} {qtype} question instead of refusing")
    if invalid:
        reasons.append(f"{invalid} invalid citation marker(s)")
    if answerable and evidence and not any(ev.get("spans") for ev in evidence):
        warnings.append("evidence not found in any indexed document")
    elif answerable and any(not ev.get("spans") for ev in evidence):
        warnings.append("some evidence not found in any indexed document")
    if context_recall is not None and context_recall < 1.0 and not error:
        warnings.append("evidence not in the context given to the generator" if context_recall == 0
                        else "only part of the evidence in the context given to the generator")
    if retrieval is not None and retrieval.get(RECALL_1000C.key, 1.0) < 1.0:
        warnings.append("evidence not fully retrieved within 1,000 characters")

    return Scores(retrieval=retrieval, context_recall=context_recall, context_chars=context_chars,
                  key_correct=correct, key_groups=groups, f1=f1, cited_evidence=cited_evidence,
                  citations_total=len(cited), citations_relevant=len(relevant), citation_precision=precision,
                  cited_sentences_total=len(sentences),
                  cited_sentences_relevant=sum(1 for x in sentences if any(span_overlaps(x, ev) for ev in evidence)),
                  markers=n_markers, invalid_markers=invalid, refusal_correct=refusal_correct, failed=bool(reasons),
                  failure_reasons=reasons, warnings=warnings)


def _scores(record: EvalRecord) -> Scores:
    return record.scores if record.scores is not None else score(record)


# --------------------------------------------------------------------------------------------------- aggregates


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    data = sorted(float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v)))
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def _mean(values: Iterable) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


@dataclass(frozen=True)
class Group:
    """A set of scored records and the subsets the metrics are averaged over (computed once per group)."""

    records: Sequence[EvalRecord]
    scores: list[Scores] = field(init=False)
    answerable: list[tuple[EvalRecord, Scores]] = field(init=False)
    no_answer: list[tuple[EvalRecord, Scores]] = field(init=False)
    off_topic: list[EvalRecord] = field(init=False)                  # no-answer questions by kind
    near_miss: list[EvalRecord] = field(init=False)
    answered: list[tuple[EvalRecord, Scores]] = field(init=False)   # answerable, not refused, no error
    retrieval: list[dict] = field(init=False)                       # per-question retrieval scores

    def __post_init__(self) -> None:
        pairs = [(r, _scores(r)) for r in self.records]
        set_ = object.__setattr__
        set_(self, "scores", [s for _, s in pairs])
        set_(self, "answerable", [(r, s) for r, s in pairs if r.answerable])
        set_(self, "no_answer", [(r, s) for r, s in pairs if not r.answerable])
        set_(self, "off_topic", [r for r, _ in self.no_answer if r.type == OFF_TOPIC])
        set_(self, "near_miss", [r for r, _ in self.no_answer if r.type == NEAR_MISS])
        set_(self, "answered", [(r, s) for r, s in self.answerable if not r.refused and not r.error])
        set_(self, "retrieval", [s.retrieval for _, s in self.answerable if s.retrieval])

    @property
    def timed(self) -> list[EvalRecord]:
        return [r for r in self.records if not r.error]


# Which questions a metric is averaged over; the table shows that count as the metric's support.
OVER_ANSWERABLE, OVER_ANSWERED, OVER_NO_ANSWER, OVER_ALL = "answerable", "answered", "no_answer", "all"
OVER_OFF_TOPIC, OVER_NEAR_MISS = "off_topic", "near_miss"


@dataclass(frozen=True)
class MetricSpec:
    """One aggregate metric: the only place its key, label, direction and computation are written."""

    key: str                      # the key in the results JSON and in `aggregate`'s dict
    label: str
    compute: Callable[[Group], float | None] = field(compare=False, repr=False)
    kind: str = "ratio"           # ratio (0..1), ms, chars or count
    higher_is_better: bool | None = True   # None: neither direction is better (a size)
    section: str = ""
    short: str = ""               # column header where space is tight
    over: str = OVER_ANSWERABLE

    @property
    def abbrev(self) -> str:
        return self.short or self.label

    def support(self, m: dict) -> int:
        """How many questions the value in the aggregate `m` is over."""
        return m.get({OVER_ANSWERABLE: "n_answerable", OVER_ANSWERED: "n_answered", OVER_NO_ANSWER: "n_no_answer",
                      OVER_OFF_TOPIC: "n_off_topic", OVER_NEAR_MISS: "n_near_miss", OVER_ALL: "n"}[self.over], 0)


# Per-question retrieval keys besides the recall@… ones (which equal their aggregate's key).
RECIPROCAL_RANK = "rr"
HIT_RANKS = "hit_ranks"


def _retrieval_mean(key: str) -> Callable[[Group], float | None]:
    return lambda g: _mean(s[key] for s in g.retrieval)


def _recall_at(k: int) -> MetricSpec:
    return MetricSpec(f"recall@{k}", f"Recall@{k}", _retrieval_mean(f"recall@{k}"), section="Retrieval",
                      short=f"R@{k}")


def _recall_within(budget: int) -> MetricSpec:
    return MetricSpec(f"recall@{budget}c", f"Recall in {budget:,} chars", _retrieval_mean(f"recall@{budget}c"),
                      section="Retrieval", short=f"R@{budget} chars")


def _citation_precision(g: Group) -> float | None:
    total = sum(s.citations_total for _, s in g.answered)      # micro-average: summed, then divided
    return sum(s.citations_relevant for _, s in g.answered) / total if total else None


def _sentence_precision(g: Group) -> float | None:
    total = sum(s.cited_sentences_total for _, s in g.answered)
    return sum(s.cited_sentences_relevant for _, s in g.answered) / total if total else None


def _invalid_rate(g: Group) -> float | None:
    total = sum(s.markers for s in g.scores)
    if not total:
        return 0.0 if g.records else None
    return sum(s.invalid_markers for s in g.scores) / total


def _latency(stage: str, q: float) -> Callable[[Group], float | None]:
    return lambda g: percentile([v for v in ((r.timings_ms or {}).get(stage) for r in g.timed) if v is not None], q)


RECALL_1, RECALL_3, RECALL_5, RECALL_10 = (_recall_at(k) for k in KS)
MRR = MetricSpec("mrr", "MRR@10", _retrieval_mean(RECIPROCAL_RANK), section="Retrieval", short="MRR")
RECALL_1000C, RECALL_2000C = (_recall_within(b) for b in BUDGETS)
CONTEXT_RECALL = MetricSpec("context_recall", "Context recall",
                            lambda g: _mean(s.context_recall for r, s in g.answerable if not r.error),
                            section="Retrieval", short="Context rec.")
CONTEXT_CHARS = MetricSpec("context_chars", "Context size (median)",
                           lambda g: percentile([s.context_chars for r, s in zip(g.records, g.scores)
                                                 if r.passages and not r.error], 50),
                           "chars", None, "Retrieval", short="Context chars", over=OVER_ALL)
KEY_ACCURACY = MetricSpec("key_accuracy", "Key-term accuracy",
                          lambda g: _mean(float(s.key_correct) for _, s in g.answerable if s.key_correct is not None),
                          section="Answers", short="Key terms")
F1 = MetricSpec("f1", "Token F1", lambda g: _mean(s.f1 for _, s in g.answerable), section="Answers", short="F1")
CITATION_PRECISION = MetricSpec("citation_precision", "Citation precision", _citation_precision,
                                section="Citations", short="Cite prec.", over=OVER_ANSWERED)
SENTENCE_CITATION_PRECISION = MetricSpec("sentence_citation_precision", "Cited-sentence precision",
                                         _sentence_precision, section="Citations", short="Sent. prec.",
                                         over=OVER_ANSWERED)
CITATION_RECALL = MetricSpec("citation_recall", "Citation recall",
                             lambda g: _mean(float(bool(s.cited_evidence)) for _, s in g.answerable),
                             section="Citations", short="Cite recall")
INVALID_CITATION_RATE = MetricSpec("invalid_citation_rate", "Invalid citations", _invalid_rate,
                                   higher_is_better=False, section="Citations", short="Invalid", over=OVER_ALL)
CORRECT_REFUSAL_RATE = MetricSpec("correct_refusal_rate", "Correct refusals",
                                  lambda g: _mean(float(r.refused and not r.error) for r, _ in g.no_answer),
                                  section="Refusals", short="Refused ok", over=OVER_NO_ANSWER)
# The same rate per kind of question to refuse. They differ in kind, not only in difficulty: an off-topic question
# finds no passage near it, a near-miss one finds the right passage, which does not state what is asked, so one
# overall rate would let many easy off-topic refusals hide near misses that are all answered.
OFF_TOPIC_REFUSAL_RATE = MetricSpec("offtopic_refusal_rate", "Correct refusals, off-topic",
                                    lambda g: _mean(float(r.refused and not r.error) for r in g.off_topic),
                                    section="Refusals", short="Off-topic ref.", over=OVER_OFF_TOPIC)
NEAR_MISS_REFUSAL_RATE = MetricSpec("nearmiss_refusal_rate", "Correct refusals, near-miss",
                                    lambda g: _mean(float(r.refused and not r.error) for r in g.near_miss),
                                    section="Refusals", short="Near-miss ref.", over=OVER_NEAR_MISS)
FALSE_REFUSAL_RATE = MetricSpec("false_refusal_rate", "False refusals",
                                lambda g: _mean(float(r.refused) for r, _ in g.answerable),
                                higher_is_better=False, section="Refusals", short="False ref.")
# The share of questions refused: the correct-refusal rate for the types to refuse and the
# false-refusal rate for the others, so one column serves the per-type breakdown.
REFUSAL_RATE = MetricSpec("refusal_rate", "Refused", lambda g: _mean(float(r.refused) for r in g.records),
                          higher_is_better=None, section="Refusals", short="Refused", over=OVER_ALL)
LATENCY = {(stage, q): MetricSpec(f"latency.{stage}.{'median' if q == 50 else 'p95'}_ms",
                                  f"{stage.capitalize()} {'median' if q == 50 else 'p95'}", _latency(stage, q), "ms",
                                  False, "Latency", short=f"{stage.capitalize()} {'ms' if q == 50 else 'p95'}",
                                  over=OVER_ALL)
           for stage in LATENCY_STAGES for q in (50, 95)}
LATENCY_TOTAL_MEDIAN, LATENCY_TOTAL_P95 = LATENCY["total", 50], LATENCY["total", 95]

# The main metric table, in display order.
METRICS: tuple[MetricSpec, ...] = (
    RECALL_1, RECALL_3, RECALL_5, RECALL_10, MRR, RECALL_1000C, RECALL_2000C, CONTEXT_RECALL, CONTEXT_CHARS,
    KEY_ACCURACY, F1,
    CITATION_PRECISION, SENTENCE_CITATION_PRECISION, CITATION_RECALL, INVALID_CITATION_RATE,
    CORRECT_REFUSAL_RATE, OFF_TOPIC_REFUSAL_RATE, NEAR_MISS_REFUSAL_RATE, FALSE_REFUSAL_RATE,
    LATENCY["retrieve", 50], LATENCY["generate", 50], LATENCY_TOTAL_MEDIAN, LATENCY_TOTAL_P95,
)
# Computed and saved, but not in the main table.
EXTRA_METRICS: tuple[MetricSpec, ...] = (REFUSAL_RATE, LATENCY["retrieve", 95], LATENCY["generate", 95])
METRIC_BY_KEY: dict[str, MetricSpec] = {m.key: m for m in METRICS + EXTRA_METRICS}
# The per-type breakdown shows these.
TYPE_METRICS: tuple[MetricSpec, ...] = (RECALL_5, RECALL_1000C, MRR, CONTEXT_RECALL, KEY_ACCURACY, F1,
                                        CITATION_PRECISION, CITATION_RECALL, REFUSAL_RATE, LATENCY_TOTAL_MEDIAN)


def metric(key: str) -> MetricSpec:
    """The spec of a metric key; a KeyError names the known keys (a typo in a gate file or a caller)."""
    try:
        return METRIC_BY_KEY[key]
    except KeyError:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(METRIC_BY_KEY)}") from None


def aggregate(records: Sequence[EvalRecord]) -> dict:
    """Average scored records into one flat dict: the counts n, n_answerable, n_no_answer (of which n_off_topic
    and n_near_miss), n_answered, errors, failed, and every registered metric by key (None where no question
    qualifies). Unscored records are scored on the way (without being changed). The definitions are in
    eval/METRICS.md."""
    g = Group(records)
    m: dict = {"n": len(records), "n_answerable": len(g.answerable), "n_no_answer": len(g.no_answer),
               "n_off_topic": len(g.off_topic), "n_near_miss": len(g.near_miss),
               "n_answered": len(g.answered), "errors": sum(1 for r in records if r.error)}
    for spec in METRICS + EXTRA_METRICS:
        m[spec.key] = spec.compute(g)
    m["failed"] = sum(1 for s in g.scores if s.failed)
    return m


def group_names(records: Sequence[EvalRecord]) -> list[str]:
    """The report's columns: each split in order of appearance, then "all" when there is more than one split."""
    splits = list(dict.fromkeys(r.split or "all" for r in records))
    return splits + ["all"] if len(splits) != 1 else splits


def compute_metrics(records: Sequence[EvalRecord], targets: Sequence["Target"] | None = None) -> dict:
    """{"groups": {split...: m, "all": m}, "by_type": {group: {type: m}}, "targets": {...}} for scored records."""
    groups: dict[str, dict] = {}
    by_type: dict[str, dict] = {}
    names = group_names(records)
    for name in names:
        rows = records if name == "all" or len(names) == 1 else [r for r in records if r.split == name]
        groups[name] = aggregate(rows)
        types = [t for t in QUESTION_TYPES if any(r.type == t for r in rows)]
        types += sorted({r.type for r in rows} - set(types) - {""})
        by_type[name] = {t: aggregate([r for r in rows if r.type == t]) for t in types}
    result = {"groups": groups, "by_type": by_type}
    result["targets"] = check_targets(result, targets if targets is not None else TARGETS)
    return result


# --------------------------------------------------------------------------------------------------- targets & table


@dataclass(frozen=True)
class Target:
    """A goal for the default configuration on the test split (what the project aims for, not a gate: the
    regression gate of `rag eval --check` is eval/quality_gate.toml)."""

    metric: MetricSpec
    op: str          # ">=" or "<="
    threshold: float

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold - 1e-12 if self.op == ">=" else value <= self.threshold + 1e-12

    def describe(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.threshold:g}"


TARGETS: tuple[Target, ...] = (
    Target(RECALL_1000C, ">=", 0.95),
    Target(KEY_ACCURACY, ">=", 0.85),
    Target(CITATION_PRECISION, ">=", 0.9),
    Target(CORRECT_REFUSAL_RATE, ">=", 0.9),
    Target(OFF_TOPIC_REFUSAL_RATE, ">=", 0.95),
    Target(FALSE_REFUSAL_RATE, "<=", 0.05),
)
TARGET_SPLIT = "test"


def target_group(metrics: dict, split: str = TARGET_SPLIT) -> str | None:
    """The group a split's thresholds are read from: the split itself, else "all", else the only group."""
    groups = metrics["groups"]
    return split if split in groups else ("all" if "all" in groups else next(iter(groups), None))


def check_targets(metrics: dict, targets: Sequence[Target] = TARGETS, split: str = TARGET_SPLIT) -> dict:
    """Targets are set for the held-out test split; a run without it is checked on "all" (and says so)."""
    name = target_group(metrics, split)
    results = []
    for t in targets:
        value = metrics["groups"].get(name, {}).get(t.metric.key) if name else None
        results.append({"metric": t.metric.key, "label": t.metric.label, "op": t.op, "threshold": t.threshold,
                        "value": value, "met": t.met(value)})
    # A target no question measures (e.g. key accuracy on a run of adversarial questions only) is not missed.
    return {"split": name, "results": results, "all_met": all(r["met"] is not False for r in results)}


def format_value(value, kind: str = "ratio") -> str:
    """A metric value as the tables show it ("–" for none): ratios to 3 decimals, ms, chars or a count."""
    if value is None:
        return "–"
    if kind == "ms":
        return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if kind == "chars":
        return f"{value:,.0f} chars"
    if kind == "count":
        return f"{value:,.0f}"
    return f"{value:.3f}"


def metrics_table(run_or_metrics) -> list[dict]:
    """Rows for display: {"key", "label", "section", "kind", "higher_is_better", "values": {group: value},
    "n": {group: questions counted}, "target": "≥ 0.95" | None, "met": {group: bool | None}}.

    Accepts an `EvalRun` or the `metrics` dict of one. Groups are the splits and "all"; a target mark is given
    for every group, though targets are defined for the test split.
    """
    metrics = getattr(run_or_metrics, "metrics", run_or_metrics)
    groups = metrics["groups"]
    targets = {t.metric.key: t for t in TARGETS}
    rows = []
    for spec in METRICS:
        target = targets.get(spec.key)
        values = {g: m.get(spec.key) for g, m in groups.items()}
        rows.append({
            "key": spec.key, "label": spec.label, "section": spec.section, "kind": spec.kind,
            "higher_is_better": spec.higher_is_better, "values": values,
            "n": {g: spec.support(m) for g, m in groups.items()},
            "target": target.describe() if target else None,
            "met": {g: (target.met(v) if target else None) for g, v in values.items()},
        })
    return rows


def formatted_table(run_or_metrics) -> tuple[list[str], list[list[str]]]:
    """(headers, rows of strings) — e.g. for a Gradio Dataframe: Metric, one column per group, Target."""
    rows = metrics_table(run_or_metrics)
    groups = list(rows[0]["values"]) if rows else []
    headers = ["Metric", *groups, "Target"]
    out = []
    for row in rows:
        cells = [row["label"]]
        for g in groups:
            cell = format_value(row["values"][g], row["kind"])
            met = row["met"][g]
            if met is not None:
                cell += " ✓" if met else " ✗"
            cells.append(cell)
        cells.append(row["target"] or "")
        out.append(cells)
    return headers, out
