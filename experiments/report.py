"""The paper's Tables 3 and 4 and Figures 6 and 7 from finished runs (no W&B needed).

    python -m experiments.report <sweep or run folder>... [--out DIR] [--bins K] [--split test|val]

Reads the ``metrics.json`` every run writes (plus ``bin_distributions.npz`` and
``confusion_val.npy``), works on partial sweeps, and says which runs are missing or failed.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

PAPER_NUMBERS = Path(__file__).with_name("paper_numbers.yaml")
VARIANTS = ("full", "no_dilation", "no_concat")
PAPER_BINS = (50, 100, 200, 500, 1000)
TABLE3_ROWS = (  # (row key, label, variant, decoder)
    ("no_dilation", "No dilation", "no_dilation", "soft"),
    ("no_concat", "No concat layer", "no_concat", "soft"),
    ("hard_max", "Hard-max inference", "full", "hard"),
    ("soft_weighted_sum", "Soft-weighted-sum (full model)", "full", "soft"),
)
TABLE3_COLS = (
    ("d1", "δ<1.25"),
    ("d2", "δ<1.25²"),
    ("d3", "δ<1.25³"),
    ("abs_rel", "rel"),
    ("log10", "log10"),
    ("rmse", "rms"),
)
TABLE4_COLS = (("pixel_acc", "pixel accuracy"), ("abs_rel", "rel"))


@dataclass
class Run:
    path: Path
    task: str
    variant: str
    bins: int
    metrics: dict[str, float]
    split: str
    status: str
    extra: dict[str, Any] = field(default_factory=dict)


def _variant(model: dict[str, Any]) -> str:
    dilated, fusion = model.get("dilated", True), model.get("fusion", True)
    return {(True, True): "full", (False, True): "no_dilation", (True, False): "no_concat"}.get(
        (bool(dilated), bool(fusion)), "no_dilation_no_concat"
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
            runs.append(
                Run(
                    run_dir,
                    cfg.get("task_name", "?"),
                    _variant(cfg.get("model", {})),
                    int(cfg.get("model", {}).get("num_bins", 0)),
                    data[chosen],
                    chosen,
                    status,
                )
            )
    tasks = sorted({r.task for r in runs})
    if len(tasks) > 1:
        problems.append(f"runs of different experiments are mixed: {', '.join(tasks)} (tables pool them)")
    return runs, problems


def reference_bins(runs: list[Run], wanted: int | None = None) -> int | None:
    """The bin count of Table 3: ``wanted``, else the full model's count closest to the paper's 200."""
    counts = sorted({r.bins for r in runs if r.variant == "full"} or {r.bins for r in runs})
    if not counts:
        return None
    if wanted is not None:
        return wanted
    return min(counts, key=lambda k: (abs(k - 200), k))


def _find(runs: list[Run], variant: str, bins: int) -> Run | None:
    matches = [r for r in runs if r.variant == variant and r.bins == bins]
    return matches[-1] if matches else None


def _paper() -> dict[str, Any]:
    return yaml.safe_load(PAPER_NUMBERS.read_text()) if PAPER_NUMBERS.is_file() else {}


def table3(runs: list[Run], bins: int | None) -> list[dict[str, Any]]:
    paper = _paper().get("table3", {})
    rows = []
    for key, label, variant, decoder in TABLE3_ROWS:
        run = _find(runs, variant, bins) if bins is not None else None
        row: dict[str, Any] = {"row": label, "run": str(run.path) if run else None}
        for col, _ in TABLE3_COLS:
            row[col] = run.metrics.get(f"{decoder}/{col}") if run else None
            row[f"paper_{col}"] = (paper.get(key) or {}).get(col)
        rows.append(row)
    return rows


def table4(runs: list[Run]) -> list[dict[str, Any]]:
    paper = _paper().get("table4", {})
    counts = sorted({r.bins for r in runs if r.variant == "full"} | set(PAPER_BINS))
    rows = []
    for k in counts:
        run = _find(runs, "full", k)
        row: dict[str, Any] = {"row": k, "run": str(run.path) if run else None}
        row["pixel_acc"] = run.metrics.get("pixel_acc") if run else None
        row["abs_rel"] = run.metrics.get("soft/abs_rel") if run else None
        for col, _ in TABLE4_COLS:
            row[f"paper_{col}"] = (paper.get(k) or {}).get(col)
        rows.append(row)
    return rows


def missing_runs(runs: list[Run]) -> list[str]:
    have = {(r.variant, r.bins) for r in runs}
    return [f"{v}-K{k}" for v in VARIANTS for k in PAPER_BINS if (v, k) not in have]


def _fmt(value: Any) -> str:
    return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _columns(cols: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    out = []
    for key, label in cols:
        out += [(key, f"{label} (ours)"), (f"paper_{key}", f"{label} (paper)")]
    return out


def to_markdown(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str) -> str:
    columns = _columns(cols)
    lines = [
        "| " + " | ".join([first] + [c[1] for c in columns]) + " |",
        "| " + " | ".join(["---"] + ["---:"] * len(columns)) + " |",
    ]
    for row in rows:
        lines.append("| " + " | ".join([str(row["row"])] + [_fmt(row[c[0]]) for c in columns]) + " |")
    return "\n".join(lines)


def to_csv(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    columns = _columns(cols)
    writer.writerow([first] + [c[0] for c in columns] + ["run"])
    for row in rows:
        writer.writerow([row["row"]] + ["" if row[c[0]] is None else row[c[0]] for c in columns] + [row["run"] or ""])
    return buf.getvalue()


def to_latex(rows: list[dict[str, Any]], cols: tuple[tuple[str, str], ...], first: str, caption: str) -> str:
    columns = _columns(cols)
    esc = {"δ": r"$\delta$", "²": r"$^2$", "³": r"$^3$", "<": r"$<$"}

    def tex(s: str) -> str:
        for a, b in esc.items():
            s = s.replace(a, b)
        return s

    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\begin{tabular}{l" + "r" * len(columns) + "}",
        r"\toprule",
        " & ".join([first] + [tex(c[1]) for c in columns]) + r" \\",
        r"\midrule",
    ]
    for row in rows:
        lines.append(" & ".join([str(row["row"])] + [_fmt(row[c[0]]).replace("—", "--") for c in columns]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{caption}}}", r"\end{table}"]
    return "\n".join(lines)


def figure6(run: Run, out: Path) -> Path | None:
    """Fig. 6 from a run's ``bin_distributions.npz``."""
    from PIL import Image

    from depth_lightning.visualize import distribution_figure

    path = run.path / "bin_distributions.npz"
    if not path.is_file():
        return None
    data = np.load(path)
    Image.fromarray(distribution_figure(data["steps"], data["probs"], data["labels"], data["log_centres"])).save(out)
    return out


