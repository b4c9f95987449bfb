"""The whole report of some sweep or run folders: every table in three formats, the figures and
``report.md``, from the runs' files alone."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depth_lightning.evaluation import bootstrap
from experiments.report.figures import figure6, figure7, figure_sparsification
from experiments.report.formats import card_text, paired_csv, paired_markdown, to_csv, to_latex, to_markdown
from experiments.report.runs import (
    NYU,
    PAPER_BINS,
    VARIANTS,
    Run,
    ablation_runs,
    collect_runs,
    find_run,
    missing_runs,
    reference_bins,
)
from experiments.report.statistics import augmentation_table, paired_table
from experiments.report.tables import (
    AUSE_COLS,
    DEPTH_COLS,
    TABLE3_COLS,
    TABLE4_COLS,
    check_protocols,
    table1,
    table2,
    table3,
    table4,
    uncertainty_table,
)

CELLS = (
    "Cells: the mean over seeds ± their standard deviation (n seeds) where several seeds ran, else the "
    "run's value with its 95 % bootstrap interval over test images."
)


@dataclass
class Table:
    """One table of the report: its file name, rows, columns, first column's title, caption, and the
    protocol card that heads it (``card_of``: the group of tables whose runs share one card)."""

    name: str
    rows: list[dict[str, Any]]
    cols: tuple[tuple[str, str], ...]
    first: str
    caption: str
    card_of: str | None


def _ours_caption(run: Run | None, what: str) -> str:
    return f"ours: {run.dataset}, K = {run.bins}, {run.path.name}" if run else f"ours: no {what} run in these folders"


def make_tables(runs: list[Run], ablation: list[Run], k: int | None) -> list[Table]:
    """Tables 1-4 and the uncertainty table of ``runs`` (Tables 3, 4 of the ``ablation`` runs at K = ``k``)."""
    t1, run1 = table1(runs)
    t2, run2 = table2(runs)
    on = ablation[0].dataset if ablation else "no run"
    return [
        Table("table1", t1, DEPTH_COLS, "method", f"Table 1, NYU Depth v2 ({_ours_caption(run1, 'NYU')})", "Table 1"),
        Table(
            "table2",
            t2,
            DEPTH_COLS,
            "method",
            f"Table 2, KITTI Eigen split ({_ours_caption(run2, 'KITTI')})",
            "Table 2",
        ),
        Table(
            "table3",
            table3(ablation, k),
            TABLE3_COLS,
            "variant",
            f"Table 3, components (ours: {on}, K = {k}; paper: NYU v2)",
            "Tables 3 and 4",
        ),
        Table(
            "table4",
            table4(ablation),
            TABLE4_COLS,
            "bins",
            f"Table 4, number of bins, full model, soft (ours: {on}; paper: NYU v2)",
            "Tables 3 and 4",
        ),
        Table(
            "uncertainty",
            uncertainty_table(ablation, k),
            AUSE_COLS,
            "variant",
            f"Uncertainty: AUSE (ours: {on}, K = {k}; 0 = perfect)",
            None,
        ),
    ]


def shared_cards(runs: list[Run], ablation: list[Run], mix_protocols: bool) -> tuple[dict[str, Any], list[str]]:
    """The protocol card each group of tables shares (refusing mixed protocols unless told), and notes."""
    cards, notes = {}, []
    for name, members in (
        ("Table 1", [r for r in runs if r.dataset in NYU]),
        ("Table 2", [r for r in runs if r.dataset == "kitti"]),
        ("Tables 3 and 4", ablation),
    ):
        cards[name], found = check_protocols(name, members, mix_protocols)
        notes += found
    return cards, notes


def write_table(table: Table, out: Path) -> dict[str, Path]:
    """``<name>.md``, ``.csv`` and ``.tex`` of ``table`` in ``out``."""
    files = {}
    for ext, text in (
        ("md", to_markdown(table.rows, table.cols, table.first)),
        ("csv", to_csv(table.rows, table.cols, table.first)),
        ("tex", to_latex(table.rows, table.cols, table.first, table.caption)),
    ):
        (out / f"{table.name}.{ext}").write_text(text + "\n")
        files[f"{table.name}.{ext}"] = out / f"{table.name}.{ext}"
    return files


def paired_section(paired: list[dict[str, Any]], on: str, k: int | None, resamples: int) -> list[str]:
    """The report's lines on Table 3's paired differences, and which of the paper's gaps they reproduce."""
    lines = [
        f"### Table 3, paired differences on the same test images (ours: {on}, K = {k})",
        "",
        "Seed-mean difference with its paired 95 % bootstrap interval over test images (the same image "
        f"draws on both sides, {resamples} resamples); `*`: the interval excludes 0. Below each row the "
        "paper's own gap (Table 3).",
        "",
        paired_markdown(paired),
        "",
    ]
    if on not in NYU:
        return [*lines, f"The runs are on `{on}`, not NYU v2: the paper's gaps show their direction only.", ""]
    reproduced = [
        f"{row['row']}: {', '.join(label for col, label in TABLE3_COLS if row['reproduced'][col])}"
        for row in paired
        if any(row["reproduced"].values())
    ]
    found = "; ".join(reproduced) if reproduced else "none"
    return [*lines, f"Paper's gaps reproduced beyond noise (same sign, interval excludes 0): {found}.", ""]


