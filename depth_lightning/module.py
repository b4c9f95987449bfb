"""The LightningModule: the only place that knows both the network and the trainer."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from depth_lightning.config import plain
from depth_lightning.data.io import DataError
from depth_lightning.metrics import DepthMetrics, ImageRows, NoValidPixels
from depth_lightning.models import DECODERS, IGNORE_INDEX, bin_cross_entropy
from depth_lightning.per_image import TestRecord
from depth_lightning.protocol import EvalProtocol
from depth_lightning.sparsification import Sparsification
from depth_lightning.speed import prepare_network, to_layout

SPLITS = ("val", "test")
log = logging.getLogger(__name__)


def targets_at(depth: Tensor, size: tuple[int, int]) -> Tensor:
    """Ground truth at the logits' resolution: nearest neighbour, never mixing valid and invalid."""
    if depth.shape[-2:] == size:
        return depth
    return F.interpolate(depth[:, None], size=size, mode="nearest")[:, 0]


class DepthModule(L.LightningModule):
    """Trains the network with the paper's loss (Eq. 4) and evaluates both decoders, under every cap
    of the data's protocol, at each validation and test; batch outputs go to the callbacks.

    Args:
        net: the network's config (``_target_`` and its arguments), built here: every argument is
            saved with the weights, so a checkpoint alone rebuilds the model.
        optimizer: a ``_partial_`` optimizer config, called with the parameters.
        scheduler: a ``_partial_`` schedule (:mod:`depth_lightning.schedules`), called with the optimizer.
        decoder: the headline decoder, ``soft`` (Eq. 5) or ``hard``: ``val/abs_rel`` and predict's depth.
        compile, channels_last: :mod:`depth_lightning.speed` switches; the numbers do not change.
        input_size: ``(height, width)`` the network is trained at, what evaluate and predict feed it.
        data: the run's data config, the dataset ``evaluate`` tests on unless told otherwise.
    """

    def __init__(
        self,
        net: Mapping[str, Any],
        optimizer: Mapping[str, Any],
        scheduler: Mapping[str, Any] | None = None,
        decoder: str = "soft",
        compile: bool = False,
        channels_last: bool = False,
        input_size: Sequence[int] = (120, 160),
        data: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"model.decoder={decoder!r} is unknown; allowed: {', '.join(DECODERS)}")
        net, optimizer, scheduler, data = plain(net), plain(optimizer), plain(scheduler), plain(data)
        input_size = list(input_size)
        self.save_hyperparameters(logger=False)  # plain Python: a checkpoint loads with weights_only=True
        self.net = prepare_network(instantiate(net), channels_last=channels_last, compile=compile)
        self.bins = self.net.bins
        self.protocol = EvalProtocol()  # the datamodule's, from setup()
        self.metrics = torch.nn.ModuleDict()
        # Table 4's pixel accuracy of the bin labels: exact counts, summed across processes
        self.pixel_acc = torch.nn.ModuleDict(
            {s: MulticlassAccuracy(self.bins.num_bins, average="micro", ignore_index=IGNORE_INDEX) for s in SPLITS}
        )
        self.images_evaluated = 0
        self.empty_frames: dict[str, list[str]] = {}  # per split: frames left out, no valid ground truth
        # Baselines scored beside the model at test (set by the caller: score_baselines), per-image
        # results of the last test, and every split's final values in float64 (what metrics.json holds).
        self.baseline_maps: dict[str, Tensor] = {}
        self.test_record: TestRecord | None = None
        self.final_values: dict[str, dict[str, float]] = {}
        self.output_size: tuple[int, int] | None = None
        self.images_seen = 0
        self._valid_train_pixels = 0

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        self.set_protocol(getattr(datamodule, "protocol", self.protocol))

    def set_protocol(self, protocol: EvalProtocol) -> None:
        """Evaluate under ``protocol``: one metric per split, cap and scored prediction (both decoders;
        at test also the baselines), the uncertainty's sparsification and each image's bin-label hits."""
        self.protocol = protocol
        self.metrics = torch.nn.ModuleDict(
            {
                f"{split}_{i}_{name}": DepthMetrics(protocol.min_depth, cap, mode=protocol.aggregation)
                for split in SPLITS
                for i, cap in enumerate(protocol.caps)
                for name in self._scored(split)
            }
        ).to(self.device)
        self.sparsification = torch.nn.ModuleDict({dec: Sparsification() for dec in DECODERS}).to(self.device)
        self.bin_hits = ImageRows().to(self.device)  # per test image: (correct bin labels, labelled pixels)

    def score_baselines(self, maps: Mapping[str, Tensor]) -> None:
        """Score these depth maps (fitted at the input size: the constant, the position prior) beside
        the model at test, on the same pixels: brought to the output size, then scored as predictions."""
        self.baseline_maps = {name: torch.as_tensor(m).float()[None, None] for name, m in maps.items()}
        self.set_protocol(self.protocol)

    def _scored(self, split: str) -> tuple[str, ...]:
        return (*DECODERS, *self.baseline_maps) if split == "test" else DECODERS

    def forward(self, image: Tensor) -> Tensor:
        return self.net(to_layout(image, self.hparams.channels_last))

    def loss(self, logits: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 4 over the valid pixels, and the bin labels of ``depth`` at the logits' resolution."""
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
        loss, labels = self.loss(self(batch["image"]), batch["depth"])
        self._valid_train_pixels += int((labels != self.bins.ignore_index).sum())
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    def on_train_epoch_end(self) -> None:
        seen = self.trainer.strategy.reduce(torch.tensor(float(self._valid_train_pixels)), reduce_op="sum")
        if seen == 0:
            raise DataError(
                f"not one training frame of epoch {self.current_epoch} holds a valid depth pixel (finite, > 0): "
                "the run would train on nothing; check the depth files (and their unit) of the training list"
            )
        self._valid_train_pixels = 0

    def _eval_step(self, split: str, batch: dict[str, Tensor]) -> dict[str, Any] | None:
        """Both decoders scored under every cap; returns the batch's outputs for the callbacks."""
        if not self._count_skipped(batch, split):
            return None
        logits = self(batch["image"])
        loss, labels = self.loss(logits, batch["depth"])
        decoded = self.bins.decode(logits)
        self.output_size = tuple(logits.shape[-2:])
        predictions = {dec: decoded[dec] for dec in DECODERS}
        if split == "test":
            predictions.update(self._baseline_predictions(logits.shape[0], self.output_size))
        ids = batch.get("index")
        if ids is None:  # batches built by hand: images in order of arrival
            ids = torch.arange(self.images_seen, self.images_seen + logits.shape[0])
        self.images_seen += logits.shape[0]
        for i in range(len(self.protocol.caps)):
            # the ground truth prepared once per cap, for every prediction scored against it
            target = self.metrics[f"{split}_{i}_soft"].prepare(batch["depth"], batch.get("eval_mask"))
            for name, pred in predictions.items():
                self.metrics[f"{split}_{i}_{name}"].update(pred, target, ids=ids)
            if split == "test" and i == 0:
                for dec in DECODERS:
                    self.sparsification[dec].update(decoded[dec], decoded["uncertainty"], target, ids)
        self.pixel_acc[split].update(decoded["bin"], labels)
        if split == "test":
            labelled = labels != self.bins.ignore_index
            hits = ((decoded["bin"] == labels) & labelled).flatten(1).sum(1)
            self.bin_hits.update(torch.stack([hits, labelled.flatten(1).sum(1)], 1).double(), ids)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=logits.shape[0], sync_dist=True)
        return {"logits": logits, "labels": labels, "depth": decoded[self.hparams.decoder], **decoded}

    def _baseline_predictions(self, batch: int, size: tuple[int, int]) -> dict[str, Tensor]:
        out = {}
        for name, map_ in self.baseline_maps.items():
            if tuple(map_.shape[-2:]) != size:
                self.baseline_maps[name] = map_ = F.interpolate(map_, size=size, mode="area")
            out[name] = map_.to(self.device)[:, 0].expand(batch, *size)
        return out

    def on_validation_epoch_start(self) -> None:
        self.images_seen = 0

    def on_test_epoch_start(self) -> None:
        self.images_seen = 0

    def _eval_epoch_end(self, split: str) -> None:
        self._report_empty_frames(split)
        record = TestRecord(self.protocol.aggregation) if split == "test" else None
        self.final_values[split] = {}
        for i in range(len(self.protocol.caps)):
            prefix = self.protocol.prefix(i)
            for dec in self._scored(split):
                metric = self.metrics[f"{split}_{i}_{dec}"]
                try:
                    values = metric.compute()
                except NoValidPixels as err:
                    raise DataError(
                        f"{'validation' if split == 'val' else 'test'} split of {self._dataset_name()}: {err}: "
                        "there is nothing to score; check its depth files, their unit, and data.protocol"
                    ) from None
                self.images_evaluated = metric.last_count if i == 0 else self.images_evaluated
                if record is not None:
                    record.sums[f"{prefix}{dec}"] = (metric.last_ids, metric.last_rows)
                metric.reset()
                for name, value in values.items():
                    self.final_values[split][f"{prefix}{dec}/{name}"] = float(value)
                    self.log(f"{split}/{prefix}{dec}/{name}", value.float())
                    if i == 0 and dec == self.hparams.decoder:
                        self.final_values[split][name] = float(value)
                        self.log(f"{split}/{name}", value.float(), prog_bar=name == "abs_rel")
        pixel_acc = self.pixel_acc[split].compute()
        self.final_values[split]["pixel_acc"] = float(pixel_acc)
        self.log(f"{split}/pixel_acc", pixel_acc.float())
        self.pixel_acc[split].reset()
        if record is not None:
            record.bin_hits = self.bin_hits.compute()
            self.bin_hits.reset()
            for dec in DECODERS:
                record.sparsification[dec] = self.sparsification[dec].compute()
                self.sparsification[dec].reset()
                for name, value in record.ause(dec).items():
                    self.final_values[split][f"{dec}/{name}"] = value
                    self.log(f"{split}/{dec}/{name}", float(value))
            dataset = getattr(getattr(self._trainer, "datamodule", None), "datasets", {}).get(split)
            for i in record.image_ids():
                record.frames[i] = dataset.frame_name(i) if dataset is not None else f"{i:05d}"
                record.lines[i] = dataset.list_line(i) if dataset is not None else None
            self.test_record = record

    def _dataset_name(self) -> str:
        return getattr(getattr(self._trainer, "datamodule", None), "name", "the data")

    def _report_empty_frames(self, split: str) -> None:
        """Name the frames left out of ``split`` for want of a valid ground-truth pixel (headline cap)."""
        ids = self.metrics[f"{split}_0_soft"].empty_images()
        dataset = getattr(getattr(self._trainer, "datamodule", None), "datasets", {}).get(split)
        names = [dataset.describe(i) if dataset is not None else f"sample {i}" for i in ids]
        self.empty_frames[split] = names
        if names:
            log.warning(
                "%s: %d frame(s) without a valid ground-truth pixel, left out of the metrics: %s",
                split,
                len(names),
                "; ".join(names[:10]) + (" ..." if len(names) > 10 else ""),
            )

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any] | None:
        return self._eval_step("val", batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any] | None:
        return self._eval_step("test", batch)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int = 0) -> dict[str, Tensor]:
        """Depth (the headline decoder), both decoders, the uncertainty map and the most likely bin."""
        decoded = self.bins.decode(self(batch["image"]))
        return {"depth": decoded[self.hparams.decoder], **decoded}

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
        # fused kernels exist for CPU and CUDA (and a few others); elsewhere PyTorch's default loop
        elsewhere = {} if self.device.type in ("cpu", "cuda") else {"fused": None}
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters(), **elsewhere)
        if self.hparams.scheduler is None:
            return {"optimizer": optimizer}
        scheduler = instantiate(self.hparams.scheduler)(optimizer=optimizer)
        # interval=step: the paper's schedule counts optimiser steps (iterations), not epochs
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step", "frequency": 1}}
