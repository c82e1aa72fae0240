"""Deciding when the evidence is too weak to answer.

A cosine threshold alone does not separate answerable from unanswerable questions on the essay (their scores
overlap), so a small logistic model combines several signals: dense similarity, the rare question words the
context covers, words the corpus has never seen, and whether a "how many / when" question finds any number.
Its weights are fitted on the dev split by `python -m rag.calibrate` and stored in refusal_model.json.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = Path(__file__).with_name("refusal_model.json")


@dataclass(frozen=True)
class RefusalModel:
    features: list[str]
    coef: list[float]
    intercept: float
    mean: list[float]
    scale: list[float]

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> "RefusalModel":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["features"], data["coef"], data["intercept"], data["mean"], data["scale"])

    def answerable_probability(self, features: dict[str, float]) -> float:
        z = self.intercept
        for name, w, m, s in zip(self.features, self.coef, self.mean, self.scale):
            z += w * (features.get(name, 0.0) - m) / (s or 1.0)
        return 1.0 / (1.0 + math.exp(-z))

    def save(self, path: Path = MODEL_FILE) -> None:
        path.write_text(json.dumps(self.__dict__, indent=2) + "\n", encoding="utf-8")


REFUSAL_TEXT = ("The document does not say. The closest passages retrieved (shown with this answer) do not "
                "answer this question, so I won't guess.")
