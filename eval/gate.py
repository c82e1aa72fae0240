"""The quality gate of `rag eval --check`: the test split must not regress beyond a stated tolerance.

The targets in `eval.metrics.TARGETS` say where the project wants to be (several are still missed); they cannot
fail a build. The gate says where the project *is*: eval/quality_gate.toml holds, per metric, the value measured
on the test split, a tolerance, and the floor (or, for a metric where lower is better, the ceiling) that follows
from them. A run passes when every gated metric is on the right side of its line, so an improvement always
passes (and is pointed out, so the floor can be raised to keep the gain) and a regression larger than the
tolerance fails, naming the metric, its value and the threshold.

File format (TOML): one section per evaluation set (eval/data/<set>/), because each document has its own
numbers and a gain on one must not hide a loss on another:

    [essay]
    split = "test"          # the group of the run the gate reads
    questions = 45          # the gate only compares like with like: that split, whole
    [essay.metrics."key_accuracy"]
    floor = 0.656           # or `ceiling` for a lower-is-better metric
    measured = 0.686        # what the run the floor was set from gave
    tolerance = 0.03        # floor = measured - tolerance; how far a value may fall before the gate fails

A file with `split` at the top level (the format before sets) is one section, the essay's.
`rag eval --set all --check` needs a section for every set: a set nobody measured would otherwise go ungated.

Metric keys are the registry's (`eval.metrics.METRIC_BY_KEY`); an unknown key, a floor on a lower-is-better
metric or a floor looser than the stated tolerance is an error in the file, reported when it is loaded.
Everything here is pure: `Gate.check(metrics)` reads the metrics dict of a run (fresh or saved).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eval import metrics as metrics_
from eval.metrics import MetricSpec, format_value, metric

GATE_FILE = Path(__file__).with_name("quality_gate.toml")
DEFAULT_SET = "essay"   # eval.dataset.DEFAULT_SET (not imported: the gate needs only the metric registry)
# Floating-point slack when comparing a value with a threshold written to three decimals.
_EPS = 1e-9


class GateError(ValueError):
    """A gate file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class GateRule:
    """One gated metric: `value >= threshold` (a floor) or `value <= threshold` (a ceiling)."""

    metric: MetricSpec
    op: str            # ">=" (floor) or "<=" (ceiling)
    threshold: float
    measured: float
    tolerance: float

    @property
    def kind(self) -> str:
        return "floor" if self.op == ">=" else "ceiling"

    def passes(self, value: float | None) -> bool:
        """A metric the run did not measure (None) fails: a gated number must be there to be trusted."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        return value >= self.threshold - _EPS if self.op == ">=" else value <= self.threshold + _EPS

    def improved(self, value: float | None) -> bool:
        """Better than measured by more than the tolerance: the floor could be raised to keep the gain."""
        if value is None:
            return False
        gain = value - self.measured if self.op == ">=" else self.measured - value
        return gain > max(self.tolerance, _EPS)


@dataclass(frozen=True)
class GateResult:
    rule: GateRule
    value: float | None
    passed: bool
    improved: bool

    def describe(self) -> str:
        """E.g. "key_accuracy (Key-term accuracy) 0.600 < floor 0.656 (measured 0.686, tolerance 0.030)"."""
        spec, rule = self.rule.metric, self.rule
        shown = format_value(self.value, spec.kind) if self.value is not None else "not measured"
        relation = ("≥" if rule.op == ">=" else "≤") if self.passed else ("<" if rule.op == ">=" else ">")
        if self.value is None:
            relation = "— needs"
        return (f"{spec.key} ({spec.label}) {shown} {relation} {rule.kind} {rule.threshold:.3f} "
                f"(measured {rule.measured:.3f}, tolerance {rule.tolerance:.3f})")


@dataclass(frozen=True)
class GateReport:
    """The outcome of a gate check: one result per rule, plus problems that make the comparison meaningless
    (the run lacks the split, or holds a different number of its questions)."""

    source: str
    split: str
    results: tuple[GateResult, ...]
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems and all(r.passed for r in self.results)

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    @property
    def improvements(self) -> list[GateResult]:
        return [r for r in self.results if r.passed and r.improved]

    def summary(self) -> str:
        """Plain-text lines: the verdict, then each failing metric (or problem), then improvements."""
        verdict = "passed" if self.passed else "FAILED"
        lines = [f"Quality gate ({self.source}, {self.split} split, {len(self.results)} metrics): {verdict}"]
        lines += [f"  {p}" for p in self.problems]
        lines += [f"  ✗ {r.describe()}" for r in self.failures]
        lines += [f"  ↑ {r.describe()}: better than measured by more than the tolerance; raise the "
                  f"{r.rule.kind} to keep the gain" for r in self.improvements]
        return "\n".join(lines)


@dataclass(frozen=True)
class Gate:
    split: str
    rules: tuple[GateRule, ...]
    questions: int | None = None
    source: str = field(default="", compare=False)

    @classmethod
    def load(cls, path: str | Path = GATE_FILE, set: str = DEFAULT_SET) -> "Gate":
        """The section of set `set` (default the essay) in a gate file; `load_gates` reads them all."""
        return gate_for_set(load_gates(path), set, _display(Path(path).expanduser()))

    @classmethod
    def from_toml(cls, text: str, source: str = "<gate>", set: str = DEFAULT_SET) -> "Gate":
        return gate_for_set(gates_from_toml(text, source), set, source)

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "<gate>") -> "Gate":
        split = data.get("split")
        if not isinstance(split, str) or not split:
            raise GateError(f"{source}: 'split' must name the split the gate was measured on, e.g. \"test\"")
        questions = data.get("questions")
        if questions is not None and (not isinstance(questions, int) or questions <= 0):
            raise GateError(f"{source}: 'questions' must be a positive whole number")
        entries = data.get("metrics")
        if not isinstance(entries, Mapping) or not entries:
            raise GateError(f"{source}: no [metrics.\"…\"] entries")
        return cls(split, tuple(_rule(key, entry, source) for key, entry in entries.items()), questions, source)

    def check(self, metrics: Mapping) -> GateReport:
        """Check the metrics dict of a run (`run.metrics`, fresh or loaded from a results file)."""
        group = (metrics.get("groups") or {}).get(self.split)
        problems: list[str] = []
        if group is None:
            problems.append(f"the run has no {self.split!r} split; the gate was measured on it")
            group = {}
        elif self.questions is not None and group.get("n") != self.questions:
            problems.append(f"the gate was measured on the {self.questions} questions of the {self.split} split; "
                            f"this run has {group.get('n')} of them, so its numbers are not comparable")
        results = tuple(GateResult(rule, group.get(rule.metric.key), rule.passes(group.get(rule.metric.key)),
                                   rule.improved(group.get(rule.metric.key))) for rule in self.rules)
        return GateReport(self.source, self.split, results, tuple(problems))


def load_gates(path: str | Path = GATE_FILE) -> dict[str, Gate]:
    """Every set's gate in a file, by set name (a file in the format before sets: {"essay": gate})."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GateError(f"Cannot read the quality gate file {path}: {exc.strerror or exc}") from None
    return gates_from_toml(text, _display(path))


