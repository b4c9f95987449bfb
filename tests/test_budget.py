"""Training for a time budget: the plan, the schedule's end, the stop."""

import json

import pytest
import torch

from depth_lightning.models.schedules import CosineFactor
from tests.helpers import train_here


def test_a_time_budget_runs_the_whole_schedule_and_stops_within_the_budget(tmp_path, capsys):
    run = tmp_path / "run"
    minutes = 0.4
    train_here(
        run,
        "debug=tiny",
        "logger=csv",
        "baselines=false",
        "budget.mode=time",
        f"budget.minutes={minutes}",
        "trainer.max_steps=100000",  # a ceiling only: the budget decides
    )
    results = json.loads((run / "metrics.json").read_text())
    budget = results["budget"]
    assert "time budget: this machine trains" in capsys.readouterr().out and budget["steps_per_s"] > 0
    assert results["global_step"] == budget["planned_steps"] > 20
    # the cosine ended where the run did: planned for the steps taken, and at its end value
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    schedule = ckpt["lr_schedulers"][0]
    assert schedule["lr_lambdas"][0]["total_steps"] == results["global_step"]
    factor, steps = CosineFactor(**schedule["lr_lambdas"][0]), results["global_step"]
    assert factor(steps) == pytest.approx(0.02)  # min_lr_ratio: the cosine's end
    assert schedule["_last_lr"][0] == pytest.approx(2e-3 * 0.02, rel=1e-6), (schedule, steps)
    assert ckpt["global_step"] == results["global_step"]
    # fitting (training and its validations) took the budget, not more (one validation of slack)
    assert results["fit_s"] <= 60 * minutes * 1.25, results["fit_s"]
    assert results["machine"]["capability"] and "native_bf16" in results["machine"]
