"""Fit the decision stage's model on the dev split: `python -m eval.calibrate [--write]`.

Answerable (fact, synthesis, paraphrase, followup) against unanswerable questions; adversarial ones are
stopped earlier by the guard. A standardised logistic regression keeps the model small enough to store as JSON
and read without scikit-learn at run time (`rag.DecisionModel`). The script prints leave-one-out rates so the
choice is measured, and never reads a test split. It sits above `rag`: questions come from eval's public API,
features from `RAG.decide` (the same code path that answers).
"""

from __future__ import annotations

import argparse

import numpy as np

from eval.dataset import load_questions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="dev", choices=["dev"], help="only dev: never fit on a test split")
    parser.add_argument("--write", action="store_true", help="write the model the package ships")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--features", default=None,
                        help="comma-separated DecisionFeatures fields (default: those of the shipped model; richer "
                             "sets overfit the 62-question dev split, measured by leave-one-out)")
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    from rag import RAG, DecisionFeatures, DecisionModel, load_settings

    args.features = args.features or ",".join(DecisionModel.load().features)

    names = args.features.split(",")
    unknown = [n for n in names if n not in DecisionFeatures.names()]
    if unknown:
        parser.error(f"unknown feature(s) {', '.join(unknown)}; choose from {', '.join(DecisionFeatures.names())}")
    rag = RAG.from_settings(load_settings())
    rows = [q for q in load_questions(split=args.split) if q.type != "adversarial"]
    X = np.array([[getattr(rag.decide(q.question, q.history).features, f) for f in names] for q in rows])
    y = np.array([0 if q.type == "unanswerable" else 1 for q in rows])
    mean, scale = X.mean(0), X.std(0) + 1e-9
    Z = (X - mean) / scale
    model = LogisticRegression(C=args.C, class_weight="balanced", max_iter=1000)
    prob = cross_val_predict(model, Z, y, cv=LeaveOneOut(), method="predict_proba")[:, 1]
    for threshold in (0.3, 0.4, 0.45, 0.5, 0.6):
        pred = prob >= threshold
        print(f"LOO threshold {threshold:.2f}: correct refusals {np.mean(~pred[y == 0]):.2f}, "
              f"false refusals {np.mean(~pred[y == 1]):.2f}")
    model.fit(Z, y)
    print("coefficients:", dict(zip(names, np.round(model.coef_[0], 3))),
          "intercept", round(float(model.intercept_[0]), 3))
    for q, p, x in zip(rows, model.predict_proba(Z)[:, 1], X):
        if (p >= 0.5) != (q.type != "unanswerable"):
            print(f"  in-sample miss {q.id}: p={p:.2f} {dict(zip(names, np.round(x, 2)))}")
    if args.write:
        fitted = DecisionModel(tuple(names), tuple(float(c) for c in model.coef_[0]), float(model.intercept_[0]),
                               tuple(float(m) for m in mean), tuple(float(s) for s in scale))
        fitted.save()
        print("wrote the decision model")


if __name__ == "__main__":
    main()