def gates_from_toml(text: str, source: str = "<gate>") -> dict[str, Gate]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GateError(f"{source}: invalid TOML ({exc})") from None
    if "split" in data or "metrics" in data:   # one gate, as before sets: the essay's
        return {DEFAULT_SET: Gate.from_dict(data, source)}
    gates = {}
    for name, section in data.items():
        if not isinstance(section, Mapping):
            raise GateError(f"{source}: {name!r} must be a [set] section with split, questions and metrics")
        gates[name] = Gate.from_dict(section, f"{source} [{name}]")
    if not gates:
        raise GateError(f"{source}: no [set] sections")
    return gates


def gate_for_set(gates: Mapping[str, Gate], name: str, source: str = "the gate file") -> Gate:
    """The section of set `name`; a GateError says which set lacks one and what to do."""
    try:
        return gates[name]
    except KeyError:
        raise GateError(f"{source} has no section for evaluation set {name!r} (sections: "
                        f"{', '.join(gates) or 'none'}); measure its test split and add [{name}]") from None


def _rule(key: str, entry: object, source: str) -> GateRule:
    where = f"{source}: [metrics.\"{key}\"]"
    try:
        spec = metric(key)
    except KeyError as exc:
        raise GateError(f"{where}: {exc.args[0]}") from None
    if not isinstance(entry, Mapping):
        raise GateError(f"{where}: expected a table with floor or ceiling, measured and tolerance")
    unknown = set(entry) - {"floor", "ceiling", "measured", "tolerance"}
    if unknown:
        raise GateError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    if ("floor" in entry) == ("ceiling" in entry):
        raise GateError(f"{where}: give exactly one of floor (higher is better) or ceiling (lower is better)")
    op = ">=" if "floor" in entry else "<="
    if spec.higher_is_better is None:
        raise GateError(f"{where}: {spec.label} has no better direction; it cannot be gated")
    if (op == ">=") != spec.higher_is_better:
        want = "floor" if spec.higher_is_better else "ceiling"
        raise GateError(f"{where}: {spec.label} is {'higher' if spec.higher_is_better else 'lower'}-is-better, "
                        f"so it needs a {want}")
    values = {}
    for name in ("floor" if op == ">=" else "ceiling", "measured", "tolerance"):
        value = entry.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GateError(f"{where}: '{name}' must be a number")
        values[name] = float(value)
    threshold = values["floor" if op == ">=" else "ceiling"]
    measured, tolerance = values["measured"], values["tolerance"]
    if tolerance < 0:
        raise GateError(f"{where}: 'tolerance' must not be negative")
    slack = measured - threshold if op == ">=" else threshold - measured
    if slack < -_EPS:
        raise GateError(f"{where}: the {'floor' if op == '>=' else 'ceiling'} {threshold:g} is "
                        f"{'above' if op == '>=' else 'below'} the measured value {measured:g}")
    if slack > tolerance + 1e-6:
        raise GateError(f"{where}: the {'floor' if op == '>=' else 'ceiling'} {threshold:g} is further than the "
                        f"stated tolerance {tolerance:g} from the measured value {measured:g}")
    return GateRule(spec, op, threshold, measured, tolerance)


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


