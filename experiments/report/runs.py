"""The runs a report is made of: every finished run under some folders, read from its ``metrics.json``,
grouped by variant, K and seed."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIANTS = ("full", "no_dilation", "no_concat", "no_dilation_no_concat")
PAPER_BINS = (50, 100, 200, 500, 1000)
NYU = ("nyu", "nyu_sync")


@dataclass
class Run:
    path: Path
    task: str
    variant: str
    bins: int
    metrics: dict[str, float]
    split: str
    status: str
    dataset: str = "?"
    extra: dict[str, Any] = field(default_factory=dict)
    seed: Any = None
    protocol: dict[str, Any] | None = None  # the card of the test that produced ``metrics``
    intervals: dict[str, list[float]] = field(default_factory=dict)  # bootstrap intervals of ``metrics``
    augmentation: str = "paper"  # "paper", or "paper + <extra transforms>" (data.augment.extra)


def augmentation_label(data: dict[str, Any]) -> str:
    """``paper`` for the paper's augmentation (or none), else ``paper + <the extras' class names>``."""
    extra = (data.get("augment") or {}).get("extra") or []
    names = [str(t.get("_target_", "?")).rsplit(".", 1)[-1] for t in extra if isinstance(t, dict)]
    return "paper" if not names else "paper + " + " + ".join(names)


def _variant(net: dict[str, Any]) -> str:
    dilated, fusion = bool(net.get("dilated", True)), bool(net.get("fusion", True))
    return {(True, True): "full", (False, True): "no_dilation", (True, False): "no_concat"}.get(
        (dilated, fusion), "no_dilation_no_concat"
    )


def collect_runs(folders: list[Path], split: str = "test") -> tuple[list[Run], list[str]]:
    """Every run under ``folders`` that finished, and a message for each one that did not."""
    runs: list[Run] = []
    problems: list[str] = []
    seen: set[Path] = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            problems.append(f"{folder}: no such folder")
            continue
        candidates = {p.parent for p in folder.rglob(".hydra")} | {p.parent for p in folder.rglob("metrics.json")}
        for run_dir in sorted(candidates):
            if run_dir in seen or ".submitit" in run_dir.parts:
                continue
            seen.add(run_dir)
            path = run_dir / "metrics.json"
            if not path.is_file():
                problems.append(f"{run_dir}: no metrics.json (the job failed or was killed before training)")
                continue
            try:
                run = read_run(run_dir, json.loads(path.read_text()), split)
            except (OSError, json.JSONDecodeError) as err:
                problems.append(f"{path}: unreadable ({err}); left out of the tables")
                continue
            except (AttributeError, TypeError, ValueError, KeyError) as err:
                problems.append(f"{path}: not a run record this report can read ({err!r}); left out of the tables")
                continue
            if isinstance(run, str):
                problems.append(f"{run_dir}: {run}; left out of the tables")
            else:
                runs.append(run)
    runs.sort(key=lambda r: (r.path / "metrics.json").stat().st_mtime)  # a table takes the newest of a kind
    problems += duplicate_runs(runs)
    tasks = sorted({r.task for r in runs})
    if len(tasks) > 1:
        problems.append(f"runs of different experiments are mixed: {', '.join(tasks)} (tables pool them)")
    return runs, problems


def read_run(run_dir: Path, data: dict[str, Any], split: str) -> Run | str:
    """The run a ``metrics.json`` records, or why it is not in the tables (not finished); a record of
    the wrong shape raises (AttributeError, TypeError, ValueError, KeyError)."""
    status = data.get("status", "unknown")
    chosen = split if split in data else "val" if "val" in data else None
    if status != "completed" or chosen is None:
        return f"status {status!r}" + (f": {data['error']}" if data.get("error") else " (killed or failed mid-way)")
    cfg = data.get("config", {})
    net = cfg.get("model", {}).get("net", {})
    metrics = {k: v if isinstance(v, int | float) else float(v) for k, v in data[chosen].items()}
    return Run(
        run_dir,
        cfg.get("task_name", "?"),
        _variant(net),
        int(net.get("num_bins", 0)),
        metrics,
        chosen,
        status,
        dataset=cfg.get("data", {}).get("name", "?"),
        seed=cfg.get("seed"),
        protocol=data.get("protocol") if chosen == "test" else None,
        intervals=data.get("test_intervals", {}) if chosen == "test" else {},
        extra={"seed": cfg.get("seed"), "intervals": data.get("intervals")},
        augmentation=augmentation_label(cfg.get("data") or {}),
    )


def duplicate_runs(runs: list[Run]) -> list[str]:
    """A message for each kind of run (dataset, variant, K, seed) finished more than once, e.g. a sweep
    re-run into its folder under an older folder scheme: the tables use the newest, the others are stale."""
    kinds: dict[tuple[Any, ...], list[Run]] = {}
    for run in runs:  # oldest first
        kind = (run.task, run.dataset, run.variant, run.bins, run.extra.get("seed"), run.augmentation)
        kinds.setdefault(kind, []).append(run)
    return [
        f"{len(same)} finished runs of {kind[2]} K={kind[3]} on {kind[1]} (seed {kind[4]}): the tables use the "
        f"newest, {same[-1].path}; stale: {', '.join(str(r.path) for r in same[:-1])}"
        for kind, same in kinds.items()
        if len(same) > 1
    ]


def ablation_runs(runs: list[Run]) -> list[Run]:
    """The runs of Tables 3 and 4: NYU runs when there are any (the paper's dataset), else the
    dataset most runs are on."""
    if not runs:
        return []
    nyu = [r for r in runs if r.dataset in NYU]
    if nyu:
        return nyu
    common = Counter(r.dataset for r in runs).most_common(1)[0][0]
    return [r for r in runs if r.dataset == common]


def reference_bins(runs: list[Run], wanted: int | None = None, paper_bins: int = 200) -> int | None:
    """The bin count of a table: ``wanted``, else the full model's count closest to the paper's."""
    counts = sorted({r.bins for r in runs if r.variant == "full"} or {r.bins for r in runs})
    if not counts:
        return None
    if wanted is not None:
        return wanted
    return min(counts, key=lambda k: (abs(k - paper_bins), k))


def group_of(runs: list[Run], variant: str, bins: int | None, augmentation: str = "paper") -> list[Run]:
    """The runs of one cell: of each seed the newest run of ``variant`` at ``bins`` trained with
    ``augmentation``, in seed order."""
    by_seed: dict[Any, Run] = {}
    for run in runs:  # oldest first: a newer run of a seed replaces an older one
        if run.variant == variant and run.bins == bins and run.augmentation == augmentation:
            by_seed[run.seed] = run
    return [by_seed[s] for s in sorted(by_seed, key=str)]


def find_run(runs: list[Run], variant: str, bins: int | None) -> Run | None:
    group = group_of(runs, variant, bins)
    return group[0] if group else None


def missing_runs(runs: list[Run]) -> list[str]:
    have = {(r.variant, r.bins) for r in runs}
    return [f"{v}-K{k}" for v in VARIANTS for k in PAPER_BINS if (v, k) not in have]
