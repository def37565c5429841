"""Merge a sweep's reports into one (JSON, Markdown, plots) with intervals across seeds, and the cross-task
aggregates (IQM, median, mean, optimality gap, probability of improvement, performance profile).

    python scripts/aggregate.py multirun/pipeline/<date> [--out DIR]

Exit status 0 on success, 2 for unusable input (no reports, a truncated or wrong-shaped report, a file
where the folder belongs, an --out that cannot be written); nothing is written then.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim2real.pipeline.aggregate import format_markdown, write_aggregate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path, help="a multirun folder holding report.json files")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: the folder itself)")
    args = parser.parse_args(argv)
    try:
        aggregate = write_aggregate(args.folder, args.out)
    except (ValueError, OSError) as err:
        print(f"aggregate: {err}", file=sys.stderr)
        return 2
    print(format_markdown(aggregate))
    out = args.out or args.folder
    print(f"wrote {out / 'aggregate.json'}, {out / 'aggregate.md'} and {len(aggregate['plots'])} plot(s)")
    for warning in aggregate["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
