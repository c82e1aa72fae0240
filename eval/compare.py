"""Two runs side by side: metric deltas, and the questions that got better or worse.

`compare_runs(a, b)` returns plain data (for the CLI, the UI or JSON); `print_comparison` renders it with rich;
`write_compare_html` writes a self-contained HTML page.
"""

from __future__ import annotations

from pathlib import Path

from eval.metrics import F1, KEY_ACCURACY, METRICS, RECALL_1000C, RECIPROCAL_RANK, format_value
from eval.records import EvalRecord, Scores

# A metric change smaller than this is reported as unchanged (ratios are over a few dozen questions).
EPSILON = 1e-9


def _direction(delta: float | None, higher_is_better: bool | None) -> str:
    if delta is None or abs(delta) <= EPSILON:
        return "same"
    if higher_is_better is None:
        return "changed"
    return "better" if (delta > 0) == higher_is_better else "worse"


def _scores(r: EvalRecord) -> Scores:
    return r.scores if r.scores is not None else r.scored().scores


def _what_changed(ra: EvalRecord, rb: EvalRecord) -> list[str]:
    """The per-question differences worth naming, labelled like the metrics they feed."""
    sa, sb = _scores(ra), _scores(rb)
    changes = []
    for label, va, vb in (("refused", ra.refused, rb.refused),
                          (KEY_ACCURACY.short.lower(), sa.key_correct, sb.key_correct),
                          ("cites evidence", sa.cited_evidence, sb.cited_evidence)):
        if va is not None and vb is not None and bool(va) != bool(vb):
            changes.append(f"{label}: {'yes' if va else 'no'} → {'yes' if vb else 'no'}")
    reta, retb = sa.retrieval or {}, sb.retrieval or {}
    for key, label in ((RECIPROCAL_RANK, "RR"), (RECALL_1000C.key, RECALL_1000C.short)):
        va, vb = reta.get(key), retb.get(key)
        if va is not None and vb is not None and abs(va - vb) > EPSILON:
            changes.append(f"{label} {va:.2f} → {vb:.2f}")
    fa, fb = sa.f1, sb.f1
    if fa is not None and fb is not None and abs(fa - fb) >= 0.05:
        changes.append(f"{F1.short} {fa:.2f} → {fb:.2f}")
    return changes


def compare_runs(a, b) -> dict:
    """{"a": label, "b": label, "groups": [...], "metrics": [{"key", "label", "kind", "higher_is_better",
    "values": {group: {"a", "b", "delta", "direction"}}}], "improved": [...], "regressed": [...],
    "changed": [...], "only_a": [ids], "only_b": [ids], "common": n}.

    When the runs hold different questions, both sides' metrics are recomputed over the common ones.

    A question improved when it failed in A and passes in B, regressed the other way round; "changed" lists
    questions whose pass/fail did not move but whose scores did (refusal, key terms, citations, RR, F1).
    """
    ia, ib = a.by_id(), b.by_id()
    only_a, only_b = [i for i in ia if i not in ib], [i for i in ib if i not in ia]
    if only_a or only_b:  # compare like with like: the metrics of both runs over their common questions only
        from eval.metrics import compute_metrics

        ga = compute_metrics([r for r in a.records if r.id in ib])["groups"]
        gb = compute_metrics([r for r in b.records if r.id in ia])["groups"]
    else:
        ga, gb = a.metrics["groups"], b.metrics["groups"]
    groups = [g for g in ga if g in gb]
    metric_rows = []
    for spec in METRICS:
        values = {}
        for g in groups:
            va, vb = ga[g].get(spec.key), gb[g].get(spec.key)
            delta = vb - va if va is not None and vb is not None else None
            values[g] = {"a": va, "b": vb, "delta": delta, "direction": _direction(delta, spec.higher_is_better)}
        metric_rows.append({"key": spec.key, "label": spec.label, "kind": spec.kind,
                            "higher_is_better": spec.higher_is_better, "values": values})
    improved, regressed, changed = [], [], []
    for qid, ra in ia.items():
        rb = ib.get(qid)
        if rb is None:
            continue
        item = {"id": qid, "type": ra.type, "split": ra.split, "question": ra.question,
                "changes": _what_changed(ra, rb), "reasons_a": ra.failure_reasons, "reasons_b": rb.failure_reasons,
                "answer_a": ra.answer, "answer_b": rb.answer}
        if ra.failed and not rb.failed:
            improved.append(item)
        elif rb.failed and not ra.failed:
            regressed.append(item)
        elif item["changes"]:
            changed.append(item)
    return {"a": a.label, "b": b.label, "groups": groups, "metrics": metric_rows, "improved": improved,
            "regressed": regressed, "changed": changed, "only_a": only_a, "only_b": only_b,
            "common": sum(1 for i in ia if i in ib)}


def _delta_text(v: dict, kind: str) -> str:
    if v["delta"] is None:
        return ""
    if kind in ("ms", "chars"):
        return f"{v['delta']:+,.0f} {kind}"
    return f"{v['delta']:+.3f}"


