"""The evaluation metrics on hand-made cases with known answers (no model, no index)."""

from __future__ import annotations

import json

import pytest

from eval.dataset import DatasetError, load_questions, read_jsonl, sample, set_names
from eval.metrics import (aggregate, check_targets, cited_spans, compute_metrics, formatted_table, key_correct,
                          key_groups_matched, locate_evidence, marker_counts, metrics_table, normalize_answer, overlap,
                          percentile, retrieval_scores, score, span_overlaps, token_f1, within_budget)
from eval.records import EvalRecord, Scores
from rag import markers

DOC = "doc.txt"
TEXT = "Alpha beta gamma. Delta epsilon zeta. Eta theta iota. Kappa lambda mu."
#       0                 18                 38               55


def ev(start: int, end: int, source: str = DOC) -> dict:
    return {"text": TEXT[start:end], "source": source, "start": start, "end": end,
            "spans": [{"source": source, "start": start, "end": end}]}


def p(n: int, start: int, end: int, source: str = DOC) -> dict:
    return {"n": n, "source": source, "title": "T", "section": "", "start": start, "end": end,
            "text": TEXT[start:end], "score": 1.0 / n}


# --------------------------------------------------------------------------------------------------- spans


def test_overlap_counts_shared_characters_and_touching_spans_share_none():
    assert overlap(0, 10, 5, 15) == 5
    assert overlap(0, 10, 10, 20) == 0          # adjacent: [0,10) and [10,20) touch but do not overlap
    assert overlap(10, 20, 0, 10) == 0
    assert overlap(0, 10, 9, 20) == 1           # one shared character is enough
    assert overlap(0, 10, 2, 3) == 1            # containment
    assert overlap(0, 10, 20, 30) == 0


def test_span_overlap_needs_same_source():
    e = ev(18, 37)
    assert span_overlaps(p(1, 0, 20), e)
    assert not span_overlaps(p(1, 0, 20, source="other.txt"), e)
    assert not span_overlaps(p(1, 0, 18), e)     # ends exactly where the evidence starts
    assert not span_overlaps(p(1, 37, 60), e)    # starts exactly where the evidence ends
    # an evidence string found in two documents: a hit on either copy counts
    both = {"text": "x", "spans": [{"source": "a", "start": 0, "end": 5}, {"source": "b", "start": 50, "end": 55}]}
    assert span_overlaps({"source": "b", "start": 54, "end": 60}, both)
    assert not span_overlaps({"source": "a", "start": 5, "end": 60}, both)


def test_locate_evidence_first_occurrence_in_every_document():
    docs = {"a": "xx needle yy needle", "b": "needle", "c": "nothing here"}
    (found, missing) = locate_evidence(["needle", "absent"], docs)
    assert (found["source"], found["start"], found["end"]) == ("a", 3, 9)
    assert found["spans"] == [{"source": "a", "start": 3, "end": 9}, {"source": "b", "start": 0, "end": 6}]
    assert missing["spans"] == [] and missing["start"] == -1
    assert locate_evidence([], docs) == []


# --------------------------------------------------------------------------------------------------- retrieval


def test_retrieval_single_evidence_rank_and_recall():
    evidence = [ev(38, 54)]                      # "Eta theta iota."
    ranked = [p(1, 0, 17), p(2, 18, 37), p(3, 38, 54), p(4, 55, 71)]
    s = retrieval_scores(ranked, evidence)
    assert s["recall@1"] == 0 and s["recall@3"] == 1 and s["recall@5"] == 1 and s["recall@10"] == 1
    assert s["rr"] == pytest.approx(1 / 3)
    assert s["hit_ranks"] == [3]


def test_recall_for_multi_evidence_is_fraction_of_spans_hit():
    evidence = [ev(0, 17), ev(55, 71)]
    ranked = [p(1, 0, 17), p(2, 18, 37), p(3, 38, 54), p(4, 50, 71)]
    s = retrieval_scores(ranked, evidence)
    assert s["recall@1"] == 0.5
    assert s["recall@3"] == 0.5
    assert s["recall@5"] == 1.0
    assert s["rr"] == 1.0                         # first hit at rank 1, whichever evidence it hits
    assert s["hit_ranks"] == [1, 4]


def test_no_hit_gives_zero_rr_and_empty_evidence_gives_none():
    assert retrieval_scores([p(1, 0, 17)], [ev(55, 71)])["rr"] == 0.0
    assert retrieval_scores([p(1, 0, 17)], []) is None
    assert retrieval_scores([], [ev(0, 5)])["recall@10"] == 0.0


