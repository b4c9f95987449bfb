"""Loading depth_lightning checkpoints safely (``weights_only``) with clear errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from depth_lightning.module import DepthModule
from depth_lightning.run.errors import CheckpointError

# Where classes and functions that a checkpoint names by ``_target_`` lived before the package was
# split into subpackages (checkpoints of depth_lightning <= 0.1.0 from before that): old -> new prefix.
MOVED_TARGETS = {
    "depth_lightning.protocol.": "depth_lightning.evaluation.protocol.",
    "depth_lightning.schedules.": "depth_lightning.models.schedules.",
}


def upgrade_targets(node: Any) -> Any:
    """``node`` (a checkpoint's saved arguments) with every ``_target_`` of a moved object renamed."""
    if isinstance(node, dict):
        out = {k: upgrade_targets(v) for k, v in node.items()}
        target = out.get("_target_")
        for old, new in MOVED_TARGETS.items():
            if isinstance(target, str) and target.startswith(old):
                out["_target_"] = new + target[len(old) :]
        return out
    if isinstance(node, list):
        return [upgrade_targets(v) for v in node]
    return node


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"ckpt_path={str(path)!r}: no such file (give the path of a .ckpt written by training)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"ckpt_path={str(path)!r}: cannot be read as a PyTorch checkpoint ({err})") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    target = hp.get("net", {}).get("_target_", "") if isinstance(hp, dict) and isinstance(hp.get("net"), dict) else ""
    if not target.startswith("depth_lightning.") or "state_dict" not in ckpt:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} is not a depth_lightning checkpoint (its hyper_parameters do not hold the "
            "network's config); use a .ckpt written by python -m depth_lightning.train"
        )
    poisoned = [k for k, v in ckpt["state_dict"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if poisoned:
        raise CheckpointError(
            f"ckpt_path={str(path)!r} holds non-finite weights or statistics ({', '.join(poisoned[:5])}"
            f"{' ...' if len(poisoned) > 5 else ''}): a diverged run; use an earlier checkpoint"
        )
    return ckpt


def load_module(path: str | Path, data: dict[str, Any] | None = None) -> DepthModule:
    """Rebuild the model from the arguments saved in the checkpoint and load its weights strictly.

    ``data``: another dataset config to evaluate on instead of the checkpoint's own.
    """
    ckpt = read_checkpoint(path)
    hparams = upgrade_targets(copy.deepcopy(ckpt["hyper_parameters"]))
    hparams["net"]["pretrained"] = "none"  # the weights come from the checkpoint
    if data is not None:
        hparams["data"] = data
    try:
        module = DepthModule(**hparams)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"ckpt_path={str(path)!r}: its saved arguments do not build a model ({err})") from None
    mismatch = state_mismatch(module.state_dict(), ckpt["state_dict"])
    if mismatch:
        raise CheckpointError(f"ckpt_path={str(path)!r}: its weights do not match its own saved config: {mismatch}")
    module.load_state_dict(ckpt["state_dict"])
    return module.eval()


def state_mismatch(ours: dict[str, Any], theirs: dict[str, Any]) -> str | None:
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


def check_compatible(path: str | Path, module: DepthModule) -> None:
    """Raise naming the mismatching keys if ``path`` was trained with another model configuration."""
    mismatch = state_mismatch(module.state_dict(), read_checkpoint(path)["state_dict"])
    if mismatch:
        raise CheckpointError(f"ckpt_path={str(path)!r} was trained with a different model configuration: {mismatch}")
