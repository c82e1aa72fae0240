"""Recall curves as PNG bytes (matplotlib's Agg canvas directly: no pyplot state, no display, thread-safe)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

from eval.metrics import is_answerable, retrieval_scores

CURVE_KS = tuple(range(1, 11))
CURVE_BUDGETS = (250, 500, 750, 1000, 1250, 1500, 2000, 2500, 3000, 4000, 5000)


def _records_for(run, group: str) -> list[dict]:
    if group == "all":
        return run.records
    return [r for r in run.records if r.get("split") == group]


def recall_curve(records: Sequence[dict], ks: Sequence[int] = CURVE_KS,
                 budgets: Sequence[int] = CURVE_BUDGETS) -> tuple[list[float | None], list[float | None]]:
    """Mean recall@k for each k and mean recall within each character budget over answerable records."""
    scored = []
    for r in records:
        evidence = (r.get("expected") or {}).get("evidence") or []
        if is_answerable(r.get("type", "")) and evidence and not r.get("error"):
            scored.append(retrieval_scores(r.get("retrieved") or [], evidence, ks=ks, budgets=budgets))
    if not scored:
        return [None] * len(ks), [None] * len(budgets)
    by_k = [sum(s[f"recall@{k}"] for s in scored) / len(scored) for k in ks]
    by_budget = [sum(s[f"recall@{b}c"] for s in scored) / len(scored) for b in budgets]
    return by_k, by_budget


def recall_curves_png(series: dict[str, Sequence[dict]], title: str = "") -> bytes:
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
    ax_b.axvline(1000, color="grey", linestyle=":", linewidth=1)
    ax_b.axhline(0.95, color="grey", linestyle=":", linewidth=1)
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
