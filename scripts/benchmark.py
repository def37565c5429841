"""Run the benchmark suite (envs x shifts x methods x seeds) and write its leaderboard.

    python scripts/benchmark.py --small                       # about 25 minutes on 2 cores
    python scripts/benchmark.py --out runs/bench -- hydra/launcher=slurm   # the full suite on a Slurm cluster
    python scripts/benchmark.py --small --leaderboard-only    # rebuild leaderboard.md / .json / plots only

Rerunning the same command resumes: every cell has a fixed folder and the pipeline skips complete stages.
Arguments after ``--`` go to every pipeline run (a launcher, method settings). Exit status 0 when every
cell ran, 1 when some failed (the leaderboard covers the rest), 2 for unusable input.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sim2real.pipeline.benchmark import load_suite, run_suite, sweeps, write_leaderboard


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="the small suite (default: the full one)")
    parser.add_argument("--out", type=Path, default=None, help="where the cells and the leaderboard go "
                        "(default: outputs/benchmark/<size>)")
    parser.add_argument("--dry-run", action="store_true", help="print the pipeline commands, run nothing")
    parser.add_argument("--leaderboard-only", action="store_true", help="only aggregate the reports already there")
    args = parser.parse_args(argv)
    size = "small" if args.small else "full"
    out = args.out or Path("outputs") / "benchmark" / size
    try:
        suite = load_suite(size)
    except (OSError, ValueError) as err:
        print(f"benchmark: {err}", file=sys.stderr)
        return 2
    if args.dry_run:
        for sweep in sweeps(suite, out, extra):
            print(" ".join(sweep.argv[1:]))
        return 0
    failed = [] if args.leaderboard_only else run_suite(suite, out, extra)
    try:
        board = write_leaderboard(out, suite.name)
    except (OSError, ValueError) as err:
        print(f"benchmark: {err}", file=sys.stderr)
        return 2
    print((out / "leaderboard.md").read_text())
    print(f"wrote {out / 'leaderboard.md'}, {out / 'leaderboard.json'} and {len(board['aggregate']['plots'])} plot(s)")
    if failed:
        print(f"benchmark: {len(failed)} sweep(s) failed: {', '.join(failed)}; rerun the same command to resume",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
