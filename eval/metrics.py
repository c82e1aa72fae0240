"""Scoring without an LLM judge: span overlap for retrieval and citations, key terms and token F1 for answers.

Everything here is a pure function of plain data (the dicts of `Answer.to_dict()` and of the evaluation
records), so a saved results file can be re-scored, compared and tested without loading any model.
The exact definitions are written out in eval/METRICS.md; keep the two in step.

Per-question scoring is `score_record(record)`; `aggregate(records)` averages a list of scored records;
`compute_metrics(records)` gives the per-split, overall and per-type numbers; `metrics_table(run)` lays them out
as rows with the targets.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

KS = (1, 3, 5, 10)
BUDGETS = (1000, 2000)
NO_ANSWER_TYPES = frozenset({"unanswerable", "adversarial"})
QUESTION_TYPES = ("fact", "synthesis", "paraphrase", "followup", "unanswerable", "adversarial")
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


def recall_at_budget(passages: Sequence[dict], evidence: Sequence[dict], budget: int) -> float | None:
    if not evidence:
        return None
    return _evidence_recall(within_budget(list(passages), budget), evidence)


# --------------------------------------------------------------------------------------------------- answers

# [3], [1, 2], [1][2] (two markers), [2-4] / [2–4] (a range).
_MARKER = re.compile(r"\[\s*(\d+(?:\s*(?:,|;|-|–)\s*\d+)*)\s*\]")
_MARKER_WITH_SPACE = re.compile(r"\s*\[\s*\d+(?:\s*(?:,|;|-|–)\s*\d+)*\s*\]")
_QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "‐": "-", "‑": "-", "–": "-", "—": "-",
                         "\u00a0": " "})


def citation_markers(text: str) -> list[int]:
    """Every passage number cited in the text, once per occurrence, in order.

    [3] gives 3; [1, 2] and [1][2] give 1, 2; [2-4] gives 2, 3, 4. Brackets without digits are not markers."""
    numbers: list[int] = []
    for m in _MARKER.finditer(text or ""):
        for part in re.split(r"\s*[,;]\s*", m.group(1)):
            bounds = re.split(r"\s*[-–]\s*", part)
            if len(bounds) == 2 and bounds[0].isdigit() and bounds[1].isdigit():
                lo, hi = int(bounds[0]), int(bounds[1])
                numbers.extend(range(lo, hi + 1) if 0 <= hi - lo <= 50 else (lo, hi))
            else:
                numbers.extend(int(b) for b in bounds if b.isdigit())
    return numbers


def strip_citations(text: str) -> str:
    return _MARKER_WITH_SPACE.sub("", text or "")


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", (text or "").translate(_QUOTES).casefold())


def key_groups_matched(answer_text: str, keys: Sequence[Sequence[str]]) -> list[bool]:
    """For each key group, whether any of its terms occurs in the answer (case-insensitive substring, citation
    markers removed, curly quotes and dashes folded to ASCII, runs of whitespace collapsed)."""
    folded = _fold(strip_citations(answer_text))
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
    text = strip_citations(text).lower()
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


def cited_spans(answer: dict) -> list[dict]:
    """The distinct passages an answer cites (by number): its `citations`, plus passages named by a marker in the
    text that the citations list lacks. A passage cited twice counts once."""
    cited: dict[int, dict] = {}
    for c in answer.get("citations") or []:
        cited.setdefault(int(c["n"]), c)
    passages = {int(p["n"]): p for p in answer.get("passages") or []}
    for n in citation_markers(answer.get("answer", "")):
        if n not in cited and n in passages:
            cited[n] = passages[n]
    return [cited[n] for n in sorted(cited)]


def marker_counts(answer: dict) -> tuple[int, int]:
    """(all markers, invalid markers): markers in the text naming no passage, plus numbers validation removed."""
    valid = {int(p["n"]) for p in answer.get("passages") or []}
    markers = citation_markers(answer.get("answer", ""))
    removed = list((answer.get("validation") or {}).get("removed") or [])
    invalid = sum(1 for n in markers if n not in valid) + len(removed)
    return len(markers) + len(removed), invalid


# --------------------------------------------------------------------------------------------------- per question


def is_answerable(qtype: str) -> bool:
    """Unanswerable and adversarial questions should be refused; every other type has an answer in the text."""
    return qtype not in NO_ANSWER_TYPES


def score_record(record: dict) -> dict:
    """Add the per-question scores to an evaluation record (in place) and return it.

    Reads: type, answer, refused, citations, passages, validation, expected {answer, keys, evidence (located)},
    retrieved (ranked passages from `rag.retrieve`), error. Writes: retrieval, context_recall, context_chars,
    key_correct, key_groups, f1,
    cited_evidence, citations_total, citations_relevant, citation_precision, cited_sentences_total,
    cited_sentences_relevant, markers, invalid_markers,
    refusal_correct, failed, failure_reasons, warnings.
    """
    expected = record.get("expected") or {}
    evidence = expected.get("evidence") or []
    keys = expected.get("keys") or []
    answerable = is_answerable(record.get("type", ""))
    refused = bool(record.get("refused"))
    error = record.get("error")
    text = record.get("answer") or ""

    record["retrieval"] = retrieval_scores(record.get("retrieved") or [], evidence) if answerable else None
    context = record.get("passages") or []
    record["context_chars"] = sum(_passage_len(x) for x in context)
    record["context_recall"] = _evidence_recall(context, evidence) if answerable and evidence else None

    groups = key_groups_matched(text, keys) if keys else []
    record["key_groups"] = groups
    if answerable and keys:
        record["key_correct"] = bool(all(groups)) and not refused and not error
    else:
        record["key_correct"] = None
    if answerable:
        record["f1"] = 0.0 if (refused or error) else token_f1(text, expected.get("answer", ""))
    else:
        record["f1"] = None

    cited = cited_spans(record)
    relevant = [c for c in cited if any(span_overlaps(c, ev) for ev in evidence)]
    record["citations_total"] = len(cited)
    record["citations_relevant"] = len(relevant)
    if answerable and not refused and not error:
        record["citation_precision"] = len(relevant) / len(cited) if cited else None
        record["cited_evidence"] = bool(relevant)
    else:
        record["citation_precision"] = None
        record["cited_evidence"] = False if answerable else None
    sentences = [{"source": c.get("source"), "start": int(h[0]), "end": int(h[1])}
                 for c in cited for h in (c.get("highlights") or []) if len(h) == 2]
    sentences = list({(x["source"], x["start"], x["end"]): x for x in sentences}.values())
    record["cited_sentences_total"] = len(sentences)
    record["cited_sentences_relevant"] = sum(1 for x in sentences if any(span_overlaps(x, ev) for ev in evidence))
    record["markers"], record["invalid_markers"] = marker_counts(record)
    record["refusal_correct"] = (refused if not answerable else not refused) if not error else False

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
        reasons.append(f"answered a{'n' if record.get('type', '')[:1] in 'aeiou' else ''} "
                       f"{record.get('type', 'no-answer')} question instead of refusing")
    if record["invalid_markers"]:
        reasons.append(f"{record['invalid_markers']} invalid citation marker(s)")
    if answerable and evidence and not any(ev.get("spans") for ev in evidence):
        warnings.append("evidence not found in any indexed document")
    elif answerable and any(not ev.get("spans") for ev in evidence):
        warnings.append("some evidence not found in any indexed document")
    if record["context_recall"] is not None and record["context_recall"] < 1.0 and not error:
        warnings.append("evidence not in the context given to the generator" if record["context_recall"] == 0
                        else "only part of the evidence in the context given to the generator")
    r = record["retrieval"]
    if r is not None and r.get("recall@1000c", 1.0) < 1.0:
        warnings.append("evidence not fully retrieved within 1,000 characters")
    record["failed"] = bool(reasons)
    record["failure_reasons"] = reasons
    record["warnings"] = warnings
    return record


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


def aggregate(records: Sequence[dict]) -> dict:
    """Average scored records into one flat dict of metrics (None where no question qualifies).

    Counts: n, n_answerable, n_no_answer, errors. The definitions are in eval/METRICS.md.
    """
    answerable = [r for r in records if is_answerable(r.get("type", ""))]
    no_answer = [r for r in records if not is_answerable(r.get("type", ""))]
    with_retrieval = [r["retrieval"] for r in answerable if r.get("retrieval")]
    m: dict = {"n": len(records), "n_answerable": len(answerable), "n_no_answer": len(no_answer),
               "errors": sum(1 for r in records if r.get("error"))}
    for k in KS:
        m[f"recall@{k}"] = _mean(s[f"recall@{k}"] for s in with_retrieval)
    m["mrr"] = _mean(s["rr"] for s in with_retrieval)
    for b in BUDGETS:
        m[f"recall@{b}c"] = _mean(s[f"recall@{b}c"] for s in with_retrieval)
    m["context_recall"] = _mean(r.get("context_recall") for r in answerable if not r.get("error"))
    m["context_chars"] = percentile([r.get("context_chars", 0) for r in records
                                     if r.get("passages") and not r.get("error")], 50)
    m["key_accuracy"] = _mean(float(r["key_correct"]) for r in answerable if r.get("key_correct") is not None)
    m["f1"] = _mean(r["f1"] for r in answerable)
    precise = [r for r in answerable if not r.get("refused") and not r.get("error")]
    m["n_answered"] = len(precise)
    total_cited = sum(r.get("citations_total", 0) for r in precise)
    m["citation_precision"] = (sum(r.get("citations_relevant", 0) for r in precise) / total_cited
                               if total_cited else None)
    total_sentences = sum(r.get("cited_sentences_total", 0) for r in precise)
    m["sentence_citation_precision"] = (sum(r.get("cited_sentences_relevant", 0) for r in precise) / total_sentences
                                        if total_sentences else None)
    m["citation_recall"] = _mean(float(bool(r.get("cited_evidence"))) for r in answerable)
    markers = sum(r.get("markers", 0) for r in records)
    m["invalid_citation_rate"] = sum(r.get("invalid_markers", 0) for r in records) / markers if markers else (
        0.0 if records else None)
    m["correct_refusal_rate"] = _mean(float(bool(r.get("refused")) and not r.get("error")) for r in no_answer)
    m["false_refusal_rate"] = _mean(float(bool(r.get("refused"))) for r in answerable)
    m["refusal_rate"] = _mean(float(bool(r.get("refused"))) for r in records)
    timed = [r for r in records if not r.get("error")]
    for stage in LATENCY_STAGES:
        values = [(r.get("timings_ms") or {}).get(stage) for r in timed]
        values = [v for v in values if v is not None]
        m[f"latency.{stage}.median_ms"] = percentile(values, 50)
        m[f"latency.{stage}.p95_ms"] = percentile(values, 95)
    m["failed"] = sum(1 for r in records if r.get("failed"))
    return m


def group_names(records: Sequence[dict]) -> list[str]:
    """The report's columns: each split in order of appearance, then "all" when there is more than one split."""
    splits = list(dict.fromkeys(r.get("split", "all") for r in records))
    return splits + ["all"] if len(splits) != 1 else splits


