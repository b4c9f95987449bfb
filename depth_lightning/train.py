"""The main job: ``python -m depth_lightning.train [overrides]`` (Hydra; configs in ``conf/``)."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, OmegaConf

from depth_lightning.allocator import keep_freed_memory
from depth_lightning.config import ConfigError, validate
from depth_lightning.data.io import save_atomic
from depth_lightning.distributed import patch_lightning_for_hydra
from depth_lightning.faults import AtomicCheckpointIO

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")
log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig, **extra: Any) -> L.Trainer:
    """A Trainer from ``cfg.trainer``, the configured loggers and callbacks."""
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    kwargs.setdefault("sync_batchnorm", bool(cfg.model.sync_bn))
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # submitit requeues the job on timeout or preemption; Lightning must not do it a second time.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    try:
        return L.Trainer(**kwargs, logger=loggers or False, callbacks=callbacks, plugins=plugins, **extra)
    except TypeError as err:
        raise ConfigError(f"config error: trainer: {err} (see lightning.Trainer's arguments)") from None


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
            f"ckpt_path=last: {last} does not exist; run without ckpt_path, or add resume_or_fresh=true "
            "to start fresh when there is nothing to resume"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path!r}: no such file")
    return str(path)


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write JSON atomically: a reader never sees a half-written file."""
    text = json.dumps(results, indent=2, sort_keys=True)
    save_atomic(path, lambda p: p.write_text(text))


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``: the run config as W&B shows and filters it."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def split_metrics(metrics: dict[str, Any], split: str) -> dict[str, float]:
    """``{"val/soft/d1": x, ...}`` -> ``{"soft/d1": x, ...}`` for one split."""
    prefix = f"{split}/"
    return {k[len(prefix) :]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then (optionally) print the baselines table and test. Returns the results it saved."""
    from depth_lightning.data import DepthDataModule
    from depth_lightning.module import DepthModule, module_config

    validate(cfg)
    patch_lightning_for_hydra()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    os.environ.setdefault("WANDB_MODE", "offline")  # never needs an account; `wandb sync` uploads later
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    datamodule = DepthDataModule(cfg.data)
    config = module_config(cfg)
    module = DepthModule(config)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is not None:
        from depth_lightning.checkpoint import check_compatible

        check_compatible(ckpt_path, module)
    trainer = build_trainer(cfg)
    for lg in trainer.loggers:
        if isinstance(lg, WandbLogger) and trainer.is_global_zero:
            lg.experiment.config.update(flatten(config), allow_val_change=True)
    results: dict[str, Any] = {"config": config, "status": "running"}
    if trainer.is_global_zero:
        write_results(out_dir / "metrics.json", results)
    try:
        _run(cfg, trainer, module, datamodule, ckpt_path, results)
    except BaseException as err:
        if trainer.is_global_zero:  # the report lists the run as failed, with the reason
            write_results(out_dir / "metrics.json", {**results, "status": "failed", "error": repr(err)[:2000]})
        raise
    finally:
        _finish_wandb()  # also after a failure: the next job of a multirun starts its own W&B run
    results["status"] = "completed"
    results["world_size"] = trainer.world_size
    if trainer.is_global_zero:
        write_results(out_dir / "metrics.json", results)
    return results


def _run(
    cfg: DictConfig, trainer: L.Trainer, module: Any, datamodule: Any, ckpt_path: str | None, results: dict[str, Any]
) -> None:
    """Fit, baselines, test; results go into ``results``."""
    from depth_lightning.baselines import evaluate_with_baselines, fit_baselines, format_table

    if cfg.get("train", True):
        datamodule.setup("fit")  # builds train and validation only: fit never reads the test list
        held_out = datamodule.describe_validation()
        if held_out and trainer.is_global_zero:
            save_atomic(Path(cfg.paths.output_dir) / "val_split.txt", lambda p: p.write_text(held_out))
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        results["val"] = split_metrics(trainer.callback_metrics, "val")
        results["global_step"] = trainer.global_step
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    results["best_checkpoint"] = best or None
    if cfg.get("baselines", False) and trainer.is_global_zero:
        frames = datamodule.training_depth_sample(cfg.data.baseline_frames)
        table = evaluate_with_baselines(module, datamodule.val_dataloader(), fit_baselines(frames))
        results["baselines"] = table
        c, p, s = table["constant"]["abs_rel"], table["position_prior"]["abs_rel"], table["soft"]["abs_rel"]
        print(f"\nValidation set ({cfg.data.name}), model vs baselines that see no image content:")
        print(format_table(table))
        print(f"model soft abs rel / constant's: {s / c:.3f}; / position prior's: {s / p:.3f}\n")
    if cfg.get("test", False):
        # last: the weights after the final step, as the paper reports (Sec. 3.4); best: the checkpoint
        # chosen on the validation split, which never holds a test frame
        tested = best if cfg.get("test_checkpoint", "last") == "best" and best else None
        if cfg.get("test_checkpoint", "last") == "best" and not best:
            log.warning("test_checkpoint=best: no best checkpoint was written; testing the last weights")
        trainer.test(module, datamodule=datamodule, ckpt_path=tested, weights_only=False)
        results["test"] = split_metrics(trainer.callback_metrics, "test")
        results["tested_checkpoint"] = tested or "last"


def _finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    results = train(cfg)
    headline = results.get("val", {}).get("abs_rel")
    return float(headline) if headline is not None else None


def fix_run_time() -> None:
    """One time stamp for the run or sweep folder, fixed before Hydra starts and inherited by every
    process Lightning re-executes (DDP ranks), so all of them resolve the same folder."""
    os.environ.setdefault("DEPTH_LIGHTNING_RUN_TIME", datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))


def main() -> None:
    fix_run_time()
    _hydra_main()


if __name__ == "__main__":
    main()
