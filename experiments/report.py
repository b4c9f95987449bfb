"""The paper's Tables 1-4 and Figures 6 and 7 from finished runs, beside the paper's own numbers.

    python -m experiments.report <sweep or run folder>... [--out DIR] [--bins K] [--split test|val]

Reads the ``metrics.json`` every run writes (plus ``bin_distributions.npz`` and
``confusion_val.npy``), works on partial sweeps, and says which runs are missing or failed. Each table
shows, per row, the paper's numbers, ours and the difference (ours - paper); the difference only where
our runs are on the paper's dataset (Tables 1, 3, 4: NYU v2; Table 2: KITTI).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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
                    extra={"seed": cfg.get("seed")},
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


def _find(runs: list[Run], variant: str, bins: int | None) -> Run | None:
    matches = [r for r in runs if r.variant == variant and r.bins == bins]
    return matches[-1] if matches else None


def paper_numbers() -> dict[str, Any]:
    return yaml.safe_load(PAPER_NUMBERS.read_text()) if PAPER_NUMBERS.is_file() else {}


def _row(label: str, source: str, values: dict[str, Any], cols, run: Run | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"row": label, "source": source, "run": str(run.path) if run else None}
    for col, _ in cols:
        row[col] = values.get(col)
    return row


def _ours(run: Run | None, prefix: str, cols) -> dict[str, Any]:
    return {col: (run.metrics.get(f"{prefix}{col}") if run else None) for col, _ in cols}


def _diff(ours: dict[str, Any], paper: dict[str, Any], cols) -> dict[str, Any]:
    return {
        col: ours[col] - paper[col] if ours.get(col) is not None and paper.get(col) is not None else None
        for col, _ in cols
    }


def _compared(label, paper, ours, run, cols, comparable: bool) -> list[dict[str, Any]]:
    """The paper's row, ours and (on the paper's dataset) the difference."""
    rows = [_row(label, "paper", paper, cols), _row(label, "ours", ours, cols, run)]
    if comparable:
        rows.append(_row(label, DIFF, _diff(ours, paper, cols), cols))
    return rows


def table1(runs: list[Run], bins: int | None = None) -> tuple[list[dict[str, Any]], Run | None]:
    """Table 1 (NYU v2): the paper's rows, then our full model (soft) at K closest to 200."""
    paper = paper_numbers().get("table1", [])
    nyu = [r for r in runs if r.dataset in NYU]
    run = _find(nyu, "full", reference_bins(nyu, bins, 200))
    rows = [_row(p["method"], "paper", p, DEPTH_COLS) for p in paper if p["method"] != "ours"]
    theirs = next((p for p in paper if p["method"] == "ours"), {})
    rows += _compared("Li et al. (ours)", theirs, _ours(run, "soft/", DEPTH_COLS), run, DEPTH_COLS, True)
    return rows, run


def table2(runs: list[Run], bins: int | None = None) -> tuple[list[dict[str, Any]], Run | None]:
    """Table 2 (KITTI): the paper's rows, then our full model (soft) at K closest to 50, uncapped
    (our headline cap, 80 m) and capped at 50 m."""
    paper = paper_numbers().get("table2", [])
    kitti = [r for r in runs if r.dataset == "kitti"]
    run = _find(kitti, "full", reference_bins(kitti, bins, 50))
    rows = []
    for p in paper:
        cap = f" cap {p['cap']}m" if p.get("cap") else ""
        if p["method"] != "ours":
            rows.append(_row(p["method"] + cap, "paper", p, DEPTH_COLS))
            continue
        prefix = f"cap{p['cap']:g}/soft/" if p.get("cap") else "soft/"
        rows += _compared("Li et al. (ours)" + cap, p, _ours(run, prefix, DEPTH_COLS), run, DEPTH_COLS, True)
    return rows, run


def table3(runs: list[Run], bins: int | None) -> list[dict[str, Any]]:
    """Table 3: every variant of Sec. 5.1 and both decoders of the full model, at K = ``bins``."""
    paper = paper_numbers().get("table3", {})
    comparable = bool(runs) and runs[0].dataset in NYU
    rows = []
    for key, label, variant, decoder in TABLE3_ROWS:
        run = _find(runs, variant, bins) if bins is not None else None
        rows += _compared(
            label, paper.get(key) or {}, _ours(run, f"{decoder}/", TABLE3_COLS), run, TABLE3_COLS, comparable
        )
    return rows


