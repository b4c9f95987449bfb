"""Surviving faults: atomic checkpoint files, a checkpoint on SIGTERM/SIGUSR1, the non-finite guard."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from depth_lightning.core.errors import NonFiniteError
from depth_lightning.core.files import save_atomic

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written with :func:`~depth_lightning.core.files.save_atomic`: a process killed during a
    save leaves the previous checkpoint intact and loadable."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        save_atomic(path, lambda tmp: torch.save(checkpoint, tmp))


class CheckpointOnSignal(L.Callback):
    """On SIGTERM or SIGUSR1 (preemption, SLURM's warning before the time limit): finish the current
    batch, write ``last.ckpt`` and stop; the entry point then records the run as ``interrupted`` at
    that step and exits non-zero. Under submitit, its own SIGUSR1 handler runs after the save and
    requeues the job, which resumes from ``last.ckpt``."""

    SIGNALS = ("SIGTERM", "SIGUSR1")

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.received: int | None = None
        self.interrupted: dict[str, Any] | None = None  # {"signal": name, "step": N} once saved
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
        if not stop:
            return
        path = self.dirpath / "last.ckpt"
        name = signal.Signals(self.received).name if self.received else "a signal on another process"
        log.warning("%s: saving %s at step %d and stopping", name, path, trainer.global_step)
        trainer.save_checkpoint(path)
        trainer.should_stop = True
        self.interrupted = {"signal": name, "step": trainer.global_step}
        previous = self._previous.get(getattr(signal, "SIGUSR1", None))
        if self.received == getattr(signal, "SIGUSR1", None) and callable(previous):
            previous(self.received, None)  # submitit's: requeue the job, now that last.ckpt is written

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


class FiniteModelCheckpoint(ModelCheckpoint):
    """A ``ModelCheckpoint`` that never ranks a checkpoint by a NaN or infinite monitor value
    (Lightning's would keep the first such checkpoint as the "best")."""

    def check_monitor_top_k(self, trainer: L.Trainer, current: torch.Tensor | None = None) -> bool:
        if current is not None and not torch.isfinite(torch.as_tensor(current)).all():
            log.warning("%s is %s at step %d: no checkpoint chosen on it", self.monitor, current, trainer.global_step)
            return False
        return super().check_monitor_top_k(trainer, current)


NONFINITE_MODES = ("stop", "skip", "off")


class NonFiniteGuard(L.Callback):
    """A NaN or inf loss or gradient: ``stop`` the run naming the optimiser step and the batch's
    sample ids, ``skip`` the optimiser step (counted in ``train/skipped_steps``; the BatchNorm
    statistics of a poisoned batch restored), or ``off``. After every optimiser step the weights and
    buffers are checked too, before any checkpoint callback runs: a non-finite one stops the run in
    either mode, so a poisoned state is never written and the last checkpoint stays finite.

    A step is skipped by dropping every gradient before ``optimizer.step()``: PyTorch's optimizers
    leave a parameter without a gradient untouched (no momentum, no weight decay). Under DDP the
    gradients are already averaged over the ranks, so every rank skips the same steps.
    """

    def __init__(self, mode: str = "stop") -> None:
        if mode not in NONFINITE_MODES:
            raise ValueError(f"nonfinite={mode!r} is unknown; allowed: {', '.join(NONFINITE_MODES)}")
        self.mode = mode
        self.skipped_steps = 0
        self.steps_seen = 0
        self._ids: list[int] = []
        self._statistics: dict[str, torch.Tensor] = {}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, *args: Any) -> None:
        if self.mode == "off":
            return
        self._ids = batch["index"].tolist() if "index" in batch else []
        if self.mode == "skip":  # a poisoned batch must not leave NaN in BatchNorm's running statistics
            self._statistics = {n: b.detach().clone() for n, b in pl_module.named_buffers() if "running" in n}

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, *args: Any) -> None:
        if self.mode == "off":
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is not None and not torch.isfinite(loss):
            self._stop_or_warn(trainer, f"loss {loss.item()}")
            with torch.no_grad():
                for name, buffer in pl_module.named_buffers():
                    if name in self._statistics:
                        buffer.copy_(self._statistics[name])
        if trainer.global_step != self.steps_seen:  # an optimiser step was taken: check what it wrote
            self.steps_seen = trainer.global_step
            state = [t for t in (*pl_module.parameters(), *pl_module.buffers()) if t.is_floating_point()]
            # one sum per tensor is cheap; huge finite weights can overflow it, so look closer before stopping
            if not torch.stack([t.sum() for t in state]).sum().isfinite():
                bad = [
                    n
                    for n, t in (*pl_module.named_parameters(), *pl_module.named_buffers())
                    if t.is_floating_point() and not torch.isfinite(t).all()
                ]
            else:
                bad = []
            if bad:
                raise NonFiniteError(
                    f"non-finite weights or statistics after optimiser step {trainer.global_step} (batch sample ids "
                    f"{self._ids}): {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; nothing of this state is "
                    "saved, the last checkpoint is the last finite one (lower the learning rate?)"
                )

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
