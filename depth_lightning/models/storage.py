"""How a model is stored and read back, as data: a model folder (``model.safetensors``, ``config.json``,
``README.md``), and the folders and checkpoints of earlier layouts. Nothing read here is imported or
called: settings are parsed by name (:mod:`depth_lightning.models.settings`), a ``_target_`` anywhere in
an older layout is only compared with the names the suite's own configs use, and weights are checked
key by key, shape by shape and, for the bins and the normalisation, value by value against the settings.

Layouts:
- format 2 (this one): ``config.json`` is the network's constructor arguments plus ``format`` and
  ``library``; the weights are the network's own ``state_dict`` (``bins.log_centres`` included).
- format 1 (depth_lightning 0.1.0): ``config.json`` held the training module's arguments (``net`` with
  its ``_target_``, ``decoder``, ``input_size``, ``channels_last``, ``data``, ``optimizer``,
  ``scheduler``); the weights were the module's (``net.``-prefixed keys), without the bins.
- a training checkpoint (``.ckpt``): ``hyper_parameters`` as format 1's config, ``state_dict`` as its
  weights; read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from depth_lightning.core.errors import CheckpointError
from depth_lightning.core.files import save_atomic
from depth_lightning.core.resources import CONF_DIR
from depth_lightning.models.settings import NETWORK_TARGETS, TRAINING_SETTINGS, SettingsError, network_settings

# ``Model``: the network class (models/network.py imports this module, so it is passed in, not imported)
Model = Any

WEIGHTS, CONFIG, CARD = "model.safetensors", "config.json", "README.md"
FORMAT = {"format": 2, "library": "depth_lightning"}
# Where classes and functions that older configs name by ``_target_`` lived before the package was
# split into subpackages: old -> new prefix.
MOVED_TARGETS = {
    "depth_lightning.protocol.": "depth_lightning.evaluation.protocol.",
    "depth_lightning.schedules.": "depth_lightning.models.schedules.",
}
# What the training module's arguments in format 1 and in checkpoints held beside the network.
MODULE_KEYS = ("net", "decoder", "input_size", "channels_last", "compile", "data", "optimizer", "scheduler")


@lru_cache(maxsize=1)
def known_targets() -> frozenset[str]:
    """Every ``_target_`` the suite's own configs name (and named: the network, before 0.2), the old names
    of the moved ones, and torch's optimisers and schedules (``model.optimizer._target_=torch.optim.Adam``
    is a user's choice)."""
    names = set(NETWORK_TARGETS)
    for path in Path(CONF_DIR).rglob("*.yaml"):
        names.update(re.findall(r"_target_:\s*([\w.]+)", path.read_text()))
    for old, new in MOVED_TARGETS.items():
        names.update(old + n[len(new) :] for n in list(names) if n.startswith(new))
    optimizers = [
        n for n, v in vars(torch.optim).items() if isinstance(v, type) and issubclass(v, torch.optim.Optimizer)
    ]
    schedules = [
        n
        for n, v in vars(torch.optim.lr_scheduler).items()
        if isinstance(v, type) and issubclass(v, torch.optim.lr_scheduler.LRScheduler)
    ]
    names.update(f"torch.optim.{n}" for n in optimizers)
    names.update(f"torch.optim.lr_scheduler.{n}" for n in schedules)
    return frozenset(names)


