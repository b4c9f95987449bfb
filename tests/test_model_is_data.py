"""A model is data, not code: every loading path (from_pretrained, evaluate, predict, export in both formats,
init_from, benchmark) reads a model folder or a checkpoint without importing or calling anything it names;
the folder holds only the network's settings; weights that disagree with them are refused by tensor;
the layouts today's main wrote still load bit for bit; evaluate reproduces the run's own test table in
its precision; export writes a card the Hub parses and never replaces a user's files."""

import json
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import torch

from depth_lightning.core.config import compose_config
from depth_lightning.core.errors import USER_ERRORS, CheckpointError
from depth_lightning.inference.loading import load_model
from depth_lightning.models.settings import SETTINGS
from tests.helpers import composed_for, run_module
from tests.planted import TARGET

PLANT = {"_target_": TARGET}


@pytest.fixture(scope="module")
def folder(tiny_checkpoint, tmp_path_factory):
    from depth_lightning.export import export

    out = tmp_path_factory.mktemp("model") / "tiny-depth"
    export(compose_config(f"ckpt_path={tiny_checkpoint}", "format=hub", f"output={out}", config_name="export"))
    return out


@pytest.fixture(scope="module")
def today(tiny_checkpoint):
    """The tiny checkpoint's parts as today's main writes them: its hyper-parameters and the network's tensors."""
    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    return ckpt["hyper_parameters"], state


def planted_module_configs(hparams):
    """``(field, config)``: the training module's arguments with the callable planted at one place each,
    at every depth: a group's own target, a value inside a group, inside lists and dicts."""
    cases = {
        "optimizer._target_": lambda h: h["optimizer"].update(PLANT),
        "scheduler._target_": lambda h: h["scheduler"].update(PLANT),
        "optimizer.lr": lambda h: h["optimizer"].update(lr=dict(PLANT)),
        "data._target_": lambda h: h["data"].update(PLANT),
        "data.augment._target_": lambda h: h["data"]["augment"].update(PLANT),
        "data.protocol.caps[0]": lambda h: h["data"]["protocol"].update(caps=[dict(PLANT)]),
        "net._target_": lambda h: h["net"].update(PLANT),
        "net.backbone": lambda h: h["net"].update(backbone=dict(PLANT)),
        "net.taps[1]": lambda h: h["net"]["taps"].__setitem__(1, dict(PLANT)),
    }
    for field, plant in cases.items():
        config = json.loads(json.dumps(hparams))
        plant(config)
        yield field, config


def loading_paths(source, tmp_path):
    """Every entry point's way in, each called as its command line calls it."""
    from depth_lightning.benchmark import benchmark
    from depth_lightning.evaluate import evaluate
    from depth_lightning.export import export
    from depth_lightning.inference import DepthEstimator
    from depth_lightning.predict import predict
    from depth_lightning.run.setup import build_run

    out = tmp_path / "out"
    return {
        "from_pretrained": lambda: DepthEstimator.from_pretrained(source, device="cpu"),
        "evaluate": lambda: evaluate(composed_for("evaluate", out, f"ckpt_path={source}", "data=synthetic")),
        "predict": lambda: predict(
            compose_config(
                f"ckpt_path={source}", f"input={tmp_path / 'room.png'}", f"output={out}", config_name="predict"
            )
        ),
        "export onnx": lambda: export(
            compose_config(f"ckpt_path={source}", f"output={out / 'm.onnx'}", config_name="export")
        ),
        "export hub": lambda: export(
            compose_config(f"ckpt_path={source}", "format=hub", f"output={out / 'hub'}", config_name="export")
        ),
        "init_from": lambda: build_run(
            compose_config("debug=tiny", "logger=csv", f"init_from={source}", output_dir=str(tmp_path / "run"))
        ),
        "benchmark": lambda: benchmark(composed_for("benchmark", out, f"ckpt_path={source}", "datasets=[synthetic]")),
    }


def assert_every_path_refuses(source, field, tmp_path, monkeypatch):
    marker = tmp_path / "planted-ran"
    monkeypatch.setenv("DL_PLANTED", str(marker))
    for name, load in loading_paths(source, tmp_path).items():
        with pytest.raises(CheckpointError) as refused:
            load()
        assert field in str(refused.value) and "\n" not in str(refused.value), (name, str(refused.value))
        assert not marker.exists(), f"{name} ran code named at {field} of {source}"


def test_a_target_planted_anywhere_in_a_checkpoint_is_refused_by_every_loading_path(today, tmp_path, monkeypatch):
    from PIL import Image

    Image.new("RGB", (96, 64)).save(tmp_path / "room.png")
    hparams, state = today
    for field, config in planted_module_configs(hparams):
        path = tmp_path / "planted.ckpt"
        torch.save({"hyper_parameters": config, "state_dict": state}, path)
        assert_every_path_refuses(path, f"hyper_parameters.{field}", tmp_path, monkeypatch)


