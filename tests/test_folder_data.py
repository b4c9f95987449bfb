"""data=folder: a user's own RGB-D frames, laid out here from real NYU and TUM frames in two depth
encodings, train (validation held out by folder), test and write per-image results; the dataset check
passes on them, prints the settings it derives, and names the file and the scale when the scale is wrong."""

import shutil

import numpy as np
import pytest
from PIL import Image

from depth_lightning.check import main_check
from depth_lightning.core.config import build
from depth_lightning.evaluation.per_image import read_per_image_csv
from tests.helpers import ROOT, SHARED, composed_for, train_here

REAL = SHARED / "realdata"
NYU = REAL / "nyu" / "sync" / "metric3d_nyu_demo"
TUM = REAL / "other" / "tum_rgbd"
pytestmark = pytest.mark.skipif(not (NYU.is_dir() and TUM.is_dir()), reason=f"real NYU/TUM samples not at {REAL}")
GLOBS = ["data=folder", "data.dataset.images.train=train/*/rgb/*", "data.dataset.images.test=test/*/rgb/*"]
TINY = ["debug=tiny", "logger=csv", "trainer.max_steps=2", "budget.mode=steps"]


def tum_metres() -> np.ndarray:
    return (np.array(Image.open(TUM / "TUM_depth.png")).astype(np.float64) / 5000).astype(np.float32)


def nyu_metres(k: str) -> np.ndarray:
    return (np.array(Image.open(NYU / "depth" / f"sync_depth_{k}.png")).astype(np.float64) / 1000).astype(np.float32)


def my_frames(root, encoding="png"):
    """A user's folder: train/<place>/rgb/<name>.jpg|png beside train/<place>/depth/<name>.png (mm) or .npy
    (float metres), test/ alike: NYU frames 0 and 50 in `office`, the TUM frame in `lab`, NYU frame 100 to test."""
    frames = {
        "train/office": [(NYU / "rgb" / f"rgb_{k}.jpg", nyu_metres(k)) for k in ("00000", "00050")],
        "train/lab": [(TUM / "TUM_color.png", tum_metres())],
        "test/kitchen": [(NYU / "rgb" / "rgb_00100.jpg", nyu_metres("00100"))],
    }
    lines = {"train": [], "test": []}
    for place, items in frames.items():
        for rgb, depth in items:
            name = f"{place.split('/')[1]}_{rgb.stem}"
            image = root / place / "rgb" / f"{name}{rgb.suffix}"
            image.parent.mkdir(parents=True, exist_ok=True)
            (root / place / "depth").mkdir(exist_ok=True)
            shutil.copy(rgb, image)
            if encoding == "png":
                depth_file = root / place / "depth" / f"{name}.png"
                Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(depth_file)
            else:
                depth_file = root / place / "depth" / f"{name}.npy"
                np.save(depth_file, depth)
            lines[place.split("/")[0]].append(f"{image.relative_to(root)} {depth_file.relative_to(root)}\n")
    for split, listed in lines.items():
        (root / f"{split}.txt").write_text("".join(listed))
    return root


def test_a_folder_of_real_frames_trains_validates_on_held_out_folders_and_tests(tmp_path):
    root = my_frames(tmp_path / "my_frames")
    results = train_here(
        tmp_path / "run", *GLOBS, f"data.dataset.root={root}", "data.val_fraction=0.5", "test=true", *TINY
    )
    assert results["status"] == "completed" and results["global_step"] == 2
    held_out = (tmp_path / "run" / "val_split.txt").read_text()
    assert "scene train/lab/rgb" in held_out or "scene train/office/rgb" in held_out  # one of the two folders
    card, rows = read_per_image_csv(tmp_path / "run" / "per_image.csv")
    assert card["dataset"] == "folder" and card["list"]["found_by"] == "test/*/rgb/*"
    assert [r["frame"] for r in rows] == ["test/kitchen/rgb/kitchen_rgb_00100"]
    assert "encoding png" in card["ground_truth"] and "scale=1000.0" in card["ground_truth"]
    assert results["test"]["soft/abs_rel"] == pytest.approx(float(rows[0]["soft/abs_rel"]), rel=1e-12)


def test_both_encodings_read_as_an_independent_decode(tmp_path):
    for encoding, overrides in (
        ("png", []),
        ("npy", ["data.dataset.depth.encoding=npy", "~data.dataset.depth.scale"]),
    ):
        root = my_frames(tmp_path / encoding, encoding)
        lists = [f"data.dataset.train_list={root / 'train.txt'}", f"data.dataset.test_list={root / 'test.txt'}"]
        cfg = composed_for("check", tmp_path, "data=folder", f"data.dataset.root={root}", *lists, *overrides)
        datamodule = build(cfg.data, "data")
        train = datamodule.build("train", whole_list=True)
        expected = [nyu_metres("00000"), nyu_metres("00050"), tum_metres()]
        for i, truth in enumerate(expected):
            depth = train.load(i)[1]
            if encoding == "npy":
                np.testing.assert_array_equal(depth, truth)  # float metres as saved
            else:  # millimetre PNG of the same depth: within half a millimetre
                assert np.abs(depth - truth).max() <= 0.0005 + 1e-6


