"""Every message names what the user set, and ends in one line and exit code 2: the encoding that failed,
the setting behind an unwritable run folder, a required setting left out, a nested value of the wrong
type, a refused ``_target_``, an empty predictions folder, a read error of ``init_from``; ``+debug=tiny``
reads as ``debug=tiny``, and the documented ``data.dataset.test_list=`` works for every zero-shot dataset."""

import numpy as np
import pytest
from PIL import Image

from depth_lightning.core.config import added_groups_as_choices, compose_config
from depth_lightning.core.errors import CheckpointError, DataError
from depth_lightning.data.encodings import read_depth
from tests.helpers import composed_for, run_module


def test_a_png_read_as_npy_names_the_encoding_not_pickle(tmp_path):
    Image.fromarray(np.ones((4, 4), np.uint16)).save(tmp_path / "d.png")
    with pytest.raises(
        DataError, match=r"d.png: not a NumPy .npy/.npz file, which data.dataset.depth.encoding=npy"
    ) as e:
        read_depth(tmp_path / "d.png", "npy", {}, {})
    assert "pickle" not in str(e.value)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["depth_lightning.evaluate"], "error: config error: ckpt_path: required; give ckpt_path=<value>"),
        (["depth_lightning.train", "debug=tiny", "hydra.run.dir=/proc/nope/run"],
         "the run folder /proc/nope/run cannot be written .* hydra.run.dir .* DEPTH_LIGHTNING_LOGS"),
        (["depth_lightning.train", "debug=tiny", "data.protocol.caps=abc"], r"data.protocol.caps='abc': a list of"),
        (["depth_lightning.train", "debug=tiny", "model.optimizer._target_=subprocess.call"],
         "Target 'subprocess.call' is blocklisted"),
    ],
)  # fmt: skip
def test_user_errors_end_in_one_line_naming_the_setting(args, expected, tmp_path):
    run = [*args, f"hydra.run.dir={tmp_path / 'run'}"] if not any("hydra.run.dir" in a for a in args) else args
    done = run_module(*run, cwd=tmp_path, check=False)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr[-2000:]
    assert lines[0].startswith("error: ") and __import__("re").search(expected, lines[0]), lines[0]


def test_plus_debug_reads_as_the_group_choice():
    argv = added_groups_as_choices(["train", "+debug=tiny", "+experiment=nyu_paper", "+data.x=1"], "train")
    assert argv == ["train", "debug=tiny", "+experiment=nyu_paper", "+data.x=1"]
    cfg = compose_config(*argv[1:2])
    assert cfg.trainer.max_steps == 8  # debug=tiny composed


@pytest.mark.parametrize("name", ["tum", "eth3d", "ibims", "scannet", "sun_rgbd", "middlebury", "hypersim", "sintel",
                                  "vkitti2", "diode"])  # fmt: skip
def test_the_documented_test_list_override_composes_for_every_zero_shot_dataset(name, tmp_path):
    cfg = composed_for("evaluate", tmp_path, "ckpt_path=x", f"data={name}", "data.dataset.test_list=frames.txt",
                       "data.dataset.columns=[image,depth]")  # fmt: skip
    assert cfg.data.dataset.test_list == "frames.txt" and list(cfg.data.dataset.columns) == ["image", "depth"]


def test_an_empty_predictions_folder_is_named_not_the_ground_truth(tmp_path):
    from depth_lightning.score import score

    (tmp_path / "preds").mkdir()
    cfg = composed_for("score", tmp_path / "out", "data=synthetic", "data.dataset.test_length=2",
                       f"predictions={tmp_path / 'preds'}", "allow_missing=true")  # fmt: skip
    with pytest.raises(DataError, match=r"preds: holds no prediction of any of the 2 test frames .*right folder"):
        score(cfg)


def test_a_read_error_of_init_from_names_init_from(tmp_path):
    from depth_lightning.run.setup import build_run

    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    cfg = compose_config("debug=tiny", "logger=csv", f"init_from={tmp_path / 'junk.ckpt'}", output_dir=str(tmp_path))
    with pytest.raises(CheckpointError, match=r"^init_from='.*junk.ckpt': cannot be read"):
        build_run(cfg)