def test_budget_counts_only_passages_that_fit_whole():
    chunk = lambda n, length: {"n": n, "source": DOC, "start": 100 * n, "end": 100 * n + length}  # noqa: E731
    ranked = [chunk(1, 600), chunk(2, 300), chunk(3, 200), chunk(4, 50)]
    assert [x["n"] for x in within_budget(ranked, 1000)] == [1, 2]       # 600 + 300; +200 would be 1100
    assert [x["n"] for x in within_budget(ranked, 900)] == [1, 2]        # exactly at the budget still fits
    assert [x["n"] for x in within_budget(ranked, 500)] == []            # a first chunk longer than the budget
    assert [x["n"] for x in within_budget(ranked, 2000)] == [1, 2, 3, 4]
    # a big chunk buys no recall: evidence in a 1,500-character first chunk is not within 1,000 characters
    big = [{"n": 1, "source": DOC, "start": 0, "end": 1500}]
    s = retrieval_scores(big, [{"source": DOC, "start": 10, "end": 20, "spans": [
        {"source": DOC, "start": 10, "end": 20}]}])
    assert s["recall@1"] == 1.0 and s["recall@1000c"] == 0.0 and s["recall@2000c"] == 1.0


# --------------------------------------------------------------------------------------------------- answers


def test_citation_markers_are_read_by_rag_markers():
    """eval has no marker syntax of its own: what it counts is what `rag.markers` reads."""
    text = "One [1]. Two [2][3]. Three [1, 4]. Range [5-7]. Not a marker [a] or [ 2 ]."
    assert markers.numbers(text) == [1, 2, 3, 1, 4, 5, 6, 7, 2]
    assert markers.numbers("A range [1-3], a list [1; 2].") == [1, 2, 3, 1, 2]
    assert markers.numbers("The siren sounded \\[2] at noon [1].") == [1]     # an escaped literal is no marker
    assert markers.strip("Russia's priority is Ukraine [1] [2].") == "Russia's priority is Ukraine."
    assert markers.plain("Quoted \\[2] text [1].") == "Quoted [2] text."
    assert markers.numbers("") == []


def test_marker_counts_and_citations_follow_the_marker_syntax():
    passages = [p(1, 38, 54), p(2, 0, 17), p(3, 18, 37)]
    rec = record(answer_record("Eta theta iota [1-3]. Alpha [1; 2]. The document's \\[2] stays text.", passages,
                               []))
    assert marker_counts(rec) == (5, 0)          # [1-3] names three passages, [1; 2] two; \\[2] is none
    assert [c["n"] for c in cited_spans(rec)] == [1, 2, 3]
    rec = record(answer_record("Eta theta iota [4-5] and \\[9].", passages, []))
    assert marker_counts(rec) == (2, 2)          # 4 and 5 name no passage; the escaped 9 is not counted


def test_escaped_literal_does_not_satisfy_or_hide_key_terms():
    # "[1]" read as a marker is removed before matching, so it cannot satisfy a key "1"; an escaped literal is
    # document text, shown as "[2]", so it does.
    assert key_correct("The year was unknown [1].", [["1"]]) is False
    assert key_correct("The siren \\[2] sounded [1].", [["siren [2] sounded"]]) is True


def test_key_groups_with_alternatives_case_and_citations():
    keys = [["U.S.", "United States", "America"], ["Israel"]]
    assert key_correct("Between Iran, ISRAEL and the united states [2].", keys) is True
    assert key_groups_matched("Between Iran and Israel [1].", keys) == [False, True]
    assert key_correct("Between Iran and Israel [1].", keys) is False
    assert key_correct("anything", []) is None
    # markers are removed before matching: "[1]" must not satisfy a key "1"
    assert key_correct("The year was unknown [1].", [["1"]]) is False
    # curly apostrophes and dashes are folded, so a straight-quote key matches the essay's typography
    assert key_correct("Iran’s “Look to the East” policy", [["Iran's"], ['"Look to the East"']]) is True
    assert key_correct("détente with the West", [["détente", "detente"]]) is True


def test_token_f1_squad_normalisation():
    assert normalize_answer("The Ukraine war, of course! [1]") == "ukraine war of course"
    assert token_f1("Ukraine war", "the Ukraine war.") == 1.0
    assert token_f1("an apple", "a banana") == 0.0
    # prediction 4 tokens, reference 2, 2 shared: precision 0.5, recall 1 -> F1 2/3
    assert token_f1("Russia priority Ukraine war", "Ukraine war") == pytest.approx(2 / 3)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0


