"""The LightningModules: :class:`EvaluationModule` (a trained network's validation, test and predict
steps) and :class:`DepthModule` (training: the paper's loss, the optimiser and schedule). What a
validation or test scores is the :class:`~depth_lightning.evaluation.evaluator.Evaluator`'s business."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from torch import Tensor

from depth_lightning.core.config import check_optimizer_settings, plain
from depth_lightning.core.errors import DataError
from depth_lightning.evaluation.evaluator import EvaluationResult, Evaluator, evaluator_for
from depth_lightning.models import DepthNet, LogDepthBins, bin_cross_entropy
from depth_lightning.models.builder import build_network
from depth_lightning.models.loss import targets_at


class EvaluationModule(L.LightningModule):
    """A network's validation, test and predict steps under Lightning (DDP, precision): both decoders,
    the uncertainty and the bin labels go to the split's evaluator, batch outputs to the callbacks.
    ``evaluate`` and ``benchmark`` wrap a loaded :class:`DepthNet` (its bins, input size, decoder) in it."""

    def __init__(self, net: DepthNet) -> None:
        super().__init__()
        self.net = net
        self.evaluators = torch.nn.ModuleDict()  # per split; the entry points hand in their own
        self._results: dict[str, EvaluationResult] = {}  # the last evaluation of each split

    @property
    def bins(self) -> LogDepthBins:
        return self.net.bins

    def evaluate_with(self, **evaluators: Evaluator) -> None:
        """Score ``split=evaluator`` with these evaluators."""
        for split, evaluator in evaluators.items():
            self.evaluators[split] = evaluator.to(self.device)
            self._results.pop(split, None)

    def fit_with(
        self, trainer: L.Trainer, datamodule: Any, evaluator: Evaluator, ckpt_path: str | None = None
    ) -> EvaluationResult | None:
        """``trainer.fit``, validated by ``evaluator``: the last validation's result (None if none ran).
        A run resumed after its fit had ended (killed while testing) validates its final weights again."""
        self.evaluate_with(val=evaluator)
        trainer.fit(self, datamodule=datamodule, ckpt_path=ckpt_path)
        if "val" not in self._results and trainer.global_step > 0:
            trainer.validate(self, datamodule=datamodule, verbose=False)
        return self._results.get("val")

    def test_with(
        self, trainer: L.Trainer, datamodule: Any, evaluator: Evaluator, ckpt_path: str | None = None
    ) -> EvaluationResult:
        """``trainer.test`` (of ``ckpt_path``'s weights, else these), scored by ``evaluator``: its result."""
        self.evaluate_with(test=evaluator)
        trainer.test(self, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=False, verbose=False)
        return self._results["test"]

    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        for split in ("val", "test"):  # a split no caller gave an evaluator: the datamodule's protocol
            if split not in self.evaluators:
                evaluator = evaluator_for(datamodule, split, self.bins.num_bins, self.net.decoder)
                self.evaluate_with(**{split: evaluator})

    def forward(self, image: Tensor) -> Tensor:
        return self.net(image)

    def loss(self, logits: Tensor, depth: Tensor) -> tuple[Tensor, Tensor]:
        """Eq. 4 over the valid pixels, and the bin labels of ``depth`` at the logits' resolution."""
        labels = self.bins.labels(targets_at(depth, logits.shape[-2:]))
        return bin_cross_entropy(logits, labels, self.bins.ignore_index), labels

    def _count_skipped(self, batch: dict[str, Tensor], split: str) -> bool:
        """Log samples dropped by ``data.skip_bad_samples``; False when the whole batch was bad."""
        if "skipped" in batch:
            skipped = batch["skipped"].float()
            once = {"on_step": False, "on_epoch": True, "batch_size": 1, "sync_dist": True}
            self.log(f"{split}/skipped_samples", skipped, reduce_fx="sum", **once)
        return "image" in batch

    def _eval_step(self, split: str, batch: dict[str, Tensor]) -> dict[str, Any] | None:
        """Both decoders to the evaluator; returns the batch's outputs for the callbacks."""
        if not self._count_skipped(batch, split):
            return None
        logits = self(batch["image"])
        loss, labels = self.loss(logits, batch["depth"])
        decoded = self.bins.decode(logits)
        self.evaluators[split].process(batch, {**decoded, "labels": labels})
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, batch_size=logits.shape[0], sync_dist=True)
        return {"logits": logits, "labels": labels, "depth": decoded[self.net.decoder], **decoded}

    def _eval_epoch_end(self, split: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        frames = getattr(datamodule, "datasets", {}).get(split)
        result = self._results[split] = self.evaluators[split].evaluate(frames)
        for key, value in result.values.items():
            self.log(f"{split}/{key}", value, prog_bar=key == "abs_rel")

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any] | None:
        return self._eval_step("val", batch)

    def on_validation_epoch_start(self) -> None:
        self.evaluators["val"].reset()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> dict[str, Any] | None:
        return self._eval_step("test", batch)

    def on_test_epoch_start(self) -> None:
        self.evaluators["test"].reset()

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def predict_step(self, batch: dict[str, Tensor], batch_idx: int = 0) -> dict[str, Tensor]:
        """Depth (the headline decoder), both decoders, the uncertainty and the most likely bin."""
        decoded = self.bins.decode(self(batch["image"]))
        return {"depth": decoded[self.net.decoder], **decoded}


class DepthModule(EvaluationModule):
    """Trains the network with the paper's loss (Eq. 4); evaluation as :class:`EvaluationModule`. Every
    argument is saved with the weights as data (a checkpoint alone rebuilds the network).

    Args:
        net: ``model.net``, the network's settings and the training-only ones (``models/builder.py``).
        optimizer: a ``_partial_`` optimizer config, called with the parameters.
        scheduler: a ``_partial_`` schedule (:mod:`depth_lightning.models.schedules`), called with the optimizer.
        decoder: the headline decoder, ``soft`` (Eq. 5) or ``hard``: ``val/abs_rel`` and predict's depth.
        compile: ``torch.compile`` the network (the numbers do not change).
        channels_last: NHWC tensors (the numbers do not change).
        input_size: ``(height, width)`` the network is trained at, what evaluate and predict feed it.
        data: the run's data config (``evaluate`` reads its name and values, as data).
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
        # plain Python saved (save_hyperparameters reads these locals): a checkpoint loads with weights_only=True
        net, optimizer, scheduler, data = plain(net), plain(optimizer), plain(scheduler), plain(data)
        check_optimizer_settings(optimizer, scheduler)
        network = build_network(net, input_size, decoder, channels_last)
        super().__init__(network)
        if compile:
            self.net.compile()  # in place: the parameter names, and so the checkpoints, unchanged
        input_size = list(input_size)
        self.save_hyperparameters(logger=False)
        self._valid_train_pixels = 0

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

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Dropout draws from the global generator: a resumed run must continue its sequence.
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint["rng_states"] = rng
        checkpoint["precision"] = str(self.trainer.precision)  # as data: evaluate tests in it, as the run did

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints of 0.1.0 hold no bins: a resumed run keeps the ones its config defines
        checkpoint["state_dict"].setdefault("net.bins.log_centres", self.net.bins.log_centres)
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
