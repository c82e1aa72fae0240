"""Fit the decision stage's model on the dev split of every bundled set: `python -m eval.calibrate [--write]`.

Answerable (fact, synthesis, paraphrase, followup) against unanswerable (off-topic) and near-miss questions;
adversarial ones are stopped earlier by the guard. Each set is answered from its own index (`rag_for_set`), so
each document's features are on that document's scale, as a user's upload would be. The off-topic probe bank
(rag/probes.json) is also asked on every index and joins the training rows as off-topic questions (weight
`--probe-weight` per set): the essay's dev split has no off-topic question of its own.

Why leave-one-document-out: the decision has to work on documents nobody tuned it for, so each set is scored by
a model fitted on the other sets only, and the threshold is the highest at which every held-out set meets its
false-refusal limit (0.03 on the essay, 0.05 elsewhere: the issue's targets) and all together have room to spare
(`DEV_LIMIT_SHARE`). The table it prints, per set:
false refusals, unanswerable and near-miss questions refused. The shipped model is then fitted on every dev set,
and its intercept shifted so that `answer.refusal_threshold` is that operating point (the threshold stays one
setting; the probabilities keep their order). Each set's highest passing threshold is printed too: the closer
they are, the better the features carry from one document to the next.

A standardised logistic regression keeps the model small enough to store as JSON and read without scikit-learn
at run time (`rag.DecisionModel`). Test splits are never read. It sits above `rag`: questions come from eval's
public API, features from `RAG.decide` (the same code path that answers).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.dataset import eval_sets, load_questions

ANSWERABLE = ("fact", "synthesis", "paraphrase", "followup")
FALSE_REFUSAL_LIMIT = {"essay": 0.03}   # every other set: DEFAULT_LIMIT
DEFAULT_LIMIT = 0.05
# The operating point (`operating_point`) keeps each held-out dev set within its limit and all of them together
# within this share of the default limit. A dev set holds 24-36 answerable questions, so one false refusal is
# already 0.03-0.04: with three sets, each set had to stay within half its limit (no refusal at all), because at
# the full limit the threshold sat just above a dev answerable question with no room for documents the sets do
# not hold. With five sets that per-set rule was pinned by the single worst paraphrase (debian-constitution
# para-05, p 0.07, its evidence not retrieved) at 0.01, where the Debian sets refused 0-17% of their off-topic
# questions; pooled, the room is 3 of 142 answerable dev questions (operating point 0.18). With six sets (the
# kernel development-process guide added) the guide's held-out split pins it at 0.145; with seven (the General
# Python FAQ) the FAQ's pins it at 0.085.
DEV_LIMIT_SHARE = 0.5
DEFAULT_FEATURES = "dense_lift,type_missing,unknown_share"
THRESHOLDS = np.round(np.arange(0.01, 0.99, 0.005), 3)


@dataclass
class SetRows:  # noqa: D101
    """One set's dev features (rows of `names`), its labels and question types, and its probe rows."""

    name: str
    X: np.ndarray
    types: list[str]
    ids: list[str]
    covered: np.ndarray      # the best sentence holds every content word: never refused
    probes: np.ndarray
    calibration: object = None

    @property
    def y(self) -> np.ndarray:
        return np.array([t in ANSWERABLE for t in self.types], dtype=int)

    def select(self, names: list[str]) -> "SetRows":
        from rag import DecisionFeatures

        cols = [DecisionFeatures.names().index(n) for n in names]
        return SetRows(self.name, self.X[:, cols], self.types, self.ids, self.covered, self.probes[:, cols],
                       self.calibration)


def collect(settings, split: str = "dev") -> dict[str, SetRows]:
    """Every DecisionFeatures field for every dev question and probe of every set (columns in `names()` order)."""
    from eval.runner import rag_for_set
    from rag.calibration import IndexCalibration, load_probes

    from rag import DecisionFeatures

    names = DecisionFeatures.names()
    probes = load_probes()
    out: dict[str, SetRows] = {}
    rag = None
    for name, eval_set in eval_sets().items():
        rag = rag_for_set(eval_set, settings, rag)
        if rag.decider.calibration is None:  # a pipeline that does not pass one yet
            rag.decider.calibration = IndexCalibration(rag.index)
        rag.decider.always_calibrate = True
        started = time.perf_counter()
        calibration = rag.decider.calibration()
        took = time.perf_counter() - started
        rows, types, ids, covered = [], [], [], []
        for q in load_questions(set=name, split=split):
            if q.type == "adversarial":
                continue
            d = rag.decide(q.question, q.history)
            rows.append([getattr(d.features, f) for f in names])
            types.append(q.type)
            ids.append(q.id)
            covered.append(d.covered)
        probe_rows = [[getattr(rag.decide(p).features, f) for f in names] for p in probes]
        out[name] = SetRows(name, np.array(rows, dtype=float), types, ids, np.array(covered),
                            np.array(probe_rows, dtype=float), calibration)
        c = calibration
        print(f"{name}: {len(rows)} {split} questions; calibration null {c.null_mean:.3f}±{c.null_sd:.3f}, own "
              f"{c.own_mean:.3f}±{c.own_sd:.3f} ({c.probes} probes, {c.pseudo} pseudo-questions, {took:.2f} s)")
    return out


