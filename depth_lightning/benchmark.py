"""``python -m depth_lightning.benchmark ckpt_path=<checkpoint> datasets=[nyu_sync,kitti,diode,...]``, or
``predictions=<folder>`` (a subfolder per dataset) for another method's saved maps.

Evaluates every listed dataset that is present under its own protocol (``conf/data/<name>.yaml``;
``protocols.<name>=`` picks another peer's), says which are missing and why, and writes one table of
datasets x metrics with 95 % intervals and each dataset's alignment (``benchmark.md``, ``benchmark.csv``,
``benchmark.json``, ``benchmark_d1.png``; a W&B table with ``wandb=true``), with each dataset's
per-image results and protocol card in ``<output>/<dataset>/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from depth_lightning.core.config import build, compose_data, data_configs, plain
from depth_lightning.core.errors import ConfigError, DataError
from depth_lightning.core.files import check_writable, save_atomic, write_json
from depth_lightning.evaluation import benchmark_table as table
from depth_lightning.evaluation.evaluator import EvaluationResult, evaluator_for
from depth_lightning.evaluation.results import record_test
from depth_lightning.evaluation.saved import PREDICTIONS, ScoreSettings, score_predictions, score_settings
from depth_lightning.inference.loading import load_model
from depth_lightning.module import EvaluationModule
from depth_lightning.run.command import command

log = logging.getLogger(__name__)


def dataset_overrides(cfg: DictConfig, name: str) -> list[str]:
    """The overrides of dataset ``name``'s config: ``roots.<name>``, ``protocols.<name>``, ``overrides.<name>``."""
    out = []
    if cfg.roots.get(name):
        out.append(f"dataset.root={cfg.roots[name]}")
    if cfg.protocols.get(name):
        out.append(f"protocol={cfg.protocols[name]}")
    return out + [str(o) for o in cfg.overrides.get(name) or []]


def absent(data: dict[str, Any], name: str) -> str | None:
    """Why dataset ``name`` is not here (its root does not exist), or None."""
    root = (data.get("dataset") or {}).get("root")
    if root is None or Path(root).is_dir():
        return None
    return f"not found: {root} does not exist (roots.{name}=<folder>, or the root's environment variable)"


def check_settings(cfg: DictConfig) -> tuple[list[str], ScoreSettings]:
    """The datasets and the scoring settings, refused by name before anything is loaded."""
    if (cfg.ckpt_path is None) == (cfg.predictions is None):
        raise ConfigError("config error: give ckpt_path=<checkpoint> or predictions=<folder with a folder per dataset>")
    names = [str(n) for n in cfg.datasets]
    unknown = [n for n in names if n not in data_configs()]
    if not names or unknown:
        raise ConfigError(
            f"config error: datasets: {unknown or names} — each must be a data config ({', '.join(data_configs())})"
        )
    for group in ("roots", "protocols", "overrides"):
        extra = {k for k, v in (cfg[group] or {}).items() if v is not None} - set(names)
        if extra:
            raise ConfigError(f"config error: {group}.{sorted(extra)[0]}: not one of datasets={names}")
    if cfg.predictions is not None and not Path(cfg.predictions).is_dir():
        raise ConfigError(f"config error: predictions={cfg.predictions!r}: no such folder")
    return names, score_settings(cfg)


def evaluate_model(cfg: DictConfig, model: Any, datamodule: Any, settings: ScoreSettings) -> EvaluationResult:
    """The checkpoint's test on one dataset (its headline decoder, no baselines)."""
    trainer = build(cfg.trainer, "trainer")
    evaluator = evaluator_for(
        datamodule,
        "test",
        model.bins.num_bins,
        model.decoder,
        alignment=settings.alignment,
        precision=str(trainer.precision),
    )
    return EvaluationModule(model).test_with(trainer, datamodule, evaluator)


def run_dataset(cfg: DictConfig, name: str, module: Any, settings: ScoreSettings) -> tuple[EvaluationResult, str]:
    """``(result, the prediction it scores)`` of one dataset: FileNotFoundError when it is not here,
    DataError when it cannot be evaluated."""
    data = plain(compose_data(name, dataset_overrides(cfg, name)))
    reason = absent(data, name)
    if reason:
        raise FileNotFoundError(reason)
    if module is not None:  # the network sees frames at the checkpoint's input size
        data["height"], data["width"] = module.input_size
    datamodule = build(data, "data")
    if module is not None:
        return evaluate_model(cfg, module, datamodule, settings), module.decoder
    folder = Path(cfg.predictions) / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no predictions: {folder} does not exist")
    return score_predictions(datamodule, folder, settings)[0], PREDICTIONS


def benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Every listed dataset that is present, evaluated; the table written. Returns what benchmark.json holds."""
    names, settings = check_settings(cfg)
    out = check_writable(cfg.output or cfg.paths.output_dir, "output", folder=True)
    module = load_model(cfg.ckpt_path) if cfg.ckpt_path is not None else None
    source = f"checkpoint {cfg.ckpt_path}" if module is not None else f"predictions {cfg.predictions}"
    rows, missing = [], {}
    for name in names:
        try:
            result, scored = run_dataset(cfg, name, module, settings)
        except FileNotFoundError as err:
            missing[name] = str(err)
            log.warning("%s: %s", name, err)
            continue
        except DataError as err:  # present but unreadable: named, and the other datasets still run
            missing[name] = f"not evaluated: {err}"
            log.error("%s: %s", name, err)
            continue
        found = record_test(result, Path(out) / name, cfg.get("intervals"), f"{name}, {source}")
        write_json(Path(out) / name / "metrics.json", {**found, "test_values": result.values, "scored": scored})
        rows.append(table.benchmark_row(name, scored, result.values, found))
    if not rows:
        raise DataError(
            f"none of datasets={names} could be evaluated: " + "; ".join(f"{k}: {v}" for k, v in missing.items())
        )
    return write_benchmark(cfg, Path(out), rows, missing, source)


def write_benchmark(
    cfg: DictConfig, out: Path, rows: list[dict[str, Any]], missing: dict[str, str], source: str
) -> dict[str, Any]:
    """``benchmark.md``, ``.csv``, ``.json`` and ``benchmark_d1.png`` in ``out``; W&B with ``wandb=true``."""
    title = f"Benchmark of {source}"
    text = table.markdown(rows, title, missing)
    save_atomic(out / "benchmark.md", lambda p: p.write_text(text))
    table.write_csv(out / "benchmark.csv", rows)
    table.d1_figure(out / "benchmark_d1.png", rows, title)
    precision = cfg.trainer.get("precision") if cfg.ckpt_path is not None else None
    summary = {"source": source, "rows": rows, "missing": missing, "folder": str(out), "precision": precision}
    if cfg.get("wandb"):
        summary["wandb_run"] = table.log_to_wandb(rows, out / "benchmark_d1.png", out, f"benchmark-{out.name}")
    write_json(out / "benchmark.json", summary)
    print(text)
    if missing:
        print(f"not evaluated: {', '.join(missing)} (see {out / 'benchmark.md'})")
    print(f"written: {out / 'benchmark.md'}")
    return summary


main = command("benchmark", benchmark)

if __name__ == "__main__":
    main()
