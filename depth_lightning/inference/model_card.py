"""The model card (``README.md``) of a model folder, built with huggingface_hub's ``ModelCard`` so that the
Hub reads its metadata: license, datasets, library, pipeline tag, tags, and ``model-index`` evaluation
results from the run's test numbers. The text says what the model is, how to install and load it, the
test numbers with their intervals, the precision they were computed in and the protocol card, and the
commands that reproduce it. Read from the run the checkpoint belongs to (``<run>/checkpoints/<name>.ckpt``
beside ``<run>/metrics.json``); no path of the exporting machine is written."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from depth_lightning.evaluation.metrics import METRIC_NAMES

# What each dataset's terms allow, as the Hub names licenses ("other": see the dataset's own terms).
DATA_LICENSES = {"kitti": "cc-by-nc-sa-3.0", "vkitti2": "cc-by-nc-sa-3.0", "ibims": "cc-by-4.0"}
FEW_IMAGES = 10  # a bootstrap interval over fewer images than this says little: flagged
INSTALL = "pip install -e .   # in a clone of depth_lightning (its README's `make install` adds the test tools)"


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


def named(value: Any) -> Any:
    """``value`` with every absolute path of this machine replaced by its last part, ``<...>/name``."""
    if isinstance(value, dict):
        return {k: named(v) for k, v in value.items()}
    if isinstance(value, list):
        return [named(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return f"<...>/{Path(value).name}"
    return value


def _results(record: dict[str, Any], decoder: str, checkpoint: Path) -> list[str]:
    test, intervals = record.get("test") or {}, record.get("test_intervals") or {}
    if not test:
        return ["No test results were recorded with this checkpoint's run."]
    protocol = record.get("protocol") or {}
    images = protocol.get("frames_evaluated", "?")
    lines = [
        f"Test split of `{protocol.get('dataset', '?')}` ({images} images), the `{decoder}` decoder, computed in "
        f"`{record.get('precision') or 'unrecorded'}` precision; [95 % bootstrap interval over images]:",
        "",
        "| metric | value | interval |",
        "| --- | --- | --- |",
    ]
    for m in METRIC_NAMES:
        if f"{decoder}/{m}" in test:
            low, high = intervals.get(f"{decoder}/{m}", [float("nan")] * 2)
            lines.append(f"| {m} | {test[f'{decoder}/{m}']:.4f} | [{low:.4f}, {high:.4f}] |")
    if isinstance(images, int) and images < FEW_IMAGES:
        lines += ["", f"The intervals are over {images} image(s), fewer than {FEW_IMAGES}: they say little."]
    tested = record.get("tested_checkpoint")  # "last", "best" or a path
    tested = record.get("best_checkpoint") if tested == "best" else tested
    if tested and Path(str(tested)).stem != Path(checkpoint).stem:
        lines += [
            "",
            f"These numbers are of `{Path(str(tested)).name}`, the checkpoint the run tested, not of this one.",
        ]
    lines += ["", "Protocol card:", "", "```json", json.dumps(named(protocol), indent=2, sort_keys=True), "```"]
    return lines


def _source(record: dict[str, Any]) -> list[str]:
    """Where the run's weights started (``init_from``), if not from scratch or ImageNet."""
    init = record.get("init_from")
    if not init:
        return []
    fresh = init.get("reinitialised")
    source = named(str(init["source"]))
    return ["", f"Fine-tuned from `{source}`" + (f"; started afresh: {', '.join(fresh)}." if fresh else ".")]


def _reproduce(run: Path | None) -> list[str]:
    overrides_file = run / ".hydra" / "overrides.yaml" if run else None
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file and overrides_file.is_file() else None
    if overrides is None:
        return ["The training command was not recorded beside this checkpoint."]
    train = " ".join(["python -m depth_lightning.train", *(str(named(str(o))) for o in overrides)])
    return [
        "```bash",
        train,
        "python -m depth_lightning.export format=hub ckpt_path=<run>/checkpoints/last.ckpt output=<folder>",
        "```",
    ]


def eval_results(record: dict[str, Any], decoder: str) -> list[EvalResult]:
    """The run's test numbers of the headline decoder as the Hub's ``model-index`` entries."""
    test, protocol = record.get("test") or {}, record.get("protocol") or {}
    dataset = str(protocol.get("dataset") or "unknown")
    return [
        EvalResult(
            task_type="depth-estimation",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="test",
            metric_type=m,
            metric_name=f"{m} ({decoder})",
            metric_value=float(test[f"{decoder}/{m}"]),
            metric_config=str(protocol.get("name") or protocol.get("region") or "depth_lightning protocol"),
        )
        for m in METRIC_NAMES
        if f"{decoder}/{m}" in test
    ]


def model_card(settings: dict[str, Any], checkpoint: Path, license: str | None = None) -> str:
    """The README of the model folder made from ``checkpoint`` (``settings``: the network's config)."""
    run, record = run_record(checkpoint)
    data = ((record.get("config") or {}).get("data") or {}).get("name") or (record.get("protocol") or {}).get("dataset")
    decoder = settings.get("decoder", "soft")
    title = f"depth_lightning: {data or 'a depth model'}"
    results = eval_results(record, decoder)
    card_data = ModelCardData(
        license=license or DATA_LICENSES.get(str(data), "other"),
        datasets=[str(data)] if data else None,
        library_name="depth_lightning",
        pipeline_tag="depth-estimation",
        tags=["monocular-depth", "depth_lightning", "pytorch_model_hub_mixin"],
        model_name=title,
        eval_results=results or None,
    )
    h, w = settings["input_size"]
    body = [
        f"# {title}",
        "",
        "Monocular depth as classification over log-depth bins with soft-weighted-sum inference (Li, Dai, He): "
        f"{settings.get('backbone')} backbone, {settings.get('num_bins')} bins over "
        f"[{settings.get('d_min')}, {settings.get('d_max')}] m, input {h}x{w}, headline decoder `{decoder}`.",
        "",
        "```bash",
        INSTALL,
        "```",
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
        f"`data={data or '?'}`; protocol and ground truth as the card below states. License: the data's terms "
        f"(`{card_data.license}`).",
        *_source(record),
        "",
        "## Results",
        "",
        *_results(record, decoder, checkpoint),
        "",
        "## Reproduce",
        "",
        *_reproduce(run),
        "",
    ]
    return f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body)


def parse_card(text: str) -> ModelCard:
    """The card as the Hub reads it (its metadata validated)."""
    return ModelCard(text, ignore_metadata_errors=False)
