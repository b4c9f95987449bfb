"""What a test leaves behind, the same for training's test, ``evaluate`` and ``score``: the per-image
files, a bootstrap interval for every number, the sparsification curves, and the table printed with
its intervals."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from depth_lightning.core.files import write_json
from depth_lightning.evaluation import bootstrap
from depth_lightning.evaluation.evaluator import EvaluationResult
from depth_lightning.evaluation.metrics import METRIC_NAMES
from depth_lightning.evaluation.per_image import CSV_FILE, CURVES_FILE, write_per_image
from depth_lightning.evaluation.sparsification import summarise
from depth_lightning.evaluation.tables import format_table
from depth_lightning.models.bins import DECODERS


def curves(result: EvaluationResult) -> dict[str, Any]:
    """Each decoder's mean sparsification curves and AUSE (``sparsification.json``)."""
    return {dec: summarise(c) for dec, c in result.record.sparsification.items() if len(c["ids"])}


def save_test(result: EvaluationResult, folder: Path, settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``per_image.csv`` (with the protocol card), ``per_image_sums.npz`` and, where the uncertainty was
    evaluated, ``sparsification.json`` in ``folder``. Returns what ``metrics.json`` records of the test:
    the card, every number's interval and the interval method."""
    method = bootstrap.settings(settings)
    intervals = result.intervals(method)
    card = result.card or {}
    write_per_image(Path(folder), result.record, card)
    found = curves(result)
    if found:
        write_json(Path(folder) / CURVES_FILE, found)
    return {
        "protocol": card,
        "test_intervals": intervals,
        "intervals": method,
        "per_image": str(Path(folder) / CSV_FILE),
    }


def format_test_table(result: EvaluationResult, intervals: Mapping[str, list[float]], title: str, level: float) -> str:
    """The test's numbers as printed: one row per metric, one column per decoder or baseline, each cell
    with its interval; pixel accuracy and the uncertainty's AUSE below."""
    names = list(result.scored)
    rows = {m: {n: result.values.get(f"{n}/{m}", float("nan")) for n in names} for m in METRIC_NAMES}
    bounds = {m: {n: intervals.get(f"{n}/{m}") for n in names} for m in METRIC_NAMES}
    lines = [
        f"\n{title} ({result.dataset}, {result.images} images; [{100 * level:g} % bootstrap interval over images]):",
        format_table(rows, names, first="metric", intervals=bounds),
    ]
    if "pixel_acc" in result.values:
        low, high = intervals.get("pixel_acc", [float("nan")] * 2)
        lines.append(f"pixel accuracy of the bin labels: {result.values['pixel_acc']:.4f} [{low:.4f}, {high:.4f}]")
    for dec in DECODERS:
        if f"{dec}/ause_abs_rel" in result.values:
            lines.append(
                f"uncertainty ({dec}): AUSE abs rel {result.values[f'{dec}/ause_abs_rel']:.4f}, "
                f"AUSE rmse {result.values[f'{dec}/ause_rmse']:.4f} (0: it orders pixels as their errors)"
            )
    return "\n".join(lines)


def record_test(
    result: EvaluationResult, folder: Path, settings: Mapping[str, Any] | None = None, title: str = "Test split"
) -> dict[str, Any]:
    """:func:`save_test`, then the table printed with the files' place: what every entry point that
    tests does. Returns what ``metrics.json`` records (``test_values``: the float64 numbers)."""
    saved = save_test(result, folder, settings)
    print(format_test_table(result, saved["test_intervals"], title, saved["intervals"]["level"]))
    print(f"per-image results: {saved['per_image']}")
    return {**saved, "test_values": dict(result.values)}
