"""A model as a folder and on the Hub: save_pretrained -> from_pretrained predicts bit for bit as the
checkpoint, holds no pickle, refuses a config that disagrees with its weights by key, resolves a Hub
repo id through huggingface_hub's cache offline; export format=hub writes the model card; init_from
starts a new run from a model's weights (the bins' layers afresh when the bins differ)."""

import json
import shutil

import numpy as np
import pytest
import torch

from depth_lightning.core.config import compose_config
from depth_lightning.core.errors import CheckpointError
from depth_lightning.inference.loading import load_model
from tests.helpers import composed_for, run_module, train_here

TINY = ["debug=tiny", "logger=csv", "budget.mode=steps"]
HASH = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def folder(tiny_checkpoint, tmp_path_factory):
    from depth_lightning.export import export

    out = tmp_path_factory.mktemp("hub") / "tiny-depth"
    export(compose_config(f"ckpt_path={tiny_checkpoint}", "format=hub", f"output={out}", config_name="export"))
    return out


def test_the_folder_predicts_bit_for_bit_as_the_checkpoint_and_holds_no_pickle(tiny_checkpoint, folder):
    from depth_lightning import DepthEstimator  # the package's own name for the API

    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    header = (folder / "model.safetensors").read_bytes()
    size = int.from_bytes(header[:8], "little")
    assert json.loads(header[8 : 8 + size])["__metadata__"] == {"format": "pt"}  # safetensors: a JSON header
    assert all(not p.read_bytes().startswith(b"\x80") for p in folder.iterdir())  # no pickle stream
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    a = DepthEstimator.from_checkpoint(tiny_checkpoint, device="cpu").predict(image, flip=True)
    b = DepthEstimator.from_pretrained(folder, device="cpu").predict(image, flip=True)
    for key in ("depth", "uncertainty"):
        np.testing.assert_array_equal(a[key], b[key])
    saved = DepthEstimator.from_pretrained(folder, device="cpu").save_pretrained(folder.parent / "again")
    assert (saved / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()


def test_the_model_card_holds_the_test_numbers_the_protocol_and_the_commands(tiny_run, folder):
    from huggingface_hub import ModelCard

    card = (folder / "README.md").read_text()
    record = json.loads((tiny_run / "metrics.json").read_text())
    low, high = record["test_intervals"]["soft/abs_rel"]
    meta = ModelCard(card, ignore_metadata_errors=False).data  # as the Hub parses it
    assert (meta.library_name, meta.pipeline_tag, meta.datasets, meta.license) == (
        "depth_lightning",
        "depth-estimation",
        ["synthetic"],
        "other",
    )
    found = {r.metric_type: r.metric_value for r in meta.eval_results}
    assert found["abs_rel"] == record["test"]["soft/abs_rel"] and found["d1"] == record["test"]["soft/d1"]
    assert {r.dataset_name for r in meta.eval_results} == {"synthetic"}
    assert f"| abs_rel | {record['test']['soft/abs_rel']:.4f} | [{low:.4f}, {high:.4f}] |" in card
    assert f"`{record['precision']}` precision" in card and "pip install" in card
    assert (
        '"dataset": "synthetic"' in card and "python -m depth_lightning.train debug=tiny trainer.max_steps=40" in card
    )
    assert "These numbers are of" not in card  # last.ckpt is the checkpoint the run tested


def test_a_folder_whose_config_disagrees_with_its_weights_is_refused_in_one_line(folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(folder, broken)
    config = json.loads((broken / "config.json").read_text())
    config["num_bins"] = 40
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config.json and its weights disagree: .*head.classifier.0.weight"):
        load_model(broken)
    from PIL import Image

    Image.new("RGB", (96, 64)).save(tmp_path / "room.png")
    done = run_module(
        "depth_lightning.predict", f"ckpt_path={broken}", f"input={tmp_path / 'room.png'}", cwd=tmp_path, check=False
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "head.classifier" in lines[0], done.stderr


def test_a_hub_repo_id_resolves_through_the_huggingface_cache_offline(folder, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from depth_lightning import DepthEstimator

    repo = tmp_path / "cache" / "models--someone--tiny-depth"
    shutil.copytree(folder, repo / "snapshots" / HASH)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(HASH)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    image = np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    expected = DepthEstimator.from_pretrained(folder, device="cpu").predict(image)["depth"]
    for revision in (None, HASH):
        hub = DepthEstimator.from_pretrained(
            "someone/tiny-depth", revision=revision, device="cpu", cache_dir=str(tmp_path / "cache")
        )
        np.testing.assert_array_equal(hub.predict(image)["depth"], expected)
    with pytest.raises(CheckpointError, match=r"'someone/other' \(revision main\): not found locally or on the Hub"):
        DepthEstimator.from_pretrained("someone/other", cache_dir=str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # a missing checkpoint under an existing folder is a path, never a repo id
    with pytest.raises(CheckpointError, match=r"'cache/last.ckpt': no such file or folder"):
        DepthEstimator.from_pretrained("cache/last.ckpt")


def test_evaluate_takes_a_model_folder_as_it_takes_a_checkpoint(tiny_checkpoint, folder, tmp_path):
    from depth_lightning.evaluate import evaluate

    found = {}
    for name, source in (("ckpt", tiny_checkpoint), ("folder", folder)):
        out = tmp_path / f"{name}.json"
        args = (
            f"ckpt_path={source}",
            f"output={out}",
            "baselines=false",
            "data=synthetic",
            "data.dataset.test_length=8",
        )
        args += ("trainer.precision=32-true",)  # a folder says nothing of its run's precision: the same for both
        evaluate(composed_for("evaluate", tmp_path / name, *args))
        found[name] = json.loads(out.read_text())["test"]
    assert found["ckpt"] == found["folder"]


def _net_state(module, prefix):
    return {k: v for k, v in module.state_dict().items() if k.startswith(prefix)}


def test_init_from_copies_every_weight_when_the_bins_agree(tiny_checkpoint, folder, tmp_path):
    from depth_lightning.run.setup import build_run

    source = load_model(folder)
    run = build_run(compose_config(*TINY, f"init_from={folder}", output_dir=str(tmp_path / "run")))
    for key, value in source.state_dict().items():
        assert torch.equal(run.module.net.state_dict()[key], value), key  # the first step starts from them
    assert run.init_from["source"] == str(folder) and "reinitialised" not in run.init_from
    fresh = build_run(compose_config(*TINY, output_dir=str(tmp_path / "fresh")))
    assert not torch.equal(fresh.module.net.head.classifier[0].weight, source.head.classifier[0].weight)


def test_other_bins_start_the_head_afresh_and_the_run_says_so(tiny_checkpoint, tmp_path, caplog):
    from depth_lightning.run.setup import build_run

    source = load_model(tiny_checkpoint)
    cfg = compose_config(*TINY, f"init_from={tiny_checkpoint}", "model.net.num_bins=40", output_dir=str(tmp_path / "r"))
    run = build_run(cfg)
    fresh = build_run(compose_config(*TINY, "model.net.num_bins=40", output_dir=str(tmp_path / "f")))
    assert "differ from this run's" in caplog.text and "start afresh" in caplog.text
    assert run.init_from["reinitialised"] == ["net.head.classifier.0", "net.head.classifier.1", "net.head.upsample"]
    for key, value in _net_state(run.module, "net.head.classifier").items():
        assert torch.equal(value, fresh.module.state_dict()[key]), key  # the seed's fresh initialisation
    for key, value in _net_state(source, "backbone").items():
        assert torch.equal(run.module.net.state_dict()[key], value), key


def test_a_frozen_backbone_fine_tune_trains_only_the_head_and_records_its_source(tiny_checkpoint, tmp_path):
    results = train_here(
        tmp_path / "run", *TINY, f"init_from={tiny_checkpoint}", "model.net.freeze_backbone=true", "trainer.max_steps=2"
    )
    assert results["init_from"]["source"] == str(tiny_checkpoint) and results["global_step"] == 2
    tuned, source = load_model(tmp_path / "run" / "checkpoints" / "last.ckpt"), load_model(tiny_checkpoint)
    for key, value in _net_state(source, "backbone").items():
        assert torch.equal(tuned.state_dict()[key], value), key  # weights and BatchNorm statistics unchanged
    assert not torch.equal(tuned.head.classifier[0].weight, source.head.classifier[0].weight)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["init_from"]["copied"] > 0 and saved["config"]["init_from"] == str(tiny_checkpoint)
    from depth_lightning.export import export

    export(compose_config(f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}", "format=hub",
                          f"output={tmp_path / 'shared'}", config_name="export"))  # fmt: skip
    card = (tmp_path / "shared" / "README.md").read_text()
    assert "Fine-tuned from `<...>/last.ckpt`." in card  # named, never the exporting machine's path
    assert str(tmp_path) not in card and str(tiny_checkpoint.parent) not in card
