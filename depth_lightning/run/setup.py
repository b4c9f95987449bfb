"""A training run built from its config: the datamodule, the module (its weights checked against
``ckpt_path``, or copied from ``init_from``), the precision, the loggers and the Trainer; settings that
cannot work refused first."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, open_dict

from depth_lightning.core.config import build, check_choice, plain
from depth_lightning.core.errors import ConfigError
from depth_lightning.evaluation.keys import MetricKey
from depth_lightning.evaluation.metrics import METRIC_NAMES
from depth_lightning.inference.loading import check_compatible
from depth_lightning.inference.transfer import initialise_from
from depth_lightning.module import DepthModule
from depth_lightning.run.ddp import run_ddp_ranks_as_this_job
from depth_lightning.run.faults import AtomicCheckpointIO
from depth_lightning.run.folder import wandb_run_id
from depth_lightning.run.precision import float32_matmul, resolve_precision
from depth_lightning.run.speed import keep_freed_memory

log = logging.getLogger(__name__)


@dataclass
class Run:
    """What :func:`build_run` makes of a config."""

    datamodule: Any
    module: DepthModule
    trainer: L.Trainer
    ckpt_path: str | None
    init_from: dict[str, Any] | None = None  # where the weights came from (init_from)
    speed: dict[str, Any] | None = None  # the precision chosen, TF32, the cuDNN autotuner


def build_run(cfg: DictConfig, callbacks: list[L.Callback] | None = None) -> Run:
    """The datamodule, the module (its weights checked against ``ckpt_path``) and the Trainer, with
    ``callbacks`` (the run lifecycle's) before the configured ones."""
    check_settings(cfg)
    run_ddp_ranks_as_this_job()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    os.environ.setdefault("WANDB_MODE", "offline")  # never needs an account; `wandb sync` uploads later
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg.data, "data"), build_module(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    init, resumed_precision = None, None
    if ckpt_path is not None:
        # also refuses a checkpoint of a diverged run; a resumed run keeps the precision it started in
        resumed_precision = check_compatible(ckpt_path, module).get("precision")
        continue_wandb_run(cfg, Path(cfg.paths.output_dir))
        if cfg.get("init_from"):  # a fine-tuning run resumed: its weights come from its own checkpoint
            init = {"source": str(cfg.init_from), "resumed_from": ckpt_path}
    elif cfg.get("init_from"):
        init = initialise_from(module.net, cfg.init_from)
    speed = training_speed(cfg, module, resumed_precision)
    trainer = build_trainer(cfg, callbacks)
    for logger in trainer.loggers:  # the whole run config, once (the module logs none of its own)
        logger.log_hyperparams(plain(cfg))
    return Run(datamodule, module, trainer, ckpt_path, init, speed)


def training_speed(cfg: DictConfig, module: DepthModule, resumed: str | None) -> dict[str, Any]:
    """The precision (``trainer.precision=auto``: measured, ``run/precision.py``; ``resumed``: the one a
    resumed run's checkpoint records), TF32 and the cuDNN autotuner (off when ``trainer.deterministic``)
    this run trains with, set in ``cfg.trainer``; for ``metrics.json``."""
    chosen = resolve_precision(cfg.trainer.precision, module, cfg.data, cfg.get("precision_cache"), resumed)
    with open_dict(cfg):
        cfg.trainer.precision = chosen["precision"]
        if cfg.trainer.get("deterministic"):
            cfg.trainer.benchmark = False  # the autotuner picks kernels by timing: not reproducible
    return {"precision": chosen, "cudnn_benchmark": bool(cfg.trainer.get("benchmark")), **float32_matmul(cfg.tf32)}


def check_settings(cfg: DictConfig) -> None:
    """Settings that cannot work, refused before anything is built."""
    check_choice(cfg.get("test_checkpoint", "last"), "test_checkpoint", ("last", "best"))
    check_optimized_metric(cfg)
    if cfg.get("train", True) and cfg.trainer.get("max_steps") == 0:
        raise ConfigError(
            "config error: trainer.max_steps=0 trains nothing (its table would be the untrained model's); "
            "to evaluate a checkpoint use python -m depth_lightning.evaluate ckpt_path=..."
        )


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback] | None = None, **extra: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured loggers, ``callbacks`` and the configured ones."""
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    configured = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    callbacks = [*(callbacks or []), *configured]
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if str(cfg.trainer.get("precision")) == "auto":
        raise ConfigError(
            "config error: trainer.precision=auto is chosen by measuring the run's model: build the run with "
            "run.setup.build_run (or run.setup.training_speed first), or give trainer.precision=32-true|bf16-mixed"
        )
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # submitit requeues the job on timeout or preemption; Lightning must not do it a second time.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return build(cfg.trainer, "trainer", logger=loggers or False, callbacks=callbacks, plugins=plugins, **extra)


def build_module(cfg: DictConfig) -> DepthModule:
    """The LightningModule of ``cfg.model``, told the input size and the data it is trained on."""
    size = [cfg.data.height, cfg.data.width]
    return build(cfg.model, "model", _recursive_=False, input_size=size, data=plain(cfg.data))


def resolve_ckpt_path(cfg: DictConfig) -> str | None:
    """``ckpt_path``: null (fresh), a path, or ``last``: this run folder's ``checkpoints/last.ckpt``."""
    path = cfg.get("ckpt_path")
    if path is None:
        return None
    if path == "last":
        last = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
        if last.is_file():
            return str(last)
        if cfg.get("resume_or_fresh", False):
            log.warning("ckpt_path=last: %s does not exist; starting fresh (resume_or_fresh=true)", last)
            return None
        raise FileNotFoundError(
            f"ckpt_path=last: {last} does not exist. Name the run to resume: ckpt_path=last "
            "hydra.run.dir=<its folder> (without hydra.run.dir, the newest run of this task that has a "
            "last.ckpt is resumed, and there is none); add resume_or_fresh=true to start fresh instead"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path!r}: no such file")
    return str(path)


