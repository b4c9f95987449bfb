"""The paper's Tables 1-4 and Figures 6 and 7 from finished runs, beside the paper's own numbers.

    python -m experiments.report <sweep or run folder>... [--out DIR] [--bins K] [--split test|val]
        [--mix-protocols] [--wandb]

Reads the ``metrics.json`` every run writes (plus ``per_image_sums.npz``, ``sparsification.json``,
``bin_distributions.npz`` and ``confusion_val.npy``), works on partial sweeps, and says which runs are
missing or failed. Each table shows, per row, the paper's numbers, ours and the difference (ours -
paper); the difference only where our runs are on the paper's dataset (Tables 1, 3, 4: NYU v2;
Table 2: KITTI).

Runs that differ only by seed share a cell: ``mean ± std (n)`` over the seeds; a cell of one run shows
its 95 % bootstrap interval over test images. Table 3 is followed by paired differences on the same
test images (each variant against the full model, hard-max against soft), with paired bootstrap
intervals: ``*`` marks a difference whose interval excludes 0. Every table is printed with the
protocol card of its runs; runs of different protocols are refused in one table unless
``--mix-protocols`` is given.
"""

from experiments.report.build import build_report
from experiments.report.formats import card_text, to_csv, to_latex, to_markdown
from experiments.report.runs import NYU, PAPER_BINS, VARIANTS, Run, collect_runs
from experiments.report.tables import (
    AUSE_COLS,
    DEPTH_COLS,
    DIFF,
    TABLE3_COLS,
    TABLE4_COLS,
    MixedProtocols,
    paper_numbers,
)

__all__ = [
    "AUSE_COLS",
    "DEPTH_COLS",
    "DIFF",
    "NYU",
    "PAPER_BINS",
    "TABLE3_COLS",
    "TABLE4_COLS",
    "VARIANTS",
    "MixedProtocols",
    "Run",
    "build_report",
    "card_text",
    "collect_runs",
    "paper_numbers",
    "to_csv",
    "to_latex",
    "to_markdown",
]
