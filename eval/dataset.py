"""Evaluation questions: the bundled sets (one folder per document under eval/data/, each with dev and test
splits) or any JSONL file in the same format.

Why sets: a refusal gate or a chunker tuned on one essay can look fine there and fail on the next document a
user uploads, so every number is reported per document. A set is a folder `eval/data/<name>/` holding
`set.toml` (what the document is and where it came from, see `EvalSet` and eval/data/README.md), the document
(or, for the essay, a pointer to the one copy in index/corpus/), its LICENSE, `dev.jsonl` and `test.jsonl`.
Sets are discovered by folder, so adding one needs no code change.

One JSON object per line (the format is stable; fields may be added, never renamed):

    {"id": "fact-01", "type": "fact", "question": "...", "answer": "reference answer",
     "keys": [["Ukraine"], ["priority"]], "evidence": ["verbatim substring of the document", ...],
     "history": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}]}

type is one of fact, synthesis, paraphrase, followup (answerable: need keys and evidence) and unanswerable
(off-topic), nearmiss (names things in the document but asks what it does not state), adversarial (should be
refused: empty keys and evidence). history is optional and only meaningful for followup. An optional "split"
field names the split; otherwise a file's split is its name (bundled: dev, test).
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eval.records import NO_ANSWER_TYPES, QUESTION_TYPES

DATA_DIR = Path(__file__).with_name("data")
SET_FILE = "set.toml"
DEFAULT_SET = "essay"
ALL_SETS = "all"               # `rag eval --set all`: every set, each on its own index
BUNDLED_ESSAY = "bundled-essay"  # set.toml `document` value meaning index/corpus/russia-iran-essay.txt
SPLIT_NAMES = ("dev", "test")
SPLIT_CHOICES = (*SPLIT_NAMES, "all")
# The essay's split files, for callers that read them directly (kept from when the essay was the only set).
BUNDLED_SPLITS = {name: DATA_DIR / DEFAULT_SET / f"{name}.jsonl" for name in SPLIT_NAMES}
_SET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SET_KEYS = {"name", "title", "document", "licence", "source"}
_SOURCE_KEYS = {"package", "version", "path", "url"}


class DatasetError(ValueError):
    """A question file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    question: str
    answer: str
    keys: list[list[str]]
    evidence: list[str]
    history: list[dict] = field(default_factory=list)
    split: str = ""
    set: str = ""          # the bundled set the question belongs to ("" for a file of one's own)

    @property
    def answerable(self) -> bool:
        return self.type not in NO_ANSWER_TYPES

    def to_dict(self) -> dict:
        return asdict(self)


def _fail(path: Path, lineno: int, message: str) -> DatasetError:
    return DatasetError(f"{path}:{lineno}: {message}")


def _parse(obj: object, path: Path, lineno: int, split: str, set_name: str = "") -> Question:
    if not isinstance(obj, dict):
        raise _fail(path, lineno, "expected a JSON object")
    for name in ("id", "type", "question"):
        if not isinstance(obj.get(name), str) or not obj[name].strip():
            raise _fail(path, lineno, f"'{name}' must be a non-empty string")
    qtype = obj["type"]
    if qtype not in QUESTION_TYPES:
        raise _fail(path, lineno, f"unknown type {qtype!r}; expected one of {', '.join(QUESTION_TYPES)}")
    keys = obj.get("keys") or []
    if not isinstance(keys, list) or not all(isinstance(g, list) and g and all(isinstance(t, str) and t.strip()
                                                                               for t in g) for g in keys):
        raise _fail(path, lineno, "'keys' must be a list of non-empty lists of strings, e.g. [[\"Ukraine\"], "
                                  "[\"U.S.\", \"United States\"]]")
    evidence = obj.get("evidence") or []
    if not isinstance(evidence, list) or not all(isinstance(e, str) and e.strip() for e in evidence):
        raise _fail(path, lineno, "'evidence' must be a list of non-empty strings (verbatim quotes)")
    history = obj.get("history") or []
    if not isinstance(history, list) or not all(
            isinstance(t, dict) and t.get("role") in ("user", "assistant") and isinstance(t.get("content"), str)
            for t in history):
        raise _fail(path, lineno, "'history' must be a list of {\"role\": \"user\"|\"assistant\", \"content\": str}")
    if qtype not in NO_ANSWER_TYPES and not (keys and evidence):
        raise _fail(path, lineno, f"a {qtype} question needs 'keys' and 'evidence' (only "
                                  f"{', '.join(sorted(NO_ANSWER_TYPES))} questions have neither)")
    if qtype in NO_ANSWER_TYPES and (keys or evidence):
        raise _fail(path, lineno, f"a {qtype} question is to be refused, so it has no 'keys' or 'evidence'")
    answer = obj.get("answer", "")
    if not isinstance(answer, str):
        raise _fail(path, lineno, "'answer' must be a string")
    return Question(obj["id"], qtype, obj["question"], answer, [list(g) for g in keys], list(evidence),
                    [{"role": t["role"], "content": t["content"]} for t in history],
                    str(obj.get("split") or split), set_name)


