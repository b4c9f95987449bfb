"""One check of the frames, run by ``check`` and by training's setup: a folder whose RGB and depth differ in
size, or whose depth is in another unit, is refused by both before any step (``check`` passes exactly
what training accepts); with ``test=true`` the test list is checked at setup, not after the fit."""

import json

import numpy as np
import pytest
from PIL import Image

from depth_lightning.check import main_check
from depth_lightning.core.errors import DataError
from tests.helpers import composed_for, train_here

TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "budget.mode=steps", "data.num_workers=0"]


def user_folder(root, depth_scale=1000.0, odd=None):
    """A user's frames made here: train/<place>/rgb/*.png beside train/<place>/depth/*.png (16-bit,
    1/depth_scale metres), two places of three frames, one test frame; ``odd``: that train frame's depth
    is 40 x 52, not 48 x 64."""
    rng = np.random.default_rng(0)
    for place, n in (("train/office", 3), ("train/lab", 3), ("test/kitchen", 1)):
        for k in range(n):
            (root / place / "rgb").mkdir(parents=True, exist_ok=True)
            (root / place / "depth").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / place / "rgb" / f"{k}.png")
            shape = (40, 52) if odd == f"{place}/{k}" else (48, 64)
            metres = rng.uniform(1.0, 6.0, shape)
            Image.fromarray(np.round(metres * depth_scale).astype(np.uint16)).save(root / place / "depth" / f"{k}.png")
    return [
        "data=folder", f"data.dataset.root={root}", "data.dataset.images.train=train/*/rgb/*",
        "data.dataset.images.test=test/*/rgb/*", "data.val_fraction=0.5",
    ]  # fmt: skip


def checked(tmp_path, data):
    return main_check(composed_for("check", tmp_path / "check", *data, "splits=[train,test]"))


def test_a_frame_whose_rgb_and_depth_differ_in_size_fails_check_and_training_setup(tmp_path, capsys):
    data = user_folder(tmp_path / "frames", odd="train/lab/1")
    assert checked(tmp_path, data) == 1
    out = capsys.readouterr().out
    assert "lab/depth/1.png): RGB (48, 64) and depth (40, 52) differ in size" in out and "FAILED" in out
    expected = r"the (train|val) split of folder: 1 problem\(s\) found before training: .*lab/depth/1.png\): "
    with pytest.raises(DataError, match=expected + r"RGB \(48, 64\) and depth \(40, 52\) differ in size"):
        train_here(tmp_path / "run", *data, *TINY)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["status"] == "failed" and "global_step" not in record  # refused before any step
    assert checked(tmp_path, user_folder(tmp_path / "good")) == 0  # what check passes, training accepts
    assert train_here(tmp_path / "ok", *user_folder(tmp_path / "good"), *TINY)["status"] == "completed"


def test_depth_in_another_unit_fails_check_and_training_setup_naming_the_setting(tmp_path, capsys):
    data = user_folder(tmp_path / "frames", depth_scale=1.0)  # metres stored where millimetres belong
    assert checked(tmp_path, data) == 1
    assert "outside the 0.05-200 m a folder frame holds" in capsys.readouterr().out
    with pytest.raises(DataError, match=r"median depth 0.00\d+ m, outside .*data.dataset.depth.scale=1000"):
        train_here(tmp_path / "run", *data, *TINY)
    train_here(tmp_path / "mm", *data, *TINY, "data.dataset.depth.scale=1.0")  # the unit said: accepted


def test_with_test_true_an_unusable_test_split_is_refused_before_the_fit(tmp_path):
    data = user_folder(tmp_path / "frames")
    for frame in (tmp_path / "frames" / "test" / "kitchen" / "depth").iterdir():
        Image.fromarray(np.zeros((48, 64), np.uint16)).save(frame)  # no valid depth in the test frames
    with pytest.raises(DataError, match=r"the test split holds no valid depth"):
        train_here(tmp_path / "run", *data, *TINY, "test=true")
    assert "global_step" not in json.loads((tmp_path / "run" / "metrics.json").read_text())