# --------------------------------------------------------------------------------------------------- citations


def record(data: dict) -> EvalRecord:
    return EvalRecord.from_dict(data)


def scored(data: dict) -> EvalRecord:
    """A record from its saved form, with its scores (the pure `score`)."""
    return record(data).scored()


def answer_record(text: str, passages: list[dict], cited: list[int], qtype: str = "fact", evidence=None,
                  keys=None, refused: bool = False, removed=None) -> dict:
    by_n = {x["n"]: x for x in passages}
    return {
        "id": "q", "type": qtype, "split": "dev", "question": "?", "answer": text, "refused": refused,
        "citations": [{**{k: by_n[n][k] for k in ("n", "source", "title", "section", "start", "end", "text")},
                       "highlights": []} for n in cited],
        "passages": passages, "timings_ms": {"retrieve": 10.0, "generate": 5.0, "total": 15.0},
        "validation": {"removed": removed or [], "flagged": [], "uncited": [], "fallback": None},
        "expected": {"answer": "Eta theta iota", "keys": keys if keys is not None else [["theta"]],
                     "evidence": evidence if evidence is not None else [ev(38, 54)]},
        "retrieved": passages, "error": None,
    }


def test_duplicate_citations_count_once_and_precision_per_question():
    passages = [p(1, 38, 54), p(2, 0, 17)]
    r = scored(answer_record("Eta theta iota [1]. Again [1]. Alpha [2].", passages, [1, 2]))
    assert [c["n"] for c in cited_spans(r)] == [1, 2]
    assert r.scores.citations_total == 2 and r.scores.citations_relevant == 1
    assert r.scores.citation_precision == 0.5 and r.scores.cited_evidence is True
    assert r.scores.markers == 3 and r.scores.invalid_markers == 0
    assert r.scores.key_correct is True and r.scores.failed is False


def test_answer_without_citations():
    r = scored(answer_record("Eta theta iota.", [p(1, 38, 54)], []))
    assert r.scores.citations_total == 0 and r.scores.citation_precision is None
    assert r.scores.cited_evidence is False
    assert r.scores.failed and "answer cites no passage" in r.scores.failure_reasons


def test_marker_without_citation_entry_still_counts_as_cited():
    r = scored(answer_record("Eta theta iota [1].", [p(1, 38, 54)], []))
    assert r.scores.citations_total == 1 and r.scores.cited_evidence is True


def test_invalid_markers_and_removed_citations():
    rec = answer_record("Eta theta iota [1] [7].", [p(1, 38, 54)], [1], removed=[9, 12])
    assert marker_counts(record(rec)) == (4, 3)  # [1] valid; [7] names no passage; 9 and 12 were removed
    r = scored(rec)
    assert r.scores.failed and any("invalid citation" in x for x in r.scores.failure_reasons)
    m = aggregate([r])
    assert m["invalid_citation_rate"] == pytest.approx(3 / 4)


def test_adjacent_citation_does_not_count_as_evidence():
    r = scored(answer_record("Delta [1].", [p(1, 18, 38)], [1]))   # [18,38) touches evidence [38,54)
    assert r.scores.citation_precision == 0.0 and r.scores.cited_evidence is False


def test_sentence_level_precision_uses_citation_highlights():
    rec = answer_record("Eta theta iota. Alpha. [1]", [p(1, 0, 54)], [1])
    rec["citations"][0]["highlights"] = [[38, 54], [0, 17], [0, 17]]      # a duplicate highlight counts once
    r = scored(rec)
    assert r.scores.citation_precision == 1.0                                # the whole passage overlaps the evidence
    assert (r.scores.cited_sentences_total, r.scores.cited_sentences_relevant) == (2, 1)
    assert aggregate([r])["sentence_citation_precision"] == 0.5


def test_context_recall_scores_the_passages_given_to_the_generator():
    evidence = [ev(0, 17), ev(55, 71)]
    rec = answer_record("Alpha [1].", [p(1, 0, 17), p(2, 18, 37)], [1], evidence=evidence)
    r = scored(rec)
    assert r.scores.context_recall == 0.5 and r.scores.context_chars == 17 + 19
    assert "only part of the evidence in the context given to the generator" in r.scores.warnings
    assert aggregate([r])["context_recall"] == 0.5


# --------------------------------------------------------------------------------------------------- refusals


