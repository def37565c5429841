"""The transfer-gap gate: compares a report's figures with thresholds, for CI pipelines.

A metric the report leaves undefined (None: e.g. a gap closed or normalized score where the oracle
does not beat the zero-shot source significantly) fails its threshold with the report's reason: the
gate can only pass on figures it can check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any

from sim2real.validation import require_bool, require_float

GATED_ROLES = ("policy", "zero_shot")
NUMERIC_THRESHOLDS = ("max_gap", "max_gap_pct", "min_normalized_score", "min_reference_score", "min_gap_closed",
                      "min_target_return")


@dataclass(frozen=True)
class GateThresholds:
    """Limits a report must respect.

    Attributes:
        max_gap: Largest allowed transfer gap (source minus target return), in return units.
        max_gap_pct: Largest allowed gap as a percentage of the source return.
        min_normalized_score: Smallest allowed normalized target score (0 = random, 100 = oracle).
        min_reference_score: Smallest allowed reference-normalized score (0 = random, 100 = the env's fixed
            expert reference; comparable across runs).
        min_gap_closed: Smallest allowed share of the zero-shot-to-oracle gap closed (1 = all of it); adapted
            policies only (a zero-shot policy closes none by definition).
        min_target_return: Smallest allowed target return.
        forbid_negative_transfer: Fail when an adapted policy is flagged for negative transfer, or has no
            verdict (no baseline to judge it against).
        conservative: Compare the pessimistic end of each confidence interval instead of the mean.
    """

    max_gap: float | None = None
    max_gap_pct: float | None = None
    min_normalized_score: float | None = None
    min_target_return: float | None = None
    forbid_negative_transfer: bool = False
    conservative: bool = False
    min_reference_score: float | None = None
    min_gap_closed: float | None = None

    def __post_init__(self) -> None:
        for name in NUMERIC_THRESHOLDS:  # a NaN threshold compares False with everything: the gate would always pass
            object.__setattr__(self, name, require_float(_flag(name), getattr(self, name), optional=True))
        for name in ("forbid_negative_transfer", "conservative"):
            object.__setattr__(self, name, require_bool(_flag(name), getattr(self, name)))
        if all(getattr(self, name) is None for name in NUMERIC_THRESHOLDS) and not self.forbid_negative_transfer:
            raise ValueError("no threshold given: pass at least one of "
                             f"{', '.join(_flag(f.name) for f in fields(self) if f.name != 'conservative')}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_report(report: dict[str, Any], thresholds: GateThresholds, policies: Iterable[str] = ()) -> list[str]:
    """Returns one readable line per violated threshold (empty: the gate passes).

    Args:
        report: The content of a ``report.json`` written by the evaluator.
        thresholds: The limits.
        policies: Names of the policies to gate; empty gates every adapted and zero-shot policy.
    """
    if not isinstance(report, dict):
        raise ValueError(f"not an evaluator report: a JSON {type(report).__name__}, not an object with a 'policies' list")
    rows = report.get("policies")
    if not isinstance(rows, list) or not rows:
        raise ValueError("not an evaluator report: no 'policies' list" if not isinstance(rows, list)
                         else "not an evaluator report: its 'policies' list is empty")
    for index, row in enumerate(rows):
        _check_shape(row, index)
    names = [row["name"] for row in rows]
    wanted = list(policies)
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise ValueError(f"policies {unknown} are not in the report; it has: {', '.join(names)}")
    selected = [row for row in rows if (row["name"] in wanted if wanted else row.get("role") in GATED_ROLES)]
    if not selected:
        raise ValueError(f"no policy to gate: the report's roles are {sorted({r.get('role') for r in rows})}")
    failures: list[str] = []
    for row in selected:
        failures.extend(_check_row(row, thresholds))
    return failures


def _check_shape(row: Any, index: int) -> None:
    """A policy row has the fields the gate reads, with numbers where numbers belong."""
    if not isinstance(row, dict) or not isinstance(row.get("name"), str):
        raise ValueError(f"not an evaluator report: policies[{index}] is not a row with a 'name'")
    for key, field in (("gap", "mean"), ("gap", "ci_high"), ("target_return", "mean"), ("target_return", "ci_low"),
                       ("source_return", "mean")):
        value = row.get(key, {}).get(field) if isinstance(row.get(key), dict) else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"not an evaluator report: policies[{index}] ('{row['name']}') has no number at {key}.{field}")


def _undefined(row: dict[str, Any], key: str, what: str) -> str:
    reason = (row.get("undefined") or {}).get(key)
    if reason:
        return f"{row['name']}: {what} is undefined, so the gate cannot pass it: {reason}"
    return f"{row['name']}: no {what} in the report (it needs the random and oracle baselines)"


def _check_row(row: dict[str, Any], t: GateThresholds) -> list[str]:
    name, out = row["name"], []
    gap = row["gap"]["ci_high"] if t.conservative else row["gap"]["mean"]
    target = row["target_return"]["ci_low"] if t.conservative else row["target_return"]["mean"]
    source = row["source_return"]["mean"]
    which = " (CI bound)" if t.conservative else ""
    if t.max_gap is not None and gap > t.max_gap:
        out.append(f"{name}: transfer gap{which} {gap:.1f} exceeds --max-gap {t.max_gap:g} "
                   f"(source {source:.1f}, target {row['target_return']['mean']:.1f})")
    if t.max_gap_pct is not None:
        pct = 100.0 * gap / abs(source) if source else float("inf")
        if pct > t.max_gap_pct:
            out.append(f"{name}: transfer gap{which} {pct:.1f}% of the source return exceeds --max-gap-pct {t.max_gap_pct:g}")
    if t.min_target_return is not None and target < t.min_target_return:
        out.append(f"{name}: target return{which} {target:.1f} is below --min-target-return {t.min_target_return:g}")
    out.extend(_check_optional(row, "normalized_score", "normalized score", t.min_normalized_score, ".1f"))
    adapted = row.get("role") == "policy"  # gap closed and negative transfer describe an adaptation, not a baseline
    if adapted:
        out.extend(_check_optional(row, "gap_closed", "gap closed", t.min_gap_closed, ".2f"))
    if t.min_reference_score is not None:
        score = row.get("reference_score")
        if score is None:
            out.append(f"{name}: no reference score in the report (no fixed reference returns for its env)")
        elif score < t.min_reference_score:
            out.append(f"{name}: reference score {score:.1f} is below --min-reference-score {t.min_reference_score:g}")
    if t.forbid_negative_transfer and adapted:
        flag = row.get("negative_transfer")
        if flag is None:
            out.append(f"{name}: no negative-transfer verdict in the report (it needs the zero-shot source or a "
                       "same-budget from-scratch run among the baselines), so the gate cannot pass it")
        elif flag:
            out.append(f"{name}: negative transfer (reliably worse than the zero-shot source or from-scratch baseline)")
    return out


def _check_optional(row: dict[str, Any], key: str, what: str, minimum: float | None, fmt: str) -> list[str]:
    """A lower bound on a metric the report may leave undefined: undefined fails, with the report's reason."""
    if minimum is None:
        return []
    value = row.get(key)
    if value is None:
        return [_undefined(row, key, what)]
    if value < minimum:
        return [f"{row['name']}: {what} {format(value, fmt)} is below {_flag('min_' + key)} {minimum:g}"]
    return []
