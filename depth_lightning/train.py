"""The main job: ``python -m depth_lightning.train [overrides]`` (Hydra; configs in ``conf/``).

One flow, each step a function that returns what it made: build (datamodule, module with its
network, callbacks, loggers, Trainer: :func:`depth_lightning.core.config.build`), fit, compare with the
baselines, test, record. ``metrics.json`` in the run folder records the config, the status and every
final number (:mod:`depth_lightning.run.record`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import DictConfig, open_dict

from depth_lightning.callbacks.health import TrainingHealth
from depth_lightning.core.config import CONF_DIR, added_groups_as_choices, build, check_choice, compose_config, plain
from depth_lightning.core.errors import ConfigError, one_line_errors
from depth_lightning.core.files import save_atomic
from depth_lightning.evaluation.baselines import evaluate_with_baselines, fit_baselines
from depth_lightning.evaluation.evaluator import EvaluationResult, evaluator_for
from depth_lightning.evaluation.metrics import METRIC_NAMES
from depth_lightning.evaluation.protocol import protocol_of
from depth_lightning.evaluation.results import curves, record_test
from depth_lightning.evaluation.tables import format_table
from depth_lightning.inference.loading import check_compatible
from depth_lightning.inference.transfer import initialise_from
from depth_lightning.module import DepthModule
from depth_lightning.run.budget import TimeBudget
from depth_lightning.run.ddp import run_ddp_ranks_as_this_job
from depth_lightning.run.faults import AtomicCheckpointIO, CheckpointOnSignal, NonFiniteGuard
from depth_lightning.run.folder import (
    fix_run_time,
    is_first_process,
    lock_for_run,
    newest_resumable_run,
    read_status,
    remove_debris,
    wandb_run_id,
)
from depth_lightning.run.log import apply_extras, route_library_logs, where_outputs_are
from depth_lightning.run.loggers import log_final_metrics, log_test_summary, logged_metrics
from depth_lightning.run.precision import float32_matmul, resolve_precision
from depth_lightning.run.record import RunRecord
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


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then (optionally) print the baselines table and test; returns what ``metrics.json`` holds."""
    out_dir = Path(cfg.paths.output_dir)
    route_library_logs()
    first = is_first_process()  # the process that owns the folder (not a DDP rank started for it)
    # one run per folder, never started afresh over a finished one; refused before anything is written
    lock = lock_for_run(out_dir, cfg.get("ckpt_path")) if first else None
    if lock is not None:
        for debris in remove_debris(out_dir):
            log.info("removed %s, left by an interrupted write", debris)
    try:
        if cfg.get("ckpt_path") == "last" and (done := read_status(out_dir, "completed")) is not None:
            # a sweep resumed into its folder: this job finished before; its results stand as they are
            log.info("%s: completed before (ckpt_path=last); not trained or tested again", out_dir)
            return done
        record = RunRecord(out_dir, cfg, write=first)
        with record.running():
            if first:
                apply_extras(cfg, out_dir)
            run = build_run(cfg)
            record.signals = next((c for c in run.trainer.callbacks if isinstance(c, CheckpointOnSignal)), None)
            results = fit_test_and_compare(cfg, run)
        results = record.finish(results)
    finally:
        _finish_wandb()  # also after a failure: the next job of a multirun starts its own W&B run
        if lock is not None:
            lock.release()
    if first:
        log.info(where_outputs_are(out_dir, results.get("best_checkpoint")))
    return results


def fit_test_and_compare(cfg: DictConfig, run: Run) -> dict[str, Any]:
    """Fit, the baselines table, test: the results of each, and the loggers' final table."""
    results: dict[str, Any] = {"world_size": run.trainer.world_size, "speed": run.speed}
    if run.init_from is not None:
        results["init_from"] = run.init_from
    evaluated: dict[str, EvaluationResult | None] = {}
    if cfg.get("train", True):
        fitted, evaluated["val"] = fit(cfg, run)
        results.update(fitted)
        if results.get("interrupted"):
            return results  # a signal: last.ckpt is written; no baselines, no test
    best = run.trainer.checkpoint_callback.best_model_path if run.trainer.checkpoint_callback else ""
    results["best_checkpoint"] = best or None
    table, maps = compare_with_baselines(cfg, run)
    if table is not None:
        results["baselines"] = table
    if cfg.get("test", False):
        tested, evaluated["test"] = test(cfg, run, maps, best)
        results.update(tested)
    # frames left out of the metrics: no valid ground truth
    results["empty_frames"] = {split: r.empty_frames for split, r in evaluated.items() if r is not None}
    # frames with too few valid pixels for the protocol's minimum: left out too, named
    results["frames_below_min_pixels"] = {s: r.sparse_frames for s, r in evaluated.items() if r is not None}
    if run.trainer.is_global_zero:
        log_final_metrics(run.trainer.loggers, results)
    return results


