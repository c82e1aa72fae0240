"""Gate sections written from a measured run read back as a gate that the same run passes, and a run one
question worse than the tolerance fails (pure: metrics dicts, no model)."""

from __future__ import annotations

from eval.gate import gates_from_toml, section_toml


def _metrics(key_accuracy: float) -> dict:
    group = {"n": 40, "n_answerable": 25, "n_answered": 24, "n_no_answer": 15, "n_off_topic": 5, "n_near_miss": 10,
             "recall@1000c": 0.8, "recall@5": 0.84, "mrr": 0.7, "context_recall": 0.88, "key_accuracy": key_accuracy,
             "f1": 0.4, "citation_precision": 0.6, "citation_recall": 0.8, "invalid_citation_rate": 0.0,
             "correct_refusal_rate": 0.6, "offtopic_refusal_rate": 1.0, "nearmiss_refusal_rate": 0.4,
             "false_refusal_rate": 0.04}
    return {"groups": {"test": group}}


def test_a_written_section_passes_its_own_run_and_fails_a_worse_one():
    text = section_toml("notes", _metrics(0.72))
    gate = gates_from_toml(text)["notes"]
    assert gate.check(_metrics(0.72)).passed
    assert gate.check(_metrics(0.70)).passed           # within one question (1/25 = 0.04)
    report = gate.check(_metrics(0.60))
    assert not report.passed and [r.rule.metric.key for r in report.failures] == ["key_accuracy"]
