"""A self-contained HTML report of an evaluation run (one file: inline CSS, the plot as a base64 PNG).

`write_html(run, path)` writes it; `render_html(run)` returns the text (e.g. for a UI's HTML component).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from eval.metrics import (KEY_ACCURACY, RECALL_1000C, RECALL_5, RECIPROCAL_RANK, TYPE_METRICS, format_value,
                          metrics_table, overlap)
from eval.plots import budget_marks, png_data_uri, run_curves_png
from eval.records import QUESTION_TYPES, EvalRecord, Scores
from rag import markers

CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --muted: #57606a; --line: #d0d7de; --bg2: #f6f8fa; --mark: #fff3b0; }
* { box-sizing: border-box; }
body { font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328;
       max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 8px; border-bottom: 1px solid var(--line);
padding-bottom: 4px; } h3 { font-size: 15px; margin: 0; }
.muted { color: var(--muted); } .small { font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid var(--line); padding: 4px 10px; text-align: right; vertical-align: top; }
th { background: var(--bg2); font-weight: 600; } td.l, th.l { text-align: left; }
td:not(.l) { white-space: nowrap; }
tr.section td { background: var(--bg2); font-weight: 600; text-align: left; color: var(--muted); font-size: 12px;
                text-transform: uppercase; letter-spacing: .04em; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .na { color: var(--muted); }
.badges { display: flex; flex-wrap: wrap; gap: 8px; margin: 12px 0; }
.badge { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; background: #fff; }
.badge.ok { border-color: var(--ok); } .badge.bad { border-color: var(--bad); }
.badge b { font-size: 16px; }
img.plot { max-width: 100%; border: 1px solid var(--line); border-radius: 6px; }
.card { border: 1px solid var(--line); border-radius: 8px; margin: 14px 0; padding: 12px 14px; }
.card > summary { cursor: pointer; list-style: none; } .card > summary::-webkit-details-marker { display: none; }
.card .head { display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
.tag { font-size: 12px; border-radius: 10px; padding: 0 8px; background: var(--bg2); border: 1px solid var(--line); }
.reason { color: var(--bad); font-size: 13px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; margin-top: 10px; }
@media (max-width: 900px) { .grid { grid-template-columns: 1fr; } }
.box { background: var(--bg2); border-radius: 6px; padding: 8px 10px; }
.box h4 { margin: 0 0 6px; font-size: 12px; text-transform: uppercase; color: var(--muted); letter-spacing: .04em; }
.quote { white-space: pre-wrap; font-size: 13px; border-left: 3px solid var(--line); padding-left: 8px; margin: 6px 0; }
.quote.hit { border-left-color: var(--ok); } .quote.miss { border-left-color: var(--bad); }
mark { background: var(--mark); padding: 0 1px; }
.hl { text-decoration: underline 2px #0969da; text-underline-offset: 2px; }
.legend { font-size: 12px; color: var(--muted); }
sup.cite { color: #0969da; font-weight: 600; }
.chip { display: inline-block; border-radius: 4px; padding: 0 6px; margin: 1px 2px; font-size: 12px;
        border: 1px solid; }
.chip.ok { border-color: var(--ok); } .chip.bad { border-color: var(--bad); }
.turn { font-size: 13px; margin: 2px 0; } .turn b { color: var(--muted); }
details.inner summary { cursor: pointer; color: var(--muted); font-size: 12px; margin-top: 8px; }
code { font-size: 12px; background: var(--bg2); padding: 0 4px; border-radius: 4px; }
"""


def esc(text) -> str:
    return html.escape("" if text is None else str(text), quote=True)


def _mark(ok: bool | None) -> str:
    if ok is None:
        return ""
    return ' <span class="ok">✓</span>' if ok else ' <span class="bad">✗</span>'


