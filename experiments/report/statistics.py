"""Paired differences on the same test images, with paired bootstrap intervals (Table 3's gaps)."""

from __future__ import annotations

from typing import Any

import numpy as np

from depth_lightning.evaluation import bootstrap
from depth_lightning.evaluation.metrics import METRIC_NAMES
from depth_lightning.evaluation.per_image import SUMS_FILE, read_sums
from experiments.report.runs import Run, group_of
from experiments.report.tables import TABLE3_COLS, paper_numbers

# Paired comparisons on the same test images: (label, variant, decoder) minus (variant, decoder),
# with the keys of the paper's Table 3 rows whose gap it measures.
PAIRS = (
    ("No dilation - full", ("no_dilation", "soft"), ("full", "soft"), ("no_dilation", "soft_weighted_sum")),
    ("No concat - full", ("no_concat", "soft"), ("full", "soft"), ("no_concat", "soft_weighted_sum")),
    (
        "No dilation, no concat - full",
        ("no_dilation_no_concat", "soft"),
        ("full", "soft"),
        ("no_dilation_no_concat", "soft_weighted_sum"),
    ),
    ("Hard-max - soft (full model)", ("full", "hard"), ("full", "soft"), ("hard_max", "soft_weighted_sum")),
)


def _aligned_sums(group: list[Run], decoder: str, problems: list[str]) -> dict[Any, tuple[np.ndarray, np.ndarray, str]]:
    """Per seed: (image ids, per-image sums, aggregation) of ``decoder`` from the run's per_image_sums.npz."""
    out = {}
    for run in group:
        if not (run.path / SUMS_FILE).is_file():
            problems.append(f"{run.path}: no {SUMS_FILE} (a run from before per-image results): not in paired tests")
            continue
        aggregation, sums = read_sums(run.path)
        if decoder in sums:
            out[run.seed] = (*sums[decoder], aggregation)
    return out


def _statistic(entry: tuple[np.ndarray, np.ndarray, str], ids: np.ndarray):
    """The depth metrics of one run's images ``ids`` (in id order) under weights."""
    keep = np.isin(entry[0], ids)
    return bootstrap.depth_statistic(entry[1][keep], entry[2])


def paired_row(label: str, first: dict, second: dict, problems: list[str], resamples: int) -> dict[str, Any] | None:
    """``first`` - ``second`` (per seed, a run's per-image sums) on the test images both sides scored: the
    seed-mean difference of every metric, its paired bootstrap interval (the same image draws on both
    sides) and whether it excludes 0; None when no seed or fewer than 2 images are shared (said)."""
    seeds = [s for s in first if s in second]
    if not seeds:
        problems.append(f"{label}: no seed was run both ways: no paired difference")
        return None
    common = set(first[seeds[0]][0].tolist())
    for s in seeds:
        common &= set(first[s][0].tolist()) & set(second[s][0].tolist())
    ids = np.array(sorted(common))
    if len(ids) < 2:
        problems.append(f"{label}: fewer than 2 test images scored by both sides: no paired interval")
        return None
    diff, low_high = bootstrap.paired_interval(
        [_statistic(first[s], ids) for s in seeds], [_statistic(second[s], ids) for s in seeds], len(ids), resamples
    )
    row: dict[str, Any] = {"row": label, "seeds": len(seeds), "images": len(ids), "ours": {}, "ci": {}}
    row["paper"], row["beyond_noise"], row["reproduced"] = {}, {}, {}
    for col, _ in TABLE3_COLS:
        j = METRIC_NAMES.index(col)
        row["ours"][col], row["ci"][col] = float(diff[j]), [float(low_high[0, j]), float(low_high[1, j])]
        row["beyond_noise"][col] = bool(low_high[0, j] > 0 or low_high[1, j] < 0)
        row["paper"][col], row["reproduced"][col] = None, False
    return row


def paired_table(
    runs: list[Run], bins: int | None, problems: list[str], resamples: int = bootstrap.RESAMPLES
) -> list[dict[str, Any]]:
    """Each comparison of :data:`PAIRS` at K = ``bins`` (:func:`paired_row`), with the paper's own gap and
    whether ours reproduces it (beyond noise, same sign)."""
    if bins is None:
        return []
    paper = paper_numbers().get("table3", {})
    rows = []
    for label, (va, da), (vb, db), (pa, pb) in PAIRS:
        first = _aligned_sums(group_of(runs, va, bins), da, problems)
        second = _aligned_sums(group_of(runs, vb, bins), db, problems)
        if not [s for s in first if s in second]:
            continue  # a comparison the runs do not hold: not a problem
        row = paired_row(label, first, second, problems, resamples)
        if row is None:
            continue
        for col, _ in TABLE3_COLS:
            a, b = (paper.get(pa) or {}).get(col), (paper.get(pb) or {}).get(col)
            row["paper"][col] = a - b if a is not None and b is not None else None
            same_sign = row["paper"][col] is not None and np.sign(row["paper"][col]) == np.sign(row["ours"][col])
            row["reproduced"][col] = bool(row["beyond_noise"][col] and same_sign)
        rows.append(row)
    return rows


def augmentation_table(
    runs: list[Run], problems: list[str], resamples: int = bootstrap.RESAMPLES
) -> list[dict[str, Any]]:
    """Each augmentation other than the paper's against the paper's, for each variant and K run both ways
    (extra - paper, soft decoder; :func:`paired_row`, without a paper gap)."""
    rows = []
    for variant, bins in sorted({(r.variant, r.bins) for r in runs}):
        for label in sorted({r.augmentation for r in runs if (r.variant, r.bins) == (variant, bins)} - {"paper"}):
            first = _aligned_sums(group_of(runs, variant, bins, label), "soft", problems)
            second = _aligned_sums(group_of(runs, variant, bins, "paper"), "soft", problems)
            row = paired_row(f"{label} - paper ({variant}, K = {bins})", first, second, problems, resamples)
            if row is not None:
                rows.append(row)
    return rows
