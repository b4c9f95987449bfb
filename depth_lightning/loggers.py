"""A CSV logger that continues a run's ``metrics.csv`` when the run resumes, instead of deleting it."""

from __future__ import annotations

import csv
from typing import Any

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter


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