def _answer_html(text: str) -> str:
    """Escape the answer and render its citation markers (as `rag.markers` reads them) as superscripts; a
    literal document bracket the answer quotes (`\\[2]`) is shown as the document wrote it, not as a citation."""
    text = text or ""
    out, last = [], 0
    for m in markers.find(text):
        out.append(esc(markers.unescape(text[last:m.start])))
        out.append(f'<sup class="cite">{esc(text[m.start:m.end])}</sup>')
        last = m.end
    out.append(esc(markers.unescape(text[last:])))
    return "".join(out)


def _highlight(text: str, source: str, start: int, evidence: Sequence[dict],
               highlights: Sequence[Sequence[int]] = ()) -> str:
    """Escape passage text (document[start:start+len]): <mark> the expected evidence, underline the sentences the
    answer quotes or relies on (the citation's highlights)."""
    end = start + len(text)
    ev_cuts = [(max(start, sp["start"]) - start, min(end, sp["end"]) - start)
               for ev in evidence for sp in ev.get("spans") or []
               if sp.get("source") == source and overlap(start, end, sp["start"], sp["end"]) > 0]
    hl_cuts = [(max(start, h[0]) - start, min(end, h[1]) - start) for h in highlights
               if len(h) == 2 and overlap(start, end, h[0], h[1]) > 0]
    bounds = sorted({0, len(text), *[x for c in ev_cuts + hl_cuts for x in c]})
    out = []
    for a, b in zip(bounds, bounds[1:]):
        piece = esc(text[a:b])
        in_ev = any(x <= a and b <= y for x, y in ev_cuts)
        in_hl = any(x <= a and b <= y for x, y in hl_cuts)
        if in_ev and in_hl:
            piece = f"<mark class='hl'>{piece}</mark>"
        elif in_ev:
            piece = f"<mark>{piece}</mark>"
        elif in_hl:
            piece = f"<span class='hl'>{piece}</span>"
        out.append(piece)
    return "".join(out)


def _span_hits(span: dict, evidence: Sequence[dict]) -> bool:
    return any(sp.get("source") == span.get("source")
               and overlap(span["start"], span["end"], sp["start"], sp["end"]) > 0
               for ev in evidence for sp in ev.get("spans") or [])


def _short_source(source: str | None) -> str:
    if not source:
        return "?"
    return Path(source).name or source


# --------------------------------------------------------------------------------------------------- sections


def _config_line(settings: dict) -> str:
    if not settings:
        return "<span class='muted'>settings not recorded</span>"
    idx, ret, llm = settings.get("index", {}), settings.get("retrieval", {}), settings.get("llm", {})
    headings = "embedded" if idx.get("embed_headings") else "not embedded"
    reranker = f", reranker {esc(ret.get('reranker'))}" if ret.get("reranker") else ""
    model = llm.get("model") or llm.get("model_path")
    return (f"<b>Index</b> {esc(idx.get('chunker'))} chunker, {esc(idx.get('chunk_size'))}/"
            f"{esc(idx.get('chunk_overlap'))} chars, headings {headings}, model "
            f"<code>{esc(idx.get('embedding_model'))}</code> · <b>Retrieval</b> {esc(ret.get('mode'))}, "
            f"k={esc(ret.get('k'))}, budget {esc(ret.get('budget_chars'))} chars, "
            f"{'merged' if ret.get('merge_adjacent') else 'unmerged'}{reranker} · <b>Generator</b> "
            f"{esc(llm.get('backend'))}{' ' + esc(model) if model else ''}")


def _header(run) -> str:
    meta = run.meta
    settings = meta.get("settings") or {}
    counts = ", ".join(f"{esc(g)}: {m['n']}" for g, m in run.metrics["groups"].items() if g != "all")
    cancelled = ' · <span class="bad">cancelled early</span>' if meta.get("cancelled") else ""
    return (f"<h1>Evaluation report — {esc(run.label)}</h1>"
            f"<div class='muted'>{esc(meta.get('dataset', ''))} · {len(run.records)} questions"
            f"{' (' + counts + ')' if counts else ''} · {esc(meta.get('started_at', ''))} · "
            f"{esc(meta.get('duration_s', '?'))} s{cancelled}</div>"
            + (f"<p class='small'>{_config_line(settings)}</p>" if settings else ""))


