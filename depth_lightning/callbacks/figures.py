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

from depth_lightning.core.files import save_atomic
from depth_lightning.evaluation.figures import confusion_figure, depth_panel, distribution_figure


class DepthPanels(L.Callback):
    """After each validation: RGB | ground truth | prediction | error | uncertainty of the first
    ``images`` validation images, titled and with colour bars, to W&B, TensorBoard and as PNG files
    in ``output_dir``; ``title`` names the run."""

    def __init__(self, output_dir: str | None = None, images: int = 4, title: str = "") -> None:
        self.output_dir = Path(output_dir) if output_dir else None
        self.images = images
        self.title = title
        self.batch: dict[str, np.ndarray] | None = None

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if batch_idx != 0 or not outputs or trainer.sanity_checking or not trainer.is_global_zero:
            return
        n = self.images
        self.batch = {
            "image": batch["image"][:n].float().cpu().numpy(),
            "depth": batch["depth"][:n].float().cpu().numpy(),
            "pred": outputs["depth"][:n].float().cpu().numpy(),
            "uncertainty": outputs["uncertainty"][:n].float().cpu().numpy(),
        }

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batch is None:
            return
        b, bins = self.batch, pl_module.bins
        title = f"{self.title}, K = {bins.num_bins}, step {trainer.global_step}".lstrip(", ")
        panel = depth_panel(b["image"], b["depth"], b["pred"], b["uncertainty"], bins.d_min, bins.d_max, title)
        self.batch = None
        caption = "RGB | ground truth | prediction | abs rel error (0-0.5) | uncertainty"
        _log_figure(trainer, "val/panels", panel, caption)
        if self.output_dir is not None:
            path = self.output_dir / f"val_step{trainer.global_step:07d}.png"
            save_atomic(path, lambda p: Image.fromarray(panel).save(p))


def _log_figure(trainer: L.Trainer, key: str, image: np.ndarray, caption: str) -> None:
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            logger.log_image(key=key, images=[image], caption=[caption], step=trainer.global_step)
        elif isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(key, image, trainer.global_step, dataformats="HWC")


class BinDiagnostics(L.Callback):
    """The paper's Fig. 6 (predicted distribution over the bins at fixed pixels of the first
    validation image, at every validation) and Fig. 7 (confusion of hard-max bin labels of the
    validation that just ended, merged to ``merged`` bins), saved as ``bin_distributions.npz`` /
    ``confusion_val.npy`` in ``output_dir`` and logged as images titled with ``title`` (the run) and K."""

    # Pixels (fractions of height, width) whose predicted distribution is tracked (Fig. 6).
    TRACKED = ((0.25, 0.25), (0.5, 0.5), (0.75, 0.3), (0.6, 0.8))

    def __init__(self, output_dir: str, merged: int = 50, title: str = "") -> None:
        self.output_dir = Path(output_dir)
        self.merged = merged
        self.title = title
        self.steps: list[int] = []
        self.probs: list[np.ndarray] = []
        self.tracked: tuple[np.ndarray, np.ndarray] | None = None  # (probabilities, labels) of this validation
        self.confusion: MulticlassConfusionMatrix | None = None

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        size = min(self.merged, pl_module.bins.num_bins)
        if self.confusion is None or self.confusion.num_classes != size:
            self.confusion = MulticlassConfusionMatrix(
                size, ignore_index=pl_module.bins.ignore_index, validate_args=False
            )
        self.confusion = self.confusion.to(pl_module.device)
        self.confusion.reset()
        self.tracked = None

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if trainer.sanity_checking or not outputs or self.confusion is None:
            return
        bins = pl_module.bins
        k, size = bins.num_bins, self.confusion.num_classes
        labels = outputs["labels"]
        truth = torch.where(labels != bins.ignore_index, labels * size // k, labels)  # groups of k/size bins
        self.confusion.update(outputs["bin"] * size // k, truth)
        if batch_idx == 0:
            logits, h, w = outputs["logits"][0], *outputs["logits"].shape[-2:]
            rows = torch.tensor([min(h - 1, int(fy * h)) for fy, _ in self.TRACKED], device=logits.device)
            cols = torch.tensor([min(w - 1, int(fx * w)) for _, fx in self.TRACKED], device=logits.device)
            probs = bins.probabilities(logits[None])[0][:, rows, cols].T
            self.tracked = (probs.cpu().numpy(), labels[0][rows, cols].cpu().numpy())

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.confusion is None:
            return
        counts = self.confusion.compute().cpu().numpy()  # every rank takes part in the sum
        if not trainer.is_global_zero:
            return
        centres = pl_module.bins.log_centres.cpu().numpy()
        if self.tracked is not None:
            self.steps.append(trainer.global_step)
            self.probs.append(self.tracked[0])
            arrays = {"steps": np.array(self.steps), "probs": np.stack(self.probs), "labels": self.tracked[1]}
            arrays["log_centres"] = centres
            save_atomic(self.output_dir / "bin_distributions.npz", lambda p: np.savez(p, **arrays))
            fig = distribution_figure(arrays["steps"], arrays["probs"], arrays["labels"], centres, self.title)
            _log_figure(trainer, "val/bin_distributions", fig, "predicted distribution over bins at fixed pixels")
        if counts.sum() > 0:
            save_atomic(self.output_dir / "confusion_val.npy", lambda p: np.save(p, counts))
            fig = confusion_figure(counts, self.title, pl_module.bins.num_bins)
            _log_figure(trainer, "val/confusion", fig, "hard-max bin confusion (rows: truth)")
