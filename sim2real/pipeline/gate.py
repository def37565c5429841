"""The transfer-gap gate: compares a report's figures with thresholds, for CI pipelines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

GATED_ROLES = ("policy", "zero_shot")


@dataclass(frozen=True)
class GateThresholds:
    """Limits a report must respect.

    Attributes:
        max_gap: Largest allowed transfer gap (source minus target return), in return units.
        max_gap_pct: Largest allowed gap as a percentage of the source return.
        min_normalized_score: Smallest allowed normalized target score (0 = random, 100 = oracle).
        min_target_return: Smallest allowed target return.
        forbid_negative_transfer: Fail when a policy is flagged for negative transfer.
        conservative: Compare the pessimistic end of each confidence interval instead of the mean.
    """

    max_gap: float | None = None
    max_gap_pct: float | None = None
    min_normalized_score: float | None = None
    min_target_return: float | None = None
    forbid_negative_transfer: bool = False
    conservative: bool = False

    def __post_init__(self) -> None:
        if all(getattr(self, name) in (None, False) for name in
               ("max_gap", "max_gap_pct", "min_normalized_score", "min_target_return", "forbid_negative_transfer")):
            raise ValueError("no threshold given: pass at least one of --max-gap, --max-gap-pct, "
                             "--min-normalized-score, --min-target-return, --forbid-negative-transfer")


def check_report(report: dict[str, Any], thresholds: GateThresholds, policies: Iterable[str] = ()) -> list[str]:
    """Returns one readable line per violated threshold (empty: the gate passes).

    Args:
        report: The content of a ``report.json`` written by the evaluator.
        thresholds: The limits.
        policies: Names of the policies to gate; empty gates every adapted and zero-shot policy.
    """
    rows = report.get("policies")
    if not isinstance(rows, list):
        raise ValueError("not an evaluator report: no 'policies' list")
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
    if t.min_normalized_score is not None:
        score = row.get("normalized_score")
        if score is None:
            out.append(f"{name}: no normalized score in the report (it needs the random and oracle baselines)")
        elif score < t.min_normalized_score:
            out.append(f"{name}: normalized score {score:.1f} is below --min-normalized-score {t.min_normalized_score:g}")
    if t.forbid_negative_transfer and row.get("negative_transfer"):
        out.append(f"{name}: negative transfer (reliably worse than the zero-shot source or from-scratch baseline)")
    return out
