import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def run_module(module: str, *args: str, cwd: Path, timeout: float = 600, check: bool = True, env: dict | None = None):
    """Run ``python -m module args`` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "DEPTH_LIGHTNING_LOGS": str(cwd)}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{module} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One real tiny training run (synthetic data, W&B offline + CSV), shared by the tests that read it."""
    work = tmp_path_factory.mktemp("tiny_run")
    run_module(
        "depth_lightning.train",
        "debug=tiny",
        "trainer.max_steps=40",
        "test=true",
        "hydra.run.dir=" + str(work / "run"),
        cwd=work,
    )
    return work / "run"
