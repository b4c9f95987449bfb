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

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Write to a temporary file in the same folder, fsync, then rename over the target: a process
    killed during a save leaves the previous checkpoint intact and loadable."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


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
