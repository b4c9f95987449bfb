"""``python -m experiments.report <sweep or run folder>... [--out DIR] [--bins K] [--split test|val]
[--mix-protocols] [--wandb]``: the paper's tables and figures from finished runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from depth_lightning.evaluation import bootstrap
from experiments.report.build import build_report
from experiments.report.tables import MixedProtocols
from experiments.report.wandb_log import log_to_wandb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m experiments.report",
        description="The paper's Tables 1-4 and Figures 6 and 7 from finished runs.",
    )
    parser.add_argument("folders", nargs="+", type=Path, help="sweep (multirun) or run folders")
    parser.add_argument("--out", type=Path, default=None, help="default: <first folder>/report")
    parser.add_argument("--bins", type=int, default=None, help="K of Table 3 (default: closest to 200)")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    parser.add_argument(
        "--wandb", action="store_true", help="also log the tables and figures to W&B (offline unless WANDB_MODE says)"
    )
    parser.add_argument(
        "--mix-protocols", action="store_true", help="put runs of different evaluation protocols in one table anyway"
    )
    parser.add_argument("--resamples", type=int, default=bootstrap.RESAMPLES, help="paired bootstrap resamples")
    args = parser.parse_args(argv)
    try:
        out = args.out or args.folders[0] / "report"
        result = build_report(args.folders, out, args.bins, args.split, args.mix_protocols, args.resamples)
    except MixedProtocols as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result["report"].read_text())
    if args.wandb and result["runs"]:
        print(f"logged to W&B: {log_to_wandb(result, args.folders[0])}")
    if not result["runs"]:
        print(
            "error: no finished run under "
            + ", ".join(map(str, args.folders))
            + " (each run writes metrics.json; is this a sweep folder of depth_lightning.train?)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
