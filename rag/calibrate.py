"""Fit the refusal gate on the dev split of the bundled eval set: `python -m rag.calibrate`.

Answerable (fact, synthesis, paraphrase, followup) against unanswerable questions; adversarial ones are
stopped earlier by the guard. A standardised logistic regression keeps the model small enough to store as JSON
and read without scikit-learn at run time. The script prints leave-one-out accuracy so the choice is measured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from rag.extractive import ExtractiveAnswerer
from rag.pipeline import RAG
from rag.refusal import MODEL_FILE, RefusalModel
from rag.settings import load_settings

FEATURES = ["dense_top", "best_cosine", "number_missing"]  # richer sets overfit the dev split (measured)
DATA = Path(__file__).resolve().parents[1] / "eval" / "data"


def features_for(rag: RAG, item: dict) -> dict[str, float]:
    standalone = rag.condense(item["question"], item.get("history") or [])
    retrieved = rag.retriever.retrieve(standalone)
    answerer: ExtractiveAnswerer = rag._answerer()
    return answerer.analyse(standalone, retrieved.passages, retrieved.hits).features


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--write", action="store_true", help=f"write {MODEL_FILE.name}")
    parser.add_argument("--C", type=float, default=1.0)
    parser.add_argument("--features", default=",".join(FEATURES))
    args = parser.parse_args()
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import LeaveOneOut, cross_val_predict

    rag = RAG.from_settings(load_settings())
    rows = [json.loads(line) for line in (DATA / f"essay_{args.split}.jsonl").read_text("utf-8").splitlines() if line]
    rows = [r for r in rows if r["type"] != "adversarial"]
    names = args.features.split(",")
    X = np.array([[features_for(rag, r)[f] for f in names] for r in rows])
    y = np.array([0 if r["type"] == "unanswerable" else 1 for r in rows])
    mean, scale = X.mean(0), X.std(0) + 1e-9
    Z = (X - mean) / scale
    model = LogisticRegression(C=args.C, class_weight="balanced", max_iter=1000)
    prob = cross_val_predict(model, Z, y, cv=LeaveOneOut(), method="predict_proba")[:, 1]
    for threshold in (0.3, 0.4, 0.45, 0.5, 0.6):
        pred = prob >= threshold
        correct_refusal = float(np.mean(~pred[y == 0]))
        false_refusal = float(np.mean(~pred[y == 1]))
        print(f"LOO threshold {threshold:.2f}: correct refusals {correct_refusal:.2f}, false refusals {false_refusal:.2f}")
    model.fit(Z, y)
    print("coefficients:", dict(zip(names, np.round(model.coef_[0], 3))), "intercept", round(float(model.intercept_[0]), 3))
    for r, p, x in zip(rows, model.predict_proba(Z)[:, 1], X):
        if (p >= 0.5) != (r["type"] != "unanswerable"):
            print(f"  in-sample miss {r['id']}: p={p:.2f} {dict(zip(names, np.round(x, 2)))}")
    if args.write:
        RefusalModel(names, [float(c) for c in model.coef_[0]], float(model.intercept_[0]),
                     [float(m) for m in mean], [float(s) for s in scale]).save()
        print(f"wrote {MODEL_FILE}")


if __name__ == "__main__":
    main()
