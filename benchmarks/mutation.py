"""``make mutation`` (``python -m benchmarks.mutation``): how many deliberate bugs in the numerical core
its unit tests catch.

mutmut (configured in ``pyproject.toml``: every module that computes a reported number, against their
fast unit tests) changes one operator, constant or argument at a time and runs the tests that cover
it; a mutant is killed when a test fails (or hangs: a timeout). This reads mutmut's results and writes
``benchmarks/results/mutation-<date>.md``: the score per module and every surviving mutant, each judged
by a rule of :mod:`benchmarks.mutation_notes` (a change that cannot alter any result) or named a gap in
the tests, and what was
measured: the commit and the SHA-256 of every mutated module. A test compares those hashes with the
source whenever the docs quote the file (:func:`stale_modules`): a quoted score that no longer
describes the code fails the suite, saying to run ``make mutation`` again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

from benchmarks.mutation_notes import RULES, why

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
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


def mutated_modules(root: Path = ROOT) -> list[str]:
    """The modules ``make mutation`` mutates (pyproject.toml's ``[tool.mutmut] only_mutate``)."""
    return tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]["only_mutate"]


def source_hashes(modules: list[str], root: Path = ROOT) -> dict[str, str]:
    return {m: hashlib.sha256((root / m).read_bytes()).hexdigest() for m in modules}


def measured(root: Path = ROOT) -> dict[str, object]:
    """What a result was measured on: the commit (``+changes`` when the work tree differed) and the hashes."""
    modules = mutated_modules(root)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", *modules], cwd=root, capture_output=True)
    name = commit.stdout.strip() or "unknown"
    return {"commit": name + ("+changes" if dirty.stdout.strip() else ""), "sources": source_hashes(modules, root)}


def recorded(text: str) -> dict[str, object] | None:
    """The ``measured`` record a results file holds (None: an older file that recorded none)."""
    found = re.search(r"<!-- measured: (\{.*?\}) -->", text, re.S)
    return json.loads(found.group(1)) if found else None


def stale_modules(results: Path, root: Path = ROOT) -> list[str]:
    """The modules whose source differs from what ``results`` measured (all of them when it recorded nothing)."""
    record = recorded(results.read_text())
    if record is None:
        return ["(no record of what was measured)"]
    return [m for m, h in record["sources"].items() if not (root / m).is_file() or source_hashes([m], root)[m] != h]


def report(
    per_module: dict[str, Counter], survivors: list[str], diffs: dict[str, str], on: dict[str, object] | None = None
) -> str:
    total = sum(per_module.values(), Counter())
    reasons = {name: reason for name, _, reason in RULES}
    lines = [
        f"# Mutation score of the numerical core ({datetime.now():%Y-%m-%d})",
        "",
        f"**{100 * score(total):.1f} %** of {sum(total.values())} mutants detected (killed, or timed out).",
        "",
    ]
    if on is not None:
        lines += [
            f"Measured on commit `{on['commit']}`; the modules' SHA-256 in the comment below (checked by "
            "tests/test_mutation_report.py whenever the docs quote this file).",
            "",
        ]
        lines += [f"<!-- measured: {json.dumps(on, indent=1)} -->", ""]
    lines += [
        "| module | mutants | killed | timeout | survived | no tests | score |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for module, c in sorted(per_module.items()):
        lines.append(
            f"| `{module}` | {sum(c.values())} | {c['killed']} | {c['timeout']} | {c['survived']} | "
            f"{c['no tests']} | {100 * score(c):.1f} % |"
        )
    judged = {name: why(name + "\n" + diffs.get(name.rsplit(": ", 1)[0], "")) for name in survivors}
    gaps = [name for name, note in judged.items() if note is None]
    used = Counter(note[0] for note in judged.values() if note is not None)
    lines += [
        "",
        f"## Survivors ({len(survivors)}): {len(survivors) - len(gaps)} equivalent or accepted, {len(gaps)} gaps",
        "",
        "Each survivor is judged by a rule of benchmarks/mutation_notes.py (a pattern of its diff and why such a "
        "change shows in no number or file a result reports); a survivor under no rule is a gap in the tests.",
        "",
        "| rule | survivors | why |",
        "| --- | ---: | --- |",
    ]
    lines += [f"| {rule} | {n} | {reasons[rule]} |" for rule, n in sorted(used.items())]
    lines += [f"| gap | {len(gaps)} | no rule: a test to write |"] if gaps else []
    lines.append("")
    for name in sorted(survivors, key=lambda n: (judged[n] is not None, n)):
        rule = judged[name][0] if judged[name] is not None else "gap"
        lines += [f"- `{name}` ({rule})", "", "```diff", diffs.get(name.rsplit(": ", 1)[0], "").strip(), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mutation", description=__doc__.split("\n")[0])
    parser.add_argument("--skip-run", action="store_true", help="report the last run's results without running")
    parser.add_argument(
        "--resume", action="store_true", help="keep mutants/ (an interrupted run's verdicts); default: start afresh"
    )
    args = parser.parse_args(argv)
    if not args.skip_run:
        if not args.resume:
            # mutmut keeps a mutant's verdict while its function is unchanged, even when the tests changed:
            # a score quoted for today's tests is measured from scratch
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        # mutmut forks a worker per mutant: one thread each, as forking after OpenMP has started its
        # threads can hang the child (it would be counted as a timeout, not a kill)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        # mutmut runs the tests in a copy (mutants/): ../shared's real samples are named where they are
        env.setdefault("DEPTH_LIGHTNING_SHARED", str(ROOT.parent / "shared"))
        subprocess.run([MUTMUT, "run", "--max-children", "2"], check=False, env=env)
    per_module, survivors = tally(mutmut("results", "--all", "true"))
    diffs = {}
    for entry in survivors:
        name = entry.rsplit(": ", 1)[0]
        shown = mutmut("show", name)
        diffs[name] = "\n".join(
            ln for ln in shown.splitlines() if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"mutation-{datetime.now():%Y-%m-%d}.md"
    out.write_text(report(per_module, survivors, diffs, measured()))
    total = sum(per_module.values(), Counter())
    print(f"mutation score {100 * score(total):.1f} % ({sum(total.values())} mutants); written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