def continue_wandb_run(cfg: DictConfig, out_dir: Path) -> None:
    """A resumed run logs to the W&B run it started, not to a new one."""
    run_id = wandb_run_id(out_dir)
    if run_id is not None and cfg.get("logger") and cfg.logger.get("wandb") is not None:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"


def check_optimized_metric(cfg: DictConfig) -> None:
    """``optimized_metric`` names a split this run reports: ``val/...`` when it trains, ``test/...`` with
    ``test=true``."""
    key = str(cfg.get("optimized_metric") or "")
    try:
        parsed = MetricKey.parse(key)
    except ValueError:
        parsed = MetricKey(None)
    if parsed.split not in ("val", "test") or parsed.metric not in (*METRIC_NAMES, "loss", "pixel_acc"):
        raise ConfigError(
            f"config error: optimized_metric: {key!r} is not a logged key; use val/<metric> or test/<metric> (e.g. "
            f"val/abs_rel, val/hard/rmse, test/cap50/soft/d1; metrics: {', '.join(METRIC_NAMES)}, pixel_acc, loss)"
        )
    if parsed.split == "test" and not cfg.get("test", False):
        raise ConfigError(f"config error: optimized_metric: {key!r} needs test=true (this run never tests)")
    if parsed.split == "val" and not cfg.get("train", True):
        raise ConfigError(f"config error: optimized_metric: {key!r} needs train=true (this run never validates)")


def metric_value(results: dict[str, Any], key: str) -> float | None:
    """The value of ``optimized_metric`` (``val/abs_rel``, ``test/hard/rmse``...) in a run's results;
    None, with a warning, when the run did not log it (e.g. it never validated)."""
    parsed = MetricKey.parse(key)
    values = results.get(parsed.split) or {}
    name = str(MetricKey(parsed.metric, parsed.prediction, parsed.cap))
    if name not in values:
        log.warning(
            "optimized_metric=%s was not logged by this run (its %s keys: %s); the sweeper gets None",
            key,
            parsed.split,
            ", ".join(sorted(values)) or "none",
        )
        return None
    return float(values[name])