def _badges(run) -> str:
    t = run.metrics.get("targets") or {}
    items = []
    for r in t.get("results", []):
        cls = "na" if r["met"] is None else ("ok" if r["met"] else "bad")
        sign = "≥" if r["op"] == ">=" else "≤"
        items.append(f"<div class='badge {cls}'>{esc(r['label'])}<br><b>{format_value(r['value'])}</b>"
                     f"{_mark(r['met'])} <span class='muted small'>target {sign} {r['threshold']:g}</span></div>")
    split = t.get("split")
    missed = sum(1 for r in t.get("results", []) if r["met"] is False)
    verdict = "all targets met" if t.get("all_met") else f"{missed} of {len(items)} targets missed"
    return (f"<h2>Targets <span class='muted small'>(on the {esc(split)} split — {verdict})</span></h2>"
            f"<div class='badges'>{''.join(items)}</div>") if items else ""


def metric_table_html(run) -> str:
    rows = metrics_table(run)
    groups = run.groups
    head = "".join(f"<th>{esc(g)}</th>" for g in groups)
    body, section = [], None
    for row in rows:
        if row["section"] != section:
            section = row["section"]
            body.append(f"<tr class='section'><td colspan='{len(groups) + 2}'>{esc(section)}</td></tr>")
        cells = "".join(f"<td title='over {row['n'][g]} questions'>{format_value(row['values'][g], row['kind'])}"
                        f"{_mark(row['met'][g])}</td>" for g in groups)
        body.append(f"<tr><td class='l'>{esc(row['label'])}</td>{cells}<td>{esc(row['target'] or '')}</td></tr>")
    m = run.metrics["groups"]
    counts = "".join(f"<td>{m[g]['n']} ({m[g]['n_answerable']} answerable)</td>" for g in groups)
    failed = "".join(f"<td>{m[g]['failed']}</td>" for g in groups)
    return (f"<table class='metrics'><thead><tr><th class='l'>Metric</th>{head}<th>Target</th></tr></thead><tbody>"
            f"<tr><td class='l'>Questions</td>{counts}<td></td></tr>"
            f"<tr><td class='l'>Failing questions</td>{failed}<td></td></tr>{''.join(body)}</tbody></table>")


