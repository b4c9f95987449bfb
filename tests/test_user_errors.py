"""No user error ends in a raw traceback: every entry point, every kind of bad option (missing, wrong
type, a file where a folder is expected, unwritable, malformed contents) ends in one of the suite's
user errors, whose message names the setting or the file; the command line prints it in one line and
exits 2."""

import copy

import numpy as np
import pytest
import torch

from depth_lightning.check import main_check
from depth_lightning.core.errors import USER_ERRORS
from depth_lightning.evaluate import evaluate
from depth_lightning.export import export
from depth_lightning.predict import predict
from depth_lightning.score import score_and_record
from depth_lightning.train import train
from tests.datasets import write_kitti, write_nyu_sync
from tests.helpers import composed_for, run_module

ENTRY_POINTS = {"train": train, "evaluate": evaluate, "predict": predict, "score": score_and_record, "export": export}
TINY = ["debug=tiny", "logger=none"]


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    """Things a user may point an option at by mistake."""
    work = tmp_path_factory.mktemp("bad")
    text = work / "notes.txt"
    text.write_text("not a checkpoint\n")
    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    wrong = copy.deepcopy(ckpt)
    wrong["hyper_parameters"]["net"]["num_bins"] += 4  # its saved config disagrees with its weights
    torch.save(wrong, work / "disagrees.ckpt")
    image = work / "images"
    image.mkdir()
    from PIL import Image

    Image.fromarray(np.zeros((48, 64, 3), np.uint8) + 90).save(image / "a.png")
    nyu = write_nyu_sync(work / "nyu", {"a": 2, "b": 2}, size=(60, 80))
    preds = work / "preds"
    for line in (nyu / "test.txt").read_text().splitlines():
        target = preds / f"{line.split()[0].rsplit('.', 1)[0]}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(b"\x93NUMPY garbage")  # malformed contents
    kitti = write_kitti(work / "kitti", frames=(0, 1))
    bad_calib = write_kitti(work / "bad_calib", frames=(0, 1))
    calib = bad_calib["raw"] / "2011_09_26" / "calib_velo_to_cam.txt"
    calib.write_text(calib.read_text().replace("T: -4.069766e-03 -7.631618e-02 -2.717806e-01", "T: 1 2"))
    return {"work": work, "text": text, "ckpt": tiny_checkpoint, "disagrees": work / "disagrees.ckpt",
            "images": image, "nyu": nyu, "preds": preds, "kitti": kitti, "bad_calib": bad_calib}  # fmt: skip


def _nyu(f):
    root = f["nyu"]
    return [f"data.dataset.root={root}", f"data.dataset.train_list={root / 'train.txt'}",
            f"data.dataset.test_list={root / 'test.txt'}"]  # fmt: skip


