"""What a test leaves behind per image: ``per_image.csv`` (every metric of every image, both decoders
and the baselines; its column means are the table when the protocol aggregates per image),
``per_image_sums.npz`` (each image's sums: what intervals and paired comparisons resample), and the
bootstrap interval of every reported number."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_lightning import bootstrap
from depth_lightning.files import save_atomic, write_json
from depth_lightning.metrics import METRIC_NAMES, SUMS, metrics_from_sums
from depth_lightning.sparsification import per_image_ause, summarise

SUMS_FILE = "per_image_sums.npz"
CSV_FILE = "per_image.csv"
CURVES_FILE = "sparsification.json"


@dataclass
class TestRecord:
    """Per-image results of one test.

    ``sums[key] = (ids, rows)``: key ``soft``, ``hard``, ``constant``, ``cap50/soft``...; rows (N, len(SUMS))
    in id order, images without a valid pixel under that key's cap left out. ``bin_hits``: (ids, rows of
    (correct bin labels, labelled pixels)). ``sparsification[decoder]``: per-image curves
    (:class:`~depth_lightning.sparsification.Sparsification`). ``frames``: id -> frame name."""

    aggregation: str
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    bin_hits: tuple[np.ndarray, np.ndarray] | None = None
    sparsification: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    frames: dict[int, str] = field(default_factory=dict)
    lines: dict[int, int | None] = field(default_factory=dict)

    def image_ids(self) -> list[int]:
        return sorted({int(i) for ids, _ in self.sums.values() for i in ids})

    def ause(self, decoder: str) -> dict[str, float]:
        """The mean over images of each image's AUSE (abs rel, RMSE) of ``decoder``."""
        curves = self.sparsification.get(decoder) or {"ids": []}
        if len(curves["ids"]) == 0:
            return {}
        return {k: float(v.mean()) for k, v in per_image_ause(curves).items()}

    def intervals(
        self, resamples: int = bootstrap.RESAMPLES, seed: int = bootstrap.SEED, level: float = bootstrap.LEVEL
    ) -> dict[str, list[float]]:
        """``{"soft/abs_rel": [low, high], ..., "pixel_acc": [...], "soft/ause_rmse": [...]}``: the
        bootstrap interval over test images of every number the test reports."""
        out: dict[str, list[float]] = {}
        for key, (ids, rows) in self.sums.items():
            if len(ids) == 0:
                continue
            low_high = bootstrap.interval(
                bootstrap.depth_statistic(rows, self.aggregation), len(ids), resamples, seed, level
            )
            out.update({f"{key}/{m}": low_high[:, j].tolist() for j, m in enumerate(METRIC_NAMES)})
        if self.bin_hits is not None and len(self.bin_hits[0]):
            hits = self.bin_hits[1]
            out["pixel_acc"] = bootstrap.interval(bootstrap.ratio_statistic(hits), len(hits), resamples, seed, level)[
                :, 0
            ].tolist()
        for dec, curves in self.sparsification.items():
            if len(curves["ids"]) == 0:
                continue
            for name, values in per_image_ause(curves).items():
                low_high = bootstrap.interval(bootstrap.mean_statistic(values), len(values), resamples, seed, level)
                out[f"{dec}/{name}"] = low_high[:, 0].tolist()
        return out

    def columns(self) -> list[str]:
        cols = ["id", "frame", "list_line"]
        for key in self.sums:
            prefix = _cap_prefix(key)
            if f"{prefix}pixels" not in cols:
                cols.append(f"{prefix}pixels")
            cols += [f"{key}/{m}" for m in METRIC_NAMES]
        for dec in self.sparsification:
            cols += [f"{dec}/ause_abs_rel", f"{dec}/ause_rmse"]
        if self.bin_hits is not None:
            cols += ["bin_correct", "bin_pixels"]
        return cols

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image (``columns()``); a value an image does not have (no valid pixel under a
        cap) is absent."""
        table: dict[int, dict[str, Any]] = {
            i: {"id": i, "frame": self.frames.get(i, ""), "list_line": self.lines.get(i)} for i in self.image_ids()
        }
        for key, (ids, rows) in self.sums.items():
            prefix = _cap_prefix(key)
            values = metrics_from_sums(torch.from_numpy(rows)).numpy() if len(ids) else np.zeros((0, 0))
            for i, sums, metrics in zip(ids, rows, values, strict=True):
                table[int(i)][f"{prefix}pixels"] = int(sums[0])
                table[int(i)].update({f"{key}/{m}": float(v) for m, v in zip(METRIC_NAMES, metrics, strict=True)})
        for dec, curves in self.sparsification.items():
            for name, values in per_image_ause(curves).items() if len(curves["ids"]) else ():
                for i, v in zip(curves["ids"], values, strict=True):
                    table.setdefault(int(i), {"id": int(i)})[f"{dec}/{name}"] = float(v)
        if self.bin_hits is not None:
            for i, (hit, total) in zip(*self.bin_hits, strict=True):
                table.setdefault(int(i), {"id": int(i)}).update(bin_correct=int(hit), bin_pixels=int(total))
        return [table[i] for i in sorted(table)]


def _cap_prefix(key: str) -> str:
    """``"cap50/"`` of ``"cap50/soft"``; ``""`` for the headline cap's keys."""
    return key.rsplit("/", 1)[0] + "/" if "/" in key else ""


