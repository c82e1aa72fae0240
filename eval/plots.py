"""Recall curves as PNG bytes (matplotlib's Agg canvas directly: no pyplot state, no display, thread-safe)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from eval.metrics import BUDGETS, RECALL_1000C, TARGETS, retrieval_scores
from eval.records import EvalRecord

CURVE_KS = tuple(range(1, 11))
CURVE_BUDGETS = (250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000)


def _records_for(run, group: str) -> list[EvalRecord]:
    if group == "all":
        return run.records
    return [r for r in run.records if r.split == group]


def budget_marks() -> tuple[int, float | None]:
    """Where the budget panel draws its dotted lines: the budget of the recall-within-characters target, and that
    target's threshold (read from `eval.metrics.TARGETS`, so the plot follows the target if it changes)."""
    target = next((t for t in TARGETS if t.metric == RECALL_1000C), None)
    return BUDGETS[0], (target.threshold if target else None)


def recall_curve(records: Sequence[EvalRecord], ks: Sequence[int] = CURVE_KS,
                 budgets: Sequence[int] = CURVE_BUDGETS) -> tuple[list[float | None], list[float | None]]:
    """Mean recall@k for each k and mean recall within each character budget over answerable records."""
    scored = []
    for r in records:
        evidence = r.expected.evidence
        if r.answerable and evidence and not r.error:
            scored.append(retrieval_scores(r.retrieved, evidence, ks=ks, budgets=budgets))
    if not scored:
        return [None] * len(ks), [None] * len(budgets)
    by_k = [sum(s[f"recall@{k}"] for s in scored) / len(scored) for k in ks]
    by_budget = [sum(s[f"recall@{b}c"] for s in scored) / len(scored) for b in budgets]
    return by_k, by_budget


def recall_curves_png(series: dict[str, Sequence[EvalRecord]], title: str = "") -> bytes:
    """Two panels: recall@k (k = 1..10) and recall within a context budget (characters); one line per series."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), dpi=110, layout="constrained")
    ax_k, ax_b = fig.subplots(1, 2)
    markers = "os^Dv<>p"
    for i, (name, records) in enumerate(series.items()):
        by_k, by_b = recall_curve(records)
        if all(v is None for v in by_k):
            continue
        m = markers[i % len(markers)]
        ax_k.plot(CURVE_KS, by_k, marker=m, label=name)
        ax_b.plot(CURVE_BUDGETS, by_b, marker=m, label=name)
    ax_k.set(xlabel="k (top-k retrieved chunks)", ylabel="recall of evidence", title="Recall@k",
             xticks=list(CURVE_KS), ylim=(0, 1.02))
    ax_b.set(xlabel="context budget (characters of retrieved text)", ylabel="recall of evidence",
             title="Recall within a context budget", ylim=(0, 1.02))
    for ax in (ax_k, ax_b):
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend(loc="lower right", fontsize=8)
    budget, threshold = budget_marks()
    ax_b.axvline(budget, color="grey", linestyle=":", linewidth=1)
    if threshold is not None:
        ax_b.axhline(threshold, color="grey", linestyle=":", linewidth=1)
    if title:
        fig.suptitle(title, fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def run_curves_png(run, groups: Sequence[str] | None = None) -> bytes:
    groups = list(groups or run.groups or ["all"])
    return recall_curves_png({g: _records_for(run, g) for g in groups})


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