# Metrics the gate holds for every set (the ones a user feels: finding the evidence, answering right, citing right,
# refusing right). A metric a set cannot measure (no near-miss questions, say) is left out of that set's section.
GATED: tuple[MetricSpec, ...] = (
    metrics_.RECALL_1000C, metrics_.RECALL_5, metrics_.MRR, metrics_.CONTEXT_RECALL, metrics_.KEY_ACCURACY,
    metrics_.F1, metrics_.CITATION_PRECISION, metrics_.CITATION_RECALL, metrics_.INVALID_CITATION_RATE,
    metrics_.CORRECT_REFUSAL_RATE, metrics_.OFF_TOPIC_REFUSAL_RATE, metrics_.NEAR_MISS_REFUSAL_RATE,
    metrics_.FALSE_REFUSAL_RATE)


def tolerance_for(spec: MetricSpec, support: int) -> float:
    """About one question's worth: 1/n rounded up to the next hundredth (0 for invalid citations, which the
    extractive writer cannot produce: one is a bug)."""
    if spec is metrics_.INVALID_CITATION_RATE or support <= 0:
        return 0.0
    return math.ceil(100.0 / support) / 100.0


def section_toml(name: str, metrics: Mapping, split: str = "test") -> str:
    """The gate section of set `name` from a run's `metrics` (its `groups[split]` aggregate): floors and ceilings at
    one question's worth from the measured values. `python -m eval.gate RUN.json …` prints these."""
    m = metrics["groups"][split]
    lines = [f"[{name}]", f'split = "{split}"', f"questions = {m['n']}", ""]
    for spec in GATED:
        key = spec.key
        value = m.get(key)
        if value is None:
            continue
        tol = tolerance_for(spec, spec.support(m))
        bound = "floor" if spec.higher_is_better else "ceiling"
        limit = max(value - tol, 0.0) if spec.higher_is_better else min(value + tol, 1.0)
        lines += [f'[{name}.metrics."{key}"]', f"{bound} = {limit:.3f}", f"measured = {value:.3f}",
                  f"tolerance = {tol:.2f}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Print gate sections from saved runs (`rag eval --set all --split test --out run.json` writes one file per
    set, run.<set>.json): paste them into eval/quality_gate.toml after a deliberate change."""
    import argparse

    from eval.runner import EvalRun

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("runs", nargs="+", help="saved runs, one per set")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    for path in args.runs:
        run = EvalRun.load(path)
        name = run.meta.get("set") or Path(path).stem.split(".")[-1]
        print(section_toml(name, run.metrics, args.split))


if __name__ == "__main__":
    main()