def refuse_code(node: Any, where: str) -> None:
    """Refuse, naming the field, a ``_target_`` that is not one the suite's configs use, and any
    interpolation (``${...}``: saved arguments are resolved, so one is planted), anywhere in ``node``."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            field = f"{where}.{key}"
            if key == "_target_" and value not in known_targets():
                raise CheckpointError(
                    f"{field}={value!r}: names code the suite does not know; a model's config is data and is "
                    "never imported or called, so this file is refused"
                )
            refuse_code(value, field)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            refuse_code(value, f"{where}[{i}]")
    elif isinstance(node, str) and "${" in node:
        raise CheckpointError(f"{where}={node!r}: an interpolation; a model's config is data, refused")


def legacy_settings(hparams: Any, state: Mapping[str, Tensor], where: str) -> dict[str, Any]:
    """The network's settings from a format-1 ``config.json`` or a checkpoint's ``hyper_parameters``
    (``where`` names it), every ``_target_`` in it checked first."""
    if not isinstance(hparams, Mapping) or not isinstance(hparams.get("net"), Mapping):
        raise CheckpointError(f"{where}: holds no network config ('net'); not a depth_lightning model")
    refuse_code(hparams, where)
    unknown = sorted(set(hparams) - set(MODULE_KEYS) - {"format", "library"})
    if unknown:
        raise CheckpointError(f"{where}.{unknown[0]}: not a setting of a depth_lightning model")
    net = dict(hparams["net"])
    if net.get("normalize", "auto") == "auto":  # resolved when the model was built: the weights hold what it gave
        std = state.get("normalize.std")
        net["normalize"] = "imagenet" if std is not None and not torch.all(std == 1) else "none"
    top = {k: hparams[k] for k in ("decoder", "input_size", "channels_last") if k in hparams}
    return checked({**net, **top}, where, ignore=TRAINING_SETTINGS)


def checked(raw: Any, where: str, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    try:
        return network_settings(raw, where, ignore)
    except SettingsError as err:
        raise CheckpointError(str(err)) from None


def network_state(state: Mapping[str, Tensor], prefix: str = "net.") -> dict[str, Tensor]:
    """The network's tensors of a training module's ``state_dict`` (``net.``-prefixed; a compiled
    network's ``_orig_mod.`` dropped)."""
    return {k[len(prefix) :].replace("_orig_mod.", ""): v for k, v in state.items() if k.startswith(prefix)}


def state_mismatch(ours: Mapping[str, Tensor], theirs: Mapping[str, Tensor]) -> str | None:
    """How two state dicts differ (keys and shapes), or None when one loads into the other."""
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    shapes = [
        f"{k} {tuple(theirs[k].shape)} vs {tuple(ours[k].shape)}"
        for k in sorted(set(ours) & set(theirs))
        if tuple(ours[k].shape) != tuple(theirs[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return None
    return f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}, shape mismatches {shapes[:5]}"


def _span(centres: Tensor) -> str:
    return f"{len(centres)} bins over [{math.exp(centres[0]):.4g}, {math.exp(centres[-1]):.4g}] m"


def check_weights(model: Model, state: dict[str, Tensor], where: str, settings_file: str) -> dict[str, Tensor]:
    """``state`` checked against ``model`` (built from ``settings_file``): every key and shape, and the
    tensors that the settings define (the bins, the normalisation) by value. A layout without the bins
    (format 1, checkpoints of 0.1.0) gets the settings' own. Refusals name the tensor."""
    ours = model.state_dict()
    state = dict(state)
    state.setdefault("bins.log_centres", ours["bins.log_centres"])
    problem = state_mismatch(ours, state)
    if problem:
        raise CheckpointError(f"{where}: {settings_file} and its weights disagree: {problem}")
    poisoned = [k for k, v in state.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if poisoned:
        raise CheckpointError(
            f"{where} holds non-finite weights or statistics ({', '.join(poisoned[:5])}"
            f"{' ...' if len(poisoned) > 5 else ''}): a diverged run; use an earlier checkpoint"
        )
    theirs = state["bins.log_centres"].float()
    if not torch.allclose(theirs, ours["bins.log_centres"], rtol=0, atol=1e-6):
        raise CheckpointError(
            f"{where}: bins.log_centres: the weights were trained for {_span(theirs)}, {settings_file} says "
            f"{_span(ours['bins.log_centres'])}; a bin of the weights would mean another depth"
        )
    for key in ("normalize.mean", "normalize.std"):
        if not torch.allclose(state[key].float(), ours[key], rtol=0, atol=1e-6):
            raise CheckpointError(
                f"{where}: {key}: the weights' input normalisation {state[key].flatten().tolist()} is not the "
                f"one {settings_file} names (normalize={model.settings.get('normalize')!r})"
            )
    return state


def save_weights(model: Model, path: Path) -> None:
    """The network's ``state_dict`` as safetensors (contiguous CPU tensors), atomically."""
    from safetensors.torch import save_file

    state = {k.replace("_orig_mod.", ""): v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_atomic(path, lambda p: save_file(state, str(p), metadata={"format": "pt"}))


def read_weights(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path.parent}: no {WEIGHTS}; a model folder holds {WEIGHTS}, {CONFIG} and {CARD}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path}: unreadable safetensors ({err})") from None


def read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path.parent}: no {CONFIG}; a model folder holds {WEIGHTS}, {CONFIG} and {CARD}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not JSON ({err})") from None
    if not isinstance(config, dict) or config.get("library") != "depth_lightning" or config.get("format") not in (1, 2):
        found = (config.get("library"), config.get("format")) if isinstance(config, dict) else (None, None)
        raise CheckpointError(
            f"{path}: not a depth_lightning model config (library {found[0]!r}, format {found[1]!r}; "
            "this version reads formats 1 and 2)"
        )
    return config


def read_model_folder(config_path: Path, weights_path: Path, card_path: Path | None, cls: type[Model]) -> Model:
    """The network of a model folder's files, any layout, checked; its card kept for ``save_pretrained``."""
    config = read_config(config_path)
    where = str(config_path)
    refuse_code(config, where)
    state = read_weights(weights_path)
    if config["format"] == 1:
        state = network_state(state)
        settings = legacy_settings({k: v for k, v in config.items() if k not in FORMAT}, state, where)
    else:
        settings = checked({k: v for k, v in config.items() if k not in FORMAT}, where)
    model = build(cls, settings, where)
    model.load_state_dict(check_weights(model, state, str(config_path.parent), CONFIG))
    if card_path is not None and card_path.is_file():
        model.card = card_path.read_text()
    return model.eval()


def build(cls: type[Model], settings: dict[str, Any], where: str) -> Model:
    try:
        return cls(**settings)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{where}: its settings do not build the network ({err})") from None


def read_checkpoint(path: str | Path, key: str = "ckpt_path") -> dict[str, Any]:
    """A training checkpoint, read with ``weights_only`` (no pickle code runs); refused, naming ``key``,
    when it is missing, unreadable, not the suite's, or holds non-finite weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{key}={str(path)!r}: no such file (give the path of a .ckpt written by training)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{key}={str(path)!r}: cannot be read as a PyTorch checkpoint ({err})") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("net"), dict) or "state_dict" not in ckpt:
        raise CheckpointError(
            f"{key}={str(path)!r} is not a depth_lightning checkpoint (its hyper_parameters do not hold the "
            "network's config); use a .ckpt written by python -m depth_lightning.train"
        )
    poisoned = [k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if poisoned:
        raise CheckpointError(
            f"{key}={str(path)!r} holds non-finite weights or statistics ({', '.join(poisoned[:5])}"
            f"{' ...' if len(poisoned) > 5 else ''}): a diverged run; use an earlier checkpoint"
        )
    return ckpt


def model_from_checkpoint(
    path: str | Path, cls: type[Model], key: str = "ckpt_path", ckpt: dict[str, Any] | None = None
) -> Model:
    """The network of a training checkpoint, built from its saved settings (as data) and checked;
    ``ckpt``: the checkpoint already read (:func:`read_checkpoint`), so it is read once."""
    ckpt = ckpt if ckpt is not None else read_checkpoint(path, key)
    where = f"{key}={str(path)!r}: hyper_parameters"
    state = network_state(ckpt["state_dict"])
    model = build(cls, legacy_settings(ckpt["hyper_parameters"], state, where), where)
    model.load_state_dict(check_weights(model, state, f"{key}={str(path)!r}", "its hyper_parameters"))
    return model.eval()


def resolve_folder(
    source: str | Path, revision: str | None = None, cache_dir: str | Path | None = None, **hub_kwargs: Any
) -> Path:
    """The local folder of ``source``: a folder, or a Hub repo id (``owner/name``) fetched through
    ``huggingface_hub``'s cache. A path that is not here is named as a path, never looked up."""
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{str(source)!r} is a file; a model folder holds {WEIGHTS}, {CONFIG} and {CARD}")
    local = str(source).count("/") != 1 or str(source).startswith((".", "/", "~")) or path.suffix == ".ckpt"
    if local or path.parent.is_dir():  # a path that does not exist here, not a Hub repo id
        raise CheckpointError(
            f"{str(source)!r}: no such file or folder (give a .ckpt of training, a model folder of save_pretrained, "
            "or a Hugging Face Hub repo id owner/name)"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(source), revision=revision, cache_dir=cache_dir, **hub_kwargs))
    except Exception as err:  # not in the cache, no network, no such repo or revision: one line, named
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"{source!r} (revision {revision or 'main'}): not found locally or on the Hub ({first})"
        ) from None


def minimal_card(settings: Mapping[str, Any]) -> str:
    """A model card for a network saved without one (``DepthNet.save_pretrained``)."""
    return (
        "---\nlibrary_name: depth_lightning\npipeline_tag: depth-estimation\n---\n\n# depth_lightning model\n\n"
        f"{settings.get('backbone')} backbone, {settings.get('num_bins')} log-depth bins over "
        f"[{settings.get('d_min')}, {settings.get('d_max')}] m.\n\n"
        "```python\nfrom depth_lightning import DepthEstimator\n\n"
        'estimator = DepthEstimator.from_pretrained("<this folder or owner/name on the Hub>")\n```\n'
    )
