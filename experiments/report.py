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

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from depth_lightning import bootstrap
from depth_lightning.metrics import METRIC_NAMES
from depth_lightning.protocol import card_differences, protocol_key

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
VARIANTS = ("full", "no_dilation", "no_concat", "no_dilation_no_concat")
PAPER_BINS = (50, 100, 200, 500, 1000)
NYU = ("nyu", "nyu_sync")
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


@dataclass
class Run:
    path: Path
    task: str
    variant: str
    bins: int
    metrics: dict[str, float]
    split: str
    status: str
    dataset: str = "?"
    extra: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    protocol: dict[str, Any] | None = None  # the card of the test that produced ``metrics``
    intervals: dict[str, list[float]] = field(default_factory=dict)  # bootstrap intervals of ``metrics``


class MixedProtocols(ValueError):
    """Runs of different evaluation protocols would share one table."""


def _variant(net: dict[str, Any]) -> str:
    dilated, fusion = bool(net.get("dilated", True)), bool(net.get("fusion", True))
    return {(True, True): "full", (False, True): "no_dilation", (True, False): "no_concat"}.get(
        (dilated, fusion), "no_dilation_no_concat"
    )


def collect_runs(folders: list[Path], split: str = "test") -> tuple[list[Run], list[str]]:
    """Every run under ``folders`` that finished, and a message for each one that did not."""
    runs: list[Run] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"{folder}: no such folder")
            continue
        candidates = {p.parent for p in folder.rglob(".hydra")} | {p.parent for p in folder.rglob("metrics.json")}
        for run_dir in sorted(candidates):
            if run_dir in seen or ".submitit" in run_dir.parts:
                continue
            seen.add(run_dir)
            path = run_dir / "metrics.json"
            if not path.is_file():
                problems.append(f"{run_dir}: no metrics.json (the job failed or was killed before training)")
                continue
            try:
                data = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                problems.append(f"{run_dir}: unreadable metrics.json ({err})")
                continue
            status = data.get("status", "unknown")
            chosen = split if split in data else "val" if "val" in data else None
            if status != "completed" or chosen is None:
                why = f": {data['error']}" if data.get("error") else " (killed or failed mid-way)"
                problems.append(f"{run_dir}: status {status!r}{why}; left out of the tables")
                continue
            cfg = data.get("config", {})
            net = cfg.get("model", {}).get("net", {})
            runs.append(
                Run(
                    run_dir,
                    cfg.get("task_name", "?"),
                    _variant(net),
                    int(net.get("num_bins", 0)),
                    data[chosen],
                    chosen,
                    status,
                    dataset=cfg.get("data", {}).get("name", "?"),
                    seed=cfg.get("seed"),
                    protocol=data.get("protocol") if chosen == "test" else None,
                    intervals=data.get("test_intervals", {}) if chosen == "test" else {},
                    extra={"seed": cfg.get("seed"), "intervals": data.get("intervals")},
                )
            )
    runs.sort(key=lambda r: (r.path / "metrics.json").stat().st_mtime)  # a table takes the newest of a kind
    problems += duplicate_runs(runs)
    tasks = sorted({r.task for r in runs})
    if len(tasks) > 1:
        problems.append(f"runs of different experiments are mixed: {', '.join(tasks)} (tables pool them)")
    return runs, problems


def duplicate_runs(runs: list[Run]) -> list[str]:
    """A message for each kind of run (dataset, variant, K, seed) finished more than once, e.g. a sweep
    re-run into its folder under an older folder scheme: the tables use the newest, the others are stale."""
    kinds: dict[tuple[Any, ...], list[Run]] = {}
    for run in runs:  # oldest first
        kinds.setdefault((run.task, run.dataset, run.variant, run.bins, run.extra.get("seed")), []).append(run)
    return [
        f"{len(same)} finished runs of {kind[2]} K={kind[3]} on {kind[1]} (seed {kind[4]}): the tables use the "
        f"newest, {same[-1].path}; stale: {', '.join(str(r.path) for r in same[:-1])}"
        for kind, same in kinds.items()
        if len(same) > 1
    ]


