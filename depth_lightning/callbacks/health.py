"""Training health: which bins the model predicts, and whether it has collapsed to an answer that
ignores the image, checked at every validation."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

from depth_lightning.evaluation.metrics import DepthMetrics
from depth_lightning.evaluation.protocol import protocol_of

log = logging.getLogger(__name__)


class TrainingHealth(L.Callback):
    """At every validation: the histogram of predicted bins (bin usage; W&B and TensorBoard), how much
    the predicted log depth varies within an image (spatial spread: mean over images of its std over
    pixels) and across images (image spread: mean over pixels of its std over images), and δ1 of the
    constant baseline (the median training depth) on the same pixels.

    The model is flagged as collapsed when either spread is below ``min_spread`` (the prediction no
    longer depends on where or what it looks at), or when, from the ``patience``-th validation on, its
    δ1 is no better than the constant's. A warning says what to check; :meth:`state` (metrics.json's
    ``health``) records it. Training goes on: the flag is evidence, not a verdict.
    """

    def __init__(self, min_spread: float = 1e-3, patience: int = 3) -> None:
        if patience < 1:
            raise ValueError(f"health.patience must be >= 1, got {patience}")
        self.min_spread, self.patience = min_spread, patience
        self.constant: float | None = None
        self.history: list[dict[str, Any]] = []
        self.collapsed: dict[str, Any] | None = None
        self._pending: dict[str, Any] | None = None

    def state(self) -> dict[str, Any]:
        return {"collapsed": self.collapsed is not None, "flag": self.collapsed, "history": self.history}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        try:
            depth = datamodule.training_depth_sample()
            self.constant = float(np.median(depth[np.isfinite(depth) & (depth > 0)]))
        except Exception as err:  # the spread checks still run
            log.warning("training health: no constant baseline to compare with (%s)", err)

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        k = pl_module.bins.num_bins
        self._counts = torch.zeros(k, dtype=torch.float64, device=pl_module.device)
        self._spatial = torch.zeros(2, dtype=torch.float64, device=pl_module.device)  # sum of stds, images
        self._pixel_sums: torch.Tensor | None = None  # per output pixel: sums of log depth and of its square
        self._images = 0
        p = protocol_of(getattr(trainer, "datamodule", None))  # the validation's
        self._constant_metric = DepthMetrics(p.min_depth, p.caps[0], mode=p.aggregation).to(pl_module.device)

    def on_validation_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx: int, *args: Any
    ) -> None:
        if trainer.sanity_checking or not outputs:
            return
        bins = outputs["bin"]
        self._counts += torch.bincount(bins.flatten(), minlength=self._counts.numel()).double()
        log_depth = torch.log(outputs["depth"].double().clamp_min(1e-6)).flatten(1)
        self._spatial += torch.stack([log_depth.std(1, correction=0).sum(), log_depth.new_tensor(len(log_depth))])
        sums = torch.stack([log_depth.sum(0), log_depth.square().sum(0)])
        if self._pixel_sums is None:
            self._pixel_sums = sums
        elif self._pixel_sums.shape == sums.shape:
            self._pixel_sums += sums
        else:  # outputs of several sizes: no pixel-wise comparison (the image spread is not reported)
            self._pixel_sums.fill_(float("nan"))
        self._images += len(log_depth)
        if self.constant is not None:
            target = self._constant_metric.prepare(batch["depth"], batch.get("eval_mask"))
            constant = torch.full((len(bins), *bins.shape[-2:]), self.constant, device=bins.device)
            self._constant_metric.update(constant, target, ids=batch.get("index"))

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self._pixel_sums is None:
            return
        reduce = trainer.strategy.reduce
        counts = reduce(self._counts, reduce_op="sum")
        spatial = reduce(self._spatial, reduce_op="sum")
        sums = reduce(self._pixel_sums, reduce_op="sum")
        images = float(reduce(torch.tensor(float(self._images), device=sums.device), reduce_op="sum"))
        variance = (sums[1] / images - (sums[0] / images).square()).clamp_min(0)
        image_spread = float(variance.sqrt().mean()) if images > 1 else float("nan")
        constant_d1 = None
        if self.constant is not None:
            constant_d1 = float(self._constant_metric.compute()["d1"])
        self._pending = {
            "step": trainer.global_step,
            "spatial_spread": float(spatial[0] / spatial[1]),
            "image_spread": image_spread if np.isfinite(image_spread) else None,
            "bins_used": int((counts > 0).sum()),
            "constant_d1": constant_d1,
            "counts": counts.cpu().numpy(),
        }

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module logged this validation's metrics: its δ1 is in callback_metrics now
        entry, self._pending = self._pending, None
        if entry is None:
            return
        counts = entry.pop("counts")
        d1 = trainer.callback_metrics.get("val/d1")
        entry["d1"] = float(d1) if d1 is not None else None
        self.history.append(entry)
        reason = self._collapse_reason(entry)
        if reason and self.collapsed is None:
            self.collapsed = {"step": entry["step"], "reason": reason}
            log.warning(
                "training health: the model looks collapsed at step %d: %s. Check the learning rate "
                "(model.optimizer.lr), that the depth labels are metres in the bins' range (python -m "
                "depth_lightning.check data=<dataset>), data.depth_min/depth_max, and the loss curve",
                entry["step"],
                reason,
            )
        if trainer.is_global_zero:
            self._log(trainer, entry, counts)

    def _collapse_reason(self, entry: dict[str, Any]) -> str | None:
        for key, what in (("spatial_spread", "within each image"), ("image_spread", "from one image to another")):
            if entry[key] is not None and entry[key] < self.min_spread:
                return (
                    f"its predicted log depth varies by only {entry[key]:.2g} (std) {what}, below "
                    f"health.min_spread={self.min_spread:g}: the prediction ignores the image"
                )
        if len(self.history) >= self.patience and entry["d1"] is not None and entry["constant_d1"] is not None:
            if entry["d1"] <= entry["constant_d1"]:
                return (
                    f"after {len(self.history)} validations its δ1 {entry['d1']:.4f} is no better than a constant "
                    f"depth's ({self.constant:.3g} m, the median training depth): {entry['constant_d1']:.4f}"
                )
        return None

    def _log(self, trainer: L.Trainer, entry: dict[str, Any], counts: np.ndarray) -> None:
        scalars = {f"val/health/{k}": float(v) for k, v in entry.items() if k not in ("step", "d1") and v is not None}
        scalars["val/health/collapsed"] = float(self.collapsed is not None)
        for logger in trainer.loggers:
            logger.log_metrics(scalars, step=trainer.global_step)
            if isinstance(logger, WandbLogger):
                import wandb  # present: a WandbLogger imported it

                merged, edges = bin_usage_histogram(counts)
                histogram = wandb.Histogram(np_histogram=(merged.tolist(), edges.tolist()))
                logger.experiment.log({"val/health/bin_usage": histogram, "trainer/global_step": trainer.global_step})
            elif isinstance(logger, TensorBoardLogger):
                index = np.arange(len(counts), dtype=np.float64)
                used = np.nonzero(counts)[0]
                logger.experiment.add_histogram_raw(
                    "val/health/bin_usage",
                    min=float(used.min()) if len(used) else 0.0,
                    max=float(used.max()) if len(used) else 0.0,
                    num=float(counts.sum()),
                    sum=float((index * counts).sum()),
                    sum_squares=float((index**2 * counts).sum()),
                    bucket_limits=(index + 0.5).tolist(),
                    bucket_counts=counts.tolist(),
                    global_step=trainer.global_step,
                )


def bin_usage_histogram(counts: np.ndarray, most: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Counts per predicted bin merged into at most ``most`` groups of neighbouring bins (W&B keeps
    512 at most), with the groups' edges in bin indices."""
    group = -(-len(counts) // most)
    padded = np.pad(counts, (0, -len(counts) % group))
    merged = padded.reshape(-1, group).sum(1)
    return merged, np.arange(len(merged) + 1, dtype=np.float64) * group
