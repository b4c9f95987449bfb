"""Callbacks: depth panels and bin diagnostics for every logger, written by rank 0 only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image
from torchmetrics.classification import MulticlassConfusionMatrix

from depth_lightning.data.io import save_atomic
from depth_lightning.visualize import depth_panel


class DepthPanels(L.Callback):
    """After each validation: RGB | ground truth | prediction | error | uncertainty, to W&B,
    TensorBoard and as PNG files in ``output_dir``."""

    def __init__(self, output_dir: str | None = None) -> None:
        self.output_dir = Path(output_dir) if output_dir else None

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        batch = getattr(pl_module, "panel_batch", None)
        if batch is None or trainer.sanity_checking or not trainer.is_global_zero:
            return
        bins = pl_module.bins
        panel = depth_panel(
            batch["image"].numpy(),
            batch["depth"].numpy(),
            batch["pred"].numpy(),
            batch["uncertainty"].numpy(),
            bins.d_min,
            bins.d_max,
        )
        caption = "RGB | ground truth | prediction | abs rel error (0-0.5) | uncertainty"
        _log_figure(trainer, "val/panels", panel, caption)
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(panel).save(self.output_dir / f"val_step{trainer.global_step:07d}.png")


def _log_figure(trainer: L.Trainer, key: str, image: np.ndarray, caption: str) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], caption=[caption], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")


class BinDiagnostics(L.Callback):
    """The paper's Fig. 6 (predicted distribution over the bins at fixed pixels, at every validation
    of training) and Fig. 7 (confusion of hard-max bin labels, merged to ``merged`` bins, of the
    validation that just ended), saved as ``bin_distributions.npz`` / ``confusion_val.npy`` in
    ``output_dir`` and logged as images."""

    def __init__(self, output_dir: str, merged: int = 50) -> None:
        self.output_dir = Path(output_dir)
        self.merged = merged
        self.steps: list[int] = []
        self.probs: list[np.ndarray] = []
        self.confusion: MulticlassConfusionMatrix | None = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        size = min(self.merged, pl_module.bins.num_bins)
        if self.confusion is None or self.confusion.num_classes != size:
            self.confusion = MulticlassConfusionMatrix(
                size, ignore_index=pl_module.bins.ignore_index, validate_args=False
            )
        self.confusion = self.confusion.to(pl_module.device)
        self.confusion.reset()

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if trainer.sanity_checking or not outputs or self.confusion is None:
            return
        k, size, ignore = pl_module.bins.num_bins, self.confusion.num_classes, pl_module.bins.ignore_index
        labels = outputs["labels"]
        truth = torch.where(labels != ignore, labels * size // k, labels)  # merged groups of k/size bins
        self.confusion.update(outputs["bin"] * size // k, truth)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        counts = self.confusion.compute().cpu().numpy() if self.confusion is not None else None  # every rank syncs
        if not trainer.is_global_zero:
            return
        from depth_lightning.visualize import confusion_figure, distribution_figure

        batch = getattr(pl_module, "panel_batch", None)
        centres = pl_module.bins.log_centres.cpu().numpy()
        if batch is not None and "tracked_probs" in batch:
            self.steps.append(trainer.global_step)
            self.probs.append(batch["tracked_probs"].numpy())
            labels = batch["tracked_labels"].numpy()
            arrays = {
                "steps": np.array(self.steps),
                "probs": np.stack(self.probs),
                "labels": labels,
                "log_centres": centres,
            }
            save_atomic(self.output_dir / "bin_distributions.npz", lambda p: np.savez(p, **arrays))
            fig = distribution_figure(arrays["steps"], arrays["probs"], labels, centres)
            _log_figure(trainer, "val/bin_distributions", fig, "predicted distribution over bins at fixed pixels")
        if counts is not None and counts.sum() > 0:
            save_atomic(self.output_dir / "confusion_val.npy", lambda p: np.save(p, counts))
            _log_figure(trainer, "val/confusion", confusion_figure(counts), "hard-max bin confusion (rows: truth)")