def ablation_runs(runs: list[Run]) -> list[Run]:
    """The runs of Tables 3 and 4: NYU runs when there are any (the paper's dataset), else the
    dataset most runs are on."""
    if not runs:
        return []
    nyu = [r for r in runs if r.dataset in NYU]
    if nyu:
        return nyu
    common = Counter(r.dataset for r in runs).most_common(1)[0][0]
    return [r for r in runs if r.dataset == common]


def reference_bins(runs: list[Run], wanted: int | None = None, paper_bins: int = 200) -> int | None:
    """The bin count of a table: ``wanted``, else the full model's count closest to the paper's."""
    counts = sorted({r.bins for r in runs if r.variant == "full"} or {r.bins for r in runs})
    if not counts:
        return None
    if wanted is not None:
        return wanted
    return min(counts, key=lambda k: (abs(k - paper_bins), k))


def _group(runs: list[Run], variant: str, bins: int | None) -> list[Run]:
    """The runs of one cell: of each seed the newest run of ``variant`` at ``bins``, in seed order."""
    by_seed: dict[Any, Run] = {}
    for run in runs:  # oldest first: a newer run of a seed replaces an older one
        if run.variant == variant and run.bins == bins:
            by_seed[run.seed] = run
    return [by_seed[s] for s in sorted(by_seed, key=str)]


def _find(runs: list[Run], variant: str, bins: int | None) -> Run | None:
    group = _group(runs, variant, bins)
    return group[0] if group else None


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
    group = _group(nyu, "full", reference_bins(nyu, bins, 200))
    rows = [_row(p["method"], "paper", p, DEPTH_COLS) for p in paper if p["method"] != "ours"]
    theirs = next((p for p in paper if p["method"] == "ours"), {})
    rows += _compared("Li et al. (ours)", theirs, _ours(group, "soft/", DEPTH_COLS), group, DEPTH_COLS, True)
    return rows, (group[0] if group else None)


def table2(runs: list[Run], bins: int | None = None) -> tuple[list[dict[str, Any]], Run | None]:
    """Table 2 (KITTI): the paper's rows, then our full model (soft) at K closest to 50, uncapped
    (our headline cap, 80 m) and capped at 50 m."""
    paper = paper_numbers().get("table2", [])
    kitti = [r for r in runs if r.dataset == "kitti"]
    group = _group(kitti, "full", reference_bins(kitti, bins, 50))
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
        group = _group(runs, variant, bins) if bins is not None else []
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
        group = _group(runs, "full", k)
        ours = _ours(group, "", TABLE4_COLS, {"pixel_acc": "pixel_acc", "abs_rel": "soft/abs_rel"})
        rows += _compared(k, paper.get(k) or {}, ours, group, TABLE4_COLS, comparable)
    return rows


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
    from depth_lightning.per_image import SUMS_FILE, read_sums

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


