"""trainer.precision=auto: the precision follows the measured step times both ways, is cached per machine and
network, an explicit precision is obeyed and a resumed run keeps its own; the GPU switches (cuDNN autotuner
off when deterministic, TF32) reach the Trainer and torch and are recorded in metrics.json."""

import json

import pytest
import torch

from depth_lightning.core.config import compose_config
from depth_lightning.run import precision as chooser
from depth_lightning.run.setup import build_module, build_run, training_speed
from tests.helpers import train_here

TINY = ["debug=tiny", "logger=csv", "budget.mode=steps"]


@pytest.fixture
def native_bf16(monkeypatch):
    """A CPU that computes bf16 natively, whatever this one is: the choice is then measured."""
    machine = {**chooser.describe_machine(), "native_bf16": True}
    monkeypatch.setattr(chooser, "describe_machine", lambda: machine)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture(scope="module")
def module():
    return build_module(compose_config(*TINY))


@pytest.mark.parametrize(("fp32", "bf16", "expected"), [(0.90, 1.27, "32-true"), (0.41, 0.24, "bf16-mixed")])
def test_the_choice_follows_the_measured_times_both_ways(native_bf16, module, tmp_path, fp32, bf16, expected):
    times = {"32-true": fp32, "bf16-mixed": bf16}
    calls = []

    def timer(p):
        calls.append(p)
        return times[p]

    cache = tmp_path / "precision.json"
    chosen = chooser.choose_precision(module, 4, (64, 96), cache, timer=timer)
    assert chosen["precision"] == expected and chosen["seconds"] == times and not chosen["cached"]
    assert f"bf16 {bf16 / fp32:.2f}x {'slower' if bf16 > fp32 else 'faster'} than fp32" in chosen["reason"]
    again = chooser.choose_precision(module, 4, (64, 96), cache, timer=timer)
    assert again["precision"] == expected and again["cached"] and calls == ["32-true", "bf16-mixed"]  # no re-run
    other = chooser.choose_precision(module, 8, (64, 96), cache, timer=timer)  # another batch: measured anew
    assert not other["cached"] and len(calls) == 4


def test_without_native_bf16_or_with_cuda_nothing_is_measured(monkeypatch, module, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(chooser, "describe_machine", lambda: {"native_bf16": False})
    never = lambda p: pytest.fail("measured")  # noqa: E731
    assert chooser.choose_precision(module, 4, (64, 96), tmp_path / "c.json", timer=never)["precision"] == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert chooser.choose_precision(module, 4, (64, 96), None, timer=never)["precision"] == "bf16-mixed"


def test_a_real_measurement_times_the_runs_own_model_on_a_copy(native_bf16, module, tmp_path):
    before = {k: v.clone() for k, v in module.state_dict().items()}
    rng = torch.get_rng_state()
    chosen = chooser.choose_precision(module, 2, (64, 96), tmp_path / "c.json", steps=1)
    assert chosen["precision"] in chooser.CANDIDATES and all(s > 0 for s in chosen["seconds"].values())
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items())  # the run's weights untouched
    assert torch.equal(rng, torch.get_rng_state())  # and its random state (dropout draws from it)
    assert json.loads((tmp_path / "c.json").read_text())  # cached


def test_auto_explicit_and_resumed_precision_and_the_gpu_switches_reach_the_trainer(native_bf16, tmp_path):
    cfg = compose_config(*TINY, "trainer.precision=auto", f"precision_cache={tmp_path / 'c.json'}",
                         output_dir=str(tmp_path / "a"))  # fmt: skip
    run = build_run(cfg)
    assert run.trainer.precision == run.speed["precision"]["precision"] in chooser.CANDIDATES
    assert run.speed["tf32"] is True and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    explicit = build_run(compose_config(*TINY, "trainer.precision=bf16-mixed", output_dir=str(tmp_path / "b")))
    assert explicit.trainer.precision == "bf16-mixed" and "as given" in explicit.speed["precision"]["reason"]
    deterministic = compose_config(*TINY, "trainer=gpu", "trainer.deterministic=true", "trainer.accelerator=cpu",
                                   "trainer.precision=32-true", output_dir=str(tmp_path / "c"))  # fmt: skip
    assert compose_config("trainer=gpu").trainer.benchmark is True and compose_config("trainer=ddp").trainer.benchmark
    speed = training_speed(deterministic, build_module(deterministic), None)
    assert speed["cudnn_benchmark"] is False and deterministic.trainer.benchmark is False
    no_tf32 = build_run(compose_config(*TINY, "tf32=false", output_dir=str(tmp_path / "d")))
    assert no_tf32.speed["tf32"] is False and not torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True


def test_the_run_records_its_speed_settings_and_a_resumed_run_keeps_its_precision(tmp_path):
    results = train_here(tmp_path / "run", *TINY, "trainer.max_steps=2", "trainer.precision=bf16-mixed")
    assert results["speed"]["precision"]["precision"] == "bf16-mixed" and results["speed"]["tf32"] is True
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["precision"] == "bf16-mixed"
    cfg = compose_config(*TINY, "trainer.max_steps=3", "trainer.precision=auto", f"ckpt_path={last}",
                         output_dir=str(tmp_path / "resumed"))  # fmt: skip
    resumed = build_run(cfg)
    assert resumed.trainer.precision == "bf16-mixed" and "resumed run" in resumed.speed["precision"]["reason"]