def test_refusal_on_answerable_question_scores_as_wrong_everywhere():
    r = scored(answer_record("The document does not say theta.", [p(1, 38, 54)], [], refused=True))
    assert r.scores.refusal_correct is False
    assert r.scores.key_correct is False               # even though "theta" occurs in the refusal text
    assert r.scores.f1 == 0.0 and r.scores.cited_evidence is False and r.scores.citation_precision is None
    assert r.scores.failure_reasons == ["refused an answerable question"]


def test_refusals_on_no_answer_questions():
    ok = scored(answer_record("The document does not say.", [p(1, 0, 17)], [], qtype="unanswerable",
                                    evidence=[], keys=[], refused=True))
    bad = scored(answer_record("Alpha beta [1].", [p(1, 0, 17)], [1], qtype="adversarial", evidence=[],
                                     keys=[], refused=False))
    assert ok.scores.refusal_correct is True and not ok.scores.failed
    assert ok.scores.retrieval is None and ok.scores.key_correct is None and ok.scores.f1 is None
    assert bad.scores.refusal_correct is False and bad.scores.failed
    assert "answered an adversarial question instead of refusing" in bad.scores.failure_reasons


def test_aggregate_rates_over_the_right_denominators():
    passages = [p(1, 38, 54), p(2, 0, 17)]
    answerable_ok = scored(answer_record("Eta theta iota [1].", passages, [1]))
    answerable_wrong_cite = scored(answer_record("theta [2].", passages, [2]))
    answerable_refused = scored(answer_record("No.", passages, [], refused=True))
    unans_refused = scored(answer_record("No.", passages, [], qtype="unanswerable", evidence=[], keys=[],
                                               refused=True))
    adv_answered = scored(answer_record("Alpha [2].", passages, [2], qtype="adversarial", evidence=[],
                                              keys=[]))
    m = aggregate([answerable_ok, answerable_wrong_cite, answerable_refused, unans_refused, adv_answered])
    assert m["n"] == 5 and m["n_answerable"] == 3 and m["n_no_answer"] == 2
    assert m["key_accuracy"] == pytest.approx(2 / 3)          # the refused one is wrong
    assert m["citation_precision"] == pytest.approx(1 / 2)    # micro over the 2 non-refused answerable answers
    assert m["citation_recall"] == pytest.approx(1 / 3)       # over all 3 answerable questions
    assert m["correct_refusal_rate"] == 0.5
    assert m["false_refusal_rate"] == pytest.approx(1 / 3)
    assert m["recall@1"] == 1.0 and m["mrr"] == 1.0           # retrieval does not depend on the answer
    assert m["failed"] == 3


def test_correct_refusals_per_kind_of_question_to_refuse():
    """Off-topic and near-miss questions are refused for different reasons (nothing near them vs the right passage
    that does not say it), so each has its own rate besides the overall one."""
    passages = [p(1, 38, 54)]

    def no_answer(qtype: str, refused: bool) -> EvalRecord:
        return scored(answer_record("No." if refused else "Eta [1].", passages, [] if refused else [1], qtype=qtype,
                                    evidence=[], keys=[], refused=refused))

    records = [no_answer("unanswerable", True), no_answer("unanswerable", True), no_answer("nearmiss", True),
               no_answer("nearmiss", False), no_answer("nearmiss", False), no_answer("adversarial", True)]
    m = aggregate(records)
    assert (m["n_no_answer"], m["n_off_topic"], m["n_near_miss"]) == (6, 2, 3)
    assert m["offtopic_refusal_rate"] == 1.0
    assert m["nearmiss_refusal_rate"] == pytest.approx(1 / 3)
    assert m["correct_refusal_rate"] == pytest.approx(4 / 6)        # every kind together
    assert "answered a nearmiss question instead of refusing" in records[3].scores.failure_reasons
    assert records[3].scores.retrieval is None                      # nothing to retrieve for a question to refuse
    only_answerable = aggregate([scored(answer_record("theta [1].", passages, [1]))])
    assert only_answerable["nearmiss_refusal_rate"] is None and only_answerable["offtopic_refusal_rate"] is None
    by_type = next(iter(compute_metrics(records)["by_type"].values()))    # one split, one group
    assert list(by_type) == ["unanswerable", "nearmiss", "adversarial"]
    assert by_type["nearmiss"]["refusal_rate"] == pytest.approx(1 / 3)


def test_records_carry_their_set_through_json():
    r = scored({**answer_record("theta [1].", [p(1, 38, 54)], [1]), "set": "python-tutorial"})
    assert r.set == "python-tutorial" and not r.extra
    again = EvalRecord.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again.set == "python-tutorial" and again.to_dict() == r.to_dict()
    assert "set" not in scored(answer_record("theta [1].", [p(1, 38, 54)], [1])).to_dict()   # a file of one's own