def test_a_target_planted_anywhere_in_a_model_folder_is_refused_by_every_loading_path(
    folder, today, tmp_path, monkeypatch
):
    from PIL import Image

    Image.new("RGB", (96, 64)).save(tmp_path / "room.png")
    settings = json.loads((folder / "config.json").read_text())
    cases = [  # format 2, this one: the network's settings
        ("_target_", {**settings, **PLANT}),
        ("backbone", {**settings, "backbone": dict(PLANT)}),
        ("taps[0]", {**settings, "taps": [dict(PLANT), *settings["taps"][1:]]}),
    ]
    hparams, _ = today
    for field, config in planted_module_configs(hparams):  # format 1, today's main: the module's arguments
        cases.append((field, {"format": 1, "library": "depth_lightning", **config}))
    for field, config in cases:
        planted = tmp_path / "planted"
        shutil.rmtree(planted, ignore_errors=True)
        shutil.copytree(folder, planted)
        (planted / "config.json").write_text(json.dumps(config))
        assert_every_path_refuses(planted, field, tmp_path, monkeypatch)


def test_a_refusal_is_one_line_and_exit_2_on_the_command_line(today, tmp_path):
    hparams, state = today
    field, config = next(planted_module_configs(hparams))
    torch.save({"hyper_parameters": config, "state_dict": state}, tmp_path / "planted.ckpt")
    env = {**os.environ, "DL_PLANTED": str(tmp_path / "planted-ran")}
    for module, args in (
        ("depth_lightning.evaluate", ["data=synthetic"]),
        ("depth_lightning.export", [f"output={tmp_path / 'm.onnx'}"]),
    ):
        done = run_module(module, f"ckpt_path={tmp_path / 'planted.ckpt'}", *args, cwd=tmp_path, check=False, env=env)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and field in lines[0], done.stderr
    assert not (tmp_path / "planted-ran").exists()
    assert CheckpointError in USER_ERRORS


