"""The main job: ``python -m depth_lightning.train [overrides]`` (Hydra; configs in ``conf/``).

config -> objects (:func:`depth_lightning.config.build`): the datamodule (``data``), the
LightningModule with its network (``model``), callbacks, loggers and the Trainer; then fit, the
baselines table, and test. ``metrics.json`` in the run folder records the config, the status and
every final number.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig

from depth_lightning.config import CONF_DIR, build, check_choice, plain
from depth_lightning.faults import AtomicCheckpointIO
from depth_lightning.files import save_atomic, write_json
from depth_lightning.hydra_ddp import run_ddp_ranks_as_this_job
from depth_lightning.speed import keep_freed_memory

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig, **extra: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured loggers and callbacks."""
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    plugins = [AtomicCheckpointIO()]
    if SLURMEnvironment.detect():
        # submitit requeues the job on timeout or preemption; Lightning must not do it a second time.
        plugins.append(SLURMEnvironment(auto_requeue=False))
    return build(cfg.trainer, "trainer", logger=loggers or False, callbacks=callbacks, plugins=plugins, **extra)


def build_module(cfg: DictConfig) -> Any:
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
            f"ckpt_path=last: {last} does not exist; run without ckpt_path, or add resume_or_fresh=true "
            "to start fresh when there is nothing to resume"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path!r}: no such file")
    return str(path)


def split_metrics(metrics: dict[str, Any], split: str) -> dict[str, float]:
    """``{"val/soft/d1": x, ...}`` -> ``{"soft/d1": x, ...}`` for one split."""
    prefix = f"{split}/"
    return {k[len(prefix) :]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then (optionally) print the baselines table and test. Returns the results it saved."""
    check_choice(cfg.get("test_checkpoint", "last"), "test_checkpoint", ("last", "best"))
    run_ddp_ranks_as_this_job()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    os.environ.setdefault("WANDB_MODE", "offline")  # never needs an account; `wandb sync` uploads later
    L.seed_everything(cfg.seed, workers=True)
    out_dir = Path(cfg.paths.output_dir)
    datamodule, module = build(cfg.data, "data"), build_module(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is not None:
        from depth_lightning.checkpoint import check_compatible

        check_compatible(ckpt_path, module)
    trainer = build_trainer(cfg)
    config = plain(cfg)
    for logger in trainer.loggers:  # the whole run config, once (the module logs none of its own)
        logger.log_hyperparams(config)
    results: dict[str, Any] = {"config": config, "status": "running"}
    if trainer.is_global_zero:
        write_json(out_dir / "metrics.json", results)
    try:
        _run(cfg, trainer, module, datamodule, ckpt_path, results)
    except BaseException as err:
        if trainer.is_global_zero:  # the report lists the run as failed, with the reason
            write_json(out_dir / "metrics.json", {**results, "status": "failed", "error": repr(err)[:2000]})
        raise
    finally:
        _finish_wandb()  # also after a failure: the next job of a multirun starts its own W&B run
    results["status"] = "completed"
    results["world_size"] = trainer.world_size
    if trainer.is_global_zero:
        write_json(out_dir / "metrics.json", results)
    return results


def _run(
    cfg: DictConfig, trainer: L.Trainer, module: Any, datamodule: Any, ckpt_path: str | None, results: dict[str, Any]
) -> None:
    """Fit, baselines, test; results go into ``results``."""
    from depth_lightning.baselines import evaluate_with_baselines, fit_baselines
    from depth_lightning.tables import format_table

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
        baselines = fit_baselines(datamodule.training_depth_sample())
        table = evaluate_with_baselines(module, datamodule.val_dataloader(), baselines, datamodule.protocol)
        results["baselines"] = table
        c, p, s = table["constant"]["abs_rel"], table["position_prior"]["abs_rel"], table["soft"]["abs_rel"]
        print(f"\nValidation set ({datamodule.name}), model vs baselines that see no image content:")
        print(format_table(table, ("abs_rel", "d1", "rmse")))
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