def test_micro_averaged_citation_precision():
    passages = [p(1, 38, 54), p(2, 0, 17), p(3, 18, 37), p(4, 55, 71)]
    one_of_four = scored(answer_record("theta [1][2][3][4].", passages, [1, 2, 3, 4]))
    one_of_one = scored(answer_record("theta [1].", passages, [1]))
    m = aggregate([one_of_four, one_of_one])
    assert m["citation_precision"] == pytest.approx(2 / 5)      # micro; the macro mean would be 0.625


# --------------------------------------------------------------------------------------------------- latency


def test_percentiles_on_small_lists():
    assert percentile([], 50) is None
    assert percentile([7], 95) == 7
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 95) == pytest.approx(3.85)   # linear interpolation, order-independent
    assert percentile([10, 20], 95) == pytest.approx(19.5)
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)


def test_latency_in_aggregate_skips_errors():
    a = scored(answer_record("theta [1].", [p(1, 38, 54)], [1]))
    b = scored({**answer_record("theta [1].", [p(1, 38, 54)], [1]),
                "timings_ms": {"retrieve": 30.0, "generate": 15.0, "total": 45.0}})
    c = scored({**answer_record("", [], []), "error": "RuntimeError: boom", "timings_ms": {}})
    m = aggregate([a, b, c])
    assert m["latency.total.median_ms"] == 30.0 and m["latency.retrieve.p95_ms"] == pytest.approx(29.0)
    assert m["errors"] == 1 and c.scores.failed and c.scores.refusal_correct is False


# --------------------------------------------------------------------------------------------------- groups & table


def test_compute_metrics_groups_types_and_targets():
    passages = [p(1, 38, 54)]
    dev = scored(answer_record("theta [1].", passages, [1]))
    test = scored({**answer_record("No.", passages, [], refused=True), "split": "test", "id": "t"})
    m = compute_metrics([dev, test])
    assert list(m["groups"]) == ["dev", "test", "all"]
    assert m["groups"]["dev"]["key_accuracy"] == 1.0 and m["groups"]["test"]["key_accuracy"] == 0.0
    assert m["groups"]["all"]["key_accuracy"] == 0.5
    assert list(m["by_type"]["all"]) == ["fact"]
    t = m["targets"]
    assert t["split"] == "test" and t["all_met"] is False
    fr = next(r for r in t["results"] if r["metric"] == "false_refusal_rate")
    assert fr["value"] == 1.0 and fr["met"] is False
    rows = metrics_table(m)
    keys = next(r for r in rows if r["key"] == "key_accuracy")
    assert keys["target"] == "≥ 0.85" and keys["met"] == {"dev": True, "test": False, "all": False}
    headers, cells = formatted_table(m)
    assert headers == ["Metric", "dev", "test", "all", "Target"]
    assert any(row[0] == "Key-term accuracy" and row[1] == "1.000 ✓" and row[2] == "0.000 ✗" for row in cells)


def test_single_split_has_one_group_and_targets_fall_back_to_it():
    r = scored({**answer_record("theta [1].", [p(1, 38, 54)], [1]), "split": "mine"})
    m = compute_metrics([r])
    assert list(m["groups"]) == ["mine"]
    assert check_targets(m)["split"] == "mine"


# --------------------------------------------------------------------------------------------------- typed records


def test_score_is_pure_and_scored_returns_a_copy():
    rec = record(answer_record("Eta theta iota [1].", [p(1, 38, 54)], [1]))
    before = rec.to_dict()
    s = score(rec)
    assert isinstance(s, Scores) and s.key_correct is True and s.citations_relevant == 1
    assert rec.scores is None and rec.to_dict() == before          # nothing written into the record
    done = rec.scored()
    assert done is not rec and done.scores == s and rec.scores is None
    with pytest.raises(AttributeError):
        rec.answer = "changed"                                     # frozen: a record is data, not a scratchpad


def test_records_round_trip_through_json_and_keep_unknown_fields():
    data = {**answer_record("Eta theta iota [1].", [p(1, 38, 54)], [1]), "wall_ms": 12.5,
            "a_field_from_a_later_version": {"kept": True}}
    r = scored(data)
    saved = json.loads(json.dumps(r.to_dict()))
    assert saved["a_field_from_a_later_version"] == {"kept": True}
    assert saved["citations_total"] == 1 and saved["failed"] is False   # scores are flat fields of the record
    again = EvalRecord.from_dict(saved)
    assert again == r
    assert again.extra == {"a_field_from_a_later_version": {"kept": True}}