def test_a_model_folder_holds_only_the_network_and_predicts_without_lightning(folder, tmp_path):
    config = json.loads((folder / "config.json").read_text())
    assert set(config) <= set(SETTINGS) | {"format", "library"} and config["format"] == 2
    assert not {"optimizer", "scheduler", "data", "net"} & set(config)
    script = (
        "import sys, numpy as np\n"
        "from depth_lightning import DepthEstimator\n"
        f"e = DepthEstimator.from_pretrained({str(folder)!r}, device='cpu')\n"
        "d = e.predict(np.zeros((48, 64, 3), np.uint8))['depth']\n"
        "assert d.shape == (48, 64)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert done.stdout.strip() == "[]", done.stdout
    for name in ("config.json", "model.safetensors", "README.md"):  # readable by others, as any save_pretrained
        assert stat.S_IMODE((folder / name).stat().st_mode) & 0o044 == 0o044, name


def test_weights_that_disagree_with_their_config_are_refused_naming_the_tensor(folder, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8)
    for key, value, tensor in (("d_max", 20.0, "bins.log_centres"), ("normalize", "imagenet", "normalize.mean")):
        edited = tmp_path / key
        shutil.copytree(folder, edited)
        config = json.loads((edited / "config.json").read_text())
        (edited / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(CheckpointError, match=tensor):
            load_model(edited)
    unknown = tmp_path / "unknown"
    shutil.copytree(folder, unknown)
    (unknown / "config.json").write_text(json.dumps({**json.loads((folder / "config.json").read_text()), "head": 3}))
    with pytest.raises(CheckpointError, match=r"config.json.head: not a setting of the network"):
        load_model(unknown)
    assert load_model(folder).bins.d_max == json.loads((folder / "config.json").read_text())["d_max"]
    model = load_model(folder)
    assert model.bins.decode(model(torch.rand(1, 3, 64, 96)))["soft"].shape == (1, 32, 48)
    del image


def write_today_layouts(today, tmp_path):
    """A checkpoint and a model folder (format 1) exactly as today's main wrote them: the module's
    arguments (the network named by _target_, the optimiser, the data), the module's tensors, no bins."""
    from safetensors.torch import save_file

    hparams, state = today
    hparams = json.loads(json.dumps(hparams))
    hparams["net"] = {"_target_": "depth_lightning.models.DepthNet", **hparams["net"]}
    old = {k: v for k, v in state.items() if k != "net.bins.log_centres"}
    torch.save({"hyper_parameters": hparams, "state_dict": old, "epoch": 0}, tmp_path / "old.ckpt")
    folder = tmp_path / "format1"
    folder.mkdir()
    kept = ("net", "decoder", "input_size", "channels_last", "data", "optimizer", "scheduler")
    config = {"format": 1, "library": "depth_lightning", **{k: hparams.get(k) for k in kept}}
    config["net"]["pretrained"] = "none"
    (folder / "config.json").write_text(json.dumps(config))
    save_file({k: v.contiguous() for k, v in old.items()}, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "README.md").write_text("# an old card\n")
    return tmp_path / "old.ckpt", folder


def test_the_layouts_of_todays_main_load_and_predict_bit_for_bit(today, tiny_checkpoint, folder, tmp_path):
    from depth_lightning.inference import DepthEstimator

    old_ckpt, old_folder = write_today_layouts(today, tmp_path)
    image = np.random.default_rng(3).integers(0, 256, (70, 110, 3), dtype=np.uint8)
    expected = DepthEstimator.from_checkpoint(tiny_checkpoint, device="cpu").predict(image, flip=True)
    for source in (old_ckpt, old_folder, folder):
        found = DepthEstimator.from_pretrained(source, device="cpu").predict(image, flip=True)
        for key in ("depth", "uncertainty"):
            np.testing.assert_array_equal(found[key], expected[key], err_msg=f"{source} {key}")
    saved = load_model(old_folder)
    saved.save_pretrained(tmp_path / "again")  # a loaded model keeps its card
    assert (tmp_path / "again" / "README.md").read_text() == "# an old card\n"
    assert json.loads((tmp_path / "again" / "config.json").read_text())["format"] == 2


def test_evaluate_reproduces_the_runs_test_table_in_its_precision(tiny_run, tiny_checkpoint, tmp_path):
    from depth_lightning.evaluate import evaluate

    record = json.loads((tiny_run / "metrics.json").read_text())
    out = tmp_path / "eval.json"
    # the tiny run (debug=tiny) tested 2 batches: the same limit here, nothing else given
    evaluate(composed_for("evaluate", tmp_path, f"ckpt_path={tiny_checkpoint}", f"output={out}",
                          "+trainer.limit_test_batches=2"))  # fmt: skip
    found = json.loads(out.read_text())
    assert found["precision"] == record["precision"] == record["config"]["trainer"]["precision"]
    shared = [k for k in record["test"] if k.startswith(("soft/", "hard/"))]
    assert shared and {k: found["test"][k] for k in shared} == {k: record["test"][k] for k in shared}


def test_evaluate_tests_in_the_precision_the_checkpoint_records_unless_told(tiny_checkpoint, tmp_path):
    from depth_lightning.evaluate import evaluate

    ckpt = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    ckpt["precision"] = "bf16-mixed"  # as a run trained in bf16 (on an AMX machine) records it
    torch.save(ckpt, tmp_path / "bf16.ckpt")
    found = {}
    for name, extra in (("recorded", []), ("told", ["trainer.precision=32-true"])):
        out = tmp_path / f"{name}.json"
        args = [f"ckpt_path={tmp_path / 'bf16.ckpt'}", f"output={out}", "baselines=false"]
        args.append("+trainer.limit_test_batches=1")
        evaluate(composed_for("evaluate", tmp_path / name, *args, *extra))
        found[name] = json.loads(out.read_text())
    assert found["recorded"]["precision"] == "bf16-mixed" and found["told"]["precision"] == "32-true"
    assert found["recorded"]["test"]["soft/abs_rel"] != found["told"]["test"]["soft/abs_rel"]  # bf16 differs


def test_export_never_replaces_a_users_files_and_overwrites_only_its_own(tiny_checkpoint, tmp_path):
    from depth_lightning.export import export

    def hub(out, *extra):
        export(
            compose_config(f"ckpt_path={tiny_checkpoint}", "format=hub", f"output={out}", *extra, config_name="export")
        )

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "README.md").write_text("my notes")
    (mine / "config.json").write_text("{}")
    for extra in ((), ("overwrite=true",)):
        with pytest.raises(USER_ERRORS, match="not a depth_lightning model"):
            hub(mine, *extra)
    assert (mine / "README.md").read_text() == "my notes" and sorted(p.name for p in mine.iterdir()) == [
        "README.md", "config.json"
    ]  # fmt: skip
    model = tmp_path / "model"
    hub(model)
    with pytest.raises(USER_ERRORS, match="overwrite=true"):
        hub(model)
    (model / "notes.txt").write_text("beside the model")
    with pytest.raises(USER_ERRORS, match="notes.txt"):
        hub(model, "overwrite=true")
    (model / "notes.txt").unlink()
    hub(model, "overwrite=true")
    assert sorted(p.name for p in model.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    text = "\n".join((model / n).read_text() for n in ("README.md", "config.json"))
    assert str(tmp_path) not in text and str(tiny_checkpoint.parent.parent) not in text