def read_jsonl(path: str | Path, split: str | None = None, set_name: str = "") -> list[Question]:
    path = Path(path).expanduser()
    if not path.is_file():
        raise DatasetError(f"Question file not found: {path}")
    split = split or path.stem
    questions: list[Question] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _fail(path, lineno, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            q = _parse(obj, path, lineno, split, set_name)
            if q.id in seen:
                raise _fail(path, lineno, f"duplicate id {q.id!r} (first on line {seen[q.id]})")
            seen[q.id] = lineno
            questions.append(q)
    if not questions:
        raise DatasetError(f"{path}: no questions")
    return questions


@dataclass(frozen=True)
class EvalSet:
    """One bundled evaluation set: a document and the questions written about it (eval/data/<name>/).

    set.toml keys (eval/data/README.md): name (= the folder name), title, document (a file in the folder, or
    "bundled-essay" for the copy the index ships, which must stay the one copy), licence (its name; the text is
    in LICENSE), and a [source] table (package, version, path, optional url) saying where the document came
    from so anyone can fetch it again. Unknown keys are errors, so a typo cannot pass silently.
    """

    name: str
    title: str
    folder: Path
    document: str
    licence: str
    source: dict = field(default_factory=dict)

    @property
    def document_path(self) -> Path:
        """The file to index: the folder's document, or the bundled essay (imported lazily: `index` is heavy)."""
        if self.document == BUNDLED_ESSAY:
            from index.corpus import default_corpus_path

            return default_corpus_path()
        return self.folder / self.document

    @property
    def titles(self) -> dict[str, str] | None:
        """Title overrides for indexing: the essay keeps the title the default index gives it, so a per-set
        index embeds exactly what the default one does; other documents use the title found in the file."""
        if self.document == BUNDLED_ESSAY:
            from index.corpus import default_titles

            return default_titles()
        return None

    def split_path(self, split: str) -> Path:
        return self.folder / f"{split}.jsonl"

    def questions(self, split: str = "all") -> list[Question]:
        """The questions of one split ("dev", "test") or of both ("all"); ids are unique across the splits."""
        if split not in SPLIT_CHOICES:
            raise DatasetError(f"Unknown split {split!r}; choose one of {', '.join(SPLIT_CHOICES)}")
        names = list(SPLIT_NAMES) if split == "all" else [split]
        questions = [q for name in names for q in read_jsonl(self.split_path(name), split=name, set_name=self.name)]
        seen: dict[str, str] = {}
        for q in questions:
            if q.id in seen and seen[q.id] != q.split:
                raise DatasetError(f"Set {self.name!r}: id {q.id!r} is in both the {seen[q.id]} and the {q.split} "
                                   "split")
            seen[q.id] = q.split
        return questions


def read_set(folder: str | Path) -> EvalSet:
    """Read and check `folder/set.toml` (see `EvalSet`); a DatasetError names the file and what is wrong."""
    folder = Path(folder)
    path = folder / SET_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetError(f"Cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DatasetError(f"{path}: invalid TOML ({exc})") from None
    unknown = set(data) - _SET_KEYS
    if unknown:
        raise DatasetError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; expected "
                           f"{', '.join(sorted(_SET_KEYS))}")
    for key in ("name", "title", "document", "licence"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise DatasetError(f"{path}: '{key}' must be a non-empty string")
    if data["name"] != folder.name or not _SET_NAME.match(data["name"]):
        raise DatasetError(f"{path}: 'name' must equal the folder name {folder.name!r} (lowercase letters, digits "
                           "and '-')")
    if data["name"] == ALL_SETS:
        raise DatasetError(f"{path}: '{ALL_SETS}' is reserved (`--set all` runs every set)")
    source = data.get("source")
    if not isinstance(source, dict) or not {"package", "version", "path"} <= set(source) \
            or set(source) - _SOURCE_KEYS or not all(isinstance(v, str) for v in source.values()):
        raise DatasetError(f"{path}: [source] must be a table of strings with package, version and path "
                           "(optionally url)")
    document = data["document"]
    if document != BUNDLED_ESSAY and (Path(document).name != document or not (folder / document).is_file()):
        raise DatasetError(f"{path}: 'document' must name a file in {folder} (or be {BUNDLED_ESSAY!r}); "
                           f"{document!r} is not there")
    return EvalSet(data["name"], data["title"], folder, document, data["licence"], dict(source))


def eval_sets(data_dir: str | Path = DATA_DIR) -> dict[str, EvalSet]:
    """Every bundled set: each folder of `data_dir` with a set.toml, the essay first, then by name."""
    folders = sorted(p for p in Path(data_dir).iterdir() if (p / SET_FILE).is_file()) \
        if Path(data_dir).is_dir() else []
    sets = [read_set(p) for p in folders]
    sets.sort(key=lambda s: (s.name != DEFAULT_SET, s.name))
    return {s.name: s for s in sets}


def set_names(data_dir: str | Path = DATA_DIR) -> list[str]:
    return list(eval_sets(data_dir))


def get_set(name: str, data_dir: str | Path = DATA_DIR) -> EvalSet:
    """The set called `name`; a DatasetError lists the sets there are."""
    folder = Path(data_dir) / name
    if name and name != ALL_SETS and _SET_NAME.match(name) and (folder / SET_FILE).is_file():
        return read_set(folder)
    known = ", ".join(set_names(data_dir)) or "none"
    raise DatasetError(f"Unknown evaluation set {name!r}; the sets are: {known} (or '{ALL_SETS}')")


def resolve_sets(name: str, data_dir: str | Path = DATA_DIR) -> list[EvalSet]:
    """`--set` as given: one set by name, or every set for "all"."""
    if name == ALL_SETS:
        sets = list(eval_sets(data_dir).values())
        if not sets:
            raise DatasetError(f"No evaluation sets in {data_dir}")
        return sets
    return [get_set(name, data_dir)]


def load_questions(path: str | Path | None = None, split: str = "all", set: str = DEFAULT_SET) -> list[Question]:
    """The questions of a bundled set (`set`, default the essay; split "dev", "test" or "all"), or those in
    `path`, a JSONL file of one's own (then `set` is ignored).

    For a file, `split` filters on the records' "split" field when they carry one; "all" keeps everything.
    """
    if path is None:
        return get_set(set).questions(split)
    questions = read_jsonl(path)
    if split != "all":
        chosen = [q for q in questions if q.split == split]
        if not chosen:
            available = ", ".join(sorted({q.split for q in questions}))
            raise DatasetError(f"{path}: no questions in split {split!r} (splits in the file: {available})")
        return chosen
    return questions


def sample(questions: Iterable[Question], limit: int | None) -> list[Question]:
    """A deterministic sample of `limit` questions that cycles over (split, type) in file order, so even a
    small run sees every split and every question type. The sample keeps the file order."""
    questions = list(questions)
    if limit is None or limit >= len(questions):
        return questions
    if limit <= 0:
        return []
    buckets: dict[tuple[str, str], list[int]] = {}
    for i, q in enumerate(questions):
        buckets.setdefault((q.split, q.type), []).append(i)
    splits = list(dict.fromkeys(q.split for q in questions))
    types = [t for t in QUESTION_TYPES if any(q.type == t for q in questions)]
    types += sorted({q.type for q in questions} - set(types))
    # One question of each type first, alternating splits (fact from dev, synthesis from test, ...), then the
    # other split, then the next question of each bucket.
    order = [(splits[(i + j) % len(splits)], t) for j in range(len(splits)) for i, t in enumerate(types)]
    order = [key for key in order if key in buckets]
    chosen: list[int] = []
    depth = 0
    while len(chosen) < limit:
        for key in order:
            if depth < len(buckets[key]):
                chosen.append(buckets[key][depth])
                if len(chosen) == limit:
                    break
        depth += 1
    return [questions[i] for i in sorted(chosen)]


def describe(questions: Iterable[Question]) -> str:
    questions = list(questions)
    splits = dict.fromkeys(q.split for q in questions)
    per = ", ".join(f"{s}: {sum(1 for q in questions if q.split == s)}" for s in splits)
    return f"{len(questions)} questions ({per})"


# --------------------------------------------------------------------------------------------------- evidence upkeep


def anchor(quote: str, text: str) -> str | None:
    """The substring of `text` equal to `quote` up to whitespace (where runs of whitespace are, and whether there
    is any between two characters), or None.

    Why: evidence must be verbatim in the text the index sees, and for HTML that text depends on the loader
    (today every inline element and source line break sits on its own line). When the loader changes, the same
    words come back with different whitespace; `python -m eval.dataset reanchor SET` rewrites the evidence to the
    new text instead of someone retyping it.
    """
    positions = [i for i, ch in enumerate(text) if not ch.isspace()]
    squeezed = "".join(text[i] for i in positions)
    needle = "".join(quote.split())
    at = squeezed.find(needle) if needle else -1
    if at < 0:
        return None
    return text[positions[at]:positions[at + len(needle) - 1] + 1]


def reanchor(eval_set: EvalSet, write: bool = False) -> tuple[int, list[str]]:
    """Re-anchor every evidence string of the set's question files to the document's text as loaded now.
    Returns (strings changed, problems: evidence not found even up to whitespace). Lines without a change are
    written back byte for byte; nothing is written when `write` is False or anything is missing."""
    from index.documents import load_document

    text = load_document(eval_set.document_path).text
    changed, problems, files = 0, [], {}
    for split in SPLIT_NAMES:
        path = eval_set.split_path(split)
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            obj = json.loads(line)
            evidence = obj.get("evidence") or []
            fixed = [e if e in text else anchor(e, text) for e in evidence]
            for e, f in zip(evidence, fixed):
                if f is None:
                    problems.append(f"{path.name}: {obj.get('id')}: not in the document even up to whitespace: "
                                    f"{e[:60]!r}")
            if fixed != evidence and None not in fixed:
                changed += sum(1 for e, f in zip(evidence, fixed) if e != f)
                lines[n] = json.dumps({**obj, "evidence": fixed}, ensure_ascii=False) + "\n"
        files[path] = "".join(lines)
    if write and not problems:
        for path, content in files.items():
            path.write_text(content, encoding="utf-8")
    return changed, problems


def main(argv: list[str] | None = None) -> int:
    """`python -m eval.dataset list` / `check SET` / `reanchor SET` (maintenance of the bundled sets)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m eval.dataset", description=main.__doc__)
    parser.add_argument("command", choices=("list", "check", "reanchor"))
    parser.add_argument("set", nargs="?", default=ALL_SETS, help="a set name or 'all' (default)")
    args = parser.parse_args(argv)
    if args.command == "list":
        for s in eval_sets().values():
            qs = s.questions()
            print(f"{s.name:20} {describe(qs):40} {s.title}")
        return 0
    status = 0
    for s in resolve_sets(args.set):
        changed, problems = reanchor(s, write=args.command == "reanchor")
        for p in problems:
            print(f"{s.name}: {p}")
        verb = "re-anchored" if args.command == "reanchor" and not problems else "to re-anchor"
        print(f"{s.name}: {changed} evidence string(s) {verb}, {len(problems)} not found")
        status = status or int(bool(problems) or (args.command == "check" and changed > 0))
    return status


if __name__ == "__main__":
    raise SystemExit(main())
