from pathlib import Path

import pytest

from tests.helpers import run_module


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One real tiny training run (synthetic data, W&B offline + CSV), shared by the tests that read it."""
    work = tmp_path_factory.mktemp("tiny_run")
    run_module(
        "depth_lightning.train",
        "debug=tiny",
        "trainer.max_steps=40",
        "test=true",
        "logger=tensorboard",  # beside W&B and CSV
        "hydra.run.dir=" + str(work / "run"),
        cwd=work,
    )
    return work / "run"
