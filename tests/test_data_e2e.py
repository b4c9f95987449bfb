"""Training and evaluation through the entry points on the fixture datasets, and `prepare`."""

import json

import numpy as np
import pytest
from PIL import Image

from depth_lightning.core.errors import DataError
from depth_lightning.evaluate import evaluate
from depth_lightning.prepare import main as prepare
from tests.datasets import write_kitti, write_nyu_labelled, write_nyu_sync
from tests.helpers import assert_consistent_results, composed_for, train_here


def _train_and_evaluate(tmp_path, *overrides):
    run = tmp_path / "run"
    train_here(run, *overrides, "debug=tiny", "trainer.max_steps=4", "logger=csv", "test=true", "baselines=false")
    results = json.loads((run / "metrics.json").read_text())
    assert results["status"] == "completed"
    assert_consistent_results(results, splits=("test",))
    assert 0 < results["test"]["pixel_acc"] < 1
    out = tmp_path / "eval.json"
    ckpt = run / "checkpoints" / "last.ckpt"  # the weights training tested (test_checkpoint=last)
    evaluate(composed_for("evaluate", tmp_path / "eval", f"ckpt_path={ckpt}", f"output={out}"))
    return results, json.loads(out.read_text())


@pytest.mark.slow
def test_train_and_evaluate_on_nyu_labelled(tmp_path):
    root = write_nyu_labelled(tmp_path / "nyu")
    results, evaluated = _train_and_evaluate(
        tmp_path, "data=nyu", f"data.dataset.root={root}", "data.height=96", "data.width=128"
    )
    assert evaluated["data"] == "nyu"
    # the same checkpoint and test split; training tested under bf16 autocast, evaluate in float32
    assert evaluated["test"]["soft/abs_rel"] == pytest.approx(results["test"]["soft/abs_rel"], rel=5e-3)


@pytest.mark.slow
def test_train_and_evaluate_on_kitti(tmp_path):
    k = write_kitti(tmp_path / "kitti")
    results, evaluated = _train_and_evaluate(
        tmp_path,
        "data=kitti",
        f"data.dataset.root={k['raw']}",
        f"data.dataset.train_list={k['monodepth2']}",
        f"data.dataset.val_list={k['monodepth2']}",  # one drive: nothing to hold out
        f"data.dataset.test_list={k['bts']}",
        "data.dataset.fill=none",
        "data.dataset.gt=annotated",
        f"data.dataset.annotated_root={k['annotated']}",
        "data.height=64",
        "data.width=208",
    )
    assert evaluated["data"] == "kitti" and evaluated["images"] == 3  # the 3 listed frames with a map
    assert evaluated["input_size"] == [64, 208]  # the checkpoint's, not kitti.yaml's 188x620
    for key in ("soft/abs_rel", "hard/abs_rel", "cap50/soft/abs_rel", "cap50/soft/rmse"):
        assert evaluated["test"][key] == pytest.approx(results["test"][key], rel=5e-3), key
    # Table 2's two caps in one pass: the 50 m cap leaves out the far points, so its rmse is lower
    assert evaluated["test"]["cap50/soft/rmse"] < evaluated["test"]["soft/rmse"]


def test_missing_dataset_root_says_what_to_put_there(tmp_path):
    with pytest.raises(DataError) as err:
        train_here(
            tmp_path / "run", "data=nyu_sync", f"data.dataset.root={tmp_path / 'absent'}", "debug=tiny", "logger=csv"
        )
    assert "should hold the NYU sync scenes" in str(err.value) and "nyu_depth_v2.html" in str(err.value)


def test_prepare_nyu_fills_resumably(tmp_path, capsys):
    root = write_nyu_sync(tmp_path, {"scene": 2}, size=(60, 80))
    assert prepare(["nyu", str(root), "--workers", "2"]) == 0  # a pool of two processes
    assert "2 written, 0 already done, 0 failed" in capsys.readouterr().out
    filled = np.array(Image.open(root / "scene" / "sync_depth_00000_filled.png"))
    assert filled.dtype == np.uint16 and (filled > 0).all()
    assert prepare(["nyu", str(root), "--workers", "1"]) == 0  # in this process
    assert "0 written, 2 already done" in capsys.readouterr().out
    assert not list(root.rglob(".*tmp*"))


@pytest.mark.slow
def test_prepare_kitti_fills_the_frames_of_its_list(tmp_path, capsys):
    from depth_lightning.data.kitti import filled_velodyne_path
    from tests.datasets import project_scan, write_kitti

    k = write_kitti(tmp_path / "kitti", frames=(0, 1))
    listing = tmp_path / "one.txt"
    listing.write_text(k["monodepth2"].read_text().splitlines()[0] + "\n")  # frame 0 only
    with pytest.raises(SystemExit) as err:
        prepare(["kitti", str(k["raw"])])
    assert err.value.code == 2 and "kitti needs --list" in capsys.readouterr().err
    assert prepare(["kitti", str(k["raw"]), "--list", str(listing), "--workers", "1"]) == 0
    assert "1 frames: 1 written, 0 already done, 0 failed" in capsys.readouterr().out
    drive = k["raw"] / "2011_09_26" / "2011_09_26_drive_0001_sync"
    filled = np.array(Image.open(filled_velodyne_path(drive / "image_02" / "data" / "0000000000.png"))) / 256.0
    assert not filled_velodyne_path(drive / "image_02" / "data" / "0000000001.png").exists(), "not in the list"
    scan = project_scan(np.fromfile(drive / "velodyne_points" / "data" / "0000000000.bin", np.float32).reshape(-1, 4))
    hit = scan > 0
    assert filled.shape == scan.shape and (filled[hit.any(1)] > 0).mean() > 0.99  # dense where the scan reaches
    rel = np.abs(filled[hit] - scan[hit]) / scan[hit]
    assert np.median(rel) < 0.01  # the measured points kept (soft constraint, 1/256 m steps)
    assert prepare(["kitti", str(k["raw"]), "--list", str(listing), "--workers", "1"]) == 0
    assert "0 written, 1 already done" in capsys.readouterr().out
