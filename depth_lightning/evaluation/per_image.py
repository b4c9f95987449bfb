"""Per-image results: the record an evaluation keeps of every image, and its files.

``per_image.csv`` holds every metric of every image (both decoders and the baselines; its column means
are the table when the protocol aggregates per image), ``per_image_sums.npz`` each image's sums (what
intervals and paired comparisons resample); :meth:`PerImageRecord.intervals` gives the bootstrap
interval of every reported number."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from depth_lightning.core.files import save_atomic
from depth_lightning.evaluation import bootstrap
from depth_lightning.evaluation.keys import MetricKey
from depth_lightning.evaluation.metrics import METRIC_NAMES, SUMS, metrics_from_sums
from depth_lightning.evaluation.sparsification import per_image_ause

SUMS_FILE = "per_image_sums.npz"
CSV_FILE = "per_image.csv"
CURVES_FILE = "sparsification.json"


@dataclass
class PerImageRecord:
    """Per-image results of one evaluation (:class:`~depth_lightning.evaluation.evaluator.Evaluator`).

    ``sums[key] = (ids, rows)``: key ``soft``, ``hard``, ``constant``, ``cap50/soft``...; rows (N, len(SUMS))
    in id order, images without a valid pixel under that key's cap left out. ``bin_hits``: (ids, rows of
    (correct bin labels, labelled pixels)). ``sparsification[decoder]``: per-image curves
    (:class:`~depth_lightning.evaluation.sparsification.Sparsification`). ``frames``: id -> frame name."""

    aggregation: str
    sums: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    bin_hits: tuple[np.ndarray, np.ndarray] | None = None
    sparsification: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    frames: dict[int, str] = field(default_factory=dict)
    lines: dict[int, int | None] = field(default_factory=dict)
    fits: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # key -> (ids, (scale, shift))

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
            scope = MetricKey.parse(key, scope=True)
            out.update({scope.of(m): low_high[:, j].tolist() for j, m in enumerate(METRIC_NAMES)})
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
                out[str(MetricKey(name, dec))] = low_high[:, 0].tolist()
        return out

    def columns(self) -> list[str]:
        cols = ["id", "frame", "list_line"]
        for key in self.sums:
            scope = MetricKey.parse(key, scope=True)
            if (pixels := str(MetricKey("pixels", cap=scope.cap))) not in cols:
                cols.append(pixels)
            cols += [scope.of(m) for m in (*METRIC_NAMES, *(("scale", "shift") if key in self.fits else ()))]
        for dec in self.sparsification:
            cols += [str(MetricKey(m, dec)) for m in ("ause_abs_rel", "ause_rmse")]
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
            scope = MetricKey.parse(key, scope=True)
            pixels, names = str(MetricKey("pixels", cap=scope.cap)), [scope.of(m) for m in METRIC_NAMES]
            values = metrics_from_sums(torch.from_numpy(rows)).numpy() if len(ids) else np.zeros((0, 0))
            for i, sums, metrics in zip(ids, rows, values, strict=True):
                table[int(i)][pixels] = int(sums[0])
                table[int(i)].update({n: float(v) for n, v in zip(names, metrics, strict=True)})
        for key, (ids, fits) in self.fits.items():
            for i, (scale, shift) in zip(ids, fits, strict=True):
                if int(i) in table:  # an image without a valid pixel has nothing fitted and no row
                    scope = MetricKey.parse(key, scope=True)
                    table[int(i)].update({scope.of("scale"): float(scale), scope.of("shift"): float(shift)})
        for dec, curves in self.sparsification.items():
            for name, values in per_image_ause(curves).items() if len(curves["ids"]) else ():
                for i, v in zip(curves["ids"], values, strict=True):
                    table.setdefault(int(i), {"id": int(i)})[str(MetricKey(name, dec))] = float(v)
        if self.bin_hits is not None:
            for i, (hit, total) in zip(*self.bin_hits, strict=True):
                table.setdefault(int(i), {"id": int(i)}).update(bin_correct=int(hit), bin_pixels=int(total))
        return [table[i] for i in sorted(table)]


def write_per_image(folder: Path, record: PerImageRecord, card: dict[str, Any]) -> Path:
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