def build_run(cfg: DictConfig) -> Run:
    """The datamodule, the module (its weights checked against ``ckpt_path``) and the Trainer."""
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
    trainer = build_trainer(cfg)
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


def fit(cfg: DictConfig, run: Run) -> tuple[dict[str, Any], EvaluationResult | None]:
    """``trainer.fit`` on train and validation (the test list is never read): what it measured, and
    the last validation's result."""
    trainer, module, datamodule = run.trainer, run.module, run.datamodule
    val = evaluator_for(datamodule, "val", module.bins.num_bins, module.net.decoder)
    module.evaluate_with(val=val)
    datamodule.setup("fit")
    if cfg.get("test", False):
        datamodule.setup("test")  # the test list and its frames checked now, not after the fit
    held_out = datamodule.describe_validation()
    if held_out and trainer.is_global_zero:
        save_atomic(Path(cfg.paths.output_dir) / "val_split.txt", lambda p: p.write_text(held_out))
    started = time.monotonic()
    trainer.fit(module, datamodule=datamodule, ckpt_path=run.ckpt_path)
    if val.result is None and trainer.global_step > 0:
        # resumed after its fit had ended (e.g. killed while testing): the final weights validated again
        trainer.validate(module, datamodule=datamodule, verbose=False)
    found: dict[str, Any] = {"fit_s": time.monotonic() - started, "global_step": trainer.global_step}
    if datamodule.augment is not None:  # the paper's augmentation and any albumentations extras, as trained
        found["augmentation"] = datamodule.augment.describe()
    found["val"] = {**logged_metrics(trainer, "val"), **(val.result.values if val.result else {})}
    budget = next((c for c in trainer.callbacks if isinstance(c, TimeBudget)), None)
    found["budget"] = budget.state() if budget else {"mode": "steps", "max_steps": trainer.max_steps}
    health = next((c for c in trainer.callbacks if isinstance(c, TrainingHealth)), None)
    if health is not None:
        found["health"] = health.state()
    guard = next((c for c in trainer.callbacks if isinstance(c, NonFiniteGuard)), None)
    if guard is not None and guard.skipped_steps:
        found["skipped_steps"] = guard.skipped_steps
        log.warning(
            "nonfinite=skip: %d of %d optimiser steps were skipped (non-finite loss or gradients)",
            guard.skipped_steps,
            trainer.global_step,
        )
    signal = next((c for c in trainer.callbacks if isinstance(c, CheckpointOnSignal)), None)
    if signal is not None and signal.interrupted:
        found["interrupted"] = signal.interrupted
    return found, val.result


