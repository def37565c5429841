"""Gate merges on robustness: fail when a report's transfer gap regresses past a threshold.

    python scripts/check_gap.py outputs/pipeline/<run>/report/report.json --max-gap 500 --min-normalized-score 50
    python scripts/check_gap.py REPORT --max-gap-pct 30 --policy finetune --conservative

Exit status 0 when every gated policy is within the limits, 1 with one line per violation otherwise
(a metric the report leaves undefined, such as a gap closed against an oracle that does not beat the
zero-shot source, counts as a violation of its threshold, never as a pass), 2 for unusable input
(missing or truncated file, not a report, unknown policy, no threshold, a threshold that is not a finite number).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim2real.pipeline.gate import GateThresholds, check_report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", type=Path, help="report.json written by scripts/evaluate.py or scripts/pipeline.py")
    parser.add_argument("--max-gap", type=float, help="largest allowed gap (source minus target return)")
    parser.add_argument("--max-gap-pct", type=float, help="largest allowed gap in %% of the source return")
    parser.add_argument("--min-normalized-score", type=float, help="smallest allowed normalized score (0 random, 100 oracle)")
    parser.add_argument("--min-reference-score", type=float,
                        help="smallest allowed reference-normalized score (0 random, 100 the env's fixed expert reference)")
    parser.add_argument("--min-gap-closed", type=float, help="smallest allowed share of the zero-shot-to-oracle gap closed")
    parser.add_argument("--min-target-return", type=float, help="smallest allowed target return")
    parser.add_argument("--forbid-negative-transfer", action="store_true", help="fail on a negative-transfer flag")
    parser.add_argument("--conservative", action="store_true", help="compare confidence-interval bounds, not means")
    parser.add_argument("--policy", action="append", default=[], help="gate only this policy (repeatable)")
    return parser.parse_args(argv)


def read_report(path: Path) -> dict:
    """The report's JSON; ``ValueError`` naming the file when it is not readable JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"'{path}' is not readable JSON ({err}): a truncated or damaged report") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        thresholds = GateThresholds(args.max_gap, args.max_gap_pct, args.min_normalized_score, args.min_target_return,
                                    args.forbid_negative_transfer, args.conservative, args.min_reference_score,
                                    args.min_gap_closed)
        failures = check_report(read_report(args.report), thresholds, args.policy)
    except (OSError, ValueError) as err:
        print(f"check_gap: {err}", file=sys.stderr)
        return 2
    if failures:
        print(f"transfer-gap gate FAILED for {args.report}:", file=sys.stderr)
        for line in failures:
            print(f"  - {line}", file=sys.stderr)
        return 1
    print(f"transfer-gap gate passed for {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
