"""Gate merges on robustness: fail when a report's transfer gap regresses past a threshold.

    python scripts/check_gap.py outputs/pipeline/<run>/report/report.json --max-gap 500 --min-normalized-score 50
    python scripts/check_gap.py REPORT --max-gap-pct 30 --policy finetune --conservative

Exit status 0 when every gated policy is within the limits, 1 with one line per violation otherwise,
2 for unusable input (missing file, not a report, unknown policy, no threshold).
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
    parser.add_argument("--min-target-return", type=float, help="smallest allowed target return")
    parser.add_argument("--forbid-negative-transfer", action="store_true", help="fail on a negative-transfer flag")
    parser.add_argument("--conservative", action="store_true", help="compare confidence-interval bounds, not means")
    parser.add_argument("--policy", action="append", default=[], help="gate only this policy (repeatable)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        thresholds = GateThresholds(args.max_gap, args.max_gap_pct, args.min_normalized_score, args.min_target_return,
                                    args.forbid_negative_transfer, args.conservative)
        report = json.loads(args.report.read_text())
        failures = check_report(report, thresholds, args.policy)
    except (OSError, ValueError, KeyError) as err:
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
