"""Nothing silently wrong, nothing lost: one test per case of the reliability issue (numbered as there)."""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from depth_lightning.core.config import build
from depth_lightning.core.errors import CheckpointError, ConfigError, DataError, RunFolderBusy
from depth_lightning.data.kitti import velodyne_depth
from depth_lightning.data.nyu import NYUSync
from depth_lightning.evaluate import evaluate
from tests.datasets import write_kitti, write_nyu_sync
from tests.helpers import SHARED, composed_for, run_module, train_here, user_env

REAL = SHARED / "realdata"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"real NYU/KITTI samples not present at {REAL}")
TINY = ["debug=tiny", "logger=csv"]


def results_of(run):
    return json.loads((run / "metrics.json").read_text())


def nyu_sync_args(root):
    """A tiny training run on a NYU-sync folder (validation: its own list, the training list)."""
    return [
        *TINY,
        "data=nyu_sync",
        f"data.dataset.root={root}",
        f"data.dataset.train_list={root / 'train.txt'}",
        f"data.dataset.val_list={root / 'val.txt'}",
        f"data.dataset.test_list={root / 'test.txt'}",
        "data.dataset.fill=none",
        "data.dataset.border=null",
        "data.height=48",
        "data.width=64",
        "trainer.max_steps=2",
    ]


def nyu_sync_run(root, run, *extra, check=True):
    """That run through the command line, as a user starts it."""
    args = [*nyu_sync_args(root), f"hydra.run.dir={run}", *extra]
    return run_module("depth_lightning.train", *args, cwd=run.parent, check=check)


@pytest.fixture
def nyu(tmp_path):
    root = write_nyu_sync(tmp_path / "nyu", {"a": 3, "b": 3}, size=(60, 80))
    (root / "val.txt").write_text((root / "test.txt").read_text().replace("a/", "b/"))
    return root


# 1 ----------------------------------------------------------------------------------------------
@needs_real
@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["kitti", "nyu_sync"])
def test_1_real_data_with_the_default_baselines_completes_scoring_both_on_the_same_pixels(tmp_path, dataset):
    if dataset == "kitti":
        drive = "2011_09_26/2011_09_26_drive_0001_sync"
        gt = "2011_09_26_drive_0001_sync/proj_depth/groundtruth/image_02"
        lines = [f"{drive}/image_02/data/{k:010d}.png {gt}/{k:010d}.png 721.5377" for k in (5, 50, 100)]
        root = REAL / "kitti" / "raw"
        extra = [
            "data=kitti",
            "data.dataset.gt=annotated",
            f"data.dataset.annotated_root={REAL / 'kitti' / 'data_depth_annotated'}",
            "data.height=64",
            "data.width=208",
        ]
    else:
        demo = REAL / "nyu" / "sync" / "metric3d_nyu_demo"
        lines = [f"rgb/rgb_{k}.jpg depth/sync_depth_{k}.png 518.8579" for k in ("00000", "00050", "00100")]
        root, extra = demo, ["data=nyu_sync", "data.height=96", "data.width=128"]
    listing = tmp_path / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    train_here(
        run,
        *TINY,
        *extra,
        f"data.dataset.root={root}",
        *(f"data.dataset.{s}_list={listing}" for s in ("train", "val")),
        f"data.dataset.test_list={tmp_path / 'absent.txt'}",
        "data.dataset.fill=none",
        "trainer.max_steps=2",
        "baselines=true",  # the default, as the README's real-data commands run it
    )
    results = results_of(run)
    assert results["status"] == "completed"
    table = results["baselines"]
    assert set(table) == {"soft", "hard", "constant", "position_prior"}
    assert len({row["pixels"] for row in table.values()}) == 1 and table["soft"]["pixels"] > 1000


