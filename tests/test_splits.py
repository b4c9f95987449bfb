"""Validation held out of the training list by scene; the test list read only by `test`."""

import json

import pytest

from depth_lightning.data.splits import HoldOut
from tests.datasets import write_nyu_labelled, write_nyu_sync
from tests.helpers import built, train_here

SCENES = {f"room_{i:02d}": 2 for i in range(8)}


def test_held_out_scenes_are_a_function_of_the_seed_and_never_all_of_them():
    scenes = [s for s in SCENES for _ in range(2)]
    val = HoldOut("val", fraction=0.2, seed=0)
    assert val.held_out_scenes(scenes) == HoldOut("train", fraction=0.2, seed=0).held_out_scenes(scenes)
    assert len(val.held_out_scenes(scenes)) == 2  # ceil(0.2 x 8)
    assert len(HoldOut("val", fraction=0.999).held_out_scenes(scenes)) == 7  # one scene stays for training
    train_idx, val_idx = HoldOut("train", 0.2).select(scenes), val.select(scenes)
    assert sorted(train_idx + val_idx) == list(range(16))
    assert len(HoldOut("val", 0.5, max_frames=3).select(scenes)) == 3
    with pytest.raises(ValueError, match="give data.dataset.val_list"):
        val.held_out_scenes(["one", "one"])


def test_nyu_sync_validation_is_scene_disjoint_from_training(tmp_path):
    root = write_nyu_sync(tmp_path, SCENES, size=(60, 80))
    _, datamodule, _, _ = built(
        "data=nyu_sync",
        f"data.dataset.root={root}",
        f"data.dataset.train_list={root / 'train.txt'}",
        "data.dataset.fill=none",
        "data.val_fraction=0.25",
    )
    train, val = datamodule.build("train"), datamodule.build("val")
    train_scenes, val_scenes = set(train.scenes()), set(val.scenes())
    assert len(val_scenes) == 2 and not train_scenes & val_scenes
    assert train_scenes | val_scenes == set(SCENES) and len(train) + len(val) == 16
    assert val.held_out_scenes == sorted(val_scenes)


def test_nyu_labelled_validation_is_scenes_of_the_training_frames(tmp_path):
    root = write_nyu_labelled(tmp_path / "nyu")  # frames 1-4 train (scenes 0 and 1), 5-6 test (scene 2)
    _, datamodule, _, _ = built("data=nyu", f"data.dataset.root={root}")
    train, val, test = (datamodule.build(s) for s in ("train", "val", "test"))
    assert sorted([*train.indices, *val.indices]) == [0, 1, 2, 3]
    assert len(set(train.scenes()) & set(val.scenes())) == 0 and len(val) == 2
    assert list(test.indices) == [4, 5] and val.key == "rawDepths"


def test_validation_on_the_test_list_is_refused(tmp_path):
    root = write_nyu_sync(tmp_path, SCENES, size=(60, 80))
    _, datamodule, _, _ = built(
        "data=nyu_sync", f"data.dataset.root={root}", "data.dataset.val_list=t.txt", "data.dataset.test_list=t.txt"
    )
    with pytest.raises(ValueError, match="data.dataset.val_list='t.txt' is the test list"):
        datamodule.setup("fit")


@pytest.mark.slow
def test_fit_never_opens_the_test_list_and_writes_the_held_out_scenes(tmp_path):
    root = write_nyu_sync(tmp_path / "nyu", SCENES, size=(60, 80))
    run = tmp_path / "run"
    train_here(
        run,
        "data=nyu_sync",
        f"data.dataset.root={root}",
        f"data.dataset.train_list={root / 'train.txt'}",
        f"data.dataset.test_list={tmp_path / 'no-such-test-list.txt'}",  # any read of it would fail the run
        "data.dataset.fill=none",
        "data.dataset.border=null",  # small frames without NYU's border
        "data.val_fraction=0.25",
        "data.height=48",
        "data.width=64",
        "debug=tiny",
        "logger=csv",
        "trainer.max_steps=4",
        "test=false",
        "baselines=true",
    )
    results = json.loads((run / "metrics.json").read_text())
    assert results["status"] == "completed" and "soft/abs_rel" in results["val"]
    held = (run / "val_split.txt").read_text().splitlines()
    scenes = [ln.split()[1] for ln in held if ln.startswith("scene ")]
    frames = [ln for ln in held if ln.startswith(str(root / "train.txt"))]
    assert len(scenes) == 2 and len(frames) == 4
    assert all(any(f"/{s}/" in ln for s in scenes) for ln in frames)