def figure7(run: Run, out: Path) -> Path | None:
    """Fig. 7 from a run's ``confusion_val.npy``."""
    from PIL import Image

    from depth_lightning.visualize import confusion_figure

    path = run.path / "confusion_val.npy"
    if not path.is_file():
        return None
    Image.fromarray(confusion_figure(np.load(path))).save(out)
    return out


def build_report(folders: list[Path], out: Path, bins: int | None = None, split: str = "test") -> dict[str, Any]:
    """Collect the runs and write every table (md, csv, tex), the figures and ``report.md``."""
    runs, problems = collect_runs(folders, split)
    out.mkdir(parents=True, exist_ok=True)
    k = reference_bins(runs, bins)
    t3, t4 = table3(runs, k), table4(runs)
    files = {}
    for name, rows, cols, first, caption in (
        ("table3", t3, TABLE3_COLS, "variant", f"Ablation of the architecture and the inference rule (K = {k})."),
        ("table4", t4, TABLE4_COLS, "bins", "Number of bins vs pixel accuracy and rel (full model, soft)."),
    ):
        for ext, text in (
            ("md", to_markdown(rows, cols, first)),
            ("csv", to_csv(rows, cols, first)),
            ("tex", to_latex(rows, cols, first, caption)),
        ):
            (out / f"{name}.{ext}").write_text(text + "\n")
            files[f"{name}.{ext}"] = out / f"{name}.{ext}"
    full = _find(runs, "full", k) if k is not None else None
    figures = {}
    if full is not None:
        for name, fn in (("fig6", figure6), ("fig7", figure7)):
            written = fn(full, out / f"{name}.png")
            if written:
                figures[name] = written
    missing = missing_runs(runs)
    lines = [f"# Ablation report ({len(runs)} finished runs, {split} split)", ""]
    if not runs:
        lines += ["**No finished run was found** in " + ", ".join(str(f) for f in folders) + ".", ""]
    lines += [
        f"## Table 3 (K = {k})",
        "",
        to_markdown(t3, TABLE3_COLS, "variant"),
        "",
        "## Table 4",
        "",
        to_markdown(t4, TABLE4_COLS, "bins"),
        "",
    ]
    if figures:
        lines += ["## Figures", ""] + [f"![{n}]({p.name})" for n, p in figures.items()] + [""]
    if missing:
        lines += ["## Missing from the paper's 15-run sweep", "", ", ".join(missing), ""]
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    (out / "report.md").write_text("\n".join(lines))
    return {
        "runs": runs,
        "problems": problems,
        "missing": missing,
        "table3": t3,
        "table4": t4,
        "figures": figures,
        "files": files,
        "bins": k,
        "report": out / "report.md",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="sweep (multirun) or run folders")
    parser.add_argument("--out", type=Path, default=None, help="default: <first folder>/report")
    parser.add_argument("--bins", type=int, default=None, help="K of Table 3 (default: closest to 200)")
    parser.add_argument("--split", choices=["test", "val"], default="test")
    args = parser.parse_args(argv)
    result = build_report(args.folders, args.out or args.folders[0] / "report", args.bins, args.split)
    print(result["report"].read_text())
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