def type_table_html(run, group: str = "all") -> str:
    by_type = run.metrics.get("by_type", {}).get(group) or {}
    if not by_type:
        return ""
    specs = TYPE_METRICS
    head = "".join(f"<th title='{esc(spec.label)}'>{esc(spec.abbrev)}</th>" for spec in specs)
    rows = []
    for qtype, m in by_type.items():
        cells = "".join(f"<td>{format_value(m.get(spec.key), spec.kind)}</td>" for spec in specs)
        rows.append(f"<tr><td class='l'>{esc(qtype)}</td><td>{m['n']}</td><td>{m['failed']}</td>{cells}</tr>")
    return (f"<table><thead><tr><th class='l'>Type</th><th>n</th><th>Failing</th>{head}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


# --------------------------------------------------------------------------------------------------- one question


def _passage_quote(x: dict, evidence: Sequence[dict], detail: str, mark_hit: bool = True) -> str:
    """A passage or citation with its number, where it is, and its text with evidence and quoted sentences marked."""
    hit = _span_hits(x, evidence)
    cls = ("hit" if hit else "miss") if mark_hit else ("hit" if hit else "")
    where = f"{esc(x.get('section') or '')} · {esc(_short_source(x.get('source')))} {x.get('start')}–{x.get('end')}"
    text = _highlight(x.get("text") or "", x.get("source"), int(x.get("start", 0)), evidence,
                      x.get("highlights") or [])
    return (f"<div class='quote {cls}'><b>[{esc(x.get('n'))}]</b> <span class='muted small'>{where} · "
            f"{detail}</span>\n{text}</div>")


def _answer_box(r: EvalRecord, evidence: Sequence[dict]) -> str:
    refused = " <span class='tag'>refused</span>" if r.refused else ""
    answer = (f"<div class='quote'>{_answer_html(r.answer)}</div>" if r.answer
              else "<div class='muted'>(no answer)</div>")
    if r.error:
        answer += f"<div class='reason'>{esc(r.error)}</div>"
    notes = "".join(f"<div class='muted small'>note: {esc(n)}</div>" for n in r.notes)
    val = r.validation or {}
    if val.get("fallback"):
        notes += f"<div class='muted small'>fallback: {esc(val['fallback'])}</div>"
    if val.get("removed"):
        notes += f"<div class='muted small'>citations removed by validation: {esc(val['removed'])}</div>"
    cites = "".join(_passage_quote(c, evidence, "overlaps evidence" if _span_hits(c, evidence) else "no evidence")
                    for c in r.citations) or "<div class='muted'>(no citations)</div>"
    return (f"<div class='box'><h4>Answer{refused}</h4>{answer}{notes}"
            f"<h4 style='margin-top:10px'>Citations</h4>{cites}</div>")


def _expected_box(r: EvalRecord, s: Scores, evidence: Sequence[dict]) -> str:
    chips = "".join(f"<span class='chip {'ok' if ok else 'bad'}'>{esc(' / '.join(g))}</span>"
                    for g, ok in zip(r.expected.keys, s.key_groups))
    ranks: dict[int, int] = {}
    for i, x in enumerate(r.retrieved, start=1):
        for j, ev in enumerate(evidence):
            if j not in ranks and _span_hits(x, [ev]):
                ranks[j] = i
    items = []
    for j, ev in enumerate(evidence):
        where = (f"{esc(_short_source(ev.get('source')))} {ev.get('start')}–{ev.get('end')}" if ev.get("spans")
                 else "<span class='bad'>not found in the index</span>")
        found = f"retrieved at rank {ranks[j]}" if j in ranks else "<span class='bad'>not in the top 10</span>"
        items.append(f"<div class='quote {'hit' if j in ranks else 'miss'}'>{esc(ev.get('text'))}"
                     f"<div class='muted small'>{where} · {found}</div></div>")
    if not items:
        items.append("<div class='muted small'>No evidence: this question should be refused.</div>")
    ret = s.retrieval or {}
    scores = (f"<div class='muted small'>RR {format_value(ret.get(RECIPROCAL_RANK))} · {RECALL_5.label.lower()} "
              f"{format_value(ret.get(RECALL_5.key))} · {RECALL_1000C.label.lower()} "
              f"{format_value(ret.get(RECALL_1000C.key))}</div>") if ret else ""
    return (f"<div class='box'><h4>Expected</h4><div class='quote'>{esc(r.expected.answer)}</div>"
            + (f"<div>Key terms: {chips}</div>" if chips else "") + "".join(items) + scores + "</div>")


def _context_details(r: EvalRecord, s: Scores, evidence: Sequence[dict]) -> str:
    if not r.passages:
        return ""
    recall = s.context_recall
    summary = (f"Context given to the generator ({len(r.passages)} passages, {s.context_chars:,} chars"
               + (f", evidence recall {format_value(recall)}" if recall is not None else "") + ")")
    items = "".join(_passage_quote(x, evidence, f"score {float(x.get('score') or 0):.3f}", mark_hit=False)
                    for x in r.passages)
    return f"<details class='inner'><summary>{summary}</summary>{items}</details>"


def _retrieved_details(r: EvalRecord, evidence: Sequence[dict]) -> str:
    if not r.retrieved:
        return ""
    rows = "".join(
        f"<tr><td>{i}</td><td class='l'>{esc(x.get('section') or '')}</td><td>{x.get('start')}–{x.get('end')}</td>"
        f"<td>{x.get('end', 0) - x.get('start', 0)}</td><td>{'✓' if _span_hits(x, evidence) else ''}</td>"
        f"<td>{float(x.get('score') or 0):.3f}</td></tr>" for i, x in enumerate(r.retrieved, start=1))
    return (f"<details class='inner'><summary>Top {len(r.retrieved)} retrieved chunks (rag.retrieve)</summary>"
            "<table><thead><tr><th>#</th><th class='l'>Section</th><th>Span</th><th>Chars</th><th>Evidence</th>"
            f"<th>Score</th></tr></thead><tbody>{rows}</tbody></table></details>")


def _scores_of(r: EvalRecord) -> Scores:
    return r.scores if r.scores is not None else r.scored().scores


def _question_card(r: EvalRecord, open_: bool = False) -> str:
    s = _scores_of(r)
    evidence = r.expected.evidence
    reasons = "".join(f"<div class='reason'>✗ {esc(x)}</div>" for x in s.failure_reasons)
    warnings = "".join(f"<div class='muted small'>⚠ {esc(x)}</div>" for x in s.warnings)
    history = ""
    if r.history:
        turns = "".join(f"<div class='turn'><b>{esc(t.get('role'))}:</b> {esc(t.get('content'))}</div>"
                        for t in r.history)
        history = f"<div class='box' style='margin-top:8px'><h4>Conversation so far</h4>{turns}</div>"
    sq = r.standalone_question
    standalone = (f"<div class='muted small'>Standalone question: {esc(sq)}</div>"
                  if sq and sq.strip() != (r.question or "").strip() else "")
    t = r.timings_ms or {}
    timing = " · ".join(f"{k} {t[k]:,.0f} ms" for k in ("retrieve", "generate", "total") if t.get(k) is not None)
    status = "<span class='bad'>failed</span>" if s.failed else "<span class='ok'>passed</span>"
    return (f"<details class='card' id='q-{esc(r.id)}'{' open' if open_ else ''}><summary><div class='head'>"
            f"<h3>{esc(r.id)}</h3><span class='tag'>{esc(r.type)}</span><span class='tag'>"
            f"{esc(r.split)}</span>{status}<span class='muted small'>{timing}</span></div>"
            f"<div><b>{esc(r.question)}</b></div>{reasons}{warnings}</summary>{standalone}{history}"
            f"<div class='grid'>{_answer_box(r, evidence)}{_expected_box(r, s, evidence)}</div>"
            f"{_context_details(r, s, evidence)}{_retrieved_details(r, evidence)}</details>")


# --------------------------------------------------------------------------------------------------- the page


def _tick(value: bool | None) -> str:
    return "" if value is None else ("✓" if value else "✗")


def _all_questions_table(run) -> str:
    rows = []
    for r in run.records:
        s = _scores_of(r)
        ret = s.retrieval or {}
        t = (r.timings_ms or {}).get("total")
        status = "<span class='bad'>✗</span>" if s.failed else "<span class='ok'>✓</span>"
        rows.append(
            f"<tr><td class='l'><a href='#q-{esc(r.id)}'>{esc(r.id)}</a></td><td class='l'>{esc(r.type)}"
            f"</td><td class='l'>{esc(r.split)}</td><td>{status}</td><td>{_tick(s.key_correct)}</td>"
            f"<td>{format_value(s.f1)}</td><td>{format_value(ret.get(RECIPROCAL_RANK)) if ret else ''}</td>"
            f"<td>{format_value(ret.get(RECALL_1000C.key)) if ret else ''}</td><td>{_tick(s.cited_evidence)}</td>"
            f"<td>{'yes' if r.refused else ''}</td><td>{format_value(t, 'ms') if t is not None else ''}</td>"
            f"<td class='l small'>{esc('; '.join(s.failure_reasons))}</td></tr>")
    return ("<table><thead><tr><th class='l'>Id</th><th class='l'>Type</th><th class='l'>Split</th><th>Pass</th>"
            f"<th title='{esc(KEY_ACCURACY.label)}'>Keys</th><th>F1</th><th>RR</th>"
            f"<th title='{esc(RECALL_1000C.label)}'>{esc(RECALL_1000C.short)}</th><th>Cites evidence</th>"
            "<th>Refused</th><th>Total</th><th class='l'>Why it failed</th></tr></thead><tbody>" + "".join(rows)
            + "</tbody></table>")


def render_html(run, max_failures: int | None = None) -> str:
    """The whole report as one HTML string."""
    png = run_curves_png(run)
    failures = run.failures()
    shown = failures if max_failures is None else failures[:max_failures]
    order = {t: i for i, t in enumerate(QUESTION_TYPES)}
    shown = sorted(shown, key=lambda r: (order.get(r.type, 99), r.split, r.id))
    passed_cards = [r for r in run.records if not r.failed]
    per_type = "".join(f"<h3 style='margin-top:14px'>{esc(g)}</h3>{type_table_html(run, g)}" for g in run.groups) \
        if len(run.groups) > 1 else type_table_html(run, run.groups[0] if run.groups else "all")
    budget, threshold = budget_marks()
    curve_note = ("Recall of the expected evidence spans by the ranked chunks of <code>rag.retrieve</code>: "
                  "left by number of chunks, right by characters of retrieved text (chunks taken whole, in rank order, "
                  f"while they fit). The dotted lines mark the {budget:,}-character budget"
                  + (f" and the {threshold:g} target." if threshold is not None else "."))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Evaluation report — {esc(run.label)}</title><style>{CSS}</style></head><body>
{_header(run)}
{_badges(run)}
<h2>Metrics</h2>
<p class="muted small">Ratios are over the questions they apply to (hover a value for the count): retrieval,
answer and citation metrics over answerable questions, correct refusals over the questions to refuse (all of
them, then off-topic and near-miss ones apart).
Recall@k with several evidence spans is the fraction of spans hit. Definitions: eval/METRICS.md.</p>
{metric_table_html(run)}
<h2>Recall curves</h2>
<p class="muted small">{curve_note}</p>
<img class="plot" alt="Recall@k and recall within a context budget" src="{png_data_uri(png)}">
<h2>By question type</h2>
{per_type}
<h2>Failing questions <span class="muted small">({len(failures)} of {len(run.records)})</span></h2>
<p class="legend">In citations, <mark>highlighted</mark> text is the expected evidence and
<span class="hl">underlined</span> text is what the answer quotes or relies on. A green bar marks a citation or
evidence that was found, a red one a miss.</p>
{''.join(_question_card(r) for r in shown) or "<p class='ok'>None — every question passed.</p>"}
{f"<p class='muted'>{len(failures) - len(shown)} more not shown.</p>" if len(shown) < len(failures) else ""}
<h2>All questions</h2>
{_all_questions_table(run)}
<details class="inner"><summary>Passing questions in full ({len(passed_cards)})</summary>
{''.join(_question_card(r) for r in passed_cards)}
</details>
<script>
// Open a question card (and the section around it) when its link is followed.
function openTarget() {{
  let el = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
  for (; el; el = el.parentElement) if (el.tagName === "DETAILS") el.open = true;
}}
window.addEventListener("hashchange", openTarget); openTarget();
</script>
<p class="muted small">Generated by <code>rag eval</code>. Questions: {esc(run.meta.get('dataset', ''))}.
Versions: {esc(', '.join(f'{k} {v}' for k, v in (run.meta.get('versions') or {}).items()))}.</p>
</body></html>
"""


def write_html(run, path: str | Path, max_failures: int | None = None) -> Path:
    path = Path(path).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(run, max_failures=max_failures), encoding="utf-8")
    return path

