"""One table across datasets: a row per dataset (its protocol, alignment, images), a column per metric
with its bootstrap interval; written as Markdown and CSV, drawn as a figure of δ1, logged to W&B."""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from depth_lightning.core.files import save_atomic
from depth_lightning.evaluation.metrics import METRIC_NAMES

LABELS = {"d1": "δ1", "d2": "δ2", "d3": "δ3", "abs_rel": "abs rel", "sq_rel": "sq rel", "rmse": "rmse"}
LABELS |= {"rmse_log": "rmse log", "log10": "log10", "silog": "silog"}
HIGHER_IS_BETTER = ("d1", "d2", "d3")


def benchmark_row(dataset: str, scored: str, values: Mapping[str, float], found: Mapping[str, Any]) -> dict[str, Any]:
    """A dataset's row: the ``scored`` prediction's metrics with their intervals, from what
    :func:`~depth_lightning.evaluation.results.record_test` returned, and what its card says."""
    card = found["protocol"]
    intervals = found["test_intervals"]
    return {
        "dataset": dataset,
        "protocol": card.get("protocol_name") or "default",
        "follows": card.get("follows", ""),
        "alignment": card.get("alignment", {}).get("mode", "none"),
        "images": card.get("frames_evaluated"),
        "level": found["intervals"]["level"],
        **{m: values[f"{scored}/{m}"] for m in METRIC_NAMES},
        **{f"{m}_interval": intervals.get(f"{scored}/{m}") for m in METRIC_NAMES},
    }


def _cell(row: Mapping[str, Any], metric: str) -> str:
    low, high = row[f"{metric}_interval"] or (float("nan"), float("nan"))
    return f"{row[metric]:.4f} [{low:.4f}, {high:.4f}]"


def markdown(rows: list[dict[str, Any]], title: str, missing: Mapping[str, str]) -> str:
    """The table in Markdown, with the datasets not evaluated and why."""
    level = 100 * rows[0]["level"] if rows else 95
    head = ["dataset", "protocol", "alignment", "images", *(LABELS[m] for m in METRIC_NAMES)]
    lines = [
        f"# {title}",
        "",
        f"Each cell: the value [{level:g} % bootstrap interval over images]. Higher is better for δ1-3, lower for "
        "the others. Each dataset's protocol card is at the head of its per_image.csv.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in rows:
        cells = [r["dataset"], r["protocol"], r["alignment"], str(r["images"]), *(_cell(r, m) for m in METRIC_NAMES)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Protocols:", ""] + [f"- {r['dataset']}: {r['follows'] or 'as its config states'}" for r in rows]
    if missing:
        lines += ["", "Not evaluated:", ""] + [f"- {name}: {why}" for name, why in missing.items()]
    return "\n".join(lines) + "\n"


# The flat table (CSV, W&B): a dataset's columns, then each metric's value and interval bounds.
FLAT_COLUMNS = ["dataset", "protocol", "alignment", "images"] + [
    c for m in METRIC_NAMES for c in (m, f"{m}_low", f"{m}_high")
]


def flat_row(row: Mapping[str, Any]) -> list[Any]:
    """A :func:`benchmark_row` in the order of :data:`FLAT_COLUMNS` (no interval: None bounds)."""
    bounds = [v for m in METRIC_NAMES for v in (row[m], *(row[f"{m}_interval"] or (None, None)))]
    return [row["dataset"], row["protocol"], row["alignment"], row["images"], *bounds]


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per dataset: each metric's value, low and high (float64, as repr writes them)."""

    def write(p: Path) -> None:
        with p.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FLAT_COLUMNS)
            for r in rows:
                writer.writerow([repr(v) if isinstance(v, float) else v for v in flat_row(r)])

    save_atomic(path, write)


def d1_figure(path: Path, rows: list[dict[str, Any]], title: str) -> None:
    """δ1 of each dataset with its interval, as a PNG."""
    fig = Figure(figsize=(1.2 + 0.9 * len(rows), 3.4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = [r["d1"] for r in rows]
    low = [r["d1"] - (r["d1_interval"] or (r["d1"],))[0] for r in rows]
    high = [(r["d1_interval"] or (0, r["d1"]))[1] - r["d1"] for r in rows]
    ax.errorbar(range(len(rows)), values, yerr=[low, high], fmt="o", capsize=4)
    ax.set_xticks(range(len(rows)), [f"{r['dataset']}\n({r['alignment']})" for r in rows], fontsize=8)
    ax.set_ylabel("δ1 (higher is better)")
    ax.set_ylim(0, 1.02)
    ax.set_title(title, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    save_atomic(path, lambda p: fig.savefig(p, format="png", dpi=110))


def log_to_wandb(rows: list[dict[str, Any]], figure: Path, folder: Path, name: str) -> str:
    """The table (numbers and interval bounds) and the figure as one W&B run; returns its folder."""
    import wandb

    os.environ.setdefault("WANDB_MODE", "offline")
    run = wandb.init(project="depth_lightning", job_type="benchmark", name=name, dir=str(folder))
    table = wandb.Table(columns=FLAT_COLUMNS, data=[flat_row(r) for r in rows])
    run.log({"benchmark/table": table, "benchmark/d1": wandb.Image(str(figure))})
    folder = run.dir
    run.finish()
    return str(Path(folder).parent)