def compute_metrics(records: Sequence[dict], targets: Sequence["Target"] | None = None) -> dict:
    """{"groups": {split...: m, "all": m}, "by_type": {group: {type: m}}, "targets": {...}} for scored records."""
    groups: dict[str, dict] = {}
    by_type: dict[str, dict] = {}
    for name in group_names(records):
        rows = records if name == "all" or len(group_names(records)) == 1 else [r for r in records
                                                                                  if r.get("split") == name]
        groups[name] = aggregate(rows)
        types = [t for t in QUESTION_TYPES if any(r.get("type") == t for r in rows)]
        types += sorted({r.get("type") for r in rows} - set(types) - {None})
        by_type[name] = {t: aggregate([r for r in rows if r.get("type") == t]) for t in types}
    result = {"groups": groups, "by_type": by_type}
    result["targets"] = check_targets(result, targets if targets is not None else TARGETS)
    return result


# --------------------------------------------------------------------------------------------------- targets & table


@dataclass(frozen=True)
class MetricSpec:
    key: str
    label: str
    kind: str = "ratio"           # ratio (0..1), ms, chars or count
    higher_is_better: bool | None = True   # None: neither direction is better (a size)
    section: str = ""
    short: str = ""               # column header where space is tight

    @property
    def abbrev(self) -> str:
        return self.short or self.label


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("recall@1", "Recall@1", section="Retrieval", short="R@1"),
    MetricSpec("recall@3", "Recall@3", section="Retrieval", short="R@3"),
    MetricSpec("recall@5", "Recall@5", section="Retrieval", short="R@5"),
    MetricSpec("recall@10", "Recall@10", section="Retrieval", short="R@10"),
    MetricSpec("mrr", "MRR@10", section="Retrieval", short="MRR"),
    MetricSpec("recall@1000c", "Recall in 1,000 chars", section="Retrieval", short="R@1000c"),
    MetricSpec("recall@2000c", "Recall in 2,000 chars", section="Retrieval", short="R@2000c"),
    MetricSpec("context_recall", "Context recall", section="Retrieval", short="Ctx R"),
    MetricSpec("context_chars", "Context size (median)", "chars", None, "Retrieval", short="Ctx chars"),
    MetricSpec("key_accuracy", "Key-term accuracy", section="Answers", short="Keys"),
    MetricSpec("f1", "Token F1", section="Answers", short="F1"),
    MetricSpec("citation_precision", "Citation precision", section="Citations", short="Cite P"),
    MetricSpec("sentence_citation_precision", "Cited-sentence precision", section="Citations", short="Sent P"),
    MetricSpec("citation_recall", "Citation recall", section="Citations", short="Cite R"),
    MetricSpec("invalid_citation_rate", "Invalid citations", higher_is_better=False, section="Citations",
               short="Invalid"),
    MetricSpec("correct_refusal_rate", "Correct refusals", section="Refusals", short="Refused ok"),
    MetricSpec("false_refusal_rate", "False refusals", higher_is_better=False, section="Refusals", short="False ref"),
    MetricSpec("latency.retrieve.median_ms", "Retrieve median", "ms", False, "Latency", short="Retr ms"),
    MetricSpec("latency.generate.median_ms", "Generate median", "ms", False, "Latency", short="Gen ms"),
    MetricSpec("latency.total.median_ms", "Total median", "ms", False, "Latency", short="Total ms"),
    MetricSpec("latency.total.p95_ms", "Total p95", "ms", False, "Latency", short="p95 ms"),
)
# Not in the main table: the share of questions refused, which is the correct-refusal rate for unanswerable and
# adversarial questions and the false-refusal rate for the others (so one column serves the per-type breakdown).
EXTRA_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("refusal_rate", "Refused", section="Refusals", short="Refused"),
)
METRIC_BY_KEY = {m.key: m for m in METRICS + EXTRA_METRICS}
# The per-type breakdown shows these.
TYPE_METRICS = ("recall@5", "recall@1000c", "mrr", "context_recall", "key_accuracy", "f1", "citation_precision",
                "citation_recall",
                "refusal_rate", "latency.total.median_ms")


