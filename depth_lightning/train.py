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
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, open_dict

from depth_lightning.budget import TimeBudget
from depth_lightning.config import CONF_DIR, ConfigError, build, check_choice, plain
from depth_lightning.errors import one_line_errors
from depth_lightning.faults import AtomicCheckpointIO, CheckpointOnSignal, NonFiniteGuard, RunInterrupted
from depth_lightning.files import save_atomic, write_json
from depth_lightning.health import TrainingHealth
from depth_lightning.hydra_ddp import run_ddp_ranks_as_this_job
from depth_lightning.loggers import log_final_metrics
from depth_lightning.machine import describe_machine
from depth_lightning.run_folder import (
    RunLock,
    is_first_process,
    newest_resumable_run,
    read_status,
    remove_debris,
    wandb_run_id,
)
from depth_lightning.run_log import apply_extras, log_failure, route_library_logs, where_outputs_are
from depth_lightning.speed import keep_freed_memory

log = logging.getLogger(__name__)


def build_trainer(cfg: DictConfig, **extra: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured loggers and callbacks."""
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    budget = cfg.get("budget") or {"mode": "steps"}
    check_choice(budget.get("mode"), "budget.mode", ("steps", "time"))
    if budget["mode"] == "time":
        callbacks.append(TimeBudget(budget["minutes"]))
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
            f"ckpt_path=last: {last} does not exist. Name the run to resume: ckpt_path=last "
            "hydra.run.dir=<its folder> (without hydra.run.dir, the newest run of this task that has a "
            "last.ckpt is resumed, and there is none); add resume_or_fresh=true to start fresh instead"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path!r}: no such file")
    return str(path)


def split_metrics(metrics: dict[str, Any], split: str) -> dict[str, float]:
    """``{"val/soft/d1": x, ...}`` -> ``{"soft/d1": x, ...}`` for one split."""
    prefix = f"{split}/"
    return {k[len(prefix) :]: float(v) for k, v in metrics.items() if k.startswith(prefix)}


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then (optionally) print the baselines table and test. Returns the results it saved.

    ``metrics.json`` tells the truth: ``running``, then ``completed`` (the schedule ended), ``interrupted``
    (a signal stopped it after writing ``last.ckpt``; the exit is non-zero) or ``failed`` (with the
    error, configuration errors included).
    """
    out_dir = Path(cfg.paths.output_dir)
    route_library_logs()
    first = is_first_process()  # the process that owns the folder (not a DDP rank started for it)
    lock = RunLock(out_dir) if first else None
    if lock is not None:
        lock.acquire()  # one run per folder; a second one into it is refused before it touches anything
        for debris in remove_debris(out_dir):
            log.info("removed %s, left by an interrupted write", debris)
        if cfg.get("ckpt_path") == "last" and (done := read_status(out_dir, "completed")) is not None:
            # a sweep resumed into its folder: this job finished before; its results stand as they are
            log.info("%s: completed before (ckpt_path=last); not trained or tested again", out_dir)
            lock.release()
            return done
    results: dict[str, Any] = {"config": plain(cfg), "status": "running", "machine": describe_machine()}
    callbacks: dict[str, Any] = {}  # what _train builds that says how the run ended
    try:
        if first:
            write_json(out_dir / "metrics.json", results)
            apply_extras(cfg, out_dir)
        check_optimized_metric(cfg)
        _train(cfg, out_dir, results, callbacks)
    except BaseException as err:
        log_failure(err)
        on_signal = callbacks.get("on_signal")
        if first:  # the report lists the run as failed (or interrupted), with the reason
            status = {"status": "failed"}
            if on_signal is not None and on_signal.interrupted:
                status = {"status": "interrupted", "interrupted": on_signal.interrupted}
            write_json(out_dir / "metrics.json", {**results, **status, "error": repr(err)[:2000]})
        if on_signal is not None and on_signal.interrupted:
            # Lightning ends a run on SIGTERM with sys.exit(0): the scheduler must see a failure
            raise RunInterrupted(_interrupted_message(on_signal.interrupted, out_dir)) from err
        raise
    finally:
        _finish_wandb()  # also after a failure: the next job of a multirun starts its own W&B run
        if lock is not None:
            lock.release()
    on_signal = callbacks.get("on_signal")
    if on_signal is not None and on_signal.interrupted:
        results.update(status="interrupted", interrupted=on_signal.interrupted)
        if first:
            write_json(out_dir / "metrics.json", results)
        raise RunInterrupted(_interrupted_message(on_signal.interrupted, out_dir))
    results["status"] = "completed"
    if first:
        write_json(out_dir / "metrics.json", results)
        log.info(where_outputs_are(out_dir, results.get("best_checkpoint")))
    return results


def _interrupted_message(interrupted: dict[str, Any], out_dir: Path) -> str:
    return (
        f"{interrupted['signal']} at optimiser step {interrupted['step']}: {out_dir / 'checkpoints' / 'last.ckpt'} "
        f"written; resume with ckpt_path=last hydra.run.dir={out_dir}"
    )


def check_optimized_metric(cfg: DictConfig) -> None:
    """``optimized_metric`` names a split this run reports: ``val/...`` when it trains, ``test/...`` with
    ``test=true``."""
    from depth_lightning.metrics import METRIC_NAMES

    key = str(cfg.get("optimized_metric") or "")
    split, name = key.split("/", 1)[0], key.rsplit("/", 1)[-1]
    if split not in ("val", "test") or "/" not in key or name not in (*METRIC_NAMES, "loss", "pixel_acc"):
        raise ConfigError(
            f"config error: optimized_metric: {key!r} is not a logged key; use val/<metric> or test/<metric> (e.g. "
            f"val/abs_rel, val/hard/rmse, test/cap50/soft/d1; metrics: {', '.join(METRIC_NAMES)}, pixel_acc, loss)"
        )
    if split == "test" and not cfg.get("test", False):
        raise ConfigError(f"config error: optimized_metric: {key!r} needs test=true (this run never tests)")
    if split == "val" and not cfg.get("train", True):
        raise ConfigError(f"config error: optimized_metric: {key!r} needs train=true (this run never validates)")


def metric_value(results: dict[str, Any], key: str) -> float | None:
    """The value of ``optimized_metric`` (``val/abs_rel``, ``test/hard/rmse``...) in a run's results;
    None, with a warning, when the run did not log it (e.g. it never validated)."""
    split, name = key.split("/", 1)
    values = results.get(split) or {}
    if name not in values:
        log.warning(
            "optimized_metric=%s was not logged by this run (its %s keys: %s); the sweeper gets None",
            key,
            split,
            ", ".join(sorted(values)) or "none",
        )
        return None
    return float(values[name])


def _train(cfg: DictConfig, out_dir: Path, results: dict[str, Any], callbacks: dict[str, Any]) -> None:
    """Build everything and run; ``callbacks["on_signal"]`` says whether a signal stopped the run."""
    check_choice(cfg.get("test_checkpoint", "last"), "test_checkpoint", ("last", "best"))
    if cfg.get("train", True) and cfg.trainer.get("max_steps") == 0:
        raise ConfigError(
            "config error: trainer.max_steps=0 trains nothing (its table would be the untrained model's); "
            "to evaluate a checkpoint use python -m depth_lightning.evaluate ckpt_path=..."
        )
    run_ddp_ranks_as_this_job()
    keep_freed_memory(cfg.get("keep_freed_memory", True))
    os.environ.setdefault("WANDB_MODE", "offline")  # never needs an account; `wandb sync` uploads later
    L.seed_everything(cfg.seed, workers=True)
    datamodule, module = build(cfg.data, "data"), build_module(cfg)
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path is not None:
        from depth_lightning.checkpoint import check_compatible

        check_compatible(ckpt_path, module)  # also refuses a checkpoint of a diverged run
        continue_wandb_run(cfg, out_dir)
    trainer = build_trainer(cfg)
    for logger in trainer.loggers:  # the whole run config, once (the module logs none of its own)
        logger.log_hyperparams(results["config"])
    callbacks["on_signal"] = next((c for c in trainer.callbacks if isinstance(c, CheckpointOnSignal)), None)
    results["world_size"] = trainer.world_size
    _run(cfg, trainer, module, datamodule, ckpt_path, results)


def continue_wandb_run(cfg: DictConfig, out_dir: Path) -> None:
    """A resumed run logs to the W&B run it started, not to a new one."""
    run_id = wandb_run_id(out_dir)
    if run_id is not None and cfg.get("logger") and cfg.logger.get("wandb") is not None:
        with open_dict(cfg):
            cfg.logger.wandb.id = run_id
            cfg.logger.wandb.resume = "allow"


def _run(
    cfg: DictConfig, trainer: L.Trainer, module: Any, datamodule: Any, ckpt_path: str | None, results: dict[str, Any]
) -> None:
    """Fit, baselines, test; results go into ``results``."""
    from depth_lightning.baselines import evaluate_with_baselines, fit_baselines
    from depth_lightning.per_image import record_test
    from depth_lightning.tables import format_table

    if cfg.get("train", True):
        datamodule.setup("fit")  # builds train and validation only: fit never reads the test list
        held_out = datamodule.describe_validation()
        if held_out and trainer.is_global_zero:
            save_atomic(Path(cfg.paths.output_dir) / "val_split.txt", lambda p: p.write_text(held_out))
        started = time.monotonic()
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        results["fit_s"] = time.monotonic() - started
        results["val"] = split_metrics(trainer.callback_metrics, "val")
        results["global_step"] = trainer.global_step
        budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
        results["budget"] = budget.state() if budget else {"mode": "steps", "max_steps": trainer.max_steps}
        health = next((c for c in trainer.callbacks if isinstance(c, TrainingHealth)), None)
        if health is not None:
            results["health"] = health.state()
        guard = next((c for c in trainer.callbacks if isinstance(c, NonFiniteGuard)), None)
        if guard is not None and guard.skipped_steps:
            results["skipped_steps"] = guard.skipped_steps
            log.warning(
                "nonfinite=skip: %d of %d optimiser steps were skipped (non-finite loss or gradients)",
                guard.skipped_steps,
                trainer.global_step,
            )
        if trainer.should_stop and any(getattr(c, "interrupted", None) for c in trainer.callbacks):
            return  # a signal: last.ckpt is written; no baselines, no test
    best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
    results["best_checkpoint"] = best or None
    if cfg.get("baselines", False) and trainer.global_step > 0:
        try:
            baselines = fit_baselines(datamodule.training_depth_sample())  # every rank: all score them at test
            if trainer.is_global_zero:
                table = evaluate_with_baselines(module, datamodule.val_dataloader(), baselines, datamodule.protocol)
        except Exception as err:  # a finished run is not failed by its comparison table
            log.warning("the baselines could not be computed (%r); the run's own results stand", err)
            results["baselines"] = {"error": repr(err)[:500]}
        else:
            module.score_baselines(baselines)
        if trainer.is_global_zero and "baselines" not in results:
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
        trainer.test(module, datamodule=datamodule, ckpt_path=tested, weights_only=False, verbose=False)
        results["test"] = split_metrics(trainer.callback_metrics, "test")
        results["tested_checkpoint"] = tested or "last"
        if trainer.is_global_zero:
            found = record_test(module, datamodule, Path(cfg.paths.output_dir), trainer.loggers, cfg.get("intervals"))
            results["test"].update(found.pop("test_values"))  # float64: the per-image columns' means exactly
            results.update(found)
    if cfg.get("train", True):
        results["val"].update(module.final_values.get("val", {}))
    results["empty_frames"] = module.empty_frames  # left out of the metrics: no valid ground truth
    if trainer.is_global_zero:
        log_final_metrics(trainer.loggers, results)


def _finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts its own."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> float | None:
    """Train; the value of ``optimized_metric`` goes to Hydra's sweeper (Optuna minimises or maximises it)."""
    results = train(cfg)
    return metric_value(results, cfg.optimized_metric)


def fix_run_time() -> None:
    """One time stamp for the run or sweep folder, fixed before Hydra starts and inherited by every
    process Lightning re-executes (DDP ranks), so all of them resolve the same folder."""
    os.environ.setdefault("DEPTH_LIGHTNING_RUN_TIME", datetime.now().strftime("%Y-%m-%d_%H-%M-%S"))


def find_run_to_resume(argv: list[str]) -> list[str]:
    """``ckpt_path=last`` without ``hydra.run.dir``: the command line with the folder of the newest run
    of its task that has a ``last.ckpt`` (printed), so that the run resumes in its own folder."""
    args = argv[1:]
    if "ckpt_path=last" not in args or any(a.startswith("hydra.run.dir=") for a in args) or "-m" in args:
        return argv
    if "--multirun" in args:
        return argv
    from depth_lightning.config import compose_config

    cfg = compose_config(*(a for a in args if not a.startswith("hydra.")))
    found = newest_resumable_run(Path(cfg.paths.log_dir) / cfg.task_name / "runs")
    if found is None:
        return argv
    print(f"ckpt_path=last: resuming the newest run of task {cfg.task_name!r} that has a last.ckpt: {found}")
    return [*argv, f"hydra.run.dir={found}"]


def main() -> None:
    fix_run_time()
    sys.argv = find_run_to_resume(sys.argv)
    _hydra_main()


if __name__ == "__main__":
    main()
