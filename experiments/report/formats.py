"""A report's tables as text: Markdown, CSV and LaTeX, the paired table, the protocol card."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from experiments.report.tables import DIFF, TABLE3_COLS


def paired_markdown(rows: list[dict[str, Any]], paper_gap: bool = True) -> str:
    head = ["comparison", "seeds", "images", *(c[1] for c in TABLE3_COLS)]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(["---"] * 3 + ["---:"] * len(TABLE3_COLS)) + " |"]
    for row in rows:
        cells = []
        for col, _ in TABLE3_COLS:
            low, high = row["ci"][col]
            mark = "*" if row["beyond_noise"][col] else ""
            cells.append(f"{row['ours'][col]:+.3f} [{low:+.3f}, {high:+.3f}]{mark}")
        lines.append("| " + " | ".join([row["row"], str(row["seeds"]), str(row["images"]), *cells]) + " |")
        if paper_gap:
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