# 2 ----------------------------------------------------------------------------------------------
def test_2_training_on_frames_without_valid_depth_fails_naming_the_cause(tmp_path, nyu):
    for png in nyu.glob("a/sync_depth_*.png"):
        Image.fromarray(np.zeros((60, 80), np.uint16)).save(png)
    (nyu / "train.txt").write_text(
        "".join(ln + "\n" for ln in (nyu / "train.txt").read_text().split("\n") if "/a/" in ln)
    )
    run = tmp_path / "run"
    proc = nyu_sync_run(nyu, run, check=False)
    assert (
        proc.returncode != 0 and "the train split holds no valid depth" in proc.stderr and "train.txt:1" in proc.stderr
    )
    assert results_of(run)["status"] == "failed"
    assert not (run / "checkpoints").exists(), "found before any training"
    log = (run / "train.log").read_text()  # the reason stays in the run's folder, traceback included
    assert "Traceback" in log and "the train split holds no valid depth" in log


def test_2_an_epoch_without_one_valid_depth_pixel_stops_training():
    """The full check behind the quick one at setup: every frame of the epoch, after augmentation."""
    import lightning as L

    from depth_lightning.run.setup import build_module
    from tests.helpers import composed

    module = build_module(composed("debug=tiny"))
    empty = [{"image": torch.rand(2, 3, 64, 96), "depth": torch.zeros(2, 64, 96)}] * 3
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False, limit_val_batches=0)
    with pytest.raises(DataError, match="not one training frame of epoch 0 holds a valid depth pixel"):
        trainer.fit(module, train_dataloaders=torch.utils.data.DataLoader(empty, batch_size=None))


def test_2_a_validation_frame_without_valid_depth_is_named_and_left_out(tmp_path, nyu):
    Image.fromarray(np.zeros((60, 80), np.uint16)).save(nyu / "b" / "sync_depth_00001.png")
    run = tmp_path / "run"
    train_here(run, *nyu_sync_args(nyu))
    results = results_of(run)
    assert results["status"] == "completed" and np.isfinite(results["val"]["soft/abs_rel"])
    named = f"{nyu / 'val.txt'}:2 ({nyu / 'b' / 'rgb_00001.jpg'}, {nyu / 'b' / 'sync_depth_00001.png'})"
    assert results["empty_frames"]["val"] == [named]


def test_2_no_valid_ground_truth_in_a_whole_split_is_an_error_not_nan():
    from depth_lightning.core.errors import NoValidPixels
    from depth_lightning.evaluation.metrics import DepthMetrics

    metric = DepthMetrics(1e-3, 10.0)
    metric.update(torch.ones(2, 4, 4), torch.full((2, 4, 4), float("nan")))
    with pytest.raises(NoValidPixels, match="2 image"):
        metric.compute()
    assert metric.empty_images() == [0, 1]


def test_2_checkpoints_are_never_chosen_on_a_non_finite_monitor():
    from depth_lightning.run.faults import FiniteModelCheckpoint

    class Trainer:
        global_step = 3

    ckpt = FiniteModelCheckpoint(monitor="val/abs_rel", mode="min", save_top_k=1)
    assert not ckpt.check_monitor_top_k(Trainer(), torch.tensor(float("nan")))
    assert not ckpt.check_monitor_top_k(Trainer(), torch.tensor(float("inf")))
    assert ckpt.check_monitor_top_k(Trainer(), torch.tensor(0.3))


# 3 ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["empty training list", "empty validation list", "max_steps=0"])
def test_3_nothing_to_do_is_an_error(tmp_path, nyu, case, capsys):
    extra = []
    if case == "empty training list":
        (nyu / "train.txt").write_text("")
    elif case == "empty validation list":
        (nyu / "val.txt").write_text("\n")
    else:
        extra = ["trainer.max_steps=0"]
    with pytest.raises((ConfigError, DataError)) as err:
        train_here(tmp_path / "run", *nyu_sync_args(nyu), *extra)
    expected = {
        "empty training list": "train.txt: the split list is empty",
        "empty validation list": "val.txt: the split list is empty",
        "max_steps=0": "trainer.max_steps=0 trains nothing",
    }[case]
    assert expected in str(err.value) and results_of(tmp_path / "run")["status"] == "failed"
    assert "Validation set" not in capsys.readouterr().out, "no table of an untrained model"


