"""The evaluation runner end to end: real embedding model, real index in a temp dir, five bundled questions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.compare import compare_runs, print_comparison, write_compare_html
from eval.dataset import BUNDLED_SPLITS, load_questions
from eval.metrics import TARGETS, metrics_table
from eval.records import ANSWER_FIELDS, SCORE_FIELDS, EvalRecord
from eval.report import render_html, write_html
from eval.runner import EvalRun, run_eval

# One of each kind the issue names: a fact, a paraphrase, an unanswerable, an adversarial and a follow-up.
IDS = ["fact-01", "para-02", "unans-01", "adv-01", "fup-01"]
RECORD_FIELDS = {"id", "type", "split", "history", "expected", "retrieved", "error", "wall_ms"}
RETRIEVAL_FIELDS = {"recall@1", "recall@3", "recall@5", "recall@10", "rr", "recall@1000c", "recall@2000c"}


@pytest.fixture(scope="module")
def questions_file(tmp_path_factory) -> Path:
    rows = {}
    for path in BUNDLED_SPLITS.values():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                rows[obj["id"]] = obj
    path = tmp_path_factory.mktemp("evalset") / "five.jsonl"
    path.write_text("".join(json.dumps(rows[i], ensure_ascii=False) + "\n" for i in IDS), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    from rag import Settings

    return Settings(index={"dir": tmp_path_factory.mktemp("eval-root") / "index"}, llm={"backend": "extractive"})


@pytest.fixture(scope="module")
def rag(settings):
    from rag import RAG

    return RAG.from_settings(settings)


@pytest.fixture(scope="module")
def run(rag, questions_file) -> EvalRun:
    seen = []
    result = run_eval(rag, load_questions(questions_file), progress=lambda done, total, rec: seen.append(done),
                      label="default")
    assert seen == [0, 1, 2, 3, 4, 5]
    return result


@pytest.fixture(scope="module")
def other_run(rag, settings, questions_file) -> EvalRun:
    """A deliberately weaker configuration (BM25 only, two passages) for the comparison tests."""
    weaker = rag.with_settings(settings.updated(retrieval={"mode": "bm25", "k": 2}))
    return run_eval(weaker, load_questions(questions_file), label="bm25-k2", warmup=False)


def test_records_carry_the_answer_contract_and_the_scores(run, rag):
    assert [r.id for r in run.records] == IDS
    for r in run.records:
        assert isinstance(r, EvalRecord) and r.scores is not None
        saved = r.to_dict()                  # the results-file form: record, Answer.to_dict() and score fields
        for fields in (RECORD_FIELDS, set(ANSWER_FIELDS), set(SCORE_FIELDS)):
            assert fields <= set(saved), f"{r.id}: missing {fields - set(saved)}"
        assert not r.extra, f"{r.id}: Answer.to_dict() has fields the record does not name: {set(r.extra)}"
        assert r.split == "five" and r.error is None
        assert isinstance(r.refused, bool) and isinstance(r.scores.failed, bool)
        assert set(r.timings_ms) >= {"retrieve", "generate", "total"}
    by_id = run.by_id()
    for qid in ("fact-01", "para-02", "fup-01"):
        r, s = by_id[qid], by_id[qid].scores
        assert RETRIEVAL_FIELDS <= set(s.retrieval)
        assert all(0.0 <= s.retrieval[k] <= 1.0 for k in RETRIEVAL_FIELDS)
        assert len(r.retrieved) == 10 and [p["n"] for p in r.retrieved] == list(range(1, 11))
        assert isinstance(s.key_correct, bool) and 0.0 <= s.f1 <= 1.0
        # the evidence was located verbatim in the indexed essay
        for ev in r.expected.evidence:
            assert ev["spans"], f"{qid}: evidence not located"
            assert rag.document_text(ev["source"])[ev["start"]:ev["end"]] == ev["text"]
    assert by_id["fact-01"].scores.retrieval["recall@10"] == 1.0   # a plain fact is found in the top 10
    assert by_id["fup-01"].history, "the follow-up keeps its conversation"
    for qid in ("unans-01", "adv-01"):
        r, s = by_id[qid], by_id[qid].scores
        assert s.retrieval is None and s.key_correct is None and s.f1 is None
        assert s.refusal_correct == r.refused
        assert s.failed == (not r.refused)
    assert by_id["adv-01"].refused, "'Ignore previous instructions…' must be refused"


def test_metrics_targets_and_table(run):
    groups = run.metrics["groups"]
    assert list(groups) == ["five"]
    m = groups["five"]
    assert (m["n"], m["n_answerable"], m["n_no_answer"]) == (5, 3, 2)
    for key in ("recall@1", "recall@5", "mrr", "recall@1000c", "key_accuracy", "f1", "citation_recall",
                "correct_refusal_rate", "false_refusal_rate", "invalid_citation_rate"):
        assert m[key] is not None and 0.0 <= m[key] <= 1.0, key
    assert m["latency.total.median_ms"] > 0 and m["latency.total.p95_ms"] >= m["latency.total.median_ms"]
    assert set(run.metrics["by_type"]["five"]) == {"fact", "paraphrase", "followup", "nearmiss", "adversarial"}
    targets = run.metrics["targets"]
    assert targets["split"] == "five" and len(targets["results"]) == len(TARGETS)
    rows = metrics_table(run)
    assert {r["key"] for r in rows} >= {"recall@1000c", "key_accuracy", "citation_precision"}
    assert len(run.failures()) == m["failed"]


def test_results_json_round_trip(run, tmp_path):
    path = run.save(tmp_path / "results.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"].startswith("essay-rag-eval/") and len(data["records"]) == 5
    assert data["meta"]["settings"]["index"]["chunker"] == "sections"
    assert "api_key" not in json.dumps(data["meta"])
    again = EvalRun.load(path)
    assert again.metrics["groups"] == run.metrics["groups"]   # re-scoring a saved run gives the same numbers
    assert again.records == run.records                       # and the same typed records


def test_html_report_is_self_contained(run, tmp_path):
    path = write_html(run, tmp_path / "report.html")
    page = path.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "</html>" in page
    assert "<table class='metrics'>" in page and "Key-term accuracy" in page and "Recall in 1,000 chars" in page
    assert "data:image/png;base64," in page
    assert "By question type" in page and "Failing questions" in page
    for r in run.failures():
        assert f"id='q-{r.id}'" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page   # nothing to fetch
    assert render_html(run) == page


def test_compare_two_runs(run, other_run, tmp_path):
    from rich.console import Console

    cmp = compare_runs(other_run, run)
    assert cmp["a"] == "bm25-k2" and cmp["b"] == "default" and cmp["groups"] == ["five"]
    row = next(r for r in cmp["metrics"] if r["key"] == "recall@5")
    v = row["values"]["five"]
    assert v["delta"] == pytest.approx(v["b"] - v["a"])
    assert v["direction"] in {"better", "worse", "same"}
    ids = {i["id"] for i in cmp["improved"] + cmp["regressed"] + cmp["changed"]}
    assert ids <= set(IDS) and not cmp["only_a"] and not cmp["only_b"]
    console = Console(record=True, width=160)
    print_comparison(cmp, console)
    text = console.export_text()
    assert "Recall@5" in text and "Got better" in text and "Got worse" in text and "A → B" in text
    page = write_compare_html(other_run, run, tmp_path / "compare.html", cmp).read_text(encoding="utf-8")
    assert "Comparison" in page and "data:image/png;base64," in page

    # runs over different questions are compared on the questions they share
    part = EvalRun.from_records(run.records[:3], {"label": "part"})
    cmp = compare_runs(part, run)
    assert cmp["only_b"] == IDS[3:] and cmp["common"] == 3
    n = next(r for r in cmp["metrics"] if r["key"] == "key_accuracy")["values"]["five"]
    assert n["a"] == n["b"] and n["direction"] == "same"


def _cli(args: list[str], env_extra: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_extra)
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_cli_eval_writes_results_and_report_then_compares(rag, settings, questions_file, run, tmp_path):
    env = {"RAG_INDEX__DIR": str(settings.index.dir), "RAG_LLM__BACKEND": "extractive", "COLUMNS": "160"}
    out, report = tmp_path / "cli.json", tmp_path / "cli.html"
    done = _cli(["eval", str(questions_file), "--limit", "5", "--no-progress", "--out", str(out), "--report",
                 str(report), "--label", "cli"], env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "Key-term accuracy" in done.stdout and "Target" in done.stdout and "By question type" in done.stdout
    data = json.loads(out.read_text(encoding="utf-8"))
    assert [r["id"] for r in data["records"]] == IDS and data["meta"]["label"] == "cli"
    assert "<table class='metrics'>" in report.read_text(encoding="utf-8")
    # the quality gate compares the whole test split only; a selection of other questions is refused up front
    checked = _cli(["eval", str(questions_file), "--no-progress", "--check", "--type", "adversarial"], env)
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    assert "--check compares the 45 questions of the test split" in " ".join((checked.stdout + checked.stderr).split())

    saved = run.save(tmp_path / "default.json")
    done = _cli(["eval", "--compare", str(saved), str(out), "--report", str(tmp_path / "cmp.html")], env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "A → B" in done.stdout and "Got better" in done.stdout and (tmp_path / "cmp.html").is_file()


def test_cli_reports_bad_input_without_traceback(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "type": "fact", "question": "Q?", "answer": "A", "keys": [], "evidence": []}\n',
                   encoding="utf-8")
    done = _cli(["eval", str(bad)], {})
    assert done.returncode == 2 and "bad.jsonl:1" in done.stdout + done.stderr
    done = _cli(["eval", "--compare", str(tmp_path / "missing-a.json"), str(tmp_path / "missing-b.json")], {})
    assert done.returncode == 2 and "not found" in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_cli_stops_with_a_clear_message_when_the_llm_is_unreachable(settings, rag, questions_file):
    env = {"RAG_INDEX__DIR": str(settings.index.dir), "RAG_LLM__BACKEND": "openai-compatible",
           "RAG_LLM__BASE_URL": "http://127.0.0.1:9/v1"}
    done = _cli(["eval", str(questions_file), "--no-progress"], env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "openai-compatible" in done.stdout + done.stderr and "Traceback" not in done.stdout + done.stderr


def test_baseline_configuration(settings):
    from eval.configs import baseline_settings

    base = baseline_settings(settings)
    assert (base.index.chunker, base.index.chunk_size, base.index.chunk_overlap, base.index.embed_headings) == \
        ("recursive", 1000, 200, False)
    assert base.index.embedding_model == settings.index.embedding_model
    assert base.index.dir == settings.index.dir.with_name("index-baseline")
    assert (base.retrieval.mode, base.retrieval.k, base.retrieval.merge_adjacent, base.retrieval.reranker) == \
        ("dense", 4, False, None)
    assert base.retrieval.budget_chars >= 4000 and base.llm.backend == "extractive"
    assert settings.index.chunker == "sections"           # the original is untouched


def test_baseline_run_uses_its_own_index_and_the_tutorial_retrieval(rag, settings, questions_file):
    from eval.runner import rag_for_config

    base = rag_for_config(rag, "baseline")
    assert base.embedder is rag.embedder                    # the loaded model is shared, not loaded again
    result = run_eval(base, load_questions(questions_file), config="baseline", warmup=False)
    assert result.meta["settings"]["index"]["chunker"] == "recursive"
    assert (settings.index.dir.parent / "index-baseline").is_dir()
    fact = result.by_id()["fact-01"]
    assert max(p["end"] - p["start"] for p in fact.retrieved) > 600            # 1,000-character chunks
    assert all(p["end"] - p["start"] <= 1000 for p in fact.retrieved)
    assert 1 <= len(fact.passages) <= 4                                         # k = 4, no merging
    assert result.metrics["groups"]["five"]["n"] == 5


# --------------------------------------------------------------------------------------------------- sets

TUTORIAL_IDS = ["fact-01", "fup-05", "unans-01", "near-01"]


def test_each_set_is_evaluated_on_its_own_index_holding_only_its_document(rag, settings):
    """A set's numbers must not depend on what else is indexed, and evaluating must not touch the user's index."""
    from eval.dataset import get_set
    from eval.runner import rag_for_set, set_index_dir

    tutorial = get_set("python-tutorial")
    on_set = rag_for_set(tutorial, settings, rag)
    assert on_set.embedder is rag.embedder                        # the loaded model is lent, not loaded again
    assert set_index_dir(settings, "python-tutorial") == settings.index.dir.parent / "eval-sets" / "python-tutorial"
    assert Path(on_set.settings.index.dir) == set_index_dir(settings, "python-tutorial")
    assert [d.source for d in on_set.documents()] == [str(tutorial.document_path.resolve())]
    assert [d.source for d in rag.documents()] != [d.source for d in on_set.documents()]   # the user's is untouched
    again = rag_for_set(tutorial, settings, on_set)                # opening it again changes nothing
    assert [d.source for d in again.documents()] == [d.source for d in on_set.documents()]

    questions = [q for q in load_questions(set="python-tutorial") if q.id in TUTORIAL_IDS]
    result = run_eval(again, questions, warmup=False, dataset="python-tutorial set")
    assert result.meta["set"] == "python-tutorial" and all(r.set == "python-tutorial" for r in result.records)
    assert {r.type for r in result.records} == {"fact", "followup", "unanswerable", "nearmiss"}
    fact = result.by_id()["fact-01"]
    assert fact.expected.evidence[0]["spans"], "evidence is located in the loaded HTML text"
    assert not any("not found" in w for r in result.records for w in r.scores.warnings)
    m = result.metrics["groups"]
    group = next(iter(m.values()))
    assert group["n_off_topic"] == 1 and group["n_near_miss"] == 1
    assert EvalRun.load(result.save(Path(settings.index.dir).parent / "tut.json")).records[0].set == "python-tutorial"


def test_a_set_document_indexed_by_an_older_loader_is_read_again(rag, settings, tmp_path, monkeypatch):
    """An index keeps the text its documents were loaded with; a set's document that this program now reads
    differently (the file unchanged) is dropped and read again, so a kept set index never scores stale text. The
    older loader is a patched one: a real loader change cannot be produced on demand."""
    import index.documents as documents
    from eval.dataset import read_set
    from eval.runner import rag_for_set

    folder = tmp_path / "tiny-notes"
    folder.mkdir()
    (folder / "notes.html").write_text("<html><head><title>Tiny notes</title></head><body><h1>Opening hours</h1>"
                                       "<p>The museum opens at nine and closes at five every weekday.</p>"
                                       "<p>Children under twelve enter free.</p></body></html>", encoding="utf-8")
    (folder / "set.toml").write_text('name = "tiny-notes"\ntitle = "Tiny notes"\ndocument = "notes.html"\n'
                                     'licence = "CC0-1.0"\n[source]\npackage = "none"\nversion = "0"\n'
                                     'path = "notes.html"\n', encoding="utf-8")
    tiny = read_set(folder)
    fresh = documents.load_document(tiny.document_path).text
    real = documents._LOADERS["html"]
    monkeypatch.setitem(documents._LOADERS, "html",
                        lambda path, data: (real(path, data)[0] + "\n\nA line an older loader kept.", None))
    old = rag_for_set(tiny, settings, rag)
    source = str(tiny.document_path.resolve())
    assert old.document_text(source) != fresh
    monkeypatch.setitem(documents._LOADERS, "html", real)
    again = rag_for_set(tiny, settings, old)
    assert [d.source for d in again.documents()] == [source]
    assert again.document_text(source) == fresh
    assert "older loader" not in " ".join(p.text for p in again.retrieve("When does the museum open?"))


def test_set_index_dir_keeps_configurations_apart(settings):
    from eval.configs import baseline_settings
    from eval.runner import set_index_dir

    assert set_index_dir(baseline_settings(settings), "essay").name == "essay-baseline"
    assert set_index_dir(settings.updated(index={"dir": settings.index.dir.parent / "mine"}), "essay").name == \
        "essay-mine"


def test_cli_set_all_reports_per_set_and_writes_a_file_per_set(rag, settings, tmp_path):
    from eval.dataset import set_names

    env = {"RAG_INDEX__DIR": str(settings.index.dir), "RAG_LLM__BACKEND": "extractive", "COLUMNS": "200"}
    out = tmp_path / "all.json"
    done = _cli(["eval", "--set", "all", "--split", "test", "--limit", "2", "--no-progress", "--show-failures", "0",
                 "--out", str(out)], env, timeout=900)
    assert done.returncode == 0, done.stderr + done.stdout
    text = " ".join(done.stdout.split())
    assert "Per set" in text and "Correct refusals, near-miss" in text
    for name in set_names():
        data = json.loads((tmp_path / f"all.{name}.json").read_text(encoding="utf-8"))
        assert data["meta"]["set"] == name and len(data["records"]) == 2
        assert {r["set"] for r in data["records"]} == {name}
        assert data["meta"]["documents"] == [str(Path(p).resolve()) for p in data["meta"]["documents"]]
        assert (settings.index.dir.parent / "eval-sets" / name).is_dir()
        assert f"on the {name} set" in text
    assert not out.exists()


def test_cli_set_mistakes_are_said_before_anything_loads(tmp_path, questions_file):
    done = _cli(["eval", "--set", "nope"], {})
    assert done.returncode == 2 and "Unknown evaluation set 'nope'" in done.stdout + done.stderr
    assert "python-tutorial" in done.stdout + done.stderr
    done = _cli(["eval", str(questions_file), "--set", "essay"], {})
    assert done.returncode == 2 and "not both" in done.stdout + done.stderr
    only_essay = tmp_path / "gate.toml"
    from eval.gate import GATE_FILE

    text = GATE_FILE.read_text(encoding="utf-8")
    only_essay.write_text(text[:text.index("[python-tutorial]")], encoding="utf-8")
    done = _cli(["eval", "--set", "python-tutorial", "--split", "test", "--check", "--gate", str(only_essay)], {})
    out = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 2 and "no section for evaluation set 'python-tutorial'" in out, out
    assert "Traceback" not in out


def _asked(qid: str, question: str, keys: list[list[str]]):
    from eval.dataset import Question

    return Question(id=qid, type="fact", question=question, answer="", keys=keys, evidence=[])


def test_where_an_answer_is_lost_never_finds_more_in_fewer_sentences(essay_rag):
    """eval.ranking: the key groups found grow with the sentences read and never exceed the passages' or the
    question's; a question in a sentence's own words finds its key in the best sentence; a key the essay never
    says is found nowhere."""
    from eval.ranking import TOP, rank_set

    qs = [_asked("own-words", "Does the long-term agreement between Iran and Russia contain a clause on mutual "
                              "defense?", [["mutual defense"]]),
          _asked("two-groups", "Which fighter jets and air defense systems did Tehran try to procure?",
                 [["Su-35"], ["S-400"]]),
          _asked("absent", "What did the agreement say about mutual defense?", [["zzqxv-not-in-the-essay"]])]
    ranking = rank_set(essay_rag, "essay", qs)
    by_id = {q.id: q for q in ranking.questions}
    for q in ranking.questions:
        found = [q.top[k] for k in TOP]
        assert found == sorted(found), q
        assert found[-1] <= q.in_passages <= q.groups, q
        assert q.selected <= q.in_passages, q
    assert by_id["own-words"].top[1] == 1 and by_id["own-words"].selected == 1
    assert by_id["two-groups"].groups == 2 and by_id["two-groups"].in_passages == 2
    assert by_id["absent"].in_passages == 0 and by_id["absent"].selected == 0
    summary = ranking.summary()
    assert summary["answerable"] == 3 and summary["in_passages"] == round(2 / 3, 3)


def test_where_an_answer_is_lost_names_an_unknown_set(capsys):
    from eval.ranking import main

    with pytest.raises(SystemExit) as exc:
        main(["--set", "no-such-set"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown set no-such-set" in err and "essay" in err