def table4(runs: list[Run]) -> list[dict[str, Any]]:
    """Table 4: pixel accuracy of the bin labels and rel (soft) of the full model for every K."""
    paper = paper_numbers().get("table4", {})
    comparable = bool(runs) and runs[0].dataset in NYU
    counts = sorted({r.bins for r in runs if r.variant == "full"} | set(PAPER_BINS))
    rows = []
    for k in counts:
        run = _find(runs, "full", k)
        ours = {"pixel_acc": run.metrics.get("pixel_acc"), "abs_rel": run.metrics.get("soft/abs_rel")} if run else {}
        rows += _compared(k, paper.get(k) or {}, ours, run, TABLE4_COLS, comparable)
    return rows


def missing_runs(runs: list[Run]) -> list[str]:
    have = {(r.variant, r.bins) for r in runs}
    return [f"{v}-K{k}" for v in VARIANTS for k in PAPER_BINS if (v, k) not in have]


def _fmt(value: Any, source: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:+.3f}" if source == DIFF else f"{value:.3f}"
    return str(value)


def to_markdown(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str) -> str:
    lines = [
        "| " + " | ".join([first, ""] + [c[1] for c in cols]) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * len(cols)) + " |",
    ]
    for row in rows:
        cells = [str(row["row"]), row["source"]] + [_fmt(row[c[0]], row["source"]) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([first, "source"] + [c[0] for c in cols] + ["run"])
    for row in rows:
        writer.writerow(
            [row["row"], row["source"]] + ["" if row[c[0]] is None else row[c[0]] for c in cols] + [row["run"] or ""]
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
        cells += [_fmt(row[c[0]], row["source"]).replace("—", "--") for c in cols]
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


def build_report(folders: list[Path], out: Path, bins: int | None = None, split: str = "test") -> dict[str, Any]:
    """Collect the runs and write every table (md, csv, tex), the figures and ``report.md``."""
    runs, problems = collect_runs(folders, split)
    out.mkdir(parents=True, exist_ok=True)
    t1, run1 = table1(runs)
    t2, run2 = table2(runs)
    ablation = ablation_runs(runs)
    k = reference_bins(ablation, bins)
    t3, t4 = table3(ablation, k), table4(ablation)
    on = ablation[0].dataset if ablation else "no run"
    tables = (
        ("table1", t1, DEPTH_COLS, "method", f"Table 1, NYU Depth v2 ({_ours_caption(run1, 'NYU')})"),
        ("table2", t2, DEPTH_COLS, "method", f"Table 2, KITTI Eigen split ({_ours_caption(run2, 'KITTI')})"),
        ("table3", t3, TABLE3_COLS, "variant", f"Table 3, components (ours: {on}, K = {k}; paper: NYU v2)"),
        ("table4", t4, TABLE4_COLS, "bins", f"Table 4, number of bins, full model, soft (ours: {on}; paper: NYU v2)"),
    )
    files = {}
    lines = [f"# Report ({len(runs)} finished runs, {split} split)", ""]
    if not runs:
        lines += ["**No finished run was found** in " + ", ".join(str(f) for f in folders) + ".", ""]
    for name, rows, cols, first, caption in tables:
        for ext, text in (
            ("md", to_markdown(rows, cols, first)),
            ("csv", to_csv(rows, cols, first)),
            ("tex", to_latex(rows, cols, first, caption)),
        ):
            (out / f"{name}.{ext}").write_text(text + "\n")
            files[f"{name}.{ext}"] = out / f"{name}.{ext}"
        lines += [f"## {caption}", "", to_markdown(rows, cols, first), ""]
    if ablation and ablation[0].dataset not in NYU:
        lines += [f"The ablation runs are on `{on}`, the paper's on NYU v2: no difference is computed.", ""]
    full = _find(ablation, "full", k) if k is not None else None
    figures = {}
    if full is not None:
        for name, fn in (("fig6", figure6), ("fig7", figure7)):
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
    args = parser.parse_args(argv)
    result = build_report(args.folders, args.out or args.folders[0] / "report", args.bins, args.split)
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