def paired_table(
    runs: list[Run], bins: int | None, problems: list[str], resamples: int = bootstrap.RESAMPLES
) -> list[dict[str, Any]]:
    """Each comparison of :data:`PAIRS` at K = ``bins``: the difference of the seed-means on the test
    images both sides scored, its paired bootstrap interval (the same image draws on both sides),
    whether it excludes 0, and the paper's own gap."""
    if bins is None:
        return []
    paper = paper_numbers().get("table3", {})
    rows = []
    for label, (va, da), (vb, db), (pa, pb) in PAIRS:
        first = _aligned_sums(_group(runs, va, bins), da, problems)
        second = _aligned_sums(_group(runs, vb, bins), db, problems)
        seeds = [s for s in first if s in second]
        if not seeds:
            continue
        common = set(first[seeds[0]][0].tolist())
        for s in seeds:
            common &= set(first[s][0].tolist()) & set(second[s][0].tolist())
        ids = np.array(sorted(common))
        if len(ids) < 2:
            problems.append(f"{label}: fewer than 2 test images scored by both sides: no paired interval")
            continue
        diff, low_high = bootstrap.paired_interval(
            [_statistic(first[s], ids) for s in seeds], [_statistic(second[s], ids) for s in seeds], len(ids), resamples
        )
        row: dict[str, Any] = {"row": label, "seeds": len(seeds), "images": len(ids), "ours": {}, "ci": {}}
        row["paper"], row["beyond_noise"], row["reproduced"] = {}, {}, {}
        for col, _ in TABLE3_COLS:
            j = METRIC_NAMES.index(col)
            row["ours"][col], row["ci"][col] = float(diff[j]), [float(low_high[0, j]), float(low_high[1, j])]
            row["beyond_noise"][col] = bool(low_high[0, j] > 0 or low_high[1, j] < 0)
            a, b = (paper.get(pa) or {}).get(col), (paper.get(pb) or {}).get(col)
            row["paper"][col] = a - b if a is not None and b is not None else None
            same_sign = row["paper"][col] is not None and np.sign(row["paper"][col]) == np.sign(diff[j])
            row["reproduced"][col] = bool(row["beyond_noise"][col] and same_sign)
        rows.append(row)
    return rows


def paired_markdown(rows: list[dict[str, Any]]) -> str:
    head = ["comparison", "seeds", "images", *(c[1] for c in TABLE3_COLS)]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * 3 + ["---:"] * len(TABLE3_COLS)) + " |"]
    for row in rows:
        cells = []
        for col, _ in TABLE3_COLS:
            low, high = row["ci"][col]
            mark = "*" if row["beyond_noise"][col] else ""
            cells.append(f"{row['ours'][col]:+.3f} [{low:+.3f}, {high:+.3f}]{mark}")
        lines.append("| " + " | ".join([row["row"], str(row["seeds"]), str(row["images"]), *cells]) + " |")
        paper = [_fmt(row["paper"][c], DIFF) for c, _ in TABLE3_COLS]
        lines.append("| " + " | ".join(["  paper's gap", "", "", *paper]) + " |")
    return "\n".join(lines)


def paired_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    cols = [c for c, _ in TABLE3_COLS]
    writer.writerow(
        ["comparison", "seeds", "images"]
        + [f"{c}{s}" for c in cols for s in ("", "_ci_low", "_ci_high", "_beyond_noise", "_paper_gap")]
    )
    for row in rows:
        cells = []
        for c in cols:
            cells += [row["ours"][c], *row["ci"][c], row["beyond_noise"][c], row["paper"][c]]
        writer.writerow([row["row"], row["seeds"], row["images"], *cells])
    return buf.getvalue()


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


def card_text(card: dict[str, Any] | None, method: dict[str, Any] | None = None) -> str:
    """The protocol card as one paragraph, printed under a table."""
    if not card:
        return "_Protocol: no card (runs from before protocol cards, or the validation split)._"
    listed = card.get("list") or {}
    listing = (
        f"{Path(listed['file']).name} ({listed.get('lines')} entries, sha256 {listed.get('sha256')})"
        if "file" in listed
        else ", ".join(f"{v}" for v in listed.values())
    )
    region = card.get("region", {})
    top, bottom, left, right = region.get("box") or ["?"] * 4
    frame = "x".join(map(str, region.get("original_frame", [])))
    low, high = card.get("depth_range") or ["?", "?"]
    res = "x".join(map(str, (card.get("prediction") or {}).get("resolution") or [])) or "?"
    silog = card.get("metrics", {}).get("silog", "?").split(" (")[0]
    text = (
        f"_Protocol: {card.get('dataset')} {card.get('split')} split, list {listing}; ground truth: "
        f"{card.get('ground_truth')}; region {region.get('name')} = rows {top}:{bottom}, cols {left}:{right} of the "
        f"{frame} frame; depth ({low}, {high}) m, caps {card.get('caps')}; prediction {res}, upsampled bilinearly to "
        f"the ground truth; aggregation {card.get('aggregation')}; SILog = {silog}"
    )
    if method:
        text += f"; intervals: {method.get('method')}, {method.get('resamples')} resamples, seed {method.get('seed')}"
    return text + "._"


