"""The LightningModule: the only place that knows both the network and the trainer."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import Tensor
from torchmetrics import SumMetric

from depth_lightning.faults import NonFiniteError
from depth_lightning.metrics import DepthMetrics
from depth_lightning.models import DECODERS, bin_cross_entropy, build_network
from depth_lightning.protocol import EvalProtocol

SPLITS = ("val", "test")
CHECKPOINT_MARK = "depth_lightning"
# Pixels (fractions of height, width) whose predicted bin distribution is tracked (Fig. 6).
TRACKED_PIXELS = ((0.25, 0.25), (0.5, 0.5), (0.75, 0.3), (0.6, 0.8))


class _SkipStep(Exception):
    """Raised inside the optimiser closure to abandon a step with non-finite gradients."""


def targets_at(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """Ground truth at the logits' resolution: nearest neighbour, never mixing valid and invalid."""
    if depth.shape[-2:] == size:
        return depth
    return F.interpolate(depth[:, None], size=size, mode="nearest")[:, 0]


def lr_factor(step: int, cfg: Any) -> float:
    """Multiplier of the base learning rate after ``step`` optimiser steps."""
    warm = cfg.warmup_steps
    factor = min(1.0, (step + 1) / warm) if warm > 0 else 1.0
    if cfg.name == "multistep":
        factor *= cfg.gamma ** sum(step >= m for m in cfg.milestones)
    elif cfg.name == "cosine":
        progress = min(1.0, max(0.0, (step - warm) / max(1, cfg.total_steps - warm)))
        factor *= cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor


