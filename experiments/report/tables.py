"""The paper's Tables 1-4 and the uncertainty table as rows (ours beside the paper's numbers), and the
protocol every table's runs must share."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import yaml

from depth_lightning.evaluation.protocol import card_differences, protocol_key
from experiments.report.runs import NYU, PAPER_BINS, Run, group_of, reference_bins

PAPER_NUMBERS = Path(__file__).resolve().parent.parent / "paper_numbers.yaml"
# (row key in paper_numbers.yaml, label, variant, decoder): Table 3 and Sec. 5.1's third variant
TABLE3_ROWS = (
    ("no_dilation", "No dilation", "no_dilation", "soft"),
    ("no_concat", "No concat layer", "no_concat", "soft"),
    ("no_dilation_no_concat", "No dilation, no concat (Sec. 5.1)", "no_dilation_no_concat", "soft"),
    ("hard_max", "Hard-max inference", "full", "hard"),
    ("soft_weighted_sum", "Soft-weighted-sum (full model)", "full", "soft"),
)
DEPTH_COLS = (
    ("d1", "δ<1.25"),
    ("d2", "δ<1.25²"),
    ("d3", "δ<1.25³"),
    ("abs_rel", "rel"),
    ("log10", "log10"),
    ("rmse", "rms"),
)
TABLE3_COLS = DEPTH_COLS
TABLE4_COLS = (("pixel_acc", "pixel accuracy"), ("abs_rel", "rel"))
AUSE_COLS = (("ause_abs_rel", "AUSE rel"), ("ause_rmse", "AUSE rms"))
DIFF = "ours - paper"


class MixedProtocols(ValueError):
    """Runs of different evaluation protocols would share one table."""


def paper_numbers() -> dict[str, Any]:
    return yaml.safe_load(PAPER_NUMBERS.read_text()) if PAPER_NUMBERS.is_file() else {}


def _row(label: str, source: str, values: dict[str, Any], cols, group: list[Run] | None = None) -> dict[str, Any]:
    """A table row: ``values[col]``; for our runs also ``n`` (seeds), ``std`` (over seeds, n > 1) and
    ``ci`` (the single run's bootstrap interval over images, n = 1) per column."""
    group = group or []
    row: dict[str, Any] = {"row": label, "source": source, "run": ", ".join(str(r.path) for r in group) or None}
    row["n"], row["std"], row["ci"] = len(group) or None, {}, {}
    keys = values.pop("_keys", {}) if isinstance(values.get("_keys"), dict) else {}
    for col, _ in cols:
        row[col] = values.get(col)
        key = keys.get(col)
        if key is None or row[col] is None:
            continue
        found = [r.metrics[key] for r in group if r.metrics.get(key) is not None]
        if len(found) > 1:
            row["std"][col] = statistics.stdev(found)  # sample std over seeds
        elif group and group[0].intervals.get(key):
            row["ci"][col] = group[0].intervals[key]
    return row


def _ours(group: list[Run], prefix: str, cols, keys: dict[str, str] | None = None) -> dict[str, Any]:
    """Our value of each column: the mean over the cell's runs (seeds) of metric ``prefix + col``
    (or ``keys[col]``); ``_keys`` tells :func:`_row` where the spread comes from."""
    out: dict[str, Any] = {"_keys": {}}
    for col, _ in cols:
        key = (keys or {}).get(col, f"{prefix}{col}")
        found = [r.metrics[key] for r in group if r.metrics.get(key) is not None]
        out[col] = sum(found) / len(found) if found else None
        out["_keys"][col] = key
    return out


def _diff(ours: dict[str, Any], paper: dict[str, Any], cols) -> dict[str, Any]:
    return {
        col: ours[col] - paper[col] if ours.get(col) is not None and paper.get(col) is not None else None
        for col, _ in cols
    }


def _compared(label, paper, ours, group, cols, comparable: bool) -> list[dict[str, Any]]:
    """The paper's row, ours and (on the paper's dataset) the difference."""
    rows = [_row(label, "paper", paper, cols), _row(label, "ours", ours, cols, group)]
    if comparable:
        rows.append(_row(label, DIFF, _diff(ours, paper, cols), cols))
    return rows


def table1(runs: list[Run], bins: int | None = None) -> tuple[list[dict[str, Any]], Run | None]:
    """Table 1 (NYU v2): the paper's rows, then our full model (soft) at K closest to 200."""
    paper = paper_numbers().get("table1", [])
    nyu = [r for r in runs if r.dataset in NYU]
    group = group_of(nyu, "full", reference_bins(nyu, bins, 200))
    rows = [_row(p["method"], "paper", p, DEPTH_COLS) for p in paper if p["method"] != "ours"]
    theirs = next((p for p in paper if p["method"] == "ours"), {})
    rows += _compared("Li et al. (ours)", theirs, _ours(group, "soft/", DEPTH_COLS), group, DEPTH_COLS, True)
    return rows, (group[0] if group else None)


def table2(runs: list[Run], bins: int | None = None) -> tuple[list[dict[str, Any]], Run | None]:
    """Table 2 (KITTI): the paper's rows, then our full model (soft) at K closest to 50, uncapped
    (our headline cap, 80 m) and capped at 50 m."""
    paper = paper_numbers().get("table2", [])
    kitti = [r for r in runs if r.dataset == "kitti"]
    group = group_of(kitti, "full", reference_bins(kitti, bins, 50))
    rows = []
    for p in paper:
        cap = f" cap {p['cap']}m" if p.get("cap") else ""
        if p["method"] != "ours":
            rows.append(_row(p["method"] + cap, "paper", p, DEPTH_COLS))
            continue
        prefix = f"cap{p['cap']:g}/soft/" if p.get("cap") else "soft/"
        rows += _compared("Li et al. (ours)" + cap, p, _ours(group, prefix, DEPTH_COLS), group, DEPTH_COLS, True)
    return rows, (group[0] if group else None)


def table3(runs: list[Run], bins: int | None) -> list[dict[str, Any]]:
    """Table 3: every variant of Sec. 5.1 and both decoders of the full model, at K = ``bins``."""
    paper = paper_numbers().get("table3", {})
    comparable = bool(runs) and runs[0].dataset in NYU
    rows = []
    for key, label, variant, decoder in TABLE3_ROWS:
        group = group_of(runs, variant, bins) if bins is not None else []
        rows += _compared(
            label, paper.get(key) or {}, _ours(group, f"{decoder}/", TABLE3_COLS), group, TABLE3_COLS, comparable
        )
    return rows


def table4(runs: list[Run]) -> list[dict[str, Any]]:
    """Table 4: pixel accuracy of the bin labels and rel (soft) of the full model for every K."""
    paper = paper_numbers().get("table4", {})
    comparable = bool(runs) and runs[0].dataset in NYU
    counts = sorted({r.bins for r in runs if r.variant == "full"} | set(PAPER_BINS))
    rows = []
    for k in counts:
        group = group_of(runs, "full", k)
        ours = _ours(group, "", TABLE4_COLS, {"pixel_acc": "pixel_acc", "abs_rel": "soft/abs_rel"})
        rows += _compared(k, paper.get(k) or {}, ours, group, TABLE4_COLS, comparable)
    return rows


def check_protocols(name: str, runs: list[Run], allow_mixed: bool) -> tuple[dict[str, Any] | None, list[str]]:
    """The protocol card the runs of table ``name`` share; a table of runs under different protocols is
    refused (:class:`MixedProtocols`) unless ``allow_mixed``; notes for runs without a card."""
    carded = [r for r in runs if r.protocol]
    notes = [f"{r.path}: no protocol card (a run from before cards were written)" for r in runs if not r.protocol]
    kinds: dict[str, Run] = {}
    for run in carded:
        kinds.setdefault(protocol_key(run.protocol), run)
    if len(kinds) > 1:
        a, b = list(kinds.values())[:2]
        message = (
            f"{name}: runs of {len(kinds)} different evaluation protocols would share this table, e.g. {a.path} and "
            f"{b.path} ({'; '.join(card_differences(a.protocol, b.protocol))}). Their numbers are not comparable: "
            "report each protocol's runs separately, or pass --mix-protocols to put them in one table anyway"
        )
        if not allow_mixed:
            raise MixedProtocols(message)
        notes.append(message.split(". Their numbers")[0] + " (mixed on request: --mix-protocols)")
    return (carded[0].protocol if carded else None), notes


def uncertainty_table(runs: list[Run], bins: int | None) -> list[dict[str, Any]]:
    """AUSE of the uncertainty (abs rel, RMSE) for each variant's soft and the full model's hard decoder."""
    rows = []
    for _, label, variant, decoder in TABLE3_ROWS:
        group = group_of(runs, variant, bins) if bins is not None else []
        if group:
            rows.append(_row(label, "ours", _ours(group, f"{decoder}/", AUSE_COLS), AUSE_COLS, group))
    return rows
