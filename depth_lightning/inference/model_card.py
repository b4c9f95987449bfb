"""The model card (``README.md``) of a model folder: what the model is, what data it was trained on, its
test numbers with their intervals and protocol card, and the commands that reproduce it, read from the
training run the checkpoint belongs to (``<run>/checkpoints/<name>.ckpt`` beside ``<run>/metrics.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from depth_lightning.evaluation.metrics import METRIC_NAMES

FRONT_MATTER = {"library_name": "depth_lightning", "pipeline_tag": "depth-estimation", "tags": ["monocular-depth"]}


def run_record(checkpoint: Path) -> tuple[Path | None, dict[str, Any]]:
    """The run folder of a training checkpoint and its ``metrics.json`` (``{}`` when there is none)."""
    run = Path(checkpoint).resolve().parent.parent
    record = run / "metrics.json"
    if Path(checkpoint).parent.name != "checkpoints" or not record.is_file():
        return None, {}
    try:
        return run, json.loads(record.read_text())
    except json.JSONDecodeError:
        return run, {}


def _results(record: dict[str, Any], decoder: str, checkpoint: Path) -> list[str]:
    test, intervals = record.get("test") or {}, record.get("test_intervals") or {}
    if not test:
        return ["No test results were recorded with this checkpoint's run."]
    protocol = record.get("protocol") or {}
    lines = [
        f"Test split of `{protocol.get('dataset', '?')}` ({protocol.get('frames_evaluated', '?')} images), the "
        f"`{decoder}` decoder; [95 % bootstrap interval over images]:",
        "",
        "| metric | value | interval |",
        "| --- | --- | --- |",
    ]
    for m in METRIC_NAMES:
        if f"{decoder}/{m}" in test:
            low, high = intervals.get(f"{decoder}/{m}", [float("nan")] * 2)
            lines.append(f"| {m} | {test[f'{decoder}/{m}']:.4f} | [{low:.4f}, {high:.4f}] |")
    tested = record.get("tested_checkpoint")  # "last", "best" or a path
    tested = record.get("best_checkpoint") if tested == "best" else tested
    if tested and Path(str(tested)).stem != Path(checkpoint).stem:
        name = Path(str(tested)).name
        lines += ["", f"These numbers are of `{name}`, the checkpoint the run tested, not of this one."]
    lines += ["", "Protocol card:", "", "```json", json.dumps(protocol, indent=2, sort_keys=True), "```"]
    return lines


def _source(record: dict[str, Any]) -> list[str]:
    """Where the run's weights started (``init_from``), if not from scratch or ImageNet."""
    init = record.get("init_from")
    if not init:
        return []
    fresh = init.get("reinitialised")
    return [
        "",
        f"Fine-tuned from `{init['source']}`" + (f"; started afresh: {', '.join(fresh)}." if fresh else "."),
    ]


def _reproduce(run: Path | None, checkpoint: Path) -> list[str]:
    overrides_file = run / ".hydra" / "overrides.yaml" if run else None
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file and overrides_file.is_file() else None
    if overrides is None:
        return ["The training command was not recorded beside this checkpoint."]
    train = " ".join(["python -m depth_lightning.train", *(str(o) for o in overrides)])
    return [
        "```bash",
        train,
        f"python -m depth_lightning.export format=hub ckpt_path={checkpoint} output=<folder>",
        "```",
    ]


def model_card(config: dict[str, Any], checkpoint: Path) -> str:
    """The README of the model folder made from ``checkpoint`` (``config``: its ``config.json``)."""
    run, record = run_record(checkpoint)
    net, data = config["net"], config.get("data") or {}
    h, w = config["input_size"]
    lines = [
        "---",
        yaml.safe_dump(FRONT_MATTER, sort_keys=False).strip(),
        "---",
        "",
        f"# depth_lightning: {data.get('name', 'a depth model')}",
        "",
        "Monocular depth as classification over log-depth bins with soft-weighted-sum inference (Li, Dai, He): "
        f"{net.get('backbone', '?')} backbone, {net.get('num_bins', '?')} bins over "
        f"[{net.get('d_min', '?')}, {net.get('d_max', '?')}] m, input {h}x{w}, "
        f"headline decoder `{config.get('decoder', 'soft')}`.",
        "",
        "```python",
        "from depth_lightning import DepthEstimator",
        "",
        'estimator = DepthEstimator.from_pretrained("<this folder or owner/name on the Hub>")',
        'depth = estimator.predict(image)["depth"]  # metres, at the image\'s size',
        "```",
        "",
        "## Training data",
        "",
        f"`data={data.get('name', '?')}`; protocol and ground truth as the card below states.",
        *_source(record),
        "",
        "## Results",
        "",
        *_results(record, config.get("decoder", "soft"), checkpoint),
        "",
        "## Reproduce",
        "",
        *_reproduce(run, checkpoint),
        "",
    ]
    return "\n".join(lines)
