"""What every entry point loads a trained model with: a training checkpoint (``.ckpt``), a model folder,
or a Hugging Face Hub repo id -> the deployable :class:`~depth_lightning.models.DepthNet`, checked, and
nothing else: no training module, optimiser or data module is built, and nothing the file names is
imported or called (:mod:`depth_lightning.models.storage`). Lightning is not imported."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from depth_lightning.core.errors import CheckpointError
from depth_lightning.inference.model_card import run_record
from depth_lightning.models.network import DepthNet
from depth_lightning.models.storage import model_from_checkpoint, read_checkpoint, resolve_folder, state_mismatch


def load_model(
    source: str | Path, revision: str | None = None, cache_dir: str | None = None, key: str = "ckpt_path"
) -> DepthNet:
    """A trained network from a training checkpoint, a model folder, or a Hub repo id; refusals name
    the file or folder (and ``key``, the setting that gave a checkpoint)."""
    path = Path(source)
    if path.is_file():
        return model_from_checkpoint(path, DepthNet, key)
    return DepthNet.from_pretrained(resolve_folder(source, revision, cache_dir))


def load_with_record(source: str | Path, key: str = "ckpt_path") -> tuple[DepthNet, dict[str, Any]]:
    """:func:`load_model` and, for a training checkpoint, what it says of itself as data
    (:func:`record_of`), the file read once; ``{}`` for a model folder or Hub id."""
    path = Path(source)
    if not path.is_file():
        return load_model(source, key=key), {}
    ckpt = read_checkpoint(path, key)
    return model_from_checkpoint(path, DepthNet, key, ckpt), record_of(path, ckpt)


def checkpoint_record(path: str | Path) -> dict[str, Any]:
    """:func:`record_of` a training checkpoint file (``{}`` for a model folder or Hub id)."""
    return record_of(Path(path), read_checkpoint(path)) if Path(path).is_file() else {}


def record_of(path: Path, ckpt: dict[str, Any]) -> dict[str, Any]:
    """What a training checkpoint says of itself as data: the ``precision`` its run computed in, the
    ``data`` it was trained on (names and values)."""
    precision = ckpt.get("precision")
    if precision is None:  # written before checkpoints said: the run's record beside it may
        _, record = run_record(path)
        chosen = ((record.get("speed") or {}).get("precision") or {}).get("precision")
        configured = ((record.get("config") or {}).get("trainer") or {}).get("precision")
        precision = chosen or record.get("precision") or (configured if configured != "auto" else None)
    return {"precision": precision, "data": ckpt["hyper_parameters"].get("data")}


def check_compatible(path: str | Path, module: torch.nn.Module) -> dict[str, Any]:
    """Refuse, naming the keys, a checkpoint to resume that was trained with another model configuration;
    the checkpoint (read once: its recorded precision is the resumed run's)."""
    ours = dict(module.state_dict())
    ckpt = read_checkpoint(path)
    theirs = dict(ckpt["state_dict"])
    theirs.setdefault("net.bins.log_centres", ours["net.bins.log_centres"])  # 0.1.0 saved no bins
    mismatch = state_mismatch(ours, theirs)
    if mismatch:
        raise CheckpointError(f"ckpt_path={str(path)!r} was trained with a different model configuration: {mismatch}")
    return ckpt