def missing_runs(runs: list[Run]) -> list[str]:
    have = {(r.variant, r.bins) for r in runs}
    return [f"{v}-K{k}" for v in VARIANTS for k in PAPER_BINS if (v, k) not in have]


def _fmt(value: Any, source: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:+.3f}" if source == DIFF else f"{value:.3f}"
    return str(value)


def _cell(row: dict[str, Any], col: str, pm: str = "±") -> str:
    """``0.139 ± 0.004 (n=3)`` over seeds, ``0.139 [0.134, 0.144]`` for one run, else the value."""
    text = _fmt(row[col], row["source"])
    if col in row.get("std", {}):
        return f"{text} {pm} {row['std'][col]:.3f} (n={row['n']})"
    if col in row.get("ci", {}):
        low, high = row["ci"][col]
        return f"{text} [{low:.3f}, {high:.3f}]"
    return text


def to_markdown(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str) -> str:
    lines = [
        "| " + " | ".join([first, ""] + [c[1] for c in cols]) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * len(cols)) + " |",
    ]
    for row in rows:
        cells = [str(row["row"]), row["source"]] + [_cell(row, c[0]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    spread = [f"{c[0]}{s}" for c in cols for s in ("_std", "_ci_low", "_ci_high")]
    writer.writerow([first, "source"] + [c[0] for c in cols] + spread + ["n", "run"])
    for row in rows:
        extra = []
        for c, _ in cols:
            ci = row.get("ci", {}).get(c, ["", ""])
            extra += [row.get("std", {}).get(c, ""), *ci]
        writer.writerow(
            [row["row"], row["source"]]
            + ["" if row[c[0]] is None else row[c[0]] for c in cols]
            + extra
            + [row.get("n") or "", row["run"] or ""]
        )
    return buf.getvalue()


def to_latex(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str, caption: str) -> str:
    esc = {"δ": r"$\delta$", "²": r"$^2$", "³": r"$^3$", "<": r"$<$", "&": r"\&"}

    def tex(s: str) -> str:
        for a, b in esc.items():
            s = s.replace(a, b)
        return s

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{ll" + "r" * len(cols) + "}",
        r"\toprule",
        " & ".join([first, ""] + [tex(c[1]) for c in cols]) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        cells = [tex(str(row["row"])), row["source"]]
        cells += [tex(_cell(row, c[0], r"$\pm$")).replace("—", "--") for c in cols]
        lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{tex(caption)}}}", r"\end{table}"]
    return "\n".join(lines)


def figure6(run: Run, out: Path) -> Path | None:
    """Fig. 6 from a run's ``bin_distributions.npz``."""
    from PIL import Image

    from depth_lightning.visualize import distribution_figure

    path = run.path / "bin_distributions.npz"
    if not path.is_file():
        return None
    data = np.load(path)
    title = f"Fig. 6, {run.path.name}"
    fig = distribution_figure(data["steps"], data["probs"], data["labels"], data["log_centres"], title)
    Image.fromarray(fig).save(out)
    return out


def figure7(run: Run, out: Path) -> Path | None:
    """Fig. 7 from a run's ``confusion_val.npy``."""
    from PIL import Image

    from depth_lightning.visualize import confusion_figure

    path = run.path / "confusion_val.npy"
    if not path.is_file():
        return None
    Image.fromarray(confusion_figure(np.load(path), f"Fig. 7, {run.path.name}", run.bins)).save(out)
    return out


def _ours_caption(run: Run | None, what: str) -> str:
    return f"ours: {run.dataset}, K = {run.bins}, {run.path.name}" if run else f"ours: no {what} run in these folders"


