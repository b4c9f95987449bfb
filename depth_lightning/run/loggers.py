"""What the loggers get beyond Lightning's own: a CSV log that continues a run's ``metrics.csv`` when the
run resumes (instead of deleting it), the final metrics as one table, and a test's card and intervals."""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from depth_lightning.evaluation.figures import sparsification_figure
from depth_lightning.evaluation.metrics import METRIC_NAMES
from depth_lightning.models.bins import DECODERS


class _ContinuingWriter(ExperimentWriter):
    """Keeps the rows already in ``metrics.csv``. The first step logged after a resume replaces the
    rows of that step and later ones (the killed run logged them, the resumed run logs them again)."""

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes the file here
        self._resumed = self._fs.isfile(self.metrics_file_path)
        if self._resumed:
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(csv.DictReader(f).fieldnames or [])

    def log_metrics(self, metrics_dict: dict[str, float], step: int | None = None) -> None:
        if self._resumed and step is not None:
            self._resumed = False
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                kept = [row for row in csv.DictReader(f) if row.get("step", "") == "" or int(row["step"]) < step]
            with self._fs.open(self.metrics_file_path, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.metrics_keys)
                writer.writeheader()
                writer.writerows(kept)
        super().log_metrics(metrics_dict, step)


class ContinuingCSVLogger(CSVLogger):
    """``CSVLogger`` whose ``metrics.csv`` survives a resume: the history before it is kept."""

    @property
    def experiment(self) -> Any:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


def logged_metrics(trainer: Any, split: str) -> dict[str, float]:
    """What the run logged last for one split: ``{"soft/d1": x, "loss": y, ...}`` of ``val/soft/d1``..."""
    prefix = f"{split}/"
    return {k[len(prefix) :]: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(prefix)}


def final_metrics_table(results: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The run's final metrics, one row per split and decoder: (columns, rows)."""
    columns = ["split", "decoder", *METRIC_NAMES, "pixel_acc"]
    rows = []
    for split in ("val", "test"):
        values = results.get(split) or {}
        for decoder in DECODERS if values else ():
            rows.append(
                [split, decoder, *(values.get(f"{decoder}/{m}") for m in METRIC_NAMES), values.get("pixel_acc")]
            )
    return columns, rows


def log_final_metrics(loggers: list[Any], results: dict[str, Any]) -> None:
    """The final metrics of both decoders as one table: a W&B table (``final_metrics``, also in the
    run's summary) and a TensorBoard text panel."""
    columns, rows = final_metrics_table(results)
    if not rows:
        return
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.log_table(key="final_metrics", columns=columns, data=rows)
        elif isinstance(logger, TensorBoardLogger):
            cells = [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
            text = "\n".join("| " + " | ".join(r) + " |" for r in [columns, ["---"] * len(columns), *cells])
            logger.experiment.add_text("final_metrics", text)


def log_test_summary(loggers: list[Any], saved: dict[str, Any], curves: dict[str, Any], dataset: str) -> None:
    """A test's protocol card and every number's interval into W&B's summary (``test_ci/<key>``), and
    the uncertainty's sparsification curves as a figure (W&B, TensorBoard)."""
    summary = {"protocol": saved["protocol"], **{f"test_ci/{k}": v for k, v in saved["test_intervals"].items()}}
    figure = sparsification_figure(curves, dataset) if curves else None
    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(summary)
            if figure is not None:
                logger.log_image(key="test/sparsification", images=[figure], caption=["dashed: oracle"])
        elif isinstance(logger, TensorBoardLogger) and figure is not None:
            logger.experiment.add_image("test/sparsification", figure, dataformats="HWC")
