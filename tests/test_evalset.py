"""Sanity checks for every bundled evaluation set (eval/data/<set>/: set.toml, the document, LICENSE, dev.jsonl,
test.jsonl). Sets are found by folder, so a new set is checked as soon as it is added.

The check that matters most: every evidence string is a verbatim substring of the text the index sees for the
set's document (`index.documents.load_document`), since retrieval and citations are scored by where the
evidence lies in that text.
"""

import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "eval" / "data"
SET_DIRS = sorted(p for p in DATA_DIR.iterdir() if (p / "set.toml").is_file())
SET_NAMES = [p.name for p in SET_DIRS]
ESSAY_NAME = "russia-iran-essay.txt"

TYPES = {"fact", "synthesis", "paraphrase", "unanswerable", "nearmiss", "adversarial", "followup"}
NO_ANSWER_TYPES = {"unanswerable", "nearmiss", "adversarial"}
# The essay's set was written before near-miss questions were a type; every other set has them.
# The essay's questions that it cannot answer are all near-misses (on-topic); it has no off-topic ones.
REQUIRED_TYPES = {"essay": TYPES - {"unanswerable"}}
REQUIRED_FIELDS = {"id", "type", "question", "answer", "keys", "evidence"}
ALL_FIELDS = REQUIRED_FIELDS | {"history"}
MIN_TOTAL = {"essay": 80}
MIN_TOTAL_OTHER = 60
# A question with a history is a follow-up, or a refusal asked after an unrelated turn (a topic switch).
HISTORY_TYPES = {"followup", "unanswerable", "nearmiss"}
QUOTES = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\u00a0": " "})


def _fold(text: str) -> str:
    """As the key-term metric reads text: case, curly quotes and runs of whitespace folded."""
    return re.sub(r"\s+", " ", text.translate(QUOTES).casefold())


def _essay_path():
    from index.corpus import default_corpus_path

    path = Path(default_corpus_path())
    if not path.is_file():  # pragma: no cover - the package ships it
        pytest.skip(f"essay {ESSAY_NAME} not found at {path}")
    return path


def _meta(folder: Path) -> dict:
    return tomllib.loads((folder / "set.toml").read_text(encoding="utf-8"))


def _document_path(folder: Path) -> Path:
    document = _meta(folder)["document"]
    return _essay_path() if document == "bundled-essay" else folder / document


_TEXTS: dict[str, str] = {}


def _document_text(folder: Path) -> str:
    """The text the index sees: what `load_document` returns (for HTML, the extracted text, not the markup)."""
    if folder.name not in _TEXTS:
        from index.documents import load_document

        _TEXTS[folder.name] = load_document(_document_path(folder)).text
    return _TEXTS[folder.name]


def _load(path: Path):
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:  # pragma: no cover - reported as failure
                pytest.fail(f"{path}:{lineno}: invalid JSON: {exc}")
            assert isinstance(obj, dict), f"{path}:{lineno}: not a JSON object"
            records.append((lineno, obj))
    return records


def _splits(folder: Path) -> dict:
    out = {}
    for name in ("dev", "test"):
        path = folder / f"{name}.jsonl"
        assert path.is_file(), f"missing {path}"
        out[name] = _load(path)
    return out


def _all(folder: Path):
    for name, records in _splits(folder).items():
        for lineno, obj in records:
            yield f"{folder.name}/{name}:{lineno}:{obj.get('id')}", obj


sets = pytest.mark.parametrize("folder", SET_DIRS, ids=SET_NAMES)


def test_the_essay_and_the_python_tutorial_are_there():
    assert {"essay", "python-tutorial"} <= set(SET_NAMES)
    assert not list(DATA_DIR.glob("*.jsonl")), "question files belong in eval/data/<set>/ now"


@sets
def test_set_toml_document_and_licence(folder):
    from eval.dataset import BUNDLED_ESSAY, read_set

    meta = read_set(folder)  # the loader's own checks: keys, name = folder, document present, [source]
    assert meta.name == folder.name
    assert (folder / "LICENSE").is_file() and (folder / "LICENSE").read_text(encoding="utf-8").strip()
    if meta.document == BUNDLED_ESSAY:
        assert not (folder / ESSAY_NAME).exists(), "the essay has one copy, index/corpus/"
    else:
        assert meta.document_path.is_file()
    assert _document_text(folder).strip()


def test_the_tutorial_chapter_is_the_debian_file_unchanged():
    """Byte-identical to python3.11-doc's file (sha256 recorded when it was copied), so the source in set.toml
    is the whole story of where the document came from."""
    folder = DATA_DIR / "python-tutorial"
    meta = _meta(folder)
    assert meta["source"]["package"] == "python3.11-doc" and meta["document"] == "controlflow.html"
    digest = hashlib.sha256((folder / "controlflow.html").read_bytes()).hexdigest()
    assert digest == "53409aecc8261868f5ed6612ba5fbe0ef38d2c673afb539b0011e952e09e2650"
    debian = Path(meta["source"]["path"])
    if debian.is_file():  # where python3-doc is installed, compare with it directly
        assert debian.read_bytes() == (folder / "controlflow.html").read_bytes()