def figure_sparsification(run: Run, out: Path) -> Path | None:
    """The uncertainty's sparsification curves from a run's ``sparsification.json``."""
    from PIL import Image

    from depth_lightning.visualize import sparsification_figure

    path = run.path / "sparsification.json"
    if not path.is_file():
        return None
    Image.fromarray(sparsification_figure(json.loads(path.read_text()), run.path.name)).save(out)
    return out


def uncertainty_table(runs: list[Run], bins: int | None) -> list[dict[str, Any]]:
    """AUSE of the uncertainty (abs rel, RMSE) for each variant's soft and the full model's hard decoder."""
    rows = []
    for _, label, variant, decoder in TABLE3_ROWS:
        group = _group(runs, variant, bins) if bins is not None else []
        if group:
            rows.append(_row(label, "ours", _ours(group, f"{decoder}/", AUSE_COLS), AUSE_COLS, group))
    return rows


def build_report(
    folders: list[Path],
    out: Path,
    bins: int | None = None,
    split: str = "test",
    mix_protocols: bool = False,
    resamples: int = bootstrap.RESAMPLES,
) -> dict[str, Any]:
    """Collect the runs and write every table (md, csv, tex), the figures and ``report.md``.

    Raises :class:`MixedProtocols` when one table would hold runs of different evaluation protocols
    (unless ``mix_protocols``)."""
    runs, problems = collect_runs(folders, split)
    t1, run1 = table1(runs)
    t2, run2 = table2(runs)
    ablation = ablation_runs(runs)
    k = reference_bins(ablation, bins)
    cards = {}
    for name, members in (
        ("Table 1", [r for r in runs if r.dataset in NYU]),
        ("Table 2", [r for r in runs if r.dataset == "kitti"]),
        ("Tables 3 and 4", ablation),
    ):
        cards[name], notes = check_protocols(name, members, mix_protocols)
        problems += notes
    out.mkdir(parents=True, exist_ok=True)
    t3, t4 = table3(ablation, k), table4(ablation)
    paired = paired_table(ablation, k, problems, resamples)
    ause = uncertainty_table(ablation, k)
    on = ablation[0].dataset if ablation else "no run"
    method = next((r.extra.get("intervals") for r in runs if r.extra.get("intervals")), None)
    tables = (
        ("table1", t1, DEPTH_COLS, "method", f"Table 1, NYU Depth v2 ({_ours_caption(run1, 'NYU')})", "Table 1"),
        ("table2", t2, DEPTH_COLS, "method", f"Table 2, KITTI Eigen split ({_ours_caption(run2, 'KITTI')})", "Table 2"),
        (
            "table3",
            t3,
            TABLE3_COLS,
            "variant",
            f"Table 3, components (ours: {on}, K = {k}; paper: NYU v2)",
            "Tables 3 and 4",
        ),
        (
            "table4",
            t4,
            TABLE4_COLS,
            "bins",
            f"Table 4, number of bins, full model, soft (ours: {on}; paper: NYU v2)",
            "Tables 3 and 4",
        ),
        ("uncertainty", ause, AUSE_COLS, "variant", f"Uncertainty: AUSE (ours: {on}, K = {k}; 0 = perfect)", None),
    )
    files = {}
    lines = [f"# Report ({len(runs)} finished runs, {split} split)", ""]
    if not runs:
        lines += ["**No finished run was found** in " + ", ".join(str(f) for f in folders) + ".", ""]
    lines += [
        "Cells: the mean over seeds ± their standard deviation (n seeds) where several seeds ran, else the "
        "run's value with its 95 % bootstrap interval over test images.",
        "",
    ]
    for name, rows, cols, first, caption, card_of in tables:
        for ext, text in (
            ("md", to_markdown(rows, cols, first)),
            ("csv", to_csv(rows, cols, first)),
            ("tex", to_latex(rows, cols, first, caption)),
        ):
            (out / f"{name}.{ext}").write_text(text + "\n")
            files[f"{name}.{ext}"] = out / f"{name}.{ext}"
        lines += [f"## {caption}", "", to_markdown(rows, cols, first), ""]
        if card_of is not None:
            lines += [card_text(cards[card_of], method), ""]
        if name == "table3" and paired:
            (out / "table3_paired.md").write_text(paired_markdown(paired) + "\n")
            (out / "table3_paired.csv").write_text(paired_csv(paired))
            files["table3_paired.md"] = out / "table3_paired.md"
            lines += [
                f"### Table 3, paired differences on the same test images (ours: {on}, K = {k})",
                "",
                "Seed-mean difference with its paired 95 % bootstrap interval over test images (the same image "
                f"draws on both sides, {resamples} resamples); `*`: the interval excludes 0. Below each row the "
                "paper's own gap (Table 3).",
                "",
                paired_markdown(paired),
                "",
            ]
            reproduced = [
                f"{row['row']}: {', '.join(label for col, label in TABLE3_COLS if row['reproduced'][col])}"
                for row in paired
                if any(row["reproduced"].values())
            ]
            if on in NYU:
                lines += [
                    "Paper's gaps reproduced beyond noise (same sign, interval excludes 0): "
                    + ("; ".join(reproduced) if reproduced else "none")
                    + ".",
                    "",
                ]
            else:
                lines += [f"The runs are on `{on}`, not NYU v2: the paper's gaps show their direction only.", ""]
    if ablation and ablation[0].dataset not in NYU:
        lines += [f"The ablation runs are on `{on}`, the paper's on NYU v2: no difference is computed.", ""]
    full = _find(ablation, "full", k) if k is not None else None
    figures = {}
    if full is not None:
        for name, fn in (("fig6", figure6), ("fig7", figure7), ("sparsification", figure_sparsification)):
            written = fn(full, out / f"{name}.png")
            if written:
                figures[name] = written
    missing = missing_runs(ablation)
    if figures:
        lines += ["## Figures", ""] + [f"![{n}]({p.name})" for n, p in figures.items()] + [""]
    if missing:
        lines += [f"## Missing from the paper's {len(VARIANTS) * len(PAPER_BINS)}-run ablation", ""]
        lines += [", ".join(missing), ""]
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    (out / "report.md").write_text("\n".join(lines))
    return {
        "runs": runs,
        "problems": problems,
        "missing": missing,
        "table1": t1,
        "table2": t2,
        "table3": t3,
        "table4": t4,
        "uncertainty": ause,
        "paired": paired,
        "cards": cards,
        "figures": figures,
        "files": files,
        "bins": k,
        "report": out / "report.md",
    }


def log_to_wandb(result: dict[str, Any], sweep: Path) -> str:
    """The report's tables and figures as one W&B run (job type ``report``) in the sweep's group
    (the group its training runs logged to); returns the run's folder."""
    import os

    import wandb

    os.environ.setdefault("WANDB_MODE", "offline")
    task = result["runs"][0].task
    run = wandb.init(
        project="depth_lightning",
        group=f"{task}-{Path(sweep).resolve().name}",
        job_type="report",
        name=f"report-{Path(sweep).resolve().name}",
        dir=str(result["report"].parent),
    )
    columns = {"table1": DEPTH_COLS, "table2": DEPTH_COLS, "table3": TABLE3_COLS, "table4": TABLE4_COLS}
    logged: dict[str, Any] = {}
    for name, cols in columns.items():
        keys = ["row", "source", *(c for c, _ in cols)]
        logged[f"report/{name}"] = wandb.Table(
            columns=keys, data=[[None if r.get(k) is None else r[k] for k in keys] for r in result[name]]
        )
    for name, path in result["figures"].items():
        logged[f"report/{name}"] = wandb.Image(str(path))
    run.log(logged)
    folder = run.dir
    run.finish()
    return str(Path(folder).parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n")[0])
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
