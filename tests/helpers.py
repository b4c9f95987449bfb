"""Helpers shared by the tests: the entry points' flows in this process (composed configs, as Hydra
composes them), and running an entry point as a user would where a command line must be proven."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from depth_lightning.core.config import build, compose_config
from depth_lightning.run.setup import build_module, build_trainer, training_speed
from depth_lightning.train import train

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("DEPTH_LIGHTNING_SHARED") or ROOT.parent / "shared")  # make mutation runs in a copy
# A real but tiny job of a synthetic sweep: small frames and splits, no worker processes.
TINY_SWEEP_JOB = [
    "data.height=64",
    "data.width=96",
    "data.dataset.train_length=16",
    "data.dataset.val_length=8",
    "data.dataset.test_length=8",
    "data.num_workers=0",
    "data.batch_size=4",
    "data.eval_batch_size=4",
    "trainer.num_sanity_val_steps=0",
]


def user_env() -> dict[str, str]:
    """This process's environment as a user's shell has it: without the address of the W&B service an
    in-process W&B run of the tests started (a child would log through it, and a killed child's run
    would stay open in it: "run ID is in use" on resume)."""
    return {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}


def run_module(module: str, *args: str, cwd: Path, timeout: float = 600, check: bool = True, env: dict | None = None):
    """Run ``python -m module args`` as a user would; returns the CompletedProcess."""
    full_env = {**user_env(), "WANDB_MODE": "offline", "WANDB_SILENT": "true", "DEPTH_LIGHTNING_LOGS": str(cwd)}
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


def composed(*overrides: str):
    """The main job's config, composed from ``conf/`` with these overrides (no Hydra run)."""
    return compose_config(*overrides)


def built(*overrides: str):
    """The datamodule, module and trainer the main job would build from these overrides."""
    cfg = composed("logger=none", *overrides)
    datamodule, module = build(cfg.data, "data"), build_module(cfg)
    training_speed(cfg, module, None)  # trainer.precision=auto resolved (measured) as the main job does
    return cfg, datamodule, module, build_trainer(cfg)


def per_test_under_mutation(fixture_name: str, config) -> str:
    """A fixture's scope: ``module``, but ``function`` under mutmut (``make mutation``). mutmut credits the
    calls a module fixture makes to the first test that asks for it, so the module's later tests, those
    that read what it made, would never run against its mutants."""
    return "function" if "MUTANT_UNDER_TEST" in os.environ else "module"


def copy_records(run: Path, to: Path) -> Path:
    """A copy of a run or sweep folder without its checkpoints, for tests that read only its records:
    each tiny checkpoint is about 140 MB, and a copied sweep would fill a small disk."""
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("*.ckpt"))
    return to


def job_folder(sweep: Path, run_name: str) -> Path:
    """The folder of the sweep job that ran ``run_name``: ``<run_name>-<key of its overrides>``."""
    found = list(Path(sweep).glob(f"{run_name}-????????"))
    assert len(found) == 1, (run_name, sorted(p.name for p in Path(sweep).iterdir()))
    return found[0]


def train_here(run: Path, *overrides: str) -> dict:
    """The main job in this process (``python -m depth_lightning.train <overrides>`` without the start-up
    and Hydra's log files) into the run folder ``run``; returns what its ``metrics.json`` holds."""
    return train(compose_config(*overrides, output_dir=str(run)))


def composed_for(config_name: str, output_dir: Path, *overrides: str):
    """The config of entry point ``config_name`` (``evaluate``, ``score``, ``check``...) as Hydra composes it."""
    return compose_config(*overrides, config_name=config_name, output_dir=str(output_dir))


def assert_consistent_results(results: dict, splits=("val", "test")) -> None:
    """A run's recorded numbers hold together: every test number is the mean of its per-image column
    (per_image.csv), the thresholds nest (d1 <= d2 <= d3 <= 1), errors are positive, and the two
    decoders give different numbers (they are different estimates)."""
    from depth_lightning.evaluation.per_image import read_per_image_csv

    for split in splits:
        values = results[split]
        for dec in ("soft", "hard"):
            d1, d2, d3 = (values[f"{dec}/d{k}"] for k in (1, 2, 3))
            assert 0 <= d1 <= d2 <= d3 <= 1, (split, dec, d1, d2, d3)
            for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "log10", "silog"):
                assert 0 < values[f"{dec}/{k}"] < 1e3, (split, dec, k, values[f"{dec}/{k}"])
        assert values["soft/abs_rel"] != values["hard/abs_rel"], split
    if "test" in splits:
        _, rows = read_per_image_csv(Path(results["per_image"]))
        for key in ("soft/abs_rel", "hard/rmse", "soft/d1", "soft/silog"):
            mean = sum(float(r[key]) for r in rows) / len(rows)
            assert abs(mean - results["test"][key]) <= 1e-9 * max(1.0, abs(mean)), key


def bilinear_by_hand(small, size):
    """``small`` (h, w) float64 brought to ``size`` bilinearly with half-pixel centres (PyTorch's
    ``align_corners=False``), written in NumPy: the reference for every resize the suite scores through."""
    import numpy as np

    def axis(n_out, n_in):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        low = np.minimum(np.floor(src).astype(int), n_in - 1)
        return low, np.minimum(low + 1, n_in - 1), src - low

    (y0, y1, fy), (x0, x1, fx) = axis(size[0], small.shape[0]), axis(size[1], small.shape[1])
    rows = small[y0] * (1 - fy)[:, None] + small[y1] * fy[:, None]
    return rows[:, x0] * (1 - fx) + rows[:, x1] * fx