@sets
def test_files_parse_and_nonempty(folder):
    for name, records in _splits(folder).items():
        assert records, f"{folder.name}: {name} split is empty"


@sets
def test_fields_and_types(folder):
    for where, obj in _all(folder):
        fields = set(obj)
        assert REQUIRED_FIELDS <= fields <= ALL_FIELDS, f"{where}: bad fields {sorted(fields)}"
        for field in ("id", "type", "question"):
            assert isinstance(obj[field], str) and obj[field].strip(), f"{where}: {field} must be a non-empty str"
        assert isinstance(obj["answer"], str), f"{where}: answer must be a str"
        assert obj["type"] in TYPES, f"{where}: unknown type {obj['type']!r}"
        if obj["type"] not in NO_ANSWER_TYPES:
            assert obj["answer"].strip(), f"{where}: an answerable question needs a reference answer"
        assert isinstance(obj["evidence"], list), f"{where}: evidence must be a list"
        assert all(isinstance(e, str) and e.strip() for e in obj["evidence"]), f"{where}: evidence items must be str"
        assert isinstance(obj["keys"], list), f"{where}: keys must be a list"
        for group in obj["keys"]:
            assert isinstance(group, list) and group, f"{where}: each key group must be a non-empty list"
            assert all(isinstance(k, str) and k.strip() for k in group), f"{where}: key terms must be str"
        if "history" in obj:
            assert isinstance(obj["history"], list), f"{where}: history must be a list"
            if obj["type"] not in HISTORY_TYPES:
                assert obj["history"] == [], f"{where}: a {obj['type']} question has no history"


@sets
def test_ids_unique_across_splits(folder):
    seen = {}
    for where, obj in _all(folder):
        assert obj["id"] not in seen, f"{where}: duplicate id (also at {seen.get(obj['id'])})"
        seen[obj["id"]] = where


@sets
def test_evidence_is_verbatim_in_the_text_the_index_sees(folder):
    text = _document_text(folder)
    for where, obj in _all(folder):
        for ev in obj["evidence"]:
            assert ev in text, f"{where}: evidence not found verbatim in the loaded document: {ev!r}"


@sets
def test_answerable_items_have_evidence_and_keys(folder):
    for where, obj in _all(folder):
        if obj["type"] in NO_ANSWER_TYPES:
            assert obj["evidence"] == [], f"{where}: {obj['type']} must have empty evidence"
            assert obj["keys"] == [], f"{where}: {obj['type']} must have empty keys"
            continue
        assert obj["evidence"], f"{where}: answerable item needs evidence"
        assert obj["keys"], f"{where}: answerable item needs keys"
        evidence = _fold(" ".join(obj["evidence"]))
        answer = _fold(obj["answer"])
        for group in obj["keys"]:
            assert any(_fold(k) in evidence for k in group), f"{where}: no term of {group} occurs in evidence"
            assert any(_fold(k) in answer for k in group), f"{where}: reference answer misses key group {group}"
        if obj["type"] == "synthesis":
            assert len(obj["evidence"]) >= 2, f"{where}: synthesis needs 2+ evidence strings"


@sets
def test_followup_history(folder):
    for where, obj in _all(folder):
        history = obj.get("history") or []
        if obj["type"] == "followup":
            assert history, f"{where}: followup needs a non-empty history"
        for i, turn in enumerate(history):
            assert isinstance(turn, dict) and set(turn) == {"role", "content"}, f"{where}: bad turn {turn!r}"
            expected = "user" if i % 2 == 0 else "assistant"
            assert turn["role"] == expected, f"{where}: turn {i} should be {expected}"
            assert isinstance(turn["content"], str) and turn["content"].strip(), f"{where}: empty turn {i}"


@sets
def test_each_split_has_every_type(folder):
    required = REQUIRED_TYPES.get(folder.name, TYPES)
    for name, records in _splits(folder).items():
        present = {obj["type"] for _, obj in records}
        assert required <= present, f"{folder.name}/{name}: missing types {sorted(required - present)}"


@sets
def test_total_size(folder):
    total = sum(len(records) for records in _splits(folder).values())
    need = MIN_TOTAL.get(folder.name, MIN_TOTAL_OTHER)
    assert total >= need, f"{folder.name}: only {total} questions (need >= {need})"


def test_python_tutorial_mix():
    """The mix issue 9 asks of a new set, so a later edit cannot quietly thin out a kind of question."""
    from collections import Counter

    folder = DATA_DIR / "python-tutorial"
    rows = [obj for _, obj in _all(folder)]
    kinds = Counter(obj["type"] for obj in rows)
    assert kinds["fact"] >= 15 and kinds["paraphrase"] >= 10 and kinds["synthesis"] >= 6
    assert kinds["followup"] >= 4 and kinds["unanswerable"] >= 8 and kinds["nearmiss"] >= 10
    assert kinds["adversarial"] >= 2
    splits = _splits(folder)
    share = len(splits["dev"]) / len(rows)
    assert 0.5 <= share <= 0.6, f"dev holds {share:.0%} of the questions; about 55% is the plan"
