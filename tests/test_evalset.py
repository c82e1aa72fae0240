"""Sanity checks for the bundled essay evaluation question set (eval/data/essay_*.jsonl)."""

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "eval" / "data"
SPLITS = {"dev": DATA_DIR / "essay_dev.jsonl", "test": DATA_DIR / "essay_test.jsonl"}
ESSAY_NAME = "russia-iran-essay.txt"

TYPES = {"fact", "synthesis", "paraphrase", "unanswerable", "adversarial", "followup"}
NO_ANSWER_TYPES = {"unanswerable", "adversarial"}
REQUIRED_FIELDS = {"id", "type", "question", "answer", "keys", "evidence"}
ALL_FIELDS = REQUIRED_FIELDS | {"history"}
MIN_TOTAL = 80


def _essay_path():
    candidates = []
    try:
        from index.corpus import default_corpus_path  # type: ignore
    except ImportError:
        pass
    else:
        try:
            found = default_corpus_path() if callable(default_corpus_path) else default_corpus_path
            if found:
                found = Path(found)
                candidates.append(found / ESSAY_NAME if found.is_dir() else found)
        except Exception:  # noqa: BLE001 - fall back to the repository copies below
            pass
    candidates.append(REPO_ROOT / "index" / "corpus" / ESSAY_NAME)
    candidates.append(REPO_ROOT.parent / "shared" / "corpus" / ESSAY_NAME)
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip(f"essay {ESSAY_NAME} not found in any of: {[str(c) for c in candidates]}")


@pytest.fixture(scope="module")
def essay():
    return _essay_path().read_text(encoding="utf-8")


def _load(path):
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:  # pragma: no cover - reported as failure
                pytest.fail(f"{path.name}:{lineno}: invalid JSON: {exc}")
            assert isinstance(obj, dict), f"{path.name}:{lineno}: not a JSON object"
            records.append((lineno, obj))
    return records


@pytest.fixture(scope="module")
def splits():
    out = {}
    for name, path in SPLITS.items():
        assert path.is_file(), f"missing {path}"
        out[name] = _load(path)
    return out


def _all(splits):
    for name, records in splits.items():
        for lineno, obj in records:
            yield f"{name}:{lineno}:{obj.get('id')}", obj


def test_files_parse_and_nonempty(splits):
    for name, records in splits.items():
        assert records, f"{name} split is empty"


def test_fields_and_types(splits):
    for where, obj in _all(splits):
        fields = set(obj)
        assert REQUIRED_FIELDS <= fields <= ALL_FIELDS, f"{where}: bad fields {sorted(fields)}"
        for field in ("id", "type", "question", "answer"):
            assert isinstance(obj[field], str) and obj[field].strip(), f"{where}: {field} must be a non-empty str"
        assert obj["type"] in TYPES, f"{where}: unknown type {obj['type']!r}"
        assert isinstance(obj["evidence"], list), f"{where}: evidence must be a list"
        assert all(isinstance(e, str) and e.strip() for e in obj["evidence"]), f"{where}: evidence items must be str"
        assert isinstance(obj["keys"], list), f"{where}: keys must be a list"
        for group in obj["keys"]:
            assert isinstance(group, list) and group, f"{where}: each key group must be a non-empty list"
            assert all(isinstance(k, str) and k.strip() for k in group), f"{where}: key terms must be str"
        if "history" in obj:
            assert isinstance(obj["history"], list), f"{where}: history must be a list"
            if obj["type"] != "followup":
                assert obj["history"] == [], f"{where}: only followup items may have a history"


def test_ids_unique_across_splits(splits):
    seen = {}
    for where, obj in _all(splits):
        assert obj["id"] not in seen, f"{where}: duplicate id (also at {seen.get(obj['id'])})"
        seen[obj["id"]] = where


def test_evidence_is_verbatim(splits, essay):
    for where, obj in _all(splits):
        for ev in obj["evidence"]:
            assert ev in essay, f"{where}: evidence not found verbatim in essay: {ev!r}"


def test_answerable_items_have_evidence_and_keys(splits):
    for where, obj in _all(splits):
        if obj["type"] in NO_ANSWER_TYPES:
            assert obj["evidence"] == [], f"{where}: {obj['type']} must have empty evidence"
            assert obj["keys"] == [], f"{where}: {obj['type']} must have empty keys"
            continue
        assert obj["evidence"], f"{where}: answerable item needs evidence"
        assert obj["keys"], f"{where}: answerable item needs keys"
        evidence = " ".join(obj["evidence"]).lower()
        answer = obj["answer"].lower()
        for group in obj["keys"]:
            assert any(k.lower() in evidence for k in group), f"{where}: no term of {group} occurs in evidence"
            assert any(k.lower() in answer for k in group), f"{where}: reference answer misses key group {group}"
        if obj["type"] == "synthesis":
            assert len(obj["evidence"]) >= 2, f"{where}: synthesis needs 2+ evidence strings"


def test_followup_history(splits):
    for where, obj in _all(splits):
        if obj["type"] != "followup":
            continue
        history = obj.get("history")
        assert isinstance(history, list) and history, f"{where}: followup needs a non-empty history"
        for i, turn in enumerate(history):
            assert isinstance(turn, dict) and set(turn) == {"role", "content"}, f"{where}: bad turn {turn!r}"
            expected = "user" if i % 2 == 0 else "assistant"
            assert turn["role"] == expected, f"{where}: turn {i} should be {expected}"
            assert isinstance(turn["content"], str) and turn["content"].strip(), f"{where}: empty turn {i}"


def test_each_split_has_every_type(splits):
    for name, records in splits.items():
        present = {obj["type"] for _, obj in records}
        assert present == TYPES, f"{name}: missing types {sorted(TYPES - present)}"


def test_total_size(splits):
    total = sum(len(records) for records in splits.values())
    assert total >= MIN_TOTAL, f"only {total} questions (need >= {MIN_TOTAL})"