# 4 ----------------------------------------------------------------------------------------------
def test_4_nyu_frames_smaller_than_the_border_box_are_refused_by_name(tmp_path):
    root = write_nyu_sync(tmp_path, {"s": 1}, size=(60, 80))
    ds = NYUSync(root, root / "train.txt", None, border=[45, 471, 41, 601], input_size=(48, 64))
    with pytest.raises(DataError, match=r"a 60x80 frame is smaller than the border box data.dataset.border"):
        ds[0]


# 5 ----------------------------------------------------------------------------------------------
def test_5_velodyne_scans_are_checked_by_size_and_their_points_for_plausible_values(tmp_path, caplog):
    import logging

    k = write_kitti(tmp_path / "kitti", frames=(0, 1))
    date = k["raw"] / "2011_09_26"
    scan = date / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data" / "0000000000.bin"
    good = velodyne_depth(date, scan)
    points = np.fromfile(scan, np.float32).reshape(-1, 4)
    bad = np.concatenate([points, [[np.nan, 1, 1, 1], [np.inf, 0, 0, 1], [1e30, 0, 0, 1]]]).astype(np.float32)
    bad.tofile(scan)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(velodyne_depth(date, scan), good)  # the bad points dropped, nothing else
    assert f"{scan}: 3 of {len(bad)} points dropped (2 NaN or inf, 1 beyond" in caplog.text
    scan.write_bytes(points.tobytes()[: 16 * 1000 + 4])  # truncated mid-point
    with pytest.raises(DataError, match=r"16004 bytes, not a whole number of points"):
        velodyne_depth(date, scan)


# 6 ----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_6_evaluate_on_a_named_dataset_keeps_the_checkpoints_input_size(tmp_path, capsys):
    k = write_kitti(tmp_path / "kitti")
    # one drive in this miniature, so no scene to hold out: validation reads the same frames under a
    # list of its own (this test is about the input geometry evaluate uses, not about the split)
    val_list = tmp_path / "val_files.txt"
    val_list.write_text(k["monodepth2"].read_text())
    lists = [f"data.dataset.{s}_list={k['monodepth2']}" for s in ("train", "test")] + [
        f"data.dataset.val_list={val_list}"
    ]
    common = ["data=kitti", f"data.dataset.root={k['raw']}", *lists, "data.dataset.fill=none"]
    run = tmp_path / "run"
    train_here(run, *TINY, *common, "data.height=64", "data.width=208", "trainer.max_steps=2", "test=true")
    capsys.readouterr()
    out = tmp_path / "eval.json"
    ckpt = run / "checkpoints" / "last.ckpt"
    evaluate(composed_for("evaluate", tmp_path / "eval", f"ckpt_path={ckpt}", *common, f"output={out}"))
    evaluated = json.loads(out.read_text())
    assert evaluated["input_size"] == [64, 208]  # the checkpoint's, not kitti.yaml's 188x620
    assert "at input 64x208 (trained at 64x208)" in capsys.readouterr().out
    assert evaluated["test"]["soft/abs_rel"] == pytest.approx(results_of(run)["test"]["soft/abs_rel"], rel=5e-3)


# 7 ----------------------------------------------------------------------------------------------
def test_7_a_diverging_run_stops_before_any_poisoned_state_is_written(tmp_path):
    run = tmp_path / "run"
    proc = run_module(
        "depth_lightning.train", *TINY, "model.optimizer.lr=1e30", "checkpoint_every=1", f"hydra.run.dir={run}",
        cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "NonFiniteError" in proc.stderr
    assert results_of(run)["status"] == "failed" and "NonFiniteError" in results_of(run)["error"]
    assert "NonFiniteError" in (run / "train.log").read_text()
    for ckpt in (run / "checkpoints").glob("*.ckpt"):  # every checkpoint written is a finite one
        state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), ckpt


