"""``make mutation`` (``python -m benchmarks.mutation``): how many deliberate bugs in the numerical core
its unit tests catch.

mutmut (configured in ``pyproject.toml``: the metrics, protocol, bins and bootstrap modules against
their unit tests) changes one operator, constant or argument at a time and runs the tests that cover
it; a mutant is killed when a test fails (or hangs: a timeout). This reads mutmut's results and writes
``benchmarks/results/mutation-<date>.md``: the score per module and every surviving mutant, so that
each can be judged (a real gap in the tests, or a change that cannot alter any result).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
MUTMUT = str(Path(sys.executable).with_name("mutmut"))  # installed beside this Python (the dev extra)
DETECTED = ("killed", "timeout")


def mutmut(*args: str) -> str:
    return subprocess.run([MUTMUT, *args], capture_output=True, text=True, check=True).stdout


def tally(listing: str) -> tuple[dict[str, Counter], list[str]]:
    """``mutmut results --all true`` lines (``name: status``) -> counts per module, surviving names."""
    per_module: dict[str, Counter] = defaultdict(Counter)
    survivors = []
    for line in listing.splitlines():
        name, _, status = line.strip().rpartition(": ")
        if not name:
            continue
        module = name.split(".x")[0]
        per_module[module][status] += 1
        if status in ("survived", "no tests"):
            survivors.append(f"{name}: {status}")
    return per_module, survivors


def score(counts: Counter) -> float:
    checked = sum(n for status, n in counts.items() if status != "not checked")
    return sum(counts[s] for s in DETECTED) / checked if checked else float("nan")


def report(per_module: dict[str, Counter], survivors: list[str], diffs: dict[str, str]) -> str:
    total = sum(per_module.values(), Counter())
    lines = [
        f"# Mutation score of the numerical core ({datetime.now():%Y-%m-%d})",
        "",
        f"**{100 * score(total):.1f} %** of {sum(total.values())} mutants detected (killed, or timed out).",
        "",
        "| module | mutants | killed | timeout | survived | no tests | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for module, c in sorted(per_module.items()):
        lines.append(
            f"| `{module}` | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived']} | "
            f"{c['no tests']} | {100 * score(c):.1f} % |"
        )
    lines += ["", f"## Survivors ({len(survivors)})", ""]
    for name in survivors:
        lines += [f"- `{name}`", "", "```diff", diffs.get(name.rsplit(": ", 1)[0], "").strip(), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("--skip-run", action="store_true", help="report the last run's results without running")
    args = parser.parse_args(argv)
    if not args.skip_run:
        # mutmut forks a worker per mutant: one thread each, as forking after OpenMP has started its
        # threads can hang the child (it would be counted as a timeout, not a kill)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        subprocess.run([MUTMUT, "run", "--max-children", "2"], check=False, env=env)
    per_module, survivors = tally(mutmut("results", "--all", "true"))
    diffs = {}
    for entry in survivors:
        name = entry.rsplit(": ", 1)[0]
        shown = mutmut("show", name)
        diffs[name] = "\n".join(ln for ln in shown.splitlines() if ln.startswith(("+ ", "- ", "+\t", "-\t")))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"mutation-{datetime.now():%Y-%m-%d}.md"
    out.write_text(report(per_module, survivors, diffs))
    total = sum(per_module.values(), Counter())
    print(f"mutation score {100 * score(total):.1f} % ({sum(total.values())} mutants); written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