def test_a_saved_file_loads_and_is_rescored_with_the_current_definitions(tmp_path):
    """A results file of format essay-rag-eval/1 (plain dicts, scores included) loads into typed records; its
    stale scores are replaced unless asked to keep them."""
    from eval.runner import EvalRun

    old = {**answer_record("Eta theta iota [1].", [p(1, 38, 54)], [1]), "wall_ms": 3.0,
           "citations_total": 99, "citations_relevant": 0, "failed": True, "failure_reasons": ["stale"]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps({"format": "essay-rag-eval/1", "meta": {"label": "old"}, "metrics": {},
                                "records": [old]}), encoding="utf-8")
    run = EvalRun.load(path)
    (r,) = run.records
    assert isinstance(r, EvalRecord) and r.scores.citations_total == 1 and not r.failed
    assert run.metrics["groups"]["dev"]["key_accuracy"] == 1.0 and run.label == "old"
    kept = EvalRun.load(path, rescore=False).records[0]
    assert kept.scores.citations_total == 99 and kept.failure_reasons == ["stale"]
    again = EvalRun.load(run.save(tmp_path / "again.json"))
    assert again.records == run.records and again.metrics["groups"] == run.metrics["groups"]


# --------------------------------------------------------------------------------------------------- registry


def test_every_aggregate_key_is_a_registered_metric_or_a_count():
    from eval.metrics import METRIC_BY_KEY, METRICS, TARGETS, TYPE_METRICS

    m = aggregate([scored(answer_record("theta [1].", [p(1, 38, 54)], [1]))])
    counts = {"n", "n_answerable", "n_no_answer", "n_off_topic", "n_near_miss", "n_answered", "errors", "failed"}
    assert set(m) == set(METRIC_BY_KEY) | counts
    assert all(METRIC_BY_KEY[spec.key] is spec for spec in METRICS + TYPE_METRICS)
    assert all(METRIC_BY_KEY[t.metric.key] is t.metric for t in TARGETS)


def test_metric_keys_are_written_only_in_the_registry():
    """Other modules name a metric through eval.metrics' constants, so renaming one cannot leave a stale copy.
    (String literals in code only: docstrings may quote a key as an example.)"""
    import ast
    from pathlib import Path

    from eval.metrics import METRIC_BY_KEY

    root = Path(__file__).resolve().parents[1]
    files = [f for f in (root / "eval").glob("*.py") if f.name != "metrics.py"] + [root / "ui" / "evaluation.py"]
    found = []
    for f in files:
        tree = ast.parse(f.read_text(encoding="utf-8"))
        docstrings = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Expr)}
        found += [f"{f.name}:{node.lineno}: {node.value}" for node in ast.walk(tree)
                  if isinstance(node, ast.Constant) and node.value in METRIC_BY_KEY and id(node) not in docstrings]
    assert not found, f"metric keys retyped outside eval/metrics.py: {found}"


# --------------------------------------------------------------------------------------------------- quality gate

SMALL_GATE = """
split = "test"
questions = 2
[metrics."key_accuracy"]
floor = 0.5
measured = 0.5
tolerance = 0.0
[metrics."false_refusal_rate"]
ceiling = 0.0
measured = 0.0
tolerance = 0.0
"""


def gate_run(tmp_path, correct: int):
    """A saved and reloaded run of two answerable test questions, `correct` of them with every key term."""
    from eval.runner import EvalRun

    records = [{**answer_record("Eta theta iota [1]." if i < correct else "Eta iota [1].", [p(1, 38, 54)], [1]),
                "id": f"t{i}", "split": "test"} for i in range(2)]
    return EvalRun.load(EvalRun.from_records(records).save(tmp_path / f"run-{correct}.json"))


def test_gate_passes_at_the_threshold_and_on_an_improvement(tmp_path):
    from eval.gate import Gate

    gate = Gate.from_toml(SMALL_GATE)
    at = gate.check(gate_run(tmp_path, 1).metrics)                 # key accuracy 0.5 = the floor
    assert at.passed and not at.failures and not at.improvements
    better = gate.check(gate_run(tmp_path, 2).metrics)             # 1.0: passes, and says the floor can rise
    assert better.passed and [r.rule.metric.key for r in better.improvements] == ["key_accuracy"]
    assert "raise the floor" in better.summary()