def print_comparison(cmp: dict, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"A = {escape(cmp['a'])}   B = {escape(cmp['b'])}", title_justify="left")
    table.add_column("Metric")
    for g in cmp["groups"]:
        table.add_column(f"{g}: A → B", justify="right")
        table.add_column("Δ", justify="right")
    colours = {"better": "green", "worse": "red", "same": "dim", "changed": "yellow"}
    for row in cmp["metrics"]:
        cells = [row["label"]]
        for g in cmp["groups"]:
            v = row["values"][g]
            cells.append(f"{format_value(v['a'], row['kind'])} → {format_value(v['b'], row['kind'])}")
            cells.append(f"[{colours[v['direction']]}]{_delta_text(v, row['kind'])}[/]")
        table.add_row(*cells)
    console.print(table)
    for title, key, colour in (("Got better", "improved", "green"), ("Got worse", "regressed", "red")):
        items = cmp[key]
        console.print(f"\n[bold {colour}]{title}: {len(items)}[/]")
        if items:
            t = Table(show_header=True, header_style="bold")
            t.add_column("Id")
            t.add_column("Type")
            t.add_column("Split")
            t.add_column("What changed")
            t.add_column("Failing in " + ("A" if key == "improved" else "B") + " because")
            for it in items:
                reasons = it["reasons_a"] if key == "improved" else it["reasons_b"]
                t.add_row(escape(it["id"]), escape(it["type"] or ""), escape(it["split"] or ""),
                          escape("; ".join(it["changes"])), escape("; ".join(reasons)))
            console.print(t)
    if cmp["changed"]:
        console.print(f"\n[bold]Same verdict, different scores: {len(cmp['changed'])}[/] "
                      + escape(", ".join(f"{it['id']} ({'; '.join(it['changes'])})" for it in cmp["changed"][:12]))
                      + (" …" if len(cmp["changed"]) > 12 else ""))
    if cmp["only_a"] or cmp["only_b"]:
        console.print(f"\n[yellow]Metrics are over the {cmp['common']} questions in both runs.[/] Only in A: "
                      f"{escape(', '.join(cmp['only_a'][:20])) or '-'}; only in B: "
                      f"{escape(', '.join(cmp['only_b'][:20])) or '-'}")


def render_compare_html(a, b, cmp: dict | None = None) -> str:
    from eval.plots import png_data_uri, recall_curves_png
    from eval.report import CSS, _answer_html, _config_line, esc

    cmp = cmp or compare_runs(a, b)
    group = "test" if "test" in cmp["groups"] else (cmp["groups"][-1] if cmp["groups"] else "all")

    common = set(a.by_id()) & set(b.by_id())

    def records(run):
        return [r for r in run.records if r.id in common and (group == "all" or r.split == group)]

    png = recall_curves_png({f"A: {a.label}": records(a), f"B: {b.label}": records(b)}, title=f"split: {group}")
    head = "".join(f"<th>{esc(g)} A</th><th>{esc(g)} B</th><th>Δ</th>" for g in cmp["groups"])
    rows = []
    for row in cmp["metrics"]:
        cells = []
        for g in cmp["groups"]:
            v = row["values"][g]
            cls = {"better": "ok", "worse": "bad", "same": "na", "changed": "na"}[v["direction"]]
            cells.append(f"<td>{format_value(v['a'], row['kind'])}</td><td>{format_value(v['b'], row['kind'])}</td>"
                         f"<td class='{cls}'>{esc(_delta_text(v, row['kind']))}</td>")
        rows.append(f"<tr><td class='l'>{esc(row['label'])}</td>{''.join(cells)}</tr>")

    def items(key: str) -> str:
        out = []
        for it in cmp[key]:
            reasons = it["reasons_a"] if key == "improved" else it["reasons_b"]
            out.append(f"<div class='card'><div class='head'><h3>{esc(it['id'])}</h3><span class='tag'>"
                       f"{esc(it['type'])}</span><span class='tag'>{esc(it['split'])}</span>"
                       f"<span class='muted small'>{esc('; '.join(it['changes']))}</span></div>"
                       f"<div><b>{esc(it['question'])}</b></div>"
                       + "".join(f"<div class='reason'>✗ {esc(x)}</div>" for x in reasons)
                       + "<div class='grid'><div class='box'><h4>A</h4><div class='quote'>"
                       f"{_answer_html(it['answer_a'] or '')}"
                       f"</div></div><div class='box'><h4>B</h4><div class='quote'>{_answer_html(it['answer_b'] or '')}"
                       f"</div></div></div></div>")
        return "".join(out) or "<p class='muted'>None.</p>"

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Comparison — {esc(cmp['a'])} vs {esc(cmp['b'])}</title>
<style>{CSS}</style></head><body>
<h1>Comparison</h1>
<p class="small"><b>A = {esc(cmp['a'])}</b>: {_config_line(a.meta.get('settings') or {})}</p>
<p class="small"><b>B = {esc(cmp['b'])}</b>: {_config_line(b.meta.get('settings') or {})}</p>
<p class="muted small">{cmp['common']} questions in both runs; green deltas are improvements of B over A.</p>
<h2>Metrics</h2><table><thead><tr><th class="l">Metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
<h2>Recall curves</h2><img class="plot" alt="recall curves of both runs" src="{png_data_uri(png)}">
<h2>Got better ({len(cmp['improved'])})</h2>{items('improved')}
<h2>Got worse ({len(cmp['regressed'])})</h2>{items('regressed')}
</body></html>
"""


def write_compare_html(a, b, path: str | Path, cmp: dict | None = None) -> Path:
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_compare_html(a, b, cmp), encoding="utf-8")
    return path