def test_7_every_load_path_refuses_a_checkpoint_with_non_finite_tensors(tiny_checkpoint, tmp_path):
    from depth_lightning.inference import DepthEstimator
    from depth_lightning.inference.loading import load_model

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    ckpt["state_dict"]["net.backbone.bn1.running_var"][0] = float("inf")
    poisoned = tmp_path / "poisoned.ckpt"
    torch.save(ckpt, poisoned)
    with pytest.raises(CheckpointError, match=r"non-finite weights or statistics \(net.backbone.bn1.running_var"):
        load_model(poisoned)
    paths = {
        "evaluate": lambda: evaluate(composed_for("evaluate", tmp_path / "e", f"ckpt_path={poisoned}")),
        "resume": lambda: train_here(tmp_path / "r", *TINY, f"ckpt_path={poisoned}"),
        "predict": lambda: DepthEstimator.from_checkpoint(poisoned),
    }
    for name, load in paths.items():
        with pytest.raises(CheckpointError, match="non-finite weights or statistics"):
            load()
        assert name != "resume" or results_of(tmp_path / "r")["status"] == "failed"


def test_7_skipped_steps_are_summed_up_and_recorded(tmp_path, monkeypatch, caplog):
    """The main job in this process, its frames poisoned (a NaN pixel) in two of its eight batches."""
    import logging

    from depth_lightning.core.config import compose_config
    from depth_lightning.data.frames import FrameDataset
    from depth_lightning.train import train

    load = FrameDataset.__getitem__

    def poisoned(self, key):
        item = load(self, key)
        if self.train and item["index"] in (0, 1):
            item["image"][:, 0, 0] = float("nan")
        return item

    monkeypatch.setattr(FrameDataset, "__getitem__", poisoned)
    cfg = compose_config(*TINY, "nonfinite=skip", "baselines=false", output_dir=str(tmp_path / "run"))
    with caplog.at_level(logging.WARNING):
        results = train(cfg)
    skipped = results["skipped_steps"]
    assert 1 <= skipped <= 2 and results["status"] == "completed"  # frames 0 and 1: one or two batches
    assert f"nonfinite=skip: {skipped} of 8 optimiser steps were skipped" in caplog.text
    assert results_of(tmp_path / "run")["skipped_steps"] == skipped


# 8 ----------------------------------------------------------------------------------------------
def _start(run, *extra):
    """The main job in the background; its stderr goes to ``<run>.stderr``."""
    env = {**user_env(), "WANDB_MODE": "offline", "DEPTH_LIGHTNING_LOGS": str(run.parent)}
    args = [sys.executable, "-m", "depth_lightning.train", *TINY, "trainer.max_steps=400", *extra]
    err = open(run.with_suffix(".stderr"), "wb")  # noqa: SIM115 - the child writes it while it runs
    return subprocess.Popen(  # its own process group: killed with its children (W&B's service), as a node is
        [*args, f"hydra.run.dir={run}"], cwd=run.parent, env=env, stdout=err, stderr=err, start_new_session=True
    )


def _wait_for_step(run, proc, step):
    """Until ``last.ckpt`` holds at least ``step`` optimiser steps."""
    deadline, last = time.time() + 300, run / "checkpoints" / "last.ckpt"
    while time.time() < deadline and proc.poll() is None:
        try:
            if torch.load(last, map_location="cpu", weights_only=True)["global_step"] >= step:
                return
        except (OSError, RuntimeError, EOFError, KeyError):
            pass
        time.sleep(0.2)
    raise AssertionError(f"the run did not reach step {step}")


@pytest.mark.slow
@pytest.mark.parametrize("sig", ["SIGUSR1", "SIGTERM"])
def test_8_a_signal_stops_the_run_as_interrupted_with_a_non_zero_exit_and_one_last_checkpoint(tmp_path, sig):
    run = tmp_path / "run"
    proc = _start(run, "checkpoint_every=2")
    _wait_for_step(run, proc, 2)
    proc.send_signal(getattr(signal, sig))
    proc.wait(timeout=300)
    err = run.with_suffix(".stderr").read_bytes()
    assert proc.returncode != 0
    results = results_of(run)
    assert results["status"] == "interrupted" and results["interrupted"]["signal"] == sig
    assert 1 <= results["interrupted"]["step"] < 400 and b"resume with ckpt_path=last" in err
    assert [p.name for p in (run / "checkpoints").glob("last*.ckpt")] == ["last.ckpt"]
    assert (
        torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
        == results["interrupted"]["step"]
    )


