"""``python -m depth_lightning.check data=<dataset> [data.dataset.root=...]``: is this copy of the
dataset what a week of training expects?

One table per run: for each split, frames listed against what the dataset should hold, frames with
ground truth, files missing or unreadable, frames whose median depth is implausible for the dataset
(a wrong unit), the share of valid ground truth outside the bins' range, the focal lengths the list
gives. Every error names its file; the exit code is 1 when there is one. Settings: ``conf/check.yaml``.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from depth_lightning.core.config import build, plain
from depth_lightning.core.errors import DataError
from depth_lightning.data.frame_check import size_mismatch, unit_problem
from depth_lightning.run.command import command

log = logging.getLogger(__name__)


@dataclass
class SplitReport:
    split: str
    listed: int | None = None
    expected: int | None = None
    with_truth: int | None = None
    expected_with_truth: int | None = None
    checked: int = 0
    missing: int = 0
    unreadable: int = 0
    implausible: int = 0
    medians: list[float] = field(default_factory=list)
    outside: int = 0
    valid: int = 0
    focal: Counter = field(default_factory=Counter)
    depths: list[np.ndarray] = field(default_factory=list)  # a sample of each frame's valid depth
    valid_area: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)  # frame size -> ever valid
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def row(self) -> list[str]:
        def count(n: int | None, want: int | None) -> str:
            return "—" if n is None else f"{n}" + (f" / {want}" if want is not None else "")

        median = f"{np.median(self.medians):.2f}" if self.medians else "—"
        share = f"{100 * self.outside / self.valid:.2f} %" if self.valid else "—"
        focal = ", ".join(f"{f:.4f} ({n})" for f, n in self.focal.most_common(3)) or "—"
        return [
            self.split,
            count(self.listed, self.expected),
            count(self.with_truth, self.expected_with_truth),
            str(self.checked),
            str(self.missing),
            str(self.unreadable),
            str(self.implausible),
            median,
            share,
            focal,
        ]


COLUMNS = (
    "split",
    "listed / expected",
    "with depth / expected",
    "read",
    "missing",
    "unreadable",
    "wrong unit?",
    "median depth (m)",
    "outside bins",
    "focal (lines)",
)


def _focal_lengths(list_file: Path | None) -> Counter:
    """The third column of a split list (BTS's format: ``image depth focal``), counted."""
    found: Counter = Counter()
    if list_file is None or not Path(list_file).is_file():
        return found
    for line in Path(list_file).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3:
            try:
                found[float(parts[2])] += 1
            except ValueError:
                continue
    return found


def check_split(datamodule: Any, split: str, cfg: DictConfig) -> SplitReport:
    """Read ``split`` of the configured dataset as training would (validation not held out)."""
    name = datamodule.name
    expected = (plain(cfg.get("expected")) or {}).get(name) or {}
    report = SplitReport(
        split, expected=expected.get(split), expected_with_truth=expected.get(f"{split}_with_ground_truth")
    )
    try:
        dataset = datamodule.build(split, whole_list=True)  # every missing file listed, not the first raised
    except (DataError, FileNotFoundError) as err:
        report.errors.append(str(err))
        return report
    report.missing = len(dataset.missing)
    report.errors += dataset.missing
    report.with_truth = len(dataset)
    report.listed = getattr(dataset, "listed", len(dataset) + len(dataset.missing))
    report.focal = _focal_lengths(getattr(dataset, "list_file", None))
    d_min, d_max = datamodule.depth_range
    for i in range(0, len(dataset), max(1, int(cfg.get("every", 1)))):
        if i and i % 2000 == 0:
            log.info("%s: %d of %d frames read", split, i, len(dataset))
        try:
            rgb, depth = dataset.load(i)  # the RGB image decoded too, and checked as a photograph
        except DataError as err:
            report.unreadable += 1
            report.errors.append(str(err))
            continue
        report.checked += 1
        report.errors += dataset.frame_problems(i)
        size = size_mismatch(dataset, i, rgb.shape[:2], depth.shape[:2])  # as training refuses it
        if size is not None:
            report.errors.append(size)
        valid = depth[np.isfinite(depth) & (depth > 0)]
        if valid.size == 0:
            report.warnings.append(f"{dataset.describe(i)}: no valid depth pixel (finite, > 0)")
            continue
        report.medians.append(float(np.median(valid)))
        unit = unit_problem(dataset, i, depth, datamodule.plausible_median, name)
        if unit is not None:
            report.implausible += 1
            report.errors.append(unit)
        if split == "train":  # what suggested_settings derives the depth range and box from
            _sample(report, depth, valid)
        report.valid += valid.size
        report.outside += int(((valid < d_min) | (valid > d_max)).sum())
    if report.checked and not report.medians:
        report.errors.append(
            f"{split}: none of the {report.checked} frames read holds valid depth (finite, > 0), e.g. "
            f"{dataset.describe(0)}: all-zero or NaN maps cannot be trained or scored; check the depth files"
        )
    if len(dataset) == 0 and dataset.without_truth:
        report.errors.append(f"{split}: no listed frame has ground truth, e.g. {dataset.without_truth[0]}")
    _judge(report, name, float(cfg.get("outside_bins_warning", 0.01)), (d_min, d_max))
    return report


def _sample(report: SplitReport, depth: np.ndarray, valid: np.ndarray) -> None:
    """Keep a spread sample of a frame's valid depth and where its frames of that size hold depth."""
    report.depths.append(valid[:: max(1, valid.size // 4096)])
    has = np.isfinite(depth) & (depth > 0)
    area = report.valid_area.get(has.shape)
    report.valid_area[has.shape] = has if area is None else area | has


def suggested_settings(report: SplitReport) -> list[str]:
    """The depth range, bins, caps and evaluation region the training frames suggest (``data.*``)."""
    if not report.depths:
        return []
    depth = np.concatenate(report.depths)
    low, high = (float(f"{v:.3g}") for v in np.percentile(depth, [0.5, 99.5]))
    out = [f"data.depth_min={low:g}", f"data.depth_max={high:g}", f"data.protocol.caps=[{high:g}]"]
    if len(report.valid_area) == 1:  # frames of one size: the box of the area where any frame has depth
        area = next(iter(report.valid_area.values()))
        rows, cols = np.nonzero(area.any(1))[0], np.nonzero(area.any(0))[0]
        box = [int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1]
        if box != [0, area.shape[0], 0, area.shape[1]]:
            out += ["data.protocol.region=box", f"data.protocol.box=[{','.join(map(str, box))}]"]
    return out


def _judge(report: SplitReport, name: str, outside_warning: float, bins: tuple[float, float]) -> None:
    """Warnings for counts that differ from the dataset's, depth outside the bins, several focal lengths."""
    for what, have, want in (
        ("frames listed", report.listed, report.expected),
        ("frames with ground truth", report.with_truth, report.expected_with_truth),
    ):
        if want is not None and have is not None and have != want:
            report.warnings.append(
                f"{report.split}: {have} {what}; the {name} {report.split} split has {want} (a subset? another list?)"
            )
    if report.valid and report.outside / report.valid > outside_warning:
        report.warnings.append(
            f"{report.split}: {100 * report.outside / report.valid:.2f} % of the valid ground truth lies outside the "
            f"bins' range [{bins[0]:g}, {bins[1]:g}] m (data.depth_min / data.depth_max): it is trained on the end bins"
        )
    if len(report.focal) > 1:
        report.warnings.append(f"{report.split}: the list gives {len(report.focal)} different focal lengths")


def format_report(reports: list[SplitReport]) -> str:
    rows = [list(COLUMNS)] + [r.row() for r in reports]
    widths = [max(len(row[j]) for row in rows) for j in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows)


def main_check(cfg: DictConfig) -> int:
    """Check every split of ``cfg.splits``; print the table, the errors and warnings; 1 on an error."""
    datamodule = build(cfg.data, "data")
    reports = [check_split(datamodule, split, cfg) for split in cfg.splits]
    root = (plain(cfg.data).get("dataset") or {}).get("root", "")
    print(f"\ndata={datamodule.name} {root}".rstrip())
    print(format_report(reports))
    errors = [e for r in reports for e in r.errors]
    warnings = [w for r in reports for w in r.warnings]
    for title, items in (("errors", errors), ("warnings", warnings)):
        if items:
            print(f"\n{len(items)} {title[:-1]}(s):")
            print("\n".join(f"  {item}" for item in items[:200]))
            if len(items) > 200:
                print(f"  ... and {len(items) - 200} more")
    train = next((r for r in reports if r.split == "train"), None)
    suggested = suggested_settings(train) if train is not None else []
    if suggested:
        print(
            "\nfrom the training frames' depth (0.5th-99.5th percentile; the box where any frame holds depth), "
            "this would set:\n  " + " ".join(suggested)
        )
    print(f"\n{'FAILED' if errors else 'passed'}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return 1 if errors else 0


def run_check(cfg: DictConfig) -> None:
    """Check the dataset; exit 1 when a frame is unusable (the report says which)."""
    code = main_check(cfg)
    if code:
        raise SystemExit(code)


main = command("check", run_check)

if __name__ == "__main__":
    main()