def compare_with_baselines(cfg: DictConfig, run: Run) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The trained model against the best constant and the position prior on the validation split
    (printed), and the baselines' maps, to be scored at test too. A failure to compute them never
    fails a finished run: it is recorded instead."""
    trainer, datamodule = run.trainer, run.datamodule
    if not cfg.get("baselines", False) or trainer.global_step == 0:
        return None, None
    try:
        maps = fit_baselines(datamodule.training_depth_sample())  # every rank: all score them at test
        if not trainer.is_global_zero:
            return None, maps
        table = evaluate_with_baselines(
            run.module, datamodule.val_dataloader(), maps, protocol_of(datamodule), datamodule.name
        )
    except Exception as err:  # a finished run is not failed by its comparison table
        log.warning("the baselines could not be computed (%r); the run's own results stand", err)
        return {"error": repr(err)[:500]}, None
    c, p, s = table["constant"]["abs_rel"], table["position_prior"]["abs_rel"], table["soft"]["abs_rel"]
    print(f"\nValidation set ({datamodule.name}), model vs baselines that see no image content:")
    print(format_table(table, ("abs_rel", "d1", "rmse")))
    print(f"model soft abs rel / constant's: {s / c:.3f}; / position prior's: {s / p:.3f}\n")
    return table, maps


def test(
    cfg: DictConfig, run: Run, baselines: dict[str, Any] | None, best: str
) -> tuple[dict[str, Any], EvaluationResult]:
    """``trainer.test`` of the weights after the last step (``test_checkpoint=last``, as the paper
    reports, Sec. 3.4) or of the checkpoint chosen on validation, which never holds a test frame
    (``best``); the baselines scored beside them. Its files, intervals and card (rank 0)."""
    trainer, module = run.trainer, run.module
    wanted_best = cfg.get("test_checkpoint", "last") == "best"
    if wanted_best and not best:
        log.warning("test_checkpoint=best: no best checkpoint was written; testing the last weights")
    tested = best if wanted_best and best else None
    evaluator = evaluator_for(run.datamodule, "test", module.bins.num_bins, module.net.decoder, baselines)
    module.evaluate_with(test=evaluator)
    trainer.test(module, datamodule=run.datamodule, ckpt_path=tested, weights_only=False, verbose=False)
    found: dict[str, Any] = {"test": logged_metrics(trainer, "test"), "tested_checkpoint": tested or "last"}
    found["precision"] = str(trainer.precision)  # what the numbers were computed in (evaluate reuses it)
    if trainer.is_global_zero:
        saved = record_test(evaluator.result, Path(cfg.paths.output_dir), cfg.get("intervals"))
        found["test"].update(saved.pop("test_values"))  # float64: the per-image columns' means exactly
        found.update(saved)
        log_test_summary(trainer.loggers, saved, curves(evaluator.result), run.datamodule.name)
    return found, evaluator.result


def build_trainer(cfg: DictConfig, **extra: Any) -> L.Trainer:
    """The Trainer of ``cfg.trainer`` with the configured loggers and callbacks."""
    loggers = [build(c, f"logger.{k}") for k, c in (cfg.get("logger") or {}).items() if c is not None]
    callbacks = [build(c, f"callbacks.{k}") for k, c in (cfg.get("callbacks") or {}).items() if c is not None]
    if not loggers:  # Lightning refuses a learning-rate monitor with nothing to log to
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    if str(cfg.trainer.get("precision")) == "auto":
        raise ConfigError(
            "config error: trainer.precision=auto is chosen by measuring the run's model: build the run with "
            "train.build_run (or train.training_speed first), or give trainer.precision=32-true|bf16-mixed"
        )
    budget = cfg.get("budget") or {"mode": "steps"}
    check_choice(budget.get("mode"), "budget.mode", ("steps", "time"))
    if budget["mode"] == "time":
        callbacks.append(TimeBudget(budget["minutes"]))
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


def _finish_wandb() -> None:
    """Close the W&B run so the next job of a multirun starts its own."""
    wandb = sys.modules.get("wandb")  # only if a logger imported it
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
@one_line_errors
def _hydra_main(cfg: DictConfig) -> float | None:
    """Train; the value of ``optimized_metric`` goes to Hydra's sweeper (Optuna minimises or maximises it)."""
    results = train(cfg)
    return metric_value(results, cfg.optimized_metric)


def find_run_to_resume(argv: list[str]) -> list[str]:
    """``ckpt_path=last`` without ``hydra.run.dir``: the command line with the folder of the newest run
    of its task that has a ``last.ckpt`` (printed), so that the run resumes in its own folder."""
    args = argv[1:]
    if "ckpt_path=last" not in args or any(a.startswith("hydra.run.dir=") for a in args) or "-m" in args:
        return argv
    if "--multirun" in args:
        return argv
    cfg = compose_config(*(a for a in args if not a.startswith("hydra.")))
    found = newest_resumable_run(Path(cfg.paths.log_dir) / cfg.task_name / "runs")
    if found is None:
        return argv
    print(f"ckpt_path=last: resuming the newest run of task {cfg.task_name!r} that has a last.ckpt: {found}")
    return [*argv, f"hydra.run.dir={found}"]


def multirun_flag_last(argv: list[str]) -> list[str]:
    """``--multirun`` / ``-m`` moved after the overrides: Hydra's parser takes overrides on one side
    of the flag only, and ends with ``unrecognized arguments`` otherwise (the flag takes no value)."""
    flags = [a for a in argv[1:] if a in ("--multirun", "-m")]
    return [argv[0], *(a for a in argv[1:] if a not in flags), *flags]


def main() -> None:
    fix_run_time()
    sys.argv = find_run_to_resume(multirun_flag_last(added_groups_as_choices(sys.argv, "train")))
    _hydra_main()


if __name__ == "__main__":
    main()