# 10, 13 ----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_10_13_a_killed_run_resumes_in_its_own_folder_with_its_whole_history(tmp_path):
    run = tmp_path / "train" / "runs" / "2026-01-01_00-00-00"  # where the main job puts its runs
    run.parent.mkdir(parents=True)
    resumable = [
        "logger=default",
        "+logger.csv.flush_logs_every_n_steps=1",
        "checkpoint_every=4",
        "trainer.log_every_n_steps=1",
        "trainer.max_steps=12",
    ]
    proc = _start(run, *resumable)
    _wait_for_step(run, proc, 4)
    time.sleep(2)  # a few more steps logged after the checkpoint: the resumed run replays them
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a lost node or `scancel -s KILL` ends it
    proc.wait()
    before = [r for r in csv.DictReader(open(run / "csv" / "metrics.csv")) if r.get("train/loss")]
    wandb_before = {p.name.rsplit("-", 1)[1] for p in (run / "wandb").glob("offline-run-*")}
    # 13: ckpt_path=last without the folder: the newest run of the task that has a last.ckpt
    proc = run_module("depth_lightning.train", *TINY, *resumable, "ckpt_path=last", cwd=tmp_path)
    assert f"resuming the newest run of task 'train' that has a last.ckpt: {run}" in proc.stdout
    assert results_of(run)["status"] == "completed" and results_of(run)["global_step"] == 12
    after = [r for r in csv.DictReader(open(run / "csv" / "metrics.csv")) if r.get("train/loss")]
    steps = [int(r["step"]) for r in after]
    assert steps == sorted(set(steps)) and steps[0] == int(before[0]["step"]) and steps[-1] >= 10
    assert {r["step"]: r["train/loss"] for r in before if int(r["step"]) < 4}.items() <= {
        r["step"]: r["train/loss"] for r in after
    }.items(), "the history before the last checkpoint is kept as it was"
    wandb_after = {p.name.rsplit("-", 1)[1] for p in (run / "wandb").glob("offline-run-*")}
    assert wandb_after == wandb_before and len(wandb_before) == 1, "W&B resumes the run it started"
    assert [p for p in run.parent.iterdir() if p.is_dir()] == [run], "no second run folder"


# 11, 12 ----------------------------------------------------------------------------------------
def test_11_12_a_busy_folder_is_refused_and_debris_of_interrupted_writes_is_removed(tmp_path):
    from depth_lightning.run.folder import RunLock

    run = tmp_path / "run"
    debris = run / "checkpoints" / ".last.ckpt.tmp.ckpt"
    debris.parent.mkdir(parents=True)
    debris.write_bytes(b"half a checkpoint")
    lock = RunLock(run)
    lock.acquire()  # a run still going in this folder (flock: a second open file is refused, also here)
    try:
        with pytest.raises(RunFolderBusy) as err:
            train_here(run, *TINY)
        assert f"{run} is in use by a run still going (pid {os.getpid()})" in str(err.value)
        assert debris.is_file() and not (run / "metrics.json").exists(), "the busy folder was not touched"
    finally:
        lock.release()
    train_here(run, *TINY, "trainer.max_steps=1")
    assert not debris.exists() and results_of(run)["status"] == "completed"