def test_gate_fails_below_the_threshold_and_names_the_metric(tmp_path):
    from eval.gate import Gate

    report = Gate.from_toml(SMALL_GATE).check(gate_run(tmp_path, 0).metrics)
    assert not report.passed
    assert [r.rule.metric.key for r in report.failures] == ["key_accuracy"]
    text = report.summary()
    assert "FAILED" in text
    assert "key_accuracy (Key-term accuracy) 0.000 < floor 0.500 (measured 0.500, tolerance 0.000)" in text
    assert "false_refusal_rate" not in text                         # only what failed is listed


def test_gate_refuses_to_compare_a_different_selection(tmp_path):
    from eval.gate import Gate

    gate = Gate.from_toml(SMALL_GATE.replace("questions = 2", "questions = 45"))
    report = gate.check(gate_run(tmp_path, 2).metrics)
    assert not report.passed and "45 questions" in report.problems[0]
    assert not Gate.from_toml(SMALL_GATE).check({"groups": {"dev": {"n": 2}}}).passed   # no test split at all


@pytest.mark.parametrize("name", set_names())
def test_bundled_gate_file_is_valid_and_tight(name):
    """Every rule of a set's section of eval/quality_gate.toml passes at its measured value and fails just beyond
    its tolerance, and the section counts the set's test split."""
    from eval.gate import Gate, load_gates
    from eval.metrics import NEAR_MISS_REFUSAL_RATE, TARGETS

    gate = load_gates()[name]
    assert gate.split == "test" and gate.questions == len(load_questions(set=name, split="test"))
    assert name in gate.source
    from eval.metrics import OFF_TOPIC_REFUSAL_RATE

    types = {q.type for q in load_questions(set=name, split="test")}
    measurable = {t.metric.key for t in TARGETS
                  if not (t.metric is OFF_TOPIC_REFUSAL_RATE and "unanswerable" not in types)}
    assert {r.metric.key for r in gate.rules} >= measurable
    if any(q.type == "nearmiss" for q in load_questions(set=name, split="test")):
        assert NEAR_MISS_REFUSAL_RATE.key in {r.metric.key for r in gate.rules}
    measured = {r.metric.key: r.measured for r in gate.rules}
    assert gate.check({"groups": {"test": {"n": gate.questions, **measured}}}).passed
    for rule in gate.rules:
        worse = rule.threshold - 0.001 if rule.op == ">=" else rule.threshold + 0.001
        report = gate.check({"groups": {"test": {"n": gate.questions, **measured, rule.metric.key: worse}}})
        assert [r.rule.metric.key for r in report.failures] == [rule.metric.key]
    if name == "essay":
        assert Gate.load() == gate                                   # the default section, as before sets


def test_gate_sections_per_set_and_the_format_before_sets():
    from eval.gate import GateError, Gate, gates_from_toml

    rules = SMALL_GATE.split("\n", 3)[3].replace("[metrics.", "[{set}.metrics.")
    two = (f'[alpha]\nsplit = "test"\nquestions = 2\n{rules.format(set="alpha")}\n'
           f'[beta]\nsplit = "test"\nquestions = 3\n{rules.format(set="beta")}')
    gates = gates_from_toml(two, "g.toml")
    assert list(gates) == ["alpha", "beta"] and gates["beta"].questions == 3
    assert gates["alpha"].source == "g.toml [alpha]"
    assert Gate.from_toml(two, set="beta").questions == 3
    with pytest.raises(GateError, match="no section for evaluation set 'gamma'.*add \\[gamma\\]"):
        Gate.from_toml(two, "g.toml", set="gamma")
    assert list(gates_from_toml(SMALL_GATE)) == ["essay"]             # one gate at the top level: the essay's


@pytest.mark.parametrize("entry, message", [
    ('[metrics."key_acuracy"]\nfloor = 0.5\nmeasured = 0.5\ntolerance = 0.0', "unknown metric 'key_acuracy'"),
    ('[metrics."false_refusal_rate"]\nfloor = 0.5\nmeasured = 0.5\ntolerance = 0.0', "needs a ceiling"),
    ('[metrics."key_accuracy"]\nfloor = 0.4\nmeasured = 0.5\ntolerance = 0.05', "further than the stated tolerance"),
    ('[metrics."key_accuracy"]\nfloor = 0.6\nmeasured = 0.5\ntolerance = 0.05', "above the measured value"),
])
def test_gate_file_mistakes_are_reported(entry, message):
    from eval.gate import Gate, GateError

    with pytest.raises(GateError, match=message):
        Gate.from_toml(f'split = "test"\n{entry}\n')


# --------------------------------------------------------------------------------------------------- dataset