def test_the_check_passes_prints_what_it_would_set_and_names_a_wrong_scale(tmp_path, capsys):
    root = my_frames(tmp_path / "my_frames")
    args = [*GLOBS, f"data.dataset.root={root}"]
    assert main_check(composed_for("check", tmp_path, *args)) == 0
    out = capsys.readouterr().out
    assert "passed: 0 error(s)" in out and "this would set:\n  data.depth_min=" in out
    suggested = out.split("this would set:\n  ")[1].splitlines()[0].split()
    depth = np.concatenate([d[d > 0] for d in (nyu_metres("00000"), nyu_metres("00050"), tum_metres())])
    assert float(suggested[1].split("=")[1]) == pytest.approx(np.percentile(depth, 99.5), rel=0.05)
    any_depth = (nyu_metres("00000") > 0) | (nyu_metres("00050") > 0) | (tum_metres() > 0)
    rows, cols = np.nonzero(any_depth.any(1))[0], np.nonzero(any_depth.any(0))[0]
    box = f"[{rows.min()},{rows.max() + 1},{cols.min()},{cols.max() + 1}]"  # the border no frame has depth in
    assert f"data.protocol.region=box data.protocol.box={box}" in out
    code = main_check(composed_for("check", tmp_path, *args, "data.dataset.depth.scale=1"))
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out
    assert "office_rgb_00000.png" in out and "data.dataset.depth.scale=1" in out


def _readme_commands(title: str) -> list[list[str]]:
    """The commands of the README section ``title``'s shell block, as a shell passes them."""
    from tests.test_doc_commands import words

    section = (ROOT / "README.md").read_text().split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [words(line) for line in block.splitlines() if line.strip()]


def test_the_readmes_own_data_and_fine_tune_recipes_run_as_written(tiny_checkpoint, tmp_path, capsys):
    from depth_lightning.core.config import compose_config
    from depth_lightning.export import export

    root = my_frames(tmp_path / "my_frames")
    nyu_model = tmp_path / "nyu_model"  # the README's model to fine-tune: here the suite's tiny one, as a folder
    export(compose_config(f"ckpt_path={tiny_checkpoint}", "format=hub", f"output={nyu_model}", config_name="export"))
    last_run = None
    for n, argv in enumerate(
        _readme_commands("Train on your own data") + _readme_commands("Fine-tune and share a model")
    ):
        args = [a.replace("=my_frames", f"={root}").replace("=nyu_model", f"={nyu_model}") for a in argv[3:]]
        entry = argv[2]
        if entry == "depth_lightning.check":
            assert main_check(composed_for("check", tmp_path, *args)) == 0, capsys.readouterr().out
        elif entry == "depth_lightning.train":
            last_run = tmp_path / f"run{n}"
            results = train_here(last_run, *args, *TINY)
            assert results["status"] == "completed" and (last_run / "per_image.csv").is_file()
            if any(a.startswith("init_from=") for a in args):
                assert results["init_from"]["source"] == str(nyu_model) and "reinitialised" not in results["init_from"]
        elif entry == "depth_lightning.export":
            ckpt = last_run / "checkpoints" / "last.ckpt"
            args = [
                f"ckpt_path={ckpt}"
                if a.startswith("ckpt_path=")
                else a.replace("=my_model", f"={tmp_path / 'my_model'}")
                for a in args
            ]
            export(compose_config(*args, config_name="export"))
            assert "| abs_rel |" in (tmp_path / "my_model" / "README.md").read_text()
        else:
            raise AssertionError(f"the README's recipe runs {entry}: run it here too")
    assert last_run is not None and (tmp_path / "my_model" / "model.safetensors").is_file()


def test_a_missing_depth_file_is_named_by_the_check_and_stops_training_before_it_starts(tmp_path, capsys):
    root = my_frames(tmp_path / "my_frames")
    (root / "train" / "lab" / "depth" / "lab_TUM_color.png").unlink()
    args = [*GLOBS, f"data.dataset.root={root}"]
    assert main_check(composed_for("check", tmp_path, *args)) == 1
    assert "train/lab/rgb/lab_TUM_color.png pairs with" in capsys.readouterr().out
    with pytest.raises(Exception, match=r"lab_TUM_color\.png, which does not exist \(data.skip_bad_samples=true"):
        train_here(tmp_path / "run", *args, *TINY)
