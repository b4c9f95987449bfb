"""A model as a folder: ``model.safetensors`` (the weights, no pickle), ``config.json`` (what rebuilds
the network, its bins and its preprocessing) and ``README.md`` (a model card: data, protocol card, test
numbers with intervals, the commands that reproduce it); loaded from a folder, or from a Hugging Face
Hub repo through ``huggingface_hub`` (its cache; ``HF_HUB_OFFLINE=1`` honoured).

:func:`load_model` is what every entry point uses: a ``.ckpt`` of training, a model folder, or a Hub
repo id.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from depth_lightning.inference.checkpoint import load_module, state_mismatch, upgrade_targets
from depth_lightning.module import DepthModule
from depth_lightning.run.errors import CheckpointError
from depth_lightning.run.files import save_atomic, write_json

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
FORMAT = 1  # config.json's layout; a folder of a later layout is refused by name
# what config.json keeps of a training run's hyper-parameters: the network, how it decodes, its input
# size and normalisation (inside ``net``), the data it was trained on; and the optimiser and schedule, so
# that init_from can fine-tune it; the memory layout too, so that the folder predicts bit for bit as the
# checkpoint did
KEPT = ("net", "decoder", "input_size", "channels_last", "data", "optimizer", "scheduler")


def model_config(module: DepthModule) -> dict[str, Any]:
    """``config.json`` of a module: its saved arguments (the network's weights load from the folder)."""
    hparams = copy.deepcopy(dict(module.hparams))
    config = {key: hparams.get(key) for key in KEPT}
    config["net"]["pretrained"] = "none"
    return {"format": FORMAT, "library": "depth_lightning", **config}


def save_pretrained(module: DepthModule, folder: str | Path, card: str | None = None) -> Path:
    """Write ``module`` as a model folder; ``card``: the README's text (default: a minimal card)."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # a compiled network's keys lose torch.compile's wrapper: the folder loads into a plain module
    state = {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_atomic(folder / WEIGHTS, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
    write_json(folder / CONFIG, model_config(module))
    text = card or f"# depth_lightning model\n\nLoad it with `DepthEstimator.from_pretrained({str(folder)!r})`.\n"
    save_atomic(folder / CARD, lambda p: p.write_text(text))
    return folder


def resolve(source: str | Path, revision: str | None = None, cache_dir: str | None = None) -> Path:
    """The local folder or checkpoint file of ``source``: a path, or a Hub repo id (``owner/name``)
    fetched through ``huggingface_hub``'s cache."""
    path = Path(source)
    if path.exists():
        return path
    local = str(source).count("/") != 1 or str(source).startswith((".", "/", "~")) or path.suffix == ".ckpt"
    if local or path.parent.is_dir():  # a path that does not exist here, not a Hub repo id
        raise CheckpointError(
            f"{str(source)!r}: no such file or folder (give a .ckpt of training, a model folder of save_pretrained, "
            "or a Hugging Face Hub repo id owner/name)"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(source), revision=revision, cache_dir=cache_dir))
    except Exception as err:  # not in the cache, no network, no such repo or revision: one line, named
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{source!r} (revision {revision or 'main'}): not found locally or on the Hub ({first})"
        ) from None


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG}; a model folder holds {WEIGHTS}, {CONFIG} and {CARD}")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path}: not JSON ({err})") from None
    if config.get("library") != "depth_lightning" or config.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a depth_lightning model config of format {FORMAT} "
            f"(library {config.get('library')!r}, format {config.get('format')!r})"
        )
    missing = [k for k in ("net", "optimizer", "input_size") if not config.get(k)]
    if missing:
        raise CheckpointError(f"{path}: no {missing[0]!r}: the network cannot be rebuilt from it")
    return config


def load_pretrained(folder: Path) -> DepthModule:
    """The module of a model folder, its weights checked key by key and shape by shape against its config."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_config(folder)
    hparams = upgrade_targets({k: config.get(k) for k in KEPT})
    hparams["net"]["pretrained"] = "none"
    try:
        module = DepthModule(**{k: v for k, v in hparams.items() if v is not None})
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{folder / CONFIG}: does not build a model ({err})") from None
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights}: unreadable safetensors ({err})") from None
    mismatch = state_mismatch(module.state_dict(), state)
    if mismatch:
        raise CheckpointError(f"{folder}: {CONFIG} and {WEIGHTS} disagree: {mismatch}")
    module.load_state_dict(state)
    return module.eval()


def load_model(source: str | Path, revision: str | None = None, cache_dir: str | None = None) -> DepthModule:
    """A trained model from a training checkpoint (``.ckpt``), a model folder, or a Hub repo id."""
    path = resolve(source, revision, cache_dir)
    return load_pretrained(path) if path.is_dir() else load_module(path)