def test_bundled_questions_and_sampling():
    every = load_questions()
    assert {q.split for q in every} == {"dev", "test"}
    assert len(load_questions(split="dev")) + len(load_questions(split="test")) == len(every)
    six = sample(every, 6)
    assert len(six) == 6 and {q.type for q in six} == {"fact", "synthesis", "paraphrase", "followup",
                                                       "nearmiss", "adversarial"}
    assert sample(every, 6) == six and sample(every, None) == every
    with pytest.raises(DatasetError):
        load_questions(split="train")


def test_sets_are_found_by_folder(tmp_path):
    """A folder with a set.toml is a set: another engineer's set appears without code changes."""
    from eval.dataset import EvalSet, eval_sets, get_set, read_set, resolve_sets

    bundled = eval_sets()
    assert list(bundled)[0] == "essay" and "python-tutorial" in bundled
    assert [s.name for s in resolve_sets("all")] == list(bundled)
    tutorial = get_set("python-tutorial")
    assert tutorial.document_path.name == "controlflow.html" and tutorial.titles is None
    assert {q.set for q in load_questions(set="python-tutorial")} == {"python-tutorial"}
    assert get_set("essay").document_path.name == "russia-iran-essay.txt" and get_set("essay").titles

    folder = tmp_path / "mini"
    folder.mkdir()
    (folder / "doc.txt").write_text("Alpha beta.\n", encoding="utf-8")
    (folder / "set.toml").write_text('name = "mini"\ntitle = "Mini"\ndocument = "doc.txt"\nlicence = "CC0"\n'
                                     '[source]\npackage = ""\nversion = ""\npath = "doc.txt"\n', encoding="utf-8")
    row = {"id": "a", "type": "fact", "question": "Q?", "answer": "Alpha", "keys": [["Alpha"]], "evidence": ["Alpha"]}
    for split in ("dev", "test"):
        (folder / f"{split}.jsonl").write_text(json.dumps({**row, "id": split}) + "\n", encoding="utf-8")
    (tmp_path / "not-a-set").mkdir()
    found = eval_sets(tmp_path)
    assert list(found) == ["mini"] and isinstance(found["mini"], EvalSet)
    assert [q.id for q in found["mini"].questions("all")] == ["dev", "test"]
    with pytest.raises(DatasetError, match="Unknown evaluation set 'nope'; the sets are: mini"):
        get_set("nope", tmp_path)
    (folder / "set.toml").write_text('name = "mini"\ntitle = "Mini"\ndocument = "doc.txt"\nlicence = "CC0"\n'
                                     'licence_url = "x"\n[source]\npackage = ""\nversion = ""\npath = ""\n',
                                     encoding="utf-8")
    with pytest.raises(DatasetError, match="unknown key"):
        read_set(folder)
    (folder / "set.toml").write_text('name = "other"\ntitle = "Mini"\ndocument = "missing.txt"\nlicence = "CC0"\n'
                                     '[source]\npackage = ""\nversion = ""\npath = ""\n', encoding="utf-8")
    with pytest.raises(DatasetError, match="must equal the folder name"):
        read_set(folder)


def test_anchor_finds_evidence_up_to_whitespace():
    from eval.dataset import anchor

    text = "Besides the\nwhile\nstatement just introduced, Python uses the usual\nflow control statements."
    assert anchor("Besides the while statement", text) == "Besides the\nwhile\nstatement"
    assert anchor("usual flow control", text) == "usual\nflow control"
    assert anchor("thewhile", text) == "the\nwhile"          # whitespace present or not, the words decide
    assert anchor("a for statement", text) is None and anchor("", text) is None


def test_no_answer_questions_have_no_keys_or_evidence(tmp_path):
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps({"id": "n", "type": "nearmiss", "question": "Q?", "answer": "", "keys": [["x"]],
                                "evidence": []}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="a nearmiss question is to be refused"):
        read_jsonl(path)


def test_custom_file_errors_name_the_line(tmp_path):
    good = {"id": "a", "type": "fact", "question": "Q?", "answer": "A", "keys": [["A"]], "evidence": ["A"]}
    path = tmp_path / "qs.jsonl"
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "id": "b", "keys": []}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"qs.jsonl:3: a fact question needs 'keys' and 'evidence'"):
        read_jsonl(path)
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="duplicate id 'a'"):
        read_jsonl(path)
    path.write_text(json.dumps(good) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r":2: invalid JSON"):
        read_jsonl(path)
    path.write_text(json.dumps({**good, "split": "x"}) + "\n", encoding="utf-8")
    assert [q.split for q in load_questions(path)] == ["x"]
    assert load_questions(path, split="x")[0].id == "a"