class DepthModule(L.LightningModule):
    """Trains the network with the paper's loss; evaluates both decoders in every run.

    Args:
        config: the whole resolved run config (a plain dict); saved in every checkpoint so that a
            checkpoint alone rebuilds the model.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.save_hyperparameters({"config": config, CHECKPOINT_MARK: True})
        self.cfg = OmegaConf.create(config)
        self.net = build_network(self.cfg.model)
        if self.cfg.model.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.bins = self.net.bins
        # The dataset's protocol: its region comes with each batch (eval_mask), its caps are here.
        self.protocol = EvalProtocol(**self.cfg.data.eval)
        p = self.protocol
        self.metrics = torch.nn.ModuleDict(
            {
                f"{split}_{i}_{dec}": DepthMetrics(p.min_depth, cap, mode=p.aggregation)
                for split in SPLITS
                for i, cap in enumerate(p.caps)
                for dec in DECODERS
            }
        )
        # Pixel accuracy (Table 4) as exact counts, summed across processes.
        self.pixel_counts = torch.nn.ModuleDict(
            {f"{split}_{k}": SumMetric() for split in SPLITS for k in ("correct", "valid")}
        )
        self.panel_batch: dict[str, Tensor] | None = None
        self.skipped_steps = 0
        self.images_evaluated = 0
        self._batch_ids: list[int] = []
        # A plain attribute, not a submodule: the weights must appear once in the state_dict.
        object.__setattr__(self, "_forward", torch.compile(self.net) if self.cfg.model.compile else self.net)

    def forward(self, image: Tensor) -> Tensor:
        if self.cfg.model.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self._forward(image)

    def _loss(self, logits: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        labels = self.bins.labels(targets_at(depth, logits.shape[-2:]))
        return bin_cross_entropy(logits, labels, self.bins.ignore_index), labels

    def _count_skipped(self, batch: dict[str, Tensor], split: str) -> bool:
        """Log samples dropped by ``data.skip_bad_samples``; False when the whole batch was bad."""
        if "skipped" in batch:
            self.log(
                f"{split}/skipped_samples",
                batch["skipped"].float(),
                reduce_fx="sum",
                on_step=False,
                on_epoch=True,
                batch_size=1,
                sync_dist=True,
            )
        return "image" in batch

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor | None:
        if not self._count_skipped(batch, "train"):
            return None
        self._batch_ids = batch["index"].tolist() if "index" in batch else []
        mode = self.cfg.get("nonfinite", "stop")
        # skip mode: a poisoned batch must not leave NaN in BatchNorm's running statistics either
        saved = {n: b.detach().clone() for n, b in self.named_buffers() if "running" in n} if mode == "skip" else {}
        logits = self(batch["image"])
        loss, _ = self._loss(logits, batch["depth"])
        if mode != "off" and not torch.isfinite(loss):
            self._non_finite(f"loss {loss.item()}")
            with torch.no_grad():
                for name, buffer in self.named_buffers():
                    if name in saved:
                        buffer.copy_(saved[name])
            # a zero loss still connected to every weight, so all DDP ranks run the same backward
            loss = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def _non_finite(self, what: str) -> None:
        """Stop (default) naming the step and the samples, or count a skipped step (``nonfinite=skip``)."""
        message = (
            f"non-finite {what} at optimiser step {self.global_step} (epoch {self.current_epoch}), "
            f"batch sample ids {self._batch_ids}"
        )
        if self.cfg.get("nonfinite", "stop") == "stop":
            raise NonFiniteError(message + "; set nonfinite=skip to skip such steps instead")
        self.skipped_steps += 1
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)
        print(f"warning: {message}; skipped ({self.skipped_steps} so far)")

    def _grads_finite(self) -> bool:
        # A sum is NaN or inf when any term is (or when the gradients are too large for float32,
        # itself a divergence), and costs one read of the gradients: half an L2 norm's time.
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        return not grads or bool(torch.stack([g.sum() for g in grads]).sum().isfinite())

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Any = None) -> None:
        if self.cfg.get("nonfinite", "stop") == "off" or optimizer_closure is None:
            return super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)

        def guarded_closure() -> Any:
            loss = optimizer_closure()
            if not self._grads_finite():
                self._non_finite("gradient")  # raises in stop mode
                raise _SkipStep
            return loss

        try:
            optimizer.step(closure=guarded_closure)
        except _SkipStep:
            optimizer.zero_grad()

    def _eval_step(self, split: str, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor] | None:
        """Metrics of both decoders under every cap; returns the bin labels for the callbacks (Fig. 7)."""
        if not self._count_skipped(batch, split):
            return None
        logits = self(batch["image"])
        loss, labels = self._loss(logits, batch["depth"])
        decoded = self.bins.decode(logits)
        for i in range(len(self.protocol.caps)):
            # the ground truth's terms once per cap, for both decoders
            target = self.metrics[f"{split}_{i}_{DECODERS[0]}"].prepare(batch["depth"], batch.get("eval_mask"))
            for dec in DECODERS:
                self.metrics[f"{split}_{i}_{dec}"].update(decoded[dec], target, ids=batch.get("index"))
        valid = labels != self.bins.ignore_index
        predicted = decoded["bin"]
        self.pixel_counts[f"{split}_correct"].update(((predicted == labels) & valid).sum())
        self.pixel_counts[f"{split}_valid"].update(valid.sum())
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=logits.shape[0], sync_dist=True)
        if split == "val" and batch_idx == 0:
            n = min(4, logits.shape[0])
            self.panel_batch = {
                "image": batch["image"][:n].detach().float().cpu(),
                "depth": batch["depth"][:n].detach().float().cpu(),
                "pred": decoded[self.cfg.model.decoder][:n].detach().cpu(),
                "uncertainty": decoded["uncertainty"][:n].detach().cpu(),
                **self._tracked_distributions(logits[0], labels[0]),
            }
        return {"bin": predicted, "labels": labels}

    def _tracked_distributions(self, logits: Tensor, labels: Tensor) -> dict[str, Tensor]:
        """Predicted distributions over the bins at the tracked pixels of one image (Fig. 6)."""
        h, w = logits.shape[-2:]
        rows = torch.tensor([min(h - 1, int(fy * h)) for fy, _ in TRACKED_PIXELS], device=logits.device)
        cols = torch.tensor([min(w - 1, int(fx * w)) for _, fx in TRACKED_PIXELS], device=logits.device)
        probs = self.bins.probabilities(logits[None])[0][:, rows, cols].T
        return {"tracked_probs": probs.detach().cpu(), "tracked_labels": labels[rows, cols].detach().cpu()}

    def _eval_epoch_end(self, split: str) -> None:
        self.images_evaluated = 0
        for i in range(len(self.protocol.caps)):
            prefix = self.protocol.prefix(i)
            for dec in DECODERS:
                metric = self.metrics[f"{split}_{i}_{dec}"]
                values = metric.compute()
                if i == 0:
                    self.images_evaluated = metric.last_count
                metric.reset()
                for name, value in values.items():
                    self.log(f"{split}/{prefix}{dec}/{name}", value.float())
                    if i == 0 and dec == self.cfg.model.decoder:
                        self.log(f"{split}/{name}", value.float(), prog_bar=name == "abs_rel")
        correct = self.pixel_counts[f"{split}_correct"].compute()
        valid = self.pixel_counts[f"{split}_valid"].compute()
        for k in ("correct", "valid"):
            self.pixel_counts[f"{split}_{k}"].reset()
        self.log(f"{split}/pixel_acc", (correct / valid.clamp_min(1)).float())

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor] | None:
        return self._eval_step("val", batch, batch_idx)

    def on_validation_epoch_start(self) -> None:
        self.panel_batch = None

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Tensor] | None:
        return self._eval_step("test", batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int = 0) -> dict[str, Tensor]:
        """Depth (the configured decoder), both decoders and the uncertainty map."""
        decoded = self.bins.decode(self(batch["image"]))
        return {"depth": decoded[self.cfg.model.decoder], **decoded}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from the global generator: a resumed run must continue its sequence.
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_states"] = rng

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        rng = checkpoint.get("rng_states")
        if rng:
            torch.set_rng_state(rng["torch"])
            if "cuda" in rng and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(rng["cuda"])

    def configure_optimizers(self) -> dict[str, Any]:
        o = self.cfg.model.optimizer
        # fused kernels exist for CPU and CUDA (and a few others); elsewhere PyTorch's default loop
        fused = o.get("fused", True) and all(p.device.type in ("cpu", "cuda") for p in self.parameters())
        if o.name == "sgd":
            opt = torch.optim.SGD(
                self.parameters(),
                lr=o.lr,
                momentum=o.momentum,
                weight_decay=o.weight_decay,
                nesterov=o.nesterov,
                fused=fused or None,
            )
        else:
            opt = torch.optim.AdamW(
                self.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=fused or None
            )
        sched_cfg = self.cfg.model.scheduler
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, sched_cfg))
        # interval=step: the paper's schedule counts optimiser steps (iterations), not epochs.
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}


def module_config(cfg: DictConfig) -> dict[str, Any]:
    """The part of a run config a checkpoint needs to rebuild the model and its evaluation."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