def write_figures(full: Run | None, out: Path) -> dict[str, Path]:
    """Fig. 6, Fig. 7 and the sparsification curves of the full model's run, where it wrote their data."""
    figures = {}
    if full is not None:
        for name, fn in (("fig6", figure6), ("fig7", figure7), ("sparsification", figure_sparsification)):
            written = fn(full, out / f"{name}.png")
            if written:
                figures[name] = written
    return figures


def augmentation_section(augmented: list[dict[str, Any]], out: Path, files: dict[str, Path]) -> list[str]:
    """The report's lines on extra augmentations against the paper's (``augmentation_paired.md`` / ``.csv``)."""
    if not augmented:
        return []
    (out / "augmentation_paired.md").write_text(paired_markdown(augmented, paper_gap=False) + "\n")
    (out / "augmentation_paired.csv").write_text(paired_csv(augmented))
    files["augmentation_paired.md"] = out / "augmentation_paired.md"
    return [
        "## Extra augmentations against the paper's, paired on the same test images",
        "",
        "Seed-mean difference (with the extra - the paper's alone, soft decoder) and its paired 95 % bootstrap "
        "interval over test images; * marks an interval that excludes 0.",
        "",
        paired_markdown(augmented, paper_gap=False),
        "",
    ]


def build_report(
    folders: list[Path],
    out: Path,
    bins: int | None = None,
    split: str = "test",
    mix_protocols: bool = False,
    resamples: int = bootstrap.RESAMPLES,
) -> dict[str, Any]:
    """Collect the runs and write every table (md, csv, tex), the figures and ``report.md``.

    Raises :class:`~experiments.report.tables.MixedProtocols` when one table would hold runs of
    different evaluation protocols (unless ``mix_protocols``); nothing is written then."""
    every, problems = collect_runs(folders, split)
    runs = [r for r in every if r.augmentation == "paper"]  # the paper's tables: the paper's augmentation
    augmented = augmentation_table(ablation_runs(every), problems, resamples)
    ablation = ablation_runs(runs)
    k = reference_bins(ablation, bins)
    cards, notes = shared_cards(runs, ablation, mix_protocols)
    problems += notes
    out.mkdir(parents=True, exist_ok=True)
    tables = make_tables(runs, ablation, k)
    paired = paired_table(ablation, k, problems, resamples)
    on = ablation[0].dataset if ablation else "no run"
    method = next((r.extra.get("intervals") for r in runs if r.extra.get("intervals")), None)
    files: dict[str, Path] = {}
    lines = [f"# Report ({len(every)} finished runs, {split} split)", ""]
    if not runs:
        lines += ["**No finished run was found** in " + ", ".join(str(f) for f in folders) + ".", ""]
    lines += [CELLS, ""]
    for table in tables:
        files.update(write_table(table, out))
        lines += [f"## {table.caption}", "", to_markdown(table.rows, table.cols, table.first), ""]
        if table.card_of is not None:
            lines += [card_text(cards[table.card_of], method), ""]
        if table.name == "table3" and paired:
            (out / "table3_paired.md").write_text(paired_markdown(paired) + "\n")
            (out / "table3_paired.csv").write_text(paired_csv(paired))
            files["table3_paired.md"] = out / "table3_paired.md"
            lines += paired_section(paired, on, k, resamples)
    lines += augmentation_section(augmented, out, files)
    if ablation and on not in NYU:
        lines += [f"The ablation runs are on `{on}`, the paper's on NYU v2: no difference is computed.", ""]
    figures = write_figures(find_run(ablation, "full", k) if k is not None else None, out)
    lines += closing_lines(figures, missing := missing_runs(ablation), problems)
    (out / "report.md").write_text("\n".join(lines))
    result = {t.name: t.rows for t in tables}
    result.update(runs=every, problems=problems, missing=missing, paired=paired, cards=cards, figures=figures)
    result["augmentation"] = augmented
    result.update(files=files, bins=k, report=out / "report.md")
    return result


def closing_lines(figures: dict[str, Path], missing: list[str], problems: list[str]) -> list[str]:
    """The report's last sections: the figures, the runs missing from the paper's ablation, problems."""
    lines = []
    if figures:
        lines += ["## Figures", ""] + [f"![{n}]({p.name})" for n, p in figures.items()] + [""]
    if missing:
        lines += [f"## Missing from the paper's {len(VARIANTS) * len(PAPER_BINS)}-run ablation", ""]
        lines += [", ".join(missing), ""]
    if problems:
        lines += ["## Problems", ""] + [f"- {p}" for p in problems] + [""]
    return lines