def fit(sets: list[SetRows], C: float, probe_weight: float):
    """Each set counts equally, and within a set answerable and unanswerable rows count equally (the probes
    count `probe_weight` of a set's unanswerable weight on top)."""
    from sklearn.linear_model import LogisticRegression

    X, y, w = [], [], []
    for s in sets:
        pos, neg = s.X[s.y == 1], s.X[s.y == 0]
        X += [pos, neg]
        y += [np.ones(len(pos)), np.zeros(len(neg))]
        w += [np.full(len(pos), 1.0 / max(len(pos), 1)), np.full(len(neg), 1.0 / max(len(neg), 1))]
        if probe_weight and len(s.probes):
            X.append(s.probes)
            y.append(np.zeros(len(s.probes)))
            w.append(np.full(len(s.probes), probe_weight / len(s.probes)))
    X, y, w = np.vstack(X), np.concatenate(y), np.concatenate(w)
    mean, scale = X.mean(0), X.std(0) + 1e-9
    model = LogisticRegression(C=C, max_iter=5000).fit((X - mean) / scale, y, sample_weight=w * len(y) / w.sum())
    return model, mean, scale


def predict(fitted, X: np.ndarray) -> np.ndarray:
    model, mean, scale = fitted
    return model.predict_proba((X - mean) / scale)[:, 1]


def rates(s: SetRows, p: np.ndarray, threshold: float) -> dict[str, float]:
    answered = (p >= threshold) | s.covered
    types = np.array(s.types)
    out = {"false_refusals": float(np.mean(~answered[s.y == 1]))}
    for kind in ("unanswerable", "nearmiss"):
        if (types == kind).any():
            out[kind] = float(np.mean(~answered[types == kind]))
    return out


def highest_passing(s: SetRows, p: np.ndarray, share: float = 1.0) -> float:
    """The highest threshold at which the set's false refusals stay within `share` of its limit."""
    limit = FALSE_REFUSAL_LIMIT.get(s.name, DEFAULT_LIMIT) * share
    ok = [t for t in THRESHOLDS if rates(s, p, t)["false_refusals"] <= limit + 1e-9]
    return float(max(ok)) if ok else 0.0


def operating_point(sets: dict[str, SetRows], probs: dict[str, np.ndarray], share: float = DEV_LIMIT_SHARE) -> float:
    """The highest threshold at which every set stays within its false-refusal limit and all sets together within
    `share` of the default limit (the room to spare for documents the sets do not hold)."""
    def passes(t: float) -> bool:
        refused = answerable = 0
        for name, s in sets.items():
            answered = ((probs[name] >= t) | s.covered)[s.y == 1]
            if np.mean(~answered) > FALSE_REFUSAL_LIMIT.get(name, DEFAULT_LIMIT) + 1e-9:
                return False
            refused, answerable = refused + int((~answered).sum()), answerable + len(answered)
        return refused <= share * DEFAULT_LIMIT * answerable + 1e-9
    ok = [t for t in THRESHOLDS if passes(t)]
    return float(max(ok)) if ok else 0.0


def table(title: str, sets: dict[str, SetRows], probs: dict[str, np.ndarray], threshold: float) -> None:
    print(f"{title} (threshold {threshold:.3f})")
    print(f"  {'set':18} {'false refusals':>15} {'unanswerable refused':>21} {'near-miss refused':>18} "
          f"{'highest passing t':>18}")
    for name, s in sets.items():
        r = rates(s, probs[name], threshold)
        fmt = lambda k: f"{r[k]:.2f}" if k in r else "-"  # noqa: E731
        print(f"  {name:18} {fmt('false_refusals'):>15} {fmt('unanswerable'):>21} {fmt('nearmiss'):>18} "
              f"{highest_passing(s, probs[name]):>18.3f}")