CASES = {
    # entry point, option kind: (overrides, what the message must name)
    "train/missing dataset root": (
        "train",
        lambda f: [*TINY, "data=nyu_sync", "data.dataset.root=/no/such"],
        "data.dataset.root",
    ),
    "train/missing checkpoint": ("train", lambda f: [*TINY, "ckpt_path=/no/such.ckpt"], "/no/such.ckpt"),
    "train/wrong type": ("train", lambda f: [*TINY, "trainer.max_steps=abc"], "trainer.max_steps"),
    "train/negative lr": ("train", lambda f: [*TINY, "model.optimizer.lr=-1"], "model.optimizer.lr"),
    "train/one scene, no validation list": (
        "train",
        lambda f: [
            *TINY,
            "data=kitti",
            f"data.dataset.root={f['kitti']['raw']}",
            f"data.dataset.train_list={f['kitti']['monodepth2']}",
            f"data.dataset.test_list={f['kitti']['monodepth2']}",
            "data.dataset.fill=none",
        ],
        "data.dataset.val_list",
    ),
    "train/malformed calibration": (
        "train",
        lambda f: [
            *TINY,
            "data=kitti",
            f"data.dataset.root={f['bad_calib']['raw']}",
            f"data.dataset.train_list={f['bad_calib']['monodepth2']}",
            f"data.dataset.val_list={f['bad_calib']['bts']}",
            f"data.dataset.test_list={f['bad_calib']['monodepth2']}",
            "data.dataset.fill=none",
        ],
        "T 2",
    ),
    "evaluate/missing checkpoint": ("evaluate", lambda f: ["ckpt_path=/no/such.ckpt"], "/no/such.ckpt"),
    "evaluate/a folder that is not a model": ("evaluate", lambda f: [f"ckpt_path={f['work']}"], "no config.json"),
    "evaluate/malformed checkpoint": ("evaluate", lambda f: [f"ckpt_path={f['text']}"], "notes.txt"),
    "evaluate/config disagrees with weights": (
        "evaluate",
        lambda f: [f"ckpt_path={f['disagrees']}"],
        "shape mismatches",
    ),
    "evaluate/unwritable output": (
        "evaluate",
        lambda f: [f"ckpt_path={f['ckpt']}", f"output={f['text']}/m.json"],
        "output=",
    ),
    "evaluate/a folder for the output file": (
        "evaluate",
        lambda f: [f"ckpt_path={f['ckpt']}", f"output={f['work']}"],
        "is a folder",
    ),
    "predict/missing input": ("predict", lambda f: [f"ckpt_path={f['ckpt']}", "input=/no/such"], "/no/such"),
    "predict/a file for the output folder": (
        "predict",
        lambda f: [f"ckpt_path={f['ckpt']}", f"input={f['images']}", f"output={f['text']}"],
        "is a file",
    ),
    "predict/malformed checkpoint": (
        "predict",
        lambda f: [f"ckpt_path={f['text']}", f"input={f['images']}", f"output={f['work'] / 'p'}"],
        "notes.txt",
    ),
    "predict/wrong precision": (
        "predict",
        lambda f: [f"ckpt_path={f['ckpt']}", f"input={f['images']}", f"output={f['work'] / 'p'}", "precision=fp12"],
        "precision",
    ),
    "score/missing predictions": ("score", lambda f: ["predictions=/no/such", *_nyu(f)], "predictions"),
    "score/a file for the predictions folder": (
        "score",
        lambda f: [f"predictions={f['text']}", *_nyu(f)],
        "predictions",
    ),
    "score/wrong type": ("score", lambda f: [f"predictions={f['preds']}", *_nyu(f), "scale=abc"], "scale"),
    "score/malformed prediction": ("score", lambda f: [f"predictions={f['preds']}", *_nyu(f)], ".npy: unreadable"),
    "score/unwritable output": (
        "score",
        lambda f: [f"predictions={f['preds']}", *_nyu(f), f"output={f['text']}/x.json"],
        "output=",
    ),
    "export/missing checkpoint": ("export", lambda f: ["ckpt_path=/no/such.ckpt"], "/no/such.ckpt"),
    "export/unwritable output": (
        "export",
        lambda f: [f"ckpt_path={f['ckpt']}", f"output={f['text']}/m.onnx"],
        "output=",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_bad_option_ends_in_a_user_error_naming_it(case, files, tmp_path):
    entry, overrides, named = CASES[case]
    cfg = composed_for(entry, tmp_path / "run", *overrides(files))
    with pytest.raises(Exception) as err:
        ENTRY_POINTS[entry](cfg)
    assert isinstance(err.value, USER_ERRORS), f"{case}: a raw {type(err.value).__name__}: {err.value}"
    assert named in str(err.value), f"{case}: {err.value}"


def test_the_check_reports_a_missing_root_as_an_error_line(tmp_path, capsys):
    code = main_check(composed_for("check", tmp_path, "data=nyu_sync", "data.dataset.root=/no/such"))
    assert code == 1 and "data.dataset.root='/no/such' does not exist" in capsys.readouterr().out


@pytest.mark.parametrize("module", ["depth_lightning.evaluate", "depth_lightning.export"])
def test_on_the_command_line_a_user_error_is_one_line_and_exit_2(module, files, tmp_path):
    proc = run_module(
        module,
        f"ckpt_path={files['disagrees']}",
        f"output={tmp_path / 'x.onnx'}" if module.endswith("export") else f"output={tmp_path / 'x.json'}",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ckpt_path=") and "shape mismatches" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
