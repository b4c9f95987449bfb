"""The main job: ``python -m depth_lightning.train [overrides]`` (Hydra; configs in ``conf/``).

Compose, build, fit, compare with the baselines, test, record. The run's life (its folder, its
``metrics.json``, signals, the non-finite guard, the time budget) is
:class:`~depth_lightning.run.lifecycle.RunLifecycle`'s; building it from the config is
:mod:`depth_lightning.run.setup`'s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from depth_lightning.core.files import save_atomic
from depth_lightning.evaluation.baselines import compare_with_baselines
from depth_lightning.evaluation.evaluator import EvaluationResult, evaluator_for
from depth_lightning.evaluation.results import curves, record_test
from depth_lightning.run.command import command
from depth_lightning.run.lifecycle import RunLifecycle
from depth_lightning.run.loggers import log_final_metrics, log_test_summary, logged_metrics
from depth_lightning.run.setup import Run, build_run, metric_value

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then (optionally) print the baselines table and test; returns what ``metrics.json`` holds."""
    lifecycle = RunLifecycle(cfg)
    with lifecycle.started():
        if (done := lifecycle.completed_before()) is not None:
            return done
        with lifecycle.recorded():
            run = build_run(cfg, lifecycle.callbacks())
            results = fit_test_and_compare(cfg, run, lifecycle)
        return lifecycle.finish(results)


def fit_test_and_compare(cfg: DictConfig, run: Run, lifecycle: RunLifecycle) -> dict[str, Any]:
    """Fit, the baselines table, test: the results of each, and the loggers' final table."""
    results: dict[str, Any] = {"world_size": run.trainer.world_size, "speed": run.speed}
    if run.init_from is not None:
        results["init_from"] = run.init_from
    evaluated: dict[str, EvaluationResult | None] = {}
    if cfg.get("train", True):
        fitted, evaluated["val"] = fit(cfg, run)
        results.update(fitted, **lifecycle.measured(run.trainer))
        if results.get("interrupted"):
            return results  # a signal: last.ckpt is written; no baselines, no test
    best = run.trainer.checkpoint_callback.best_model_path if run.trainer.checkpoint_callback else ""
    results["best_checkpoint"] = best or None
    table, maps = None, None
    if cfg.get("baselines", False) and run.trainer.global_step > 0:
        table, maps = compare_with_baselines(run.module, run.datamodule, run.trainer.is_global_zero)
    if table is not None:
        results["baselines"] = table
    if cfg.get("test", False):
        tested, evaluated["test"] = test(cfg, run, maps, best)
        results.update(tested)
    # frames left out of the metrics: no valid ground truth; too few valid pixels for the protocol's minimum
    results["empty_frames"] = {split: r.empty_frames for split, r in evaluated.items() if r is not None}
    results["frames_below_min_pixels"] = {s: r.sparse_frames for s, r in evaluated.items() if r is not None}
    if run.trainer.is_global_zero:
        log_final_metrics(run.trainer.loggers, results)
    return results


def fit(cfg: DictConfig, run: Run) -> tuple[dict[str, Any], EvaluationResult | None]:
    """``trainer.fit`` on train and validation (the test list is never read): what it measured, and
    the last validation's result."""
    trainer, module, datamodule = run.trainer, run.module, run.datamodule
    datamodule.setup("fit")
    if cfg.get("test", False):
        datamodule.setup("test")  # the test list and its frames checked now, not after the fit
    held_out = datamodule.describe_validation()
    if held_out and trainer.is_global_zero:
        save_atomic(Path(cfg.paths.output_dir) / "val_split.txt", lambda p: p.write_text(held_out))
    started = time.monotonic()
    precision = str(trainer.precision)
    val_evaluator = evaluator_for(datamodule, "val", module.bins.num_bins, module.net.decoder, precision=precision)
    val = module.fit_with(trainer, datamodule, val_evaluator, run.ckpt_path)
    found: dict[str, Any] = {"fit_s": time.monotonic() - started, "global_step": trainer.global_step}
    if datamodule.augment is not None:  # the paper's augmentation and any albumentations extras, as trained
        found["augmentation"] = datamodule.augment.describe()
    found["val"] = {**logged_metrics(trainer, "val"), **(val.values if val else {})}
    return found, val


def test(
    cfg: DictConfig, run: Run, baselines: dict[str, Any] | None, best: str
) -> tuple[dict[str, Any], EvaluationResult]:
    """``trainer.test`` of the weights after the last step (``test_checkpoint=last``, as the paper
    reports, Sec. 3.4) or of the checkpoint chosen on validation, which never holds a test frame
    (``best``); the baselines scored beside them. Its files, intervals and card (rank 0)."""
    trainer, module = run.trainer, run.module
    wanted_best = cfg.get("test_checkpoint", "last") == "best"
    tested = best if wanted_best and best else None
    if wanted_best and not best:
        log.warning("test_checkpoint=best: no best checkpoint was written; testing the last weights")
    evaluator = evaluator_for(
        run.datamodule, "test", module.bins.num_bins, module.net.decoder, baselines, precision=str(trainer.precision)
    )
    result = module.test_with(trainer, run.datamodule, evaluator, tested)
    found: dict[str, Any] = {"test": logged_metrics(trainer, "test"), "tested_checkpoint": tested or "last"}
    found["precision"] = str(trainer.precision)  # what the numbers were computed in (evaluate reuses it)
    if trainer.is_global_zero:
        saved = record_test(result, Path(cfg.paths.output_dir), cfg.get("intervals"))
        found["test"].update(saved.pop("test_values"))  # float64: the per-image columns' means exactly
        found.update(saved)
        log_test_summary(trainer.loggers, saved, curves(result), run.datamodule.name)
    return found, result


def objective(cfg: DictConfig) -> float | None:
    """Train; the value of ``optimized_metric`` goes to Hydra's sweeper (Optuna minimises or maximises it)."""
    return metric_value(train(cfg), cfg.optimized_metric)


main = command("train", objective, resumes=True)

if __name__ == "__main__":
    main()
