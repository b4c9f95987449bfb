"""Surviving faults: atomic checkpoint files, a checkpoint on SIGTERM/SIGUSR1, the non-finite guard."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from depth_lightning.files import save_atomic

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written with :func:`~depth_lightning.files.save_atomic`: a process killed during a
    save leaves the previous checkpoint intact and loadable."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        save_atomic(path, lambda tmp: torch.save(checkpoint, tmp))


class CheckpointOnSignal(L.Callback):
    """On SIGTERM or SIGUSR1 (preemption, SLURM's warning before the time limit): finish the current
    step, write ``last.ckpt`` and stop cleanly, so ``ckpt_path=last`` resumes from there."""

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = signum

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                try:
                    self._previous[sig] = signal.signal(sig, self._handler)
                except ValueError:  # not the main thread: leave the handlers alone
                    pass

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        stop = trainer.strategy.reduce_boolean_decision(self.received is not None, all=False)
        if stop:
            path = self.dirpath / "last.ckpt"
            log.warning("signal %s: saving %s at step %d and stopping", self.received, path, trainer.global_step)
            trainer.save_checkpoint(path)
            trainer.should_stop = True

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


class NonFiniteError(RuntimeError):
    """A NaN or inf loss or gradient; the message names the step and the batch's samples."""


NONFINITE_MODES = ("stop", "skip", "off")


class NonFiniteGuard(L.Callback):
    """A NaN or inf loss or gradient: ``stop`` the run naming the optimiser step and the batch's
    sample ids, ``skip`` the optimiser step (counted in ``train/skipped_steps``; the BatchNorm
    statistics of a poisoned batch restored), or ``off``.

    A step is skipped by dropping every gradient before ``optimizer.step()``: PyTorch's optimizers
    leave a parameter without a gradient untouched (no momentum, no weight decay). Under DDP the
    gradients are already averaged over the ranks, so every rank skips the same steps.
    """

    def __init__(self, mode: str = "stop") -> None:
        if mode not in NONFINITE_MODES:
            raise ValueError(f"nonfinite={mode!r} is unknown; allowed: {', '.join(NONFINITE_MODES)}")
        self.mode = mode
        self.skipped_steps = 0
        self._ids: list[int] = []
        self._statistics: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *args: Any) -> None:
        if self.mode == "off":
            return
        self._ids = batch["index"].tolist() if "index" in batch else []
        if self.mode == "skip":  # a poisoned batch must not leave NaN in BatchNorm's running statistics
            self._statistics = {n: b.detach().clone() for n, b in pl_module.named_buffers() if "running" in n}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if self.mode == "off" or loss is None or torch.isfinite(loss):
            return
        self._stop_or_warn(trainer, f"loss {loss.item()}")
        with torch.no_grad():
            for name, buffer in pl_module.named_buffers():
                if name in self._statistics:
                    buffer.copy_(self._statistics[name])

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: Any) -> None:
        if self.mode == "off":
            return
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        # A sum is NaN or inf when any term is (or when the gradients are too large for float32,
        # itself a divergence), and costs one read of the gradients: half an L2 norm's time.
        if not grads or torch.stack([g.sum() for g in grads]).sum().isfinite():
            return
        self._stop_or_warn(trainer, "gradient")
        self.skipped_steps += 1
        for p in pl_module.parameters():
            p.grad = None
        pl_module.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)

    def _stop_or_warn(self, trainer: L.Trainer, what: str) -> None:
        message = (
            f"non-finite {what} at optimiser step {trainer.global_step} (epoch {trainer.current_epoch}), "
            f"batch sample ids {self._ids}"
        )
        if self.mode == "stop":
            raise NonFiniteError(message + "; set nonfinite=skip to skip such steps instead")
        log.warning("%s; the step is skipped (%d skipped so far)", message, self.skipped_steps)
