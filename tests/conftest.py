"""Shared fixtures: one real tiny training run for the whole test session (made once, also when
pytest-xdist runs the suite on several workers), and one thread per worker."""

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from tests.helpers import run_module

# trainer.precision=auto's measurements go to a cache of the test session, never the user's home
os.environ.setdefault(
    "DEPTH_LIGHTNING_CACHE", str(Path(tempfile.gettempdir()) / f"depth_lightning-tests-{os.getppid()}")
)
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    # each worker gets its share of the cores; subprocesses the tests start inherit it
    threads = max(1, (os.cpu_count() or 1) // WORKERS)
    torch.set_num_threads(threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def made_once(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """``<folder>/<name>`` made by ``make(folder)`` once per test session: under xdist by the first worker
    that asks, the others waiting for it and reading what it made."""
    worker_id = os.environ.get("PYTEST_XDIST_WORKER")
    if worker_id is None:
        folder = tmp_path_factory.mktemp(name)
        make(folder)
        return folder
    shared = tmp_path_factory.getbasetemp().parent / name  # the session's folder, shared by its workers
    with FileLock(str(shared) + ".lock"):
        done = shared / ".done"
        if not done.is_file():
            shared.mkdir(exist_ok=True)
            make(shared)
            done.write_text(json.dumps({"made_by": worker_id}))
    return shared


def _tiny_run(work: Path) -> None:
    run_module(
        "depth_lightning.train",
        "debug=tiny",
        "trainer.max_steps=40",
        "test=true",
        "logger=tensorboard",  # beside W&B and CSV
        "hydra.run.dir=" + str(work / "run"),
        cwd=work,
    )


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One real tiny training run through the command line (synthetic data, W&B offline, CSV and
    TensorBoard, tested): shared by the tests that read a run's files or need a trained model."""
    return made_once(tmp_path_factory, "tiny_run", _tiny_run) / "run"


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    """The tiny run's ``last.ckpt`` (the weights it tested)."""
    return tiny_run / "checkpoints" / "last.ckpt"