def _files(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_28_a_finished_runs_folder_is_refused_before_hydra_writes_and_stays_byte_identical(tiny_run, tmp_path):
    from depth_lightning.core.errors import RunFolderUsed

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = _files(run)
    proc = run_module("depth_lightning.train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path, check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines() == [
        f"error: {run} holds a run already (its metrics.json says status 'completed'); nothing was written. "
        "Give this run its own folder (leave hydra.run.dir out), or continue that run with ckpt_path=last"
    ]
    with pytest.raises(RunFolderUsed):  # the same refusal for a run started in a process (tests, notebooks)
        train_here(run, *TINY)
    assert _files(run) == before, "the first run's files are byte-identical"


def test_28_a_run_refused_by_the_lock_leaves_the_folder_byte_identical(tmp_path):
    from depth_lightning.run.folder import RunLock

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("the running job's settings\n")
    lock = RunLock(run)
    lock.acquire()
    try:
        before = _files(run)
        proc = run_module("depth_lightning.train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path, check=False)
        assert proc.returncode == 2 and "is in use by a run still going" in proc.stderr, proc.stderr[-2000:]
        assert _files(run) == before, "Hydra wrote nothing into the busy folder"
    finally:
        lock.release()


def _check_here(capsys, *overrides):
    from depth_lightning.check import main_check

    code = main_check(composed_for("check", SHARED, "data.dataset.fill=none", *overrides))
    return code, capsys.readouterr().out


def _kitti_check_args(k):
    return [
        "data=kitti",
        f"data.dataset.root={k['raw']}",
        f"data.dataset.train_list={k['monodepth2']}",
        f"data.dataset.val_list={k['bts']}",  # one drive: no scene to hold out
        f"data.dataset.test_list={k['monodepth2']}",
    ]


def test_28_the_check_fails_a_split_whose_depth_maps_are_all_zero(tmp_path, nyu, capsys):
    for png in (nyu / "a").rglob("sync_depth_*.png"):
        Image.fromarray(np.zeros((60, 80), np.uint16)).save(png)
    for png in (nyu / "b").rglob("sync_depth_*.png"):
        Image.fromarray(np.zeros((60, 80), np.uint16)).save(png)
    lists = [f"data.dataset.{s}_list={nyu / f'{s}.txt'}" for s in ("train", "test")]
    code, out = _check_here(capsys, "data=nyu_sync", f"data.dataset.root={nyu}", *lists)
    assert code == 1 and "FAILED" in out
    assert "train: none of the 6 frames read holds valid depth (finite, > 0), e.g. " in out
    assert "test: none of the 2 frames read holds valid depth" in out


def test_28_the_check_names_non_finite_scan_points_and_training_names_a_missing_scan(tmp_path, capsys):
    k = write_kitti(tmp_path / "kitti", frames=(0, 1))
    scans = k["raw"] / "2011_09_26" / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data"
    points = np.fromfile(scans / "0000000001.bin", np.float32).reshape(-1, 4)
    np.concatenate([points, [[np.nan, 1, 1, 1]]]).astype(np.float32).tofile(scans / "0000000001.bin")
    code, out = _check_here(capsys, *_kitti_check_args(k))
    assert code == 1
    assert f"{scans / '0000000001.bin'}: 1 of {len(points) + 1} points dropped (1 NaN or inf, 0 beyond" in out
    for scan in scans.iterdir():
        scan.unlink()
    cfg = composed_for("train", tmp_path, *TINY, *_kitti_check_args(k), "data.dataset.fill=none")
    datamodule = build(cfg.data, "data")
    with pytest.raises(DataError) as err:
        datamodule.setup("fit")
    assert "the train split has no frame with ground truth (2 listed left out, e.g. " in str(err.value)
    assert f"no Velodyne scan {scans / '0000000000.bin'}" in str(err.value)


def test_28_a_split_whose_sampled_frames_all_fail_to_load_names_the_file(tmp_path):
    k = write_kitti(tmp_path / "kitti", frames=(0, 1))
    scans = k["raw"] / "2011_09_26" / "2011_09_26_drive_0001_sync" / "velodyne_points" / "data"
    for scan in scans.iterdir():
        scan.write_bytes(scan.read_bytes()[:100])  # truncated mid-point
    cfg = composed_for("train", tmp_path, *TINY, *_kitti_check_args(k), "data.dataset.fill=none")
    with pytest.raises(DataError) as err:
        build(cfg.data, "data").setup("fit")
    assert "none of the 2 frames checked could be read: " in str(err.value)
    assert f"{scans / '0000000000.bin'}: 100 bytes, not a whole number of points" in str(err.value)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("model.optimizer.lr=-0.001", "config error: model.optimizer.lr=-0.001: Invalid learning rate: -0.001"),
        ("model.optimizer.weight_decay=-1", "config error: model.optimizer.weight_decay=-1: Invalid weight_decay"),
        ("+model.optimizer.eps=-1", "config error: model.optimizer.eps=-1: Invalid epsilon value"),
        ("+model.optimizer.betas=[1.5,0.9]", "config error: model.optimizer.betas=[1.5, 0.9]: Invalid beta parameter"),
        ("model.scheduler.total_steps=0", "config error: model.scheduler: model.scheduler.total_steps must be an"),
    ],
)
def test_28_invalid_optimiser_settings_are_named_by_their_key_before_torch_sees_them(tmp_path, override, named):
    with pytest.raises(ConfigError) as err:
        train_here(tmp_path / "run", *TINY, override)
    assert str(err.value).startswith(named), str(err.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_28_a_run_resumed_after_its_fit_ended_records_its_validation_and_returns_the_metric(tmp_path):
    from depth_lightning.run.setup import metric_value

    run = tmp_path / "run"
    first = train_here(run, *TINY, "trainer.max_steps=2")
    record = results_of(run)
    record["status"] = "running"  # killed while testing: the record of a run still going, last.ckpt at the end
    (run / "metrics.json").write_text(json.dumps(record))
    again = train_here(run, *TINY, "trainer.max_steps=2", "ckpt_path=last", "test=true")
    assert again["global_step"] == 2 and again["status"] == "completed" and again["test"]
    assert again["val"]["soft/abs_rel"] == pytest.approx(first["val"]["soft/abs_rel"], rel=1e-6)
    assert metric_value(again, "val/abs_rel") == pytest.approx(first["val"]["abs_rel"], rel=1e-6)


def test_28_test_checkpoint_best_tests_the_checkpoint_chosen_on_validation(tmp_path):
    from depth_lightning.evaluate import evaluate

    run = tmp_path / "run"
    results = train_here(run, *TINY, "trainer.max_steps=4", "trainer.val_check_interval=2", "test=true",
                         "test_checkpoint=best")  # fmt: skip
    best = results["best_checkpoint"]
    assert results["tested_checkpoint"] == best and "best-step" in best
    out = tmp_path / "eval.json"
    # the same 8 test images (debug=tiny tests 2 batches of 4), in float32 where training tested in bf16
    overrides = [f"ckpt_path={best}", f"output={out}", "baselines=false", "+trainer.limit_test_batches=2"]
    evaluate(composed_for("evaluate", tmp_path / "eval", *overrides))
    evaluated = json.loads(out.read_text())["test"]
    assert evaluated["soft/abs_rel"] == pytest.approx(results["test"]["soft/abs_rel"], rel=5e-3)


def test_28_baselines_that_cannot_be_computed_never_fail_a_finished_run(tmp_path, monkeypatch):
    import depth_lightning.evaluation.baselines as baselines

    def broken(sample):
        raise RuntimeError("the baselines broke")

    monkeypatch.setattr(baselines, "fit_baselines", broken)
    results = train_here(tmp_path / "run", *TINY, "trainer.max_steps=2", "test=true")
    assert results["status"] == "completed" and results["test"]["soft/abs_rel"] > 0
    assert results["baselines"] == {"error": "RuntimeError('the baselines broke')"}


def test_28_tensorboard_appends_to_its_run_when_the_run_resumes(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    tiny = ["debug=tiny", "logger=tensorboard", "checkpoint_every=2", "trainer.log_every_n_steps=1"]
    train_here(run, *tiny, "trainer.max_steps=4")
    record = results_of(run)
    record["status"] = "interrupted"
    (run / "metrics.json").write_text(json.dumps(record))
    train_here(run, *tiny, "trainer.max_steps=8", "ckpt_path=last")  # continues to step 8 from step 4
    folders = {p.parent for p in run.rglob("events.out.tfevents.*")}
    assert folders == {run / "tensorboard"}, "one TensorBoard folder, not a version_1 beside it"
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    steps = sorted({e.step for e in events.Scalars("train/loss")})
    assert steps[0] < 4 and steps[-1] >= 7, steps  # both parts of the run, in one history
