"""The report's tables and figures as one W&B run in its sweep's group."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from experiments.report.tables import DEPTH_COLS, TABLE3_COLS, TABLE4_COLS


def log_to_wandb(result: dict[str, Any], sweep: Path) -> str:
    """The report's tables and figures as one W&B run (job type ``report``) in the sweep's group
    (the group its training runs logged to); returns the run's folder."""
    import wandb  # only when asked for: --wandb

    os.environ.setdefault("WANDB_MODE", "offline")
    task = result["runs"][0].task
    run = wandb.init(
        project="depth_lightning",
        group=f"{task}-{Path(sweep).resolve().name}",
        job_type="report",
        name=f"report-{Path(sweep).resolve().name}",
        dir=str(result["report"].parent),
    )
    columns = {"table1": DEPTH_COLS, "table2": DEPTH_COLS, "table3": TABLE3_COLS, "table4": TABLE4_COLS}
    logged: dict[str, Any] = {}
    for name, cols in columns.items():
        keys = ["row", "source", *(c for c, _ in cols)]
        logged[f"report/{name}"] = wandb.Table(
            columns=keys, data=[[None if r.get(k) is None else r[k] for k in keys] for r in result[name]]
        )
    for name, path in result["figures"].items():
        logged[f"report/{name}"] = wandb.Image(str(path))
    run.log(logged)
    folder = run.dir
    run.finish()
    return str(Path(folder).parent)
