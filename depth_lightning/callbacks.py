"""Callbacks: depth panels for every logger, written by rank 0 only."""

from __future__ import annotations

from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger
from PIL import Image

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
        step = trainer.global_step
        caption = "RGB | ground truth | prediction | abs rel error (0-0.5) | uncertainty"
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(key="val/panels", images=[panel], caption=[caption], step=step)
            elif isinstance(logger, TensorBoardLogger):
                logger.experiment.add_image("val/panels", panel, step, dataformats="HWC")
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(panel).save(self.output_dir / f"val_step{step:07d}.png")
        pl_module.panel_batch = None
