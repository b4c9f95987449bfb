import csv
import json

import numpy as np
import pytest
from PIL import Image

from depth_lightning.core.errors import CheckpointError
from tests.helpers import assert_consistent_results, composed_for, train_here


def test_fast_dev_run_of_the_default_config(tmp_path):
    results = train_here(tmp_path / "run", "debug=fast")
    assert results["config"]["trainer"]["fast_dev_run"] is True and results["global_step"] == 1  # one batch
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["status"] == "completed"


def test_short_training_lowers_validation_loss_and_saves_everything(tiny_run):
    rows = list(csv.DictReader(open(tiny_run / "csv" / "metrics.csv")))
    val_loss = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(val_loss) >= 3
    assert val_loss[-1] < val_loss[0], val_loss
    results = json.loads((tiny_run / "metrics.json").read_text())
    assert results["status"] == "completed" and results["global_step"] == 40
    assert_consistent_results(results)
    for split in ("val", "test"):
        assert 0 < results[split]["pixel_acc"] < 1
    assert results["val"]["abs_rel"] == results["val"]["soft/abs_rel"]  # the headline is the soft decoder
    table = results["baselines"]  # the README's main comparison: the model beats what sees no image
    assert set(table) == {"soft", "hard", "constant", "position_prior"}
    assert table["soft"]["abs_rel"] < min(table["constant"]["abs_rel"], table["position_prior"]["abs_rel"])
    assert table["soft"]["pixels"] == table["constant"]["pixels"] == table["position_prior"]["pixels"]
    assert (tiny_run / "checkpoints" / "last.ckpt").is_file()
    assert list((tiny_run / "panels").glob("*.png"))
    assert results["config"]["model"]["net"]["backbone"] == "resnet18"


def test_wandb_offline_run_holds_metrics_and_an_image(tiny_run):
    from tests.wandb_reader import logged

    runs = list((tiny_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    history = logged(runs[0])["history"]
    keys = {k for row in history for k in row}
    for key in ("train/loss", "val/loss", "val/soft/abs_rel", "val/hard/abs_rel", "val/pixel_acc", "val/abs_rel"):
        assert key in keys, key
    last = [row for row in history if "val/soft/abs_rel" in row][-1]
    results = json.loads((tiny_run / "metrics.json").read_text())
    assert last["val/soft/abs_rel"] == pytest.approx(results["val"]["soft/abs_rel"], rel=1e-6)
    panels = [row for row in history if row.get("val/panels/_type") == "images/separated"]
    assert panels, "no depth panel was logged to W&B"
    images = list((runs[0] / "files" / "media" / "images").rglob("panels_*.png"))
    assert len(images) == len(panels)
    assert Image.open(images[0]).size[0] > Image.open(images[0]).size[1]  # five panels side by side


def test_evaluate_prints_and_writes_both_decoders(tiny_checkpoint, tmp_path, capsys):
    from depth_lightning.evaluate import evaluate

    out = tmp_path / "eval.json"
    cfg = composed_for(
        "evaluate",
        tmp_path / "eval",
        f"ckpt_path={tiny_checkpoint}",
        f"output={out}",
        "+data.dataset.test_length=8",  # the frames training tested (debug=tiny: 2 batches of 4)
    )
    evaluate(cfg)
    printed = capsys.readouterr().out
    assert "soft" in printed and "hard" in printed and "abs_rel" in printed
    metrics = json.loads(out.read_text())["test"]
    assert {"soft/abs_rel", "hard/abs_rel", "pixel_acc"} <= set(metrics)
    # the checkpoint's own test split and weights (test_checkpoint=last): the numbers training wrote
    # (under bf16 autocast where the CPU has it; evaluate runs float32)
    trained = json.loads((tiny_checkpoint.parent.parent / "metrics.json").read_text())
    assert trained["tested_checkpoint"] == "last"
    for key in ("soft/abs_rel", "hard/abs_rel", "soft/d1", "soft/rmse"):
        assert metrics[key] == pytest.approx(trained["test"][key], rel=5e-3, abs=1e-3), key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a key no config group has, in the model and in the data (tests/test_config.py: the other layers)
        (["model.net.bakbone=resnet18"], "bakbone"),
        (["data.heigth=64"], "heigth"),
    ],
)
def test_config_errors_fail_before_any_work(tmp_path, args, message):
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=message):  # Hydra composes no such key
        train_here(tmp_path / "run", *args)
    assert not (tmp_path / "run").exists()


def test_bad_checkpoints_are_refused_clearly(tmp_path):
    import torch

    from depth_lightning.inference.loading import load_model

    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "absent.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="not a depth_lightning checkpoint"):
        load_model(tmp_path / "other.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_model(tmp_path / "junk.ckpt")


def test_fig7_confusion_belongs_to_the_validation_that_wrote_it(tmp_path):
    """One validation only (at the last step), K = 40 (no merging): the saved matrix's trace / sum is
    that validation's pixel accuracy."""
    run = tmp_path / "run"
    results = train_here(run, "debug=tiny", "model.net.num_bins=40", "logger=csv", "baselines=false")
    rows = [r for r in csv.DictReader(open(run / "csv" / "metrics.csv")) if r.get("val/pixel_acc")]
    assert len(rows) == 1  # a single validation
    counts = np.load(run / "confusion_val.npy")
    assert counts.shape == (40, 40)
    assert np.trace(counts) / counts.sum() == pytest.approx(results["val"]["pixel_acc"], rel=1e-6)


@pytest.mark.slow
def test_the_readmes_baselines_of_the_default_job_are_what_they_measure():
    """The constant and position prior of the README's table depend on the data only: measured here
    on the default job's own validation set, as the job prints them."""
    from depth_lightning.evaluation.baselines import evaluate_with_baselines, fit_baselines
    from tests.helpers import ROOT, built

    _, datamodule, module, _ = built()
    datamodule.setup("fit")
    maps = fit_baselines(datamodule.training_depth_sample())
    table = evaluate_with_baselines(module, datamodule.val_dataloader(), maps, datamodule.protocol, datamodule.name)
    readme = (ROOT / "README.md").read_text()
    for name in ("constant", "position_prior"):
        documented = next(ln.split()[1:] for ln in readme.splitlines() if ln.startswith(f"{name} "))
        measured = [f"{table[name][k]:.4f}" for k in ("abs_rel", "d1", "rmse")]
        assert measured == documented, (name, measured, documented)