@dataclass(frozen=True)
class Target:
    metric: str
    op: str          # ">=" or "<="
    threshold: float

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.threshold - 1e-12 if self.op == ">=" else value <= self.threshold + 1e-12

    def describe(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {self.threshold:g}"


TARGETS: tuple[Target, ...] = (
    Target("recall@1000c", ">=", 0.95),
    Target("key_accuracy", ">=", 0.85),
    Target("citation_precision", ">=", 0.9),
    Target("correct_refusal_rate", ">=", 0.9),
    Target("false_refusal_rate", "<=", 0.05),
)
TARGET_SPLIT = "test"


def check_targets(metrics: dict, targets: Sequence[Target] = TARGETS, split: str = TARGET_SPLIT) -> dict:
    """Targets are set for the held-out test split; a run without it is checked on "all" (and says so)."""
    groups = metrics["groups"]
    name = split if split in groups else ("all" if "all" in groups else next(iter(groups), None))
    results = []
    for t in targets:
        value = groups.get(name, {}).get(t.metric) if name else None
        results.append({"metric": t.metric, "label": METRIC_BY_KEY[t.metric].label if t.metric in METRIC_BY_KEY
                        else t.metric, "op": t.op, "threshold": t.threshold, "value": value, "met": t.met(value)})
    # A target no question measures (e.g. key accuracy on a run of adversarial questions only) is not missed.
    return {"split": name, "results": results, "all_met": all(r["met"] is not False for r in results)}


def format_value(value, kind: str = "ratio") -> str:
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
    targets = {t.metric: t for t in TARGETS}
    rows = []
    for spec in METRICS:
        target = targets.get(spec.key)
        values = {g: m.get(spec.key) for g, m in groups.items()}
        rows.append({
            "key": spec.key, "label": spec.label, "section": spec.section, "kind": spec.kind,
            "higher_is_better": spec.higher_is_better, "values": values,
            "n": {g: _support(spec.key, m) for g, m in groups.items()},
            "target": target.describe() if target else None,
            "met": {g: (target.met(v) if target else None) for g, v in values.items()},
        })
    return rows


def _support(key: str, m: dict) -> int:
    if key in ("correct_refusal_rate",):
        return m.get("n_no_answer", 0)
    if key in ("citation_precision", "sentence_citation_precision"):
        return m.get("n_answered", 0)
    if key.startswith("latency") or key in ("invalid_citation_rate", "context_chars"):
        return m.get("n", 0)
    return m.get("n_answerable", 0)


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
