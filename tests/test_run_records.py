"""Runs a researcher can follow, search and resume: run records, config tree, loggers, Optuna,
sweep resume (the notebook with a parameter: tests/test_sweeps.py)."""

import json

import pytest
import yaml

from depth_lightning.core.errors import ConfigError
from depth_lightning.run.setup import check_optimized_metric, metric_value
from tests.helpers import composed, job_folder, run_module

TINY = ["debug=tiny", "baselines=false"]


def test_a_config_error_inside_a_multirun_leaves_its_reason_in_the_jobs_folder(tmp_path):
    proc = run_module(
        "depth_lightning.train", *TINY, "logger=csv", "model.net.num_bins=1", f"hydra.sweep.dir={tmp_path / 'sw'}",
        "--multirun", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    job = job_folder(tmp_path / "sw", "train")
    results = json.loads((job / "metrics.json").read_text())
    assert results["status"] == "failed" and "model.net.num_bins" in results["error"]
    log = (job / "train.log").read_text()
    assert "Traceback" in log and "model.net.num_bins" in log


def test_the_run_log_holds_lightnings_messages_and_the_run_says_where_its_outputs_are(tiny_run):
    log = (tiny_run / "train.log").read_text()
    assert "`Trainer.fit` stopped: `max_steps=40` reached." in log
    assert f"run folder: {tiny_run}" in log and f"last checkpoint: {tiny_run / 'checkpoints' / 'last.ckpt'}" in log
    tree = (tiny_run / "config_tree.log").read_text()
    assert "model" in tree and "backbone: resnet18" in tree and "trainer" in tree


@pytest.mark.parametrize("launcher", [None, "hydra/launcher=joblib", "hydra/launcher=slurm"])
def test_no_hydra_deprecation_warning_reaches_the_console(tmp_path, launcher):
    proc = run_module("depth_lightning.train", "--cfg", "job", *([launcher] if launcher else []), cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert "deprecated" not in out.lower() and "Warning" not in out, out[-2000:]


def test_tensorboard_adds_to_csv_and_wandb_with_scalars_and_panels(tiny_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tiny_run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    assert {"val/soft/abs_rel", "val/hard/abs_rel", "train/loss"} <= set(tags["scalars"])
    assert {"val/panels", "val/confusion", "val/bin_distributions"} <= set(tags["images"])
    results = json.loads((tiny_run / "metrics.json").read_text())
    last = events.Scalars("val/soft/abs_rel")[-1].value
    assert last == pytest.approx(results["val"]["soft/abs_rel"], rel=1e-6)
    assert (tiny_run / "csv" / "metrics.csv").stat().st_size > 0 and list((tiny_run / "wandb").glob("offline-run-*"))


def test_wandb_gets_a_table_of_the_final_metrics_of_both_decoders(tiny_run):
    from tests.wandb_reader import logged

    history = logged(next((tiny_run / "wandb").glob("offline-run-*")))["history"]
    tables = [row for row in history if row.get("final_metrics/_type") == "table-file"]
    assert len(tables) == 1 and tables[0]["final_metrics/nrows"] == 4  # val and test, soft and hard


def test_optimized_metric_is_checked_and_read_from_the_results():
    check_optimized_metric(composed("optimized_metric=val/hard/rmse"))
    with pytest.raises(ConfigError, match="optimized_metric.*test=true"):
        check_optimized_metric(composed("optimized_metric=test/abs_rel"))
    with pytest.raises(ConfigError, match="optimized_metric: 'abs_rel'"):
        check_optimized_metric(composed("optimized_metric=abs_rel"))
    with pytest.raises(ConfigError, match="optimized_metric: 'val/abs_rle'"):
        check_optimized_metric(composed("optimized_metric=val/abs_rle"))
    results = {"val": {"abs_rel": 0.2, "hard/rmse": 1.5}}
    assert metric_value(results, "val/hard/rmse") == 1.5
    assert metric_value(results, "val/d1") is None  # a run that did not log it: None for the sweeper, not a crash


@pytest.mark.slow
def test_a_two_trial_optuna_search_picks_by_the_optimized_metric(tmp_path):
    sweep = tmp_path / "sw"
    run_module(
        "depth_lightning.train", *TINY, "logger=csv", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
        "optimized_metric=val/hard/abs_rel", f"hydra.sweep.dir={sweep}", cwd=tmp_path,
    )  # fmt: skip
    trials = [json.loads(p.read_text()) for p in sweep.glob("train-*/metrics.json")]
    assert len(trials) == 2 and all(t["status"] == "completed" for t in trials)
    lrs = {t["config"]["model"]["optimizer"]["lr"] for t in trials}
    assert len(lrs) == 2 and all(1e-4 <= lr <= 1e-2 for lr in lrs)  # Optuna proposed them in the search space
    best = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    values = [t["val"]["hard/abs_rel"] for t in trials]
    assert best["best_value"] == pytest.approx(min(values), rel=1e-6)
    chosen = next(t for t in trials if t["val"]["hard/abs_rel"] == min(values))
    assert best["best_params"]["model.optimizer.lr"] == pytest.approx(chosen["config"]["model"]["optimizer"]["lr"])


@pytest.mark.slow
def test_a_resumed_sweep_skips_finished_jobs_and_keeps_one_wandb_group(tmp_path):
    from tests.wandb_reader import logged

    sweep = tmp_path / "sw"
    common = [
        "+experiment=synthetic_ablation",
        "variant=full",
        *TINY,
        "trainer.max_steps=8",
        f"hydra.sweep.dir={sweep}",
    ]
    run_module("depth_lightning.train", *common, "model.net.num_bins=20", "--multirun", cwd=tmp_path)
    first = job_folder(sweep, "full-K20")

    def outputs(job):  # what the job computed (Hydra rewrites .hydra/ and appends to train.log on every call)
        skip = {".run.lock", "train.log"}
        return {
            p: p.stat().st_mtime_ns
            for p in job.rglob("*")
            # not symlinks: W&B links its core service's shared log into every run folder
            if p.is_file() and not p.is_symlink() and ".hydra" not in p.parts and p.name not in skip
        }

    before = outputs(first)
    assert any(p.suffix == ".ckpt" for p in before) and first / "metrics.json" in before
    # the documented resume: the same command with ckpt_path=last resume_or_fresh=true (here with a
    # longer value list): the finished job is neither trained nor tested again
    proc = run_module(
        "depth_lightning.train", *common, "model.net.num_bins=20,40", "ckpt_path=last", "resume_or_fresh=true",
        "--multirun", cwd=tmp_path,
    )  # fmt: skip
    assert "completed before (ckpt_path=last); not trained or tested again" in proc.stdout + proc.stderr
    assert outputs(first) == before
    second = job_folder(sweep, "full-K40")
    assert json.loads((second / "metrics.json").read_text())["status"] == "completed"
    assert len([p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2
    groups = {logged(next((job / "wandb").glob("offline-run-*")))["run"]["group"] for job in (first, second)}
    assert groups == {f"synthetic_ablation-{sweep.name}"}