def write_per_image(folder: Path, record: TestRecord, card: dict[str, Any]) -> Path:
    """``per_image.csv`` (protocol card in ``#`` lines at its head) and ``per_image_sums.npz`` in ``folder``."""
    folder = Path(folder)
    columns = record.columns()
    note = (
        "each column's mean over its images is the reported value"
        if record.aggregation == "per_image"
        else "the reported values pool the pixels of all images (aggregation pooled): column means differ"
    )

    def write_csv(path: Path) -> None:
        with path.open("w", newline="") as f:
            f.write(f"# protocol: {json.dumps(card, sort_keys=True)}\n")
            f.write(f"# {note}; pixel_acc = sum(bin_correct) / sum(bin_pixels)\n")
            writer = csv.DictWriter(f, fieldnames=columns, restval="")
            writer.writeheader()
            for row in record.rows():
                writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})

    arrays: dict[str, np.ndarray] = {"aggregation": np.array(record.aggregation), "sum_names": np.array(SUMS)}
    for key, (ids, rows) in record.sums.items():
        arrays[f"ids:{key}"], arrays[f"sums:{key}"] = ids, rows
    save_atomic(folder / SUMS_FILE, lambda p: np.savez(p, **arrays))
    save_atomic(folder / CSV_FILE, write_csv)
    return folder / CSV_FILE


def read_sums(folder: Path) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``(aggregation, {key: (ids, sums)})`` from a run folder's ``per_image_sums.npz``."""
    with np.load(Path(folder) / SUMS_FILE) as data:
        keys = [k.split(":", 1)[1] for k in data.files if k.startswith("sums:")]
        return str(data["aggregation"]), {k: (data[f"ids:{k}"], data[f"sums:{k}"]) for k in keys}


def read_per_image_csv(path: Path) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """``(protocol card, rows)`` of a ``per_image.csv``."""
    card: dict[str, Any] = {}
    lines = Path(path).read_text().splitlines()
    body = [ln for ln in lines if not ln.startswith("#")]
    for ln in lines:
        if ln.startswith("# protocol: "):
            card = json.loads(ln[len("# protocol: ") :])
    return card, list(csv.DictReader(body))


def record_test(
    module: Any,
    datamodule: Any,
    folder: Path,
    loggers: list[Any],
    intervals: dict[str, Any] | None = None,
    title: str = "Test split",
) -> dict[str, Any]:
    """After ``trainer.test``: the test's float64 values, protocol card and bootstrap intervals
    (returned for ``metrics.json``), ``per_image.csv`` and ``per_image_sums.npz`` in ``folder``, the
    table printed with its intervals, and card and intervals in W&B's summary. Rank 0 only."""
    from depth_lightning.models.bins import DECODERS
    from depth_lightning.tables import format_table

    method = bootstrap.settings(intervals)
    record: TestRecord = module.test_record
    card = datamodule.protocol_card("test", module.output_size)
    card["frames_evaluated"] = module.images_evaluated
    card["frames_left_out"] = len(module.empty_frames.get("test", []))
    ci = record.intervals(method["resamples"], method["seed"], method["level"])
    write_per_image(folder, record, card)
    curves = {dec: summarise(c) for dec, c in record.sparsification.items() if len(c["ids"])}
    write_json(folder / CURVES_FILE, curves)
    values = module.final_values["test"]
    names = [*DECODERS, *(k for k in record.sums if "/" not in k and k not in DECODERS)]
    # one row per metric, one column per decoder or baseline: four columns stay readable with intervals
    rows = {m: {n: values.get(f"{n}/{m}", float("nan")) for n in names} for m in METRIC_NAMES}
    bounds = {m: {n: ci.get(f"{n}/{m}") for n in names} for m in METRIC_NAMES}
    level = f"{100 * method['level']:g} %"
    print(f"\n{title} ({datamodule.name}, {module.images_evaluated} images; [{level} bootstrap interval over images]):")
    print(format_table(rows, names, first="metric", intervals=bounds))
    acc = ci.get("pixel_acc", [float("nan")] * 2)
    print(f"pixel accuracy of the bin labels: {values.get('pixel_acc', float('nan')):.4f} [{acc[0]:.4f}, {acc[1]:.4f}]")
    for dec in DECODERS:
        if f"{dec}/ause_abs_rel" in values:
            print(
                f"uncertainty ({dec}): AUSE abs rel {values[f'{dec}/ause_abs_rel']:.4f}, "
                f"AUSE rmse {values[f'{dec}/ause_rmse']:.4f} (0: it orders pixels as their errors)"
            )
    print(f"per-image results: {folder / CSV_FILE}")
    summary = {"protocol": card, **{f"test_ci/{k}": v for k, v in ci.items()}}
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    from depth_lightning.visualize import sparsification_figure

    figure = sparsification_figure(curves, datamodule.name) if curves else None
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(summary)
            if figure is not None:
                logger.log_image(key="test/sparsification", images=[figure], caption=["dashed: oracle"])
        elif isinstance(logger, TensorBoardLogger) and figure is not None:
            logger.experiment.add_image("test/sparsification", figure, dataformats="HWC")
    return {"protocol": card, "test_intervals": ci, "intervals": method, "test_values": values}
