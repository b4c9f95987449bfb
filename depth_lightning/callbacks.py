"""Callbacks: depth panels and bin diagnostics for every logger, written by rank 0 only."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

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
    of training) and Fig. 7 (confusion of hard-max bin labels, merged to 50 bins), saved as
    ``bin_distributions.npz`` / ``confusion_val.npy`` in ``output_dir`` and logged as images."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = Path(output_dir)
        self.steps: list[int] = []
        self.probs: list[np.ndarray] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
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
        counts = getattr(pl_module, "last_confusion", None)
        if counts is not None:
            counts = counts.numpy()
            save_atomic(self.output_dir / "confusion_val.npy", lambda p: np.save(p, counts))
            _log_figure(trainer, "val/confusion", confusion_figure(counts), "hard-max bin confusion (rows: truth)")
