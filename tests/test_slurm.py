"""A real Slurm cluster (scripts/slurm_local.sh start): a sweep of a 1-task and a 2-task DDP job."""

import json
import os
import shutil
import subprocess
import time

import pytest

from tests.helpers import assert_consistent_results, run_module


def _cluster_up() -> str | None:
    if not shutil.which("sbatch") or not shutil.which("sacct"):
        return "no Slurm client here (run: bash scripts/slurm_local.sh start)"
    try:
        ping = subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"scontrol ping failed: {err}"
    if "UP" not in ping.stdout:
        return "no Slurm controller answers (run: bash scripts/slurm_local.sh start)"
    return None


pytestmark = pytest.mark.slurm


@pytest.fixture(autouse=True, scope="module")
def _cluster():
    """No cluster: a skip on a user's machine, a failure in CI (CI=true), where .ci/run starts one."""
    why = _cluster_up()
    if why is not None and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, and {why}: .ci/run starts the local cluster before the tests", pytrace=False)
    if why is not None:
        pytest.skip(why)


SWEEP = [
    "debug=tiny",
    "logger=csv",
    "baselines=false",
    "trainer=ddp",
    "trainer.accelerator=cpu",
    "trainer.max_steps=8",
    "hydra/launcher=slurm",
    "hydra.launcher.timeout_min=10",
    "hydra.launcher.mem_gb=2",
]


def _sacct(job_ids: list[str], expected: int) -> dict[str, str]:
    states: dict[str, str] = {}
    for _ in range(60):  # slurmctld hands records to slurmdbd asynchronously
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-o", "JobID,State,NTasks,AllocCPUS", "-j", ",".join(job_ids)],
            capture_output=True,
            text=True,
        ).stdout
        states = {line.split("|")[0]: line for line in out.splitlines() if line}
        if len(states) >= expected and all("COMPLETED" in s or "FAILED" in s for s in states.values()):
            break
        time.sleep(0.5)
    return states


def test_sweep_of_a_single_and_a_ddp_job(tmp_path):
    run_module(
        "depth_lightning.train",
        *SWEEP,
        "trainer.devices=1,2",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        "--multirun",
        cwd=tmp_path,
        timeout=900,
    )
    worlds = []
    for metrics in (tmp_path / "sw").glob("train-*/metrics.json"):  # <run_name>-<key of its overrides>
        results = json.loads(metrics.read_text())
        assert results["status"] == "completed" and results["global_step"] == 8  # max_steps, in either world
        assert_consistent_results(results, splits=("val",))
        worlds.append(results["world_size"])
    assert sorted(worlds) == [1, 2]
    job_ids = sorted(p.name for p in (tmp_path / "sw" / ".submitit").iterdir() if p.name.isdigit())
    states = _sacct(job_ids, 2)
    assert len(states) == 2 and all("|COMPLETED|" in s for s in states.values()), states
    assert any(s.split("|")[3] == "2" for s in states.values()), "the DDP job was allocated 2 CPUs (2 tasks)"


def test_a_failing_job_fails_the_sweep_with_its_log_path(tmp_path):
    proc = run_module(
        "depth_lightning.train",
        *SWEEP,
        "trainer.devices=1",
        "data.dataset.scene=forest",
        f"hydra.sweep.dir={tmp_path / 'sw'}",
        "--multirun",
        cwd=tmp_path,
        check=False,
        timeout=600,
    )
    assert proc.returncode != 0
    err = proc.stderr + proc.stdout
    assert "data.dataset.scene='forest' is unknown" in err
    assert "_log.err" in err and ".submitit" in err