def leave_one_document_out(sets: dict[str, SetRows], C: float, probe_weight: float) -> dict[str, np.ndarray]:
    return {held: predict(fit([s for n, s in sets.items() if n != held], C, probe_weight), sets[held].X)
            for held in sets}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default="dev", choices=["dev"], help="only dev: never fit on a test split")
    parser.add_argument("--write", action="store_true", help="write the model the package ships")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--probe-weight", type=float, default=1.0)
    parser.add_argument("--features", default=DEFAULT_FEATURES,
                        help=f"comma-separated DecisionFeatures fields (default: {DEFAULT_FEATURES}; see rag/decide.py "
                             "for what else was measured)")
    parser.add_argument("--compare", default=None,
                        help="other feature lists to score by leave-one-document-out first, ';'-separated")
    parser.add_argument("--model", type=Path, default=None,
                        help="score this model file as it is on every dev set instead of fitting (e.g. an old one)")
    parser.add_argument("--index-dir", type=Path, default=None,
                        help="put the per-set indexes beside this index folder instead of the configured one")
    args = parser.parse_args()

    from rag import DecisionFeatures, DecisionModel, load_settings

    settings = load_settings()
    if args.index_dir:
        settings = settings.updated(index={"dir": args.index_dir})
    threshold = settings.answer.refusal_threshold
    everything = collect(settings, args.split)
    if args.model:
        model = DecisionModel.load(args.model)
        all_names = DecisionFeatures.names()
        probs = {n: np.array([model.probability(DecisionFeatures(**dict(zip(all_names, row)))) for row in s.X])
                 for n, s in everything.items()}
        table(f"{args.model} as it is, every dev set", everything, probs, threshold)
        return
    for other in [c.split(",") for c in args.compare.split(";") if c] if args.compare else []:
        _check(parser, other)
        chosen = {n: s.select(other) for n, s in everything.items()}
        lodo = leave_one_document_out(chosen, args.C, args.probe_weight)
        table(f"leave-one-document-out, features {','.join(other)}", chosen, lodo,
              operating_point(chosen, lodo))

    names = args.features.split(",")
    _check(parser, names)
    sets = {n: s.select(names) for n, s in everything.items()}
    lodo = leave_one_document_out(sets, args.C, args.probe_weight)
    operating = operating_point(sets, lodo)
    table(f"leave-one-document-out, features {','.join(names)}", sets, lodo, operating)

    fitted = fit(list(sets.values()), args.C, args.probe_weight)
    in_sample = {n: predict(fitted, s.X) for n, s in sets.items()}
    operating = min(operating, operating_point(sets, in_sample))
    model, mean, scale = fitted
    # Move the operating point to the configured threshold: logit shift, so the order of answers is unchanged.
    shift = math.log(threshold / (1 - threshold)) - math.log(operating / (1 - operating))
    intercept = float(model.intercept_[0]) + shift
    shipped = DecisionModel(tuple(names), tuple(float(c) for c in model.coef_[0]), intercept,
                            tuple(float(m) for m in mean), tuple(float(s) for s in scale))
    table("fitted on every dev set, in sample", sets,
          {n: np.array([shipped.probability(DecisionFeatures(**{**_zeros(), **dict(zip(names, row))}))
                        for row in s.X]) for n, s in sets.items()}, threshold)
    print("coefficients:", dict(zip(names, np.round(model.coef_[0], 3))), "intercept", round(intercept, 3),
          f"(operating point {operating:.3f} moved to refusal_threshold {threshold})")
    for n, s in sets.items():
        p = in_sample[n]
        for i in np.flatnonzero(((p >= operating) | s.covered) != (s.y == 1)):
            print(f"  in-sample miss {n}/{s.ids[i]} ({s.types[i]}): {dict(zip(names, np.round(s.X[i], 2)))}")
    if args.write:
        shipped.save()
        print("wrote the decision model")


def _check(parser: argparse.ArgumentParser, names: list[str]) -> None:
    from rag import DecisionFeatures

    unknown = [n for n in names if n not in DecisionFeatures.names()]
    if unknown:
        parser.error(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(DecisionFeatures.names())}")


def _zeros() -> dict[str, float]:
    from rag import DecisionFeatures

    return dict.fromkeys(DecisionFeatures.names(), 0.0)


if __name__ == "__main__":
    main()
