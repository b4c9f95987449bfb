"""How much to trust a number: per-image results, bootstrap intervals, seeds, protocol cards,
evaluated uncertainty, the dataset check and the training-health guard."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from depth_lightning.evaluation.metrics import METRIC_NAMES, DepthMetrics
from depth_lightning.evaluation.per_image import read_per_image_csv
from depth_lightning.evaluation.sparsification import FRACTIONS, Sparsification, ause, curves, summarise
from experiments import report
from experiments.report.__main__ import main as report_main
from tests.helpers import SHARED, TINY_SWEEP_JOB, built, composed_for, copy_records, run_module, train_here

REAL = SHARED / "realdata"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real NYU/KITTI samples not present at {REAL}")
SWEEP_TINY = [*TINY_SWEEP_JOB, "trainer.max_steps=4", "logger=csv"]


# -- uncertainty ---------------------------------------------------------------------------------------
def test_ause_is_zero_for_the_oracle_ordering_and_clearly_positive_for_a_random_one():
    rng = np.random.default_rng(0)
    g = torch.from_numpy(rng.uniform(1, 9, 5000))
    p = g * torch.from_numpy(rng.lognormal(0, 0.3, 5000))
    error = torch.stack([(p - g).abs() / g, (p - g).square()])
    oracle = curves(error, (p - g).abs() / g)  # uncertainty = the abs rel error itself
    assert ause(oracle["abs_rel/uncertainty"].numpy(), oracle["abs_rel/oracle"].numpy()) == pytest.approx(0, abs=1e-12)
    random = curves(error, torch.from_numpy(rng.random(5000)))
    for name in ("abs_rel", "rmse"):
        area = ause(random[f"{name}/uncertainty"].numpy(), random[f"{name}/oracle"].numpy())
        assert area > 0.05 * float(random[f"{name}/uncertainty"][0])  # clearly positive: >5 % of the error
    # the curves start at the whole image's error and the oracle falls monotonically
    assert float(oracle["abs_rel/oracle"][0]) == pytest.approx(float(error[0].mean()))
    assert (np.diff(oracle["abs_rel/oracle"].numpy()) <= 1e-12).all()


def test_sparsification_of_a_model_scores_its_pixels_as_the_metrics_do():
    metric, depth = Sparsification(), DepthMetrics(1e-3, 10.0)
    rng = np.random.default_rng(1)
    g = torch.from_numpy(rng.uniform(1, 9, (3, 24, 32))).float()
    g[0, :4] = 0  # invalid rows
    noise = torch.from_numpy(rng.lognormal(0, 0.2, (3, 24, 32))).float()
    p = (g.clamp_min(1) * noise).clamp(max=10.0)  # inside the metric's range: scored as it is
    target = depth.prepare(g)
    truth = ((p - g).abs() / g.clamp_min(1e-3)).where(g > 0, 0)
    metric.update(p, truth, target, torch.arange(3))  # the true error as the uncertainty: the oracle
    curves_ = metric.compute()
    assert curves_["abs_rel/uncertainty"].shape == (3, len(FRACTIONS))
    summary = summarise(curves_)
    assert summary["ause_abs_rel"] == pytest.approx(0, abs=1e-9) and summary["ause_random_abs_rel"] > 0.01
    depth.update(p, target)
    assert curves_["abs_rel/uncertainty"][:, 0].mean() == pytest.approx(float(depth.compute()["abs_rel"]), rel=1e-6)


# -- a whole run -----------------------------------------------------------------------------------------
def test_per_image_csv_column_means_equal_the_table_and_every_number_has_its_interval(tiny_run):
    results = json.loads((tiny_run / "metrics.json").read_text())
    card, rows = read_per_image_csv(tiny_run / "per_image.csv")
    assert card == results["protocol"] and card["dataset"] == "synthetic" and card["split"] == "test"
    assert len(rows) == results["protocol"]["frames_evaluated"] == 8
    test, intervals = results["test"], results["test_intervals"]
    for name in ("soft", "hard", "constant", "position_prior"):
        for metric in METRIC_NAMES:
            key = f"{name}/{metric}"
            mean = np.mean([float(r[key]) for r in rows])
            assert mean == pytest.approx(test[key], rel=1e-12, abs=1e-15), key
            low, high = intervals[key]
            assert low <= test[key] <= high, key
    for dec in ("soft", "hard"):
        for metric in ("ause_abs_rel", "ause_rmse"):
            assert np.mean([float(r[f"{dec}/{metric}"]) for r in rows]) == pytest.approx(test[f"{dec}/{metric}"])
            assert test[f"{dec}/{metric}"] > 0
    hits = sum(int(r["bin_correct"]) for r in rows) / sum(int(r["bin_pixels"]) for r in rows)
    assert hits == pytest.approx(test["pixel_acc"], rel=1e-6) and "pixel_acc" in intervals
    assert results["intervals"]["resamples"] >= 1000 and results["intervals"]["seed"] == 0
    assert json.loads((tiny_run / "sparsification.json").read_text())["soft"]["images"] == 8
    # the training-health record: one entry per validation, bins used, not collapsed
    health = results["health"]
    history = health["history"]
    assert len(history) == 5 and all(h["bins_used"] > 1 for h in history)  # one entry per validation
    # flagged exactly when the record shows it: from the third validation on (patience 3), a δ1 no better
    # than the constant's (this 40-step model under-predicts: better abs rel than the constant, worse δ1)
    late = [h for h in history[2:] if h["d1"] <= h["constant_d1"]]
    assert health["collapsed"] is bool(late)
    if late:
        assert health["flag"]["step"] == late[0]["step"] and f"δ1 {late[0]['d1']:.4f}" in health["flag"]["reason"]
    # W&B's summary holds the card and the intervals
    from tests.wandb_reader import logged

    summary = logged(next((tiny_run / "wandb").glob("offline-run-*")))["summary"]
    assert (
        summary["protocol"]["region"]["name"] == "full" and summary["test_ci/soft/abs_rel"] == intervals["soft/abs_rel"]
    )


def test_evaluate_writes_per_image_results_with_their_card_and_intervals(tiny_checkpoint, tmp_path, capsys):
    from depth_lightning.evaluate import evaluate

    out = tmp_path / "eval_metrics.json"
    evaluate(composed_for("evaluate", tmp_path / "run", f"ckpt_path={tiny_checkpoint}", f"output={out}"))
    printed = capsys.readouterr().out
    evaluated = json.loads((tmp_path / "eval_metrics.json").read_text())
    card, rows = read_per_image_csv(tmp_path / "run" / "per_image.csv")  # in evaluate's own run folder
    assert evaluated["per_image"] == str(tmp_path / "run" / "per_image.csv")
    assert card == evaluated["protocol"] and len(rows) == evaluated["images"]
    low, high = evaluated["test_intervals"]["soft/abs_rel"]
    assert f"{evaluated['test']['soft/abs_rel']:.4f} [{low:.4f}, {high:.4f}]" in printed  # the printed table
    assert "constant/abs_rel" in evaluated["test"]  # baselines fitted on the training frames, scored beside


# -- protocol cards ----------------------------------------------------------------------------------------
@needs_real
def test_kitti_garg_and_paper_regions_give_different_cards(tmp_path):
    from depth_lightning.core.config import build, compose_config
    from depth_lightning.evaluation.evaluator import evaluator_for
    from depth_lightning.evaluation.protocol import card_differences, protocol_key

    root = REAL / "kitti" / "raw"
    listing = tmp_path / "eigen_test_files.txt"  # the frames of the real samples, in monodepth2's format
    listing.write_text("".join(f"2011_09_26/2011_09_26_drive_0001_sync {k} l\n" for k in (5, 50, 100)))
    cards = {}
    for region in ("garg", "paper"):
        cfg = compose_config(
            "data=kitti",
            f"data.dataset.root={root}",
            f"data.dataset.test_list={listing}",
            f"data.dataset.train_list={listing}",
            "data.dataset.fill=none",
            f"data.protocol.region={region}",
        )
        datamodule = build(cfg.data, "data")
        frames, evaluator = datamodule.build("test"), evaluator_for(datamodule, "test")
        for i in range(len(frames)):  # a constant prediction at the model's output size, as a test scores it
            item = frames[i]
            batch = {k: item[k][None] for k in ("depth", "eval_mask")} | {"index": torch.tensor([i])}
            evaluator.process(batch, {d: torch.full((1, 94, 310), 10.0) for d in ("soft", "hard")})
        cards[region] = evaluator.evaluate(frames).card
    garg, paper = cards["garg"], cards["paper"]
    assert garg["region"]["original_frame"] == [375, 1242] and garg["list"]["lines"] == 3
    assert garg["region"]["box"] == [153, 371, 44, 1197]  # Garg et al.'s crop on the 375x1242 frame
    assert paper["region"]["box"] == [375 - 256, 375, 0, 1242]  # Sec. 4.2: the lower 256 rows
    assert "Velodyne" in garg["ground_truth"] and garg["metrics"]["silog"].startswith("100 * sqrt(")
    assert protocol_key(garg) != protocol_key(paper) and any("region" in d for d in card_differences(garg, paper))
    assert garg["prediction"]["resolution"] == [94, 310]
    assert garg["frames_evaluated"] >= 1 and garg["frames_evaluated"] + garg["frames_left_out"] == len(frames)


@pytest.fixture(scope="module")
def seeds_sweep(tmp_path_factory) -> Path:
    """Two variants x two seeds of the tiny ablation (synthetic, CSV logger), run in this process into
    one folder as a sweep lays out its jobs (the sweep command itself: tests/test_sweeps.py)."""
    sweep = tmp_path_factory.mktemp("seeds") / "sweep"
    for variant in ("full", "no_concat"):
        for seed in (0, 1):
            overrides = [
                "+experiment=synthetic_ablation",
                f"variant={variant}",
                "model.net.num_bins=20",
                f"seed={seed}",
            ]
            train_here(sweep / f"{variant}-K20-seed{seed}", *overrides, *SWEEP_TINY)
    return sweep


@pytest.mark.slow
def test_a_two_seed_sweep_reports_mean_std_and_n_and_paired_intervals(seeds_sweep, tmp_path, capsys):
    assert report_main([str(seeds_sweep), "--out", str(tmp_path / "report")]) == 0
    printed = capsys.readouterr().out
    result = report.build_report([seeds_sweep], tmp_path / "again")
    runs = {(r.variant, r.seed): json.loads((r.path / "metrics.json").read_text())["test"] for r in result["runs"]}
    assert set(runs) == {("full", 0), ("full", 1), ("no_concat", 0), ("no_concat", 1)}
    ours = {r["row"]: r for r in result["table3"] if r["source"] == "ours"}
    full = ours["Soft-weighted-sum (full model)"]
    values = [runs[("full", s)]["soft/abs_rel"] for s in (0, 1)]
    assert full["n"] == 2 and full["abs_rel"] == pytest.approx(np.mean(values))
    assert full["std"]["abs_rel"] == pytest.approx(np.std(values, ddof=1))
    assert f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f} (n=2)" in printed
    # paired: no concat - full and hard - soft, over both seeds, on the same 8 test images
    paired = {row["row"]: row for row in result["paired"]}
    assert set(paired) == {"No concat - full", "Hard-max - soft (full model)"}
    hard_soft = paired["Hard-max - soft (full model)"]
    expected = np.mean([runs[("full", s)]["hard/abs_rel"] - runs[("full", s)]["soft/abs_rel"] for s in (0, 1)])
    assert hard_soft["seeds"] == 2 and hard_soft["images"] == 8
    assert hard_soft["ours"]["abs_rel"] == pytest.approx(expected, rel=1e-9)
    low, high = hard_soft["ci"]["abs_rel"]
    assert low <= expected <= high and hard_soft["beyond_noise"]["abs_rel"] == (low > 0 or high < 0)
    assert "paired differences on the same test images" in printed and "_Protocol: synthetic test split" in printed
    assert (tmp_path / "report" / "sparsification.png").is_file() and "AUSE" in printed


@pytest.mark.slow
def test_the_report_flags_stale_runs_and_lists_the_gaps_reproduced_beyond_noise(seeds_sweep, tmp_path, capsys):
    import os
    import time

    sweep = tmp_path / "sweep"
    copy_records(seeds_sweep, sweep)
    first = sorted(p.parent for p in sweep.glob("*/metrics.json"))[0]
    again = sweep / f"{first.name}-again"  # the same job finished twice (a sweep resumed under another scheme)
    copy_records(first, again)
    for record in sweep.glob("*/metrics.json"):  # recorded as NYU runs: the report then judges the paper's gaps
        data = json.loads(record.read_text())
        data["config"]["data"]["name"] = "nyu_sync"
        record.write_text(json.dumps(data))
    later = time.time() + 5
    os.utime(again / "metrics.json", (later, later))
    result = report.build_report([sweep], tmp_path / "r")
    stale = [p for p in result["problems"] if "stale" in p]
    assert len(stale) == 1 and stale[0].endswith(f"the tables use the newest, {again}; stale: {first}")
    assert len(result["runs"]) == 5
    # the "reproduced beyond noise" line: the paired rows whose interval excludes 0 with the paper's sign
    from experiments.report.tables import TABLE3_COLS

    expected = []
    for row in result["paired"]:
        cols = [
            label
            for col, label in TABLE3_COLS
            if (row["ci"][col][0] > 0 or row["ci"][col][1] < 0)
            and row["paper"][col] is not None
            and np.sign(row["paper"][col]) == np.sign(row["ours"][col])
        ]
        if cols:
            expected.append(f"{row['row']}: {', '.join(cols)}")
    line = f"Paper's gaps reproduced beyond noise (same sign, interval excludes 0): {'; '.join(expected) or 'none'}."
    assert line in result["report"].read_text() and result["paired"]


def test_the_health_check_flags_a_model_whose_d1_is_no_better_than_a_constants_after_patience():
    from depth_lightning.callbacks.health import TrainingHealth

    health = TrainingHealth(min_spread=1e-3, patience=2)
    health.constant = 2.5
    entry = {"spatial_spread": 0.3, "image_spread": 0.2, "d1": 0.41, "constant_d1": 0.41}
    health.history = [entry]
    assert health._collapse_reason(entry) is None  # one validation: too early to judge
    health.history = [entry, entry]
    reason = health._collapse_reason(entry)
    assert reason == (
        "after 2 validations its δ1 0.4100 is no better than a constant depth's (2.5 m, the median training "
        "depth): 0.4100"
    )
    assert health._collapse_reason({**entry, "d1": 0.4101}) is None  # better than the constant: healthy
    flat = {**entry, "d1": 0.9, "image_spread": 5e-4}
    assert "varies by only 0.0005 (std) from one image to another" in health._collapse_reason(flat)


@pytest.mark.slow
def test_the_report_refuses_to_mix_protocols_unless_told(seeds_sweep, tmp_path, capsys):
    other = tmp_path / "other"
    overrides = ["+experiment=synthetic_ablation", "variant=full", "model.net.num_bins=20"]
    train_here(other, *overrides, "data.protocol.region=eigen_nyu", *SWEEP_TINY)
    capsys.readouterr()
    assert report_main([str(seeds_sweep), str(other), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "different evaluation protocols" in err and "region" in err and "--mix-protocols" in err
    assert not (tmp_path / "r" / "report.md").exists()  # nothing half-written
    mixed = report.build_report([seeds_sweep, other], tmp_path / "r", mix_protocols=True)
    assert any("mixed on request" in p for p in mixed["problems"])


@pytest.mark.slow
@pytest.mark.parametrize("record", ['{"status": "completed", "config": "a string", "test": {}}', "[1, 2]", "{half"])
def test_the_report_skips_a_run_whose_record_it_cannot_read_naming_the_file(seeds_sweep, tmp_path, record):
    sweep = tmp_path / "sweep"
    copy_records(seeds_sweep, sweep)
    broken = sorted(sweep.glob("*/metrics.json"))[0]
    broken.write_text(record)
    result = report.build_report([sweep], tmp_path / "r")
    assert len(result["runs"]) == 3 and (tmp_path / "r" / "report.md").is_file()  # the other runs reported
    assert any(p.startswith(f"{broken}: ") and p.endswith("left out of the tables") for p in result["problems"])


# -- the dataset check ------------------------------------------------------------------------------------
def _nyu_copy(tmp_path):
    demo = tmp_path / "nyu"
    shutil.copytree(REAL / "nyu" / "sync" / "metric3d_nyu_demo", demo)
    lines = [f"rgb/rgb_{k}.jpg depth/sync_depth_{k}.png 518.8579" for k in ("00000", "00050", "00100")]
    (demo / "train.txt").write_text("\n".join(lines[:2]) + "\n")
    (demo / "test.txt").write_text(lines[2] + "\n")
    return demo


def _nyu_check(root, tmp_path):
    """The check command on a NYU-sync folder, as a user runs it."""
    return run_module(
        "depth_lightning.check",
        "data=nyu_sync",
        f"data.dataset.root={root}",
        *(f"data.dataset.{s}_list={root / f'{s}.txt'}" for s in ("train", "test")),
        "data.dataset.fill=none",
        f"hydra.run.dir={tmp_path / 'check'}",
        cwd=tmp_path,
        check=False,
    )


def _check_here(capsys, *overrides):
    """The check in this process (what the command runs, without its start-up): (exit code, output)."""
    from depth_lightning.check import main_check
    from depth_lightning.core.config import compose_config

    code = main_check(compose_config("data.dataset.fill=none", *overrides, config_name="check"))
    return code, capsys.readouterr().out


@needs_real
def test_the_check_passes_on_the_real_samples(tmp_path, capsys):
    root = _nyu_copy(tmp_path)
    lists = [f"data.dataset.{s}_list={root / f'{s}.txt'}" for s in ("train", "test")]
    code, out = _check_here(capsys, "data=nyu_sync", f"data.dataset.root={root}", *lists)
    assert code == 0, out
    assert "passed: 0 error(s)" in out and "518.8579 (2)" in out
    assert "2 frames listed; the nyu_sync train split has 24231" in out  # a subset: a warning only
    drive, gt = "2011_09_26/2011_09_26_drive_0001_sync", "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02"
    listing = tmp_path / "kitti.txt"
    lines = [f"{drive}/image_02/data/{k:010d}.png {gt}/{k:010d}.png 721.5377\n" for k in (5, 50, 100)]
    listing.write_text("".join(lines))
    for truth in ("annotated", "velodyne"):
        code, out = _check_here(
            capsys,
            "data=kitti",
            f"data.dataset.root={REAL / 'kitti' / 'raw'}",
            f"data.dataset.gt={truth}",
            f"data.dataset.annotated_root={REAL / 'kitti' / 'data_depth_annotated'}",
            f"data.dataset.train_list={listing}",
            f"data.dataset.test_list={listing}",
        )
        assert code == 0, out
        assert "721.5377 (3)" in out and "passed" in out


@needs_real
def test_the_check_fails_naming_a_depth_map_in_the_wrong_unit(tmp_path):
    root = _nyu_copy(tmp_path)
    path = root / "depth" / "sync_depth_00050.png"
    millimetres = np.array(Image.open(path))
    Image.fromarray((millimetres // 100).astype(np.uint16)).save(path)  # decimetres where millimetres belong
    proc = _nyu_check(root, tmp_path)  # the command: its exit code says FAILED
    assert proc.returncode == 1
    assert f"{path}): median depth" in proc.stdout and "another unit" in proc.stdout and "FAILED" in proc.stdout


@needs_real
def test_the_check_fails_naming_a_listed_file_that_is_missing(tmp_path, capsys):
    root = _nyu_copy(tmp_path)
    (root / "rgb" / "rgb_00100.jpg").unlink()
    lists = [f"data.dataset.{s}_list={root / f'{s}.txt'}" for s in ("train", "test")]
    code, out = _check_here(capsys, "data=nyu_sync", f"data.dataset.root={root}", *lists)
    assert code == 1
    assert f"test.txt:1 names {root / 'rgb' / 'rgb_00100.jpg'}, which does not exist" in out


# -- training health -------------------------------------------------------------------------------------
def test_a_model_that_outputs_a_constant_is_flagged_as_collapsed(caplog):
    from depth_lightning.callbacks.health import TrainingHealth

    cfg, datamodule, module, _ = built("debug=tiny", "model.net.upsample=bilinear")
    classifier = module.net.head.classifier
    with torch.no_grad():
        classifier[0].weight.zero_()  # no input reaches the logits: the same bin everywhere
        classifier[1].bias.zero_()
        classifier[1].bias[7] = 5.0
    import lightning as L

    health = TrainingHealth(min_spread=1e-3, patience=3)
    trainer = L.Trainer(
        accelerator="cpu", logger=False, callbacks=[health], limit_val_batches=2, enable_progress_bar=False
    )
    with caplog.at_level("WARNING"):
        trainer.validate(module, datamodule=datamodule, verbose=False)
    state = health.state()
    assert state["collapsed"] and "ignores the image" in state["flag"]["reason"]
    # the same map for every image (the fixed upsampling's zero padding still shades its border)
    assert state["history"][0]["image_spread"] < 1e-6 and state["history"][0]["bins_used"] <= 3
    assert "looks collapsed" in caplog.text and "depth_lightning.check" in caplog.text
